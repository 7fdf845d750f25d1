-- credentials.lua: the credentials a client sends, kept fresh: static bearer
-- tokens, token files (re-read every 60 s and after a 401, as client-go does
-- for kubelet-rotated service-account tokens), basic auth, client
-- certificates, and exec plugins (client.authentication.k8s.io/v1 and
-- v1beta1) whose output is cached until its expirationTimestamp.
--
-- Exec plugins run through io.popen, a blocking call: the whole loop waits
-- for the plugin, which is acceptable for a plugin that answers in well under
-- a second. The command line is built for /bin/sh with every word in single
-- quotes (a ' inside becomes '\''), so no argument, environment value or
-- KUBERNETES_EXEC_INFO text is ever interpreted by the shell; plugin
-- environment variables are `NAME='value'` assignments before the command, and
-- their names must match [A-Za-z_][A-Za-z0-9_]*. stdin is /dev/null unless
-- interactiveMode is Always; stderr goes to Ferry's stderr.
--
-- `aws eks get-token`, `ferry eks-token` and `aws-iam-authenticator token`
-- plugins are not run: the token is made in-process with aws.eks_token from
-- the cluster name and region in their arguments (and AWS_PROFILE /
-- AWS_REGION from the plugin's env), so no AWS CLI is needed. A plugin using
-- --role-arn / -r is run as configured.
--
-- Plugin failures raise error objects with code "auth".
local errors = require("errors")
local json = require("json")
local log = require("log")
local time = require("http.time")

local M = {}

M.token_file_ttl = 60 -- seconds a token file's content is trusted before re-reading

local function auth_error(fmt, ...)
  error(errors.new{code = "auth", reason = "Unauthorized", message = fmt:format(...), causes = {}}, 0)
end

local function read_file(path)
  local f, why = io.open(path, "rb")
  if not f then return nil, why end
  local s = f:read("a")
  f:close()
  return s
end

---Epoch seconds of an RFC 3339 timestamp ("2030-01-01T00:00:00Z",
---"...T10:00:00.5+02:00"), or nil when it is not one.
---@param s string
---@return integer?
function M.parse_time(s)
  return (time.rfc3339(s))
end

---Quotes s as one word for a POSIX shell.
---@param s string
---@return string
function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

---------------------------------------------------------------------------
-- EKS plugins made in-process

local function basename(path) return path:match("([^/]+)$") or path end

local function env_value(exec, name)
  for _, e in ipairs(exec.env) do
    if e.name == name and e.value ~= "" then return e.value end
  end
end

-- The {cluster, region, profile} of an EKS token plugin, or nil when the
-- plugin is something else (or asks for what aws.eks_token cannot do).
function M.eks_plugin(exec)
  local cmd, args = basename(exec.command), exec.args
  local flags, positional = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local k, v = a:match("^(%-%-?[%w-]+)=(.*)$")
    if k then
      flags[k] = v
    elseif a:match("^%-") then
      local nxt = args[i + 1]
      if nxt ~= nil and not nxt:match("^%-") then
        flags[a] = nxt
        i = i + 1
      else
        flags[a] = true
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  local cluster
  if cmd == "aws" and positional[1] == "eks" and positional[2] == "get-token" then
    cluster = flags["--cluster-name"]
    if flags["--role-arn"] or flags["--cluster-id"] then return nil end
  elseif cmd == "ferry" and positional[1] == "eks-token" then
    cluster = flags["--cluster"] or flags["--cluster-name"]
  elseif cmd == "aws-iam-authenticator" and positional[1] == "token" then
    cluster = flags["-i"] or flags["--cluster-id"]
    if flags["-r"] or flags["--role"] then return nil end
  else
    return nil
  end
  if type(cluster) ~= "string" or cluster == "" then return nil end
  local region = flags["--region"]
  local profile = flags["--profile"]
  return {
    cluster = cluster,
    region = type(region) == "string" and region or env_value(exec, "AWS_REGION")
             or env_value(exec, "AWS_DEFAULT_REGION"),
    profile = type(profile) == "string" and profile or env_value(exec, "AWS_PROFILE"),
  }
end

local function eks_credential(eks)
  local aws = require("aws")
  local creds
  if eks.profile then creds = aws.credentials{profile = eks.profile} end
  local token, expires_at = aws.eks_token{cluster = eks.cluster, region = eks.region or aws.region(eks.profile),
                                          credentials = creds}
  return {token = token, expires_at = expires_at - 60}
end

---------------------------------------------------------------------------
-- Running exec plugins

---The ExecCredential JSON passed in KUBERNETES_EXEC_INFO.
function M.exec_info(conn, interactive)
  local exec = conn.exec
  local spec = {interactive = interactive}
  if exec.provide_cluster_info then
    local cluster = {server = conn.server, config = conn.exec_cluster_config or json.null}
    if conn.tls_server_name then cluster["tls-server-name"] = conn.tls_server_name end
    if conn.insecure then cluster["insecure-skip-tls-verify"] = true end
    if conn.proxy_url then cluster["proxy-url"] = conn.proxy_url end
    if conn.ca_data then
      cluster["certificate-authority-data"] = conn.ca_base64 or require("kube.kubeconfig").base64_encode(conn.ca_data)
    end
    spec.cluster = cluster
  end
  return json.encode{kind = "ExecCredential", apiVersion = exec.api_version, spec = spec}
end

---The /bin/sh command line that runs the plugin (see the file comment).
function M.exec_command(conn, interactive)
  local exec = conn.exec
  local parts = {}
  for _, e in ipairs(exec.env) do parts[#parts + 1] = e.name .. "=" .. M.shell_quote(e.value) end
  parts[#parts + 1] = "KUBERNETES_EXEC_INFO=" .. M.shell_quote(M.exec_info(conn, interactive))
  parts[#parts + 1] = M.shell_quote(exec.command)
  for _, a in ipairs(exec.args) do parts[#parts + 1] = M.shell_quote(a) end
  if not interactive then parts[#parts + 1] = "</dev/null" end
  return table.concat(parts, " ")
end

local function stdin_is_terminal()
  return os.execute("[ -t 0 ]") == true
end

-- Runs the plugin and returns {token?, cert_data?, key_data?, expires_at?}.
local function run_plugin(conn)
  local exec = conn.exec
  local interactive = false
  if exec.interactive_mode == "Always" then
    if not stdin_is_terminal() then
      auth_error("exec plugin %s needs an interactive terminal (interactiveMode: Always), and stdin is not one",
                 exec.command)
    end
    interactive = true
  end
  local p = io.popen(M.exec_command(conn, interactive), "r")
  if not p then auth_error("exec plugin %s: cannot start", exec.command) end
  local out = p:read("a") or ""
  local ok, how, code = p:close()
  if not ok then
    auth_error("exec plugin %s failed: %s %s%s", exec.command, how == "signal" and "killed by signal" or "exit status",
               tostring(code), code == 127 and " (command not found?)" or "")
  end
  local okj, cred = pcall(json.decode, out)
  if not okj or type(cred) ~= "table" then
    auth_error("exec plugin %s printed no ExecCredential JSON on stdout", exec.command)
  end
  if cred.kind ~= "ExecCredential" then
    auth_error("exec plugin %s: expected kind ExecCredential, got %s", exec.command, tostring(cred.kind))
  end
  if cred.apiVersion ~= exec.api_version then
    auth_error("exec plugin %s: ExecCredential apiVersion %s does not match the configured %s", exec.command,
               tostring(cred.apiVersion), exec.api_version)
  end
  local status = type(cred.status) == "table" and cred.status or {}
  local result = {}
  if type(status.token) == "string" and status.token ~= "" then result.token = log.secret(status.token) end
  local cert, key = status.clientCertificateData, status.clientKeyData
  cert = type(cert) == "string" and cert ~= "" and cert or nil
  key = type(key) == "string" and key ~= "" and key or nil
  if (cert == nil) ~= (key == nil) then
    auth_error("exec plugin %s: status has only one of clientCertificateData and clientKeyData", exec.command)
  end
  if cert then result.cert_data, result.key_data = cert, log.secret(key) end
  if not result.token and not result.cert_data then
    auth_error("exec plugin %s: status has neither a token nor clientCertificateData/clientKeyData", exec.command)
  end
  if status.expirationTimestamp ~= nil and status.expirationTimestamp ~= json.null then
    result.expires_at = M.parse_time(status.expirationTimestamp)
    if not result.expires_at then
      auth_error("exec plugin %s: expirationTimestamp '%s' is not RFC 3339", exec.command,
                 tostring(status.expirationTimestamp))
    end
  end
  return result
end

-- Credentials of exec plugins, shared by every client in the process: the key
-- is the plugin's whole configuration and the server.
local exec_cache = {}

local function exec_key(conn)
  local e = conn.exec
  return json.encode{e.api_version, e.command, e.args, e.env, e.interactive_mode, e.provide_cluster_info, conn.server}
end

---------------------------------------------------------------------------
-- The credential source

local Source = {}
Source.__index = Source

---A credential source for a connection from kube.kubeconfig.
---@param conn table
---@return table source with :current() and :refresh()
function M.new(conn)
  local self = setmetatable({conn = conn, now = os.time, runs = 0}, Source)
  if conn.token then log.secret(conn.token) end
  if conn.password and conn.password ~= "" then log.secret(conn.password) end
  if conn.username then
    local kubeconfig = require("kube.kubeconfig")
    self.basic = log.secret("Basic " .. kubeconfig.base64_encode(conn.username .. ":" .. conn.password))
  end
  if conn.exec then
    self.eks = M.eks_plugin(conn.exec)
    self.exec_key = exec_key(conn)
  end
  return self
end

function Source:_read_token_file()
  local conn = self.conn
  local text, why = read_file(conn.token_file)
  if not text then
    if self.file_token then return end -- keep the last good token; the server will say if it is stale
    if conn.token then return end
    auth_error("cannot read token file %s: %s", conn.token_file, tostring(why))
  end
  local token = text:match("^%s*(.-)%s*$")
  if token ~= "" then self.file_token = log.secret(token) end
  self.file_read_at = self.now()
end

function Source:_exec(force)
  local key = self.exec_key
  local cached = exec_cache[key]
  if not force and cached and (not cached.expires_at or self.now() < cached.expires_at) then return cached end
  self.runs = self.runs + 1
  local cred = self.eks and eks_credential(self.eks) or run_plugin(self.conn)
  exec_cache[key] = cred
  return cred
end

---What to send now: {authorization?, cert_data?, key_data?}. Runs an exec
---plugin whose credential is missing or expired and re-reads a stale token file.
function Source:current()
  local conn = self.conn
  local out = {cert_data = conn.cert_data, key_data = conn.key_data}
  if conn.exec then
    local cred = self:_exec(false)
    if cred.token then out.authorization = "Bearer " .. cred.token end
    if cred.cert_data then out.cert_data, out.key_data = cred.cert_data, cred.key_data end
  end
  if not out.authorization and conn.token_file then
    if not self.file_read_at or self.now() - self.file_read_at >= M.token_file_ttl then self:_read_token_file() end
    if self.file_token then out.authorization = "Bearer " .. self.file_token end
  end
  if not out.authorization and conn.token then out.authorization = "Bearer " .. conn.token end
  if not out.authorization and self.basic then out.authorization = self.basic end
  return out
end

---After a 401: re-runs the exec plugin or re-reads the token file. Returns
---whether the credentials may have changed (false for static ones, where
---retrying cannot help).
---@return boolean
function Source:refresh()
  local conn = self.conn
  if conn.exec then
    self:_exec(true)
    return true
  end
  if conn.token_file then
    local before = self.file_token
    self:_read_token_file()
    return self.file_token ~= before
  end
  return false
end

---Forgets every cached exec credential (for tests).
function M._clear_cache()
  exec_cache = {}
end

return M
