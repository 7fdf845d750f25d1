-- freeze.lua (module "portworx.freeze"): application-consistent snapshots —
-- a freeze command before, a thaw command after, both through kube exec
-- (MongoDB: db.fsyncLock() / db.fsyncUnlock()).
--
-- The invariant: once the freeze command has been started, the thaw command
-- runs, whatever happens next — the freeze fails or times out, the snapshot
-- fails, times out or the calling task is cancelled (a step timeout,
-- SIGINT). Cancellation is sticky on a task (every later suspension raises
-- again), so the thaw runs in a task of its own, shielded from signals like
-- a teardown, and is retried (3 attempts) when exec itself fails; a thaw
-- that exits non-zero is not retried. The snapshot runs under task.timeout
-- so its deadline cancels only the snapshot, never the thaw.
local errors = require("errors")
local log = require("log")
local task = require("task")

local perr = require("portworx.errors")

local M = {}

M.attempts = 3 -- thaw attempts when exec raises
M.exec_timeout = 60 -- seconds a freeze or thaw command may take when its spec does not say

local function describe(spec)
  local pod = spec.pod
  if type(pod) == "table" then pod = (pod.metadata or pod).name end
  return ("%s/%s: %s"):format(tostring(spec.namespace), tostring(pod), table.concat(spec.argv, " "))
end

-- Runs one command spec {pod, namespace, container?, argv, timeout?}.
local function exec(kube, spec)
  return kube:exec(spec.pod, spec.argv, {namespace = spec.namespace, container = spec.container,
                                         timeout = spec.timeout or M.exec_timeout})
end

---Checks a freeze/thaw spec and fills in its namespace; raises a plain
---argument error naming fname.
---@param fname string
---@param key string "freeze" or "thaw"
---@param spec any
---@param namespace string default namespace
---@return table?
function M.check(fname, key, spec, namespace)
  if spec == nil then return nil end
  if type(spec) ~= "table" then perr.argerror(fname, ("field '%s' must be a table {pod, argv}"):format(key)) end
  local pod = spec.pod
  if not ((type(pod) == "string" and pod ~= "") or type(pod) == "table") then
    perr.argerror(fname, ("%s.pod must be a pod name or object"):format(key))
  end
  if type(spec.argv) ~= "table" or #spec.argv == 0 then
    perr.argerror(fname, ("%s.argv must be a non-empty list of strings"):format(key))
  end
  for _, a in ipairs(spec.argv) do
    if type(a) ~= "string" then perr.argerror(fname, ("%s.argv must be a list of strings"):format(key)) end
  end
  if spec.container ~= nil and type(spec.container) ~= "string" then
    perr.argerror(fname, ("%s.container must be a string"):format(key))
  end
  local out = {}
  for k, v in pairs(spec) do out[k] = v end
  if type(pod) == "table" and pod.metadata and pod.metadata.namespace then out.namespace = pod.metadata.namespace end
  out.namespace = out.namespace or namespace
  return out
end

-- The thaw, in the current task: nil, or the error object it ended with.
local function thaw_now(kube, spec)
  local last
  for attempt = 1, M.attempts do
    local ok, res = pcall(exec, kube, spec)
    if ok and res.exit_code == 0 then
      log.info("portworx: thawed (%s)", describe(spec))
      return nil
    elseif ok then
      return errors.new{code = "thaw_failed", exit_code = res.exit_code, stdout = res.stdout, stderr = res.stderr,
                        message = ("portworx: thaw command failed with exit code %d (%s): %s"):format(
                          res.exit_code, describe(spec), (res.stderr or ""):gsub("%s+$", ""))}
    end
    last = res
    log.warn("portworx: thaw attempt %d failed (%s): %s", attempt, describe(spec), tostring(res))
    if attempt < M.attempts then task.sleep(0.2 * attempt) end
  end
  return errors.new{code = "thaw_failed", cause = last,
                    message = ("portworx: thaw command could not run (%s): %s"):format(describe(spec), tostring(last))}
end

---Runs the thaw in a shielded task of its own and waits for it; nil, or
---the error it ended with. Never raises.
---@param kube table
---@param spec table
---@return table?
function M.thaw(kube, spec)
  local t = task.spawn(thaw_now, kube, spec)
  task.shield(t, true)
  local ok, res = pcall(task.wait, t)
  if ok then return res end
  -- our own task was cancelled while waiting: the thaw goes on in its task
  log.warn("portworx: stopped waiting for the thaw (%s): %s; it keeps running", describe(spec), tostring(res))
  return nil
end

---fn() between freeze and thaw (either may be nil), under a deadline of
---`timeout` seconds for fn. Returns fn's result. Raises "freeze_failed"
---(then fn never ran), fn's error (the thaw ran), or "thaw_failed" with the
---result in err.snapshot (fn succeeded but the application may still be
---frozen).
---@param kube table?
---@param freeze table?
---@param thaw table?
---@param timeout number
---@param fn fun(): any
---@param what string for messages
---@return any
function M.run(kube, freeze, thaw, timeout, fn, what)
  local function timed()
    local ok, res = pcall(task.timeout, timeout, fn)
    if ok then return res end
    if errors.is(res, "timeout") and res.op == nil and res.url == nil then
      perr.fail("timeout", {cause = res}, "portworx: %s did not finish within %gs", what, timeout)
    end
    error(res, 0)
  end
  if not freeze and not thaw then return timed() end
  local freeze_err
  if freeze then
    local ok, res = pcall(exec, kube, freeze)
    if not ok then
      freeze_err = errors.new{code = "freeze_failed", cause = res,
                              message = ("portworx: freeze command could not run (%s): %s"):format(
                                describe(freeze), tostring(res))}
    elseif res.exit_code ~= 0 then
      freeze_err = errors.new{code = "freeze_failed", exit_code = res.exit_code, stdout = res.stdout,
                              stderr = res.stderr,
                              message = ("portworx: freeze command failed with exit code %d (%s): %s"):format(
                                res.exit_code, describe(freeze), (res.stderr or ""):gsub("%s+$", ""))}
    else
      log.info("portworx: froze (%s)", describe(freeze))
    end
  end
  local ok, result = false, freeze_err
  if not freeze_err then ok, result = pcall(timed) end
  local thaw_err = thaw and M.thaw(kube, thaw) or nil
  if not ok then
    if thaw_err then
      log.error("%s", tostring(thaw_err))
      if type(result) == "table" then result.thaw_error = thaw_err end
    end
    error(result, 0)
  end
  if thaw_err then
    thaw_err.snapshot = result
    error(thaw_err, 0)
  end
  return result
end

return M
