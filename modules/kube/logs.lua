-- logs.lua (module "kube.logs"): client:logs and client:proxy (notes §6.4-6.5).
--
-- logs reads GET .../pods/NAME/log as text, or streams it line by line to a
-- function (follow = true keeps the stream open until the container exits,
-- fn returns true, or the deadline). Without opts.container the container is
-- chosen as kubectl does: the kubectl.kubernetes.io/default-container
-- annotation, else the first (the pod is read first, as kubectl does).
-- proxy sends one request through the API server's service proxy and returns
-- the answer whatever its status, as http.request does.
local errors = require("errors")
local http = require("http")
local json = require("json")
local task = require("task")

local MAX_LINE = 1024 * 1024 -- a longer log line reaches fn in pieces of this size
local DEFAULT_TIMEOUT = 300 -- seconds for a log read that does not follow
local FOREVER = 7 * 24 * 3600 -- the transfer timeout of a followed log without a deadline
local SERVICE_TYPES = {service = true, services = true, svc = true}

local function is_table(v) return type(v) == "table" end

-- Percent-encodes one path component.
local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- The request table for client's server: its TLS and auth options plus these.
local function request(client, method, url, extra)
  local req = {}
  for k, v in pairs(client:_http_options()) do req[k] = v end
  local headers = {}
  for k, v in pairs(req.headers or {}) do headers[k] = v end
  for k, v in pairs(extra.headers or {}) do headers[k] = v end
  req.headers, req.method, req.url = headers, method, url
  for k, v in pairs(extra) do
    if k ~= "headers" then req[k] = v end
  end
  return req
end

-- Streams the body of an open response to fn, one line at a time (without
-- its newline). Returns true when fn asked to stop.
local function each_line(stream, fn)
  local partial = ""
  while true do
    local chunk = stream:read()
    if chunk == nil then break end
    local pos = 1
    while true do
      local nl = chunk:find("\n", pos, true)
      if not nl then
        partial = partial .. chunk:sub(pos)
        while #partial >= MAX_LINE do
          if fn(partial:sub(1, MAX_LINE)) then return true end
          partial = partial:sub(MAX_LINE + 1)
        end
        break
      end
      local line = partial .. chunk:sub(pos, nl - 1)
      partial = ""
      if fn(line) then return true end
      pos = nl + 1
    end
  end
  if partial ~= "" then return fn(partial) and true or false end
  return false
end

return function(Client)
  ---A pod's log. Without fn, returns the text; with fn, calls fn(line) for
  ---every line as it arrives (with follow = true until the container exits,
  ---fn returns true, or opts.timeout passes, which raises {code = "timeout"}).
  ---since is seconds (sinceSeconds) or an RFC 3339 time (sinceTime); tail is
  ---a number of lines. Errors are Status-shaped (404, 400 for a container
  ---that has not started).
  ---@param pod string|table "name", "pod/name", a Pod object or {name, namespace}
  ---@param opts? kube.LogsOpts
  ---@param fn? fun(line: string): boolean?
  ---@return string? text the log, when no fn is given
  function Client:logs(pod, opts, fn)
    if type(opts) == "function" and fn == nil then opts, fn = nil, opts end
    opts = opts or {}
    if not is_table(opts) then error("kube logs: opts must be a table", 2) end
    if fn ~= nil and type(fn) ~= "function" then error("kube logs: fn must be a function", 2) end
    if opts.follow and not fn then error("kube logs: follow needs a function to stream lines to", 2) end
    local r = self:_resolve_pod(pod, opts.namespace)

    local container = opts.container
    if not container then container = self._pick_container((self:_request{method = "GET", path = r.path})) end
    local since = opts.since
    local query = {
      container = container, follow = opts.follow and "true", previous = opts.previous and "true",
      timestamps = opts.timestamps and "true", limitBytes = opts.limit_bytes,
      tailLines = opts.tail and math.tointeger(opts.tail) or nil,
      sinceSeconds = type(since) == "number" and math.max(1, math.ceil(since)) or nil,
      sinceTime = type(since) == "string" and since or nil,
    }
    if not fn then
      local text = self:_request{method = "GET", path = r.path .. "/log", query = query, accept = "text/plain, */*",
                                 timeout = opts.timeout or DEFAULT_TIMEOUT}
      return text or ""
    end
    local url = self:_url(r.path .. "/log", query)

    local function follow()
      -- A followed log has no transfer timeout of its own: opts.timeout (below) is its deadline.
      local limit = opts.timeout and opts.timeout + 5 or (opts.follow and FOREVER or DEFAULT_TIMEOUT)
      local stream = http.open(request(self, "GET", url, {headers = {Accept = "text/plain, */*"}, timeout = limit}))
      local _ <close> = setmetatable({}, {__close = function() pcall(stream.close, stream) end})
      if stream.status ~= 200 then error(self._stream_error(stream, "GET " .. r.path .. "/log"), 0) end
      each_line(stream, fn)
    end
    if not opts.timeout then return follow() end
    local deadline = task.now() + opts.timeout
    local ok, err = pcall(task.timeout, opts.timeout, follow)
    if ok then return nil end
    if errors.is(err, "timeout") and task.now() >= deadline - 0.001 then
      error(errors.new{code = "timeout", pod = r.name,
                       message = ("logs of pod %s: no end after %gs"):format(r.name, opts.timeout)}, 0)
    end
    error(err, 0)
  end

  ---One request through the API server's service proxy:
  ---/api/v1/namespaces/NS/services/[https:]NAME[:PORT]/proxy/PATH. Returns
  ---the answer whatever its status (the service's or the API server's own).
  ---@param service string|table "name", "service/name", "svc/name" or a Service object
  ---@param opts? kube.ProxyOpts
  ---@return http.Response
  function Client:proxy(service, opts)
    opts = opts or {}
    if not is_table(opts) then error("kube proxy: opts must be a table", 2) end
    local name, ns
    if type(service) == "string" then
      local kind, rest = service:match("^([^/]+)/(.+)$")
      if kind and not SERVICE_TYPES[kind:lower()] then
        error(("kube proxy: %s is not a Service (use \"name\" or \"svc/name\")"):format(service), 2)
      end
      name = rest or service
    elseif is_table(service) then
      local md = is_table(service.metadata) and service.metadata or service
      name, ns = md.name, md.namespace
    end
    if type(name) ~= "string" or name == "" then error("kube proxy: service must name a Service", 2) end
    ns = opts.namespace or ns or self.namespace
    local scheme = opts.scheme
    if scheme ~= nil and scheme ~= "http" and scheme ~= "https" then
      error("kube proxy: scheme must be \"http\" or \"https\"", 2)
    end
    local target = (scheme == "https" and "https:" or "") .. name .. (opts.port and ":" .. opts.port or "")
    local path, qs = (opts.path or "/"):match("^([^?]*)%??(.*)$")
    if path:sub(1, 1) ~= "/" then path = "/" .. path end
    local url = self:_url(("/api/v1/namespaces/%s/services/%s/proxy%s"):format(escape(ns), target, path))
    if qs ~= "" then url = url .. "?" .. qs end
    local body = opts.body
    local headers = {}
    for k, v in pairs(opts.headers or {}) do headers[k] = v end
    if type(body) == "table" then
      body = json.encode(body)
      local typed = false
      for k in pairs(headers) do typed = typed or k:lower() == "content-type" end
      if not typed then headers["Content-Type"] = "application/json" end
    end
    local res = http.request(request(self, (opts.method or "GET"):upper(), url,
                                     {headers = headers, body = body, timeout = opts.timeout, retries = opts.retries}))
    return {status = res.status, headers = res.headers, body = res.body}
  end
end
