---@meta codepipeline
-- AWS CodePipeline for workflows: the job in hand (a Lambda Invoke event or a
-- custom-action worker's poll), its result, its input artifacts, and pipeline
-- control. A job's artifactCredentials are registered with log.secret when the
-- job is parsed and kept out of the job table, so printing, logging or
-- serializing a job never shows them. Results are checked against
-- CodePipeline's limits before sending and sent with codepipeline.result_attempts
-- attempts: a lost result leaves the pipeline waiting until the action times out.
-- Service failures raise aws error objects {code, message, status, request_id,
-- retryable, op}; bad arguments raise "codepipeline.<fn>: ..." strings.

-- luacheck: no unused args

---@class codepipeline.Artifact
---@field name string
---@field bucket? string S3 bucket
---@field key? string S3 object key
---@field type? string "S3"
---@field revision? string

---@class codepipeline.Job
---@field id string
---@field account_id? string
---@field user_parameters? string the action's UserParameters
---@field configuration table<string, string> the action's configuration
---@field input_artifacts codepipeline.Artifact[]
---@field output_artifacts codepipeline.Artifact[]
---@field continuation_token? string set on a job continued with continue_later
---@field encryption_key? {id: string, type: string}
---@field nonce? string polled jobs: what ack sends
---@field action_type? {category: string, owner: string, provider: string, version: string} polled jobs
---@field pipeline? {name: string, stage: string, action: string, execution_id: string, action_execution_id: string, arn: string} polled jobs

---@class codepipeline.SucceedOpts
---@field outputs? table<string, string|number|boolean> output variables (at most 122880 bytes of names and values)
---@field summary? string shown in the console; masked and truncated to 2048 bytes with a note
---@field external_id? string externalExecutionId (at most 1500 characters)
---@field percent_complete? integer 0..100
---@field continuation_token? string continue later instead of finishing (never with outputs)
---@field current_revision? {revision: string, change_identifier: string, created?: number, summary?: string}
---@field region? string

---@class codepipeline.Execution
---@field id string
---@field pipeline string
---@field version? integer
---@field status string InProgress, Stopping, Succeeded, Failed, Stopped, Cancelled, Superseded
---@field summary? string
---@field variables table<string, string> resolved values by name
---@field artifact_revisions {name: string, revision_id: string, change_identifier: string, summary: string, created: number, url: string}[]
---@field trigger? {type: string, detail: string}
---@field mode? string
---@field type? string

---@class codepipeline.State
---@field pipeline string
---@field version? integer
---@field created? number
---@field updated? number
---@field stages {name: string, status?: string, execution_id?: string, inbound_enabled?: boolean, actions: {name: string, status?: string, summary?: string, execution_id?: string, external_id?: string, external_url?: string, percent_complete?: integer, last_change?: number, error?: {code: string, message: string}, revision?: string, url?: string}[]}[]

local codepipeline = {}

---Attempts (first included) for PutJobSuccessResult and PutJobFailureResult.
codepipeline.result_attempts = 8
---Bytes of output variable names and values one action may return.
codepipeline.max_output_bytes = 122880
---Bytes of a result summary; longer ones are truncated with a note.
codepipeline.max_summary = 2048
---Bytes of a failure message; longer ones are truncated with a note.
codepipeline.max_message = 5000
---Bytes of a zipped input artifact downloaded at most.
codepipeline.max_artifact_download = 268435456

---The job of a CodePipeline Lambda Invoke event ({"CodePipeline.job": ...},
---as a table or JSON text). tostring(job) names the job, never its credentials.
---@param event table|string
---@return codepipeline.Job
function codepipeline.job_from_event(event) end

---Whether v is a job made by job_from_event or poll.
---@param v any
---@return boolean
function codepipeline.is_job(v) end

---Reports the job succeeded (PutJobSuccessResult). Raises a "too_large"
---error, sending nothing, when the output variables are over the limit.
---@param job codepipeline.Job|string a job or its id
---@param opts? codepipeline.SucceedOpts
---@return true
function codepipeline.succeed(job, opts) end

---Reports the job failed (PutJobFailureResult). The message (any value;
---error objects print as text) is masked and truncated to 5000 bytes.
---@param job codepipeline.Job|string
---@param message any
---@param opts? {type?: "JobFailed"|"ConfigurationError"|"PermissionError"|"RevisionOutOfSync"|"RevisionUnavailable"|"SystemUnavailable", external_id?: string, region?: string}
---@return true
function codepipeline.fail(job, message, opts) end

---Reports the job still in progress (PutJobSuccessResult with a continuation
---token): CodePipeline finishes this job and runs a new one whose
---continuation_token is token.
---@param job codepipeline.Job|string
---@param token string 1..2048 characters
---@param opts? {summary?: string, external_id?: string, percent_complete?: integer, region?: string}
---@return true
function codepipeline.continue_later(job, token, opts) end

---The files of a zipped input artifact, path -> contents: S3 GetObject of
---its bucket and key (path-style on aws.endpoint("s3", region)) signed with
---the job's artifact credentials, unzipped with the zip module's caps.
---name may be omitted when the job has exactly one input artifact.
---@param job codepipeline.Job
---@param name? string
---@param opts? {region?: string, max_download?: integer, max_size?: integer, max_files?: integer, timeout?: number}
---@return table<string, string>
function codepipeline.input_artifact(job, name, opts) end

---Polls for jobs of a custom action type (owner defaults to "Custom").
---@param args {action_type: {category: string, owner?: string, provider: string, version: string}, max_batch?: integer, query?: table<string, string>, region?: string}
---@return codepipeline.Job[]
function codepipeline.poll(args) end

---Claims a polled job with its nonce (AcknowledgeJob): true and the job's
---status, or false and "taken by another worker" (InvalidNonceException).
---@param job codepipeline.Job
---@param opts? {region?: string}
---@return boolean ok
---@return string status_or_reason
function codepipeline.ack(job, opts) end

---Starts an execution (StartPipelineExecution); returns its id. The same
---client_request_token returns the same execution.
---@param args {pipeline: string, variables?: table<string, string>|{name: string, value: string}[], client_request_token?: string, region?: string}
---@return string execution_id
function codepipeline.start(args) end

---One execution (GetPipelineExecution).
---@param args {pipeline: string, id: string, region?: string}
---@return codepipeline.Execution
function codepipeline.execution(args) end

---Polls the execution until it is over (Succeeded, Failed, Stopped,
---Cancelled, Superseded) and returns it, whatever the outcome; raises a
---"timeout" error naming it and its last status at the deadline.
---@param args {pipeline: string, id: string, timeout?: number, interval?: number, region?: string}
---@return codepipeline.Execution
function codepipeline.wait_execution(args) end

---A pipeline's state (GetPipelineState), stage by stage.
---@param args {pipeline: string, region?: string}
---@return codepipeline.State
function codepipeline.state(args) end

return codepipeline
