-- kube_ops_spec.lua: the kube client's operations against the loopback
-- Kubernetes double (tests/doubles/kube, HTTPS, started by tests/run with
-- KUBECONFIG pointing at it): discovery-based mapping (both VolumeSnapshot
-- groups), get/list/create/replace/apply/patch/delete/ensure_namespace, server
-- dry runs, retries under the double's injected faults (/_ferry/faults), 403
-- and other Status errors, and manifests with ${VAR} substitution. What the
-- client sent is checked in the double's request log (/_ferry/requests).
-- Warning headers come from the plain https double (/headers), which can send
-- any header.
local errors = require("errors")
local json = require("json")
local kube = require("kube")
local log = require("log")
local support = require("support")

local HTTPS = os.getenv("FERRY_TEST_HTTPS")
local CERTS = os.getenv("FERRY_TEST_CERTS")

describe("kube operations", function()
  local client, ns, tmp
  local serial = 0

  -- A control call to the double (admin credentials: the kubeconfig's user).
  local function control(method, path, body)
    return (client:_request{method = method, path = "/_ferry/" .. path, body = body, retry = false})
  end

  local function fault(spec) control("POST", "faults", spec) end

  -- The requests the double logged for this namespace (or matching query) since the last reset.
  local function requests(query)
    local out = {}
    for _, r in ipairs(client:_request{path = "/_ferry/requests", query = query}.requests) do
      if not query.namespace or r.namespace == query.namespace then out[#out + 1] = r end
    end
    return out
  end

  local function configmap(name, data, labels)
    return {apiVersion = "v1", kind = "ConfigMap", metadata = {name = name, namespace = ns, labels = labels},
            data = data or {}}
  end

  before_each(function()
    tmp = support.make_tmpdir()
    client = kube.connect()
    control("POST", "reset", {})
    serial = serial + 1
    ns = ("ops-%d-%d"):format(os.time() % 100000, serial)
    client:ensure_namespace(ns)
    client.namespace = ns
  end)

  after_each(function()
    support.remove_tree(tmp)
  end)

  describe("mapping", function()
    it("maps kinds, plurals, short names and group-qualified names through discovery", function()
      local cases = {
        ["deployment/web"] = "/apis/apps/v1/namespaces/%s/deployments/web",
        ["deploy/web"] = "/apis/apps/v1/namespaces/%s/deployments/web",
        ["Deployment/web"] = "/apis/apps/v1/namespaces/%s/deployments/web",
        ["deployments.apps/web"] = "/apis/apps/v1/namespaces/%s/deployments/web",
        ["deployments.v1.apps/web"] = "/apis/apps/v1/namespaces/%s/deployments/web",
        ["pvc/data"] = "/api/v1/namespaces/%s/persistentvolumeclaims/data",
        ["namespace/x"] = "/api/v1/namespaces/x",
        ["pv/vol"] = "/api/v1/persistentvolumes/vol",
        ["job.batch/j"] = "/apis/batch/v1/namespaces/%s/jobs/j",
      }
      for res, path in pairs(cases) do
        assert.equal(path:format(ns), client:_resolve(res).path, res)
      end
      local r = client:_resolve({apiVersion = "apps/v1", kind = "StatefulSet",
                                 metadata = {name = "db", namespace = "o"}})
      assert.same({"/apis/apps/v1/namespaces/o/statefulsets/db", "statefulsets", true, "apps/v1"},
                  {r.path, r.resource, r.namespaced, r.api_version})
      r = client:_resolve({kind = "Pod", name = "p"}, "given")
      assert.equal("/api/v1/namespaces/given/pods/p", r.path)
      assert.equal("/api/v1/namespaces/" .. ns .. "/configmaps", client:_resolve("configmaps").collection)
    end)

    it("keeps both VolumeSnapshot groups apart and calls a bare volumesnapshot ambiguous", function()
      local csi = client:_resolve("volumesnapshot.snapshot.storage.k8s.io/snap")
      assert.equal(("/apis/snapshot.storage.k8s.io/v1/namespaces/%s/volumesnapshots/snap"):format(ns), csi.path)
      local stork = client:_resolve({apiVersion = "volumesnapshot.external-storage.k8s.io/v1", kind = "VolumeSnapshot",
                                     metadata = {name = "snap"}})
      assert.equal(("/apis/volumesnapshot.external-storage.k8s.io/v1/namespaces/%s/volumesnapshots/snap"):format(ns),
                   stork.path)
      local err = support.raised(client._resolve, client, "volumesnapshot/snap")
      assert.is_true(errors.is(err, "ambiguous"), tostring(err))
      assert.truthy(support.contains(err.message, "volumesnapshots.snapshot.storage.k8s.io"), err.message)
      assert.truthy(support.contains(err.message, "volumesnapshots.volumesnapshot.external-storage.k8s.io"),
                    err.message)
    end)

    it("re-discovers once when a kind is missing, then reports no match", function()
      local function discoveries()
        local n = 0
        for _, r in ipairs(requests({})) do
          if r.path == "/api" then n = n + 1 end
        end
        return n
      end
      client:_resolve("pods")
      client:_resolve("deployment/web")
      assert.equal(1, discoveries()) -- cached per client
      local err = support.raised(client._resolve, client, "widgets.example.com/w")
      assert.is_true(errors.is(err, "no_match"), tostring(err))
      assert.truthy(support.contains(err.message, 'the server doesn\'t have a resource type "widgets.example.com"'),
                    err.message)
      assert.equal(2, discoveries()) -- one re-discovery for the miss, no more
      err = support.raised(client._resolve, client, {apiVersion = "apps/v2", kind = "Deployment", name = "x"})
      assert.truthy(support.contains(err.message, 'no matches for kind "Deployment" in version "apps/v2"'), err.message)
    end)

    it("finds a CRD installed after the first discovery", function()
      client:_resolve("pods")
      client:apply({
        apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
        metadata = {name = "widgets.example.com"},
        spec = {group = "example.com", scope = "Namespaced",
                names = {plural = "widgets", singular = "widget", kind = "Widget", shortNames = {"wd"}},
                versions = {{name = "v1", served = true, storage = true,
                             schema = {openAPIV3Schema = {type = "object",
                                                          ["x-kubernetes-preserve-unknown-fields"] = true}}}}},
      })
      assert.truthy(support.wait_for(10, function()
        local ok, r = pcall(client._resolve, client, "wd/w1")
        return ok and r.path == ("/apis/example.com/v1/namespaces/%s/widgets/w1"):format(ns)
      end))
    end)
  end)

  describe("reads", function()
    it("gets an object, and raises NotFound with the Status fields for a missing one", function()
      client:create(configmap("settings", {mode = "fast"}))
      assert.equal("fast", client:get("configmap/settings").data.mode)
      local by_object = client:get({kind = "ConfigMap", apiVersion = "v1", metadata = {name = "settings"}})
      assert.equal("fast", by_object.data.mode)
      local err = support.raised(client.get, client, "configmap/absent")
      assert.is_true(errors.is(err, "NotFound"))
      assert.equal(404, err.status)
      assert.equal("NotFound", err.reason)
      assert.truthy(support.contains(err.message, 'configmaps "absent" not found'), err.message)
      assert.truthy(support.contains(tostring(err), "[NotFound, HTTP 404]"), tostring(err))
      assert.is_true(client:exists("configmap/settings"))
      assert.is_false(client:exists("configmap/absent"))
    end)

    it("lists every page with selectors, giving items their kind and apiVersion", function()
      for i = 1, 7 do client:create(configmap("cm-" .. i, {}, {app = i <= 5 and "web" or "db", n = tostring(i)})) end
      local items, meta = client:list("configmaps", {label_selector = {app = "web"}, limit = 2})
      assert.equal(5, #items)
      assert.is_string(meta.resourceVersion)
      for _, item in ipairs(items) do
        assert.same({"ConfigMap", "v1", "web"}, {item.kind, item.apiVersion, item.metadata.labels.app})
      end
      local pages = requests({verb = "list", namespace = ns, resource = "configmaps"})
      assert.equal(3, #pages)
      assert.truthy(support.contains(json.encode(pages[2].query), "continue"), json.encode(pages[2].query))
      assert.equal(2, #client:list("cm", {label_selector = "app in (db)"}))
      items = client:list("configmaps", {field_selector = "metadata.name=cm-3"})
      assert.same({"cm-3"}, {items[1].metadata.name, items[2]})
      assert.equal(0, #client:list("configmaps", {label_selector = "app=none"}))
      assert.truthy(#client:list("namespaces") >= 2)
      assert.truthy(#client:list("configmaps", {all_namespaces = true}) >= 7)
    end)

    it("restarts a list whose continue token expired", function()
      for i = 1, 4 do client:create(configmap("cm-" .. i)) end
      fault{kind = "expired", verb = "list", resource = "configmaps", namespace = ns, skip = 1}
      local items = client:list("configmaps", {limit = 2})
      assert.equal(4, #items)
    end)
  end)

  describe("writes", function()
    it("creates objects, refuses duplicates with AlreadyExists and persists nothing on a server dry run", function()
      local cm = client:create(configmap("made", {a = "1"}))
      assert.is_string(cm.metadata.uid)
      assert.is_string(cm.metadata.resourceVersion)
      local err = support.raised(client.create, client, configmap("made"))
      assert.is_true(errors.is(err, "AlreadyExists"), tostring(err))
      assert.equal(409, err.status)
      local dry = client:create(configmap("dry"), {dry_run = "server"})
      assert.equal("dry", dry.metadata.name)
      assert.is_false(client:exists("configmap/dry"))
      local logged = requests({verb = "create", namespace = ns, resource = "configmaps"})
      assert.is_true(logged[#logged].dry_run)
    end)

    it("surfaces validation failures as Invalid with causes", function()
      local err = support.raised(client.create, client, {apiVersion = "v1", kind = "ConfigMap",
                                                         metadata = {name = "Bad_Name"}})
      assert.is_true(errors.is(err, "Invalid"), tostring(err))
      assert.equal(422, err.status)
      assert.truthy(#err.causes >= 1)
      assert.equal("metadata.name", err.causes[1].field)
    end)

    it("replaces with a change function, re-reading and re-applying it after a 409 Conflict", function()
      client:create(configmap("counter", {n = "0"}))
      local calls = 0
      local out = client:replace("configmap/counter", function(cm)
        calls = calls + 1
        if calls == 1 then -- someone else writes in between: our PUT carries a stale resourceVersion
          client:patch("configmap/counter", {data = {other = "x"}})
        end
        cm.data.n = tostring(tonumber(cm.data.n) + 1)
      end)
      assert.equal(2, calls)
      assert.same({"1", "x"}, {out.data.n, out.data.other})
      local puts = requests({verb = "update", namespace = ns, resource = "configmaps"})
      assert.same({409, 200}, {puts[1].status, puts[2].status})
    end)

    it("replaces an object, taking the fresh resourceVersion after a conflict", function()
      local cm = client:create(configmap("whole", {v = "1"}))
      client:patch("configmap/whole", {data = {v = "2"}})
      cm.data.v = "3"
      local out = client:replace(cm)
      assert.equal("3", out.data.v)
      assert.equal("3", client:get("configmap/whole").data.v)
    end)

    it("applies server-side as field manager ferry, with force and dry run", function()
      local obj = configmap("applied", {a = "1"})
      local out = client:apply(obj)
      assert.equal("1", out.data.a)
      local managers = {}
      for _, m in ipairs(out.metadata.managedFields or {}) do managers[m.manager] = m.operation end
      assert.equal("Apply", managers.ferry)
      obj.data.a = "2"
      client:apply(obj, {dry_run = "server"})
      assert.equal("1", client:get("configmap/applied").data.a)
      fault{kind = "apply_conflict", verb = "patch", resource = "configmaps", namespace = ns,
            fields = {".data.a"}, manager = "kubectl-client-side-apply"}
      local err = support.raised(client.apply, client, obj)
      assert.is_true(errors.is(err, "Conflict"), tostring(err))
      assert.equal("FieldManagerConflict", err.causes[1].reason)
      assert.equal(".data.a", err.causes[1].field)
      client:apply(obj, {force = true})
      assert.equal("2", client:get("configmap/applied").data.a)
      local patches = requests({verb = "patch", namespace = ns, resource = "configmaps"})
      local last = patches[#patches]
      assert.same({"application/apply-patch+yaml", "ferry"}, {last.content_type, last.field_manager})
      assert.truthy(support.contains(json.encode(last.query), "force"), json.encode(last.query))
      assert.is_true(patches[2].dry_run)
    end)

    it("applies a list in dependency order: namespace, CRD, CRD-backed kinds, then the rest", function()
      local target = ns .. "-app"
      local objs = kube.manifests([[
apiVersion: v1
kind: ConfigMap
metadata: {name: conf, namespace: ${NS}}
data: {key: value}
---
apiVersion: gadgets.example.com/v1
kind: Gadget
metadata: {name: g1, namespace: ${NS}}
spec: {size: 3}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.gadgets.example.com}
spec:
  group: gadgets.example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
]], {NS = target})
      local out = client:apply(objs)
      assert.same({"ConfigMap", "Gadget", "CustomResourceDefinition", "Namespace"},
                  {out[1].kind, out[2].kind, out[3].kind, out[4].kind})
      local order = {}
      for _, r in ipairs(requests({verb = "patch"})) do order[#order + 1] = r.resource end
      assert.same({"namespaces", "customresourcedefinitions.apiextensions.k8s.io", "gadgets.gadgets.example.com",
                   "configmaps"}, order)
      assert.equal(3, client:get("gadget/g1", {namespace = target}).spec.size)
    end)

    it("patches with merge, strategic-merge, JSON and apply patches", function()
      client:create(configmap("p", {a = "1", b = "2"}))
      assert.same({a = "1", c = "3"}, client:patch("configmap/p", {data = {b = json.null, c = "3"}}).data)
      local out = client:patch("configmap/p", {{op = "replace", path = "/data/a", value = "9"}}, {type = "json"})
      assert.equal("9", out.data.a)
      out = client:patch("configmap/p", '{"metadata":{"labels":{"tier":"db"}}}', {type = "strategic"})
      assert.equal("db", out.metadata.labels.tier)
      out = client:patch("configmap/p", {apiVersion = "v1", kind = "ConfigMap", metadata = {name = "p"},
                                         data = {d = "4"}}, {type = "apply", field_manager = "patcher"})
      assert.equal("4", out.data.d)
      local types = {}
      for _, r in ipairs(requests({verb = "patch", namespace = ns})) do types[#types + 1] = r.content_type end
      assert.same({"application/merge-patch+json", "application/json-patch+json",
                   "application/strategic-merge-patch+json", "application/apply-patch+yaml"}, types)
      -- a failing "test" operation refuses the whole patch, the "replace" after it included
      local err = support.raised(client.patch, client, "configmap/p", {{op = "test", path = "/data/a", value = "0"},
                                                                       {op = "replace", path = "/data/a", value = "0"}},
                                 {type = "json"})
      assert.is_true(errors.is(err, "Invalid"), tostring(err))
      assert.equal(422, err.status)
      assert.equal("9", client:get("configmap/p").data.a)
    end)

    it("deletes with options, ignores a missing object on request, and waits until it is gone", function()
      client:create(configmap("gone"))
      client:delete("configmap/gone", {propagation_policy = "Foreground", grace_period = 5})
      local del = requests({verb = "delete", namespace = ns})[1]
      assert.is_not_nil(del)
      assert.is_false(client:exists("configmap/gone"))
      assert.is_nil(client:delete("configmap/gone", {ignore_not_found = true}))
      assert.is_true(errors.is(support.raised(client.delete, client, "configmap/gone"), "NotFound"))
      client:create(configmap("kept"))
      client:delete("configmap/kept", {dry_run = "server"})
      assert.is_true(client:exists("configmap/kept"))
      -- a finalizer keeps the object until someone removes it; wait = true returns only then
      client:create({apiVersion = "v1", kind = "ConfigMap",
                     metadata = {name = "held", finalizers = {"example.com/hold"}}})
      local released = false
      local task = require("task")
      local t = task.spawn(function()
        task.sleep(0.3)
        released = true
        client:patch("configmap/held", {metadata = {finalizers = json.null}})
      end)
      client:delete("configmap/held", {wait = true, timeout = 20})
      assert.is_true(released)
      assert.is_false(client:exists("configmap/held"))
      task.wait(t)
    end)

    it("waits for a deletion by polling when the wait extension is absent, and times out with the object", function()
      client.wait = false -- as if kube.wait were not embedded
      client:create({apiVersion = "v1", kind = "ConfigMap",
                     metadata = {name = "stuck", finalizers = {"example.com/hold"}}})
      local err = support.raised(client.delete, client, "configmap/stuck", {wait = true, timeout = 0.6})
      assert.is_true(errors.is(err, "timeout"), tostring(err))
      assert.is_string(err.last.metadata.deletionTimestamp)
      local task = require("task")
      local t = task.spawn(function()
        task.sleep(0.3)
        client:patch("configmap/stuck", {metadata = {finalizers = json.null}})
      end)
      client:delete("configmap/stuck", {wait = true, timeout = 20})
      assert.is_false(client:exists("configmap/stuck"))
      task.wait(t)
    end)

    it("ensures a namespace idempotently, merging labels", function()
      local name = ns .. "-ensure"
      local first = client:ensure_namespace(name, {team = "data"})
      assert.equal("data", first.metadata.labels.team)
      local again = client:ensure_namespace(name, {team = "data"})
      assert.equal(first.metadata.uid, again.metadata.uid)
      local more = client:ensure_namespace(name, {env = "staging"})
      assert.same({"data", "staging"}, {more.metadata.labels.team, more.metadata.labels.env})
      assert.equal(first.metadata.uid, more.metadata.uid)
    end)

    it("waits out a Terminating namespace before creating it again", function()
      local name = ns .. "-term"
      local first = client:ensure_namespace(name)
      control("POST", "config", {namespace_delay = 0.5})
      client:delete("namespace/" .. name)
      assert.equal("Terminating", client:get("namespace/" .. name).status.phase)
      local again = client:ensure_namespace(name, {}, {timeout = 20})
      assert.are_not.equal(first.metadata.uid, again.metadata.uid)
    end)
  end)

  describe("errors and retries", function()
    it("surfaces 403 Forbidden as a Status error", function()
      client:create(configmap("guarded"))
      local limited = kube.connect{context = "ferry-limited", namespace = ns}
      assert.equal("guarded", limited:get("configmap/guarded").metadata.name)
      local err = support.raised(limited.delete, limited, "configmap/guarded")
      assert.is_true(errors.is(err, "Forbidden"), tostring(err))
      assert.equal(403, err.status)
      assert.truthy(support.contains(err.message, "ferry-limited"), err.message)
    end)

    it("retries 429 honouring Retry-After, 5xx and dropped connections on reads", function()
      client:create(configmap("r"))
      fault{kind = "throttle", verb = "get", resource = "configmaps", namespace = ns, retry_after = 1}
      -- faults are taken in order, one per request: 429, then 503, then a dropped connection
      fault{kind = "error", status = 503, verb = "get", resource = "configmaps", namespace = ns}
      fault{kind = "drop", verb = "get", resource = "configmaps", namespace = ns}
      assert.equal("r", client:get("configmap/r").metadata.name)
      local gets = requests({verb = "get", namespace = ns, resource = "configmaps"})
      local statuses = {}
      for _, g in ipairs(gets) do statuses[#statuses + 1] = type(g.fault) == "string" and g.fault or "-" end
      assert.same({"throttle", "error", "drop", "-"}, statuses) -- one retry per fault, then the answer
      -- the server's own clock: the gap it saw between the 429 and the retry
      local gap = gets[2].monotonic - gets[1].monotonic
      assert.truthy(gap >= 0.9, ("Retry-After: 1 was not honoured: retried after %.3f s"):format(gap))
    end)

    it("does not retry a create on 500, but does on 429", function()
      fault{kind = "error", status = 500, verb = "create", resource = "configmaps", namespace = ns}
      local err = support.raised(client.create, client, configmap("once"))
      assert.is_true(errors.is(err, "InternalError"), tostring(err))
      assert.equal(1, #requests({verb = "create", namespace = ns, resource = "configmaps"}))
      fault{kind = "throttle", verb = "create", resource = "configmaps", namespace = ns, retry_after = 0}
      assert.equal("twice", client:create(configmap("twice")).metadata.name)
    end)

    it("gives up after max_retries with the last Status", function()
      client.max_retries = 2
      fault{kind = "error", status = 503, verb = "get", resource = "configmaps", namespace = ns, count = -1,
            retry_after = 0}
      local err = support.raised(client.get, client, "configmap/any")
      assert.is_true(errors.is(err, "ServiceUnavailable"), tostring(err))
      assert.is_true(err.retryable)
      assert.equal(3, #requests({verb = "get", namespace = ns, resource = "configmaps"}))
    end)

    it("logs Warning response headers", function()
      local warned = {}
      local original = log.warn
      log.warn = function(fmt, ...) warned[#warned + 1] = fmt:format(...) end
      local ok, err = pcall(function()
        local path = tmp .. "/https.yaml"
        support.write(path, json.encode{
          ["current-context"] = "h",
          clusters = {{name = "h", cluster = {server = HTTPS, ["certificate-authority"] = CERTS .. "/ca.pem"}}},
          contexts = {{name = "h", context = {cluster = "h"}}},
        })
        local h = kube.connect{kubeconfig = path}
        h:_request{path = "/headers", query = {Warning = {'299 - "apps/v1beta1 is deprecated, use apps/v1"',
                                                          '299 - "unknown field \\"spec.x\\""'}},
                   accept = "text/plain"}
      end)
      log.warn = original
      assert.is_true(ok, tostring(err))
      assert.equal(2, #warned, table.concat(warned, "\n"))
      assert.truthy(support.contains(warned[1], "apps/v1beta1 is deprecated, use apps/v1"), warned[1])
      assert.truthy(support.contains(warned[2], 'unknown field "spec.x"'), warned[2])
    end)
  end)

  describe("manifests", function()
    it("loads multi-document YAML with ${VAR} substitution, $${ escapes and List expansion", function()
      local objs = kube.manifests([[
# ${NOT_A_VAR} in a comment is left alone
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: "${NAME}-a"}, data: {literal: "$${KEEP}"}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: "${NAME}-b"}}
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: ${REPLICAS}}
]], {NAME = "app", REPLICAS = 3})
      assert.equal(3, #objs)
      assert.same({"app-a", "app-b", "web"}, {objs[1].metadata.name, objs[2].metadata.name, objs[3].metadata.name})
      assert.equal("${KEEP}", objs[1].data.literal)
      assert.equal(3, objs[3].spec.replicas)
    end)

    it("names an undefined variable with its file and line", function()
      local path = tmp .. "/app.yaml"
      support.write(path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${NAME}\n  namespace: ${NAMESPACE}\n")
      local err = support.raised(kube.manifests, path, {NAME = "x"})
      assert.is_true(errors.is(err, "manifest"), tostring(err))
      assert.truthy(support.contains(err.message, path), err.message)
      assert.truthy(support.contains(err.message, "line 5"), err.message)
      assert.truthy(support.contains(err.message, "${NAMESPACE}"), err.message)
      err = support.raised(kube.manifests, {apiVersion = "v1", kind = "ConfigMap", metadata = {name = "${WHO}"}})
      assert.truthy(support.contains(err.message, "$.metadata.name: undefined variable ${WHO}"), err.message)
    end)

    it("substitutes in Lua tables and reads files and lists of sources", function()
      local path = tmp .. "/one.yml"
      support.write(path, "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: '${PW}'}\n")
      local objs = client:load({path, {apiVersion = "v1", kind = "ConfigMap", metadata = {name = "${N}"}}},
                               {PW = "hunter2", N = "cm"})
      assert.same({"hunter2", "cm"}, {objs[1].stringData.pw, objs[2].metadata.name})
      local err = support.raised(kube.manifests, tmp .. "/missing.yaml")
      assert.truthy(support.contains(err.message, "cannot read"), err.message)
      err = support.raised(kube.manifests, "kind: [unclosed\n")
      assert.truthy(support.contains(err.message, "input:"), err.message)
    end)

    it("applies a manifest file with vars in one call", function()
      local path = tmp .. "/cm.yaml"
      support.write(path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '${NAME}'}\ndata: {k: v}\n")
      local out = client:apply(path, {vars = {NAME = "from-file"}})
      assert.equal("from-file", out[1].metadata.name)
      assert.equal("v", client:get("configmap/from-file").data.k)
    end)
  end)
end)
