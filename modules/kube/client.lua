-- client.lua: the kube.Client class and its transport: URLs, the http options
-- every request carries (TLS, proxy, credentials), requests with retries and
-- 401 refresh, Warning headers, Status-shaped errors, and resource resolution
-- through discovery. Operations (kube.ops) and the watch/wait/exec/logs
-- extensions are methods added to this class; they reach the API only
-- through the private methods below.
--
-- Private interface for extension authors (stable; documented in meta.lua too):
--
--   client.namespace               the default namespace (context, in-cluster or kube.connect's)
--   client:_request{method, path, query, body, content_type, accept, headers, dry_run, retry, timeout}
--       → decoded JSON body (raw text when accept is not JSON, or the response is not JSON), response
--       query: {name = value or list of values}; body: string, or table sent as JSON; dry_run: "server"
--       or true adds dryRun=All; retry: whether 5xx and ambiguous connection errors may be retried
--       (default: GET, HEAD, PUT, DELETE yes; POST, PATCH no). 429 is always retried and connection
--       refusals always, honouring Retry-After; a 401 refreshes credentials once. Raises error objects:
--       {code = Status.reason ("NotFound", "Conflict", "Forbidden", "Expired", ...) or a transport code
--       ("connect", "timeout", "tls", ...), reason, status = HTTP status, message, causes, details,
--       retryable, op = "GET /path"}.
--   client:_http_options()         → {url = base URL, headers = {Authorization, Impersonate-*}, ca_data,
--       cert_data, key_data, insecure, resolve, proxy}: a fresh table to merge into http.request,
--       http.open or http.websocket (add method, url from _url, more headers). Runs exec plugins and
--       re-reads token files as needed.
--   client:_url(path, query)       → the absolute URL of an API path with an encoded query.
--   client:_resolve(resource, namespace?) → {path, collection, name, namespace, kind, api_version,
--       resource, namespaced, group, version, verbs}
--   client:_refresh_auth()         → after a 401: true when the credentials may have changed.
--   client._stream_error(stream, op) → the Status-shaped error of a refused http.open stream.
--   client:_resolve_pod(pod, namespace?) → _resolve's table for "name", "pod/name", "pods/name",
--       a Pod object or {name, namespace}.
--   client._pick_container(pod, wanted?) → the container kubectl picks in a Pod object.
--
-- tls-server-name: the server is reached at its own address while TLS (SNI and
-- certificate verification) uses the configured name. Requests go to
-- https://<tls-server-name>:<port>/... with http's `resolve` mapping
-- "<tls-server-name>:<port>" to the server's host, so curl connects to the real
-- address but verifies the certificate against the name, as client-go's
-- ServerName does. (The Host header is the tls-server-name; the API server
-- ignores it.) The server's host must be an IP address for this, as with curl's
-- CURLOPT_RESOLVE; a DNS name is passed through `connect_to` instead.
local errors = require("errors")
local http = require("http")
local json = require("json")
local log = require("log")
local task = require("task")

local credentials = require("kube.credentials")
local discovery = require("kube.discovery")

local Client = {}
Client.__index = Client

Client.max_retries = 5 -- retries of one request after the first attempt
Client.timeout = 60 -- seconds one request may take

local MAX_ERROR_BODY = 64 * 1024 -- bytes of a refused stream's body read for its Status
local DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
local SAFE = {GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true}
local RETRY_5XX = {[500] = true, [502] = true, [503] = true, [504] = true}
local REASONS = {
  [400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
  [405] = "MethodNotAllowed", [406] = "NotAcceptable", [409] = "Conflict", [410] = "Expired",
  [413] = "RequestEntityTooLarge", [415] = "UnsupportedMediaType", [422] = "Invalid",
  [429] = "TooManyRequests", [500] = "InternalError", [503] = "ServiceUnavailable", [504] = "Timeout",
}

---------------------------------------------------------------------------
-- Construction

local function split_server(server)
  local scheme, host, port, rest = server:match("^(https?)://(%[[^%]]+%])(:?%d*)(.*)$")
  if not scheme then scheme, host, port, rest = server:match("^(https?)://([^/:]+)(:?%d*)(.*)$") end
  if port == "" then port = scheme == "https" and ":443" or ":80" end
  return scheme, host, port:sub(2), rest
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:sub(1, 1) == "["
end

---A client for a connection from kube.kubeconfig.
---@param conn table
---@return table client
function Client.new(conn)
  local self = setmetatable({}, Client)
  self.namespace = conn.namespace or "default"
  self._conn = conn
  self._auth = credentials.new(conn)
  self._base = conn.server
  if conn.tls_server_name then
    local scheme, host, port, rest = split_server(conn.server)
    local name = conn.tls_server_name
    self._base = ("%s://%s:%s%s"):format(scheme, name, port, rest)
    if is_ip(host) then
      self._resolve_to = {("%s:%s:%s"):format(name, port, host)}
    else
      self._connect_to = {("%s:%s:%s:%s"):format(name, port, host, port)}
    end
  end
  if conn.ca_missing then log.warn("kube: in-cluster CA %s is unreadable; using the system CAs", conn.ca_missing) end
  self._discovery = discovery.new(self)
  return self
end

---------------------------------------------------------------------------
-- URLs and options

local function encode(s)
  return (tostring(s):gsub("[^%w%-._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

---The absolute URL of an API path, with query {name = value or list}
---(sorted by name, so URLs are deterministic; false and nil values are left out).
function Client:_url(path, query)
  local url = self._base .. path
  if query then
    local keys = {}
    for k in pairs(query) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local v = query[k]
      local list = type(v) == "table" and v or {v}
      for _, item in ipairs(list) do
        if item ~= false and item ~= nil then parts[#parts + 1] = encode(k) .. "=" .. encode(item) end
      end
    end
    if #parts > 0 then url = url .. (url:find("?", 1, true) and "&" or "?") .. table.concat(parts, "&") end
  end
  return url
end

---A fresh table of http request fields: url (the base), headers (credentials,
---impersonation), TLS material, resolve/connect_to for tls-server-name, proxy.
function Client:_http_options()
  local conn = self._conn
  local cred = self._auth:current()
  local headers = {}
  if cred.authorization then headers.Authorization = cred.authorization end
  local imp = conn.impersonate
  if imp then
    headers["Impersonate-User"] = imp.user
    if imp.uid then headers["Impersonate-Uid"] = imp.uid end
    -- http takes one value per header name; several groups go comma-joined,
    -- which the API server splits like repeated headers
    if imp.groups and #imp.groups > 0 then headers["Impersonate-Group"] = table.concat(imp.groups, ",") end
    for k, vs in pairs(imp.extra or {}) do headers["Impersonate-Extra-" .. encode(k)] = table.concat(vs, ",") end
  end
  return {
    url = self._base,
    headers = headers,
    ca_data = conn.ca_data,
    cert_data = cred.cert_data,
    key_data = cred.key_data,
    insecure = conn.insecure or nil,
    resolve = self._resolve_to,
    connect_to = self._connect_to,
    proxy = conn.proxy_url,
  }
end

---After a 401: refreshes the credentials; true when they may have changed.
function Client:_refresh_auth()
  return self._auth:refresh()
end

---------------------------------------------------------------------------
-- Errors

-- The texts of Warning headers: `299 - "text"`, several joined with ", ".
local function warnings(value)
  local out = {}
  local i = 1
  while true do
    local s, e = value:find('%d%d%d [^%s]+ "', i)
    if not s then break end
    local j, buf = e + 1, {}
    while j <= #value do
      local c = value:sub(j, j)
      if c == "\\" then
        buf[#buf + 1] = value:sub(j + 1, j + 1)
        j = j + 2
      elseif c == '"' then
        break
      else
        buf[#buf + 1] = c
        j = j + 1
      end
    end
    out[#out + 1] = table.concat(buf)
    i = j + 1
  end
  if #out == 0 and value ~= "" then out[1] = value end
  return out
end

---The error object for a non-2xx response: the Status body's reason, message,
---details and causes when there is one, else the HTTP status's reason.
---@return table
function Client._status_error(res, op)
  local st
  local ok, doc = pcall(json.decode, res.body or "")
  if ok and type(doc) == "table" and doc.kind == "Status" then st = doc end
  local reason = st and type(st.reason) == "string" and st.reason ~= "" and st.reason or REASONS[res.status]
                 or ("HTTP" .. res.status)
  local message = st and type(st.message) == "string" and st.message ~= "" and st.message
  if not message then
    local body = (res.body or ""):gsub("%s+$", "")
    message = body ~= "" and body:sub(1, 300) or ("the server answered " .. res.status)
  end
  local details = st and type(st.details) == "table" and st.details or nil
  local causes = details and type(details.causes) == "table" and details.causes or json.array()
  return errors.new{
    code = reason, reason = reason, status = res.status, message = message, causes = causes, details = details,
    retryable = res.status == 429 or res.status >= 500, op = op,
  }
end

---The error object for a refused stream (http.open with a non-2xx status):
---reads at most MAX_ERROR_BODY bytes of its body for the Status.
---@return table
function Client._stream_error(stream, op)
  local body, size = {}, 0
  for chunk in function() return stream:read() end do
    body[#body + 1], size = chunk, size + #chunk
    if size > MAX_ERROR_BODY then break end
  end
  return Client._status_error({status = stream.status, headers = stream.headers, body = table.concat(body)}, op)
end

local function transport_error(err, op)
  local e = {}
  for k, v in pairs(err) do e[k] = v end
  e.op, e.causes = op, json.array()
  e.message = ("%s: %s"):format(op, tostring(err.message))
  return errors.new(e)
end

---------------------------------------------------------------------------
-- Requests

local function is_json(ctype)
  return ctype ~= nil and (ctype:find("json", 1, true) ~= nil)
end

-- details.retryAfterSeconds of a Status body, for answers without Retry-After.
local function retry_after_seconds(body)
  local ok, st = pcall(json.decode, body or "")
  local v = ok and type(st) == "table" and type(st.details) == "table" and st.details.retryAfterSeconds
  return math.type(v) == "integer" and v >= 0 and v or nil
end

local function sleep_before_retry(attempt, after)
  task.sleep(http.backoff(attempt, after))
end

---One API request (see the file comment). Returns the decoded body and the
---http response {status, headers, body}.
function Client:_request(req)
  if type(req) ~= "table" or type(req.path) ~= "string" then error("kube: _request needs {path = ...}", 2) end
  local method = (req.method or "GET"):upper()
  local query = {}
  for k, v in pairs(req.query or {}) do query[k] = v end
  if req.dry_run then
    if req.dry_run ~= true and req.dry_run ~= "server" and req.dry_run ~= "All" then
      error(("kube: dry_run must be \"server\", got %s"):format(tostring(req.dry_run)), 3)
    end
    query.dryRun = "All"
  end
  local body, content_type = req.body, req.content_type
  if type(body) == "table" then
    body = json.encode(body)
    content_type = content_type or "application/json"
  end
  local accept = req.accept or "application/json"
  local safe = req.retry
  if safe == nil then safe = SAFE[method] or false end
  local url = self:_url(req.path, query)
  local op = method .. " " .. req.path
  local refreshed, attempt = false, 0
  while true do
    attempt = attempt + 1
    local o = self:_http_options()
    o.url, o.method, o.body, o.retries = url, method, body, 0
    o.timeout = req.timeout or self.timeout
    o.headers.Accept = accept
    if content_type then o.headers["Content-Type"] = content_type end
    for k, v in pairs(req.headers or {}) do o.headers[k] = v end
    local ok, res = pcall(http.request, o)
    if not ok then
      local err = res
      -- bad arguments, and cancellations of the calling task (no url), pass through untouched
      if not errors.is(err) or err.url == nil then error(err, 0) end
      local never_sent = err.code == "connect" or err.code == "resolve"
      if err.retryable and (safe or never_sent) and attempt <= self.max_retries then
        log.debug("kube: %s: %s; retrying", op, tostring(err.message))
        sleep_before_retry(attempt)
      else
        error(transport_error(err, op), 0)
      end
    else
      if res.headers.warning then
        for _, w in ipairs(warnings(res.headers.warning)) do log.warn("kube: %s: warning: %s", op, w) end
      end
      local status = res.status
      if status >= 200 and status < 300 then
        local ctype = res.headers["content-type"]
        if res.body == "" then return nil, res end
        if is_json(accept) and (ctype == nil or is_json(ctype)) then
          local okd, doc = pcall(json.decode, res.body)
          if not okd then
            error(errors.new{code = "decode", message = ("%s: the response is not JSON: %s"):format(op, tostring(doc)),
                             status = status, op = op, causes = json.array()}, 0)
          end
          return doc, res
        end
        return res.body, res
      end
      if status == 401 and not refreshed and self:_refresh_auth() then
        refreshed = true
        attempt = attempt - 1
      elseif (status == 429 or (safe and RETRY_5XX[status])) and attempt <= self.max_retries then
        log.debug("kube: %s: HTTP %d; retrying", op, status)
        sleep_before_retry(attempt, http.retry_after(res.headers) or retry_after_seconds(res.body))
      else
        error(Client._status_error(res, op), 0)
      end
    end
  end
end

---------------------------------------------------------------------------
-- Resources

---Resolves a resource reference to its URLs through discovery:
---"deployment/web", "deployments.apps/web", "pvc/data", "pods" (no name: a
---collection), an object {apiVersion, kind, metadata = {name, namespace}}, or
---{api_version?, kind, name?, namespace?}. The namespace is the object's, else
---`namespace`, else the client's (namespaced kinds only).
---@return table {path, collection, name, namespace, kind, api_version, resource, namespaced, group, version, verbs}
function Client:_resolve(resource, namespace)
  local spec = discovery.parse(resource)
  local entry = self._discovery:lookup(spec)
  local ns
  if entry.namespaced then ns = spec.namespace or namespace or self.namespace end
  local prefix = entry.group == "" and ("/api/" .. entry.version) or ("/apis/%s/%s"):format(entry.group, entry.version)
  local collection = ns and ("%s/namespaces/%s/%s"):format(prefix, ns, entry.resource)
                     or ("%s/%s"):format(prefix, entry.resource)
  return {
    path = spec.name and (collection .. "/" .. spec.name) or nil,
    collection = collection,
    all_namespaces = ("%s/%s"):format(prefix, entry.resource),
    name = spec.name,
    namespace = ns,
    kind = entry.kind,
    api_version = entry.group == "" and entry.version or (entry.group .. "/" .. entry.version),
    resource = entry.resource,
    namespaced = entry.namespaced,
    group = entry.group,
    version = entry.version,
    verbs = entry.verbs,
  }
end

---------------------------------------------------------------------------
-- Pods (kube.exec and kube.logs)

local function is_table(v) return type(v) == "table" end

---Resolves a pod given as "name", "pod/name", "pods/name", a Pod object or
---{name = ..., namespace = ...}; namespace, when given, wins over the pod's.
---@return table as _resolve
function Client:_resolve_pod(pod, namespace)
  local ref, ns = pod, nil
  if type(pod) == "string" then
    if not pod:find("/", 1, true) then ref = "pods/" .. pod end
  elseif is_table(pod) and pod.kind == nil and type(pod.name) == "string" and pod.metadata == nil then
    ref, ns = "pods/" .. pod.name, pod.namespace
  elseif is_table(pod) and pod.kind == nil and is_table(pod.metadata) then
    ref, ns = "pods/" .. tostring(pod.metadata.name), pod.metadata.namespace
  end
  return self:_resolve(ref, namespace or ns)
end

---The container of a Pod object kubectl picks: `wanted` when given, else
---the one the kubectl.kubernetes.io/default-container annotation names (when
---the pod has such a container), else the first; nil for a pod without any.
---@return string?
function Client._pick_container(pod, wanted)
  if wanted then return wanted end
  local containers = is_table(pod.spec) and pod.spec.containers or {}
  local annotations = is_table(pod.metadata) and pod.metadata.annotations
  local named = is_table(annotations) and annotations[DEFAULT_CONTAINER]
  if type(named) == "string" then
    for _, c in ipairs(containers) do
      if c.name == named then return named end
    end
  end
  return is_table(containers[1]) and containers[1].name or nil
end

return Client
