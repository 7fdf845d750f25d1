---@meta task
-- Tasks: coroutines on the host loop. Native I/O (http, kube, ...) suspends
-- the calling task, so code reads as blocking while many tasks run at once.
-- Cancellation (task.cancel, deadlines, SIGINT/SIGTERM) is delivered at the
-- task's next suspension as an error {code = "cancelled"|"timeout"|"interrupted"}.

---@class task.Task
local Task = {}
---@return any ...
function Task:wait() end
---@param reason? "cancelled"|"timeout"|"interrupted"
function Task:cancel(reason) end
---@return "ready"|"running"|"waiting"|"done"|"failed"
function Task:status() end
---@return integer
function Task:id() end

local task = {}

---Starts fn(...) in a new task on the next turn of the loop.
---@param fn function
---@param ... any
---@return task.Task
function task.spawn(fn, ...) end

---Waits for t to end; returns its results or re-raises its error with its traceback.
---@param t task.Task
---@return any ...
function task.wait(t) end

---Suspends the calling task for seconds.
---@param seconds number
function task.sleep(seconds) end

---Cancels t: it raises {code = reason} at its next suspension.
---@param t task.Task
---@param reason? "cancelled"|"timeout"|"interrupted"
function task.cancel(t, reason) end

---Cancels t with reason "timeout" once seconds have passed.
---@param t task.Task
---@param seconds number
function task.deadline(t, seconds) end

---The running task, or nil outside one.
---@return task.Task?
function task.current() end

---The current task's context table (inherited by tasks it spawns); with tbl, replaces it.
---@param tbl? table
---@return table?
function task.context(tbl) end

---Shields t from cancellation by signals (teardown runs shielded). Tasks
---inherit their spawner's shield.
---@param t task.Task
---@param on boolean
function task.shield(t, on) end

---The signal number that interrupted the run, or nil.
---@return integer?
function task.interrupted() end

---Monotonic seconds, for durations.
---@return number
function task.now() end

---@param t task.Task
---@return "ready"|"running"|"waiting"|"done"|"failed"
function task.status(t) end

---Runs every function concurrently, at most opts.limit at once; returns their
---first results in order. The first failure cancels the rest and is raised,
---naming the item ("task.all: item 3 failed: ...").
---@param fns function[]
---@param opts? {limit?: integer}
---@return any[]
function task.all(fns, opts) end

---Calls fn(item, i) for every item concurrently, at most opts.limit at once;
---returns the results in order. The first failure cancels the rest.
---@param list any[]
---@param fn fun(item: any, i: integer): any
---@param opts? {limit?: integer}
---@return any[]
function task.map(list, fn, opts) end

---Runs fn(...) in a task cancelled with "timeout" after seconds; returns its results.
---@param seconds number
---@param fn function
---@param ... any
---@return any ...
function task.timeout(seconds, fn, ...) end

return task
