-- kubebackend.lua (module "portworx.kubebackend"): the "kube" backend —
-- Portworx through Kubernetes objects only, as STORK and the CSI driver
-- expose it (notes §2). Nothing here talks to Portworx directly.
--
--   snapshot_api "csi":   snapshot.storage.k8s.io/v1 VolumeSnapshot with a
--       VolumeSnapshotClass of driver pxd.portworx.com (the one named by
--       snapshot_class, else the default class of that driver, else any
--       class of that driver; none is an error). The PX snapshot id is the
--       bound VolumeSnapshotContent's status.snapshotHandle. Restores are
--       PVCs with spec.dataSource, in the snapshot's namespace only.
--   snapshot_api "stork": volumesnapshot.external-storage.k8s.io/v1
--       VolumeSnapshot; the id is its VolumeSnapshotData's
--       spec.portworxVolume.snapshotId. Restores are PVCs annotated
--       snapshot.alpha.kubernetes.io/snapshot with class stork-snapshot-sc,
--       in any namespace the snapshot's
--       stork.libopenstorage.org/snapshot-restore-namespaces annotation
--       allows (restore_pvc adds the target namespace to it).
--
-- Volumes are what Kubernetes knows of them: PVs of the Portworx driver,
-- their claims and the pods using those (portworx.pvc.describe). Snapshot
-- tables carry the object they live in: {id, name, namespace, parent,
-- labels, size, ctime, ready, api, pvc = {namespace, name}, object}.
-- Labels are the VolumeSnapshot's labels. Clones are PVCs restored from a
-- snapshot; deleting one deletes its claim (the PV's reclaim policy deletes
-- the volume). In-place restores go through STORK's VolumeSnapshotRestore
-- (which deletes the pods using the claim, as STORK does); CSI has none.
local json = require("json")

local perr = require("portworx.errors")
local pvc = require("portworx.pvc")
local volume = require("portworx.volume")

local M = {}

local K = {}
K.__index = K

local CSI = {api_version = "snapshot.storage.k8s.io/v1", res = "volumesnapshots.snapshot.storage.k8s.io"}
local STORK = {api_version = "volumesnapshot.external-storage.k8s.io/v1",
               res = "volumesnapshots.volumesnapshot.external-storage.k8s.io"}
local VSC = "volumesnapshotcontents.snapshot.storage.k8s.io"
local VSD = "volumesnapshotdatas.volumesnapshot.external-storage.k8s.io"
local VSCLASS = "volumesnapshotclasses.snapshot.storage.k8s.io"
local DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
local STORK_SNAPSHOT = "snapshot.alpha.kubernetes.io/snapshot"
local STORK_SOURCE_NS = "stork.libopenstorage.org/snapshot-source-namespace"
local STORK_RESTORE_NS = "stork.libopenstorage.org/snapshot-restore-namespaces"
local STORK_CLASS = "stork-snapshot-sc"
local RESTORE_API = "stork.libopenstorage.org/v1alpha1"

local field = pvc.field

---@param opts table portworx.connect's options
---@return table
function M.new(opts)
  local self = setmetatable({}, K)
  self.name = "kube"
  self.kube = opts.kube
  self.api = opts.snapshot_api == "stork" and STORK or CSI
  self.stork = opts.snapshot_api == "stork"
  self.class = opts.snapshot_class
  return self
end

---------------------------------------------------------------------------
-- Volumes

-- {handle → pv, name → pv} of every Portworx PV.
function K:_pvs()
  local by_id, by_name = {}, {}
  for _, pv in ipairs(self.kube:list("persistentvolumes")) do
    local ref = pvc.pv_ref(pv)
    if ref then
      if ref.id then by_id[ref.id] = pv end
      by_name[ref.name] = pv
    end
  end
  return by_id, by_name
end

-- The volume table of a PV (claimed or not).
function K:_describe_pv(pv)
  local ref = pvc.pv_ref(pv)
  local claim_ref = field(pv, "spec", "claimRef")
  if claim_ref and claim_ref.name then
    local claim = pvc.get_optional(self.kube, "persistentvolumeclaim/" .. claim_ref.name,
                                   {namespace = claim_ref.namespace})
    if claim then
      ref.pv, ref.pvc = pv, claim
      return self:volume_for_pvc(ref)
    end
  end
  return {id = ref.id, name = ref.name, size = volume.bytes(field(pv, "spec", "capacity", "storage")),
          state = "detached", status = "none", labels = {}, readonly = false, snapshot = false, clone = false,
          ctime = field(pv, "metadata", "creationTimestamp"), pv = ref.name}
end

---The volume behind a resolved PVC reference (portworx.pvc.resolve).
function K:volume_for_pvc(ref)
  local v = pvc.describe(self.kube, ref)
  local ds = field(ref.pvc, "spec", "dataSource")
  local ann = field(ref.pvc, "metadata", "annotations") or {}
  local source
  if ds and ds.kind == "VolumeSnapshot" then
    source = {api = CSI, namespace = v.pvc.namespace, name = ds.name}
  elseif ann[STORK_SNAPSHOT] then
    source = {api = STORK, namespace = ann[STORK_SOURCE_NS] or v.pvc.namespace, name = ann[STORK_SNAPSHOT]}
  end
  if source then
    v.clone = true
    local ok, snap = pcall(self._load, self, source.api, source.namespace, source.name)
    if not ok and not perr.is_not_found(snap) then error(snap, 0) end
    v.parent = ok and snap.id or ("%s/%s"):format(source.namespace, source.name)
  end
  return v
end

---A volume by PX id or PV name, or nil and NotFound.
function K:volume(ref)
  local by_id, by_name = self:_pvs()
  local pv = by_id[ref] or by_name[ref]
  if not pv then return nil, perr.not_found(("portworx: no Portworx PersistentVolume has the volume id or name %q")
                                             :format(ref)) end
  return self:_describe_pv(pv)
end

---Volumes {name?, labels?} of Portworx PVs.
function K:volumes(filters)
  local out = {}
  local _, by_name = self:_pvs()
  local names = {}
  for n in pairs(by_name) do names[#names + 1] = n end
  table.sort(names)
  for _, n in ipairs(names) do
    if filters.name == nil or filters.name == n then
      local v = self:_describe_pv(by_name[n])
      if volume.has_labels(v.labels, filters.labels) then out[#out + 1] = v end
    end
  end
  return out
end

-- The claim {namespace, name} of a volume table (looked up by id when absent).
function K:_claim_of(vol)
  if vol.pvc then return vol.pvc end
  local v, err = self:volume(vol.id)
  if not v then error(err, 0) end
  if not v.pvc then
    perr.fail("unsupported", nil, "portworx: volume %s has no PVC; the kube backend snapshots claims", vol.id)
  end
  return v.pvc
end

---------------------------------------------------------------------------
-- Snapshots

-- The VolumeSnapshotClass to use (cached).
function K:_snapshot_class()
  if self._class_name then return self._class_name end
  if self.class then
    local cls = self.kube:get(VSCLASS .. "/" .. self.class)
    if not pvc.DRIVERS[cls.driver] then
      perr.fail("not_portworx", nil, "portworx: VolumeSnapshotClass %s is for driver %s, not pxd.portworx.com",
                self.class, tostring(cls.driver))
    end
    self._class_name = self.class
    return self.class
  end
  local any
  for _, cls in ipairs(self.kube:list(VSCLASS)) do
    if pvc.DRIVERS[cls.driver] then
      if field(cls, "metadata", "annotations", DEFAULT_CLASS) == "true" then
        self._class_name = cls.metadata.name
        return self._class_name
      end
      any = any or cls.metadata.name
    end
  end
  if not any then
    perr.fail("no_snapshot_class", nil, "portworx: no VolumeSnapshotClass has driver pxd.portworx.com: create one "
              .. "(driver: pxd.portworx.com, deletionPolicy: Delete) or pass snapshot_class")
  end
  self._class_name = any
  return any
end

-- The PX snapshot id of a ready VolumeSnapshot (nil while there is none).
function K:_handle(api, vs)
  if api == CSI then
    local content = field(vs, "status", "boundVolumeSnapshotContentName")
    if not content then return nil, nil end
    local c = pvc.get_optional(self.kube, VSC .. "/" .. content)
    if not c then return nil, nil end
    return field(c, "status", "snapshotHandle"), field(c, "spec", "source", "volumeHandle")
  end
  local data = field(vs, "spec", "snapshotDataName")
  if not data then return nil, nil end
  local d = pvc.get_optional(self.kube, VSD .. "/" .. data)
  if not d then return nil, nil end
  local parent
  local pv_name = field(d, "spec", "persistentVolumeRef", "name")
  if pv_name then
    local pv = pvc.get_optional(self.kube, "persistentvolume/" .. pv_name)
    if pv then parent = (pvc.pv_ref(pv) or {}).id end
  end
  return field(d, "spec", "portworxVolume", "snapshotId"), parent
end

local function is_ready(api, vs)
  if api == CSI then return field(vs, "status", "readyToUse") == true end
  for _, c in ipairs(field(vs, "status", "conditions") or {}) do
    if c.type == "Ready" and tostring(c.status):lower() == "true" then return true end
  end
  return false
end

local function source_claim(api, vs)
  if api == CSI then return field(vs, "spec", "source", "persistentVolumeClaimName") end
  return field(vs, "spec", "persistentVolumeClaimName")
end

-- A snapshot table from a VolumeSnapshot with its PX id and parent volume id.
local function snap_table(api, vs, id, parent)
  local labels = {}
  for k, v in pairs(field(vs, "metadata", "labels") or {}) do labels[k] = tostring(v) end
  local ns, name = vs.metadata.namespace, vs.metadata.name
  local size = api == CSI and volume.bytes(field(vs, "status", "restoreSize")) or nil
  return {
    id = id, name = name, namespace = ns, parent = parent, labels = labels, size = size,
    ctime = field(vs, "status", "creationTime") or field(vs, "metadata", "creationTimestamp"),
    ready = is_ready(api, vs), readonly = true, snapshot = true, clone = false,
    api = api == CSI and "csi" or "stork", pvc = {namespace = ns, name = source_claim(api, vs)},
    object = {api_version = api.api_version, kind = "VolumeSnapshot", namespace = ns, name = name},
  }
end

function K:_load(api, ns, name)
  local vs = self.kube:get(api.res .. "/" .. name, {namespace = ns})
  return snap_table(api, vs, self:_handle(api, vs))
end

local function object_ref(api, ns, name)
  return {api_version = api.api_version, kind = "VolumeSnapshot", namespace = ns, name = name}
end

-- The VolumeSnapshot of snapshot `name` for claim, created unless it exists.
function K:_create_snapshot(claim, name, labels, opts)
  local api = self.api
  local md = {name = name, namespace = claim.namespace, labels = labels and next(labels) and labels or nil}
  local obj = {apiVersion = api.api_version, kind = "VolumeSnapshot", metadata = md}
  if api == CSI then
    obj.spec = {volumeSnapshotClassName = self:_snapshot_class(), source = {persistentVolumeClaimName = claim.name}}
  else
    obj.spec = {persistentVolumeClaimName = claim.name}
    local rn = opts.restore_namespaces
    if rn then
      obj.metadata.annotations = {[STORK_RESTORE_NS] = type(rn) == "table" and table.concat(rn, ",") or tostring(rn)}
    end
  end
  local ok, err = pcall(self.kube.create, self.kube, obj)
  if ok then return end
  if not perr.is_already_exists(err) then error(err, 0) end
  local existing = self.kube:get(api.res .. "/" .. name, {namespace = claim.namespace})
  if source_claim(api, existing) ~= claim.name then
    perr.fail("AlreadyExists", {existing = existing},
              "portworx: VolumeSnapshot %s/%s already exists for PVC %s, not %s; choose another snapshot name",
              claim.namespace, name, tostring(source_claim(api, existing)), claim.name)
  end
end

---Snapshot `name` of vol through a VolumeSnapshot, idempotent by name and
---claim; waits until ready.
function K:snapshot(vol, name, labels, opts)
  local api = self.api
  local claim = self:_claim_of(vol)
  self:_create_snapshot(claim, name, labels, opts)
  local ok, ready = pcall(self.kube.wait, self.kube, object_ref(api, claim.namespace, name), "ready",
                          {timeout = opts.timeout})
  if not ok then
    local err = ready
    if perr.says_limit(err) or (perr.may_be_limit(err) and self:_count(claim) >= M.SNAPSHOT_LIMIT) then
      perr.snapshot_limit(vol, self:_count(claim), err)
    end
    error(err, 0)
  end
  local id, parent = self:_handle(api, ready)
  return snap_table(api, ready, id, parent or vol.id)
end

M.SNAPSHOT_LIMIT = 64

-- How many VolumeSnapshots of this API name claim.
function K:_count(claim)
  local n = 0
  for _, vs in ipairs(self.kube:list(self.api.res, {namespace = claim.namespace})) do
    if source_claim(self.api, vs) == claim.name then n = n + 1 end
  end
  return n
end

---Snapshots (VolumeSnapshots of the client's API) of vol (or all) with labels, oldest first.
function K:snapshots(vol, labels)
  local api = self.api
  local claim = vol and self:_claim_of(vol) or nil
  local items = self.kube:list(api.res, {namespace = claim and claim.namespace, all_namespaces = claim == nil,
                                         label_selector = labels and next(labels) and labels or nil})
  local handles = {}
  if api == CSI then
    for _, c in ipairs(self.kube:list(VSC)) do
      local created = math.tointeger(field(c, "status", "creationTime"))
      handles[c.metadata.name] = {field(c, "status", "snapshotHandle"), field(c, "spec", "source", "volumeHandle"),
                                  created and volume.rfc3339_ns(created)}
    end
  else
    local by_pv = {}
    for _, pv in ipairs(self.kube:list("persistentvolumes")) do by_pv[pv.metadata.name] = (pvc.pv_ref(pv) or {}).id end
    for _, d in ipairs(self.kube:list(VSD)) do
      handles[d.metadata.name] = {field(d, "spec", "portworxVolume", "snapshotId"),
                                  by_pv[field(d, "spec", "persistentVolumeRef", "name") or ""]}
    end
  end
  local out = {}
  for _, vs in ipairs(items) do
    if claim == nil or source_claim(api, vs) == claim.name then
      local key = api == CSI and field(vs, "status", "boundVolumeSnapshotContentName")
                  or field(vs, "spec", "snapshotDataName")
      local h = key and handles[key] or {}
      local s = snap_table(api, vs, h[1], h[2] or (vol and vol.id))
      s.ctime = h[3] or s.ctime -- the content's creation time has nanoseconds
      if volume.has_labels(s.labels, labels) then out[#out + 1] = s end
    end
  end
  return volume.sort_oldest_first(out)
end

---A snapshot by PX snapshot id or "namespace/name", or nil and NotFound.
function K:snapshot_ref(ref)
  local api = self.api
  local ns, name = ref:match("^([^/]+)/([^/]+)$")
  if ns then
    local ok, s = pcall(self._load, self, api, ns, name)
    if ok then return s end
    if not perr.is_not_found(s) then error(s, 0) end
  else
    for _, s in ipairs(self:snapshots(nil, nil)) do
      if s.id == ref then return s end
    end
  end
  return nil, perr.not_found(("portworx: no %s VolumeSnapshot has the snapshot id or namespace/name %q")
                             :format(api == CSI and "CSI" or "STORK", ref))
end

---------------------------------------------------------------------------
-- Deleting

---Deletes a snapshot (its VolumeSnapshot) or a clone (its PVC); false when
---there was nothing to delete. Volumes that are not clones need opts.force.
function K:delete(ref, opts)
  local kube = self.kube
  local target = ref
  if type(ref) == "string" then
    target = self:snapshot_ref(ref)
    if not target then target = self:volume(ref) end
    if not target then return false end
  end
  local timeout = opts.timeout or 300
  if target.object then
    local o = target.object
    local api = o.api_version == STORK.api_version and STORK or CSI
    return kube:delete(api.res .. "/" .. o.name, {namespace = o.namespace, ignore_not_found = true, wait = true,
                                                   timeout = timeout}) ~= nil
  end
  if not target.pvc then
    if not target.pv then return false end
    perr.fail("unsupported", nil, "portworx: volume %s has no claim; delete its PersistentVolume %s instead",
              tostring(target.id), target.pv)
  end
  if not (target.clone or target.restored or opts.force) then
    perr.fail("FailedPrecondition", {grpc_code = 9},
              "portworx: volume %s (PVC %s/%s) is not a clone or snapshot; pass {force = true} to delete it",
              tostring(target.id), target.pvc.namespace, target.pvc.name)
  end
  return kube:delete("persistentvolumeclaim/" .. target.pvc.name, {namespace = target.pvc.namespace,
                                                                   ignore_not_found = true, wait = true,
                                                                   timeout = timeout}) ~= nil
end

---------------------------------------------------------------------------
-- Restores

-- Adds namespace to a STORK snapshot's restore-namespaces annotation.
function K:_allow_namespace(snap, namespace)
  local vs = self.kube:get(STORK.res .. "/" .. snap.name, {namespace = snap.namespace})
  local cur = field(vs, "metadata", "annotations", STORK_RESTORE_NS) or ""
  for item in cur:gmatch("[^,%s]+") do
    if item == namespace or item == ".*" then return end
  end
  local value = cur == "" and namespace or (cur .. "," .. namespace)
  self.kube:patch(STORK.res .. "/" .. snap.name, {metadata = {annotations = {[STORK_RESTORE_NS] = value}}},
                  {namespace = snap.namespace})
end

-- The source claim object of a snapshot, or nil.
function K:_source_claim(snap)
  if not (snap.pvc and snap.pvc.name) then return nil end
  return pvc.get_optional(self.kube, "persistentvolumeclaim/" .. snap.pvc.name, {namespace = snap.pvc.namespace})
end

-- Whether an existing claim restores from this snapshot.
local function same_source(claim, snap, api)
  if api == CSI then
    local ds = field(claim, "spec", "dataSource") or {}
    return ds.kind == "VolumeSnapshot" and ds.name == snap.name
  end
  local ann = field(claim, "metadata", "annotations") or {}
  return ann[STORK_SNAPSHOT] == snap.name and (ann[STORK_SOURCE_NS] or claim.metadata.namespace) == snap.namespace
end

---A PVC restored from snap: CSI dataSource (same namespace) or the STORK
---annotation (any namespace it allows); waits until Bound.
function K:restore_pvc(snap, a)
  if not (snap.object and snap.namespace and snap.name) then
    perr.argerror("restore_pvc", "the kube backend restores snapshots it returned (a VolumeSnapshot)")
  end
  local api = snap.api == "stork" and STORK or CSI
  local kube = self.kube
  if api == CSI and snap.namespace ~= a.namespace then
    perr.fail("unsupported", nil, "portworx: a CSI snapshot restores only into its own namespace (%s, not %s): use "
              .. "snapshot_api = \"stork\" or the sdk backend to restore across namespaces", snap.namespace,
              a.namespace)
  end
  local source = self:_source_claim(snap)
  local size = a.size or snap.size
  local src_size = volume.bytes(field(source, "spec", "resources", "requests", "storage"))
  if src_size and (size == nil or size < src_size) then size = src_size end
  size = size or (1 << 30)
  local modes = field(source, "spec", "accessModes") or {"ReadWriteOnce"}
  local claim = {apiVersion = "v1", kind = "PersistentVolumeClaim",
                 metadata = {name = a.name, namespace = a.namespace, labels = a.labels and next(a.labels) and a.labels
                                                                               or nil},
                 spec = {accessModes = modes, resources = {requests = {storage = volume.quantity(size)}}}}
  if api == CSI then
    claim.spec.storageClassName = a.storage_class or field(source, "spec", "storageClassName")
    claim.spec.dataSource = {apiGroup = "snapshot.storage.k8s.io", kind = "VolumeSnapshot", name = snap.name}
  else
    if snap.namespace ~= a.namespace then self:_allow_namespace(snap, a.namespace) end
    claim.spec.storageClassName = a.storage_class or STORK_CLASS
    claim.metadata.annotations = {[STORK_SNAPSHOT] = snap.name}
    if snap.namespace ~= a.namespace then claim.metadata.annotations[STORK_SOURCE_NS] = snap.namespace end
  end
  local ok, err = pcall(kube.create, kube, claim)
  if not ok then
    if not perr.is_already_exists(err) then error(err, 0) end
    local existing = kube:get("persistentvolumeclaim/" .. a.name, {namespace = a.namespace})
    if not same_source(existing, snap, api) then
      perr.fail("AlreadyExists", nil, "portworx: PVC %s/%s already exists and is not restored from snapshot %s/%s",
                a.namespace, a.name, snap.namespace, snap.name)
    end
  end
  return pvc.wait_bound(kube, a.namespace, a.name, a.timeout)
end

---A clone: a PVC named name restored from `from` (in opts.namespace, else
---the snapshot's), as a volume table.
function K:clone(from, name, labels, opts)
  local res = self:restore_pvc(from, {namespace = opts.namespace or from.namespace, name = name, labels = labels,
                                      timeout = opts.timeout})
  local v = self:volume_for_pvc(pvc.resolve(self.kube, res.namespace, res.name))
  v.parent, v.clone = from.id or v.parent, true
  return v
end

---In place, through STORK's VolumeSnapshotRestore (CSI has none).
function K:restore(vol, snap, opts)
  if snap.api ~= "stork" then
    perr.fail("unsupported", nil, "portworx: CSI has no in-place restore: use snapshot_api = \"stork\", the sdk "
              .. "backend, or restore_pvc")
  end
  local name = ("%s-restore"):format(snap.name):sub(1, 253)
  local obj = {apiVersion = RESTORE_API, kind = "VolumeSnapshotRestore",
               metadata = {name = name, namespace = snap.namespace},
               spec = {sourceName = snap.name, sourceNamespace = snap.namespace, groupSnapshot = false}}
  local ok, err = pcall(self.kube.create, self.kube, obj)
  if not ok and not perr.is_already_exists(err) then error(err, 0) end
  self.kube:wait({api_version = RESTORE_API, kind = "VolumeSnapshotRestore", namespace = snap.namespace, name = name},
                 function(o)
                   local st = field(o, "status", "status")
                   if st == "Failed" then
                     perr.fail("failed", {last = o}, "portworx: in-place restore of %s from %s/%s failed: %s",
                               tostring(vol.id), snap.namespace, snap.name, json.encode(field(o, "status") or {}))
                   end
                   return st == "Successful", tostring(st or "pending")
                 end, {timeout = opts.timeout})
end

return M
