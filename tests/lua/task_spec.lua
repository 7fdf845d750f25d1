-- task_spec.lua: the task module — spawn/wait, sleep, map/all with limits,
-- timeouts, cancellation and contexts — run inside the Ferry task that runs
-- busted, so task.sleep and task.wait really suspend.
local errors = require("errors")
local support = require("support")
local task = require("task")

-- Waits (suspending this task) until cond() is true; fails after `seconds`.
local function wait_until(cond, seconds, what)
  if not support.wait_for(seconds or 5, cond, 0.001) then
    error("timed out waiting for " .. (what or "a condition"), 2)
  end
end

local raised = support.raised -- the error a call raises; fails the spec when it returns

describe("task", function()
  it("returns a spawned function's result from wait", function()
    local t = task.spawn(function(a, b) return a + b end, 2, 3)
    assert.are.equal(5, task.wait(t))
  end)

  it("returns every result, nils included, from wait", function()
    local t = task.spawn(function() return 1, nil, "three" end)
    assert.are.same({1, nil, "three", n = 3}, table.pack(task.wait(t)))
    assert.are.same({1, nil, "three", n = 3}, table.pack(t:wait())) -- again, as a method
  end)

  it("re-raises a task's error with the task's traceback", function()
    local t = task.spawn(function() error("boom") end)
    local err = raised(task.wait, t)
    assert.is_string(err)
    assert.matches("boom", err, 1, true)
    assert.matches("stack traceback", err, 1, true)
    assert.matches("task_spec.lua", err, 1, true) -- the traceback reaches the failing function
  end)

  it("re-raises an error object with its fields and a traceback field", function()
    local t = task.spawn(function() error(errors.new{code = "nope", message = "no way", extra = 7}) end)
    local err = raised(task.wait, t)
    assert.is_true(errors.is(err, "nope"))
    assert.are.equal("no way", err.message)
    assert.are.equal(7, err.extra)
    assert.is_string(err.traceback)
    assert.matches("stack traceback", err.traceback, 1, true)
  end)

  it("closes a failing task's to-be-closed variables", function()
    local closed_with
    local t = task.spawn(function()
      local _ <close> = setmetatable({}, {__close = function(_, err) closed_with = err end})
      error("step failed", 0)
    end)
    raised(task.wait, t)
    assert.are.equal("step failed", closed_with)
  end)

  it("lets other tasks run while one sleeps", function()
    local events = {}
    local function worker(name)
      events[#events + 1] = "start " .. name
      task.sleep(0.05)
      events[#events + 1] = "end " .. name
    end
    local a, b = task.spawn(worker, "a"), task.spawn(worker, "b")
    task.wait(a)
    task.wait(b)
    assert.are.equal(4, #events)
    -- both started before either finished: the sleeps overlapped
    assert.matches("^start", events[1])
    assert.matches("^start", events[2])
    assert.matches("^end", events[3])
    assert.matches("^end", events[4])
  end)

  it("is the running task inside the task that runs the specs", function()
    local me = task.current()
    assert.is_not_nil(me)
    assert.are.equal("running", task.status(me))
    assert.matches("^task %d+ %(running%)$", tostring(me))
  end)

  it("map returns results in the order of the list, not of completion", function()
    local out = task.map({30, 10, 20}, function(ms, i)
      task.sleep(ms / 1000)
      return ms * 10 + i
    end)
    assert.are.same({301, 102, 203}, out)
  end)

  it("map with {limit = 3} never runs more than 3 at once", function()
    local items = {}
    for i = 1, 12 do items[i] = i end
    local running, peak = 0, 0
    task.map(items, function()
      running = running + 1
      peak = math.max(peak, running)
      task.sleep(0.01)
      running = running - 1
    end, {limit = 3})
    assert.are.equal(3, peak) -- exactly: the limit is reached and never passed
    assert.are.equal(0, running)
  end)

  it("all returns the first result of each function, in order", function()
    local out = task.all({
      function() task.sleep(0.02) return "a", "ignored" end,
      function() return "b" end,
    })
    assert.are.same({"a", "b"}, out)
  end)

  it("all cancels the other items when one fails and names the failing item", function()
    local started, reached, cancelled = 0, 0, 0
    local function slow()
      started = started + 1
      local ok, err = pcall(task.sleep, 2)
      if not ok then
        cancelled = cancelled + 1
        error(err, 0)
      end
      reached = reached + 1
    end
    local err = raised(task.all, {slow, function() error("bad input") end, slow})
    assert.matches("item 2 failed", tostring(err), 1, true)
    assert.matches("bad input", tostring(err), 1, true)
    -- task.all returns only after every worker ended: each slow item that
    -- started was cancelled out of its sleep (not left running), none got
    -- past it (one not yet started when item 2 failed never runs)
    assert.is_true(started >= 1)
    assert.are.equal(started, cancelled)
    assert.are.equal(0, reached)
  end)

  it("timeout returns the function's results when it finishes in time", function()
    assert.are.same({1, 2, n = 2}, table.pack(task.timeout(5, function(a) return a, 2 end, 1)))
  end)

  it("timeout raises code timeout when the function takes too long", function()
    local after = false
    local err = raised(task.timeout, 0.05, function()
      task.sleep(5)
      after = true
    end)
    assert.is_true(errors.is(err, "timeout"), tostring(err))
    assert.is_false(after)
  end)

  it("cancel makes a sleeping task raise code cancelled", function()
    local asleep, after = false, false
    local t = task.spawn(function()
      asleep = true
      task.sleep(5)
      after = true
    end)
    wait_until(function() return asleep and task.status(t) == "waiting" end, 5, "the task to sleep")
    task.cancel(t)
    local err = raised(task.wait, t)
    assert.is_true(errors.is(err, "cancelled"), tostring(err))
    assert.is_false(after)
    assert.are.equal("failed", task.status(t))
  end)

  it("cancelling the task that runs a map cancels its workers", function()
    local started, cancelled, finished = 0, 0, 0
    local parent = task.spawn(function()
      return task.map({1, 2, 3}, function()
        started = started + 1
        local ok, err = pcall(task.sleep, 5)
        if not ok then
          cancelled = cancelled + 1
          error(err, 0)
        end
        finished = finished + 1
      end)
    end)
    wait_until(function() return started == 3 end, 5, "3 workers to start")
    task.cancel(parent)
    local err = raised(task.wait, parent)
    assert.is_true(errors.is(err, "cancelled"), tostring(err))
    -- the workers' 5 s sleeps end early only if they were cancelled
    wait_until(function() return cancelled == 3 end, 2, "the workers to be cancelled")
    assert.are.equal(0, finished)
  end)

  it("spawned tasks inherit the context of the task that spawned them", function()
    local outer = task.spawn(function()
      task.context({step = "deploy"})
      local child = task.spawn(function()
        local grandchild = task.spawn(function() return task.context() end)
        return task.context(), task.wait(grandchild)
      end)
      return task.wait(child)
    end)
    local child_ctx, grandchild_ctx = task.wait(outer)
    assert.are.equal("deploy", child_ctx and child_ctx.step)
    assert.are.equal("deploy", grandchild_ctx and grandchild_ctx.step)
  end)

  it("rejects a limit below 1", function()
    local noop = function() end
    assert.matches("limit must be a positive integer", tostring(raised(task.map, {1}, noop, {limit = 0})))
    assert.matches("limit must be a positive integer", tostring(raised(task.all, {noop}, {limit = 0})))
    assert.matches("limit must be a positive integer", tostring(raised(task.map, {1}, noop, {limit = 1.5})))
  end)

  it("rejects what is not a function", function()
    assert.matches("bad argument #1", tostring(raised(task.spawn, 42)))
    assert.matches("expected a function", tostring(raised(task.map, {1}, "nope")))
    assert.matches("item 2 is not a function", tostring(raised(task.all, {function() end, 42})))
  end)

  it("wait from a plain coroutine blocks until the task ends", function()
    local t = task.spawn(function()
      task.sleep(0.01)
      return "done"
    end)
    local result = coroutine.wrap(function() return task.wait(t) end)()
    assert.are.equal("done", result)
  end)
end)
