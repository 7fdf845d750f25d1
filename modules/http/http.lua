-- http.lua: the Lua half of the http module: requests with retries, the
-- response table and the shorthands, over the native `_transfer` (http.c),
-- which performs one attempt on the host loop; and `open`, a streamed
-- response over the native `_open` (stream.c), never retried.
--
-- Retries: opt-in per call (`retries = n`), on by default (2) for GET, HEAD,
-- PUT, DELETE and OPTIONS; on connection errors and on 429, 502, 503, 504;
-- full-jitter exponential backoff, or exactly the server's Retry-After.
local M = ...
local errors = require("errors")
local task = require("task")
local time = require("http.time")

local transfer, open = M._transfer, M._open
M._transfer, M._open = nil, nil

M.default_retries = 2
M.backoff_base = 0.2 -- seconds: the first retry waits up to this long
M.backoff_cap = 10 -- seconds: no computed backoff waits longer
M.max_retry_after = 120 -- seconds: the longest Retry-After honoured

local IDEMPOTENT = {GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true}
local RETRY_STATUS = {[429] = true, [502] = true, [503] = true, [504] = true}
local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
                Nov = 11, Dec = 12}

---Seconds to wait that a Retry-After header asks for (delta-seconds or an
---HTTP-date), or nil when absent or unreadable.
function M.retry_after(headers, now)
  local v = headers and headers["retry-after"]
  if not v then return nil end
  local secs = tonumber(v)
  if secs then return math.max(0, secs) end
  local d, mon, y, hh, mm, ss = v:match("^%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT$")
  if not d or not MONTHS[mon] then return nil end
  local at = time.utc_epoch(tonumber(y), MONTHS[mon], tonumber(d), tonumber(hh), tonumber(mm), tonumber(ss))
  return math.max(0, at - (now or os.time()))
end

---The wait before retry number `attempt` (1-based): Retry-After when the
---server gave one (capped), else full jitter: uniform in [0, min(cap, base*2^(attempt-1))].
function M.backoff(attempt, after)
  if after then return math.min(after, M.max_retry_after) end
  return math.random() * math.min(M.backoff_cap, M.backoff_base * 2 ^ (attempt - 1))
end

local function check_request(req, what)
  what = what or "http.request"
  if type(req) ~= "table" then error(what .. ": expected a table", 3) end
  if type(req.url) ~= "string" then error(what .. ": field 'url' must be a string", 3) end
  local method = req.method or "GET"
  if type(method) ~= "string" then error(what .. ": field 'method' must be a string", 3) end
  local retries = req.retries
  if retries == nil then
    retries = IDEMPOTENT[method:upper()] and M.default_retries or 0
  elseif retries == false then
    retries = 0
  elseif math.type(retries) ~= "integer" or retries < 0 then
    error("http.request: field 'retries' must be an integer >= 0", 3)
  end
  return method:upper(), retries
end

---Performs a request; returns {status, headers, body, attempts}. Non-2xx
---statuses are returned, not raised; transport failures raise error objects
---{code, message, url, method, retryable, attempts}.
function M.request(req)
  local method, retries = check_request(req)
  local attempt_req = setmetatable({method = method}, {__index = req})
  for attempt = 1, retries + 1 do
    local ok, status, headers, body = pcall(transfer, attempt_req)
    local wait
    if ok then
      if not RETRY_STATUS[status] or attempt > retries then
        return {status = status, headers = headers, body = body, attempts = attempt}
      end
      wait = M.backoff(attempt, M.retry_after(headers))
    else
      local err = status
      if not (errors.is(err) and err.retryable) or attempt > retries then
        if errors.is(err) then err.attempts = attempt end
        error(err, 0)
      end
      wait = M.backoff(attempt)
    end
    task.sleep(wait)
  end
end

---Starts a request and returns once the response headers are in: a stream
---with `status`, `headers` and `buffered`, whose read() returns the body as
---it arrives (nil at its end) and whose close() aborts the transfer. Same
---request fields as http.request; no retries (the caller decides), and
---`timeout` bounds the whole stream. Transport failures raise error objects.
function M.open(req)
  local method = check_request(req, "http.open")
  return open(setmetatable({method = method}, {__index = req}))
end

-- A table body is sent as JSON.
local function with_body(method, url, body, opts)
  local req = {}
  for k, v in pairs(opts or {}) do req[k] = v end
  req.method, req.url = method, url
  if type(body) == "table" then
    req.body = require("json").encode(body)
    local headers = {}
    for k, v in pairs(req.headers or {}) do headers[k] = v end
    local has_type = false
    for k in pairs(headers) do has_type = has_type or k:lower() == "content-type" end
    if not has_type then headers["Content-Type"] = "application/json" end
    req.headers = headers
  else
    req.body = body
  end
  return M.request(req)
end

---GET url; opts as for http.request.
function M.get(url, opts) return with_body("GET", url, nil, opts) end

---POST body (a string, or a table sent as JSON) to url.
function M.post(url, body, opts) return with_body("POST", url, body, opts) end

---PUT body (a string, or a table sent as JSON) to url.
function M.put(url, body, opts) return with_body("PUT", url, body, opts) end

---DELETE url.
function M.delete(url, opts) return with_body("DELETE", url, nil, opts) end

return M
