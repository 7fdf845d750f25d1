-- pipeline.lua (module "codepipeline.pipeline"): pipeline control for the
-- codepipeline module, which re-exports these functions: start an execution
-- (with variables and an idempotency token), read one, wait for it to end,
-- and read a pipeline's state. Answers are plain snake_case tables. Its
-- argerror, value and call serve codepipeline.lua too (M._argerror, ...).
local aws = require("aws")
local errors = require("errors")
local json = require("json")
local task = require("task")

local M = {}

M.default_timeout = 3600 -- seconds wait_execution waits when not told
M.default_interval = 10 -- seconds between GetPipelineExecution polls

-- Execution states that are over.
local FINISHED = {Succeeded = true, Failed = true, Stopped = true, Cancelled = true, Superseded = true}

-- Raises "codepipeline.<fname>: msg" at the caller's line: the first stack
-- frame outside modules/codepipeline/.
local function argerror(fname, msg)
  local level = 2
  while ((debug.getinfo(level, "S") or {}).source or ""):find("^@modules/codepipeline/") do level = level + 1 end
  error(("codepipeline.%s: %s"):format(fname, msg), level)
end

-- nil for an absent value or a JSON null.
local function value(v)
  if v == json.null then return nil end
  return v
end

local function need_string(fname, args, key)
  local v = args[key]
  if type(v) ~= "string" or v == "" then argerror(fname, ("field '%s' must be a non-empty string"):format(key)) end
  return v
end

-- A CodePipeline call in opts.region, with `attempts` tries when given.
local function call(op, params, opts, attempts)
  return aws.call{service = "codepipeline", operation = op, params = params, region = opts and opts.region,
                  max_attempts = attempts}
end

M._argerror, M._value, M._call = argerror, value, call

-- The StartPipelineExecution variable list of a name -> value map (sorted by
-- name) or a list of {name, value}.
local function variables(fname, vars)
  if vars == nil then return nil end
  if type(vars) ~= "table" then argerror(fname, "field 'variables' must be a table of name = value") end
  local list = {}
  if #vars > 0 then
    for _, v in ipairs(vars) do list[#list + 1] = {name = v.name, value = v.value} end
  else
    for k, v in pairs(vars) do list[#list + 1] = {name = k, value = v} end
    table.sort(list, function(a, b) return tostring(a.name) < tostring(b.name) end)
  end
  if #list > 50 then argerror(fname, "at most 50 variables") end
  for _, v in ipairs(list) do
    if type(v.name) ~= "string" or #v.name > 128 or not v.name:match("^[%w@%-_]+$") then
      argerror(fname, ("variable name '%s' must be 1 to 128 letters, digits, '@', '-' or '_'"):format(tostring(v.name)))
    end
    if type(v.value) == "number" or type(v.value) == "boolean" then v.value = tostring(v.value) end
    if type(v.value) ~= "string" or v.value == "" or #v.value > 1000 then
      argerror(fname, ("variable '%s' must have a value of 1 to 1000 characters"):format(v.name))
    end
  end
  return #list > 0 and list or nil
end

---Starts an execution; returns its id.
function M.start(args)
  if type(args) ~= "table" then argerror("start", "expected a table of arguments") end
  local name = need_string("start", args, "pipeline")
  local token = args.client_request_token
  if token ~= nil and (type(token) ~= "string" or #token > 128 or not token:match("^[%w%-]+$")) then
    argerror("start", "field 'client_request_token' must be 1 to 128 letters, digits or '-'")
  end
  local out = call("StartPipelineExecution",
                   {name = name, variables = variables("start", args.variables), clientRequestToken = token}, args)
  return out.pipelineExecutionId
end

local function execution_from(e)
  local vars = {}
  for _, v in ipairs(value(e.variables) or {}) do vars[v.name] = value(v.resolvedValue) end
  local revisions = {}
  for i, r in ipairs(value(e.artifactRevisions) or {}) do
    revisions[i] = {name = value(r.name), revision_id = value(r.revisionId),
                    change_identifier = value(r.revisionChangeIdentifier), summary = value(r.revisionSummary),
                    created = value(r.created), url = value(r.revisionUrl)}
  end
  local trigger = value(e.trigger)
  return {
    id = e.pipelineExecutionId,
    pipeline = value(e.pipelineName),
    version = value(e.pipelineVersion),
    status = value(e.status),
    summary = value(e.statusSummary),
    variables = vars,
    artifact_revisions = json.array(revisions),
    trigger = trigger and {type = value(trigger.triggerType), detail = value(trigger.triggerDetail)} or nil,
    mode = value(e.executionMode),
    type = value(e.executionType),
  }
end

---One execution: {id, pipeline, version, status, summary, variables, artifact_revisions, trigger, mode, type}.
function M.execution(args)
  if type(args) ~= "table" then argerror("execution", "expected a table of arguments") end
  local name, id = need_string("execution", args, "pipeline"), need_string("execution", args, "id")
  local out = call("GetPipelineExecution", {pipelineName = name, pipelineExecutionId = id}, args)
  return execution_from(value(out.pipelineExecution) or {})
end

---Waits until the execution is over (Succeeded, Failed, Stopped, Cancelled,
---Superseded) and returns it; raises "timeout" at the deadline.
function M.wait_execution(args)
  if type(args) ~= "table" then argerror("wait_execution", "expected a table of arguments") end
  local name, id = need_string("wait_execution", args, "pipeline"), need_string("wait_execution", args, "id")
  local timeout, interval = args.timeout or M.default_timeout, args.interval or M.default_interval
  if type(timeout) ~= "number" or timeout < 0 then argerror("wait_execution", "field 'timeout' must be seconds") end
  if type(interval) ~= "number" or interval < 0 then argerror("wait_execution", "field 'interval' must be seconds") end
  local deadline = task.now() + timeout
  while true do
    local e = M.execution(args)
    if FINISHED[e.status] then return e end
    local left = deadline - task.now()
    if left <= 0 then
      error(errors.new{code = "timeout", execution = e,
                       message = ("timed out after %gs waiting for execution %s of pipeline %s (last status: %s)")
                                 :format(timeout, id, name, tostring(e.status))}, 0)
    end
    task.sleep(math.min(interval, left))
  end
end

local function action_from(a)
  local l = value(a.latestExecution) or {}
  local err = value(l.errorDetails)
  local rev = value(a.currentRevision)
  return {
    name = value(a.actionName),
    status = value(l.status),
    summary = value(l.summary),
    execution_id = value(l.actionExecutionId),
    external_id = value(l.externalExecutionId),
    external_url = value(l.externalExecutionUrl),
    percent_complete = value(l.percentComplete),
    last_change = value(l.lastStatusChange),
    error = err and {code = value(err.code), message = value(err.message)} or nil,
    revision = rev and value(rev.revisionId) or nil,
    url = value(a.entityUrl),
  }
end

---A pipeline's state: {pipeline, version, created, updated, stages = {{name,
---status, execution_id, inbound_enabled, actions = {{name, status, ...}}}}}.
function M.state(args)
  if type(args) ~= "table" then argerror("state", "expected a table of arguments") end
  local name = need_string("state", args, "pipeline")
  local out = call("GetPipelineState", {name = name}, args)
  local stages = {}
  for i, s in ipairs(value(out.stageStates) or {}) do
    local l = value(s.latestExecution) or {}
    local inbound = value(s.inboundTransitionState)
    local actions = {}
    for j, a in ipairs(value(s.actionStates) or {}) do actions[j] = action_from(a) end
    stages[i] = {
      name = value(s.stageName),
      status = value(l.status),
      execution_id = value(l.pipelineExecutionId),
      inbound_enabled = inbound and value(inbound.enabled),
      actions = json.array(actions),
    }
  end
  return {pipeline = value(out.pipelineName), version = value(out.pipelineVersion), created = value(out.created),
          updated = value(out.updated), stages = json.array(stages)}
end

return M
