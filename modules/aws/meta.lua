---@meta aws
-- AWS for Ferry's service modules: SigV4 signing (native), the default
-- credential chain with refresh, calls to JSON 1.1 services (ECR,
-- CodePipeline, SSM) and the Query protocol (STS) with the SDKs' standard
-- retries, endpoint overrides for loopback doubles, SSM parameters and EKS
-- tokens. Service failures raise ferry.Error objects; bad arguments raise
-- strings.
--
-- Environment read: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
-- AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME, AWS_PROFILE,
-- AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
-- AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE],
-- AWS_EC2_METADATA_DISABLED, AWS_EC2_METADATA_SERVICE_ENDPOINT[_MODE],
-- AWS_METADATA_SERVICE_TIMEOUT, AWS_METADATA_SERVICE_NUM_ATTEMPTS, AWS_REGION,
-- AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>, AWS_MAX_ATTEMPTS,
-- KUBERNETES_EXEC_INFO; FERRY_CONTAINER_CREDENTIALS_HOST replaces 169.254.170.2
-- (host[:port] or a base URL) for tests.

---@class aws.Credentials
---@field access_key_id string
---@field secret_access_key string registered with log.secret
---@field session_token? string registered with log.secret
---@field expiration? integer epoch seconds; refreshed 5 minutes before
---@field source? string where they came from: "environment", "web_identity", "profile:NAME", "assume_role:NAME", "container", "imds"

---@class aws.Request
---@field method string
---@field url string
---@field headers? table<string, string>
---@field body? string

---@class aws.SignOpts
---@field service string the signing name ("ecr", not "api.ecr")
---@field region string
---@field credentials aws.Credentials
---@field time? integer epoch seconds (default now)
---@field expires? integer presign only: X-Amz-Expires seconds

---@class aws.CallOpts
---@field service "ecr"|"codepipeline"|"ssm"|"sts"
---@field operation string e.g. "DescribeImages"
---@field params? table the operation's input, member names as in the model
---@field region? string default aws.region()
---@field credentials? aws.Credentials default aws.credentials()
---@field max_attempts? integer attempts including the first (default AWS_MAX_ATTEMPTS or 3)
---@field endpoint? string base URL instead of aws.endpoint(service, region)
---@field timeout? number seconds per attempt (default 60)

local aws = {}

---Signs a request with SigV4 in headers; returns the headers to send with it
---(Authorization, X-Amz-Date, X-Amz-Security-Token when there is a session token).
---@param request aws.Request
---@param opts aws.SignOpts
---@return table<string, string>
function aws.sign(request, opts) end

---Presigns a request (SigV4 in the query string, X-Amz-Expires = opts.expires);
---returns the URL. Headers in request.headers are signed and must be sent with it.
---@param request aws.Request
---@param opts aws.SignOpts
---@return string url
function aws.presign(request, opts) end

---The credentials of the default chain — environment, web identity, the shared
---files' profile (static keys or an assumed role, chained through
---source_profile or credential_source), container, IMDSv2 — or of
---opts.profile (which skips the environment, as the AWS CLI's --profile does).
---Temporary credentials are cached per profile and refreshed 5 minutes before
---they expire. Raises {code = "no_credentials"} listing every source tried and
---why it did not apply; {code = "config"} for a named profile that does not
---exist, a source_profile cycle or a malformed file ("FILE:LINE: ...").
---@param opts? {profile?: string}
---@return aws.Credentials
function aws.credentials(opts) end

---The region: AWS_REGION, AWS_DEFAULT_REGION, then `region` of the profile
---(the one named, or AWS_PROFILE, or default) in the config file; nil when none.
---@param profile? string
---@return string?
function aws.region(profile) end

---The base URL of a service (no trailing slash): AWS_ENDPOINT_URL_<SERVICE>
---(ECR, CODEPIPELINE, SSM, STS, S3), then AWS_ENDPOINT_URL, else the real
---regional endpoint (api.ecr., codepipeline., ssm., sts., s3. +
---region + .amazonaws.com, or .amazonaws.com.cn in cn-*). Signing uses the
---real signing name and region whatever the endpoint.
---@param service string
---@param region? string default aws.region()
---@return string
function aws.endpoint(service, region) end

---Calls an operation and returns its decoded result (Query/STS: the inner
---`<Operation>Result` table). Standard retries: connection errors, HTTP
---429/500/502/503/504, throttling and transient codes, full-jitter backoff,
---a per-process retry quota; every attempt is signed anew; one retry with the
---service's clock after a "Signature expired"/RequestTimeTooSkewed answer.
---Raises ferry.Error {code (AWS error code, sanitized), message, status,
---request_id, retryable, op = "ecr.DescribeImages", attempts}.
---@param opts aws.CallOpts
---@return table
function aws.call(opts) end

---The value of an SSM parameter (GetParameter). A SecureString's value is
---registered with log.secret, so it never shows in logs, errors or reports.
---@param name string
---@param opts? {decrypt?: boolean, region?: string, credentials?: aws.Credentials} decrypt defaults to true
---@return string
function aws.ssm_parameter(name, opts) end

---An EKS bearer token: "k8s-aws-v1." + unpadded base64url of a presigned STS
---GetCallerIdentity GET (X-Amz-Expires=60, signed x-k8s-aws-id: cluster),
---registered with log.secret; and when to stop using it: signing time + 14
---minutes, epoch seconds, as the AWS CLI. Reused while it has over a minute left.
---@param opts {cluster: string, region?: string, credentials?: aws.Credentials, time?: integer}
---@return string token
---@return integer expires_at
function aws.eks_token(opts) end

---The JSON text of an ExecCredential (what `aws eks get-token` prints):
---apiVersion from opts.api_version, else KUBERNETES_EXEC_INFO's, else
---client.authentication.k8s.io/v1beta1; status.expirationTimestamp (RFC 3339
---UTC) and status.token.
---@param opts {cluster: string, region?: string, api_version?: string, credentials?: aws.Credentials}
---@return string
function aws.exec_credential(opts) end

return aws
