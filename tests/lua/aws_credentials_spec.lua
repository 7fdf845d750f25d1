-- aws_credentials_spec.lua: the AWS credential chain against the loopback AWS
-- double (STS, container credentials, IMDSv2) over real HTTP. Each case runs a
-- chain over its own environment table and temporary HOME (aws._chain), so the
-- order of sources, profiles, role chaining, refresh and the "nothing found"
-- report are tested without touching the process environment; the last block
-- runs `ferry -e` with a controlled environment to prove the public API reads
-- the real one.
local aws = require("aws")
local aws_support = require("aws_support")
local errors = require("errors")
local ini = require("aws.ini")
local json = require("json")
local log = require("log")
local support = require("support")

local AWS = aws_support.url
local IMDS = os.getenv("FERRY_TEST_IMDS") or AWS
local PLAIN_HTTP = os.getenv("FERRY_TEST_HTTP")
local STS_URL = os.getenv("AWS_ENDPOINT_URL_STS") or os.getenv("AWS_ENDPOINT_URL") or AWS
-- the double's permanent test key, which tests/doubles/start exports
local TEST_KEY = assert(os.getenv("AWS_ACCESS_KEY_ID"), "AWS_ACCESS_KEY_ID is not set: run `bash tests/run`")
local TEST_SECRET = assert(os.getenv("AWS_SECRET_ACCESS_KEY"))
local ROLE = "arn:aws:iam::123456789012:role/"

-- ---- helpers ----

local control, calls, fault = aws_support.control, aws_support.calls, aws_support.fault

local function operations(list)
  local out = {}
  for _, c in ipairs(list) do out[#out + 1] = c.operation end
  return out
end

-- a port nobody listens on: bind-and-close is racy, the discard port is not served here
local CLOSED_PORT_URL = "http://127.0.0.1:9"

describe("aws credentials", function()
  local tmp, home

  -- The environment of one chain: a private HOME, the STS double, IMDS off
  -- unless a case turns it on. `extra` adds variables; false removes one.
  local function env(extra)
    local e = {HOME = home, AWS_REGION = "eu-west-1", AWS_ENDPOINT_URL_STS = STS_URL,
               AWS_EC2_METADATA_DISABLED = "true"}
    for k, v in pairs(extra or {}) do
      if v == false then e[k] = nil else e[k] = v end
    end
    return e
  end

  local function chain(extra, clock)
    return aws._chain(env(extra), clock)
  end

  local function write_aws(name, text)
    os.execute("mkdir -p " .. support.q(home .. "/.aws"))
    support.write(home .. "/.aws/" .. name, text)
  end

  -- [base] in the credentials file: the double's permanent test key
  local function write_base_profile()
    write_aws("credentials", ("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"):format(TEST_KEY,
                                                                                                     TEST_SECRET))
  end

  before_each(function()
    tmp = support.make_tmpdir()
    home = tmp .. "/home"
    assert(os.execute("mkdir -p " .. support.q(home)))
    control("POST", "reset", {})
  end)

  after_each(function()
    support.remove_tree(tmp)
  end)

  describe("the ini parser", function()
    it("reads sections and keys through comments, blank lines and odd whitespace", function()
      local s = ini.parse(table.concat({
        "# a comment",
        "; another",
        "",
        "[default]",
        "  aws_access_key_id   =   AKIDX  ",
        "AWS_Secret_Access_Key=abc/def+ghi   # inline comment",
        "[ profile   dev ]",
        "region = eu-west-1 ; trailing",
        "[default]",
        "region=us-east-1",
      }, "\n"), "config")
      assert.are.same({aws_access_key_id = "AKIDX", aws_secret_access_key = "abc/def+ghi", region = "us-east-1"},
                      s.default)
      assert.are.same({region = "eu-west-1"}, s["profile dev"])
    end)

    it("keeps nested blocks such as `s3 =` apart from the profile's own keys", function()
      local s = ini.parse("[default]\ns3 =\n  max_concurrent_requests = 20\n  addressing_style = path\n"
                          .. "region = eu-west-1\n", "config")
      assert.are.equal("eu-west-1", s.default.region)
      assert.are.same({max_concurrent_requests = "20", addressing_style = "path"}, s.default.s3)
      assert.is_nil(s.default.max_concurrent_requests)
    end)

    it("names the file and line of a malformed line", function()
      local ok, err = pcall(ini.parse, "[default]\nregion = eu-west-1\nthis is not a setting\n", "/x/config")
      assert.is_false(ok)
      assert.matches("^/x/config:3: ", err)
    end)

    it("refuses a property before any section, and an unclosed header", function()
      local ok, err = pcall(ini.parse, "region = x\n", "f")
      assert.is_false(ok)
      assert.matches("^f:1: .*outside a section", err)
      ok, err = pcall(ini.parse, "[default\n", "g")
      assert.is_false(ok)
      assert.matches("^g:1: ", err)
    end)
  end)

  describe("the chain", function()
    it("takes the environment's keys before every other source", function()
      write_aws("credentials", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n")
      local c = chain{AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "envsecret",
                      AWS_SESSION_TOKEN = "envtoken", AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/creds/x",
                      FERRY_CONTAINER_CREDENTIALS_HOST = AWS}:get()
      assert.are.equal("AKIDENV", c.access_key_id)
      assert.are.equal("envsecret", c.secret_access_key)
      assert.are.equal("envtoken", c.session_token)
      assert.are.equal("environment", c.source)
      assert.are.equal(0, #calls("container"))
    end)

    it("skips the environment when a profile is named, as --profile does", function()
      write_aws("credentials", "[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = cisecret\n")
      local c = chain{AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "envsecret"}:get("ci")
      assert.are.equal("AKIDCI", c.access_key_id)
      assert.are.equal("profile:ci", c.source)
    end)

    it("passes over a half-set environment pair to the next source", function()
      write_aws("credentials", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n")
      local c = chain{AWS_ACCESS_KEY_ID = "AKIDENV"}:get()
      assert.are.equal("AKIDFILE", c.access_key_id)
    end)

    it("uses web identity before the shared files, calling STS unsigned", function()
      write_aws("credentials", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n")
      support.write(tmp .. "/token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjaSJ9.c2ln\n")
      local c = chain{AWS_WEB_IDENTITY_TOKEN_FILE = tmp .. "/token", AWS_ROLE_ARN = ROLE .. "ci",
                      AWS_ROLE_SESSION_NAME = "build-7"}:get()
      assert.are.equal("web_identity", c.source)
      assert.matches("^ASIA", c.access_key_id)
      assert.is_string(c.session_token)
      assert.is_true(c.expiration > os.time())
      local log_ = calls("sts")
      assert.are.same({"AssumeRoleWithWebIdentity"}, operations(log_))
      local signer = log_[1].access_key_id
      assert.is_true(signer == nil or signer == "" or signer == json.null, tostring(signer))
      -- the credentials sign: STS says who they are
      local who = aws.call{service = "sts", operation = "GetCallerIdentity", credentials = c}
      assert.matches("assumed%-role/ci/build%-7", who.Arn)
    end)

    it("reads [default] keys from the credentials file and the region from the config file", function()
      write_aws("credentials", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n"
                .. "aws_session_token = filetoken\n")
      write_aws("config", "[default]\nregion = ap-southeast-2\n")
      local ch = chain{AWS_REGION = false}
      local c = ch:get()
      assert.are.same({"AKIDFILE", "filesecret", "filetoken", "profile:default"},
                      {c.access_key_id, c.secret_access_key, c.session_token, c.source})
      assert.are.equal("ap-southeast-2", ch:region())
    end)

    it("reads AWS_PROFILE's [profile x] in config and [x] in credentials, the credentials file winning", function()
      write_aws("config", "[profile dev]\naws_access_key_id = AKIDCONF\naws_secret_access_key = confsecret\n"
                .. "region = eu-north-1\n[dev]\naws_access_key_id = AKIDWRONG\n")
      write_aws("credentials", "[dev]\naws_access_key_id = AKIDCRED\n[profile dev]\naws_access_key_id = AKIDWRONG\n")
      local ch = chain{AWS_PROFILE = "dev", AWS_REGION = false}
      local c = ch:get()
      assert.are.equal("AKIDCRED", c.access_key_id)
      assert.are.equal("confsecret", c.secret_access_key)
      assert.are.equal("profile:dev", c.source)
      assert.are.equal("eu-north-1", ch:region())
      assert.are.equal("eu-west-1", chain{AWS_PROFILE = "dev"}:region())
    end)

    it("reads the files named by AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE", function()
      support.write(tmp .. "/creds.ini",
                    "[default]\naws_access_key_id = AKIDELSEWHERE\naws_secret_access_key = s3cr3t\n")
      support.write(tmp .. "/conf.ini", "[default]\nregion = sa-east-1\n")
      write_aws("credentials", "[default]\naws_access_key_id = AKIDHOME\naws_secret_access_key = homesecret\n")
      local ch = chain{AWS_SHARED_CREDENTIALS_FILE = tmp .. "/creds.ini", AWS_CONFIG_FILE = tmp .. "/conf.ini",
                       AWS_REGION = false}
      assert.are.equal("AKIDELSEWHERE", ch:get().access_key_id)
      assert.are.equal("sa-east-1", ch:region())
    end)

    it("chains roles through source_profile with STS AssumeRole", function()
      write_base_profile()
      write_aws("config", table.concat({
        "[profile middle]",
        "role_arn = " .. ROLE .. "middle",
        "source_profile = base",
        "[profile deploy]",
        "role_arn = " .. ROLE .. "deploy",
        "source_profile = middle",
        "role_session_name = ferry-deploy",
        "external_id = ext-42",
        "duration_seconds = 1800",
      }, "\n"))
      local before = os.time()
      local c = chain():get("deploy")
      assert.are.equal("assume_role:deploy", c.source)
      assert.is_string(c.session_token)
      assert.is_true(c.expiration >= before + 1800 - 5 and c.expiration <= os.time() + 1800 + 5)
      local log_ = calls("sts")
      assert.are.same({"AssumeRole", "AssumeRole"}, operations(log_))
      assert.are.equal(TEST_KEY, log_[1].access_key_id)      -- middle, signed by base
      assert.matches("^ASIA", log_[2].access_key_id)          -- deploy, signed by middle's session
      local who = aws.call{service = "sts", operation = "GetCallerIdentity", credentials = c}
      assert.matches("assumed%-role/deploy/ferry%-deploy", who.Arn)
    end)

    it("assumes a role from credential_source = Environment", function()
      write_aws("config", "[profile ops]\nrole_arn = " .. ROLE .. "ops\ncredential_source = Environment\n")
      local c = chain{AWS_PROFILE = "ops", AWS_ACCESS_KEY_ID = TEST_KEY, AWS_SECRET_ACCESS_KEY = TEST_SECRET}:get("ops")
      assert.are.equal("assume_role:ops", c.source)
      assert.are.equal(TEST_KEY, calls("sts")[1].access_key_id)
    end)

    it("assumes a role from credential_source = EcsContainer", function()
      write_aws("config", "[profile ops]\nrole_arn = " .. ROLE .. "ops\ncredential_source = EcsContainer\n")
      local c = chain{AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/creds/task", FERRY_CONTAINER_CREDENTIALS_HOST = AWS}
        :get("ops")
      assert.are.equal("assume_role:ops", c.source)
      assert.are.equal(1, #calls("container"))
      assert.matches("^ASIA", calls("sts")[1].access_key_id)
    end)

    it("refuses a source_profile cycle, naming it", function()
      write_aws("config", "[profile a]\nrole_arn = " .. ROLE .. "a\nsource_profile = b\n"
                .. "[profile b]\nrole_arn = " .. ROLE .. "b\nsource_profile = a\n")
      local err = support.raised(chain().get, chain(), "a")
      assert.is_true(errors.is(err, "config"))
      assert.matches("cycle: a %-> b %-> a", err.message)
      assert.are.equal(0, #calls("sts"))
    end)

    it("raises when the named profile does not exist instead of falling through", function()
      write_aws("credentials", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n")
      local err = support.raised(function() return chain{AWS_PROFILE = "prod"}:get() end)
      assert.is_true(errors.is(err, "config"))
      assert.matches("profile 'prod' not found", err.message)
    end)

    it("raises naming the file and line of a malformed shared file", function()
      write_aws("credentials", "[default]\naws_access_key_id = AKIDFILE\noops\n")
      local err = support.raised(function() return chain():get() end)
      assert.is_true(errors.is(err, "config"))
      assert.is_truthy(support.contains(err.message, home .. "/.aws/credentials:3:"), err.message)
    end)

    it("fetches container credentials from the relative URI (host overridable)", function()
      local c = chain{AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/creds/build-1", FERRY_CONTAINER_CREDENTIALS_HOST = AWS}
        :get()
      assert.are.equal("container", c.source)
      assert.matches("^ASIA", c.access_key_id)
      assert.is_true(c.expiration > os.time() + 3000)
      assert.are.equal(1, #calls("container"))
      local who = aws.call{service = "sts", operation = "GetCallerIdentity", credentials = c}
      assert.are.equal("123456789012", who.Account)
    end)

    it("fetches container credentials from a full URI with the token read from a file", function()
      support.write(tmp .. "/pod-token", "ferry-container-token\n")
      local c = chain{AWS_CONTAINER_CREDENTIALS_FULL_URI = AWS .. "/v1/credentials",
                      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = tmp .. "/pod-token"}:get()
      assert.are.equal("container", c.source)
      assert.is_falsy(support.contains(log.redact("sent ferry-container-token"), "ferry-container-token"))
      -- a wrong token is refused by the endpoint, and the chain says so
      support.write(tmp .. "/pod-token", "wrong-token")
      local err = support.raised(function()
        return chain{AWS_CONTAINER_CREDENTIALS_FULL_URI = AWS .. "/v1/credentials",
                     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = tmp .. "/pod-token"}:get()
      end)
      assert.is_true(errors.is(err, "credentials"))
      assert.matches("HTTP 401", err.message)
    end)

    it("refuses a full URI that is neither https nor a loopback or container host", function()
      local err = support.raised(function()
        return chain{AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://example.com/creds"}:get()
      end)
      assert.is_true(errors.is(err, "config"))
      assert.matches("FULL_URI", err.message)
    end)

    it("refuses a container token that spans lines", function()
      local err = support.raised(function()
        return chain{AWS_CONTAINER_CREDENTIALS_FULL_URI = AWS .. "/v1/credentials",
                     AWS_CONTAINER_AUTHORIZATION_TOKEN = "abc\r\nX-Injected: 1"}:get()
      end)
      assert.is_true(errors.is(err, "config"))
    end)

    it("falls back to IMDSv2: a token PUT, then the role, then its credentials", function()
      local c = chain{AWS_EC2_METADATA_DISABLED = false, AWS_EC2_METADATA_SERVICE_ENDPOINT = IMDS}:get()
      assert.are.equal("imds", c.source)
      assert.matches("^ASIA", c.access_key_id)
      local log_ = calls("imds")
      assert.are.equal(3, #log_)
      assert.are.equal("PUT", log_[1].method)
      assert.are.equal("/latest/api/token", log_[1].path)
      assert.are.equal("/latest/meta-data/iam/security-credentials/", log_[2].path)
      assert.matches("^/latest/meta%-data/iam/security%-credentials/.+", log_[3].path)
      for _, entry in ipairs(log_) do assert.are.equal(200, entry.status) end
    end)

    it("gives up on IMDS that does not answer in time, saying so", function()
      assert.is_string(PLAIN_HTTP, "FERRY_TEST_HTTP is not set")
      -- the plain double's /delay answers after 3 s; the chain waits 1 s per try
      local err = support.raised(function()
        return chain{AWS_EC2_METADATA_DISABLED = false,
                     AWS_EC2_METADATA_SERVICE_ENDPOINT = PLAIN_HTTP .. "/delay?ms=3000&path="}:get()
      end)
      assert.is_true(errors.is(err, "no_credentials"))
      assert.matches("instance metadata %(IMDSv2%): [^\n]*timed out", err.message)
    end)

    it("lists every source it tried, and why each did not apply, when nothing is found", function()
      local err = support.raised(function()
        return chain{AWS_EC2_METADATA_DISABLED = false, AWS_EC2_METADATA_SERVICE_ENDPOINT = CLOSED_PORT_URL}:get()
      end)
      assert.is_true(errors.is(err, "no_credentials"))
      local m = err.message
      assert.matches("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set", m)
      assert.matches("web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set", m)
      assert.is_truthy(support.contains(m, "shared files (" .. home .. "/.aws/credentials, " .. home
                                        .. "/.aws/config): neither file exists"), m)
      assert.matches("container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI "
                     .. "are not set", m)
      assert.matches("instance metadata %(IMDSv2%): no instance metadata service at http://127%.0%.0%.1:9", m)
      -- and with IMDS switched off
      err = support.raised(function() return chain():get() end)
      assert.matches("AWS_EC2_METADATA_DISABLED is true", err.message)
    end)

    it("registers the secret key, session token and web identity token with log.secret", function()
      local token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzZWNyZXQtdGVzdCJ9.c2lnbmF0dXJl"
      support.write(tmp .. "/token", token)
      local c = chain{AWS_WEB_IDENTITY_TOKEN_FILE = tmp .. "/token", AWS_ROLE_ARN = ROLE .. "ci"}:get()
      for _, secret in ipairs({c.secret_access_key, c.session_token, token}) do
        assert.is_falsy(support.contains(log.redact("value: " .. secret), secret))
      end
      assert.is_truthy(support.contains(log.redact(c.access_key_id), c.access_key_id)) -- the key id is not secret
    end)
  end)

  describe("the cache", function()
    local function container_chain(clock)
      return chain({AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/creds/build-1",
                    FERRY_CONTAINER_CREDENTIALS_HOST = AWS}, clock)
    end

    it("reuses temporary credentials while they have more than 5 minutes left", function()
      local ch = container_chain()
      local a, b = ch:get(), ch:get()
      assert.are.equal(a.access_key_id, b.access_key_id)
      assert.are.equal(1, #calls("container"))
    end)

    it("refetches credentials that expire within 5 minutes", function()
      control("POST", "credentials", {provider = {duration_seconds = 200}})
      local ch = container_chain()
      local a = ch:get()
      local b = ch:get()
      assert.are_not.equal(a.access_key_id, b.access_key_id)
      assert.are.equal(2, #calls("container"))
    end)

    it("refreshes assumed-role credentials as their hour runs out", function()
      write_base_profile()
      write_aws("config", "[profile deploy]\nrole_arn = " .. ROLE .. "deploy\nsource_profile = base\n")
      local skew = 0
      local ch = chain(nil, function() return os.time() + skew end)
      local a = ch:get("deploy")
      assert.is_true(a.expiration > os.time() + 3000)
      skew = a.expiration - os.time() - 310 -- 5 min 10 s before Expiration: still good
      local b = ch:get("deploy")
      skew = a.expiration - os.time() - 290 -- 4 min 50 s before: refreshed
      local c = ch:get("deploy")
      assert.are.equal(a.access_key_id, b.access_key_id)
      assert.are_not.equal(b.access_key_id, c.access_key_id)
      assert.are.same({"AssumeRole", "AssumeRole"}, operations(calls("sts")))
    end)

    it("fetches once for many tasks asking at the same time", function()
      local ch = container_chain()
      local keys = require("task").map({1, 2, 3, 4, 5, 6}, function() return ch:get().access_key_id end,
                                       {limit = 6})
      for i = 2, #keys do assert.are.equal(keys[1], keys[i]) end
      assert.are.equal(1, #calls("container"))
    end)

    it("fetches new credentials when a service says they expired", function()
      local vars = {"AWS_REGION=eu-west-1", "AWS_EC2_METADATA_DISABLED=true",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/creds/long-build",
                    "FERRY_CONTAINER_CREDENTIALS_HOST=" .. AWS,
                    "AWS_ENDPOINT_URL=" .. (os.getenv("AWS_ENDPOINT_URL") or AWS),
                    "AWS_ENDPOINT_URL_STS=" .. STS_URL}
      fault{service = "sts", kind = "expire_credentials", count = 1, skip = 1}
      local r = aws_support.ferry_e(tmp, home, [[
        local aws = require("aws")
        local a = aws.call{service = "sts", operation = "GetCallerIdentity"}
        local b = aws.call{service = "sts", operation = "GetCallerIdentity"}
        print(a.Account, b.Account)]], vars)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("123456789012\t123456789012\n", r.stdout)
      assert.are.equal(2, #calls("container"))
      local sts = calls("sts")
      assert.are.equal(3, #sts)
      assert.are.equal(sts[1].access_key_id, sts[2].access_key_id) -- the one that expired
      assert.are_not.equal(sts[2].access_key_id, sts[3].access_key_id)
    end)

    it("keeps the current credentials when a refresh fails before they expire", function()
      control("POST", "credentials", {provider = {duration_seconds = 200}})
      local ch = container_chain()
      local a = ch:get()
      fault{service = "container", kind = "throttle", count = -1}
      local level = log.level()
      log.level("error") -- the warning about the failed refresh is expected
      local ok, b = pcall(ch.get, ch)
      log.level(level)
      assert(ok, b)
      assert.are.equal(a.access_key_id, b.access_key_id)
      assert.is_true(#calls("container") > 1)
    end)
  end)

  describe("the public API", function()
    local NO_IMDS = {"AWS_EC2_METADATA_DISABLED=true"}
    local PROCESS_KEYS = {"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=AKIDPROC",
                          "AWS_SECRET_ACCESS_KEY=procsecret"}

    -- `ferry -e CODE` with only the given environment (plus PATH and HOME)
    local function ferry_e(code, vars)
      return aws_support.ferry_e(tmp, home, code, vars)
    end

    it("aws.credentials() reads the process environment", function()
      local r = ferry_e('local c = require("aws").credentials() print(c.access_key_id, c.source)', PROCESS_KEYS)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("AKIDPROC\tenvironment\n", r.stdout)
    end)

    it("aws.credentials{profile = ...} reads that profile of the shared files", function()
      write_aws("credentials", "[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = cisecret\n")
      local r = ferry_e('local c = require("aws").credentials{profile = "ci"} print(c.access_key_id, c.source)',
                        PROCESS_KEYS)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("AKIDCI\tprofile:ci\n", r.stdout)
    end)

    it("aws.region() takes AWS_REGION, then AWS_DEFAULT_REGION, then the profile's region", function()
      write_aws("config", "[default]\nregion = eu-south-1\n")
      local code = 'print(require("aws").region())'
      assert.are.equal("us-east-2\n", ferry_e(code, {"AWS_REGION=us-east-2", "AWS_DEFAULT_REGION=us-west-1"}).stdout)
      assert.are.equal("us-west-1\n", ferry_e(code, {"AWS_DEFAULT_REGION=us-west-1"}).stdout)
      assert.are.equal("eu-south-1\n", ferry_e(code).stdout)
    end)

    it("fails with the list of sources when the process has no credentials", function()
      local r = ferry_e('require("aws").credentials()', NO_IMDS)
      assert.are_not.equal(0, r.code)
      assert.matches("no AWS credentials found; tried:", r.stderr)
      assert.matches("AWS_EC2_METADATA_DISABLED is true", r.stderr)
    end)
  end)
end)
