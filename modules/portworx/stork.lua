-- stork.lua (module "portworx.stork"): group snapshots through STORK's
-- GroupVolumeSnapshot (stork.libopenstorage.org/v1alpha1; the SDK has no
-- group snapshot, notes §1.5 and §2.4), with pre/post Rules for application
-- consistency. Every backend offers it; it needs only the kube client.
--
-- A rule argument is the name of an existing Rule in the namespace, or a
-- table {selector = {app = "mongo"}, container?, command = "..." or
-- commands = {...}, background?} from which a Rule "<group>-pre" / "-post"
-- is created (kept up to date with apply). The group is idempotent by name:
-- an existing GroupVolumeSnapshot of that name is waited for, not recreated.
-- Ready is stage Final with status Successful; status Failed raises at once.
local json = require("json")

local perr = require("portworx.errors")
local pvc = require("portworx.pvc")

local M = {}

local API = "stork.libopenstorage.org/v1alpha1"
local STORK_VS_API = "volumesnapshot.external-storage.k8s.io/v1"
local field = pvc.field

local function rule_object(fname, name, namespace, spec)
  if type(spec.selector) ~= "table" or next(spec.selector) == nil then
    perr.argerror(fname, "a rule table needs selector = {label = value}")
  end
  local commands = spec.commands or (spec.command and {spec.command})
  if type(commands) ~= "table" or #commands == 0 then
    perr.argerror(fname, "a rule table needs command = \"...\" or commands = {...}")
  end
  local actions = {}
  for _, c in ipairs(commands) do
    if type(c) ~= "string" then perr.argerror(fname, "rule commands are strings") end
    actions[#actions + 1] = {type = "command", value = c, background = spec.background or nil,
                             runInSinglePod = spec.single_pod or nil}
  end
  return {apiVersion = API, kind = "Rule", metadata = {name = name, namespace = namespace},
          rules = {{podSelector = spec.selector, container = spec.container, actions = actions}}}
end

-- The Rule name to put in the spec (creating the Rule from a table).
local function rule(kube, fname, value, name, namespace)
  if value == nil then return nil end
  if type(value) == "string" then
    if value == "" then perr.argerror(fname, "a rule name must not be empty") end
    return value
  end
  if type(value) ~= "table" then perr.argerror(fname, "a rule is a Rule name or a table") end
  kube:apply(rule_object(fname, name, namespace, value))
  return name
end

---The snapshots of a finished group as snapshot tables (as the kube
---backend's STORK snapshots).
---@param gvs table
---@return table[]
function M.children(gvs)
  local out = {}
  local ns = field(gvs, "metadata", "namespace")
  for _, s in ipairs(field(gvs, "status", "volumeSnapshots") or {}) do
    local name = s.VolumeSnapshotName or s.volumeSnapshotName
    local ds = s.DataSource or s.dataSource or {}
    local id = field(ds, "portworxVolume", "snapshotId")
    out[#out + 1] = {
      id = id, name = name, namespace = ns, parent = s.ParentVolumeID or s.parentVolumeID,
      task = s.TaskID or s.taskID, api = "stork", snapshot = true, readonly = true, clone = false, ready = true,
      labels = {}, object = {api_version = STORK_VS_API, kind = "VolumeSnapshot", namespace = ns, name = name},
    }
  end
  return out
end

---Takes a group snapshot and waits until it is Successful.
---args: {namespace, selector, name?, pre_rule?, post_rule?,
---restore_namespaces?, options?, labels?, timeout?}.
---@param kube table
---@param args table
---@param default_timeout number
---@return table {name, namespace, snapshots = {...}, object}
function M.group_snapshot(kube, args, default_timeout)
  local fname = "group_snapshot"
  local ns = perr.need_string(fname, args, "namespace")
  local selector = perr.opt_labels(fname, args, "selector")
  if not selector or next(selector) == nil then perr.argerror(fname, "selector = {label = value} is required") end
  local name = perr.opt_string(fname, args, "name") or ("ferry-group-" .. os.date("!%Y%m%d-%H%M%S"))
  local timeout = perr.opt_number(fname, args, "timeout", default_timeout)
  local rns = args.restore_namespaces
  if rns ~= nil and type(rns) ~= "table" then perr.argerror(fname, "restore_namespaces must be a list") end
  local spec = {
    preExecRule = rule(kube, fname, args.pre_rule, name .. "-pre", ns),
    postExecRule = rule(kube, fname, args.post_rule, name .. "-post", ns),
    pvcSelector = {matchLabels = selector},
    restoreNamespaces = rns,
    options = perr.opt_labels(fname, args, "options"),
  }
  local obj = {apiVersion = API, kind = "GroupVolumeSnapshot",
               metadata = {name = name, namespace = ns, labels = perr.opt_labels(fname, args, "labels")}, spec = spec}
  local ok, err = pcall(kube.create, kube, obj)
  if not ok then
    if not perr.is_already_exists(err) then error(err, 0) end
    local existing = kube:get({api_version = API, kind = "GroupVolumeSnapshot", namespace = ns, name = name})
    local want, have = json.encode(selector), json.encode(field(existing, "spec", "pvcSelector", "matchLabels") or {})
    if want ~= have then
      perr.fail("AlreadyExists", nil, "portworx: GroupVolumeSnapshot %s/%s already exists with selector %s", ns, name,
                have)
    end
  end
  local done = kube:wait({api_version = API, kind = "GroupVolumeSnapshot", namespace = ns, name = name}, function(o)
    local stage, status = field(o, "status", "stage"), field(o, "status", "status")
    if status == "Failed" then
      perr.fail("failed", {last = o}, "portworx: group snapshot %s/%s failed at stage %s", ns, name,
                tostring(stage))
    end
    return stage == "Final" and status == "Successful", ("stage %s, status %s"):format(tostring(stage),
                                                                                      tostring(status))
  end, {timeout = timeout})
  return {name = name, namespace = ns, snapshots = M.children(done), object = done}
end

return M
