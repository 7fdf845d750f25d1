-- portworx_support.lua: what the portworx backend specs share — a fresh
-- namespace on the Kubernetes double with a production PVC on the Portworx
-- StorageClass and a MongoDB pod mounting it, the Portworx double's control
-- endpoints (/_ferry/portworx/...: state, faults, config, tokens, calls),
-- scripted mongosh answers for freeze/thaw, and the behaviours every backend
-- must show (behaves_like_a_backend). Load it with
-- `require("portworx_support")`; it is not a spec.
local assert = require("luassert")
local errors = require("errors")
local http = require("http")
local json = require("json")
local ks = require("kube_support")
local portworx = require("portworx")
local support = require("support")

local M = {}

M.FREEZE = {"mongosh", "--quiet", "--eval", "db.fsyncLock()"}
M.THAW = {"mongosh", "--quiet", "--eval", "db.fsyncUnlock()"}

local px_url

---The Portworx double's URL: FERRY_TEST_PORTWORX, else what the Kubernetes
---double's health says.
---@param client kube.Client
---@return string
function M.url(client)
  px_url = px_url or os.getenv("FERRY_TEST_PORTWORX") or ks.control(client, "GET", "health").portworx
  return assert(px_url, "the Kubernetes double runs no Portworx double")
end

---The SDK endpoint the doubles export.
function M.endpoint(client)
  return os.getenv("PORTWORX_SDK_ENDPOINT") or M.url(client)
end

---A control call to the Portworx double; the decoded answer.
---@param client kube.Client
---@param method string
---@param what string after /_ferry/portworx/
---@param body? table
---@return table
function M.control(client, method, what, body)
  local res = http.request{url = M.url(client) .. "/_ferry/portworx/" .. what, method = method,
                           body = body and json.encode(body) or nil, retries = 0,
                           headers = {["Content-Type"] = "application/json"}}
  assert(res.status == 200, ("portworx control %s %s: %d %s"):format(method, what, res.status, res.body))
  return json.decode(res.body)
end

---Every Portworx volume the double holds (SDK encoding), by id.
function M.px_volumes(client)
  local out = {}
  for _, v in ipairs(M.control(client, "GET", "volumes").volumes) do out[v.id] = v end
  return out
end

---The double's SDK call log (op: "SnapshotCreate", ...).
function M.calls(client, op)
  return M.control(client, "GET", "calls" .. (op and ("?op=" .. op) or "")).calls
end

function M.fault(client, spec) return M.control(client, "POST", "faults", spec) end
function M.config(client, cfg) return M.control(client, "POST", "config", cfg).config end

---A fresh namespace with PVC "data" (px-csi-db, 2Gi) mounted by pod
---"mongo-0" (label app=mongo), both ready; scripted mongosh answers. Returns
---the kube client and the namespace.
---@param prefix string
---@return kube.Client, string
function M.setup(prefix)
  local client, ns = ks.setup(prefix)
  M.claim(client, ns, "data", {app = "mongo"})
  M.mount(client, ns, "mongo-0", "data", {app = "mongo"})
  ks.exec_script(client, {pods = {[ns .. "/mongo-0"] = {
    {match = {"mongosh", "--quiet", "--eval", "db.fsyncLock()"}, stdout = '{ "info": "now locked", "ok": 1 }\n'},
    {match = {"mongosh", "--quiet", "--eval", "db.fsyncUnlock()"}, stdout = '{ "info": "fsyncUnlock completed", '
                                                                           .. '"ok": 1 }\n'},
  }}})
  return client, ns
end

---PVC `name` on the Portworx StorageClass, waited until Bound.
function M.claim(client, ns, name, labels, class)
  client:create{apiVersion = "v1", kind = "PersistentVolumeClaim",
                metadata = {name = name, namespace = ns, labels = labels},
                spec = {accessModes = {"ReadWriteOnce"}, storageClassName = class or "px-csi-db",
                        resources = {requests = {storage = "2Gi"}}}}
  return client:wait("pvc/" .. name, "bound", {timeout = 30, namespace = ns})
end

---Pod `name` mounting claim, waited until Ready.
function M.mount(client, ns, name, claim, labels)
  client:create{apiVersion = "v1", kind = "Pod", metadata = {name = name, namespace = ns, labels = labels},
                spec = {containers = {{name = "mongo", image = "mongo:7"}},
                        volumes = {{name = "data", persistentVolumeClaim = {claimName = claim}}}}}
  return client:wait("pod/" .. name, "ready", {timeout = 30, namespace = ns})
end

---The mongosh calls the Kubernetes double recorded in ns, oldest first.
function M.mongosh_calls(client, ns)
  local out = {}
  for _, c in ipairs(ks.exec_script(client, {}).calls) do
    if c.namespace == ns and c.command[1] == "mongosh" then out[#out + 1] = c end
  end
  return out
end

---Waits until n mongosh calls are recorded in ns (a call is recorded when it ends).
function M.await_mongosh(client, ns, n)
  local calls
  support.wait_for(10, function()
    calls = M.mongosh_calls(client, ns)
    return #calls >= n
  end)
  return calls
end

---A client of backend on the doubles.
function M.connect(backend, client, extra)
  local opts = {backend = backend, kube = client}
  if backend == "sdk" then opts.endpoint = M.endpoint(client) end
  for k, v in pairs(extra or {}) do
    if v == false then opts[k] = nil else opts[k] = v end -- false: leave the option out
  end
  return portworx.connect(opts)
end

---The raised error of fn(...), checking its code.
function M.raised(code, fn, ...)
  local err = support.raised(fn, ...)
  assert(errors.is(err, code), ("expected a %s error, got %s"):format(code, tostring(err)))
  return err
end

---The behaviours every backend shows, as busted tests: call it inside a
---describe with busted's `it` and `before_each` (a required module does not
---see the spec's environment). opts: backend, extra (connect options),
---tag, fail_snapshot(client, ns) making the next snapshot fail, in_place
---(whether restore works once the volume is detached).
function M.behaves_like_a_backend(opts, it, before_each)
  local backend = opts.backend
  local client, ns, px

  before_each(function()
    client, ns = M.setup("px-" .. backend .. (opts.tag or ""))
    px = M.connect(backend, client, opts.extra)
  end)

  it("finds the production volume behind its PVC", function()
    local pv = client:get("pv/" .. client:get("pvc/data").spec.volumeName)
    local v = px:volume_for_pvc(ns, "data")
    assert.equal(pv.spec.csi.volumeHandle, v.id)
    assert.equal(pv.metadata.name, v.name)
    assert.equal(2 * (1 << 30), v.size)
    assert.equal("attached", v.state)
    assert.same({"data", ns}, {v.labels.pvc, v.labels.namespace})
    assert.equal(v.id, px:volume(v.id).id)
    assert.equal(v.id, px:volume(v.name).id)
    local missing, err = px:volume("no-such-volume")
    assert.is_nil(missing)
    assert.equal("NotFound", err.code)
  end)

  it("says clearly when a PVC is not on Portworx", function()
    client:create{apiVersion = "storage.k8s.io/v1", kind = "StorageClass", metadata = {name = ns .. "-ebs"},
                  provisioner = "ebs.csi.aws.com"}
    M.claim(client, ns, "other", nil, ns .. "-ebs")
    local err = M.raised("not_portworx", px.volume_for_pvc, px, ns, "other")
    assert.truthy(err.message:find("ebs.csi.aws.com", 1, true), err.message)
    assert.truthy(err.message:find(ns .. "/other", 1, true), err.message)
    err = support.raised(px.volume_for_pvc, px, ns, "absent")
    assert.equal("NotFound", err.code)
  end)

  it("snapshots with freeze and thaw, restores a staging PVC, mounts it, then deletes clone and snapshot",
     function()
    local prod = px:volume_for_pvc(ns, "data")
    local snap = px:snapshot{volume = {namespace = ns, pvc = "data"}, name = "nightly-1", labels = {env = "stage"},
                             freeze = {pod = "mongo-0", argv = M.FREEZE}, thaw = {pod = "mongo-0", argv = M.THAW}}
    assert.equal(prod.id, snap.parent)
    assert.equal("nightly-1", snap.name)
    assert.equal("stage", snap.labels.env)
    local pxsnap = M.px_volumes(client)[snap.id]
    assert.is_truthy(pxsnap, "the snapshot exists in Portworx")
    assert.equal(prod.id, pxsnap.source.parent)
    assert.is_true(pxsnap.readonly)
    -- freeze before the snapshot was cut, thaw after
    local calls = M.await_mongosh(client, ns, 2)
    assert.same({"db.fsyncLock()", "db.fsyncUnlock()"}, {calls[1].command[4], calls[2].command[4]})
    local cut = require("portworx.volume").epoch(pxsnap.ctime)
    assert.is_true(calls[1].time <= cut and cut <= calls[2].time)

    local staging = px:restore_pvc{snapshot = snap, namespace = ns, name = "staging"}
    assert.equal("Bound", staging.object.status.phase)
    local clone = M.px_volumes(client)[staging.volume]
    assert.is_truthy(clone, "the staging volume exists in Portworx")
    assert.equal(snap.id, clone.source.parent)
    assert.is_nil(clone.readonly)
    M.mount(client, ns, "staging-mongo-0", "staging")
    assert.truthy(support.wait_for(10, function()
      return M.px_volumes(client)[staging.volume].state == "VOLUME_STATE_ATTACHED"
    end))

    client:delete("pod/staging-mongo-0", {wait = true, timeout = 30})
    assert.is_true(px:delete(staging))
    assert.is_false(client:exists("pvc/staging"))
    assert.truthy(support.wait_for(10, function() return M.px_volumes(client)[staging.volume] == nil end))
    assert.is_true(px:delete(snap))
    assert.truthy(support.wait_for(10, function() return M.px_volumes(client)[snap.id] == nil end))
    assert.is_truthy(M.px_volumes(client)[prod.id], "production is untouched")
  end)

  it("runs the thaw even when the snapshot fails", function()
    opts.fail_snapshot(client, ns)
    local err = support.raised(px.snapshot, px, {volume = {namespace = ns, pvc = "data"}, name = "doomed",
                                                 freeze = {pod = "mongo-0", argv = M.FREEZE},
                                                 thaw = {pod = "mongo-0", argv = M.THAW}, timeout = 10})
    assert.is_true(errors.is(err), tostring(err))
    local calls = M.await_mongosh(client, ns, 2)
    assert.same({"db.fsyncLock()", "db.fsyncUnlock()"}, {calls[1].command[4], calls[2].command[4]})
  end)

  it("is idempotent on reruns", function()
    local prod = px:volume_for_pvc(ns, "data")
    local a = px:snapshot{volume = prod, name = "rerun", labels = {env = "stage"}}
    local b = px:snapshot{volume = prod, name = "rerun", labels = {env = "stage"}}
    assert.equal(a.id, b.id)
    local n = 0
    for _, v in pairs(M.px_volumes(client)) do
      if v.locator.name == "rerun" or (v.source and v.source.parent == prod.id and v.readonly) then n = n + 1 end
    end
    assert.equal(1, n)
    local r1 = px:restore_pvc{snapshot = a, namespace = ns, name = "staging"}
    local r2 = px:restore_pvc{snapshot = a, namespace = ns, name = "staging"}
    assert.equal(r1.volume, r2.volume)
    assert.is_true(px:delete(r1))
    assert.is_false(px:delete(r1))
    assert.is_true(px:delete(a))
    assert.is_false(px:delete(a))
  end)

  it("prunes the oldest snapshots beyond keep", function()
    local prod = px:volume_for_pvc(ns, "data")
    for i = 1, 4 do px:snapshot{volume = prod, name = "stage-" .. i, labels = {env = "stage"}} end
    px:snapshot{volume = prod, name = "keepme", labels = {env = "prod"}}
    local res = px:prune{labels = {env = "stage"}, keep = 2}
    local deleted = {}
    for _, s in ipairs(res.deleted) do deleted[#deleted + 1] = s.name end
    table.sort(deleted)
    assert.same({"stage-1", "stage-2"}, deleted)
    local left = {}
    for _, s in ipairs(px:snapshots{volume = prod}) do left[#left + 1] = s.name end
    table.sort(left)
    assert.same({"keepme", "stage-3", "stage-4"}, left)
  end)

  it("says the volume is at the snapshot limit and suggests prune", function()
    M.config(client, {snapshot_limit = 2})
    local prod = px:volume_for_pvc(ns, "data")
    px:snapshot{volume = prod, name = "one"}
    px:snapshot{volume = prod, name = "two"}
    local err = M.raised("snapshot_limit", px.snapshot, px, {volume = prod, name = "three", timeout = 10})
    assert.truthy(err.message:find("64", 1, true))
    assert.truthy(err.message:find("prune", 1, true))
    assert.equal(prod.id, err.volume)
  end)

  it("refuses an in-place restore of an attached volume", function()
    local prod = px:volume_for_pvc(ns, "data")
    local snap = px:snapshot{volume = prod, name = "before"}
    local err = M.raised("attached", px.restore, px, {volume = prod, snapshot = snap})
    assert.truthy(err.message:find("attached", 1, true))
    assert.truthy(err.message:find(prod.id, 1, true))
    if opts.in_place then
      client:delete("pod/mongo-0", {wait = true, timeout = 30})
      assert.truthy(support.wait_for(10, function() return px:volume(prod.id).state == "detached" end))
      local restored = px:restore{volume = prod, snapshot = snap}
      assert.equal(prod.id, restored.id)
    end
  end)
end

return M
