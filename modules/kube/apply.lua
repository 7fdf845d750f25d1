-- apply.lua: server-side apply of one object or many, in dependency order,
-- and ensure_namespace — methods added to kube.Client
-- (`require("kube.apply")(Client)`).
--
-- apply sends PATCH with Content-Type application/apply-patch+yaml (the JSON
-- form of the object, which is YAML), fieldManager=ferry (opts.field_manager)
-- and force=true only when opts.force is set, as kubectl --server-side does.
-- An SSA conflict with another manager raises Conflict with the fields in
-- err.causes. Apply is idempotent, so it is retried like a PUT.
--
-- Order of a list: Namespaces, then CustomResourceDefinitions, then kinds
-- served by CRDs (groups that are not built into Kubernetes: snapshots,
-- STORK...), then built-in kinds in Helm's install order (ServiceAccounts,
-- Secrets, ConfigMaps, storage, RBAC, Services, workloads, ...); objects of
-- equal rank keep their input order. After a CRD is applied, an object of its
-- kind may not be mapped yet: discovery is retried until opts.crd_timeout
-- (30 s) while the CRD becomes established.
local errors = require("errors")
local json = require("json")
local task = require("task")

local manifest = require("kube.manifest")

local CRD_POLL = 0.5 -- seconds between discovery refreshes while a new CRD is being established

local BUILTIN_GROUPS = {}
for _, g in ipairs({"", "apps", "batch", "autoscaling", "policy", "extensions", "networking.k8s.io",
                    "rbac.authorization.k8s.io", "storage.k8s.io", "apiextensions.k8s.io",
                    "admissionregistration.k8s.io", "apiregistration.k8s.io", "scheduling.k8s.io",
                    "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io", "events.k8s.io",
                    "flowcontrol.apiserver.k8s.io", "certificates.k8s.io", "authentication.k8s.io",
                    "authorization.k8s.io", "resource.k8s.io", "internal.apiserver.k8s.io",
                    "storagemigration.k8s.io"}) do
  BUILTIN_GROUPS[g] = true
end

-- Helm's install order for built-in kinds (helm pkg/releaseutil/kind_sorter.go).
local INSTALL_ORDER = {
  "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount",
  "Secret", "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim", "ClusterRole",
  "ClusterRoleBinding", "Role", "RoleBinding", "Service", "DaemonSet", "Pod", "ReplicationController",
  "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass",
  "Ingress", "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
}
local RANK = {Namespace = 1, CustomResourceDefinition = 2}
for i, kind in ipairs(INSTALL_ORDER) do RANK[kind] = 10 + i end
local CRD_BACKED = 3
local OTHER = 100

local function group_of(obj)
  local api = type(obj.apiVersion) == "string" and obj.apiVersion or ""
  return api:match("^(.+)/[^/]+$") or ""
end

---The apply rank of an object: lower goes first.
local function rank(obj)
  local r = RANK[obj.kind]
  if r and BUILTIN_GROUPS[group_of(obj)] then return r end
  if not BUILTIN_GROUPS[group_of(obj)] then return CRD_BACKED end
  return OTHER
end

local function argerror(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info or not info.source:match("^@modules/kube/") then break end
    level = level + 1
  end
  error("kube.apply: " .. msg, level)
end

return function(Client)
  -- Resolves obj; after CRDs were applied in this call, a miss is retried
  -- (re-discovering) until the deadline.
  local function resolve(self, obj, namespace, crd_deadline)
    while true do
      local ok, r = pcall(self._resolve, self, obj, namespace)
      if ok then return r end
      if not (crd_deadline and errors.is(r, "no_match") and task.now() < crd_deadline) then error(r, 0) end
      task.sleep(CRD_POLL)
      self._discovery:refresh()
    end
  end

  local function apply_one(self, obj, opts, crd_deadline)
    local r = resolve(self, obj, opts.namespace, crd_deadline)
    if not r.name then argerror(("%s has no metadata.name"):format(obj.kind)) end
    local query = {fieldManager = opts.field_manager or "ferry"}
    if opts.force then query.force = "true" end
    local body = obj
    if type(obj.metadata) == "table" and obj.metadata.managedFields ~= nil then
      -- an object read back from the server: apply refuses managedFields
      body = {}
      for k, v in pairs(obj) do body[k] = v end
      body.metadata = {}
      for k, v in pairs(obj.metadata) do body.metadata[k] = v end
      body.metadata.managedFields = nil
    end
    return (self:_request{method = "PATCH", path = r.path, body = body, content_type = "application/apply-patch+yaml",
                          query = query, dry_run = opts.dry_run, retry = true})
  end

  ---Server-side apply of an object, a list of objects, or manifests (a path
  ---or YAML text, with opts.vars). Returns the applied object, or the list of
  ---them in input order. opts: force, field_manager, namespace, dry_run,
  ---vars, crd_timeout.
  function Client:apply(objects, opts)
    if opts ~= nil and type(opts) ~= "table" then argerror("opts must be a table") end
    opts = opts or {}
    if opts.dry_run ~= nil and opts.dry_run ~= "server" and opts.dry_run ~= false then
      argerror("dry_run must be \"server\"")
    end
    local single = false
    if type(objects) == "string" then
      objects = manifest.load(objects, opts.vars)
    elseif type(objects) == "table" and objects.kind ~= nil then
      single, objects = true, {objects}
    elseif type(objects) ~= "table" then
      argerror("expected an object, a list of objects, a manifest path or YAML text")
    end
    local order = {}
    for i, obj in ipairs(objects) do
      if type(obj) ~= "table" or type(obj.kind) ~= "string" or type(obj.apiVersion) ~= "string" then
        argerror(("item %d: an object needs apiVersion and kind"):format(i))
      end
      order[i] = {obj = obj, index = i, rank = rank(obj)}
    end
    table.sort(order, function(a, b)
      if a.rank ~= b.rank then return a.rank < b.rank end
      return a.index < b.index
    end)
    local results = json.array()
    local crd_deadline
    for _, item in ipairs(order) do
      results[item.index] = apply_one(self, item.obj, opts, crd_deadline)
      if item.obj.kind == "CustomResourceDefinition" and not opts.dry_run then
        crd_deadline = task.now() + (opts.crd_timeout or 30)
      end
    end
    if single then return results[1] end
    return results
  end

  ---Creates the namespace with these labels, or merges the labels into an
  ---existing one; waits out a Terminating namespace of the same name first
  ---(opts.timeout, default 120 s). Idempotent. Returns the Namespace.
  function Client:ensure_namespace(name, labels, opts)
    if type(name) ~= "string" or name == "" then argerror("ensure_namespace: name must be a non-empty string") end
    if labels ~= nil and type(labels) ~= "table" then argerror("ensure_namespace: labels must be a table") end
    opts = opts or {}
    local want = {}
    for k, v in pairs(labels or {}) do want[k] = tostring(v) end
    local path = "/api/v1/namespaces/" .. name
    local deadline = task.now() + (opts.timeout or 120)
    while true do
      local ok, ns = pcall(self._request, self, {path = path})
      if not ok and not errors.is(ns, "NotFound") then error(ns, 0) end
      if not ok then
        local body = {apiVersion = "v1", kind = "Namespace", metadata = {name = name}}
        if next(want) then body.metadata.labels = want end
        local created, res = pcall(self._request, self, {method = "POST", path = "/api/v1/namespaces", body = body,
                                                         dry_run = opts.dry_run, query = {fieldManager = "ferry"}})
        if created then return res end
        if not errors.is(res, "AlreadyExists") then error(res, 0) end
      elseif type(ns.status) == "table" and ns.status.phase == "Terminating" then
        if task.now() >= deadline then
          error(errors.new{code = "timeout", message = ("kube.ensure_namespace: namespace %s is still Terminating")
                           :format(name), causes = json.array(), last = ns}, 0)
        end
        if self.wait then
          self:wait({apiVersion = "v1", kind = "Namespace", metadata = {name = name}}, "deleted",
                    {timeout = math.max(deadline - task.now(), 0.001)})
        else
          task.sleep(CRD_POLL)
        end
      else
        local have = type(ns.metadata) == "table" and type(ns.metadata.labels) == "table" and ns.metadata.labels or {}
        local missing = false
        for k, v in pairs(want) do
          if have[k] ~= v then missing = true end
        end
        if not missing then return ns end
        return (self:_request{method = "PATCH", path = path, body = {metadata = {labels = want}},
                              content_type = "application/merge-patch+json", dry_run = opts.dry_run,
                              query = {fieldManager = "ferry"}, retry = true})
      end
    end
  end
end
