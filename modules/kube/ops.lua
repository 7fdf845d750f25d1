-- ops.lua: the read and write operations of kube.Client — get, exists, list,
-- create, replace, patch, delete, load — as methods added to the class
-- (`require("kube.ops")(Client)`). Server-side apply and ensure_namespace are
-- in kube.apply. Everything goes through client:_request and client:_resolve.
--
-- Conventions: objects in and out are plain tables (decoded JSON); every
-- write takes opts.dry_run = "server" (sent as dryRun=All); failures raise
-- Status-shaped error objects (code = the Status reason, e.g. "NotFound");
-- bad arguments raise "kube.<method>: ..." strings at the caller.
--
-- get raises NotFound like kubectl (use exists, or errors.is(err, "NotFound"));
-- delete can ignore a missing object with ignore_not_found.
local errors = require("errors")
local json = require("json")
local task = require("task")

local manifest = require("kube.manifest")

local DELETE_POLL = 0.5 -- seconds between GETs when waiting for a deletion without the wait extension

local function argerror(method, msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info or not info.source:match("^@modules/kube/") then break end
    level = level + 1
  end
  error(("kube.%s: %s"):format(method, msg), level)
end

local function check_opts(method, opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(method, "opts must be a table") end
  if opts.dry_run ~= nil and opts.dry_run ~= "server" and opts.dry_run ~= false then
    argerror(method, "dry_run must be \"server\" (client-side dry runs are `ferry run --dry-run`)")
  end
  return opts
end

local function check_object(method, obj)
  if type(obj) ~= "table" or type(obj.kind) ~= "string" then
    argerror(method, "expected an object table with apiVersion, kind and metadata")
  end
end

local function copy_object(obj)
  local out = {}
  for k, v in pairs(obj) do out[k] = v end
  local meta = {}
  for k, v in pairs(type(obj.metadata) == "table" and obj.metadata or {}) do meta[k] = v end
  out.metadata = meta
  return out
end

-- A selector from a string, or from a table {key = value} (sorted, ANDed).
local function selector(method, name, v)
  if v == nil or type(v) == "string" then return v end
  if type(v) ~= "table" then argerror(method, name .. " must be a string or a table of key = value") end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = ("%s=%s"):format(k, tostring(v[k])) end
  return table.concat(parts, ",")
end

-- The object descriptor of a resolved reference, as the wait extension takes it.
local function descriptor(r, uid)
  return {apiVersion = r.api_version, kind = r.kind, metadata = {name = r.name, namespace = r.namespace, uid = uid}}
end

return function(Client)
  local function resolve_named(self, method, res, opts)
    local r = self:_resolve(res, opts.namespace)
    if not r.name then argerror(method, "the resource needs a name, like \"deployment/web\"") end
    return r
  end

  ---The object, or raises NotFound (a Status-shaped error object).
  function Client:get(res, opts)
    opts = check_opts("get", opts)
    local r = resolve_named(self, "get", res, opts)
    return (self:_request{path = r.path})
  end

  ---Whether the object exists.
  function Client:exists(res, opts)
    opts = check_opts("exists", opts)
    local r = resolve_named(self, "exists", res, opts)
    local ok, err = pcall(self._request, self, {path = r.path})
    if ok then return true end
    if errors.is(err, "NotFound") then return false end
    error(err, 0)
  end

  ---Every item of a collection, all pages; items get kind and apiVersion.
  ---Returns the items and the list's metadata (resourceVersion).
  function Client:list(res, opts)
    opts = check_opts("list", opts)
    local r = self:_resolve(res, opts.namespace)
    local path = opts.all_namespaces and r.all_namespaces or r.collection
    local limit = opts.limit or 500
    if math.type(limit) ~= "integer" or limit < 1 then argerror("list", "limit must be a positive integer") end
    local query = {
      labelSelector = selector("list", "label_selector", opts.label_selector),
      fieldSelector = selector("list", "field_selector", opts.field_selector),
      limit = limit,
    }
    local items = json.array()
    local meta
    local restarts = 0
    while true do
      local ok, page = pcall(self._request, self, {path = path, query = query})
      if not ok then
        -- an expired continue token: start the list again, as client-go's pager does
        if query.continue and errors.is(page, "Expired") and restarts < 2 then
          restarts = restarts + 1
          query.continue, items = nil, json.array()
        else
          error(page, 0)
        end
      else
        local kind = type(page.kind) == "string" and page.kind:gsub("List$", "") or r.kind
        for _, item in ipairs(type(page.items) == "table" and page.items or {}) do
          if item.kind == nil then item.kind = kind end
          if item.apiVersion == nil then item.apiVersion = page.apiVersion or r.api_version end
          items[#items + 1] = item
        end
        meta = type(page.metadata) == "table" and page.metadata or {}
        local cont = meta.continue
        if type(cont) ~= "string" or cont == "" then break end
        query.continue = cont
      end
    end
    meta.continue = nil
    return items, meta
  end

  ---Creates the object (POST); returns it as stored. Not retried on 5xx.
  function Client:create(obj, opts)
    opts = check_opts("create", opts)
    check_object("create", obj)
    local r = self:_resolve(obj, opts.namespace)
    return (self:_request{method = "POST", path = r.collection, body = obj, dry_run = opts.dry_run,
                          query = {fieldManager = opts.field_manager or "ferry"}})
  end

  ---Replaces the object (PUT with its resourceVersion). With a change function
  ---fn(current) → object or nil (change in place), reads, changes and writes;
  ---on 409 Conflict it reads again and re-applies the change (or the object,
  ---with the fresh resourceVersion), up to opts.attempts (5) times.
  function Client:replace(target, fn, opts)
    if type(fn) ~= "function" then fn, opts = nil, fn end
    opts = check_opts("replace", opts)
    if not fn then check_object("replace", target) end
    local r = resolve_named(self, "replace", target, opts)
    local attempts = opts.attempts or 5
    for attempt = 1, attempts do
      local body
      if fn then
        local current = self:_request{path = r.path}
        local changed = fn(current)
        body = changed == nil and current or changed
        if type(body) ~= "table" then argerror("replace", "the change function must return an object or nil") end
        body = copy_object(body)
        if body.metadata.resourceVersion == nil then
          body.metadata.resourceVersion = current.metadata.resourceVersion
        end
      else
        body = copy_object(target)
        if attempt > 1 or body.metadata.resourceVersion == nil then
          local current = self:_request{path = r.path}
          body.metadata.resourceVersion = current.metadata.resourceVersion
        end
      end
      local ok, res = pcall(self._request, self, {method = "PUT", path = r.path, body = body, dry_run = opts.dry_run,
                                                  query = {fieldManager = opts.field_manager or "ferry"}})
      if ok then return res end
      if not errors.is(res, "Conflict") or attempt == attempts then error(res, 0) end
    end
  end

  local PATCH_TYPES = {
    merge = "application/merge-patch+json",
    strategic = "application/strategic-merge-patch+json",
    json = "application/json-patch+json",
    apply = "application/apply-patch+yaml",
  }

  ---Patches the object: opts.type "merge" (default), "strategic", "json"
  ---(RFC 6902 list) or "apply"; patch is a table (sent as JSON) or a string.
  function Client:patch(res, patch, opts)
    opts = check_opts("patch", opts)
    local ptype = opts.type or "merge"
    local ctype = PATCH_TYPES[ptype]
    if not ctype then argerror("patch", "type must be merge, strategic, json or apply, got " .. tostring(ptype)) end
    if type(patch) ~= "table" and type(patch) ~= "string" then
      argerror("patch", "patch must be a table or a string")
    end
    if ptype == "json" and type(patch) == "table" then json.array(patch) end
    local r = resolve_named(self, "patch", res, opts)
    local query = {fieldManager = opts.field_manager or "ferry"}
    if ptype == "apply" and opts.force then query.force = "true" end
    return (self:_request{method = "PATCH", path = r.path, body = patch, content_type = ctype, query = query,
                          dry_run = opts.dry_run, retry = ptype ~= "json"})
  end

  -- Waits until the object is gone (404) or replaced (another uid).
  local function wait_deleted(self, r, uid, timeout)
    if self.wait then
      return self:wait(descriptor(r, uid), "deleted", {timeout = timeout})
    end
    local deadline = task.now() + timeout
    while true do
      local ok, obj = pcall(self._request, self, {path = r.path})
      if not ok then
        if errors.is(obj, "NotFound") then return end
        error(obj, 0)
      end
      if uid and type(obj.metadata) == "table" and obj.metadata.uid ~= uid then return end
      if task.now() >= deadline then
        error(errors.new{code = "timeout", status = nil, message = ("kube.delete: %s/%s still exists after %gs")
                         :format(r.resource, r.name, timeout), causes = json.array(), last = obj}, 0)
      end
      task.sleep(DELETE_POLL)
    end
  end

  ---Deletes the object with a DeleteOptions body. opts: propagation_policy
  ---("Background" default, "Foreground", "Orphan"), grace_period (seconds),
  ---preconditions {uid, resource_version}, ignore_not_found, wait (until gone;
  ---timeout seconds, default 300), dry_run. Returns the server's answer (the
  ---object, now with deletionTimestamp, or a Status), nil when ignored missing.
  function Client:delete(res, opts)
    opts = check_opts("delete", opts)
    local r = resolve_named(self, "delete", res, opts)
    local body = {kind = "DeleteOptions", apiVersion = "v1",
                  propagationPolicy = opts.propagation_policy or "Background"}
    if opts.grace_period ~= nil then
      if math.type(opts.grace_period) ~= "integer" or opts.grace_period < 0 then
        argerror("delete", "grace_period must be a whole number of seconds >= 0")
      end
      body.gracePeriodSeconds = opts.grace_period
    end
    if opts.preconditions then
      body.preconditions = {uid = opts.preconditions.uid, resourceVersion = opts.preconditions.resource_version}
    end
    if opts.dry_run then body.dryRun = {"All"} end
    local ok, out = pcall(self._request, self, {method = "DELETE", path = r.path, body = body, dry_run = opts.dry_run})
    if not ok then
      if opts.ignore_not_found and errors.is(out, "NotFound") then return nil end
      error(out, 0)
    end
    if opts.wait and not opts.dry_run then
      local uid
      if type(out) == "table" then
        uid = type(out.metadata) == "table" and out.metadata.uid or type(out.details) == "table" and out.details.uid
        if uid == json.null then uid = nil end
      end
      wait_deleted(self, r, uid, opts.timeout or 300)
    end
    return out
  end

  ---The objects of manifests (kube.manifests).
  function Client:load(source, vars) -- luacheck: ignore 212/self
    return manifest.load(source, vars)
  end
end
