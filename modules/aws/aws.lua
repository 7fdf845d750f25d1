-- aws.lua: the Lua half of the aws module. aws.c hands over the native table
-- (aws.sign, aws.presign and the private primitives); this file adds the
-- credential chain (aws/credentials.lua), regions, endpoints, calls to JSON 1.1
-- and Query services with the SDKs' standard retries and one-shot clock-skew
-- correction, SSM parameters and EKS tokens.
--
-- Retries (standard mode, as botocore's retries/standard.py): max_attempts
-- default 3 (AWS_MAX_ATTEMPTS, per-call max_attempts), on connection errors,
-- HTTP 500/502/503/504/429 and the transient and throttling codes; full-jitter
-- backoff rand()*min(2^(n-1), 20) s; one retry quota per process (500 tokens,
-- a retry costs 5, or 10 after a timeout; a success refunds). Every attempt is
-- signed anew. A "Signature expired" / RequestTimeTooSkewed answer is retried
-- once with the clock offset read from the response's Date header, and the
-- offset is kept for later calls.
local M = ...
local credentials = require("aws.credentials")
local errors = require("errors")
local http = require("http")
local json = require("json")
local log = require("log")
local task = require("task")

-- service name → how to reach it. id: the SDK's service id for
-- AWS_ENDPOINT_URL_<ID>; host: the endpoint prefix; signing: the SigV4 name.
local SERVICES = {
  ecr = {id = "ECR", host = "api.ecr", signing = "ecr", protocol = "json",
         target = "AmazonEC2ContainerRegistry_V20150921"},
  codepipeline = {id = "CODEPIPELINE", host = "codepipeline", signing = "codepipeline", protocol = "json",
                  target = "CodePipeline_20150709"},
  ssm = {id = "SSM", host = "ssm", signing = "ssm", protocol = "json", target = "AmazonSSM"},
  sts = {id = "STS", host = "sts", signing = "sts", protocol = "query", version = "2011-06-15"},
  s3 = {id = "S3", host = "s3", signing = "s3"},
}

local RETRY_STATUS = {[429] = true, [500] = true, [502] = true, [503] = true, [504] = true}
local RETRY_CODES = {}
for code in ([[RequestTimeout RequestTimeoutException PriorRequestNotComplete Throttling ThrottlingException
  ThrottledException RequestThrottledException TooManyRequestsException ProvisionedThroughputExceededException
  TransactionInProgressException RequestLimitExceeded BandwidthLimitExceeded LimitExceededException
  RequestThrottled SlowDown EC2ThrottledException]]):gmatch("%S+") do
  RETRY_CODES[code] = true
end
local SKEW_CODES = {RequestTimeTooSkewed = true, RequestExpired = true, RequestInTheFuture = true}
local SIGNATURE_CODES = {InvalidSignatureException = true, SignatureDoesNotMatch = true, AuthFailure = true}
local EXPIRED_CODES = {ExpiredToken = true, ExpiredTokenException = true}
local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
                Nov = 11, Dec = 12}
local EXEC_API_VERSIONS = {["client.authentication.k8s.io/v1"] = true,
                           ["client.authentication.k8s.io/v1beta1"] = true,
                           ["client.authentication.k8s.io/v1alpha1"] = true}

-- Process-wide state, private (specs read and tune it): the retry quota, the
-- backoff scale (1 = the SDKs' seconds) and the clock offset learnt from a skewed answer.
M._retry = {quota = 500, capacity = 500, cost = 5, timeout_cost = 10, scale = 1}
M._clock = {offset = 0}

local function now()
  return os.time() + M._clock.offset
end

local function argerror(fn, msg)
  error(("aws.%s: %s"):format(fn, msg), 3)
end

-- ---- environment, regions, endpoints ----

local function env_getter(env)
  return function(name)
    local v = env[name]
    if v == "" then return nil end
    return v
  end
end

local function getenv(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

local function endpoint_for(get, service, region)
  local svc = SERVICES[service]
  local id = svc and svc.id or service:upper():gsub("[^%w]", "_")
  if not (get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") or ""):lower():match("^true$") then
    local v = get("AWS_ENDPOINT_URL_" .. id) or get("AWS_ENDPOINT_URL")
    if v then return (v:gsub("/+$", "")) end
  end
  local suffix = region:match("^cn%-") and "amazonaws.com.cn" or "amazonaws.com"
  return ("https://%s.%s.%s"):format(svc and svc.host or service, region, suffix)
end

-- ---- Query protocol serialization ----

local function form_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function is_list(v)
  if json.is_array(v) then return true end
  return v[1] ~= nil and next(v, #v) == nil
end

-- Flattens value under name into out (a list of {key, value}) by the Query
-- rules: structure members as Name.Member, lists as Name.member.N.
local function flatten(name, value, out)
  local t = type(value)
  if t == "table" then
    if is_list(value) then
      if #value == 0 then out[#out + 1] = {name, ""} end
      for i, item in ipairs(value) do flatten(name .. ".member." .. i, item, out) end
    else
      local keys = {}
      for k in pairs(value) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do flatten(name .. "." .. k, value[k], out) end
    end
  elseif t == "boolean" then
    out[#out + 1] = {name, value and "true" or "false"}
  elseif t == "number" then
    out[#out + 1] = {name, math.type(value) == "integer" and tostring(value) or ("%.17g"):format(value)}
  elseif value ~= nil and value ~= json.null then
    out[#out + 1] = {name, tostring(value)}
  end
end

local function query_body(operation, version, params)
  local pairs_ = {}
  local keys = {}
  for k in pairs(params or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do flatten(k, params[k], pairs_) end
  local parts = {"Action=" .. form_encode(operation), "Version=" .. form_encode(version)}
  for _, kv in ipairs(pairs_) do parts[#parts + 1] = form_encode(kv[1]) .. "=" .. form_encode(kv[2]) end
  return table.concat(parts, "&")
end

-- ---- errors, retries, clock skew ----

-- Epoch seconds of an HTTP-date ("Tue, 26 Nov 2024 16:40:00 GMT"), or nil.
local function http_date(v)
  if not v then return nil end
  local d, mon, y, hh, mi, ss = v:match("^%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT$")
  if not d or not MONTHS[mon] then return nil end
  return credentials.parse_time(("%04d-%02d-%02dT%s:%s:%sZ"):format(tonumber(y), MONTHS[mon], tonumber(d), hh, mi, ss))
end

-- The error object of a non-2xx answer (code sanitized as smithy-rs and botocore do).
local function service_error(res, op)
  local h, body = res.headers or {}, res.body or ""
  local code, message, request_id
  local ok, doc = pcall(json.decode, body)
  if ok and type(doc) == "table" then
    local e = doc.Error or (type(doc.ErrorResponse) == "table" and doc.ErrorResponse.Error)
    if type(e) == "table" then -- Query protocol as JSON
      code, message = e.Code, e.Message or e.message
      request_id = doc.RequestId or (type(doc.ErrorResponse) == "table" and doc.ErrorResponse.RequestId)
    else
      code = doc.code or doc.__type
      message = doc.message or doc.Message
    end
  elseif body:match("^%s*<") then -- Query protocol as XML
    code = body:match("<Code>(.-)</Code>")
    message = body:match("<Message>(.-)</Message>")
    request_id = body:match("<RequestId>(.-)</RequestId>")
  end
  code = h["x-amzn-errortype"] or code
  if type(code) == "string" then code = code:match("^[^:]*"):match("[^#]*$") end
  if type(code) ~= "string" or code == "" then code = tostring(res.status) end
  if type(message) ~= "string" or message == "" then message = "HTTP " .. res.status end
  -- The first paragraph only: SignatureDoesNotMatch goes on to quote the
  -- canonical request, X-Amz-Security-Token included; masked all the same.
  message = log.redact((message:gsub("\r?\n%s*\r?\n.*", "")))
  return errors.new{
    code = code,
    message = ("%s: %s"):format(op, message),
    status = res.status,
    request_id = type(request_id) == "string" and request_id or h["x-amzn-requestid"] or h["x-amz-request-id"],
    retryable = RETRY_STATUS[res.status] or RETRY_CODES[code] or false,
    op = op,
  }
end

M._parse_error = service_error -- for specs

local function transport_error(err, op)
  -- a bug, or the task's own cancellation (no url): not a failure of the call
  if not errors.is(err) or not err.url then error(err, 0) end
  return errors.new{code = err.code, message = ("%s: %s"):format(op, err.message), retryable = err.retryable == true,
                    op = op, url = err.url}
end

local function is_skew(err)
  if SKEW_CODES[err.code] then return true end
  return SIGNATURE_CODES[err.code] and (err.message:find("Signature expired", 1, true)
    or err.message:find("Signature not yet current", 1, true)) ~= nil
end

local function backoff(attempt)
  return math.random() * math.min(2 ^ (attempt - 1), 20) * M._retry.scale
end

local function merge_headers(into, from)
  for k, v in pairs(from or {}) do
    local lk = k:lower()
    for old in pairs(into) do
      if old:lower() == lk then into[old] = nil end
    end
    into[k] = v
  end
  return into
end

-- Checks explicit credentials and registers their secrets, as the chain
-- does for the credentials it finds, so no output can show them.
local function check_credentials(c, fn)
  if type(c) ~= "table" or type(c.access_key_id) ~= "string" or type(c.secret_access_key) ~= "string" then
    argerror(fn, "credentials must be a table with access_key_id and secret_access_key")
  end
  log.secret(c.secret_access_key)
  if type(c.session_token) == "string" then log.secret(c.session_token) end
end

local default_chain -- set below

-- One service call with retries. o: {service, operation, params, region,
-- credentials (table; false: unsigned; nil: the default chain), max_attempts,
-- endpoint, timeout, get (the environment), chain}.
local function invoke(o)
  local svc = SERVICES[o.service]
  local get = o.get or getenv
  local op = o.service .. "." .. o.operation
  local region = o.region or (o.chain or default_chain):region()
  if not region then
    error(errors.new{code = "config", op = op, message = op
      .. ": no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the profile), or pass region"}, 0)
  end
  local url = (o.endpoint and o.endpoint:gsub("/+$", "") or endpoint_for(get, o.service, region)) .. "/"
  local headers, body
  if svc.protocol == "json" then
    headers = {["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = svc.target .. "." .. o.operation}
    body = json.encode(o.params or {})
  else
    headers = {["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8", Accept = "application/json"}
    body = query_body(o.operation, svc.version, o.params)
  end
  local max_attempts = o.max_attempts or math.tointeger(tonumber(get("AWS_MAX_ATTEMPTS") or "")) or 3
  local retry = M._retry
  local attempt, retries, last_cost, skew_fixed, renewed = 0, 0, 0, false, false
  while true do
    attempt = attempt + 1
    local h = merge_headers({}, headers)
    local creds = o.credentials
    if creds == nil then creds = (o.chain or default_chain):get() end
    if creds then
      merge_headers(h, M.sign({method = "POST", url = url, headers = h, body = body},
                              {service = svc.signing, region = region, credentials = creds, time = now()}))
    end
    local ok, res = pcall(http.request, {method = "POST", url = url, headers = h, body = body,
                                         timeout = o.timeout or 60, connect_timeout = 10, retries = 0})
    if ok and res.status >= 200 and res.status < 300 then
      retry.quota = math.min(retry.capacity, retry.quota + (retries > 0 and last_cost or 1))
      return res, op
    end
    local err = ok and service_error(res, op) or transport_error(res, op)
    err.attempts = attempt
    local server_time = ok and http_date(res.headers.date)
    if ok and is_skew(err) and not skew_fixed and server_time then
      skew_fixed = true
      M._clock.offset = server_time - os.time()
      log.warn("aws: %s: the clock is %d s off the service's; signing again with the service's time",
               op, -M._clock.offset)
      attempt = attempt - 1 -- the corrected attempt is not a retry
    elseif ok and EXPIRED_CODES[err.code] and o.credentials == nil and not renewed then
      -- the chain's credentials expired early (revoked, or a clock off): fetch new ones once
      renewed = true
      local chain = o.chain or default_chain
      chain:invalidate()
      log.warn("aws: %s: the credentials expired (%s); fetching new ones", op, err.code)
      attempt = attempt - 1
    else
      if not err.retryable or attempt >= max_attempts then error(err, 0) end
      local cost = err.code == "timeout" and retry.timeout_cost or retry.cost
      if retry.quota < cost then
        err.message = err.message .. " (no retry: the retry quota is spent)"
        error(err, 0)
      end
      retry.quota, last_cost, retries = retry.quota - cost, cost, retries + 1
      local wait = backoff(attempt)
      log.debug("aws: %s failed (%s), attempt %d of %d; retrying in %.2f s", op, err.code, attempt,
                max_attempts, wait)
      task.sleep(wait)
    end
  end
end

-- The decoded result of a successful answer.
local function decode(res, o, op)
  if res.body == "" then return {} end
  local ok, doc = pcall(json.decode, res.body)
  if not ok or type(doc) ~= "table" then
    -- never quote the body: it may hold secrets (SSM SecureString values, STS credentials)
    error(errors.new{code = "bad_response", op = op, status = res.status,
                     message = op .. ": the answer is not a JSON object"}, 0)
  end
  if SERVICES[o.service].protocol == "query" then
    local wrapper = doc[o.operation .. "Response"]
    if type(wrapper) == "table" then
      local result = wrapper[o.operation .. "Result"]
      return type(result) == "table" and result or {}
    end
  end
  return doc
end

local function call(o)
  local res, op = invoke(o)
  return decode(res, o, op)
end

-- A chain reading the environment through get (and the time through now).
local function new_chain(get, clock)
  local chain
  chain = credentials.new{
    getenv = get,
    now = clock,
    sts = function(operation, params, opts)
      return call{service = "sts", operation = operation, params = params, region = opts.region,
                  credentials = opts.credentials, get = get, chain = chain}
    end,
  }
  return chain
end

default_chain = new_chain(getenv)

---A credential chain over an environment table instead of the process's,
---and optionally a clock (epoch seconds), for specs: chain:get(profile?) and
---chain:region(profile?).
function M._chain(env, clock)
  return new_chain(env_getter(env), clock)
end

-- ---- public functions ----

---The credentials of the default chain (or of opts.profile): a copy of the
---cached table, refreshed 5 minutes before it expires.
function M.credentials(opts)
  opts = opts or {}
  if type(opts) ~= "table" then argerror("credentials", "expected a table or nil") end
  if opts.profile ~= nil and type(opts.profile) ~= "string" then argerror("credentials", "profile must be a string") end
  local c = default_chain:get(opts.profile)
  local copy = {}
  for k, v in pairs(c) do copy[k] = v end
  return copy
end

---The region: AWS_REGION, AWS_DEFAULT_REGION, then the profile's region; nil when none.
function M.region(profile)
  if profile ~= nil and type(profile) ~= "string" then argerror("region", "profile must be a string") end
  return default_chain:region(profile)
end

---The base URL (no trailing slash) of service in region, honouring
---AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL.
function M.endpoint(service, region)
  if type(service) ~= "string" or service == "" then argerror("endpoint", "service must be a non-empty string") end
  region = region or M.region()
  if type(region) ~= "string" then argerror("endpoint", "no region given and none configured") end
  return endpoint_for(getenv, service:lower(), region)
end

---Calls operation on a JSON 1.1 (ecr, codepipeline, ssm) or Query (sts)
---service and returns the decoded result; raises error objects.
function M.call(opts)
  if type(opts) ~= "table" then argerror("call", "expected a table") end
  local svc = SERVICES[opts.service]
  if not svc or not svc.protocol then
    argerror("call", ("unsupported service '%s' (ecr, codepipeline, ssm, sts)"):format(tostring(opts.service)))
  end
  if type(opts.operation) ~= "string" or not opts.operation:match("^%u%w*$") then
    argerror("call", "operation must be an operation name such as 'DescribeImages'")
  end
  if opts.params ~= nil and type(opts.params) ~= "table" then argerror("call", "params must be a table") end
  if opts.region ~= nil and type(opts.region) ~= "string" then argerror("call", "region must be a string") end
  if opts.credentials ~= nil then check_credentials(opts.credentials, "call") end
  local n = opts.max_attempts
  if n ~= nil and (math.type(n) ~= "integer" or n < 1) then argerror("call", "max_attempts must be an integer >= 1") end
  if opts.endpoint ~= nil and type(opts.endpoint) ~= "string" then argerror("call", "endpoint must be a string") end
  return call{service = opts.service, operation = opts.operation, params = opts.params, region = opts.region,
              credentials = opts.credentials, max_attempts = n, endpoint = opts.endpoint, timeout = opts.timeout}
end

---The value of an SSM parameter (GetParameter, decrypted unless
---opts.decrypt == false); a SecureString's value is registered with log.secret.
function M.ssm_parameter(name, opts)
  if type(name) ~= "string" or name == "" then argerror("ssm_parameter", "name must be a non-empty string") end
  opts = opts or {}
  if type(opts) ~= "table" then argerror("ssm_parameter", "opts must be a table") end
  if opts.credentials ~= nil then check_credentials(opts.credentials, "ssm_parameter") end
  local o = {service = "ssm", operation = "GetParameter", region = opts.region, credentials = opts.credentials,
             params = {Name = name, WithDecryption = opts.decrypt ~= false}}
  local res, op = invoke(o)
  local ok, doc = pcall(json.decode, res.body)
  local p = ok and type(doc) == "table" and doc.Parameter
  if type(p) ~= "table" or type(p.Value) ~= "string" then
    error(errors.new{code = "bad_response", op = op, message = op .. ": the answer holds no Parameter.Value"}, 0)
  end
  if p.Type == "SecureString" then log.secret(p.Value) end
  return p.Value
end

local token_cache = {}

---An EKS bearer token (a presigned STS GetCallerIdentity URL, base64url) and
---when to stop using it (epoch seconds).
function M.eks_token(opts)
  if type(opts) ~= "table" then argerror("eks_token", "expected a table") end
  if type(opts.cluster) ~= "string" or opts.cluster == "" then
    argerror("eks_token", "cluster must be a non-empty string")
  end
  if opts.region ~= nil and type(opts.region) ~= "string" then argerror("eks_token", "region must be a string") end
  if opts.credentials ~= nil then check_credentials(opts.credentials, "eks_token") end
  if opts.time ~= nil and math.type(opts.time) ~= "integer" then
    argerror("eks_token", "time must be integer epoch seconds")
  end
  local region = opts.region or M.region()
  if not region then
    error(errors.new{code = "config", message = "aws.eks_token: no AWS region: set AWS_REGION or pass region"}, 0)
  end
  local creds = opts.credentials or default_chain:get()
  local key = table.concat({opts.cluster, region, creds.access_key_id, creds.session_token or ""}, "\0")
  local cached = token_cache[key]
  if not opts.time and cached and os.time() < cached.reuse_until then return cached.token, cached.expires_at end

  local signed_at = opts.time or now()
  local url = endpoint_for(getenv, "sts", region) .. "/?Action=GetCallerIdentity&Version=2011-06-15"
  local presigned = M.presign({method = "GET", url = url, headers = {["x-k8s-aws-id"] = opts.cluster}},
                              {service = "sts", region = region, credentials = creds, time = signed_at, expires = 60})
  local token = log.secret("k8s-aws-v1." .. M._base64url(presigned):gsub("=+$", ""))
  -- as the AWS CLI: valid 14 minutes from signing (STS accepts it for 15), in local time
  local expires_at = (opts.time or os.time()) + 14 * 60
  if not opts.time then
    local reuse_until = expires_at - 60
    if creds.expiration then reuse_until = math.min(reuse_until, creds.expiration - 60) end
    token_cache[key] = {token = token, expires_at = expires_at, reuse_until = reuse_until}
  end
  return token, expires_at
end

---The JSON text of a client.authentication.k8s.io ExecCredential holding an
---EKS token, as `aws eks get-token` prints it.
function M.exec_credential(opts)
  if type(opts) ~= "table" then argerror("exec_credential", "expected a table") end
  if type(opts.cluster) ~= "string" or opts.cluster == "" then
    argerror("exec_credential", "cluster must be a non-empty string")
  end
  local api = opts.api_version
  if api ~= nil and type(api) ~= "string" then argerror("exec_credential", "api_version must be a string") end
  local info = not api and getenv("KUBERNETES_EXEC_INFO")
  if info then
    local ok, doc = pcall(json.decode, info)
    if not ok or type(doc) ~= "table" then
      error(errors.new{code = "config", message = "aws.exec_credential: KUBERNETES_EXEC_INFO is not a JSON object"}, 0)
    end
    if type(doc.apiVersion) == "string" then api = doc.apiVersion end
  end
  api = api or "client.authentication.k8s.io/v1beta1"
  if not EXEC_API_VERSIONS[api] then
    error(errors.new{code = "config", message = ("aws.exec_credential: unsupported ExecCredential apiVersion '%s' "
      .. "(client.authentication.k8s.io/v1 or v1beta1)"):format(api)}, 0)
  end
  local token, expires_at = M.eks_token{cluster = opts.cluster, region = opts.region, credentials = opts.credentials}
  return json.encode{
    kind = "ExecCredential",
    apiVersion = api,
    spec = {},
    status = {expirationTimestamp = os.date("!%Y-%m-%dT%H:%M:%SZ", expires_at), token = token},
  }
end

return M
