-- codepipeline_spec.lua: the codepipeline module against the loopback AWS
-- double: the Lambda event and its secrets, results as the double records
-- them (/_ferry/codepipeline/results), limits enforced before any request
-- (/_ferry/calls), harder retries under injected throttling, input artifacts
-- from the double's S3 signed with the job's own credentials, the custom
-- action worker, and pipeline executions.
local aws = require("aws")
local aws_support = require("aws_support")
local codepipeline = require("codepipeline")
local errors = require("errors")
local json = require("json")
local log = require("log")
local support = require("support")
local task = require("task")
local zip = require("zip")

local SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFERRYSECRET"
local SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFERRYSESSIONTOKEN//////////wEaCWV1LXdlc3QtMSJHMEUCIQDexample=="

-- The event a CodePipeline Lambda Invoke action sends (the shape of the AWS
-- user guide's "Example JSON event"), with two input artifacts.
local EVENT = [[{
  "CodePipeline.job": {
    "id": "11111111-abcd-1111-abcd-111111abcdef",
    "accountId": "111111111111",
    "data": {
      "actionConfiguration": {
        "configuration": {
          "FunctionName": "ferry-lambda",
          "UserParameters": "scripts/pipeline.lua namespace=staging"
        }
      },
      "inputArtifacts": [
        {
          "location": {
            "s3Location": {
              "bucketName": "codepipeline-eu-west-1-1234567890",
              "objectKey": "ferry-demo/BuildArtif/Ab3dEfG"
            },
            "type": "S3"
          },
          "revision": null,
          "name": "BuildArtifact"
        },
        {
          "location": {
            "s3Location": {
              "bucketName": "codepipeline-eu-west-1-1234567890",
              "objectKey": "ferry-demo/SourceArti/XyZ12ab"
            },
            "type": "S3"
          },
          "revision": "5d0c5d9f4a27c2b5e4c3f1a0",
          "name": "SourceArtifact"
        }
      ],
      "outputArtifacts": [
        {
          "location": {
            "s3Location": {
              "bucketName": "codepipeline-eu-west-1-1234567890",
              "objectKey": "ferry-demo/TestOutput/Qw9rTy0"
            },
            "type": "S3"
          },
          "revision": null,
          "name": "TestOutput"
        }
      ],
      "artifactCredentials": {
        "secretAccessKey": "]] .. SECRET_KEY .. [[",
        "sessionToken": "]] .. SESSION_TOKEN .. [[",
        "accessKeyId": "ASIAFERRYEXAMPLE0001"
      },
      "continuationToken": "step-2-of-4",
      "encryptionKey": {
        "id": "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "type": "KMS"
      }
    }
  }
}]]

local CUSTOM = {category = "Test", owner = "Custom", provider = "FerryVerify", version = "1"}

local control, calls, fault = aws_support.control, aws_support.calls, aws_support.fault

local function results()
  return control("GET", "codepipeline/results").results
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  return (s:gsub("..?.?", function(c)
    local a, b, d = c:byte(1, 3)
    local n = a << 16 | (b or 0) << 8 | (d or 0)
    local out = {}
    for i = 1, 4 do
      local v = n >> (6 * (4 - i)) & 63
      out[i] = i <= #c + 1 and B64:sub(v + 1, v + 1) or "="
    end
    return table.concat(out)
  end))
end

-- Seeds one Lambda job (data as in an event) and returns the event the
-- double would invoke the function with.
local function lambda_job(data, extra)
  local spec = {data = data or {actionConfiguration = {configuration = {FunctionName = "ferry"}}}}
  for k, v in pairs(extra or {}) do spec[k] = v end
  local id = control("POST", "codepipeline/seed", {jobs = {spec}}).jobs[1].id
  return control("POST", "codepipeline/lambda-event", {jobId = id}).event
end

describe("codepipeline", function()
  local scale
  before_each(function()
    control("POST", "reset")
    scale = aws._retry.scale
    aws._retry.scale = 0.01 -- the same retries, with backoff sleeps a hundredth as long
  end)
  after_each(function()
    aws._retry.scale = scale
  end)

  it("parses the Lambda Invoke event", function()
    local job = codepipeline.job_from_event(json.decode(EVENT))
    assert.equal("11111111-abcd-1111-abcd-111111abcdef", job.id)
    assert.equal("111111111111", job.account_id)
    assert.equal("scripts/pipeline.lua namespace=staging", job.user_parameters)
    assert.same({FunctionName = "ferry-lambda", UserParameters = "scripts/pipeline.lua namespace=staging"},
                job.configuration)
    assert.same({{name = "BuildArtifact", type = "S3", bucket = "codepipeline-eu-west-1-1234567890",
                  key = "ferry-demo/BuildArtif/Ab3dEfG"},
                 {name = "SourceArtifact", type = "S3", bucket = "codepipeline-eu-west-1-1234567890",
                  key = "ferry-demo/SourceArti/XyZ12ab", revision = "5d0c5d9f4a27c2b5e4c3f1a0"}},
                job.input_artifacts)
    assert.equal("TestOutput", job.output_artifacts[1].name)
    assert.equal("step-2-of-4", job.continuation_token)
    assert.same({id = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab", type = "KMS"},
                job.encryption_key)
    assert.is_true(codepipeline.is_job(job))
    assert.same(job.input_artifacts, codepipeline.job_from_event(EVENT).input_artifacts) -- JSON text too
  end)

  it("never shows the artifact credentials in the job, its text or its JSON", function()
    local job = codepipeline.job_from_event(EVENT)
    local text = tostring(job)
    assert.equal("codepipeline job 11111111-abcd-1111-abcd-111111abcdef (inputs BuildArtifact, SourceArtifact; "
                 .. "continued)", text)
    local encoded = json.encode(job)
    for _, secret in ipairs({SECRET_KEY, SESSION_TOKEN}) do
      assert.is_nil(encoded:find(secret, 1, true))
      for _, v in pairs(job) do assert.are_not.equal(secret, v) end
      assert.is_nil(log.redact("key " .. secret .. " token"):find(secret, 1, true))
    end
  end)

  it("keeps the artifact credentials out of logs and error reports", function()
    local dir = support.make_tmpdir()
    support.write(dir .. "/event.json", EVENT)
    support.write(dir .. "/job.lua", [[
      local codepipeline = require("codepipeline")
      local log = require("log")
      local f = assert(io.open(arg[1])); local event = f:read("a"); f:close()
      local decoded = require("json").decode(event)
      local job = codepipeline.job_from_event(decoded)
      local c = decoded["CodePipeline.job"].data.artifactCredentials
      log.info("job %s", job)
      log.info("raw credentials: %s %s", c.secretAccessKey, c.sessionToken)
      print(tostring(job))
      error("failed with " .. c.secretAccessKey .. " and " .. c.sessionToken)
    ]])
    local run = support.run_ferry(dir, {"lua", dir .. "/job.lua", dir .. "/event.json"})
    support.remove_tree(dir)
    assert.is_not.equal(0, run.code)
    assert.matches("codepipeline job 11111111", run.stdout, 1, true)
    assert.matches("raw credentials", run.stderr, 1, true)
    assert.matches("failed with", run.stderr, 1, true)
    for _, secret in ipairs({SECRET_KEY, SESSION_TOKEN}) do
      assert.is_nil(run.stdout:find(secret, 1, true))
      assert.is_nil(run.stderr:find(secret, 1, true))
    end
  end)

  it("rejects an event that is not a CodePipeline job", function()
    assert.matches("no \"CodePipeline.job\" member", support.raised(codepipeline.job_from_event, {Records = {}}))
    assert.matches("not JSON", support.raised(codepipeline.job_from_event, "{nope"))
    assert.matches("the job has no id",
                   support.raised(codepipeline.job_from_event, {["CodePipeline.job"] = {data = {}}}))
  end)

  it("reports success with output variables and a summary", function()
    local job = codepipeline.job_from_event(lambda_job())
    assert.is_true(codepipeline.succeed(job, {outputs = {image = "app@sha256:abc", replicas = 3, ok = true},
                                              summary = "staging verified", external_id = "run-42"}))
    local r = results()
    assert.equal(1, #r)
    assert.equal(job.id, r[1].jobId)
    assert.equal("success", r[1].kind)
    assert.same({image = "app@sha256:abc", replicas = "3", ok = "true"}, r[1].outputVariables)
    assert.same({summary = "staging verified", externalExecutionId = "run-42"}, r[1].executionDetails)
    assert.equal("Succeeded", control("GET", "codepipeline/jobs/" .. job.id).status)
  end)

  it("truncates a long summary to 2048 bytes with a note", function()
    local job = codepipeline.job_from_event(lambda_job())
    codepipeline.succeed(job, {summary = ("é"):rep(3000)}) -- 6000 bytes
    local summary = results()[1].executionDetails.summary
    assert.is_true(#summary <= 2048)
    assert.truthy(utf8.len(summary))
    assert.matches("%[%.%.%. truncated: %d+ of 6000 bytes not shown%]$", summary)
  end)

  it("reports failure with its type, truncating the message to 5000 characters", function()
    local job = codepipeline.job_from_event(lambda_job())
    codepipeline.fail(job, ("x"):rep(7000), {type = "ConfigurationError", external_id = "run-7"})
    local r = results()[1]
    assert.equal("failure", r.kind)
    assert.equal("ConfigurationError", r.failureDetails.type)
    assert.equal("run-7", r.failureDetails.externalExecutionId)
    assert.is_true(#r.failureDetails.message <= 5000)
    assert.matches("^xxxx", r.failureDetails.message)
    assert.matches("truncated: %d+ of 7000 bytes not shown%]$", r.failureDetails.message)
    assert.equal("Failed", control("GET", "codepipeline/jobs/" .. job.id).status)
  end)

  it("masks secrets in a failure message and prints error objects", function()
    local job = codepipeline.job_from_event(lambda_job())
    log.secret("hunter2-db-password")
    codepipeline.fail(job, errors.new{code = "timeout", message = "mongo auth with hunter2-db-password timed out"})
    local message = results()[1].failureDetails.message
    assert.is_nil(message:find("hunter2-db-password", 1, true))
    assert.matches("mongo auth with", message, 1, true)
    assert.matches("[timeout]", message, 1, true)
    assert.equal("JobFailed", results()[1].failureDetails.type)
  end)

  it("continues later: the double finishes the job and runs a new one carrying the token", function()
    local job = codepipeline.job_from_event(lambda_job())
    codepipeline.continue_later(job, "snapshot-3f2a", {summary = "waiting for the snapshot"})
    local r = results()[1]
    assert.equal("snapshot-3f2a", r.continuationToken)
    assert.is_nil(r.outputVariables)
    assert.equal("waiting for the snapshot", r.executionDetails.summary)
    local next_event = control("POST", "codepipeline/lambda-event", {jobId = r.newJobId}).event
    local next_job = codepipeline.job_from_event(next_event)
    assert.are_not.equal(job.id, next_job.id)
    assert.equal("snapshot-3f2a", next_job.continuation_token)
    codepipeline.succeed(next_job, {outputs = {done = "yes"}})
    assert.same({done = "yes"}, results()[2].outputVariables)
  end)

  it("rejects over-size output variables before sending anything", function()
    local job = codepipeline.job_from_event(lambda_job())
    local err = support.raised(codepipeline.succeed, job, {outputs = {a = ("v"):rep(100000), b = ("w"):rep(22880)}})
    assert.is_true(errors.is(err, "too_large"))
    assert.matches("122882 bytes", err.message, 1, true)
    assert.matches("at most 122880", err.message, 1, true)
    assert.equal(0, #calls("codepipeline"))
    codepipeline.succeed(job, {outputs = {a = ("v"):rep(100000), b = ("w"):rep(22878)}}) -- exactly the limit
    assert.equal(1, #results())
  end)

  it("rejects output variables with a continuation token before sending anything", function()
    local job = codepipeline.job_from_event(lambda_job())
    assert.matches("cannot be sent with a continuation token",
                   support.raised(codepipeline.succeed, job, {outputs = {a = "1"}, continuation_token = "t"}))
    assert.matches("cannot be sent with a continuation token",
                   support.raised(codepipeline.continue_later, job, "t", {outputs = {a = "1"}}))
    assert.matches("output variable name 'bad name'",
                   support.raised(codepipeline.succeed, job, {outputs = {["bad name"] = "1"}}))
    assert.matches("type 'Oops'", support.raised(codepipeline.fail, job, "m", {type = "Oops"}))
    assert.equal(0, #calls("codepipeline"))
  end)

  it("retries a throttled result more times than other calls", function()
    local job = codepipeline.job_from_event(lambda_job())
    fault{service = "codepipeline", operation = "PutJobSuccessResult", kind = "throttle", count = 5}
    assert.is_true(codepipeline.succeed(job, {summary = "after throttling"}))
    local log_ = calls("codepipeline", "PutJobSuccessResult")
    assert.equal(6, #log_) -- 5 throttled, then recorded: more than the default 3 attempts
    for i = 1, 5 do assert.equal("ThrottlingException", log_[i].error) end
    assert.equal(1, #results())
    fault{service = "codepipeline", operation = "PutJobFailureResult", kind = "error500", count = 3}
    local job2 = codepipeline.job_from_event(lambda_job())
    assert.is_true(codepipeline.fail(job2, "broken"))
    assert.equal(4, #calls("codepipeline", "PutJobFailureResult"))
  end)

  it("gives up on a throttled result after result_attempts", function()
    local job = codepipeline.job_from_event(lambda_job())
    fault{service = "codepipeline", operation = "PutJobSuccessResult", kind = "throttle", count = -1}
    local err = support.raised(codepipeline.succeed, job)
    assert.is_true(errors.is(err, "ThrottlingException"))
    assert.equal(codepipeline.result_attempts, #calls("codepipeline", "PutJobSuccessResult"))
  end)

  it("takes InvalidJobStateException on a retry as the lost answer of a recorded result", function()
    -- The double cannot lose an answer after recording it, so aws.call stands
    -- in: its retry found the job already finished.
    local job = codepipeline.job_from_event(lambda_job())
    local real = aws.call
    local attempts
    aws.call = function(o)
      assert.equal(codepipeline.result_attempts, o.max_attempts)
      error(errors.new{code = "InvalidJobStateException", message = "job is in state Succeeded",
                       status = 400, attempts = attempts, op = "codepipeline." .. o.operation}, 0)
    end
    attempts = 2
    local ok, res = pcall(codepipeline.succeed, job, {summary = "done"})
    attempts = 1
    local ok1, err1 = pcall(codepipeline.fail, job, "late")
    aws.call = real
    assert.is_true(ok)
    assert.is_true(res)
    assert.is_false(ok1) -- on the first attempt it is a real second result
    assert.is_true(errors.is(err1, "InvalidJobStateException"))
  end)

  it("raises InvalidJobStateException for a second result", function()
    local job = codepipeline.job_from_event(lambda_job())
    codepipeline.succeed(job)
    local err = support.raised(codepipeline.fail, job, "again")
    assert.is_true(errors.is(err, "InvalidJobStateException"))
    assert.equal(1, #calls("codepipeline", "PutJobFailureResult"))
  end)

  it("reads an input artifact from S3 with the job's own credentials", function()
    local issued = control("POST", "credentials", {issue = true}).issued
    local files = {["build.json"] = '{"image":"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v7"}',
                   ["manifests/app.yaml"] = "kind: Deployment\n"}
    control("POST", "s3", {bucket = "codepipeline-eu-west-1-42", key = "ferry/BuildArtif/k+y 1.zip",
                           body = base64(zip.write(files))})
    local event = lambda_job({
      actionConfiguration = {configuration = {FunctionName = "ferry"}},
      inputArtifacts = {{name = "BuildArtifact", location = {type = "S3", s3Location = {
        bucketName = "codepipeline-eu-west-1-42", objectKey = "ferry/BuildArtif/k+y 1.zip"}}}},
      outputArtifacts = {},
      artifactCredentials = {accessKeyId = issued.access_key_id, secretAccessKey = issued.secret_access_key,
                             sessionToken = issued.session_token},
    })
    local job = codepipeline.job_from_event(event)
    assert.same(files, codepipeline.input_artifact(job, "BuildArtifact"))
    assert.same(files, codepipeline.input_artifact(job)) -- the only one
    local gets = calls("s3")
    assert.equal(2, #gets)
    assert.equal(issued.access_key_id, gets[1].access_key_id)
    assert.equal(200, gets[1].status)
    assert.matches("no input artifact 'Nope'", support.raised(codepipeline.input_artifact, job, "Nope"))
  end)

  it("raises a clear error, without the credentials, when the artifact cannot be read", function()
    local issued = control("POST", "credentials", {issue = true}).issued
    control("POST", "s3", {bucket = "bkt", key = "not-a-zip", body = base64("plain text")})
    local function job_for(key, secret)
      return codepipeline.job_from_event(lambda_job({
        actionConfiguration = {configuration = {}},
        inputArtifacts = {{name = "A", location = {type = "S3", s3Location = {bucketName = "bkt", objectKey = key}}}},
        artifactCredentials = {accessKeyId = issued.access_key_id, secretAccessKey = secret,
                               sessionToken = issued.session_token},
      }))
    end
    local err = support.raised(codepipeline.input_artifact, job_for("missing", issued.secret_access_key))
    assert.is_true(errors.is(err, "NoSuchKey"))
    assert.equal(404, err.status)
    assert.matches("input artifact A (s3://bkt/missing)", err.message, 1, true)
    err = support.raised(codepipeline.input_artifact, job_for("not-a-zip", issued.secret_access_key))
    assert.is_true(errors.is(err, "invalid_artifact"))
    assert.matches("not a zip archive", err.message, 1, true)
    local wrong = "wrong-secret-0123456789abcdefghijklmnop"
    err = support.raised(codepipeline.input_artifact, job_for("not-a-zip", wrong))
    assert.equal(403, err.status)
    assert.equal("SignatureDoesNotMatch", err.code)
    local text = tostring(err) .. (err.traceback or "")
    for _, secret in ipairs({wrong, issued.session_token, issued.secret_access_key}) do
      assert.is_nil(text:find(secret, 1, true))
    end
  end)

  it("polls custom action jobs and acknowledges one; a stale nonce loses the race", function()
    control("POST", "codepipeline/seed", {actionTypes = {CUSTOM}, jobs = {
      {actionTypeId = CUSTOM, pipelineName = "ferry-demo", stageName = "Test", actionName = "Verify",
       data = {actionConfiguration = {configuration = {Script = "verify.lua"}}}}}})
    local got = {}
    local workers = {}
    for w = 1, 2 do
      workers[w] = task.spawn(function()
        got[w] = codepipeline.poll{action_type = CUSTOM, max_batch = 5}
      end)
    end
    for _, t in ipairs(workers) do task.wait(t) end
    assert.equal(1, #got[1] + #got[2]) -- handed out once
    local job = got[1][1] or got[2][1]
    assert.is_string(job.nonce)
    assert.same(CUSTOM, job.action_type)
    assert.equal("ferry-demo", job.pipeline.name)
    assert.equal("Verify", job.pipeline.action)
    assert.equal("verify.lua", job.configuration.Script)
    local stale = {id = job.id, nonce = tostring(tonumber(job.nonce) + 1)}
    local ok, why = codepipeline.ack(stale)
    assert.is_false(ok)
    assert.equal("taken by another worker", why)
    ok, why = codepipeline.ack(job)
    assert.is_true(ok)
    assert.equal("InProgress", why)
    assert.is_true(codepipeline.succeed(job, {outputs = {verified = "yes"}}))
    assert.same({}, codepipeline.poll{action_type = CUSTOM})
  end)

  it("starts an execution idempotently and reads it", function()
    control("POST", "codepipeline/seed", {pipelines = {{name = "ferry-demo", executionPolls = 1,
                                                        executionResult = "Succeeded"}}})
    local id = codepipeline.start{pipeline = "ferry-demo", variables = {image = "app:v1", replicas = 2},
                                  client_request_token = "run-1234"}
    assert.is_string(id)
    assert.equal(id, codepipeline.start{pipeline = "ferry-demo", client_request_token = "run-1234"})
    local start = calls("codepipeline", "StartPipelineExecution")
    assert.equal(2, #start)
    local e = codepipeline.execution{pipeline = "ferry-demo", id = id}
    assert.equal(id, e.id)
    assert.equal("ferry-demo", e.pipeline)
    assert.equal("InProgress", e.status)
    assert.same({image = "app:v1", replicas = "2"}, e.variables)
    local err = support.raised(codepipeline.execution, {pipeline = "nope", id = id})
    assert.is_true(errors.is(err, "PipelineNotFoundException"))
  end)

  it("waits for an execution to finish", function()
    control("POST", "codepipeline/seed", {pipelines = {{name = "ferry-demo", executionPolls = 3,
                                                        executionResult = "Failed"}}})
    local id = codepipeline.start{pipeline = "ferry-demo"}
    local e = codepipeline.wait_execution{pipeline = "ferry-demo", id = id, timeout = 20, interval = 0.02}
    assert.equal("Failed", e.status)
    assert.is_true(#calls("codepipeline", "GetPipelineExecution") >= 4)
  end)

  it("times out waiting for an execution, naming it and its last status", function()
    control("POST", "codepipeline/seed", {pipelines = {{name = "slow", executionPolls = 100000}}})
    local id = codepipeline.start{pipeline = "slow"}
    local err = support.raised(codepipeline.wait_execution,
                               {pipeline = "slow", id = id, timeout = 0.2, interval = 0.05})
    assert.is_true(errors.is(err, "timeout"))
    assert.matches(("execution %s of pipeline slow"):format(id), err.message, 1, true)
    assert.matches("last status: InProgress", err.message, 1, true)
  end)

  it("reads a pipeline's state stage by stage", function()
    local lambda = {category = "Invoke", owner = "AWS", provider = "Lambda", version = "1"}
    control("POST", "codepipeline/seed", {pipelines = {{name = "ferry-demo", jobsOnStart = true, stages = {
      {name = "Source", actions = {{name = "Checkout", actionTypeId = {category = "Source", owner = "AWS",
                                                                        provider = "S3", version = "1"}}}},
      {name = "Staging", actions = {{name = "RunFerry", actionTypeId = lambda,
                                     configuration = {FunctionName = "ferry"}}}}}}}})
    local id = codepipeline.start{pipeline = "ferry-demo"}
    local state = codepipeline.state{pipeline = "ferry-demo"}
    assert.equal("ferry-demo", state.pipeline)
    assert.equal(2, #state.stages)
    assert.equal("Source", state.stages[1].name)
    assert.equal("Staging", state.stages[2].name)
    assert.equal("InProgress", state.stages[2].status)
    assert.equal(id, state.stages[2].execution_id)
    assert.equal("RunFerry", state.stages[2].actions[1].name)
    assert.equal("InProgress", state.stages[2].actions[1].status)
    local job = codepipeline.job_from_event(control("POST", "codepipeline/lambda-event", {}).event)
    codepipeline.succeed(job, {summary = "verified"})
    state = codepipeline.state{pipeline = "ferry-demo"}
    assert.equal("Succeeded", state.stages[2].actions[1].status)
    assert.equal("verified", state.stages[2].actions[1].summary)
  end)
end)
