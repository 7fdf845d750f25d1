-- support.lua: helpers the specs share — shell quoting, files and temporary
-- directories, running FERRY_BIN as a subprocess, polling with a deadline and
-- catching a raised error. Load it with `require("support")` (tests/run puts
-- tests/lua on the module path); it is not a spec itself.
local luassert = require("luassert")
local task = require("task")

local M = {}

---Quotes s as one word for a POSIX shell.
---@param s any converted with tostring
---@return string
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

---The whole content of the file at path, or nil when it cannot be opened
---(only ever one value, so `tonumber(read(path))` is safe).
---@param path string
---@return string?
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

---Writes text to the file at path, replacing what was there.
---@param path string
---@param text string
function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

---Whether the file at path can be opened for reading.
---@param path string
---@return boolean
function M.exists(path)
  return M.read(path) ~= nil
end

---The non-empty lines of text, without their newlines (none for nil).
---@param text string?
---@return string[]
function M.lines(text)
  local out = {}
  for line in (text or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

---Whether haystack holds needle as plain text (false for a nil haystack).
---@param haystack string?
---@param needle string
---@return boolean
function M.contains(haystack, needle)
  return haystack ~= nil and haystack:find(needle, 1, true) ~= nil
end

---Makes a new directory, readable only by this user, for one spec to work in.
---@return string path
function M.make_tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -m 700 " .. M.q(path)))
  return path
end

---Removes path and everything under it.
---@param path string
function M.remove_tree(path)
  os.execute("rm -rf " .. M.q(path))
end

---The ferry binary under test, from FERRY_BIN; raises when it is not set.
---@return string
function M.ferry_bin()
  return assert(os.getenv("FERRY_BIN"), "FERRY_BIN is not set: run the specs with `bash tests/run`")
end

---The shell command line for `ferry ARGS...` run through env(1) with
---`env_args` before it: "NAME=value" assignments, or options such as
---"-u", "NAME".
---@param args string[]
---@param env_args? string[]
---@return string
function M.ferry_command(args, env_args)
  local parts = {"env"}
  for _, kv in ipairs(env_args or {}) do parts[#parts + 1] = M.q(kv) end
  parts[#parts + 1] = M.q(M.ferry_bin())
  for _, a in ipairs(args) do parts[#parts + 1] = M.q(a) end
  return table.concat(parts, " ")
end

---@class support.Run
---@field code integer exit status; a death by signal N is 128 + N, as a shell reports it
---@field stdout string
---@field stderr string

---Runs `ferry ARGS...` to completion with stdin from /dev/null, keeping its
---output in dir/stdout and dir/stderr. env is as for ferry_command.
---@param dir string
---@param args string[]
---@param env? string[]
---@return support.Run
function M.run_ferry(dir, args, env)
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local _, how, n = os.execute(("%s </dev/null >%s 2>%s"):format(M.ferry_command(args, env), M.q(out), M.q(err)))
  return {code = how == "signal" and 128 + n or n, stdout = M.read(out) or "", stderr = M.read(err) or ""}
end

---Polls cond() every `interval` seconds (default 0.05), suspending the
---calling task in between, until it returns a truthy value or `seconds` have
---passed; returns that value, or nil at the deadline.
---@generic T
---@param seconds number
---@param cond fun(): T?
---@param interval? number
---@return T?
function M.wait_for(seconds, cond, interval)
  local deadline = task.now() + seconds
  while true do
    local v = cond()
    if v then return v end
    if task.now() > deadline then return nil end
    task.sleep(interval or 0.05)
  end
end

---The error fn(...) raises; fails the spec when it returns instead.
---@param fn function
---@param ... any
---@return any err
function M.raised(fn, ...)
  local ok, err = pcall(fn, ...)
  luassert.is_false(ok, "expected an error, got a return")
  return err
end

return M
