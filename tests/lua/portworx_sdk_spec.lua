-- portworx_sdk_spec.lua: the portworx module's "sdk" backend against the
-- Portworx double's SDK REST gateway (real HTTP, real grpc-gateway error
-- bodies), sharing state with the Kubernetes double: the shared backend
-- behaviours, then what only the SDK path has — gRPC codes in errors,
-- retries and deadlines, secured mode with the token Secret, endpoint
-- discovery, cloud snapshots and clones.
local errors = require("errors")
local ks = require("kube_support")
local pxs = require("portworx_support")
local support = require("support")

local function env(vars) return function(k) return vars[k] end end

describe("portworx sdk backend", function()
  describe("backend behaviours", function()
    pxs.behaves_like_a_backend({
      backend = "sdk", in_place = true,
      fail_snapshot = function(client) pxs.fault(client, {kind = "error", op = "SnapshotCreate", code = 13}) end,
    }, it, before_each)
  end)

  describe("against the gateway", function()
    local client, ns, px, prod

    before_each(function()
      client, ns = pxs.setup("px-sdk")
      px = pxs.connect("sdk", client)
      prod = px:volume_for_pvc(ns, "data")
    end)

    it("keeps the SDK's message and gRPC code in its errors", function()
      local err = pxs.raised("NotFound", px.restore, px, {volume = prod, snapshot = "424242"})
      assert.equal(5, err.grpc_code)
      pxs.fault(client, {kind = "error", op = "Clone", code = 9, message = "pool is full"})
      err = pxs.raised("FailedPrecondition", px.clone, px, {from = prod, name = "c1"})
      assert.equal(9, err.grpc_code)
      assert.equal(400, err.status)
      assert.equal("pool is full", err.sdk_message)
      assert.equal("POST /v1/volumes/clone", err.op)
      assert.equal("portworx: POST /v1/volumes/clone: pool is full [FailedPrecondition, HTTP 400]", tostring(err))
    end)

    it("refuses to delete a volume that is not a snapshot or clone unless forced", function()
      local err = pxs.raised("FailedPrecondition", px.delete, px, prod.id)
      assert.truthy(err.message:find("force", 1, true))
      assert.is_truthy(pxs.px_volumes(client)[prod.id])
    end)

    it("retries idempotent calls through 503s and slow answers", function()
      pxs.fault(client, {kind = "error", op = "Inspect", code = 14, count = 2})
      assert.equal(prod.id, px:volume(prod.id).id)
      local fast = pxs.connect("sdk", client, {request_timeout = 0.3})
      pxs.fault(client, {kind = "slow", op = "Inspect", delay_ms = 1500})
      assert.equal(prod.id, fast:volume(prod.id).id)
      -- the slow call is logged when its answer is finally written, after the retry's
      local calls = support.wait_for(5, function()
        local c = pxs.calls(client, "Inspect")
        return #c == 6 and c
      end)
      local kinds = {}
      for _, c in ipairs(calls) do kinds[#kinds + 1] = type(c.fault) == "string" and c.fault or "-" end
      table.sort(kinds)
      assert.same({"-", "-", "-", "error", "error", "slow"}, kinds) -- one "-": volume_for_pvc in before_each
    end)

    it("never retries a create blindly, and finds the snapshot an ambiguous failure made", function()
      pxs.fault(client, {kind = "error", op = "SnapshotCreate", code = 14})
      local err = pxs.raised("Unavailable", px.snapshot, px, {volume = prod, name = "once"})
      assert.equal(14, err.grpc_code)
      assert.equal(1, #pxs.calls(client, "SnapshotCreate"))
      -- a duplicate-name 500 on a rerun is the existing snapshot, not an error
      local a = px:snapshot{volume = prod, name = "once"}
      local b = px:snapshot{volume = prod, name = "once"}
      assert.equal(a.id, b.id)
      local creates = pxs.calls(client, "SnapshotCreate")
      assert.equal(500, creates[#creates].status)
    end)

    it("thaws when the snapshot outlives its deadline", function()
      pxs.fault(client, {kind = "slow", op = "SnapshotCreate", delay_ms = 3000})
      local err = pxs.raised("timeout", px.snapshot, px, {volume = prod, name = "slow", timeout = 0.5,
                                                           freeze = {pod = "mongo-0", argv = pxs.FREEZE},
                                                           thaw = {pod = "mongo-0", argv = pxs.THAW}})
      assert.truthy(err.message:find("did not finish within 0.5s", 1, true))
      local calls = pxs.await_mongosh(client, ns, 2)
      assert.same({"db.fsyncLock()", "db.fsyncUnlock()"}, {calls[1].command[4], calls[2].command[4]})
    end)

    it("refuses a snapshot name taken by another volume's snapshot", function()
      local other = px:create_volume{name = ns .. "-scratch", size = "1Gi"}
      px:snapshot{volume = other, name = "taken"}
      local err = pxs.raised("AlreadyExists", px.snapshot, px, {volume = prod, name = "taken"})
      assert.truthy(err.message:find(other.id, 1, true))
    end)

    it("clones idempotently by name and lists true snapshots only", function()
      local snap = px:snapshot{volume = prod, name = "base", labels = {env = "stage"}}
      local c1 = px:clone{from = snap, name = ns .. "-clone", labels = {env = "stage"}}
      local c2 = px:clone{from = snap.id, name = ns .. "-clone"}
      assert.equal(c1.id, c2.id)
      assert.is_true(c1.clone)
      assert.equal(snap.id, c1.parent)
      local names = {}
      for _, s in ipairs(px:snapshots{labels = {env = "stage"}}) do names[#names + 1] = s.name end
      assert.same({"base"}, names)
      local err = pxs.raised("AlreadyExists", px.clone, px, {from = prod, name = ns .. "-clone"})
      assert.truthy(err.message:find("conflicting parent", 1, true) or err.message:find("parent", 1, true))
      assert.is_true(px:delete(c1))
      assert.is_true(px:delete(snap))
    end)

    it("round-trips a cloud snapshot", function()
      local done = px:cloudsnap{volume = {namespace = ns, pvc = "data"}, wait = true, timeout = 30}
      assert.equal("done", done.status)
      assert.equal("backup", done.optype)
      assert.equal(prod.id, done.volume)
      assert.is_truthy(done.backup_id)
      local restored = px:cloudsnap_restore{backup = done.backup_id, name = ns .. "-from-cloud", wait = true,
                                            timeout = 30}
      assert.equal(ns .. "-from-cloud", restored.name)
      assert.equal(1, restored.ha_level)
      assert.equal(prod.size, restored.size)
      local task = px:cloudsnap{volume = prod, task = ns .. "-task"}
      assert.equal(ns .. "-task", task)
      assert.equal(task, px:cloudsnap{volume = prod, task = ns .. "-task"})
    end)

    it("reports a failed cloud snapshot and an unknown task", function()
      pxs.fault(client, {kind = "cloudsnap_failed", message = "bucket ferry-cloudsnaps: access denied"})
      local task = px:cloudsnap{volume = prod}
      local err = pxs.raised("failed", px.cloudsnap_wait, px, task, {timeout = 30, interval = 0.05})
      assert.truthy(err.message:find("access denied", 1, true))
      err = pxs.raised("NotFound", px.cloudsnap_status, px, "no-such-task")
      assert.truthy(err.message:find("no-such-task", 1, true))
      assert.truthy(err.message:find("No Backup status found", 1, true))
    end)

    it("finds the portworx-api Service when no endpoint is given", function()
      local getenv = env{}
      local outside = pxs.connect("sdk", client, {endpoint = false, _getenv = getenv})
      assert.equal("kube service proxy kube-system/portworx-api:9021", outside._backend.gw:where())
      -- through the API server's service proxy (scripted: the double's proxy does not reach Portworx)
      ks.control(client, "POST", "proxy", {services = {["kube-system/portworx-api"] = {
        path = "/v1/volumes/inspect/" .. prod.id, body = {volume = {id = prod.id, locator = {name = "proxied"}}}}}})
      assert.equal("proxied", outside:volume(prod.id).name)
      local svc = client:get("service/portworx-api", {namespace = "kube-system"})
      local inside = pxs.connect("sdk", client, {endpoint = false, _getenv = env{KUBERNETES_SERVICE_HOST = "10.0.0.1"}})
      assert.equal(("http://%s:9021"):format(svc.spec.clusterIP), inside._backend.gw:where())
    end)
  end)

  describe("secured", function()
    local client, ns

    before_each(function()
      client, ns = pxs.setup("px-sec")
      pxs.config(client, {secured = true})
    end)

    it("reads the token from the px-admin-token Secret", function()
      local px = pxs.connect("sdk", client, {_getenv = env{}})
      local v = px:volume_for_pvc(ns, "data")
      assert.is_truthy(v.id)
      local last = pxs.calls(client, "Inspect")
      assert.equal("px-admin@ferry.test", last[#last].user)
    end)

    it("re-reads the Secret once on a 401 and goes on", function()
      local px = pxs.connect("sdk", client, {_getenv = env{}})
      local v = px:volume_for_pvc(ns, "data")
      pxs.control(client, "POST", "tokens", {rotate = true}) -- the old token stops working
      assert.equal(v.id, px:volume(v.id).id)
      local statuses = {}
      for _, c in ipairs(pxs.calls(client, "Inspect")) do statuses[#statuses + 1] = c.status end
      assert.same({200, 401, 200}, statuses)
    end)

    it("replaces a rejected token from the environment with the Secret's", function()
      local px = pxs.connect("sdk", client, {_getenv = env{PORTWORX_AUTH_TOKEN = "not.a.token"}})
      assert.is_truthy(px:volume_for_pvc(ns, "data").id)
    end)

    it("raises Unauthenticated, naming where the token came from, when nothing helps", function()
      local px = pxs.connect("sdk", client, {token = "not.a.token", kube = false, _getenv = env{}})
      local err = pxs.raised("Unauthenticated", px.volumes, px)
      assert.equal(16, err.grpc_code)
      assert.equal(401, err.status)
      assert.truthy(err.message:find("token from option", 1, true), err.message)
      assert.is_false(errors.is(err, "timeout"))
      assert.truthy(support.contains(err.message, "portworx: POST /v1/volumes/inspectwithfilters"))
    end)
  end)
end)
