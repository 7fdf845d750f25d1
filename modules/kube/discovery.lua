-- discovery.lua: which URL a kind lives at, learned from the API server's
-- discovery documents (legacy /api, /apis, /api/v1, /apis/GROUP/VERSION),
-- never from guessed plurals. One cache per client, fetched on first use and
-- fetched again once when a lookup misses (a CRD installed meanwhile).
--
-- Names resolve as kubectl resolves them: a type matches a resource's plural,
-- singular, Kind (any case) or short name, optionally qualified by a group
-- ("deployments.apps", "volumesnapshot.snapshot.storage.k8s.io") or by
-- version.group ("deployments.v1.apps"). Within a group the preferred version
-- wins. When a bare name matches kinds in several groups, the core group wins
-- if it is one of them; otherwise the name is ambiguous and the error lists
-- the qualified names to choose from (CSI and STORK both have VolumeSnapshot).
-- An apiVersion plus kind matches exactly that group, version and Kind.
--
-- Lookup failures raise error objects: code "no_match" (nothing matches, even
-- after re-discovery) or "ambiguous".
local errors = require("errors")
local json = require("json")
local log = require("log")
local task = require("task")

local M = {}

M.concurrency = 8 -- group/version documents fetched at once

local function val(v) if v == json.null then return nil end return v end

---------------------------------------------------------------------------
-- Parsing resource references

local function bad(msg, level) error("kube: " .. msg, level or 4) end

---Splits a resource reference into {type?, kind?, api_version?, name?, namespace?}.
---Strings are "TYPE/NAME" or "TYPE"; tables are objects {apiVersion, kind,
---metadata = {name, namespace}} or {api_version?, kind, name?, namespace?}.
---@param resource string|table
---@return table
function M.parse(resource)
  if type(resource) == "string" then
    local t, name = resource:match("^([^/]+)/([^/]+)$")
    if not t then
      if resource:find("/", 1, true) or resource == "" then
        bad(("resource '%s' is not TYPE/NAME or TYPE"):format(resource))
      end
      t = resource
    end
    return {type = t, name = name}
  elseif type(resource) == "table" then
    local kind = val(resource.kind)
    if type(kind) ~= "string" or kind == "" then bad("a resource table needs a kind") end
    local meta = type(val(resource.metadata)) == "table" and resource.metadata or {}
    local name = val(meta.name) or val(resource.name)
    local ns = val(meta.namespace) or val(resource.namespace)
    local api = val(resource.apiVersion) or val(resource.api_version)
    if name ~= nil and (type(name) ~= "string" or name == "") then bad("metadata.name must be a non-empty string") end
    if ns ~= nil and (type(ns) ~= "string" or ns == "") then ns = nil end
    if api ~= nil and (type(api) ~= "string" or api == "") then bad("apiVersion must be a string like apps/v1") end
    return {kind = kind, api_version = api, name = name, namespace = ns}
  end
  bad(("a resource is a string like \"deployment/web\" or an object table, got %s"):format(type(resource)))
end

---------------------------------------------------------------------------
-- Fetching

local Discovery = {}
Discovery.__index = Discovery

---An empty cache for client (anything with :_request).
function M.new(client)
  return setmetatable({client = client, entries = nil, fetched_at = nil}, Discovery)
end

-- Fetches every group/version and builds the entry list, in priority order:
-- core first, then groups in discovery order, preferred version first.
function Discovery:refresh()
  if self.refreshing then
    -- another task is fetching: use its result rather than fetching twice
    while self.refreshing do task.sleep(0.005) end
    if self.entries then return self.entries end
  end
  self.refreshing = true
  local ok, entries = pcall(self._fetch, self)
  self.refreshing = false
  if not ok then error(entries, 0) end
  self.entries = entries
  self.fetched_at = task.now()
  return entries
end

function Discovery:_fetch()
  local client = self.client
  local gvs = {}
  local core = client:_request{path = "/api"}
  for i, v in ipairs(val(core.versions) or {}) do
    gvs[#gvs + 1] = {group = "", version = v, path = "/api/" .. v, rank = i}
  end
  local groups = client:_request{path = "/apis"}
  for gi, g in ipairs(val(groups.groups) or {}) do
    local preferred = type(g.preferredVersion) == "table" and g.preferredVersion.version or nil
    local list = {}
    for _, v in ipairs(val(g.versions) or {}) do
      list[#list + 1] = {group = g.name, version = v.version, path = "/apis/" .. v.groupVersion,
                         rank = gi * 1000 + (v.version == preferred and 0 or #list + 1)}
    end
    for _, item in ipairs(list) do gvs[#gvs + 1] = item end
  end
  local docs = task.map(gvs, function(gv)
    local ok, doc = pcall(client._request, client, {path = gv.path})
    if not ok then
      -- an unavailable aggregated API must not break everything else (client-go does the same)
      log.warn("kube: discovery of %s failed: %s", gv.path, tostring(doc))
      return false
    end
    return doc
  end, {limit = M.concurrency})
  local entries = {}
  for i, gv in ipairs(gvs) do
    local doc = docs[i]
    for _, r in ipairs(doc and val(doc.resources) or {}) do
      if type(r.name) == "string" and not r.name:find("/", 1, true) then
        local shorts = {}
        for _, s in ipairs(val(r.shortNames) or {}) do shorts[s:lower()] = true end
        local singular = val(r.singularName)
        if singular == nil or singular == "" then singular = tostring(r.kind):lower() end
        entries[#entries + 1] = {
          group = gv.group, version = gv.version, rank = gv.rank, kind = r.kind, resource = r.name,
          singular = singular, namespaced = r.namespaced == true, short_names = shorts,
          verbs = val(r.verbs) or json.array(),
        }
      end
    end
  end
  table.sort(entries, function(a, b)
    if a.rank ~= b.rank then return a.rank < b.rank end
    return a.resource < b.resource
  end)
  return entries
end

---------------------------------------------------------------------------
-- Matching

local function matches_name(e, name)
  return e.resource == name or e.singular == name or e.kind:lower() == name or e.short_names[name] ~= nil
end

local function qualified(e)
  return e.group == "" and e.resource or (e.resource .. "." .. e.group)
end

-- Entries for a type string, or for a kind without apiVersion.
local function by_type(entries, t)
  local lower = t:lower()
  local out = {}
  for _, e in ipairs(entries) do
    if matches_name(e, lower) then out[#out + 1] = e end
  end
  local name, rest = lower:match("^([^.]+)%.(.+)$")
  if name then
    for _, e in ipairs(entries) do
      if matches_name(e, name) and (e.group == rest or (e.version .. "." .. e.group) == rest) then
        out[#out + 1] = e
      end
    end
  end
  return out
end

local function by_gvk(entries, api_version, kind)
  local group, version = api_version:match("^(.+)/([^/]+)$")
  if not group then group, version = "", api_version end
  local out = {}
  for _, e in ipairs(entries) do
    if e.group == group and e.version == version and e.kind == kind then out[#out + 1] = e end
  end
  return out
end

-- One entry from candidates in priority order, or raises "ambiguous".
local function choose(candidates, what)
  local groups, seen = {}, {}
  for _, e in ipairs(candidates) do
    if not seen[e.group] then
      seen[e.group] = e
      groups[#groups + 1] = e
    end
  end
  if #groups == 1 or seen[""] then return seen[""] or groups[1] end
  local names = {}
  for _, e in ipairs(groups) do names[#names + 1] = qualified(e) end
  error(errors.new{code = "ambiguous", message = ("kube: %s is ambiguous: it matches %s; qualify it with a group, "
                   .. "e.g. %s"):format(what, table.concat(names, ", "), names[1]), causes = json.array(),
                   candidates = names}, 0)
end

local function candidates(entries, spec)
  if spec.type then return by_type(entries, spec.type) end
  if spec.api_version then return by_gvk(entries, spec.api_version, spec.kind) end
  return by_type(entries, spec.kind)
end

local function describe(spec)
  if spec.type then return ("the resource type \"%s\""):format(spec.type) end
  if spec.api_version then return ("kind \"%s\" in version \"%s\""):format(spec.kind, spec.api_version) end
  return ("kind \"%s\""):format(spec.kind)
end

---The discovery entry for a parsed reference (M.parse): {group, version,
---kind, resource, singular, namespaced, short_names, verbs}. Fetches discovery
---on first use and again once on a miss.
---@param spec table
---@return table entry
function Discovery:lookup(spec)
  local fresh = false
  if not self.entries then
    self:refresh()
    fresh = true
  end
  local found = candidates(self.entries, spec)
  if #found == 0 and not fresh then
    self:refresh()
    found = candidates(self.entries, spec)
  end
  if #found == 0 then
    local msg = spec.type and ("kube: the server doesn't have a resource type \"%s\""):format(spec.type)
                or ("kube: no matches for %s; ensure CRDs are installed first"):format(describe(spec))
    error(errors.new{code = "no_match", message = msg, causes = json.array()}, 0)
  end
  return choose(found, describe(spec))
end

---Every discovered entry (fetching discovery on first use), in priority order.
function Discovery:all()
  return self.entries or self:refresh()
end

return M
