-- aws_support.lua: helpers the AWS specs share — the loopback AWS double's
-- unsigned control endpoints (/_ferry/...: reset, seeding, faults, the call
-- log; tests/doubles/aws/control.py) and `ferry -e` in an environment of the
-- spec's choosing. Load it with `require("aws_support")`; it is not a spec.
local http = require("http")
local json = require("json")
local support = require("support")

local M = {}

---The double's base URL (tests/doubles/start exports FERRY_TEST_AWS).
M.url = assert(os.getenv("FERRY_TEST_AWS"), "FERRY_TEST_AWS is not set: run the specs with `bash tests/run`")

---Sends a control request, body encoded as JSON; returns the decoded answer,
---and fails the spec unless the double answers 200.
---@param method string
---@param path string after /_ferry/, such as "faults" or "ecr/seed"
---@param body? table
---@return table
function M.control(method, path, body)
  local res = http.request{method = method, url = M.url .. "/_ferry/" .. path, retries = 0,
                           headers = body and {["Content-Type"] = "application/json"} or nil,
                           body = body and json.encode(body) or nil}
  assert(res.status == 200, ("control %s %s: HTTP %d %s"):format(method, path, res.status, res.body))
  return json.decode(res.body)
end

---The double's call log, oldest first, optionally only one service's calls
---or one operation's.
---@param service? string such as "ecr", "sts", "container" or "imds"
---@param operation? string
---@return table[]
function M.calls(service, operation)
  local q = {}
  if service then q[#q + 1] = "service=" .. service end
  if operation then q[#q + 1] = "operation=" .. operation end
  return M.control("GET", "calls" .. (#q > 0 and "?" .. table.concat(q, "&") or "")).calls
end

---Adds a fault: {service?, operation?, kind, count?, skip?, ...}, as
---tests/doubles/aws/control.py describes.
---@param spec table
function M.fault(spec)
  M.control("POST", "faults", spec)
end

---Runs `ferry -e CODE` in dir with no environment but PATH, HOME=home and
---vars ("NAME=value"), so nothing of this process's AWS setup reaches it.
---@param dir string
---@param home string
---@param code string
---@param vars? string[]
---@return support.Run
function M.ferry_e(dir, home, code, vars)
  local env = {"-i", "PATH=" .. (os.getenv("PATH") or "/usr/bin:/bin"), "HOME=" .. home}
  for _, kv in ipairs(vars or {}) do env[#env + 1] = kv end
  return support.run_ferry(dir, {"-e", code}, env)
end

return M
