-- aws_spec.lua: the aws module against the loopback AWS double over real HTTP:
-- endpoints, aws.call on JSON 1.1 (SSM, ECR) and Query (STS) with error
-- parsing, standard retries, the retry quota and clock-skew correction
-- (attempts counted in the double's call log, never timed), SSM parameters
-- kept secret, and EKS tokens the double's STS accepts. The credentials come
-- from the environment tests/doubles/start exports (the double's test key),
-- which `ferry` subprocesses inherit along with its endpoints and region.
local aws = require("aws")
local aws_support = require("aws_support")
local errors = require("errors")
local http = require("http")
local json = require("json")
local log = require("log")
local support = require("support")

local REGION = os.getenv("AWS_REGION") or "eu-west-1"
local ACCOUNT = "123456789012"

-- ---- helpers ----

local control, calls, fault = aws_support.control, aws_support.calls, aws_support.fault

local function seed_parameter(name, value, type_)
  control("POST", "ssm", {parameters = {{name = name, value = value, type = type_ or "String"}}})
end

local function ssm_get(name, extra)
  local opts = {service = "ssm", operation = "GetParameter", params = {Name = name}}
  for k, v in pairs(extra or {}) do opts[k] = v end
  return aws.call(opts)
end

-- base64url (unpadded) decoding, written here so the spec does not trust the module's codec
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url_decode(s)
  local bits, out = 0, {}
  local acc = 0
  for ch in s:gmatch(".") do
    local v = assert(B64:find(ch, 1, true), "not base64url: " .. ch) - 1
    acc = (acc << 6) | v
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char((acc >> bits) & 0xff)
    end
  end
  return table.concat(out)
end

local function query_params(url)
  local t = {}
  for k, v in (url:match("%?(.*)$") or ""):gmatch("([^&=]+)=([^&]*)") do t[k] = v end
  return t
end

describe("aws", function()
  local tmp

  before_each(function()
    tmp = support.make_tmpdir()
    control("POST", "reset", {})
    aws._retry.quota, aws._retry.scale = aws._retry.capacity, 0.01 -- backoff in hundredths of the SDKs'
    aws._clock.offset = 0
  end)

  after_each(function()
    aws._retry.quota, aws._retry.scale = aws._retry.capacity, 1
    aws._clock.offset = 0
    support.remove_tree(tmp)
  end)

  describe("endpoint", function()
    -- `ferry -e CODE` with only the given environment
    local function ferry_e(code, vars)
      local r = aws_support.ferry_e(tmp, tmp, code, vars)
      assert.are.equal(0, r.code, r.stderr)
      return r.stdout
    end

    it("is the real regional endpoint without overrides, .amazonaws.com.cn in China", function()
      local out = ferry_e([[
        local aws = require("aws")
        for _, s in ipairs({"ecr", "codepipeline", "ssm", "sts", "s3"}) do print(aws.endpoint(s, "eu-west-1")) end
        print(aws.endpoint("ecr", "cn-north-1"))
        print(aws.endpoint("sts"))]], {"AWS_REGION=us-gov-west-1"})
      assert.are.equal(table.concat({
        "https://api.ecr.eu-west-1.amazonaws.com",
        "https://codepipeline.eu-west-1.amazonaws.com",
        "https://ssm.eu-west-1.amazonaws.com",
        "https://sts.eu-west-1.amazonaws.com",
        "https://s3.eu-west-1.amazonaws.com",
        "https://api.ecr.cn-north-1.amazonaws.com.cn",
        "https://sts.us-gov-west-1.amazonaws.com",
      }, "\n") .. "\n", out)
    end)

    it("takes AWS_ENDPOINT_URL_<SERVICE> before AWS_ENDPOINT_URL", function()
      local out = ferry_e([[
        local aws = require("aws")
        print(aws.endpoint("ecr", "eu-west-1"), aws.endpoint("ssm", "eu-west-1"),
              aws.endpoint("codepipeline", "x-y-1"))]],
        {"AWS_ENDPOINT_URL=http://127.0.0.1:1/", "AWS_ENDPOINT_URL_ECR=http://127.0.0.1:2",
         "AWS_ENDPOINT_URL_CODEPIPELINE=http://localhost:3/"})
      assert.are.equal("http://127.0.0.1:2\thttp://127.0.0.1:1\thttp://localhost:3\n", out)
    end)
  end)

  describe("call", function()
    it("calls a JSON 1.1 service and returns the decoded answer", function()
      seed_parameter("/ferry/db-host", "mongo.staging.svc")
      local res = ssm_get("/ferry/db-host")
      assert.are.equal("mongo.staging.svc", res.Parameter.Value)
      assert.are.equal("String", res.Parameter.Type)
      assert.are.equal(1, res.Parameter.Version)
      assert.are.equal("number", type(res.Parameter.LastModifiedDate))
      local log_ = calls("ssm")
      assert.are.equal(1, #log_)
      assert.are.equal("GetParameter", log_[1].operation)
    end)

    it("sends {} for an operation without parameters", function()
      local res = aws.call{service = "ecr", operation = "DescribeRepositories"}
      assert.are.equal(0, #res.repositories)
    end)

    it("calls STS with the Query protocol and returns the inner result", function()
      local who = aws.call{service = "sts", operation = "GetCallerIdentity"}
      assert.are.equal(ACCOUNT, who.Account)
      assert.matches("^arn:aws:iam::" .. ACCOUNT .. ":", who.Arn)
      assert.is_string(who.UserId)
    end)

    it("flattens Query structures and lists (Tags.member.N.Key) as the model wants", function()
      local res = aws.call{service = "sts", operation = "AssumeRole", params = {
        RoleArn = "arn:aws:iam::" .. ACCOUNT .. ":role/tagged",
        RoleSessionName = "tags",
        DurationSeconds = 900,
        Tags = {{Key = "team", Value = "data"}, {Key = "env", Value = "staging"}},
        TransitiveTagKeys = {"team"},
      }}
      assert.matches("^ASIA", res.Credentials.AccessKeyId)
      assert.matches("assumed%-role/tagged/tags", res.AssumedRoleUser.Arn)
    end)

    it("signs with the real service and region whatever the endpoint", function()
      aws.call{service = "ecr", operation = "DescribeRepositories", region = "us-west-2"}
      aws.call{service = "sts", operation = "GetCallerIdentity"}
      local log_ = calls()
      assert.are.same({"ecr", "us-west-2", 200}, {log_[1].service, log_[1].region, log_[1].status})
      assert.are.same({"sts", REGION, 200}, {log_[2].service, log_[2].region, log_[2].status})
    end)

    it("raises an error object with code, message, status, request id and op", function()
      local err = support.raised(aws.call, {service = "ecr", operation = "DescribeImages",
                                            params = {repositoryName = "nope"}})
      assert.is_true(errors.is(err, "RepositoryNotFoundException"))
      assert.are.equal(400, err.status)
      assert.are.equal("ecr.DescribeImages", err.op)
      assert.is_false(err.retryable)
      assert.matches("^ecr%.DescribeImages: .*nope", err.message)
      assert.is_string(err.request_id)
      assert.are.equal(err.request_id, err.request_id:match("^[%x%-]+$"))
      assert.matches("%[RepositoryNotFoundException, HTTP 400%]$", tostring(err))
    end)

    it("does not retry an error that is not retryable", function()
      support.raised(aws.call, {service = "ecr", operation = "DescribeImages", params = {repositoryName = "nope"}})
      assert.are.equal(1, #calls("ecr"))
    end)

    it("sanitizes namespaced codes and reads Message as well as message", function()
      fault{service = "ssm", kind = "error", status = 400,
            code = "com.amazonaws.ssm#ParameterNotFound:http://internal.amazon.com/coral/", message = "gone"}
      local err = support.raised(ssm_get, "/x")
      assert.are.equal("ParameterNotFound", err.code)
      assert.are.equal("ssm.GetParameter: gone", err.message)
      -- the parser on its own: the header wins, Message counts, no code gives the status
      local e = aws._parse_error({status = 400, headers = {["x-amzn-errortype"] = "aws#Throttling:x"},
                                  body = '{"__type":"Other","Message":"Rate exceeded"}'}, "ecr.ListImages")
      assert.are.same({"Throttling", "ecr.ListImages: Rate exceeded", true},
                      {e.code, e.message, e.retryable})
      e = aws._parse_error({status = 503, headers = {}, body = "<html>busy</html>"}, "ssm.GetParameter")
      assert.are.same({"503", "ssm.GetParameter: HTTP 503", true}, {e.code, e.message, e.retryable})
    end)

    it("keeps the canonical request a SignatureDoesNotMatch quotes (session token and all) out of errors", function()
      local token = "IQoJb3JpZ2luX2VjEXAMPLE-UNREGISTERED-SESSION-TOKEN"
      local message = "The request signature we calculated does not match the signature you provided. "
                      .. "Check your AWS Secret Access Key and signing method.\n\nThe Canonical String for this "
                      .. "request should have been\n'POST\n/\n\nhost:ecr.us-east-1.amazonaws.com\n"
                      .. "x-amz-security-token:" .. token .. "\n'"
      local e = aws._parse_error({status = 403, headers = {}, body = json.encode{
                                   __type = "InvalidSignatureException", message = message}}, "ecr.ListImages")
      assert.are.equal("InvalidSignatureException", e.code)
      assert.is_nil(tostring(e):find(token, 1, true), tostring(e))
      assert.matches("does not match the signature you provided", e.message, 1, true)
      local xml = "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>" .. message
                  .. "</Message></Error></ErrorResponse>"
      e = aws._parse_error({status = 403, headers = {}, body = xml}, "sts.AssumeRole")
      assert.are.equal("SignatureDoesNotMatch", e.code)
      assert.is_nil(tostring(e):find(token, 1, true), tostring(e))
    end)

    it("reads Query protocol errors", function()
      control("POST", "sts", {deny_roles = {"arn:aws:iam::" .. ACCOUNT .. ":role/forbidden"}})
      local err = support.raised(aws.call, {service = "sts", operation = "AssumeRole", params = {
        RoleArn = "arn:aws:iam::" .. ACCOUNT .. ":role/forbidden", RoleSessionName = "denied"}})
      assert.are.equal("AccessDenied", err.code)
      assert.are.equal(403, err.status)
      assert.are.equal("sts.AssumeRole", err.op)
      assert.is_string(err.request_id)
    end)

    it("retries throttling until the call succeeds", function()
      seed_parameter("/p", "v")
      fault{service = "ssm", operation = "GetParameter", kind = "throttle", count = 2}
      assert.are.equal("v", ssm_get("/p").Parameter.Value)
      local log_ = calls("ssm")
      assert.are.same({"ThrottlingException", "ThrottlingException", json.null},
                      {log_[1].error, log_[2].error, log_[3].error})
    end)

    it("gives up after max_attempts with the last error, marked retryable", function()
      fault{service = "ssm", kind = "throttle", count = -1}
      local err = support.raised(ssm_get, "/p", {max_attempts = 2})
      assert.are.equal("ThrottlingException", err.code)
      assert.is_true(err.retryable)
      assert.are.equal(2, err.attempts)
      assert.are.equal(2, #calls("ssm"))
      fault{service = "sts", kind = "throttle", count = -1}
      err = support.raised(aws.call, {service = "sts", operation = "GetCallerIdentity"})
      assert.are.equal("Throttling", err.code)
      assert.are.equal(3, #calls("sts")) -- the default: 3 attempts
    end)

    it("takes the default max_attempts from AWS_MAX_ATTEMPTS", function()
      fault{service = "sts", kind = "throttle", count = -1}
      local r = support.run_ferry(tmp, {"-e", [[
        local ok, err = pcall(require("aws").call, {service = "sts", operation = "GetCallerIdentity"})
        print(ok, err.code, err.attempts)]]}, {"AWS_MAX_ATTEMPTS=4"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("false\tThrottling\t4\n", r.stdout)
      assert.are.equal(4, #calls("sts"))
    end)

    it("retries HTTP 500 and dropped connections", function()
      seed_parameter("/p", "v")
      fault{service = "ssm", kind = "error500", count = 1}
      fault{service = "ssm", kind = "drop", count = 1}
      assert.are.equal("v", ssm_get("/p", {max_attempts = 3}).Parameter.Value)
      assert.are.equal(3, #calls("ssm"))
    end)

    it("retries connection errors and then raises them with the op", function()
      local err = support.raised(ssm_get, "/p", {endpoint = "http://127.0.0.1:9", max_attempts = 2})
      assert.are.equal("connect", err.code)
      assert.are.equal("ssm.GetParameter", err.op)
      assert.are.equal(2, err.attempts)
    end)

    it("stops retrying when the retry quota is spent, and refunds it on success", function()
      fault{service = "ssm", kind = "throttle", count = -1}
      aws._retry.quota = 7 -- one retry (5) fits, a second does not
      local err = support.raised(ssm_get, "/p", {max_attempts = 5})
      assert.are.equal(2, #calls("ssm"))
      assert.matches("retry quota", err.message)
      assert.are.equal(2, aws._retry.quota)

      control("POST", "reset", {})
      seed_parameter("/p", "v")
      aws._retry.quota = 400
      fault{service = "ssm", kind = "throttle", count = 1}
      ssm_get("/p")                       -- one retry: pays 5, the success refunds it
      assert.are.equal(400, aws._retry.quota)
      ssm_get("/p")                       -- no retry: refunds 1
      assert.are.equal(401, aws._retry.quota)
    end)

    it("corrects clock skew once from the Date header and keeps the offset", function()
      seed_parameter("/p", "v")
      control("POST", "clock", {offset = 3600})
      local level = log.level()
      log.level("error")
      local ok, res = pcall(ssm_get, "/p")
      log.level(level)
      assert(ok, tostring(res))
      assert.are.equal("v", res.Parameter.Value)
      local log_ = calls("ssm")
      assert.are.equal(2, #log_)
      assert.are.equal("InvalidSignatureException", log_[1].error)
      assert.are.equal(200, log_[2].status)
      assert.is_true(math.abs(aws._clock.offset - 3600) <= 5, tostring(aws._clock.offset))
      ssm_get("/p") -- later calls sign with the corrected clock at once
      assert.are.equal(3, #calls("ssm"))
    end)
  end)

  describe("ssm_parameter", function()
    it("returns a decrypted SecureString and registers it as a secret", function()
      local secret = "mongodb://admin:s3cr3t-Pa55@mongo:27017"
      seed_parameter("/ferry/mongo-uri", secret, "SecureString")
      local value = aws.ssm_parameter("/ferry/mongo-uri", {decrypt = true})
      assert.are.equal(secret, value)
      assert.is_falsy(support.contains(log.redact("uri=" .. value), secret))
      local err = errors.new{code = "x", message = "failed with " .. value}
      assert.is_falsy(support.contains(log.redact(tostring(err)), secret))
    end)

    it("decrypts by default, and gives the ciphertext with decrypt = false", function()
      seed_parameter("/k", "plain-secret-value", "SecureString")
      assert.are.equal("plain-secret-value", aws.ssm_parameter("/k"))
      assert.are_not.equal("plain-secret-value", aws.ssm_parameter("/k", {decrypt = false}))
    end)

    it("leaves a String parameter unmasked", function()
      seed_parameter("/region-name", "eu-west-1-staging")
      local v = aws.ssm_parameter("/region-name")
      assert.are.equal(v, log.redact(v))
    end)

    it("raises ParameterNotFound for a missing parameter", function()
      local err = support.raised(aws.ssm_parameter, "/missing")
      assert.are.equal("ParameterNotFound", err.code)
      assert.are.equal("ssm.GetParameter", err.op)
    end)

    it("never prints a SecureString in a script's log output", function()
      local secret = "tok-" .. tostring(os.time()) .. "-zzq"
      seed_parameter("/printed", secret, "SecureString")
      local r = support.run_ferry(tmp, {"-e", [[
        local aws, log = require("aws"), require("log")
        local v = aws.ssm_parameter("/printed")
        log.info("the value is %s", v)
        error("failed with " .. v)]]})
      assert.are_not.equal(0, r.code)
      assert.is_falsy(support.contains(r.stderr, secret), r.stderr)
      assert.matches("the value is", r.stderr)
      assert.matches("failed with", r.stderr)
    end)
  end)

  describe("eks_token", function()
    it("presigns STS GetCallerIdentity for the cluster, 60 s, as unpadded base64url", function()
      local t = 1767225600 -- 2026-01-01T00:00:00Z
      local token, expires_at = aws.eks_token{cluster = "staging", time = t}
      assert.matches("^k8s%-aws%-v1%.[%w%-_]+$", token)
      assert.are.equal(t + 14 * 60, expires_at)
      local url = b64url_decode(token:sub(#"k8s-aws-v1." + 1))
      local base = os.getenv("AWS_ENDPOINT_URL_STS") or os.getenv("AWS_ENDPOINT_URL")
      assert.are.equal(base .. "/?", url:sub(1, #base + 2))
      local q = query_params(url)
      assert.are.equal("GetCallerIdentity", q.Action)
      assert.are.equal("2011-06-15", q.Version)
      assert.are.equal("AWS4-HMAC-SHA256", q["X-Amz-Algorithm"])
      assert.are.equal("60", q["X-Amz-Expires"])
      assert.are.equal("20260101T000000Z", q["X-Amz-Date"])
      assert.are.equal("host%3Bx-k8s-aws-id", q["X-Amz-SignedHeaders"])
      assert.are.equal(os.getenv("AWS_ACCESS_KEY_ID") .. "%2F20260101%2F" .. REGION .. "%2Fsts%2Faws4_request",
                       q["X-Amz-Credential"])
      assert.matches("^%x+$", q["X-Amz-Signature"])
      assert.are.equal(64, #q["X-Amz-Signature"])
    end)

    it("is accepted by the double's STS for that cluster only", function()
      local token = aws.eks_token{cluster = "staging"}
      local url = b64url_decode(token:sub(12))
      local res = http.get(url, {headers = {["x-k8s-aws-id"] = "staging", Accept = "application/json"}})
      assert.are.equal(200, res.status, res.body)
      local who = json.decode(res.body).GetCallerIdentityResponse.GetCallerIdentityResult
      assert.are.equal(ACCOUNT, who.Account)
      res = http.get(url, {headers = {["x-k8s-aws-id"] = "production", Accept = "application/json"}})
      assert.are.equal(403, res.status)
      local verdict = control("POST", "eks/verify", {token = token, cluster = "staging"})
      assert.are.equal(ACCOUNT, verdict.account)
    end)

    it("carries the session token of temporary credentials", function()
      local issued = control("POST", "credentials", {issue = true}).issued
      local creds = {access_key_id = issued.access_key_id, secret_access_key = issued.secret_access_key,
                     session_token = issued.session_token}
      local token = aws.eks_token{cluster = "staging", credentials = creds}
      local q = query_params(b64url_decode(token:sub(12)))
      assert.is_string(q["X-Amz-Security-Token"])
      assert.are.equal(issued.access_key_id, q["X-Amz-Credential"]:match("^(.-)%%2F"))
      local verdict = control("POST", "eks/verify", {token = token, cluster = "staging"})
      assert.are.equal(ACCOUNT, verdict.account)
    end)

    it("registers the token as a secret and reuses it while it is fresh", function()
      local a = aws.eks_token{cluster = "reuse"}
      assert.is_falsy(support.contains(log.redact("Bearer " .. a), a))
      local b = aws.eks_token{cluster = "reuse"}
      assert.are.equal(a, b)
      assert.are_not.equal(a, aws.eks_token{cluster = "other"})
    end)
  end)

  describe("exec_credential", function()
    it("is a v1beta1 ExecCredential with an RFC 3339 expiry 14 minutes out", function()
      local before = os.time()
      local doc = json.decode(aws.exec_credential{cluster = "staging"})
      assert.are.equal("ExecCredential", doc.kind)
      assert.are.equal("client.authentication.k8s.io/v1beta1", doc.apiVersion)
      assert.are.same({}, doc.spec)
      assert.matches("^k8s%-aws%-v1%.", doc.status.token)
      local y, mo, d, hh, mi, ss = doc.status.expirationTimestamp:match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)Z$")
      assert.is_string(y, doc.status.expirationTimestamp)
      local at = os.time{year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(hh),
                         min = tonumber(mi), sec = tonumber(ss)}
      local local_offset = os.time(os.date("!*t", before)) - before -- os.time reads the table as local time
      at = at - local_offset
      assert.is_true(at >= before + 14 * 60 - 2 and at <= os.time() + 14 * 60 + 2)
      local verdict = control("POST", "eks/verify", {token = doc.status.token, cluster = "staging"})
      assert.are.equal(ACCOUNT, verdict.account)
    end)

    it("uses the apiVersion asked for, by argument or by KUBERNETES_EXEC_INFO", function()
      local doc = json.decode(aws.exec_credential{cluster = "c", api_version = "client.authentication.k8s.io/v1"})
      assert.are.equal("client.authentication.k8s.io/v1", doc.apiVersion)
      local vars = {"KUBERNETES_EXEC_INFO={\"kind\":\"ExecCredential\",\"apiVersion\":"
                    .. "\"client.authentication.k8s.io/v1\",\"spec\":{\"interactive\":false}}"}
      local r = support.run_ferry(tmp, {"-e", 'print(require("aws").exec_credential{cluster = "c"})'}, vars)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("client.authentication.k8s.io/v1", json.decode(r.stdout).apiVersion)
    end)

    it("is what `ferry eks-token --cluster NAME` prints", function()
      local r = support.run_ferry(tmp, {"eks-token", "--cluster", "staging"})
      assert.are.equal(0, r.code, r.stderr)
      local doc = json.decode(r.stdout)
      assert.are.equal("ExecCredential", doc.kind)
      local verdict = control("POST", "eks/verify", {token = doc.status.token, cluster = "staging"})
      assert.are.equal(ACCOUNT, verdict.account)
    end)

    it("refuses an apiVersion it does not speak", function()
      local err = support.raised(aws.exec_credential, {cluster = "c", api_version = "client.authentication.k8s.io/v2"})
      assert.is_true(errors.is(err, "config"))
    end)
  end)

  describe("argument checks", function()
    it("raise at once for a bad call", function()
      assert.has_error(function() aws.call{service = "lambda", operation = "Invoke"} end)
      assert.has_error(function() aws.call{service = "ecr", operation = "describe images"} end)
      assert.has_error(function() aws.call{service = "ecr", operation = "ListImages", max_attempts = 0} end)
      assert.has_error(function() aws.eks_token{} end)
      assert.has_error(function() aws.ssm_parameter("") end)
    end)
  end)
end)
