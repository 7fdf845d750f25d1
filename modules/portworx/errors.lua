-- errors.lua (module "portworx.errors"): the error objects the portworx
-- module raises and the argument checks every public function shares.
--
-- Service failures are ferry error objects (errors.new). An SDK answer keeps
-- its gRPC code twice: `code` is the code's canonical name as grpc-go spells
-- it (codes.Code.String(): "NotFound", "AlreadyExists", "InvalidArgument",
-- "FailedPrecondition", "PermissionDenied", "Unauthenticated", "Internal",
-- "Unavailable", ...), the same CamelCase the kube module uses for Status
-- reasons, and `grpc_code` is its number. Conditions the module itself
-- detects use lower-case codes (see the meta file's list): "snapshot_limit",
-- "attached", "not_portworx", "unsupported", "freeze_failed", "thaw_failed",
-- "failed", "timeout", plus the http module's transport codes ("connect",
-- "timeout", "tls", ...). Bad arguments raise plain strings
-- "portworx.<fn>: ..." at the caller's line.
local errors = require("errors")

local M = {}

---gRPC code number → canonical name (grpc-go codes.Code.String()).
M.GRPC_NAMES = {
  [0] = "OK", [1] = "Canceled", [2] = "Unknown", [3] = "InvalidArgument", [4] = "DeadlineExceeded",
  [5] = "NotFound", [6] = "AlreadyExists", [7] = "PermissionDenied", [8] = "ResourceExhausted",
  [9] = "FailedPrecondition", [10] = "Aborted", [11] = "OutOfRange", [12] = "Unimplemented", [13] = "Internal",
  [14] = "Unavailable", [15] = "DataLoss", [16] = "Unauthenticated",
}

-- The gRPC code an HTTP status stands for when the body carries none (a
-- plain-text routing error, a proxy's answer): the inverse of grpc-gateway's
-- HTTPStatusFromCode, with 401 as Unauthenticated.
local FROM_HTTP = {
  [400] = 3, [401] = 16, [403] = 7, [404] = 5, [405] = 12, [408] = 1, [409] = 6, [412] = 9, [429] = 8,
  [500] = 13, [501] = 12, [502] = 14, [503] = 14, [504] = 4,
}

---Raises a module error object: code, message from fmt and ..., plus fields.
---@param code string
---@param fields? table
---@param fmt string
function M.fail(code, fields, fmt, ...)
  local e = {}
  for k, v in pairs(fields or {}) do e[k] = v end
  e.code, e.message = code, fmt:format(...)
  error(errors.new(e), 0)
end

---The error object for a non-2xx SDK gateway answer. body: the decoded JSON
---body ({error, code, message, details}) or nil when it was not JSON (then
---text is its raw text).
---@param status integer
---@param body table?
---@param text string
---@param op string "POST /v1/volumes/snapshots"
---@return table
function M.from_response(status, body, text, op)
  local grpc = type(body) == "table" and math.tointeger(body.code) or nil
  if grpc == nil or grpc == 0 then grpc = FROM_HTTP[status] or 2 end
  local msg = type(body) == "table" and (body.message or body.error) or nil
  if type(msg) ~= "string" or msg == "" then
    msg = (text or ""):gsub("%s+$", "")
    if msg == "" then msg = ("the gateway answered HTTP %d"):format(status) end
    msg = msg:sub(1, 300)
  end
  return errors.new{
    code = M.GRPC_NAMES[grpc] or ("Code" .. grpc), grpc_code = grpc, status = status, op = op,
    sdk_message = msg, message = ("portworx: %s: %s"):format(op, msg),
    details = type(body) == "table" and body.details or nil,
    retryable = status == 429 or status == 502 or status == 503 or status == 504,
  }
end

---Whether err is an SDK "already exists" answer: gRPC AlreadyExists, or the
---500 "... already exists" that SnapshotCreate gives for a duplicate name.
---@param err any
---@return boolean
function M.is_already_exists(err)
  if not errors.is(err) then return false end
  if err.code == "AlreadyExists" then return true end
  local text = type(err.sdk_message) == "string" and err.sdk_message or tostring(err.message or "")
  return text:lower():find("already exists", 1, true) ~= nil
end

---Whether err is a not-found answer (gRPC NotFound or the kube NotFound reason).
---@param err any
---@return boolean
function M.is_not_found(err)
  return errors.is(err, "NotFound")
end

---Whether an error's text says something was not found ("Volume id 1 not
---found", "No Backup status found").
---@param err any
---@return boolean
function M.says_not_found(err)
  local text = tostring(type(err) == "table" and (err.sdk_message or err.message) or err):lower()
  return text:find("not found", 1, true) ~= nil or text:find("^no .* found") ~= nil
end

---A NotFound error object (not raised), for functions that return nil, err.
---@param message string
---@return table
function M.not_found(message)
  return errors.new{code = "NotFound", grpc_code = 5, message = message}
end

local AMBIGUOUS_STATUS = {[500] = true, [502] = true, [503] = true, [504] = true}
local NEVER_SENT = {connect = true, resolve = true, tls = true}

---Whether a failed write may have happened all the same: a lost connection or
---timeout after sending, or a 5xx answer.
---@param err any
---@return boolean
function M.is_ambiguous(err)
  if not errors.is(err) then return false end
  if err.status then return AMBIGUOUS_STATUS[err.status] == true end
  return err.url ~= nil and not NEVER_SENT[err.code]
end

local LIMIT_CODES = {ResourceExhausted = true, FailedPrecondition = true, OutOfRange = true, Aborted = true}

---Whether a failed snapshot create could be Portworx's snapshot limit (its
---code and text are not documented, so any server-side refusal could be).
---@param err any
---@return boolean
function M.may_be_limit(err)
  if not errors.is(err) then return false end
  return LIMIT_CODES[err.code] or (err.status ~= nil and err.status >= 500) or err.code == "failed"
end

---Whether an error's text speaks of a snapshot limit.
---@param err any
---@return boolean
function M.says_limit(err)
  local text = tostring(type(err) == "table" and (err.sdk_message or err.message) or err):lower()
  return text:find("limit", 1, true) ~= nil or text:find("maximum", 1, true) ~= nil
         or text:find("too many", 1, true) ~= nil
end

---Raises the "snapshot_limit" error for vol (a normalized volume) with count
---snapshots; cause is the error the create failed with.
---@param vol table
---@param count integer
---@param cause any
function M.snapshot_limit(vol, count, cause)
  local cause_text = type(cause) == "table" and (cause.sdk_message or cause.message) or tostring(cause)
  M.fail("snapshot_limit", {volume = vol.id, count = count, limit = 64, cause = cause},
         "portworx: volume %s (%s) cannot take another snapshot: Portworx allows 64 snapshots per volume and it "
         .. "has %d; delete old ones first, e.g. client:prune{labels = {...}, keep = N} (Portworx said: %s)",
         tostring(vol.id), tostring(vol.name), count, tostring(cause_text))
end

---Returns found (a volume named name, or nil) when its parent is parent_id;
---else raises "AlreadyExists": the snapshot or clone name (what) is taken.
---fields (grpc_code for the SDK) are added to {existing = found}.
---@param found table?
---@param name string
---@param parent_id string
---@param what "snapshot"|"clone"
---@param fields? table
---@return table?
function M.check_parent(found, name, parent_id, what, fields)
  if not found or found.parent == parent_id then return found end
  local e = {existing = found}
  for k, v in pairs(fields or {}) do e[k] = v end
  M.fail("AlreadyExists", e,
         "portworx: a volume named %q already exists with parent %s, not %s; choose another %s name", name,
         tostring(found.parent or "(none)"), parent_id, what)
end

---Raises "FailedPrecondition" when v (a normalized volume) is not a snapshot
---or clone and opts.force is not set: delete removes only those by default.
---@param v table
---@param opts table
function M.check_deletable(v, opts)
  if not v.parent and not opts.force then
    M.fail("FailedPrecondition", {grpc_code = 9, volume = v.id},
           "portworx: volume %s (%s) is not a snapshot or clone; pass {force = true} to delete it", v.id,
           tostring(v.name))
  end
end

---------------------------------------------------------------------------
-- Arguments

-- Raises "portworx.<fname>: msg" at the caller's line: the first stack frame
-- outside modules/portworx.
function M.argerror(fname, msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info or not tostring(info.source):find("modules/portworx/", 1, true) then break end
    level = level + 1
  end
  error(("portworx.%s: %s"):format(fname, msg), level)
end

function M.check_table(fname, args)
  if type(args) ~= "table" then M.argerror(fname, "expected a table of arguments") end
  return args
end

function M.opt_string(fname, args, key)
  local v = args[key]
  if v ~= nil and (type(v) ~= "string" or v == "") then
    M.argerror(fname, ("field '%s' must be a non-empty string"):format(key))
  end
  return v
end

function M.need_string(fname, args, key)
  if args[key] == nil then M.argerror(fname, ("field '%s' is required"):format(key)) end
  return M.opt_string(fname, args, key)
end

function M.opt_number(fname, args, key, default)
  local v = args[key]
  if v == nil then return default end
  if type(v) ~= "number" or v < 0 then M.argerror(fname, ("field '%s' must be a number >= 0"):format(key)) end
  return v
end

-- A {string = string} table, or nil.
function M.opt_labels(fname, args, key)
  local v = args[key]
  if v == nil then return nil end
  if type(v) ~= "table" then M.argerror(fname, ("field '%s' must be a table of strings"):format(key)) end
  for k, s in pairs(v) do
    if type(k) ~= "string" or type(s) ~= "string" then
      M.argerror(fname, ("field '%s' must map strings to strings"):format(key))
    end
  end
  return v
end

-- An id, a name, or a table with an id (a volume or snapshot this module returned).
function M.need_ref(fname, args, key)
  local v = args[key]
  if type(v) == "table" then v = v.id end
  if type(v) ~= "string" or v == "" then
    M.argerror(fname, ("field '%s' must be an id, a name or a table with an id"):format(key))
  end
  return v
end

return M
