---@meta http
-- HTTP on libcurl over the host loop: calls suspend the calling task, so
-- scripts read as blocking code while task.map fans out. Keep-alive
-- connections are reused per host; proxies come from http_proxy,
-- https_proxy and no_proxy.

---@class http.Request
---@field url string
---@field method? string default "GET"
---@field headers? table<string, string>
---@field body? string
---@field timeout? number whole-request seconds (default 60)
---@field connect_timeout? number seconds (default 10)
---@field retries? integer|false retries after the first attempt (default 2 for GET, HEAD, PUT, DELETE, OPTIONS; 0 otherwise)
---@field max_body? integer response body cap in bytes (default 64 MiB)
---@field ca_file? string PEM bundle to verify the server with
---@field ca_data? string PEM certificates to verify the server with
---@field cert_data? string PEM client certificate
---@field key_data? string PEM client key
---@field insecure? boolean skip TLS verification

---@class http.Response
---@field status integer
---@field headers table<string, string> lower-case names; repeated headers joined with ", "
---@field body string
---@field attempts integer how many attempts it took

local http = {}

---Seconds between retries never exceed this (unless Retry-After asks for more).
http.backoff_cap = 10
---The first retry waits up to this many seconds; each later one up to twice as long.
http.backoff_base = 0.2
---Retries for idempotent methods when the request does not say.
http.default_retries = 2
---The longest Retry-After honoured, in seconds.
http.max_retry_after = 120

---Performs a request, retrying connection errors and 429/502/503/504 with
---full-jitter backoff or the server's Retry-After. Any status is returned;
---transport failures raise ferry.Error {code, message, url, method, retryable, attempts}.
---@param req http.Request
---@return http.Response
function http.request(req) end

---@param url string
---@param opts? http.Request without url
---@return http.Response
function http.get(url, opts) end

---@param url string
---@param body string|table a table is sent as JSON
---@param opts? http.Request without url and body
---@return http.Response
function http.post(url, body, opts) end

---@param url string
---@param body string|table a table is sent as JSON
---@param opts? http.Request without url and body
---@return http.Response
function http.put(url, body, opts) end

---@param url string
---@param opts? http.Request without url
---@return http.Response
function http.delete(url, opts) end

---The wait a Retry-After header asks for (delta-seconds or HTTP-date), or nil.
---@param headers table<string, string>
---@param now? integer epoch seconds (default os.time())
---@return number?
function http.retry_after(headers, now) end

---The wait before retry `attempt`: Retry-After when given (capped), else full jitter.
---@param attempt integer 1-based
---@param after? number seconds from Retry-After
---@return number
function http.backoff(attempt, after) end

return http
