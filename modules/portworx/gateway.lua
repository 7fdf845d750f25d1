-- gateway.lua (module "portworx.gateway"): the transport to the OpenStorage
-- SDK REST gateway (Portworx port 9021): where it is, the bearer token, one
-- request with a deadline and retries, and SDK error bodies as error objects.
--
-- Where (resolved at the first request, then kept):
--   1. opts.endpoint, else PORTWORX_SDK_ENDPOINT ("http://host:9021"; a bare
--      "host:port" means http);
--   2. else, with a kube client, the `portworx-api` Service, found by its
--      label name=portworx-api in opts.namespace or in any namespace (the
--      operator puts it in the StorageCluster's: kube-system or portworx;
--      older specs named it portworx-service). Inside a pod
--      (KUBERNETES_SERVICE_HOST set) requests go straight to its cluster IP
--      and port 9021 (px-rest-gateway). Outside the cluster they go through
--      the API server's service proxy (client:proxy); the API server strips
--      the Authorization header there, so that path works only while
--      PX-Security is off (notes §1.2) — use port-forward or an endpoint
--      otherwise.
--
-- Token (resolved at the first request): opts.token, else PORTWORX_AUTH_TOKEN,
-- else, with a kube client, the Secret px-admin-token (key auth-token) in
-- the Portworx namespace; a missing Secret means no token (security off).
-- Every token is registered with log.secret. On a 401 the Secret is read
-- again (once per request) and the request retried when that gave another
-- token; otherwise the 401 is raised as code "Unauthenticated".
--
-- Retries: connection failures, 429, and for idempotent calls (inspect,
-- enumerate, status, delete) also 500/502/503/504, with http.backoff, until
-- max_retries or the call's deadline. Non-idempotent calls (create, clone,
-- restore, cloud backup) are retried only when the request never left (a
-- refused connection) or on 429. Calls may only use http, json, log, task,
-- errors and the kube client handed in.
local errors = require("errors")
local http = require("http")
local json = require("json")
local log = require("log")
local task = require("task")

local perr = require("portworx.errors")

local M = {}

local Gateway = {}
Gateway.__index = Gateway

Gateway.timeout = 30 -- seconds one attempt may take
Gateway.deadline = 120 -- seconds one call may take, retries included
Gateway.max_retries = 4

local SERVICE_NAMES = {"portworx-api", "portworx-service"}
local NAMESPACES = {"kube-system", "portworx"}
local REST_PORT = 9021
local SECRET = {name = "px-admin-token", key = "auth-token"}
local RETRY_STATUS = {[500] = true, [502] = true, [503] = true, [504] = true}

---A gateway for opts: {endpoint?, token?, kube?, namespace?, token_secret?,
---ca_file?, insecure?, timeout?, getenv}.
---@param opts table
---@return table
function M.new(opts)
  local self = setmetatable({}, Gateway)
  self._getenv = opts.getenv or os.getenv
  self._kube = opts.kube
  self._namespace = opts.namespace
  self._ca_file, self._insecure = opts.ca_file, opts.insecure
  if opts.timeout then self.timeout = opts.timeout end
  self._secret = opts.token_secret or SECRET
  local endpoint = opts.endpoint or self._getenv("PORTWORX_SDK_ENDPOINT")
  if endpoint and endpoint ~= "" then self._base = M.normalize_endpoint(endpoint) end
  local token, source = opts.token, "option"
  if token == nil then token, source = self._getenv("PORTWORX_AUTH_TOKEN"), "PORTWORX_AUTH_TOKEN" end
  if token and token ~= "" then
    self._token, self._token_source, self._token_loaded = log.secret(token), source, true
  end
  self._token_gen = 0
  return self
end

---"host:9021" → "http://host:9021"; trailing slashes dropped.
---@param s string
---@return string
function M.normalize_endpoint(s)
  if not s:match("^https?://") then s = "http://" .. s end
  return (s:gsub("/+$", ""))
end

---------------------------------------------------------------------------
-- Finding Portworx in the cluster

local function first_port(svc)
  local ports = type(svc.spec) == "table" and svc.spec.ports or {}
  for _, p in ipairs(ports) do
    if p.name == "px-rest-gateway" or p.port == REST_PORT then return p.port end
  end
  return REST_PORT
end

---The portworx-api Service (or nil): by label in opts.namespace or across
---namespaces, else by name in kube-system and portworx.
---@param kube table
---@param namespace? string
---@return table?
function M.find_service(kube, namespace)
  local namespaces = namespace and {namespace} or NAMESPACES
  local ok, items = pcall(kube.list, kube, "services", {
    namespace = namespace, all_namespaces = namespace == nil, label_selector = {name = "portworx-api"}})
  if ok and #items > 0 then return items[1] end
  if not ok then log.debug("portworx: listing services by label failed: %s", tostring(items)) end
  for _, ns in ipairs(namespaces) do
    for _, name in ipairs(SERVICE_NAMES) do
      local found, svc = pcall(kube.get, kube, "service/" .. name, {namespace = ns})
      if found then return svc end
      if not perr.is_not_found(svc) and not errors.is(svc, "Forbidden") then error(svc, 0) end
    end
  end
  return nil
end

-- The namespace Portworx runs in: opts.namespace, the Service's, or nil.
function Gateway:portworx_namespace()
  if self._namespace then return self._namespace end
  if self._service then return self._service.metadata.namespace end
  return nil
end

function Gateway:_locate()
  if self._base or self._proxy then return end
  local kube = self._kube
  if not kube then
    perr.fail("no_endpoint", nil, "portworx: no SDK endpoint: pass endpoint, set PORTWORX_SDK_ENDPOINT, or pass kube "
              .. "so the portworx-api Service can be found")
  end
  local svc = M.find_service(kube, self._namespace)
  if not svc then
    perr.fail("no_endpoint", nil, "portworx: no SDK endpoint: no portworx-api Service in %s, and neither endpoint "
              .. "nor PORTWORX_SDK_ENDPOINT was given", self._namespace or "kube-system or portworx")
  end
  self._service = svc
  local port = first_port(svc)
  local in_cluster = (self._getenv("KUBERNETES_SERVICE_HOST") or "") ~= ""
  local ip = type(svc.spec) == "table" and svc.spec.clusterIP
  if in_cluster and type(ip) == "string" and ip ~= "" and ip ~= "None" then
    self._base = ("http://%s:%d"):format(ip:find(":", 1, true) and ("[" .. ip .. "]") or ip, port)
  elseif in_cluster then
    self._base = ("http://%s.%s.svc:%d"):format(svc.metadata.name, svc.metadata.namespace, port)
  else
    self._proxy = {name = svc.metadata.name, namespace = svc.metadata.namespace, port = port}
    log.debug("portworx: reaching the SDK through the service proxy of %s/%s", svc.metadata.namespace,
              svc.metadata.name)
  end
end

---Where requests go: the base URL, or "kube service proxy NS/NAME:PORT".
---@return string
function Gateway:where()
  self:_locate()
  if self._base then return self._base end
  local p = self._proxy
  return ("kube service proxy %s/%s:%d"):format(p.namespace, p.name, p.port)
end

---------------------------------------------------------------------------
-- The token

-- Reads the token Secret; returns the token or nil (no Secret, no key, no access).
function Gateway:_read_secret()
  local kube = self._kube
  if not kube then return nil end
  local known = self._secret.namespace or self:portworx_namespace()
  local namespaces = known and {known} or NAMESPACES
  for _, ns in ipairs(namespaces) do
    local ok, secret = pcall(kube.get, kube, "secret/" .. self._secret.name, {namespace = ns})
    if ok then
      local data = type(secret.data) == "table" and secret.data[self._secret.key]
      local text = type(data) == "string" and M.base64_decode(data) or nil
      if not text then
        local sd = type(secret.stringData) == "table" and secret.stringData[self._secret.key]
        text = type(sd) == "string" and sd or nil
      end
      if text then
        text = text:gsub("%s+$", "")
        if text ~= "" then return log.secret(text), ns end
      end
      log.warn("portworx: secret %s/%s has no key %s", ns, self._secret.name, self._secret.key)
      return nil
    elseif not perr.is_not_found(secret) then
      log.debug("portworx: cannot read secret %s/%s: %s", ns, self._secret.name, tostring(secret))
    end
  end
  return nil
end

---The bearer token (nil when there is none) and its generation, reading the
---Secret on first use.
---@return string?, integer
function Gateway:token()
  self:_ensure_token()
  return self._token, self._token_gen
end

---After a 401 (or pxctl's Unauthenticated) with token generation gen: true
---when another token is now in use (the Secret was re-read).
---@param gen integer
---@return boolean
function Gateway:refresh_token(gen)
  return self:_refresh_token(gen)
end

function Gateway:_ensure_token()
  if self._token_loaded then return end
  self._token_loaded = true
  local token, ns = self:_read_secret()
  if token then
    self._token, self._token_source = token, ("secret %s/%s"):format(ns, self._secret.name)
    self._token_gen = self._token_gen + 1
  end
end

-- After a 401 with token generation gen: true when another token is now in use.
function Gateway:_refresh_token(gen)
  if self._token_gen ~= gen then return true end -- another request refreshed it meanwhile
  local token, ns = self:_read_secret()
  if token and token ~= self._token then
    log.info("portworx: the SDK rejected the token from %s; using the one in secret %s/%s now",
             self._token_source or "nowhere", ns, self._secret.name)
    self._token, self._token_source = token, ("secret %s/%s"):format(ns, self._secret.name)
    self._token_gen = self._token_gen + 1
    return true
  end
  return false
end

---------------------------------------------------------------------------
-- Requests

local function encode(s)
  return (tostring(s):gsub("[^%w%-._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

---A path segment, escaped.
---@param s string
---@return string
function M.escape(s) return encode(s) end

local function query_string(query)
  if not query then return "" end
  local keys = {}
  for k in pairs(query) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = encode(k) .. "=" .. encode(query[k]) end
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

function Gateway:_send(method, path, body, timeout)
  local headers = {Accept = "application/json"}
  if body then headers["Content-Type"] = "application/json" end
  if self._proxy then
    local p = self._proxy
    return self._kube:proxy(p.name, {namespace = p.namespace, port = p.port, path = path, method = method,
                                     body = body, headers = headers, timeout = timeout, retries = 0})
  end
  if self._token then headers.Authorization = "bearer " .. self._token end
  return http.request{url = self._base .. path, method = method, headers = headers, body = body,
                      timeout = timeout, connect_timeout = math.min(10, timeout), retries = 0,
                      ca_file = self._ca_file, insecure = self._insecure}
end

---One SDK call. Returns the decoded JSON body ({} for an empty one). opts:
---query (table), idempotent (retry 5xx and ambiguous failures), deadline
---(seconds for the call, retries included).
---@param method string
---@param path string
---@param body? table
---@param opts? {query?: table, idempotent?: boolean, deadline?: number}
---@return table
function Gateway:call(method, path, body, opts)
  opts = opts or {}
  self:_locate()
  self:_ensure_token()
  local full = path .. query_string(opts.query)
  local op = method .. " " .. path
  local payload = body ~= nil and json.encode(body) or nil
  local idempotent = opts.idempotent
  local deadline = task.now() + (opts.deadline or self.deadline)
  local attempt, refreshed = 0, false
  while true do
    attempt = attempt + 1
    local remaining = deadline - task.now()
    if remaining <= 0 then
      perr.fail("timeout", {op = op}, "portworx: %s: no answer within %gs (%d attempts)", op,
                opts.deadline or self.deadline, attempt - 1)
    end
    local gen = self._token_gen
    local ok, res = pcall(self._send, self, method, full, payload, math.min(self.timeout, remaining))
    local retry_after
    if not ok then
      local err = res
      -- bad arguments and the calling task's own cancellation pass through
      if not errors.is(err) or err.url == nil then error(err, 0) end
      local never_sent = err.code == "connect" or err.code == "resolve"
      if not (err.retryable and (idempotent or never_sent) and attempt <= self.max_retries) then
        local e = {}
        for k, v in pairs(err) do e[k] = v end
        e.op, e.message = op, ("portworx: %s: %s"):format(op, tostring(err.message))
        error(errors.new(e), 0)
      end
      log.debug("portworx: %s: %s; retrying", op, tostring(err.message))
    else
      local status = res.status
      if status >= 200 and status < 300 then return M.decode(res.body, op, status) end
      local okd, doc = pcall(json.decode, res.body or "")
      if not okd or type(doc) ~= "table" then doc = nil end
      local err = perr.from_response(status, doc, res.body, op)
      if status == 401 and not refreshed and self:_refresh_token(gen) then
        refreshed = true
        retry_after = 0
      elseif status == 401 then
        err.message = ("%s (token from %s)"):format(err.message, self._token_source or "nowhere: none was given")
        error(err, 0)
      else
        -- "No Backup status found" and the like are answers, not outages
        local final = perr.says_not_found(err)
        local again = status == 429 or (idempotent and RETRY_STATUS[status] and not final)
        if not again or attempt > self.max_retries then error(err, 0) end
        retry_after = http.retry_after(res.headers or {})
        log.debug("portworx: %s: HTTP %d (%s); retrying", op, status, err.sdk_message)
      end
    end
    if retry_after ~= 0 then
      task.sleep(math.max(0, math.min(http.backoff(attempt, retry_after), deadline - task.now())))
    end
  end
end

---The decoded JSON object of a 2xx body ({} for an empty one); raises "decode".
---@param body string?
---@param op string
---@param status integer
---@return table
function M.decode(body, op, status)
  if body == nil or body:match("^%s*$") then return {} end
  local ok, doc = pcall(json.decode, body)
  if not ok or type(doc) ~= "table" then
    perr.fail("decode", {op = op, status = status}, "portworx: %s: the answer is not a JSON object: %s", op,
              body:sub(1, 200))
  end
  return doc
end

---------------------------------------------------------------------------
-- base64 (Secret data)

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local DECODE = {}
for i = 1, #B64 do DECODE[B64:byte(i)] = i - 1 end
DECODE[("-"):byte()], DECODE[("_"):byte()] = 62, 63

---Decodes base64 (standard or URL alphabet, padding optional); nil when it is not base64.
---@param s string
---@return string?
function M.base64_decode(s)
  s = s:gsub("%s", ""):gsub("=+$", "")
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    local v = DECODE[s:byte(i)]
    if not v then return nil end
    bits = (bits << 6) | v
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char((bits >> nbits) & 0xFF)
    end
  end
  return table.concat(out)
end

return M
