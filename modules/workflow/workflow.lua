-- workflow.lua: workflow.define{...} and the runner behind `ferry run` and
-- `ferry check`.
--
-- A workflow is data: a name, typed params, ordered steps and a teardown.
-- Defining one has no side effects, so the host can check it without running
-- anything. Running it: each step in its own task (with the step's name as
-- the log context), outputs kept by step name, undo actions (ctx:defer) run
-- last-in-first-out when a step fails, teardown always, then a summary and,
-- if asked, a JUnit report. Exit codes as in DESIGN.md.
local M = {}

local log = require("log")
local task = require("task")

local EXIT = {ok = 0, step_failed = 1, usage = 2, teardown_failed = 3}
local PARAM_TYPES = {string = true, number = true, integer = true, boolean = true}
local DEF_KEYS = {name = true, description = true, params = true, steps = true, teardown = true,
                  teardown_timeout = true}
local STEP_KEYS = {name = true, run = true, description = true, timeout = true}
local PARAM_KEYS = {type = true, default = true, required = true, doc = true, secret = true}

local Workflow = {}
Workflow.__index = Workflow
Workflow.__name = "workflow"

-- ---- definition ----

local THIS = debug.getinfo(1, "S").source

-- Raises a definition error at the script's line: the first frame outside
-- this file. (`return workflow.define{...}` is a tail call that leaves no
-- script frame; _main then adds the line from its line hook.)
local function fail(fmt, ...)
  local msg = "workflow.define: " .. fmt:format(...)
  for level = 2, 20 do
    local info = debug.getinfo(level, "S")
    if not info then break end
    if info.source ~= THIS and info.what ~= "C" then error(msg, level) end
  end
  error(msg, 0)
end

local function check_keys(t, allowed, what)
  for k in pairs(t) do
    if not allowed[k] then fail("%s has unknown field '%s'", what, tostring(k)) end
  end
end

-- Converts a parameter value (a string from the command line, or a value of
-- the right type) to its declared type; returns the value or nil, reason.
local function convert(value, ptype)
  if ptype == "string" then
    if type(value) == "string" then return value end
    if type(value) == "number" or type(value) == "boolean" then return tostring(value) end
  elseif ptype == "number" then
    local n = tonumber(value)
    if n then return n end
  elseif ptype == "integer" then
    local n = math.tointeger(tonumber(value))
    if n then return n end
  elseif ptype == "boolean" then
    if type(value) == "boolean" then return value end
    local s = tostring(value):lower()
    if s == "true" or s == "yes" or s == "1" then return true end
    if s == "false" or s == "no" or s == "0" then return false end
  end
  return nil, ("expected %s, got '%s'"):format(ptype, tostring(value))
end

local function check_params(params)
  if params == nil then return {} end
  if type(params) ~= "table" then fail("params must be a table of name = {type = ...}") end
  local out = {}
  for name, spec in pairs(params) do
    if type(name) ~= "string" or not name:match("^[%a_][%w_%-]*$") then
      fail("bad parameter name '%s'", tostring(name))
    end
    if type(spec) ~= "table" then fail("parameter '%s' must be a table {type = ...}", name) end
    check_keys(spec, PARAM_KEYS, ("parameter '%s'"):format(name))
    local ptype = spec.type or "string"
    if not PARAM_TYPES[ptype] then
      fail("parameter '%s' has unknown type '%s' (string, number, integer or boolean)", name, tostring(ptype))
    end
    local p = {type = ptype, required = spec.required == true, doc = spec.doc, secret = spec.secret == true}
    if spec.default ~= nil then
      local v, why = convert(spec.default, ptype)
      if v == nil then fail("parameter '%s' default: %s", name, why) end
      p.default = v
    end
    out[name] = p
  end
  return out
end

local function check_steps(steps)
  if type(steps) ~= "table" or #steps == 0 then fail("steps must be a non-empty list") end
  local seen, out = {}, {}
  for i, step in ipairs(steps) do
    if type(step) ~= "table" then fail("step %d must be a table {name = ..., run = function}", i) end
    check_keys(step, STEP_KEYS, ("step %d"):format(i))
    if type(step.name) ~= "string" or step.name == "" then fail("step %d needs a name", i) end
    if seen[step.name] then fail("two steps are named '%s'", step.name) end
    seen[step.name] = true
    if type(step.run) ~= "function" then fail("step '%s' needs a run function", step.name) end
    if step.timeout ~= nil and (type(step.timeout) ~= "number" or step.timeout <= 0) then
      fail("step '%s': timeout must be a number of seconds > 0", step.name)
    end
    out[i] = {name = step.name, run = step.run, description = step.description, timeout = step.timeout}
  end
  return out
end

---Defines a workflow. Validates the definition and returns it; runs nothing.
function M.define(def)
  if type(def) ~= "table" then fail("expected a table") end
  check_keys(def, DEF_KEYS, "the definition")
  if type(def.name) ~= "string" or def.name == "" then fail("a workflow needs a name") end
  if def.teardown ~= nil and type(def.teardown) ~= "function" then fail("teardown must be a function") end
  return setmetatable({
    name = def.name,
    description = def.description,
    params = check_params(def.params),
    steps = check_steps(def.steps),
    teardown = def.teardown,
    teardown_timeout = def.teardown_timeout or 600,
  }, Workflow)
end

---Is value a workflow made by workflow.define?
function M.is_workflow(value) return getmetatable(value) == Workflow end

-- ---- parameters ----

---Resolves raw parameter values (strings from the command line, or typed
---values) against the workflow's declarations: returns params or nil, error.
function M.resolve_params(wf, raw)
  local out = {}
  for name, value in pairs(raw or {}) do
    local p = wf.params[name]
    if not p then
      local known = {}
      for k in pairs(wf.params) do known[#known + 1] = k end
      table.sort(known)
      return nil, ("unknown parameter '%s' (%s)"):format(name,
        #known > 0 and "known: " .. table.concat(known, ", ") or "this workflow takes none")
    end
    local v, why = convert(value, p.type)
    if v == nil then return nil, ("parameter '%s': %s"):format(name, why) end
    out[name] = v
  end
  local names = {}
  for name in pairs(wf.params) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local p = wf.params[name]
    if out[name] == nil then
      if p.default ~= nil then
        out[name] = p.default
      elseif p.required then
        return nil, ("missing required parameter '%s'%s (give it with -p %s=...)"):format(
          name, p.doc and (" — " .. p.doc) or "", name)
      end
    end
    if p.secret and type(out[name]) == "string" then log.secret(out[name]) end
  end
  return out
end

-- ---- running ----

local Ctx = {}
Ctx.__index = Ctx

---Registers an undo action, run (last first) if a later step fails.
function Ctx:defer(fn, description)
  if getmetatable(self) ~= Ctx then error("ctx:defer: call it with a colon", 2) end
  if type(fn) ~= "function" then error("ctx:defer: expected a function", 2) end
  self._defers[#self._defers + 1] = {fn = fn, description = description or "undo"}
end

local function message_of(err)
  if type(err) == "table" then return tostring(err), err.traceback end
  local s = tostring(err)
  local msg, tb = s:match("^(.-)\n(stack traceback:.*)$")
  return msg or s, tb
end

-- Runs fn(...) in its own task whose log context is `label`, shielded from
-- signals if asked, with an optional deadline; returns ok, result-or-error.
local function run_task(label, shielded, seconds, fn, ...)
  local t = task.spawn(function(...)
    task.context({step = label})
    return fn(...)
  end, ...)
  task.shield(t, shielded) -- steps are not, even though the runner's own task is
  if seconds then task.deadline(t, math.max(seconds, 0)) end
  return pcall(task.wait, t)
end

local function report_failure(label, err)
  local msg, tb = message_of(err)
  log.error("%s failed: %s", label, msg)
  if tb then log.error("%s", tb) end
  return msg, tb
end

local function run_steps(wf, ctx, opts, results)
  local deadline = opts.timeout and task.now() + opts.timeout
  for i, step in ipairs(wf.steps) do
    local r = {name = step.name, status = "skipped", time = 0}
    results[i] = r
    if not ctx.failed and not task.interrupted() then
      local budget = step.timeout
      if deadline then budget = math.min(budget or math.huge, deadline - task.now()) end
      log.info("→ %s", step.name)
      local t0 = task.now()
      local ok, out = run_task(step.name, false, budget, function()
        local outputs = step.run(ctx)
        if outputs ~= nil and type(outputs) ~= "table" then
          error(("step '%s' returned a %s; return a table of outputs or nothing"):format(step.name,
            type(outputs)), 0)
        end
        return outputs
      end)
      r.time = task.now() - t0
      if ok then
        r.status = "passed"
        ctx.outputs[step.name] = out or {}
        log.info("✓ %s (%.2fs)", step.name, r.time)
      else
        r.status = "failed"
        r.message, r.details = report_failure(step.name, out)
        r.excerpt = log.excerpt(step.name)
        ctx.failed = step.name
      end
    end
  end
end

-- Undo actions (last first) after a failure, then teardown; returns whether
-- all of them succeeded.
local function clean_up(wf, ctx, results)
  local clean = true
  if ctx.failed then
    for i = #ctx._defers, 1, -1 do
      local d = ctx._defers[i]
      log.info("undo: %s", d.description)
      local ok, err = run_task("undo", true, wf.teardown_timeout, d.fn, ctx)
      if not ok then
        report_failure("undo '" .. d.description .. "'", err)
        clean = false
      end
    end
  end
  if wf.teardown then
    log.info("→ teardown")
    local t0 = task.now()
    local ok, err = run_task("teardown", true, wf.teardown_timeout, wf.teardown, ctx)
    local r = {name = "teardown", time = task.now() - t0, status = ok and "passed" or "failed"}
    if ok then
      log.info("✓ teardown (%.2fs)", r.time)
    else
      r.message, r.details = report_failure("teardown", err)
      r.excerpt = log.excerpt("teardown")
      clean = false
    end
    results[#results + 1] = r
  end
  return clean
end

local function print_summary(wf, results, outcome, elapsed)
  if log.format() == "json" then
    for _, r in ipairs(results) do log.info("summary: step=%q status=%s seconds=%.3f", r.name, r.status, r.time) end
    log.info("workflow %s %s in %.2fs", wf.name, outcome, elapsed)
    return
  end
  local width = 4
  for _, r in ipairs(results) do width = math.max(width, utf8.len(r.name) or #r.name) end
  local lines = {("%-" .. width .. "s  %-7s  %8s"):format("step", "status", "time")}
  for _, r in ipairs(results) do
    lines[#lines + 1] = ("%-" .. width .. "s  %-7s  %7.2fs"):format(r.name, r.status, r.time)
  end
  lines[#lines + 1] = ("workflow %s %s in %.2fs"):format(wf.name, outcome, elapsed)
  io.stderr:write(log.redact(table.concat(lines, "\n")), "\n")
end

---Runs a workflow: opts = {params = {name = value}, timeout = seconds,
---junit = path}. Returns the exit code and the per-step results.
function M.run(wf, opts)
  opts = opts or {}
  local params, err = M.resolve_params(wf, opts.params)
  if not params then
    io.stderr:write("ferry: ", log.redact(err), "\n")
    return EXIT.usage, {}
  end
  local ctx = setmetatable({workflow = wf.name, params = params, outputs = {}, _defers = {}}, Ctx)
  local results = {}
  local t0 = task.now()
  log.info("workflow %s: %d steps", wf.name, #wf.steps)
  run_steps(wf, ctx, opts, results)
  local clean = clean_up(wf, ctx, results)
  local signal = task.interrupted()
  local code, outcome = EXIT.ok, "succeeded"
  if not clean then
    code, outcome = EXIT.teardown_failed, "failed to clean up (resources may be left)"
  elseif signal then
    code, outcome = 128 + signal, "interrupted"
  elseif ctx.failed then
    code, outcome = EXIT.step_failed, ("failed at step '%s'"):format(ctx.failed)
  end
  local elapsed = task.now() - t0
  print_summary(wf, results, outcome, elapsed)
  if opts.junit then
    local ok, jerr = pcall(require("workflow.junit").write, opts.junit,
      {name = wf.name, time = elapsed, cases = results})
    if not ok then
      log.error("cannot write the JUnit report: %s", tostring(jerr))
      if code == EXIT.ok then code = EXIT.usage end
    end
  end
  return code, results
end

-- The entry point of `ferry run` and `ferry check` (host/main.c): chunk is
-- the loaded script; returns the exit code. Errors raised here (a script
-- that fails while loading) are reported by the host with exit code 2.
function M._main(mode, path, chunk, opts)
  local script, line = "@" .. path, nil
  debug.sethook(function(_, l)
    if debug.getinfo(2, "S").source == script then line = l end
  end, "l")
  local ok, wf = xpcall(chunk, function(err)
    if type(err) == "string" and err:match("^workflow%.define: ") and line then
      err = ("%s:%d: %s"):format(path, line, err)
    end
    return debug.traceback(err, 2)
  end)
  debug.sethook()
  if not ok then error(wf, 0) end
  if not M.is_workflow(wf) then
    io.stderr:write(("ferry: %s: the script must return workflow.define{...}, it returned %s\n"):format(
      path, type(wf) == "table" and "a plain table" or type(wf)))
    return EXIT.usage
  end
  if mode == "check" then
    local nparams = 0
    for _ in pairs(wf.params) do nparams = nparams + 1 end
    print(("%s: ok — workflow %s, %d steps, %d params%s"):format(path, wf.name, #wf.steps, nparams,
      wf.teardown and ", teardown" or ""))
    return EXIT.ok
  end
  return (M.run(wf, opts))
end

return M
