-- pvc.lua (module "portworx.pvc"): where Kubernetes meets Portworx volumes —
-- the volume behind a PVC (notes §1.7), the pods using a claim, and a PVC
-- bound to an existing Portworx volume through a static PV (the restore path
-- of the sdk and pxctl backends). Everything goes through the kube client
-- handed in.
local json = require("json")

local perr = require("portworx.errors")
local volume = require("portworx.volume")

local M = {}

M.DRIVERS = {["pxd.portworx.com"] = true, ["com.openstorage.pxd"] = true}
M.DRIVER = "pxd.portworx.com"

local function val(v)
  if v == json.null then return nil end
  return v
end

---The object res names, or nil when Kubernetes answers NotFound; every other
---error is raised, never mistaken for "not there".
---@param kube table a kube client
---@param res string
---@param opts? table as for kube:get
---@return table?
function M.get_optional(kube, res, opts)
  local ok, obj = pcall(kube.get, kube, res, opts)
  if ok then return obj end
  if perr.is_not_found(obj) then return nil end
  error(obj, 0)
end

local function field(obj, ...)
  local v = obj
  for i = 1, select("#", ...) do
    if type(v) ~= "table" then return nil end
    v = val(v[select(i, ...)])
  end
  return v
end
M.field = field

-- In-tree volume sources a PV may carry, for the "not on Portworx" message.
local IN_TREE = {"awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "azureFile", "cephfs", "cinder", "fc",
                 "flexVolume", "flocker", "glusterfs", "hostPath", "iscsi", "local", "nfs", "photonPersistentDisk",
                 "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume"}

---The Portworx reference of a PV: {id = volume id or nil, name = PV name}
---(id from CSI volumeHandle or in-tree portworxVolume.volumeID), or nil and
---what the PV is instead ("CSI driver ebs.csi.aws.com", "in-tree nfs").
---@param pv table
---@return table?, string?
function M.pv_ref(pv)
  local name = field(pv, "metadata", "name")
  local csi = field(pv, "spec", "csi")
  if type(csi) == "table" then
    if M.DRIVERS[csi.driver] then return {id = val(csi.volumeHandle), name = name} end
    return nil, ("CSI driver %s"):format(tostring(csi.driver))
  end
  local pxv = field(pv, "spec", "portworxVolume")
  if type(pxv) == "table" then return {id = val(pxv.volumeID), name = name} end
  for _, k in ipairs(IN_TREE) do
    if field(pv, "spec", k) then return nil, ("in-tree %s"):format(k) end
  end
  return nil, "an unknown volume source"
end

---The PVC and PV behind namespace/name and the Portworx reference
---{id, name, pv, pvc}. Raises "not_portworx" (naming the provisioner or
---driver) and "not_bound".
---@param kube table
---@param namespace string
---@param name string
---@return table
function M.resolve(kube, namespace, name)
  local claim = kube:get("persistentvolumeclaim/" .. name, {namespace = namespace})
  local where = ("%s/%s"):format(namespace, name)
  local pv_name = field(claim, "spec", "volumeName")
  local phase = field(claim, "status", "phase")
  if not pv_name or pv_name == "" then
    local sc = field(claim, "spec", "storageClassName")
    local prov = field(claim, "metadata", "annotations", "volume.kubernetes.io/storage-provisioner")
    if prov and not M.DRIVERS[prov] and prov ~= "kubernetes.io/portworx-volume" then
      perr.fail("not_portworx", {namespace = namespace, pvc = name, provisioner = prov},
                "portworx: PVC %s is not on Portworx: its provisioner is %s", where, prov)
    end
    perr.fail("not_bound", {namespace = namespace, pvc = name, phase = phase},
              "portworx: PVC %s is not bound to a volume yet (phase %s, storage class %s)", where,
              tostring(phase or "unknown"), tostring(sc or "none"))
  end
  local pv = kube:get("persistentvolume/" .. pv_name)
  local ref, what = M.pv_ref(pv)
  if not ref then
    local prov = field(pv, "metadata", "annotations", "pv.kubernetes.io/provisioned-by")
    perr.fail("not_portworx", {namespace = namespace, pvc = name, pv = pv_name, provisioner = prov},
              "portworx: PVC %s is not on Portworx: its volume %s is %s%s", where, pv_name, what,
              prov and (" (provisioned by " .. prov .. ")") or "")
  end
  ref.pv, ref.pvc = pv, claim
  return ref
end

---The running pods in namespace that mount claim `name`.
---@param kube table
---@param namespace string
---@param name string
---@return table[]
function M.consumers(kube, namespace, name)
  local out = {}
  for _, pod in ipairs(kube:list("pods", {namespace = namespace})) do
    local phase = field(pod, "status", "phase")
    if phase ~= "Succeeded" and phase ~= "Failed" and not field(pod, "metadata", "deletionTimestamp") then
      for _, v in ipairs(field(pod, "spec", "volumes") or {}) do
        if field(v, "persistentVolumeClaim", "claimName") == name then
          out[#out + 1] = pod
          break
        end
      end
    end
  end
  return out
end

---A PVC-side description of the volume behind a bound claim, for backends
---that cannot ask Portworx: {id, name, size, state, attached_on, labels,
---pvc = {namespace, name}, pv, ...} in the shape of portworx.volume.
---@param kube table
---@param ref table from resolve
---@return table
function M.describe(kube, ref)
  local claim, pv = ref.pvc, ref.pv
  local ns, name = field(claim, "metadata", "namespace"), field(claim, "metadata", "name")
  local labels = {}
  for k, v in pairs(field(claim, "metadata", "labels") or {}) do labels[k] = tostring(v) end
  labels.pvc, labels.namespace = name, ns
  local pods = M.consumers(kube, ns, name)
  local node
  for _, p in ipairs(pods) do node = node or field(p, "spec", "nodeName") end
  local ha
  local sc_name = field(pv, "spec", "storageClassName")
  if sc_name and sc_name ~= "" then
    local sc = M.get_optional(kube, "storageclass/" .. sc_name)
    if sc then ha = volume.int(field(sc, "parameters", "repl")) end
  end
  return {
    id = ref.id, name = ref.name, size = volume.bytes(field(pv, "spec", "capacity", "storage")), ha_level = ha,
    state = #pods > 0 and "attached" or "detached", status = field(pv, "status", "phase") == "Bound" and "up" or "none",
    attached_on = node, labels = labels, parent = nil, readonly = false, snapshot = false, clone = false,
    ctime = field(pv, "metadata", "creationTimestamp"), pvc = {namespace = ns, name = name}, pv = ref.name,
    storage_class = sc_name,
  }
end

---A PVC namespace/name bound to Portworx volume `vol` (normalized) through a
---static PV named pv_name (reclaim Delete, so deleting the claim deletes
---the volume), then waits until Bound. Idempotent: an existing PV/PVC for
---the same volume is reused; one for another volume is an AlreadyExists error.
---args: {namespace, name, pv_name, storage_class?, size? (bytes), labels?,
---access_modes?, timeout}.
---@param kube table
---@param vol table
---@param args table
---@return table {namespace, name, pv, volume, object}
function M.bind_static(kube, vol, args)
  local ns, name = args.namespace, args.name
  local size = args.size or vol.size or (1 << 30)
  local sc = args.storage_class or ""
  local modes = args.access_modes or {"ReadWriteOnce"}
  local okpv, pv = pcall(kube.get, kube, "persistentvolume/" .. args.pv_name)
  if okpv then
    if field(pv, "spec", "csi", "volumeHandle") ~= vol.id then
      perr.fail("AlreadyExists", {pv = args.pv_name},
                "portworx: PersistentVolume %s already exists for volume %s, not %s", args.pv_name,
                tostring(field(pv, "spec", "csi", "volumeHandle")), vol.id)
    end
  elseif perr.is_not_found(pv) then
    kube:create({
      apiVersion = "v1", kind = "PersistentVolume",
      metadata = {name = args.pv_name, labels = {["app.kubernetes.io/managed-by"] = "ferry"},
                  annotations = {["pv.kubernetes.io/provisioned-by"] = M.DRIVER}},
      spec = {
        capacity = {storage = volume.quantity(size)}, accessModes = modes,
        persistentVolumeReclaimPolicy = "Delete", storageClassName = sc, volumeMode = "Filesystem",
        claimRef = {apiVersion = "v1", kind = "PersistentVolumeClaim", namespace = ns, name = name},
        csi = {driver = M.DRIVER, volumeHandle = vol.id, fsType = vol.format or "ext4"},
      },
    })
  else
    error(pv, 0)
  end
  local okc, claim = pcall(kube.get, kube, "persistentvolumeclaim/" .. name, {namespace = ns})
  if okc then
    if field(claim, "spec", "volumeName") ~= args.pv_name then
      perr.fail("AlreadyExists", {namespace = ns, pvc = name},
                "portworx: PVC %s/%s already exists and is not bound to %s", ns, name, args.pv_name)
    end
  elseif perr.is_not_found(claim) then
    local labels = {}
    for k, v in pairs(args.labels or {}) do labels[k] = v end
    kube:create({
      apiVersion = "v1", kind = "PersistentVolumeClaim",
      metadata = {name = name, namespace = ns, labels = next(labels) and labels or nil},
      spec = {accessModes = modes, storageClassName = sc, volumeName = args.pv_name,
              resources = {requests = {storage = volume.quantity(size)}}},
    })
  else
    error(claim, 0)
  end
  return M.wait_bound(kube, ns, name, args.timeout)
end

---Waits until claim namespace/name is Bound and returns the restore result
---{namespace, name, pv, volume, object, pvc}.
---@param kube table
---@param namespace string
---@param name string
---@param timeout number
---@return table
function M.wait_bound(kube, namespace, name, timeout)
  local bound = kube:wait({api_version = "v1", kind = "PersistentVolumeClaim", name = name, namespace = namespace},
                          "bound", {timeout = timeout})
  local pv_name = field(bound, "spec", "volumeName")
  local id
  if pv_name then
    local pv = M.get_optional(kube, "persistentvolume/" .. pv_name)
    if pv then id = (M.pv_ref(pv) or {}).id end
  end
  return {namespace = namespace, name = name, pv = pv_name, volume = id, object = bound,
          pvc = {namespace = namespace, name = name}}
end

return M
