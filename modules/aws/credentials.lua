-- credentials.lua (module "aws.credentials"): the default AWS credential
-- chain, in the SDKs' order, with a cache that refreshes temporary
-- credentials 5 minutes before they expire.
--
--   1. environment      AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY [, AWS_SESSION_TOKEN]
--                       (skipped when a profile is named explicitly, as botocore does)
--   2. web identity     AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN [+ AWS_ROLE_SESSION_NAME]
--                       → unsigned STS AssumeRoleWithWebIdentity
--   3. shared files     ~/.aws/credentials and ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE,
--                       AWS_CONFIG_FILE, AWS_PROFILE): static keys, or role_arn with
--                       source_profile / credential_source / web_identity_token_file
--                       → STS AssumeRole
--   4. container        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2<uri>;
--                       FERRY_CONTAINER_CREDENTIALS_HOST replaces the host for tests) or
--                       AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or a loopback/container
--                       host) with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]
--   5. IMDSv2           token PUT (TTL 21600), role name, credentials; 1 s timeouts, one
--                       retry; AWS_EC2_METADATA_DISABLED, AWS_EC2_METADATA_SERVICE_ENDPOINT
--
-- A chain reads its environment through a getenv function, so specs can run it
-- against a table; aws.lua builds the default one on os.getenv. A source that
-- does not apply is noted and the next is tried; a source that applies but
-- fails (an STS error, a broken token file) raises. When none applies the
-- error lists every source and why it did not apply. Every secret (secret key,
-- session token, web identity and container tokens) goes through log.secret.
local errors = require("errors")
local http = require("http")
local time = require("http.time")
local ini = require("aws.ini")
local json = require("json")
local log = require("log")
local task = require("task")

local M = {}

M.refresh_margin = 300 -- seconds before Expiration that credentials are refreshed
local CONTAINER_HOST = "169.254.170.2"
local CONTAINER_ALLOWED = {["169.254.170.2"] = true, ["169.254.170.23"] = true, ["fd00:ec2::23"] = true,
                           ["[fd00:ec2::23]"] = true, localhost = true}

local function fail(code, fmt, ...)
  error(errors.new{code = code, message = fmt:format(...)}, 0)
end

local function is_true(v)
  return v ~= nil and v:lower() == "true"
end

---Epoch seconds of an ISO 8601 / RFC 3339 timestamp ("2017-12-24T03:14:03Z",
---fractions and "+hh:mm" offsets allowed, no zone read as UTC), or of a number
---(epoch seconds, as JSON protocols send them); nil when unreadable.
---@param v any
---@return integer?
function M.parse_time(v)
  if type(v) == "number" then return math.floor(v) end
  if type(v) ~= "string" then return nil end
  if not v:find("^%d%d%d%d%-") then return tonumber(v) and math.floor(tonumber(v)) or nil end
  return (time.rfc3339(v, true))
end

-- Registers the secrets of creds with log.secret and returns creds.
local function finish(creds)
  log.secret(creds.secret_access_key)
  if creds.session_token then log.secret(creds.session_token) end
  return creds
end

-- Credentials from a decoded {AccessKeyId, SecretAccessKey, Token|SessionToken, Expiration}.
local function from_answer(t, source, what)
  if type(t) ~= "table" or type(t.AccessKeyId) ~= "string" or type(t.SecretAccessKey) ~= "string" then
    fail("credentials", "%s: the answer holds no AccessKeyId and SecretAccessKey", what)
  end
  local token = t.Token or t.SessionToken
  return finish{
    access_key_id = t.AccessKeyId,
    secret_access_key = t.SecretAccessKey,
    session_token = type(token) == "string" and token or nil,
    expiration = M.parse_time(t.Expiration),
    source = source,
  }
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function snippet(body)
  body = (body or ""):gsub("%s+", " ")
  if #body > 200 then body = body:sub(1, 200) .. "..." end
  return body
end

-- ---- the chain ----

local Chain = {}
Chain.__index = Chain

---A credential chain reading its environment through opts.getenv, calling
---STS through opts.sts(operation, params, {region, credentials|false}).
---@param opts {getenv: fun(name: string): string?, sts: function, now?: fun(): integer}
function M.new(opts)
  return setmetatable({
    getenv = opts.getenv,
    sts = opts.sts,
    now = opts.now or os.time,
    cache = {},
    pending = {},
    files = nil,
  }, Chain)
end

function Chain:env(name)
  local v = self.getenv(name)
  if v == "" then return nil end
  return v
end

-- Expands a leading "~/" with HOME.
function Chain:expand(path)
  if path:sub(1, 2) == "~/" then
    local home = self:env("HOME")
    if home then return home .. path:sub(2) end
  end
  return path
end

-- The paths of the shared credentials and config files (nil when no HOME and no override).
function Chain:paths()
  local home = self:env("HOME")
  local cred = self:env("AWS_SHARED_CREDENTIALS_FILE")
  local conf = self:env("AWS_CONFIG_FILE")
  cred = cred and self:expand(cred) or (home and home .. "/.aws/credentials")
  conf = conf and self:expand(conf) or (home and home .. "/.aws/config")
  return cred, conf
end

-- Both files, parsed once per chain: {credentials = sections?, config = sections?, paths}.
function Chain:shared_files()
  if not self.files then
    local cred_path, conf_path = self:paths()
    local function load(path)
      if not path then return nil end
      local ok, sections = pcall(ini.load, path)
      if not ok then fail("config", "malformed AWS shared file: %s", tostring(sections)) end
      return sections
    end
    self.files = {credentials = load(cred_path), config = load(conf_path)}
  end
  return self.files
end

-- The merged settings of profile `name` (config `[profile name]` or `[default]`,
-- overridden by credentials `[name]`), or nil when neither file has it.
function Chain:profile(name)
  local files = self:shared_files()
  local merged, found = {}, false
  local conf = files.config or {}
  local sections = name == "default" and {conf.default, conf["profile default"]} or {conf["profile " .. name]}
  for _, section in pairs(sections) do
    found = true
    for k, v in pairs(section) do merged[k] = v end
  end
  local cred = files.credentials and files.credentials[name]
  if cred then
    found = true
    for k, v in pairs(cred) do merged[k] = v end
  end
  if not found then return nil end
  for k, v in pairs(merged) do
    if type(v) ~= "string" then merged[k] = nil end -- nested blocks (s3 = ...) are not ours
  end
  return merged
end

-- The profile the chain uses: explicit, else AWS_PROFILE, AWS_DEFAULT_PROFILE, "default";
-- and whether it was named (explicitly or by the environment).
function Chain:profile_name(explicit)
  local named = explicit or self:env("AWS_PROFILE") or self:env("AWS_DEFAULT_PROFILE")
  return named or "default", named ~= nil
end

---The region: AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`.
function Chain:region(profile)
  local r = self:env("AWS_REGION") or self:env("AWS_DEFAULT_REGION")
  if r then return r end
  local name = self:profile_name(profile)
  local ok, p = pcall(self.profile, self, name) -- a malformed file is reported by the credential chain
  return ok and p and p.region or nil
end

-- ---- sources: each returns creds, or nil and why it did not apply ----

function Chain:from_env()
  local id, secret = self:env("AWS_ACCESS_KEY_ID"), self:env("AWS_SECRET_ACCESS_KEY")
  if not id and not secret then return nil, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set" end
  if not secret then return nil, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not" end
  if not id then return nil, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not" end
  return finish{
    access_key_id = id,
    secret_access_key = secret,
    session_token = self:env("AWS_SESSION_TOKEN") or self:env("AWS_SECURITY_TOKEN"),
    expiration = M.parse_time(self:env("AWS_CREDENTIAL_EXPIRATION")),
    source = "environment",
  }
end

-- AssumeRoleWithWebIdentity with the token read from token_file (read on every refresh).
function Chain:web_identity(token_file, role_arn, session_name, region, source)
  local token, err = read_file(token_file)
  if not token then fail("credentials", "web identity: cannot read the token file: %s", err) end
  token = token:gsub("%s+$", "")
  if token == "" then fail("credentials", "web identity: the token file %s is empty", token_file) end
  log.secret(token)
  local result = self.sts("AssumeRoleWithWebIdentity", {
    RoleArn = role_arn,
    RoleSessionName = session_name or ("ferry-session-" .. self.now()),
    WebIdentityToken = token,
  }, {region = region, credentials = false})
  return from_answer(result and result.Credentials, source, "web identity (AssumeRoleWithWebIdentity)")
end

function Chain:from_web_identity()
  local file, arn = self:env("AWS_WEB_IDENTITY_TOKEN_FILE"), self:env("AWS_ROLE_ARN")
  if not file and not arn then return nil, "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set" end
  if not arn then return nil, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not" end
  if not file then return nil, "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not" end
  return self:web_identity(file, arn, self:env("AWS_ROLE_SESSION_NAME"), self:region() or "us-east-1",
                           "web_identity")
end

-- STS AssumeRole for profile p (settings) with source credentials src.
function Chain:assume_role(name, p, src)
  local params = {
    RoleArn = p.role_arn,
    RoleSessionName = p.role_session_name or ("ferry-session-" .. self.now()),
    ExternalId = p.external_id,
  }
  if p.duration_seconds then
    params.DurationSeconds = math.tointeger(tonumber(p.duration_seconds))
    if not params.DurationSeconds then
      fail("config", "profile '%s': duration_seconds must be an integer, got '%s'", name, p.duration_seconds)
    end
  end
  if p.mfa_serial then
    fail("config", "profile '%s': mfa_serial needs an interactive MFA code, which Ferry cannot ask for", name)
  end
  local region = p.region or self:env("AWS_REGION") or self:env("AWS_DEFAULT_REGION") or "us-east-1"
  local result = self.sts("AssumeRole", params, {region = region, credentials = src})
  return from_answer(result and result.Credentials, "assume_role:" .. name,
                     ("profile '%s' (AssumeRole %s)"):format(name, p.role_arn))
end

local function static_profile(name, p)
  return finish{
    access_key_id = p.aws_access_key_id,
    secret_access_key = p.aws_secret_access_key,
    session_token = p.aws_session_token,
    source = "profile:" .. name,
  }
end

-- Credentials of profile `name`; `visited` guards source_profile cycles.
-- Returns creds, or nil and why when the profile holds none.
function Chain:profile_credentials(name, visited)
  local p = self:profile(name)
  if not p then
    local files = self:shared_files()
    if not files.credentials and not files.config then return nil, "neither file exists" end
    return nil, ("no profile '%s' in them"):format(name)
  end
  local static = p.aws_access_key_id and p.aws_secret_access_key
  if p.role_arn then
    if p.source_profile and p.credential_source then
      fail("config", "profile '%s' sets both source_profile and credential_source", name)
    end
    local src
    if p.source_profile then
      if p.source_profile == name and static then
        src = static_profile(name, p)
      else
        visited[#visited + 1] = name
        for _, seen in ipairs(visited) do
          if seen == p.source_profile then
            fail("config", "profile source_profile cycle: %s -> %s", table.concat(visited, " -> "),
                 p.source_profile)
          end
        end
        local why
        src, why = self:profile_credentials(p.source_profile, visited)
        if not src then
          fail("config", "profile '%s': source_profile '%s' gives no credentials: %s", name, p.source_profile, why)
        end
      end
    elseif p.credential_source then
      local cs, why = p.credential_source
      if cs == "Environment" then
        src, why = self:from_env()
      elseif cs == "EcsContainer" then
        src, why = self:from_container()
      elseif cs == "Ec2InstanceMetadata" then
        src, why = self:from_imds()
      else
        fail("config", "profile '%s': credential_source '%s' is not Environment, EcsContainer or Ec2InstanceMetadata",
             name, cs)
      end
      if not src then fail("credentials", "profile '%s': credential_source %s: %s", name, cs, why) end
    elseif p.web_identity_token_file then
      return self:web_identity(self:expand(p.web_identity_token_file), p.role_arn, p.role_session_name,
                               p.region or self:region() or "us-east-1", "web_identity:" .. name)
    else
      fail("config", "profile '%s' has role_arn but no source_profile, credential_source or web_identity_token_file",
           name)
    end
    return self:assume_role(name, p, src)
  end
  if static then return static_profile(name, p) end
  if p.aws_access_key_id or p.aws_secret_access_key then
    return nil, ("profile '%s' has only one of aws_access_key_id and aws_secret_access_key"):format(name)
  end
  if p.credential_process then
    return nil, ("profile '%s' uses credential_process, which Ferry does not run"):format(name)
  end
  if p.sso_session or p.sso_start_url then
    return nil, ("profile '%s' uses IAM Identity Center (SSO), which Ferry does not support"):format(name)
  end
  return nil, ("profile '%s' has no credentials"):format(name)
end


-- One request, tried up to `attempts` times with `pause` seconds between
-- tries on connection errors and 5xx. Returns the last response, or nil and
-- the last transport error.
local function fetch(req, attempts, pause)
  local last_res, last_err
  for i = 1, attempts do
    local ok, res = pcall(http.request, req)
    if ok and res.status < 500 then return res end
    if ok then
      last_res, last_err = res, nil
    elseif errors.is(res) and res.url then
      last_res, last_err = nil, res
    else
      error(res, 0) -- a bug, or the task's own cancellation
    end
    if i < attempts then task.sleep(pause) end
  end
  return last_res, last_err
end

local function host_of(url)
  local authority = url:match("^%a[%w+.-]*://([^/?#]*)") or ""
  authority = authority:gsub("^.*@", "")
  if authority:sub(1, 1) == "[" then return authority:match("^(%[[^%]]*%])") end
  return (authority:gsub(":%d*$", ""))
end

local function is_loopback(host)
  return host == "localhost" or host == "::1" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

function Chain:from_container()
  local rel, full = self:env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), self:env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
  local url
  if rel then
    local host = self:env("FERRY_CONTAINER_CREDENTIALS_HOST") or CONTAINER_HOST
    if not host:match("^https?://") then host = "http://" .. host end
    url = host:gsub("/+$", "") .. (rel:sub(1, 1) == "/" and rel or "/" .. rel)
  elseif full then
    local scheme, host = full:match("^(%a+)://"), host_of(full)
    if scheme ~= "https" and not (scheme == "http" and (is_loopback(host) or CONTAINER_ALLOWED[host])) then
      fail("config", "container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI must use https or a loopback or "
           .. "container host (169.254.170.2, 169.254.170.23, fd00:ec2::23), got %s", full)
    end
    url = full
  else
    return nil, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set"
  end
  local headers = {Accept = "application/json"}
  local token_file = self:env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  local token
  if token_file then
    local err
    token, err = read_file(token_file)
    if not token then fail("credentials", "container credentials: cannot read the token file: %s", err) end
    token = token:gsub("%s+$", "")
  else
    token = self:env("AWS_CONTAINER_AUTHORIZATION_TOKEN")
  end
  if token then
    if token:find("[\r\n]") then
      fail("config", "container credentials: the authorization token contains a line break")
    end
    headers.Authorization = log.secret(token)
  end
  local res, err = fetch({method = "GET", url = url, headers = headers, timeout = 2, connect_timeout = 2,
                          retries = 0}, 3, 1)
  if not res then fail("credentials", "container credentials from %s: %s", url, err.message or tostring(err)) end
  if res.status ~= 200 then
    fail("credentials", "container credentials from %s: HTTP %d: %s", url, res.status, snippet(res.body))
  end
  local ok, body = pcall(json.decode, res.body)
  if not ok then fail("credentials", "container credentials from %s: the answer is not JSON", url) end
  return from_answer(body, "container", "container credentials from " .. url)
end

function Chain:from_imds()
  if is_true(self:env("AWS_EC2_METADATA_DISABLED")) then return nil, "AWS_EC2_METADATA_DISABLED is true" end
  local base = self:env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
  if not base then
    local mode = self:env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
    base = mode and mode:lower() == "ipv6" and "http://[fd00:ec2::254]" or "http://169.254.169.254"
  end
  base = base:gsub("/+$", "")
  local timeout = tonumber(self:env("AWS_METADATA_SERVICE_TIMEOUT") or "") or 1
  local attempts = math.tointeger(tonumber(self:env("AWS_METADATA_SERVICE_NUM_ATTEMPTS") or "")) or 2
  local function call(method, path, headers)
    return fetch({method = method, url = base .. path, headers = headers, timeout = timeout,
                  connect_timeout = timeout, retries = 0}, math.max(attempts, 1), 0)
  end

  local token
  local res, err = call("PUT", "/latest/api/token", {["x-aws-ec2-metadata-token-ttl-seconds"] = "21600"})
  if res and res.status == 200 then
    token = log.secret((res.body:gsub("%s+$", "")))
  elseif res and res.status == 400 then
    return nil, ("the instance metadata service at %s refused the token request (HTTP 400)"):format(base)
  elseif not res and err.code ~= "timeout" then
    return nil, ("no instance metadata service at %s: %s"):format(base, err.message or tostring(err))
  elseif is_true(self:env("AWS_EC2_METADATA_V1_DISABLED")) then
    return nil, ("no IMDSv2 token from %s (%s) and IMDSv1 is disabled"):format(base,
      res and ("HTTP " .. res.status) or err.message)
  end
  local headers = token and {["x-aws-ec2-metadata-token"] = token} or {}

  res, err = call("GET", "/latest/meta-data/iam/security-credentials/", headers)
  if not res then return nil, ("instance metadata at %s: %s"):format(base, err.message or tostring(err)) end
  if res.status == 404 then return nil, ("no IAM role is attached to the instance (%s)"):format(base) end
  if res.status ~= 200 then
    return nil, ("instance metadata at %s: HTTP %d asking for the role"):format(base, res.status)
  end
  local role = res.body:match("^%s*([^\r\n]+)")
  if not role then return nil, ("no IAM role is attached to the instance (%s)"):format(base) end
  role = role:gsub("%s+$", "")

  res, err = call("GET", "/latest/meta-data/iam/security-credentials/" .. role, headers)
  if not res then return nil, ("instance metadata at %s: %s"):format(base, err.message or tostring(err)) end
  if res.status ~= 200 then
    return nil, ("instance metadata at %s: HTTP %d asking for the credentials of role %s"):format(
      base, res.status, role)
  end
  local ok, body = pcall(json.decode, res.body)
  if not ok or type(body) ~= "table" then
    return nil, ("instance metadata at %s: the credentials of role %s are not JSON"):format(base, role)
  end
  if body.Code and body.Code ~= "Success" then
    return nil, ("instance metadata at %s: role %s: %s"):format(base, role, tostring(body.Code))
  end
  return from_answer(body, "imds", "instance metadata at " .. base)
end

-- ---- resolution and cache ----

-- Runs the chain; returns creds and the function that fetches them again.
function Chain:resolve(explicit)
  local name, named = self:profile_name(explicit)
  local tried = {}
  local function try(label, fn)
    local creds, why = fn()
    if creds then return creds end
    tried[#tried + 1] = ("%s: %s"):format(label, why)
  end

  if explicit then
    tried[#tried + 1] = ("environment: skipped, profile '%s' was named"):format(explicit)
  else
    local c = try("environment", function() return self:from_env() end)
    if c then return c, function() return self:from_env() end end
  end
  local c = try("web identity", function() return self:from_web_identity() end)
  if c then return c, function() return self:from_web_identity() end end

  local cred_path, conf_path = self:paths()
  local files = ("%s, %s"):format(cred_path or "(no HOME for ~/.aws/credentials)",
                                  conf_path or "(no HOME for ~/.aws/config)")
  if named and not self:profile(name) then
    fail("config", "AWS profile '%s' not found in %s", name, files)
  end
  c = try("shared files (" .. files .. ")", function() return self:profile_credentials(name, {}) end)
  if c then return c, function() return assert(self:profile_credentials(name, {})) end end

  c = try("container", function() return self:from_container() end)
  if c then return c, function() return self:from_container() end end
  c = try("instance metadata (IMDSv2)", function() return self:from_imds() end)
  if c then
    return c, function()
      local again, why = self:from_imds()
      if not again then fail("credentials", "instance metadata: %s", why) end
      return again
    end
  end

  fail("no_credentials", "no AWS credentials found; tried:\n  - %s", table.concat(tried, "\n  - "))
end

local function fresh(self, creds, margin)
  return not creds.expiration or self.now() < creds.expiration - margin
end

---The credentials for the named profile (or the default chain), from the
---cache while they are valid for more than refresh_margin seconds.
---@param explicit? string a profile named by the caller
function Chain:get(explicit)
  local key = explicit and ("profile:" .. explicit) or "default"
  local entry = self.cache[key]
  if entry and fresh(self, entry.creds, M.refresh_margin) then return entry.creds end
  -- one fetch at a time per profile: tasks that ask meanwhile wait for its result
  while self.pending[key] do task.sleep(0.005) end
  self.pending[key] = true
  local ok, creds = pcall(self.fetch, self, key, explicit)
  self.pending[key] = nil
  if not ok then error(creds, 0) end
  return creds
end

---Forgets the cached credentials of the named profile (or the default chain),
---so the next get fetches them again: after the service said they expired.
function Chain:invalidate(explicit)
  self.cache[explicit and ("profile:" .. explicit) or "default"] = nil
end

function Chain:fetch(key, explicit)
  local entry = self.cache[key]
  if entry and fresh(self, entry.creds, M.refresh_margin) then return entry.creds end
  if entry then
    local ok, creds = pcall(entry.refresh)
    if ok then
      entry.creds = creds
      return creds
    end
    if fresh(self, entry.creds, 0) then
      log.warn("aws: refreshing credentials (%s) failed, using the current ones until they expire: %s",
               entry.creds.source, tostring(creds))
      return entry.creds
    end
    self.cache[key] = nil
    error(creds, 0)
  end
  local creds, refresh = self:resolve(explicit)
  self.cache[key] = {creds = creds, refresh = refresh}
  return creds
end

return M
