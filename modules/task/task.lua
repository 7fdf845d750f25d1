-- task.lua: the Lua half of the task module — fan-out with limits (all, map)
-- and timeouts — built on the native spawn/wait/cancel/deadline in task.c.
local M = ...

-- An error from item i, naming it. Error objects keep their fields (code,
-- status, ...) so callers can still branch on them.
local function item_error(what, i, err)
  if type(err) == "table" then
    local e = {}
    for k, v in pairs(err) do e[k] = v end
    e.message = ("%s: item %d failed: %s"):format(what, i, err.message or tostring(err))
    e.index, e.cause = i, err
    return setmetatable(e, getmetatable(err))
  end
  return ("%s: item %d failed: %s"):format(what, i, tostring(err))
end

local function with_traceback(err)
  if type(err) == "table" then
    if err.traceback == nil then err.traceback = debug.traceback(nil, 2) end
    return err
  end
  return debug.traceback(tostring(err), 2)
end

-- Runs call(i) for i = 1..n with at most `limit` running at once, by a pool
-- of worker tasks. The first failure cancels the rest and is raised, naming
-- its item; if the caller is cancelled, so are the workers.
local function run_all(what, n, call, opts)
  opts = opts or {}
  local limit = opts.limit or math.max(n, 1)
  if math.type(limit) ~= "integer" or limit < 1 then
    error(("%s: limit must be a positive integer, got %s"):format(what, tostring(opts.limit)), 3)
  end
  local results, next_i, failure = {}, 1, nil
  local workers = {}
  local _ <close> = setmetatable({}, {__close = function()
    for _, w in ipairs(workers) do M.cancel(w) end
  end})

  local function worker()
    while not failure and next_i <= n do
      local i = next_i
      next_i = i + 1
      local ok, res = xpcall(call, with_traceback, i)
      if not ok then
        if not failure then
          failure = item_error(what, i, res)
          for _, w in ipairs(workers) do
            if w ~= M.current() then M.cancel(w) end
          end
        end
        return
      end
      results[i] = res
    end
  end

  for w = 1, math.min(limit, n) do workers[w] = M.spawn(worker) end
  for _, w in ipairs(workers) do
    local ok, err = pcall(M.wait, w) -- a worker cancelled before it started, or our own cancellation
    if not ok and not failure then failure = err end
  end
  if failure then error(failure, 0) end
  return results
end

---Runs every function concurrently (at most opts.limit at once); returns
---their first results in order. The first failure cancels the others.
function M.all(fns, opts)
  if type(fns) ~= "table" then error("task.all: expected a list of functions", 2) end
  for i, fn in ipairs(fns) do
    if type(fn) ~= "function" then error(("task.all: item %d is not a function"):format(i), 2) end
  end
  return run_all("task.all", #fns, function(i) return fns[i]() end, opts)
end

---Calls fn(item, i) for every item concurrently (at most opts.limit at
---once); returns the results in order. The first failure cancels the others.
function M.map(list, fn, opts)
  if type(list) ~= "table" then error("task.map: expected a list", 2) end
  if type(fn) ~= "function" then error("task.map: expected a function", 2) end
  return run_all("task.map", #list, function(i) return fn(list[i], i) end, opts)
end

---Runs fn(...) in a task that is cancelled (error code "timeout") after
---`seconds`; returns its results.
function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds < 0 then error("task.timeout: seconds must be a number >= 0", 2) end
  local t = M.spawn(fn, ...)
  M.deadline(t, seconds)
  local _ <close> = setmetatable({}, {__close = function() M.cancel(t) end})
  return M.wait(t)
end

return M
