-- pxctl.lua (module "portworx.pxctl"): the "pxctl" backend — `pxctl -j ...`
-- run through kube exec in a Portworx pod, as the reference Lambda did, but
-- reading JSON instead of columns (notes §3).
--
-- The pod: label name=portworx (the operator's selector; never "a pod whose
-- name contains portworx": portworx-api pods run only a pause image), in
-- opts.namespace or any namespace, Running and Ready; container "portworx";
-- the binary opts.pxctl (default /opt/pwx/bin/pxctl). The pod is chosen
-- once and chosen again when it disappears.
--
-- Commands (current syntax; each list answer is a JSON array of Volume
-- objects with pxctl's encoding: defaults present, enums "up"/"attached"):
--   volume list --all | --snapshot [--parent VOL] [--label k=v,...] [--name N],
--   volume inspect ID, volume snapshot create --name N
--   [--label k=v,...] VOL, volume clone --name N [--label ...] SNAP,
--   volume restore --snapshot SNAP VOL, volume delete ID (its Y/N prompt is
--   answered on stdin). A create's answer is parsed for its id with
--   `([0-9]+)%s*$` (or a JSON {"id"}), since the wording differs by version.
-- When `volume snapshot create` is not known (PX 1.x), `snap create` is used
-- from then on, as the reference did.
--
-- Reads are retried when exec itself fails (connection lost); writes are
-- not, but snapshot and clone check for an existing volume of the name
-- first, so a rerun returns it. A non-zero exit raises an error object with
-- the command's stderr: code "NotFound" / "AlreadyExists" /
-- "Unauthenticated" when the text says so, else "pxctl_failed". Cloud
-- snapshots need the sdk backend.
--
-- PX-Security: pxctl reads its token from PXCTL_AUTH_TOKEN. When a token is
-- known (opts.token, PORTWORX_AUTH_TOKEN, or the px-admin-token Secret in
-- the pod's namespace, as for the sdk backend) the command runs as
-- `env PXCTL_AUTH_TOKEN=<token> pxctl ...`; an Unauthenticated answer
-- re-reads the Secret once. The token is masked in Ferry's output, but it
-- travels in the exec request's URL, which the API server's audit log may
-- record: prefer the sdk backend on secured clusters.
local errors = require("errors")
local json = require("json")
local log = require("log")
local task = require("task")

local gateway = require("portworx.gateway")
local perr = require("portworx.errors")
local pvc = require("portworx.pvc")
local volume = require("portworx.volume")

local M = {}

local P = {}
P.__index = P

M.SNAPSHOT_LIMIT = 64
M.exec_timeout = 120 -- seconds one pxctl command may take
M.read_attempts = 3

---@param opts table portworx.connect's options
---@return table
function M.new(opts)
  local self = setmetatable({}, P)
  self.name = "pxctl"
  self.kube = opts.kube
  self.namespace = opts.namespace
  self.binary = opts.pxctl or "/opt/pwx/bin/pxctl"
  self.container = "portworx"
  self.legacy = false -- PX 1.x `snap` commands
  -- the token source (no endpoint: the gateway object is used for its token only)
  self.auth = gateway.new{token = opts.token, kube = opts.kube, namespace = opts.namespace,
                          token_secret = opts.token_secret, getenv = opts.getenv}
  return self
end

---------------------------------------------------------------------------
-- Running pxctl

local function ready(pod)
  if pvc.field(pod, "status", "phase") ~= "Running" or pvc.field(pod, "metadata", "deletionTimestamp") then
    return false
  end
  for _, c in ipairs(pvc.field(pod, "status", "conditions") or {}) do
    if c.type == "Ready" then return c.status == "True" end
  end
  return false
end

---The Portworx pod to exec in: {name, namespace}.
function P:pod()
  if self._pod then return self._pod end
  local pods = self.kube:list("pods", {namespace = self.namespace, all_namespaces = self.namespace == nil,
                                       label_selector = {name = "portworx"}})
  table.sort(pods, function(a, b) return a.metadata.name < b.metadata.name end)
  for _, p in ipairs(pods) do
    if ready(p) then
      self._pod = {name = p.metadata.name, namespace = p.metadata.namespace}
      return self._pod
    end
  end
  perr.fail("no_portworx_pod", nil, "portworx: no Ready pod labelled name=portworx in %s (%d found)",
            self.namespace or "any namespace", #pods)
end

local function classify(text)
  local t = text:lower()
  if t:find("not found", 1, true) or t:find("does not exist", 1, true) or t:find("no such", 1, true) then
    return "NotFound"
  end
  if t:find("already exists", 1, true) then return "AlreadyExists" end
  if t:find("unauthenticated", 1, true) or t:find("authentication token", 1, true) then return "Unauthenticated" end
  return "pxctl_failed"
end

---Runs pxctl with args; returns stdout. opts: read (retry when exec fails),
---stdin.
---@param args string[]
---@param opts? {read?: boolean, stdin?: string}
---@return string
function P:run(args, opts)
  opts = opts or {}
  local command = "pxctl " .. table.concat(args, " ")
  local attempts = opts.read and M.read_attempts or 1
  local refreshed = false
  local attempt = 0
  while true do
    attempt = attempt + 1
    local pod = self:pod()
    if not self.auth._namespace then self.auth._namespace = pod.namespace end
    local token, gen = self.auth:token()
    local argv = token and {"env", "PXCTL_AUTH_TOKEN=" .. token, self.binary} or {self.binary}
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local ok, res = pcall(self.kube.exec, self.kube, pod, argv, {namespace = pod.namespace,
                                                                 container = self.container, stdin = opts.stdin,
                                                                 timeout = M.exec_timeout})
    if ok then
      if res.exit_code == 0 then return res.stdout end
      local text = (res.stderr ~= "" and res.stderr or res.stdout):gsub("%s+$", "")
      local code = classify(text)
      if code == "Unauthenticated" and not refreshed and self.auth:refresh_token(gen) then
        refreshed = true
        attempt = attempt - 1
      else
        perr.fail(code, {exit_code = res.exit_code, stderr = res.stderr, stdout = res.stdout, command = command,
                         pxctl_message = text},
                  "portworx: %s (in %s/%s) exited %d: %s", command, pod.namespace, pod.name, res.exit_code, text)
      end
    else
      local err = res
      if errors.is(err, "NotFound") then self._pod = nil end -- the pod went away: choose again
      if not errors.is(err) or err.code == "cancelled" or err.code == "interrupted" or attempt >= attempts then
        error(err, 0)
      end
      log.debug("portworx: %s: %s; retrying", command, tostring(err))
      task.sleep(0.2 * attempt)
    end
  end
end

---pxctl -j args, decoded.
function P:json(args, opts)
  local full = {"-j"}
  for _, a in ipairs(args) do full[#full + 1] = a end
  local out = self:run(full, opts)
  local ok, doc = pcall(json.decode, out)
  if not ok then
    perr.fail("decode", {stdout = out}, "portworx: pxctl %s: the output is not JSON: %s", table.concat(args, " "),
              out:sub(1, 200))
  end
  return doc
end

local function label_arg(labels)
  local keys = {}
  for k in pairs(labels or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. labels[k] end
  return table.concat(parts, ",")
end

-- The id in a create command's answer: JSON {"id"} or a trailing number.
local function created_id(out)
  local ok, doc = pcall(json.decode, out)
  if ok and type(doc) == "table" then
    local id = doc.id or doc.volume_id or doc.snapshot_id or (type(doc[1]) == "table" and doc[1].id)
    if id then return tostring(id) end
  end
  return out:match("([0-9]+)%s*$")
end

---------------------------------------------------------------------------
-- Volumes

local function as_list(doc)
  if type(doc) ~= "table" then return {} end
  if doc.id then return {doc} end
  return doc
end

---`volume list` with these flags, normalized (snapshots only with
-----snapshot; everything with --all).
function P:list(flags)
  local args = {"volume", "list"}
  for _, a in ipairs(flags) do args[#args + 1] = a end
  local out = {}
  for _, v in ipairs(as_list(self:json(args, {read = true}))) do out[#out + 1] = volume.normalize(v) end
  return out
end

local function filter_flags(flags, name, labels)
  if name then flags[#flags + 1] = "--name"; flags[#flags + 1] = name end
  local l = label_arg(labels)
  if l ~= "" then flags[#flags + 1] = "--label"; flags[#flags + 1] = l end
  return flags
end

---A volume by id or name (`volume inspect`), or nil and NotFound.
function P:volume(ref)
  local ok, doc = pcall(self.json, self, {"volume", "inspect", ref}, {read = true})
  if ok then
    for _, v in ipairs(as_list(doc)) do
      local n = volume.normalize(v)
      if n.id == ref or n.name == ref then return n end
    end
  elseif not perr.is_not_found(doc) then
    error(doc, 0)
  end
  return nil, perr.not_found(("portworx: no volume has the id or name %q"):format(ref))
end

function P:volumes(filters)
  local out = {}
  for _, v in ipairs(self:list(filter_flags({"--all"}, filters.name, filters.labels))) do
    if (filters.name == nil or v.name == filters.name) and volume.has_labels(v.labels, filters.labels) then
      out[#out + 1] = v
    end
  end
  return out
end

function P:volume_for_pvc(ref)
  local v = ref.id and self:volume(ref.id) or nil
  if v then return v end
  local err
  v, err = self:volume(ref.name)
  if not v then error(err, 0) end
  return v
end

---------------------------------------------------------------------------
-- Snapshots and clones

function P:snapshots(vol, labels)
  local flags = filter_flags({"--snapshot"}, nil, labels)
  if vol then flags[#flags + 1] = "--parent"; flags[#flags + 1] = vol.id end
  return volume.snapshots_of(self:list(flags), vol, labels)
end

function P:snapshot_ref(ref)
  return self:volume(ref)
end

-- The volume named name when it has parent_id; AlreadyExists for another.
function P:_existing(name, parent_id, what)
  return perr.check_parent(self:list({"--all", "--name", name})[1], name, parent_id, what)
end

function P:_snap_create(vol, name, labels)
  local tail = {"--name", name}
  local l = label_arg(labels)
  if l ~= "" then tail[#tail + 1] = "--label"; tail[#tail + 1] = l end
  if not self.legacy then
    local args = {"volume", "snapshot", "create"}
    for _, a in ipairs(tail) do args[#args + 1] = a end
    args[#args + 1] = vol.id
    local ok, out = pcall(self.run, self, args)
    if ok then return out end
    local text = (type(out) == "table" and out.pxctl_message or ""):lower()
    if not (text:find("unknown", 1, true) or text:find("invalid command", 1, true)) then error(out, 0) end
    log.debug("portworx: pxctl has no `volume snapshot create`; using `snap create`")
    self.legacy = true
  end
  local args = {"snap", "create", vol.id}
  for _, a in ipairs(tail) do args[#args + 1] = a end
  return self:run(args)
end

function P:snapshot(vol, name, labels, _)
  local existing = self:_existing(name, vol.id, "snapshot")
  if existing then return existing end
  local ok, out = pcall(self._snap_create, self, vol, name, labels)
  if not ok then
    local err = out
    if perr.says_limit(err) or (errors.is(err, "pxctl_failed") and #self:snapshots(vol) >= M.SNAPSHOT_LIMIT) then
      perr.snapshot_limit(vol, #self:snapshots(vol), err)
    end
    error(err, 0)
  end
  local id = created_id(out)
  local v = id and self:volume(id) or self:_existing(name, vol.id, "snapshot")
  if not v then perr.fail("decode", {stdout = out}, "portworx: pxctl snapshot create gave no id: %s", out) end
  return v
end

function P:clone(from, name, labels, _)
  local existing = self:_existing(name, from.id, "clone")
  if existing then return existing end
  local args = {"volume", "clone", "--name", name}
  local l = label_arg(labels)
  if l ~= "" then args[#args + 1] = "--label"; args[#args + 1] = l end
  args[#args + 1] = from.id
  local out = self:run(args)
  local id = created_id(out)
  local v = id and self:volume(id) or self:_existing(name, from.id, "clone")
  if not v then perr.fail("decode", {stdout = out}, "portworx: pxctl volume clone gave no id: %s", out) end
  return v
end

function P:delete(ref, opts)
  local id = type(ref) == "table" and ref.id or ref
  local v = self:volume(id)
  if not v then return false end
  perr.check_deletable(v, opts)
  local args = self.legacy and v.snapshot and {"snap", "delete", v.id} or {"volume", "delete", v.id}
  local ok, err = pcall(self.run, self, args, {stdin = "Y\n"})
  if not ok and not perr.is_not_found(err) then error(err, 0) end
  return ok
end

function P:restore(vol, snap, _)
  self:run({"volume", "restore", "--snapshot", snap.id, vol.id})
end

---A PVC restored from snap: a pxctl clone bound through a static PV.
function P:restore_pvc(snap, a)
  local clone_name = ("ferry-%s-%s"):format(a.namespace, a.name)
  local clone = self:clone(snap, clone_name, {pvc = a.name, namespace = a.namespace})
  return pvc.bind_static(self.kube, clone, {namespace = a.namespace, name = a.name, pv_name = clone_name,
                                            storage_class = a.storage_class, size = a.size or clone.size,
                                            labels = a.labels, timeout = a.timeout})
end

return M
