-- sdk.lua (module "portworx.sdk"): the "sdk" backend — volumes, snapshots,
-- clones, in-place restores and cloud snapshots through the OpenStorage SDK
-- REST gateway (portworx.gateway does the transport).
--
-- The SDK's own semantics (notes §1.6) and what this file adds:
--   - SnapshotCreate is not idempotent (a duplicate name is a 500 "... already
--     exists"): snapshot() turns that into "return the existing snapshot" when
--     it has the same parent, and an AlreadyExists error naming the other
--     parent otherwise. An ambiguous failure (connection lost, 5xx) is
--     resolved the same way: if the snapshot exists now, it is returned.
--   - A failed create on a volume that already has 64 snapshots becomes a
--     "snapshot_limit" error that says so and suggests prune.
--   - Inspect takes an id only: names are looked up with InspectWithFilters.
--   - Snapshot listing uses InspectWithFilters (labels server-side) and keeps
--     read-only volumes with a parent: clones, which the SDK lists with
--     snapshots, are left out.
--   - Delete is idempotent in the SDK (an unknown id is 200).
local gateway = require("portworx.gateway")
local perr = require("portworx.errors")
local pvc = require("portworx.pvc")
local volume = require("portworx.volume")

local M = {}

local Sdk = {}
Sdk.__index = Sdk

M.SNAPSHOT_LIMIT = 64

---The backend for a client; opts are portworx.connect's.
---@param opts table
---@return table
function M.new(opts)
  local self = setmetatable({}, Sdk)
  self.name = "sdk"
  self.kube = opts.kube
  self.gw = gateway.new{endpoint = opts.endpoint, token = opts.token, kube = opts.kube, namespace = opts.namespace,
                        token_secret = opts.token_secret, ca_file = opts.ca_file, insecure = opts.insecure,
                        timeout = opts.request_timeout, getenv = opts.getenv}
  return self
end

local function path_id(id) return gateway.escape(id) end

---------------------------------------------------------------------------
-- Volumes

---The volume with this id (deep inspect), or nil and a NotFound error.
---@param id string
---@return table?, table?
function Sdk:inspect(id)
  local ok, doc = pcall(self.gw.call, self.gw, "GET", "/v1/volumes/inspect/" .. path_id(id), nil,
                        {query = {["options.deep"] = "true"}, idempotent = true})
  if not ok then
    if perr.is_not_found(doc) then return nil, doc end
    error(doc, 0)
  end
  if type(doc.volume) ~= "table" then
    perr.fail("decode", {op = "GET /v1/volumes/inspect"}, "portworx: inspect %s: the answer has no volume", id)
  end
  return volume.normalize(doc.volume)
end

---Volumes matching filters {name?, labels?} (InspectWithFilters), normalized.
---@param filters table
---@return table[]
function Sdk:find(filters)
  local body = {options = {deep = false}}
  if filters.name then body.name = filters.name end
  if filters.labels and next(filters.labels) then body.labels = filters.labels end
  local doc = self.gw:call("POST", "/v1/volumes/inspectwithfilters", body, {idempotent = true})
  local out = {}
  for _, item in ipairs(type(doc.volumes) == "table" and doc.volumes or {}) do
    if type(item) == "table" and type(item.volume) == "table" then out[#out + 1] = volume.normalize(item.volume) end
  end
  return out
end

---A volume by id or name (an id is tried first when the text is all digits),
---or nil and a NotFound error.
---@param ref string
---@return table?, table?
function Sdk:volume(ref)
  if ref:match("^%d+$") then
    local v, err = self:inspect(ref)
    if v then return v end
    if not perr.is_not_found(err) then error(err, 0) end
  end
  local found = self:find{name = ref}
  for _, v in ipairs(found) do
    if v.name == ref then return self:inspect(v.id) end
  end
  return nil, perr.not_found(("portworx: no volume has the id or name %q"):format(ref))
end

---Volumes matching {name?, labels?}, in the gateway's order.
function Sdk:volumes(filters)
  return self:find(filters)
end

---------------------------------------------------------------------------
-- Snapshots

---True snapshots (read-only, with a parent) of volume (a normalized table,
---or nil for all) carrying labels, oldest first.
---@param vol table?
---@param labels table?
---@return table[]
function Sdk:snapshots(vol, labels)
  return volume.snapshots_of(self:find{labels = labels}, vol, labels)
end

-- The snapshot or clone named name, or nil.
function Sdk:_named(name)
  for _, v in ipairs(self:find{name = name}) do
    if v.name == name then return v end
  end
  return nil
end

-- After a failed create of `name` on parent: the volume of that name when it
-- has this parent (the create happened after all, or a rerun), else raises
-- AlreadyExists for another parent, else nil.
function Sdk:_existing(name, parent_id, what)
  local found = perr.check_parent(self:_named(name), name, parent_id, what, {grpc_code = 6})
  if not found then return nil end
  return self:inspect(found.id)
end

---Takes snapshot `name` of vol (a normalized volume), idempotently.
---@param vol table
---@param name string
---@param labels table?
---@return table
function Sdk:snapshot(vol, name, labels, _)
  local body = {volume_id = vol.id, name = name}
  if labels and next(labels) then body.labels = labels end
  local ok, doc = pcall(self.gw.call, self.gw, "POST", "/v1/volumes/snapshots", body)
  if ok then
    if type(doc.snapshot_id) ~= "string" then
      perr.fail("decode", {op = "POST /v1/volumes/snapshots"}, "portworx: snapshot create answered no snapshot_id")
    end
    return (assert(self:inspect(doc.snapshot_id)))
  end
  local err = doc
  if perr.is_already_exists(err) or perr.is_ambiguous(err) then
    local existing = self:_existing(name, vol.id, "snapshot")
    if existing then return existing end
  end
  if perr.may_be_limit(err) then
    local count = #self:snapshots(vol)
    if count >= M.SNAPSHOT_LIMIT or perr.says_limit(err) then perr.snapshot_limit(vol, count, err) end
  end
  error(err, 0)
end

---Deletes a snapshot or clone (an id, a name or a table with an id); false
---when there was none. A volume without a parent needs opts.force.
---@param ref string|table
---@param opts table
---@return boolean
function Sdk:delete(ref, opts)
  local id = type(ref) == "table" and ref.id or ref
  local v = self:volume(id)
  if not v then return false end
  perr.check_deletable(v, opts)
  self.gw:call("DELETE", "/v1/volumes/" .. path_id(v.id), nil, {idempotent = true})
  return true
end

---A snapshot (or any volume) by id or name, or nil and NotFound.
function Sdk:snapshot_ref(ref)
  return self:volume(ref)
end

---The volume behind a resolved PVC: by the PV's volume id, else by the PV
---name (Portworx names CSI volumes after their PV).
function Sdk:volume_for_pvc(ref)
  if ref.id then
    local v, err = self:volume(ref.id)
    if v then return v end
    if not perr.is_not_found(err) then error(err, 0) end
  end
  local v, err = self:volume(ref.name)
  if not v then error(err, 0) end
  return v
end

---A PVC restored from snap: an SDK clone named after the claim, bound
---through a static PV (portworx.pvc.bind_static).
function Sdk:restore_pvc(snap, a)
  local clone_name = ("ferry-%s-%s"):format(a.namespace, a.name)
  local labels = {pvc = a.name, namespace = a.namespace}
  local clone = self:clone(snap, clone_name, labels)
  return pvc.bind_static(self.kube, clone, {namespace = a.namespace, name = a.name, pv_name = clone_name,
                                            storage_class = a.storage_class, size = a.size or clone.size,
                                            labels = a.labels, timeout = a.timeout})
end

---A writable clone of a snapshot (or volume) `from`, named name; the SDK's
---Clone is idempotent by name for the same parent.
---@param from table normalized snapshot or volume
---@param name string
---@param labels table?
---@return table
function Sdk:clone(from, name, labels, _)
  local body = {name = name, parent_id = from.id}
  if labels and next(labels) then body.additional_labels = labels end
  local ok, doc = pcall(self.gw.call, self.gw, "POST", "/v1/volumes/clone", body)
  if ok then
    if type(doc.volume_id) ~= "string" then
      perr.fail("decode", {op = "POST /v1/volumes/clone"}, "portworx: clone answered no volume_id")
    end
    return (assert(self:inspect(doc.volume_id)))
  end
  if perr.is_ambiguous(doc) or perr.is_already_exists(doc) then
    local existing = self:_existing(name, from.id, "clone")
    if existing then return existing end
  end
  error(doc, 0)
end

---Restores vol in place from snap (both normalized; checked by the caller).
function Sdk:restore(vol, snap, _)
  self.gw:call("POST", "/v1/volumes/snapshots/restore", {volume_id = vol.id, snapshot_id = snap.id})
end

---------------------------------------------------------------------------
-- Cloud snapshots

local function enum_tail(v, prefix)
  if type(v) ~= "string" or v == "" then return nil end
  if v:sub(1, #prefix) == prefix then v = v:sub(#prefix + 1) end
  return (v:gsub("(%l)(%u)", "%1_%2"):lower())
end

---A cloud backup task's status as a plain table.
---@param task_id string
---@param st table
---@return table
function M.cloud_status(task_id, st)
  local optype = enum_tail(st.optype, "SdkCloudBackupOpType")
  if optype then optype = optype:gsub("_op$", "") end
  local info = {}
  for _, s in ipairs(type(st.info) == "table" and st.info or {}) do info[#info + 1] = tostring(s) end
  local function str(v) return type(v) == "string" and v ~= "" and v or nil end
  return {
    task = task_id, status = enum_tail(st.status, "SdkCloudBackupStatusType") or "unknown", optype = optype,
    backup_id = str(st.backup_id), volume = str(st.src_volume_id), node = str(st.node_id),
    bytes_done = volume.int(st.bytes_done) or 0, bytes_total = volume.int(st.bytes_total) or 0,
    eta_seconds = volume.int(st.eta_seconds), start_time = str(st.start_time),
    completed_time = str(st.completed_time), credential = str(st.credential_id), info = info,
  }
end

---Starts a cloud backup of vol; returns the task id.
function Sdk:cloudsnap(vol, args)
  local body = {volume_id = vol.id, credential_id = args.credential, full = args.full or nil, labels = args.labels,
                task_id = args.task}
  local ok, doc = pcall(self.gw.call, self.gw, "POST", "/v1/cloudbackups", body)
  if not ok then
    -- a rerun with the same task id: the backup is already under way
    if args.task and perr.is_already_exists(doc) then return args.task end
    error(doc, 0)
  end
  local id = doc.task_id
  if type(id) ~= "string" or id == "" then id = args.task end
  if not id then perr.fail("decode", nil, "portworx: cloud backup create answered no task_id") end
  return id
end

---The status of a cloud backup or restore task; NotFound for an unknown task.
function Sdk:cloudsnap_status(task_id)
  local ok, doc = pcall(self.gw.call, self.gw, "POST", "/v1/cloudbackups/status", {task_id = task_id},
                        {idempotent = true})
  if not ok then
    if doc.code == "Unavailable" and perr.says_not_found(doc) then
      doc.code = "NotFound"
      doc.message = ("portworx: no cloud snapshot task %q: %s"):format(task_id, doc.sdk_message)
    end
    error(doc, 0)
  end
  local statuses = type(doc.statuses) == "table" and doc.statuses or {}
  local st = statuses[task_id]
  if st == nil then -- one entry under another key (a group id): take it
    local k, v = next(statuses)
    if k ~= nil then task_id, st = k, v end
  end
  if type(st) ~= "table" then
    perr.fail("NotFound", {grpc_code = 5}, "portworx: no cloud snapshot task %q", task_id)
  end
  return M.cloud_status(task_id, st)
end

---Starts restoring cloud backup `backup` as a new volume; returns {volume, task}.
function Sdk:cloudsnap_restore(args)
  local body = {backup_id = args.backup, restore_volume_name = args.name, credential_id = args.credential,
                task_id = args.task}
  local doc = self.gw:call("POST", "/v1/cloudbackups/restore", body)
  return {volume = doc.restore_volume_id, task = doc.task_id or args.task}
end

---------------------------------------------------------------------------
-- Scratch volumes (benchmarks, tests, scripts that need an empty volume)

---Creates a volume {name, size (bytes), ha_level?, labels?, format?}; an
---existing volume of that name is returned as it is.
function Sdk:create_volume(args)
  local spec = {size = tostring(args.size), ha_level = tostring(args.ha_level or 1), format = args.format}
  local body = {name = args.name, spec = spec}
  if args.labels and next(args.labels) then body.labels = args.labels end
  local ok, doc = pcall(self.gw.call, self.gw, "POST", "/v1/volumes", body)
  if not ok then
    if perr.is_already_exists(doc) or perr.is_ambiguous(doc) then
      local found = self:_named(args.name)
      if found then return self:inspect(found.id) end
    end
    error(doc, 0)
  end
  return (assert(self:inspect(doc.volume_id)))
end

---The SDK and driver versions ({sdk_version, version}), for diagnostics.
function Sdk:version()
  local doc = self.gw:call("GET", "/v1/identities/version", nil, {idempotent = true})
  local sdk = type(doc.sdk_version) == "table" and doc.sdk_version or {}
  local drv = type(doc.version) == "table" and doc.version or {}
  return {sdk = sdk.version or ("%d.%d.%d"):format(sdk.major or 0, sdk.minor or 0, sdk.patch or 0),
          driver = drv.driver, version = drv.version, endpoint = self.gw:where()}
end

return M
