-- portworx_pxctl_spec.lua: the portworx module's "pxctl" backend — `pxctl -j`
-- through kube exec in the Portworx pod the doubles seed (label
-- name=portworx, container portworx), answering from the Portworx double's
-- state: the shared backend behaviours, then what is pxctl's own (the pod
-- choice, failures with pxctl's text, PX-Security through PXCTL_AUTH_TOKEN).
local ks = require("kube_support")
local pxs = require("portworx_support")

describe("portworx pxctl backend", function()
  describe("backend behaviours", function()
    pxs.behaves_like_a_backend({
      backend = "pxctl", in_place = true,
      fail_snapshot = function(client) pxs.fault(client, {kind = "snapshot_limit"}) end,
    }, it, before_each)
  end)

  describe("in the Portworx pod", function()
    local client, ns, px

    before_each(function()
      client, ns = pxs.setup("px-pxctl")
      px = pxs.connect("pxctl", client)
    end)

    it("runs pxctl -j in the container portworx of the pod labelled name=portworx", function()
      px:volume_for_pvc(ns, "data")
      local calls = ks.exec_script(client, {}).calls
      local last = calls[#calls]
      assert.equal("kube-system", last.namespace)
      assert.equal("portworx", last.container)
      local argv = last.command
      local at = argv[1] == "env" and 3 or 1 -- `env PXCTL_AUTH_TOKEN=...` first when Portworx is secured
      assert.same({"/opt/pwx/bin/pxctl", "-j", "volume", "inspect"}, {table.unpack(argv, at, at + 3)})
    end)

    it("raises pxctl's own text when a command fails", function()
      pxs.fault(client, {kind = "error", op = "pxctl", message = "Could not connect to the Portworx daemon"})
      local err = pxs.raised("pxctl_failed", px.volumes, px)
      assert.truthy(err.message:find("Could not connect to the Portworx daemon", 1, true))
      assert.equal(1, err.exit_code)
    end)

    it("passes the token from the Secret when Portworx is secured", function()
      pxs.config(client, {secured = true})
      local secured = pxs.connect("pxctl", client, {_getenv = function() return nil end})
      assert.is_truthy(secured:volume_for_pvc(ns, "data").id)
      pxs.control(client, "POST", "tokens", {rotate = true})
      assert.is_truthy(secured:volume_for_pvc(ns, "data").id)
    end)
  end)
end)
