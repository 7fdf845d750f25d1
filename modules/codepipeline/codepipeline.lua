-- codepipeline.lua: AWS CodePipeline for workflows: the job in hand (from a
-- Lambda Invoke event or a custom-action worker's poll), its result
-- (success with output variables, failure, continuation), its input
-- artifacts, and the worker's poll and acknowledge. Pipeline control (start,
-- execution, wait_execution, state) lives in codepipeline/pipeline.lua and is
-- re-exported here.
--
-- A job's artifactCredentials are registered with log.secret the moment the
-- job is parsed and are kept outside the job table (a weak side table), so
-- printing, logging or serializing a job can never show them. Results are
-- checked against CodePipeline's limits before anything is sent, with secrets
-- masked, and sent with more attempts than other calls: a lost result leaves
-- the pipeline waiting until the action times out.
--
-- Service failures raise aws error objects {code, message, status,
-- request_id, retryable, op}; limits raise error objects ("too_large"); bad
-- arguments raise plain strings "codepipeline.<fn>: ...".
local aws = require("aws")
local errors = require("errors")
local http = require("http")
local json = require("json")
local log = require("log")
local zip = require("zip")
local pipeline = require("codepipeline.pipeline")

local M = {}

M.result_attempts = 8 -- attempts for PutJobSuccessResult / PutJobFailureResult
M.max_output_bytes = 122880 -- all output variables of one action, names and values
M.max_summary = 2048 -- executionDetails.summary
M.max_message = 5000 -- failureDetails.message
M.max_artifact_download = 256 * 1024 * 1024 -- bytes of a zipped input artifact

local FAILURE_TYPES = {JobFailed = true, ConfigurationError = true, PermissionError = true,
                       RevisionOutOfSync = true, RevisionUnavailable = true, SystemUnavailable = true}
local EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

-- job -> {access_key_id, secret_access_key, session_token}; weak, so a
-- job's credentials go when the job does.
local credentials = setmetatable({}, {__mode = "k"})

---------------------------------------------------------------------------
-- Helpers

local argerror, value, call = pipeline._argerror, pipeline._value, pipeline._call

local function opt_string(fname, t, key, where)
  local v = t[key]
  if v ~= nil and (type(v) ~= "string" or v == "") then
    argerror(fname, ("%s'%s' must be a non-empty string"):format(where or "field ", key))
  end
  return v
end

-- s cut to at most max bytes (so at most max characters) at a UTF-8
-- character boundary, ending with a note saying how much was cut.
local function truncate(s, max)
  if #s <= max then return s end
  local note = " [... truncated: %d of %d bytes not shown]"
  local keep = max - #note:format(#s, #s)
  while keep > 0 and ((s:byte(keep + 1) or 0) & 0xC0) == 0x80 do keep = keep - 1 end
  return s:sub(1, keep) .. note:format(#s - keep, #s)
end

---------------------------------------------------------------------------
-- Jobs

local Job = {}
Job.__name = "codepipeline.Job"

---"codepipeline job <id> (...)": never the artifact credentials.
function Job.__tostring(job)
  local parts = {}
  if job.pipeline and job.pipeline.name then
    parts[#parts + 1] = ("pipeline %s, action %s"):format(job.pipeline.name, job.pipeline.action or "?")
  end
  local names = {}
  for _, a in ipairs(job.input_artifacts) do names[#names + 1] = a.name end
  if #names > 0 then parts[#parts + 1] = "inputs " .. table.concat(names, ", ") end
  if job.continuation_token then parts[#parts + 1] = "continued" end
  return ("codepipeline job %s%s"):format(job.id, #parts > 0 and " (" .. table.concat(parts, "; ") .. ")" or "")
end

local function artifacts(list)
  local out = {}
  for i, a in ipairs(value(list) or {}) do
    local loc = value(a.location) or {}
    local s3 = value(loc.s3Location) or {}
    out[i] = {name = value(a.name), revision = value(a.revision), type = value(loc.type),
              bucket = value(s3.bucketName), key = value(s3.objectKey)}
  end
  return json.array(out)
end

-- The job table of a job id, account and JobData (Lambda event or
-- PollForJobs/GetJobDetails), with its credentials put aside as secrets.
local function new_job(fname, id, account_id, data, nonce)
  if type(id) ~= "string" or id == "" then argerror(fname, "the job has no id") end
  if type(data) ~= "table" then argerror(fname, "the job has no data") end
  local config = value(value(data.actionConfiguration) or {}).configuration
  local configuration = {}
  for k, v in pairs(value(config) or {}) do configuration[k] = value(v) end
  local ctx = value(data.pipelineContext)
  local action_type = value(data.actionTypeId)
  local key = value(data.encryptionKey)
  local job = setmetatable({
    id = id,
    account_id = value(account_id),
    nonce = value(nonce),
    user_parameters = configuration.UserParameters,
    configuration = configuration,
    input_artifacts = artifacts(data.inputArtifacts),
    output_artifacts = artifacts(data.outputArtifacts),
    continuation_token = value(data.continuationToken),
    encryption_key = key and {id = value(key.id), type = value(key.type)} or nil,
    action_type = action_type and {category = action_type.category, owner = action_type.owner,
                                   provider = action_type.provider, version = action_type.version} or nil,
    pipeline = ctx and {
      name = value(ctx.pipelineName),
      stage = value(ctx.stage) and value(ctx.stage.name),
      action = value(ctx.action) and value(ctx.action.name),
      action_execution_id = value(ctx.action) and value(ctx.action.actionExecutionId),
      execution_id = value(ctx.pipelineExecutionId),
      arn = value(ctx.pipelineArn),
    } or nil,
  }, Job)
  local c = value(data.artifactCredentials)
  if c then
    local creds = {access_key_id = value(c.accessKeyId), secret_access_key = value(c.secretAccessKey),
                   session_token = value(c.sessionToken)}
    for _, v in pairs(creds) do
      if type(v) == "string" then log.secret(v) end
    end
    credentials[job] = creds
  end
  return job
end

---The job of a CodePipeline Lambda Invoke event (a table or its JSON text).
function M.job_from_event(event)
  if type(event) == "string" then
    local ok, decoded = pcall(json.decode, event)
    if not ok then argerror("job_from_event", "the event is not JSON: " .. tostring(decoded)) end
    event = decoded
  end
  if type(event) ~= "table" then argerror("job_from_event", "expected the event table") end
  local j = value(event["CodePipeline.job"])
  if type(j) ~= "table" then
    argerror("job_from_event", "not a CodePipeline event: no \"CodePipeline.job\" member")
  end
  return new_job("job_from_event", j.id, j.accountId, value(j.data), nil)
end

---Whether value is a job table made by job_from_event or poll.
function M.is_job(v)
  return getmetatable(v) == Job
end

local function job_id(fname, job)
  if type(job) == "string" and job ~= "" then return job end
  if type(job) == "table" and type(job.id) == "string" then return job.id end
  argerror(fname, "expected a job (or its id)")
end

---------------------------------------------------------------------------
-- Results

local function result(op, params, opts, id)
  local ok, err = pcall(call, op, params, opts, M.result_attempts)
  if ok then return true end
  -- A retry after a result that reached CodePipeline but whose answer was
  -- lost finds the job already finished.
  if errors.is(err, "InvalidJobStateException") and (tonumber(err.attempts) or 1) > 1 then
    log.warn("job %s: %s answered InvalidJobStateException on attempt %s; an earlier attempt was recorded",
             id, op, err.attempts)
    return true
  end
  error(err, 0)
end

-- opts.external_id, checked: nil, or 1 to 1500 characters.
local function external_id(fname, opts)
  local ext = opt_string(fname, opts, "external_id")
  if ext and #ext > 1500 then argerror(fname, "field 'external_id' is longer than 1500 characters") end
  return ext
end

local function execution_details(fname, opts)
  local d = {}
  if opts.summary ~= nil then
    if type(opts.summary) ~= "string" then argerror(fname, "field 'summary' must be a string") end
    if opts.summary ~= "" then d.summary = truncate(log.redact(opts.summary), M.max_summary) end
  end
  d.externalExecutionId = external_id(fname, opts)
  local pct = opts.percent_complete
  if pct ~= nil then
    if math.type(pct) ~= "integer" or pct < 0 or pct > 100 then
      argerror(fname, "field 'percent_complete' must be an integer from 0 to 100")
    end
    d.percentComplete = pct
  end
  return next(d) and d or nil
end

local function output_variables(fname, outputs)
  if type(outputs) ~= "table" then argerror(fname, "field 'outputs' must be a table of name = value") end
  local vars, size = {}, 0
  for k, v in pairs(outputs) do
    if type(k) ~= "string" or not k:match("^[%w@%-_]+$") then
      argerror(fname, ("output variable name '%s' must be letters, digits, '@', '-' or '_'"):format(tostring(k)))
    end
    local tv = type(v)
    if tv == "number" or tv == "boolean" then
      v = tostring(v)
    elseif tv ~= "string" then
      argerror(fname, ("output variable '%s' must be a string, number or boolean, not %s"):format(k, tv))
    end
    vars[k] = v
    size = size + #k + #v
  end
  if size > M.max_output_bytes then
    error(errors.new{code = "too_large", op = "PutJobSuccessResult", size = size,
                     message = ("output variables take %d bytes; CodePipeline accepts at most %d per action")
                               :format(size, M.max_output_bytes)}, 0)
  end
  return next(vars) and vars or nil
end

local function current_revision(fname, r)
  if r == nil then return nil end
  if type(r) ~= "table" then argerror(fname, "field 'current_revision' must be a table") end
  local rev = opt_string(fname, r, "revision", "current_revision.")
  local change = opt_string(fname, r, "change_identifier", "current_revision.")
  if not rev or not change then
    argerror(fname, "current_revision needs 'revision' and 'change_identifier'")
  end
  return {revision = rev, changeIdentifier = change, created = r.created,
          revisionSummary = r.summary and truncate(r.summary, 2048) or nil}
end

---Reports the job succeeded, with output variables and a summary.
function M.succeed(job, opts)
  local id = job_id("succeed", job)
  opts = opts or {}
  if type(opts) ~= "table" then argerror("succeed", "expected a table of options") end
  local token = opts.continuation_token
  if token ~= nil and (type(token) ~= "string" or token == "" or #token > 2048) then
    argerror("succeed", "field 'continuation_token' must be a string of 1 to 2048 characters")
  end
  local outputs = opts.outputs ~= nil and output_variables("succeed", opts.outputs) or nil
  if token and outputs then
    argerror("succeed", "output variables cannot be sent with a continuation token: "
                        .. "CodePipeline takes them only on the final result")
  end
  local params = {
    jobId = id,
    outputVariables = outputs,
    executionDetails = execution_details("succeed", opts),
    continuationToken = token,
    currentRevision = current_revision("succeed", opts.current_revision),
  }
  return result("PutJobSuccessResult", params, opts, id)
end

---Reports the job failed; the message is masked and truncated to 5000 characters.
function M.fail(job, message, opts)
  local id = job_id("fail", job)
  opts = opts or {}
  if type(opts) ~= "table" then argerror("fail", "expected a table of options") end
  local kind = opts.type or "JobFailed"
  if not FAILURE_TYPES[kind] then
    argerror("fail", ("type '%s' is not one of JobFailed, ConfigurationError, PermissionError, "
                      .. "RevisionOutOfSync, RevisionUnavailable, SystemUnavailable"):format(tostring(kind)))
  end
  message = message ~= nil and tostring(message) or ""
  if message == "" then message = "failed (no message)" end
  local details = {type = kind, message = truncate(log.redact(message), M.max_message),
                   externalExecutionId = external_id("fail", opts)}
  return result("PutJobFailureResult", {jobId = id, failureDetails = details}, opts, id)
end

---Reports the job in progress: CodePipeline runs a new job carrying token.
function M.continue_later(job, token, opts)
  local id = job_id("continue_later", job)
  opts = opts or {}
  if type(opts) ~= "table" then argerror("continue_later", "expected a table of options") end
  if opts.outputs ~= nil then
    argerror("continue_later", "output variables cannot be sent with a continuation token: "
                               .. "CodePipeline takes them only on the final result")
  end
  if type(token) ~= "string" or token == "" or #token > 2048 then
    argerror("continue_later", "the token must be a string of 1 to 2048 characters")
  end
  return result("PutJobSuccessResult", {jobId = id, continuationToken = token,
                                        executionDetails = execution_details("continue_later", opts)}, opts, id)
end

---------------------------------------------------------------------------
-- Input artifacts

-- RFC 3986 encoding of an S3 key, keeping its slashes.
local function encode_key(s)
  return (s:gsub("[^%w%-._~/]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function s3_error(res, art, op)
  local body = res.body or ""
  local code = body:match("<Code>(.-)</Code>") or ("HTTP " .. res.status)
  -- The first paragraph only (a signature mismatch may go on to quote the
  -- canonical request, session token included), masked all the same.
  local msg = (body:match("<Message>(.-)</Message>") or "no error message"):gsub("\r?\n%s*\r?\n.*", "")
  msg = log.redact(msg)
  return errors.new{code = code, op = op, status = res.status, retryable = res.status >= 500,
                    request_id = body:match("<RequestId>(.-)</RequestId>") or res.headers["x-amz-request-id"],
                    message = ("cannot download input artifact %s (s3://%s/%s): %s")
                              :format(art.name, art.bucket, art.key, msg)}
end

---The files of a zipped input artifact, path -> contents, fetched from S3
---with the job's artifact credentials.
function M.input_artifact(job, name, opts)
  if not M.is_job(job) then argerror("input_artifact", "expected a job from job_from_event or poll") end
  opts = opts or {}
  local art
  if name == nil then
    if #job.input_artifacts ~= 1 then
      argerror("input_artifact", ("job %s has %d input artifacts: name one"):format(job.id, #job.input_artifacts))
    end
    art = job.input_artifacts[1]
  else
    for _, a in ipairs(job.input_artifacts) do
      if a.name == name then art = a end
    end
    if not art then
      local names = {}
      for _, a in ipairs(job.input_artifacts) do names[#names + 1] = a.name end
      argerror("input_artifact", ("job %s has no input artifact '%s' (it has: %s)")
                                 :format(job.id, tostring(name), table.concat(names, ", ")))
    end
  end
  if not art.bucket or not art.key then
    argerror("input_artifact", ("input artifact '%s' has no S3 location"):format(art.name))
  end
  local creds = credentials[job]
  if not creds then
    error(errors.new{code = "no_credentials", op = "GetObject",
                     message = ("job %s carries no artifactCredentials to read artifact '%s' with")
                               :format(job.id, art.name)}, 0)
  end
  local region = opts.region or aws.region()
  local url = aws.endpoint("s3", region):gsub("/+$", "") .. "/" .. encode_key(art.bucket) .. "/" .. encode_key(art.key)
  local req = {method = "GET", url = url, headers = {["x-amz-content-sha256"] = EMPTY_SHA256}, body = ""}
  req.headers = aws.sign(req, {service = "s3", region = region, credentials = creds})
  local res = http.request{method = "GET", url = url, headers = req.headers,
                           max_body = opts.max_download or M.max_artifact_download, timeout = opts.timeout}
  if res.status ~= 200 then error(s3_error(res, art, "GetObject"), 0) end
  local files, err = zip.read(res.body, {max_size = opts.max_size, max_files = opts.max_files})
  if not files then
    error(errors.new{code = "invalid_artifact", op = "GetObject",
                     message = ("input artifact %s (s3://%s/%s) is not a readable zip: %s")
                               :format(art.name, art.bucket, art.key, err)}, 0)
  end
  return files
end

---------------------------------------------------------------------------
-- Custom action worker

---Polls for jobs of a custom action type; returns a list of jobs (maybe empty).
function M.poll(args)
  if type(args) ~= "table" then argerror("poll", "expected a table of arguments") end
  local t = args.action_type
  if type(t) ~= "table" then argerror("poll", "field 'action_type' must be {category, owner, provider, version}") end
  local id = {category = t.category, owner = t.owner or "Custom", provider = t.provider, version = t.version}
  for _, k in ipairs({"category", "owner", "provider", "version"}) do
    if type(id[k]) ~= "string" or id[k] == "" then
      argerror("poll", ("action_type.%s must be a non-empty string"):format(k))
    end
  end
  local max = args.max_batch or 1
  if math.type(max) ~= "integer" or max < 1 then argerror("poll", "field 'max_batch' must be a positive integer") end
  local out = call("PollForJobs", {actionTypeId = id, maxBatchSize = max, queryParam = args.query}, args)
  local jobs = {}
  for i, j in ipairs(value(out.jobs) or {}) do
    jobs[i] = new_job("poll", j.id, j.accountId, value(j.data), j.nonce)
  end
  return jobs
end

---Claims a polled job; false and a reason when another worker took it.
function M.ack(job, opts)
  local id = job_id("ack", job)
  if type(job) ~= "table" or type(job.nonce) ~= "string" then
    argerror("ack", "the job has no nonce: only jobs from codepipeline.poll are acknowledged")
  end
  local ok, out = pcall(call, "AcknowledgeJob", {jobId = id, nonce = job.nonce}, opts)
  if ok then return true, value(out.status) end
  if errors.is(out, "InvalidNonceException") then return false, "taken by another worker" end
  error(out, 0)
end

---------------------------------------------------------------------------
-- Pipeline control (codepipeline/pipeline.lua)

M.start = pipeline.start
M.execution = pipeline.execution
M.wait_execution = pipeline.wait_execution
M.state = pipeline.state

return M
