-- volume.lua (module "portworx.volume"): one plain-table shape for a Portworx
-- volume, whichever backend read it. The SDK gateway's JSON (proto names,
-- defaults omitted, int64 as strings, enums as "VOLUME_STATE_ATTACHED") and
-- pxctl's JSON (defaults present, enums as "attached") both become
--
--   {id, name, size, ha_level, state, status, attached_on, labels, parent,
--    readonly, snapshot, clone, ctime, usage, format, shared, sharedv4,
--    encrypted}
--
-- with integers for sizes and counts, lower-case short enum names ("attached",
-- "detached", "up", "down"), nil for absent values and {} for no labels.
-- Pure functions only; no I/O.
local json = require("json")
local time = require("http.time")

local M = {}

local function val(v)
  if v == json.null then return nil end
  return v
end

local function tbl(v)
  v = val(v)
  return type(v) == "table" and v or {}
end

local function str(v)
  v = val(v)
  if type(v) == "string" and v ~= "" then return v end
  if type(v) == "number" then return tostring(math.tointeger(v) or v) end
  return nil
end

---An int64 as the SDK sends it (a string, or a number from pxctl) → integer or nil.
---@param v any
---@return integer?
function M.int(v)
  v = val(v)
  if type(v) == "string" then v = tonumber(v) end
  if type(v) ~= "number" then return nil end
  return math.tointeger(v) or math.floor(v)
end

-- "VOLUME_STATE_ATTACHED" → "attached", "VOLUME_STATUS_UP" → "up", "up" → "up".
local function enum(v, prefix)
  v = str(v)
  if not v then return nil end
  if v:sub(1, #prefix) == prefix then v = v:sub(#prefix + 1) end
  return v:lower()
end

---A Volume object (SDK or pxctl JSON) as the module's plain table.
---@param v table
---@return table
function M.normalize(v)
  local locator, source, spec = tbl(v.locator), tbl(v.source), tbl(v.spec)
  local labels = {}
  for k, s in pairs(tbl(locator.volume_labels)) do labels[k] = tostring(s) end
  local parent = str(source.parent)
  local readonly = val(v.readonly) == true
  local state = enum(v.state, "VOLUME_STATE_")
  local attached_on = str(v.attached_on)
  return {
    id = str(v.id),
    name = str(locator.name),
    size = M.int(spec.size),
    ha_level = M.int(spec.ha_level),
    state = state or "none",
    status = enum(v.status, "VOLUME_STATUS_") or "none",
    attached_on = attached_on,
    labels = labels,
    parent = parent,
    readonly = readonly,
    snapshot = parent ~= nil and readonly,
    clone = parent ~= nil and not readonly,
    ctime = str(v.ctime),
    usage = M.int(v.usage),
    format = enum(spec.format, "FS_TYPE_"),
    shared = val(spec.shared) == true,
    sharedv4 = val(spec.sharedv4) == true,
    encrypted = val(spec.encrypted) == true,
  }
end

---Whether a normalized volume is attached somewhere (state "attached", or an
---attached_on node with a state other than "detached").
---@param v table
---@return boolean
function M.is_attached(v)
  if v.state == "attached" then return true end
  return v.attached_on ~= nil and v.state ~= "detached"
end

---Whether labels holds every key/value of want (nil want: true).
---@param labels table<string, string>?
---@param want table<string, string>?
---@return boolean
function M.has_labels(labels, want)
  for k, s in pairs(want or {}) do
    if (labels or {})[k] ~= s then return false end
  end
  return true
end

---An RFC 3339 time ("2025-01-02T03:04:05.123456Z", "...+02:00"; no zone
---is UTC) as epoch seconds with the fraction, or nil.
---@param s any
---@return number?
function M.epoch(s)
  local t, fraction = time.rfc3339(s, true)
  return t and t + fraction
end

-- Natural order of names ("stage-2" before "stage-10"): digit runs compare as numbers.
local function natural_less(a, b)
  local ia, ib = 1, 1
  while ia <= #a and ib <= #b do
    local da, db = a:match("^%d+", ia), b:match("^%d+", ib)
    if da and db then
      local na, nb = tonumber(da), tonumber(db)
      if na ~= nb then return na < nb end
      ia, ib = ia + #da, ib + #db
    else
      local ca, cb = a:sub(ia, ia), b:sub(ib, ib)
      if ca ~= cb then return ca < cb end
      ia, ib = ia + 1, ib + 1
    end
  end
  return #a - ia < #b - ib
end

---Sorts volumes oldest first (ctime as a time); within the same time (a
---clock with only seconds), by name in natural order, then by id. In place;
---returns the list.
---@param list table[]
---@return table[]
function M.sort_oldest_first(list)
  local key = {}
  for _, v in ipairs(list) do key[v] = M.epoch(v.ctime) or 0 end
  table.sort(list, function(a, b)
    local ta, tb = key[a], key[b]
    if ta ~= tb then return ta < tb end
    local sa, sb = tostring(a.name or ""), tostring(b.name or "")
    if sa ~= sb then return natural_less(sa, sb) end
    return tostring(a.id) < tostring(b.id)
  end)
  return list
end

---The snapshots among list (normalized volumes) whose parent is vol (any
---parent when vol is nil) and that carry labels, oldest first: a new list.
---@param list table[]
---@param vol table?
---@param labels table?
---@return table[]
function M.snapshots_of(list, vol, labels)
  local out = {}
  for _, v in ipairs(list) do
    if v.snapshot and (vol == nil or v.parent == vol.id) and M.has_labels(v.labels, labels) then
      out[#out + 1] = v
    end
  end
  return M.sort_oldest_first(out)
end

---RFC 3339 with nanoseconds for an epoch time in nanoseconds (CSI
---VolumeSnapshotContent status.creationTime).
---@param ns integer
---@return string
function M.rfc3339_ns(ns)
  local secs, frac = ns // 1000000000, ns % 1000000000
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. (frac > 0 and (".%09dZ"):format(frac) or "Z")
end

local UNITS = {{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}}

---Bytes as a Kubernetes quantity: the largest binary unit that divides it
---exactly ("1Gi"), else the plain number.
---@param n integer
---@return string
function M.quantity(n)
  for _, u in ipairs(UNITS) do
    if n >= u[2] and n % u[2] == 0 then return ("%d%s"):format(n // u[2], u[1]) end
  end
  return tostring(n)
end

local SUFFIX = {
  Ki = 1 << 10, Mi = 1 << 20, Gi = 1 << 30, Ti = 1 << 40, Pi = 1 << 50, Ei = 1 << 60,
  k = 10 ^ 3, K = 10 ^ 3, M = 10 ^ 6, G = 10 ^ 9, T = 10 ^ 12, P = 10 ^ 15, E = 10 ^ 18, m = 10 ^ -3, [""] = 1,
}

---A Kubernetes quantity ("10Gi", "1G", "1500M", "1073741824", "1e9") → bytes, or nil.
---@param q any
---@return integer?
function M.bytes(q)
  if type(q) == "number" then return math.tointeger(q) or math.ceil(q) end
  if type(q) ~= "string" then return nil end
  local num, suffix = q:match("^%s*([%d.]+[eE]?[+-]?%d*)%s*(%a*)%s*$")
  if not num then return nil end
  local n, mul = tonumber(num), SUFFIX[suffix]
  if not n or not mul then return nil end
  return math.ceil(n * mul)
end

return M
