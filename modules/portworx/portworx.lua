-- portworx.lua: the portworx module scripts require — portworx.connect and
-- the client every backend shares. One API over three ways of reaching
-- Portworx (the backend decides how, this file decides what):
--
--   "sdk"   the OpenStorage SDK REST gateway (portworx.sdk, portworx.gateway)
--   "kube"  Kubernetes objects: CSI or STORK VolumeSnapshots, PVCs restored
--           from them (portworx.kubebackend)
--   "pxctl" `pxctl -j ...` through kube exec in the Portworx pod (portworx.pxctl)
--
-- This file checks arguments, resolves references (an id, a name, a table
-- this module returned, or {namespace, pvc}), runs freeze/thaw around
-- snapshots (portworx.freeze), prunes, waits for cloud snapshots, and
-- delegates the rest. A backend is a table with:
--   name; volume(ref) → vol | nil, err; volumes{name?, labels?};
--   volume_for_pvc(ref from portworx.pvc.resolve) → vol;
--   snapshot(vol, name, labels, opts) → snap; snapshots(vol?, labels?) (oldest first);
--   snapshot_ref(string) → snap | nil, err; delete(x, opts) → boolean;
--   clone(from, name, labels, opts) → vol; restore(vol, snap);
--   restore_pvc(snap, args) → result; and, where supported, cloudsnap(vol, args),
--   cloudsnap_status(task), cloudsnap_restore(args), create_volume(args).
-- Backends raise "unsupported" for what they cannot do.
local log = require("log")
local task = require("task")

local freeze = require("portworx.freeze")
local perr = require("portworx.errors")
local pvc = require("portworx.pvc")
local stork = require("portworx.stork")
local volume = require("portworx.volume")

local M = {}

local BACKENDS = {sdk = "portworx.sdk", kube = "portworx.kubebackend", pxctl = "portworx.pxctl"}

local Client = {}
Client.__index = Client

Client.timeout = 300 -- seconds a wait (snapshot ready, PVC bound, cloud snapshot) may take by default
Client.poll_interval = 2 -- seconds between cloud snapshot status polls
Client.list_concurrency = 8 -- deletions prune makes at once

M.Client = Client
M.SNAPSHOT_LIMIT = 64

---A client. opts: backend ("sdk" default when an endpoint is known, else
---"kube" when kube is given), kube (a kube client; needed by kube and pxctl,
---and for PVC lookups, restores, freeze/thaw and group snapshots), endpoint,
---token, namespace (Portworx's namespace), snapshot_api ("csi" default or
---"stork"), snapshot_class, timeout, request_timeout, token_secret
---{name, namespace?, key}, ca_file, insecure, pxctl (path in the pod).
function M.connect(opts)
  if opts ~= nil and type(opts) ~= "table" then perr.argerror("connect", "opts must be a table") end
  opts = opts or {}
  local getenv = opts._getenv or os.getenv
  for _, k in ipairs({"endpoint", "token", "namespace", "snapshot_class", "pxctl", "ca_file"}) do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or opts[k] == "") then
      perr.argerror("connect", ("%s must be a non-empty string"):format(k))
    end
  end
  if opts.kube ~= nil and (type(opts.kube) ~= "table" or type(opts.kube.get) ~= "function") then
    perr.argerror("connect", "kube must be a kube client (kube.connect())")
  end
  local backend = opts.backend
  if backend == nil then
    local env = getenv("PORTWORX_SDK_ENDPOINT")
    backend = (opts.endpoint or (env and env ~= "") or not opts.kube) and "sdk" or "kube"
  end
  if not BACKENDS[backend] then perr.argerror("connect", "backend must be \"sdk\", \"kube\" or \"pxctl\"") end
  if (backend == "kube" or backend == "pxctl") and not opts.kube then
    perr.argerror("connect", ("the %s backend needs kube (a kube client)"):format(backend))
  end
  local api = opts.snapshot_api or "csi"
  if api ~= "csi" and api ~= "stork" then perr.argerror("connect", "snapshot_api must be \"csi\" or \"stork\"") end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    perr.argerror("connect", "timeout must be a number of seconds > 0")
  end
  local self = setmetatable({}, Client)
  self.backend = backend
  self.snapshot_api = api
  self.kube = opts.kube
  if opts.timeout then self.timeout = opts.timeout end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.getenv, o.snapshot_api = getenv, api
  self._backend = require(BACKENDS[backend]).new(o)
  return self
end

---------------------------------------------------------------------------
-- References

function Client:_need_kube(fname)
  if not self.kube then
    perr.fail("unsupported", nil, "portworx.%s needs a kube client: pass kube to portworx.connect", fname)
  end
  return self.kube
end

-- A volume reference → the backend's volume table. ref: id or name, a
-- table with an id (returned as it is), or {namespace, pvc}.
function Client:_volume(fname, ref)
  if type(ref) == "table" and ref.id == nil and ref.pvc ~= nil then
    if type(ref.pvc) ~= "string" or type(ref.namespace) ~= "string" then
      perr.argerror(fname, "a PVC reference is {namespace = ..., pvc = ...}")
    end
    return self:volume_for_pvc(ref.namespace, ref.pvc)
  end
  if type(ref) == "table" then
    if type(ref.id) ~= "string" or ref.id == "" then perr.argerror(fname, "a volume table needs an id") end
    return ref
  end
  if type(ref) ~= "string" or ref == "" then
    perr.argerror(fname, "volume must be an id, a name, a volume table or {namespace, pvc}")
  end
  local v, err = self._backend:volume(ref)
  if not v then error(err, 0) end
  return v
end

-- A snapshot reference → the backend's snapshot table.
function Client:_snapshot(fname, ref, key)
  if type(ref) == "table" then
    if ref.id == nil and ref.name == nil then perr.argerror(fname, ("%s must be a snapshot"):format(key)) end
    return ref
  end
  if type(ref) ~= "string" or ref == "" then
    perr.argerror(fname, ("%s must be a snapshot id, name or table"):format(key))
  end
  local s, err = self._backend:snapshot_ref(ref)
  if not s then error(err, 0) end
  return s
end

---------------------------------------------------------------------------
-- Volumes

---The Portworx volume behind PVC namespace/name.
function Client:volume_for_pvc(namespace, name)
  if type(namespace) ~= "string" or namespace == "" then perr.argerror("volume_for_pvc", "namespace is required") end
  if type(name) ~= "string" or name == "" then perr.argerror("volume_for_pvc", "pvc is required") end
  local kube = self:_need_kube("volume_for_pvc")
  return self._backend:volume_for_pvc(pvc.resolve(kube, namespace, name))
end

---Volumes matching {name?, labels?} (snapshots and clones included).
function Client:volumes(args)
  args = args or {}
  perr.check_table("volumes", args)
  local filters = {name = perr.opt_string("volumes", args, "name"), labels = perr.opt_labels("volumes", args, "labels")}
  return self._backend:volumes(filters)
end

---A volume by id or name (deep inspect), or nil and a NotFound error.
function Client:volume(ref)
  if type(ref) == "table" then ref = ref.id end
  if type(ref) ~= "string" or ref == "" then perr.argerror("volume", "expected a volume id or name") end
  return self._backend:volume(ref)
end

---------------------------------------------------------------------------
-- Snapshots

---A snapshot {volume, name, labels?, freeze?, thaw?, timeout?}, idempotent by
---name and parent.
function Client:snapshot(args)
  perr.check_table("snapshot", args)
  local name = perr.need_string("snapshot", args, "name")
  local labels = perr.opt_labels("snapshot", args, "labels")
  local timeout = perr.opt_number("snapshot", args, "timeout", self.timeout)
  if args.volume == nil then perr.argerror("snapshot", "field 'volume' is required") end
  local kube = self.kube
  if (args.freeze or args.thaw) and not kube then
    perr.argerror("snapshot", "freeze and thaw run through kube exec: pass kube to portworx.connect")
  end
  local vol = self:_volume("snapshot", args.volume)
  local default_ns = (vol.pvc and vol.pvc.namespace) or (vol.labels or {}).namespace or (kube and kube.namespace)
  local fz = freeze.check("snapshot", "freeze", args.freeze, default_ns)
  local th = freeze.check("snapshot", "thaw", args.thaw, default_ns)
  local opts = {restore_namespaces = args.restore_namespaces, timeout = timeout}
  local what = ("the snapshot %q of volume %s"):format(name, tostring(vol.name or vol.id))
  local snap = freeze.run(kube, fz, th, timeout, function()
    return self._backend:snapshot(vol, name, labels, opts)
  end, what)
  log.info("portworx: snapshot %s (%s) of volume %s", tostring(snap.name), tostring(snap.id),
           tostring(vol.name or vol.id))
  return snap
end

---True snapshots (not clones) {volume?, labels?}, oldest first.
function Client:snapshots(args)
  args = args or {}
  perr.check_table("snapshots", args)
  local labels = perr.opt_labels("snapshots", args, "labels")
  local vol = args.volume ~= nil and self:_volume("snapshots", args.volume) or nil
  return self._backend:snapshots(vol, labels)
end

---Deletes a snapshot, clone or restored PVC; not found is success. Returns
---true when something was deleted. A volume that is neither a snapshot nor a
---clone is refused unless opts.force.
function Client:delete(ref, opts)
  opts = opts or {}
  if type(opts) ~= "table" then perr.argerror("delete", "opts must be a table") end
  if type(ref) ~= "string" and type(ref) ~= "table" then perr.argerror("delete", "expected an id or a table") end
  if type(ref) == "string" and ref == "" then perr.argerror("delete", "expected an id or a table") end
  if type(ref) == "table" and ref.restored then
    local kube = self:_need_kube("delete")
    local gone = kube:delete("persistentvolumeclaim/" .. ref.name, {namespace = ref.namespace,
                                                                     ignore_not_found = true, wait = true,
                                                                     timeout = opts.timeout or self.timeout})
    local deleted = gone ~= nil
    if ref.volume and self.backend ~= "kube" then
      deleted = self._backend:delete(ref.volume, {force = true, timeout = opts.timeout}) or deleted
    end
    if ref.pv then kube:delete("persistentvolume/" .. ref.pv, {ignore_not_found = true}) end
    return deleted
  end
  return self._backend:delete(ref, opts)
end

---Deletes the oldest snapshots carrying labels beyond `keep` per volume.
---Returns {deleted = {snapshots}, kept = {snapshots}}.
function Client:prune(args)
  perr.check_table("prune", args)
  local labels = perr.opt_labels("prune", args, "labels")
  if not labels or next(labels) == nil then
    perr.argerror("prune", "labels are required (prune never touches snapshots it cannot tell apart)")
  end
  local keep = args.keep
  if math.type(keep) ~= "integer" or keep < 0 then perr.argerror("prune", "keep must be an integer >= 0") end
  local vol = args.volume ~= nil and self:_volume("prune", args.volume) or nil
  local by_parent, order = {}, {}
  for _, s in ipairs(self._backend:snapshots(vol, labels)) do
    local p = tostring(s.parent)
    if not by_parent[p] then
      by_parent[p] = {}
      order[#order + 1] = p
    end
    table.insert(by_parent[p], s)
  end
  local doomed, kept = {}, {}
  for _, p in ipairs(order) do
    local list = volume.sort_oldest_first(by_parent[p])
    for i, s in ipairs(list) do
      if i <= #list - keep then doomed[#doomed + 1] = s else kept[#kept + 1] = s end
    end
  end
  task.map(doomed, function(s) return self._backend:delete(s, {force = true}) end, {limit = self.list_concurrency})
  for _, s in ipairs(doomed) do log.info("portworx: pruned snapshot %s (%s)", tostring(s.name), tostring(s.id)) end
  return {deleted = doomed, kept = kept}
end

---------------------------------------------------------------------------
-- Clones and restores

---A writable volume {from, name, labels?} from a snapshot, idempotent by name.
function Client:clone(args)
  perr.check_table("clone", args)
  local name = perr.need_string("clone", args, "name")
  local labels = perr.opt_labels("clone", args, "labels")
  if args.from == nil then perr.argerror("clone", "field 'from' is required") end
  local from = self:_snapshot("clone", args.from, "from")
  return self._backend:clone(from, name, labels, {timeout = perr.opt_number("clone", args, "timeout", self.timeout),
                                                  namespace = perr.opt_string("clone", args, "namespace")})
end

---Restores {volume, snapshot} in place; refuses an attached volume.
function Client:restore(args)
  perr.check_table("restore", args)
  if args.volume == nil or args.snapshot == nil then perr.argerror("restore", "volume and snapshot are required") end
  local vol = self:_volume("restore", args.volume)
  local fresh, err = self._backend:volume(vol.id)
  if not fresh then error(err, 0) end
  local snap = self:_snapshot("restore", args.snapshot, "snapshot")
  if snap.parent and snap.parent ~= fresh.id then
    perr.fail("InvalidArgument", {grpc_code = 3},
              "portworx: snapshot %s is of volume %s, not of %s (%s)", tostring(snap.name or snap.id),
              tostring(snap.parent), tostring(fresh.name), fresh.id)
  end
  if volume.is_attached(fresh) then
    perr.fail("attached", {volume = fresh.id, attached_on = fresh.attached_on},
              "portworx: volume %s (%s) is attached%s; an in-place restore needs it detached: stop the pods "
              .. "using it (scale the workload to 0) first, or use restore_pvc for a new volume",
              tostring(fresh.name), fresh.id, fresh.attached_on and (" on " .. fresh.attached_on) or "")
  end
  self._backend:restore(fresh, snap, {timeout = perr.opt_number("restore", args, "timeout", self.timeout)})
  log.info("portworx: restored volume %s from snapshot %s", tostring(fresh.name), tostring(snap.name or snap.id))
  return self._backend:volume(fresh.id)
end

---A PVC {snapshot, namespace, name, storage_class?, size?, labels?, timeout?}
---whose data is the snapshot, once Bound.
function Client:restore_pvc(args)
  perr.check_table("restore_pvc", args)
  local a = {
    namespace = perr.need_string("restore_pvc", args, "namespace"),
    name = perr.need_string("restore_pvc", args, "name"),
    storage_class = perr.opt_string("restore_pvc", args, "storage_class"),
    labels = perr.opt_labels("restore_pvc", args, "labels"),
    timeout = perr.opt_number("restore_pvc", args, "timeout", self.timeout),
  }
  local size = args.size
  if size ~= nil then
    a.size = volume.bytes(size)
    if not a.size or a.size <= 0 then perr.argerror("restore_pvc", "size must be bytes or a quantity like \"10Gi\"") end
  end
  if args.snapshot == nil then perr.argerror("restore_pvc", "field 'snapshot' is required") end
  self:_need_kube("restore_pvc")
  local snap = self:_snapshot("restore_pvc", args.snapshot, "snapshot")
  local res = self._backend:restore_pvc(snap, a)
  res.restored = true
  log.info("portworx: PVC %s/%s restored from snapshot %s", a.namespace, a.name, tostring(snap.name or snap.id))
  return res
end

---------------------------------------------------------------------------
-- Group snapshots (STORK), on every backend

---A STORK GroupVolumeSnapshot {namespace, selector, name?, pre_rule?,
---post_rule?, restore_namespaces?, timeout?}, waited until Successful.
function Client:group_snapshot(args)
  perr.check_table("group_snapshot", args)
  local kube = self:_need_kube("group_snapshot")
  return stork.group_snapshot(kube, args, self.timeout)
end

---------------------------------------------------------------------------
-- Cloud snapshots

function Client:_cloud(fname)
  local b = self._backend
  if not b.cloudsnap then
    perr.fail("unsupported", nil, "portworx.%s: the %s backend has no cloud snapshots; use the sdk backend", fname,
              self.backend)
  end
  return b
end

---Starts a cloud snapshot {volume, credential?, full?, labels?, task?, wait?};
---returns the task id (with wait = true, the final status).
function Client:cloudsnap(args)
  perr.check_table("cloudsnap", args)
  local b = self:_cloud("cloudsnap")
  if args.volume == nil then perr.argerror("cloudsnap", "field 'volume' is required") end
  local a = {credential = perr.opt_string("cloudsnap", args, "credential"), full = args.full == true,
             labels = perr.opt_labels("cloudsnap", args, "labels"), task = perr.opt_string("cloudsnap", args, "task")}
  local vol = self:_volume("cloudsnap", args.volume)
  local id = b:cloudsnap(vol, a)
  log.info("portworx: cloud snapshot of volume %s started (task %s)", tostring(vol.name or vol.id), id)
  if args.wait then return self:cloudsnap_wait(id, {timeout = args.timeout}) end
  return id
end

---The status of a cloud snapshot task: {task, status, optype, backup_id, volume, bytes_done, bytes_total, ...}.
function Client:cloudsnap_status(task_id)
  if type(task_id) ~= "string" or task_id == "" then perr.argerror("cloudsnap_status", "expected a task id") end
  return self:_cloud("cloudsnap_status"):cloudsnap_status(task_id)
end

local CLOUD_FAILED = {failed = true, aborted = true, stopped = true, invalid = true}

---Waits until a cloud backup or restore task is done; returns its status.
---Raises "failed" (failed, aborted, stopped) or "timeout".
function Client:cloudsnap_wait(task_id, opts)
  opts = opts or {}
  if type(task_id) ~= "string" or task_id == "" then perr.argerror("cloudsnap_wait", "expected a task id") end
  local timeout = perr.opt_number("cloudsnap_wait", opts, "timeout", self.timeout)
  local interval = perr.opt_number("cloudsnap_wait", opts, "interval", self.poll_interval)
  local deadline = task.now() + timeout
  local st
  while true do
    st = self:cloudsnap_status(task_id)
    if st.status == "done" then return st end
    if CLOUD_FAILED[st.status] then
      perr.fail("failed", {status = st}, "portworx: cloud snapshot task %s %s: %s", task_id, st.status,
                table.concat(st.info or {}, "; "))
    end
    if task.now() >= deadline then
      perr.fail("timeout", {status = st}, "portworx: cloud snapshot task %s not done after %gs (status %s, %d of %d "
                .. "bytes)", task_id, timeout, st.status, st.bytes_done or 0, st.bytes_total or 0)
    end
    task.sleep(math.min(interval, math.max(0, deadline - task.now())))
  end
end

---Restores cloud backup {backup, name, credential?, wait?} as a new volume;
---returns {volume, task} (with wait = true, the new volume's table).
function Client:cloudsnap_restore(args)
  perr.check_table("cloudsnap_restore", args)
  local b = self:_cloud("cloudsnap_restore")
  local a = {backup = perr.need_string("cloudsnap_restore", args, "backup"),
             name = perr.opt_string("cloudsnap_restore", args, "name"),
             credential = perr.opt_string("cloudsnap_restore", args, "credential"),
             task = perr.opt_string("cloudsnap_restore", args, "task")}
  local res = b:cloudsnap_restore(a)
  if not args.wait then return res end
  self:cloudsnap_wait(res.task, {timeout = args.timeout})
  local v, err = b:volume(res.volume or a.name)
  if not v then error(err, 0) end
  return v
end

---------------------------------------------------------------------------
-- Scratch volumes and diagnostics (sdk backend)

---Creates an empty volume {name, size, ha_level?, labels?} (sdk backend);
---an existing volume of that name is returned.
function Client:create_volume(args)
  perr.check_table("create_volume", args)
  local name = perr.need_string("create_volume", args, "name")
  local size = volume.bytes(args.size)
  if not size or size <= 0 then perr.argerror("create_volume", "size must be bytes or a quantity like \"1Gi\"") end
  if not self._backend.create_volume then
    perr.fail("unsupported", nil, "portworx.create_volume needs the sdk backend")
  end
  return self._backend:create_volume{name = name, size = size, ha_level = args.ha_level,
                                     labels = perr.opt_labels("create_volume", args, "labels")}
end

return M
