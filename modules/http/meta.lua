---@meta http
-- HTTP on libcurl over the host loop: calls suspend the calling task, so
-- scripts read as blocking code while task.map fans out. Keep-alive
-- connections are reused per host; proxies come from http_proxy,
-- https_proxy and no_proxy unless a request names its own. http.open
-- streams a response (watches, log follows) with flow control.

---@class http.Request
---@field url string
---@field method? string default "GET"
---@field headers? table<string, string>
---@field body? string
---@field timeout? number whole-request seconds (default 60); for http.open, the whole stream's
---@field connect_timeout? number seconds (default 10)
---@field idle_timeout? number fail with code "timeout" once less than a byte a second has arrived for this many (whole) seconds; off by default
---@field retries? integer|false retries after the first attempt (default 2 for GET, HEAD, PUT, DELETE, OPTIONS; 0 otherwise)
---@field max_body? integer response body cap in bytes (default 64 MiB)
---@field ca_file? string PEM bundle to verify the server with
---@field ca_data? string PEM certificates to verify the server with
---@field cert_data? string PEM client certificate
---@field key_data? string PEM client key
---@field insecure? boolean skip TLS verification
---@field resolve? string[] "host:port:address" entries (curl --resolve): a URL naming host:port connects to address, while TLS still checks host (kubeconfig tls-server-name). Entries stay in the run's DNS cache
---@field connect_to? string[] "host:port:connect-host:connect-port" entries (curl --connect-to): connect elsewhere while TLS still checks the URL's host
---@field proxy? string proxy URL (http://, https://, socks5://) for this request, used even for hosts no_proxy names; "" means none. Default: http_proxy, https_proxy, no_proxy

---@class http.Stream
---@field status integer
---@field headers table<string, string> lower-case names; repeated headers joined with ", "
---@field buffered integer body bytes received and not yet read: at most 1 MiB plus one 16 KiB piece, then the transfer waits for read()
local Stream = {}

---The body bytes received since the last read, suspending the task until
---there are some; nil at the end of the body, and when another task closes
---the stream during the wait. Raises the transfer's error object (again on
---every later read); raises when the stream was closed before the call.
---@return string?
function Stream:read() end

---Aborts the transfer (its connection is closed) and frees the stream.
---Idempotent; `<close>` and garbage collection do the same.
function Stream:close() end

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

---Starts a request and returns once the response headers are in, as a
---stream whose body is read in pieces. Never retried (any status is
---returned); `retries` and `max_body` do not apply. Speaks HTTP/1.1, one
---connection per stream. Transport failures raise ferry.Error {code,
---message, url, method, retryable}, from open or from a later read.
---@param req http.Request
---@return http.Stream
function http.open(req) end

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

-- ---- WebSocket (websocket.c) ----

---@class http.WebSocketOptions
---@field url string ws://, wss://, http:// or https://
---@field protocols? string[] subprotocols offered, in order of preference, e.g. {"v5.channel.k8s.io", "v4.channel.k8s.io"}
---@field headers? table<string, string> sent with the upgrade request (Authorization, ...); the handshake's own (Host, Upgrade, Connection, Sec-WebSocket-*) are refused
---@field timeout? number seconds for the whole opening handshake: connect, TLS, upgrade (default 60); messages have no deadline of their own, use task.timeout
---@field connect_timeout? number seconds (default 10)
---@field max_message? integer largest message received or sent, in bytes (default 64 MiB)
---@field ping_interval? number|false while a task waits in receive, send a ping after this many quiet seconds, so proxies and load balancers keep the connection (default 30; false or 0: never)
---@field ca_file? string PEM bundle to verify the server with
---@field ca_data? string PEM certificates to verify the server with
---@field cert_data? string PEM client certificate
---@field key_data? string PEM client key
---@field insecure? boolean skip TLS verification
---@field resolve? string[] "host:port:address" entries, as for http.request
---@field proxy? string proxy URL, tunnelled with CONNECT; default http_proxy, https_proxy, no_proxy

---@class http.WebSocket
---@field protocol string? the subprotocol the server chose (one of those offered), or nil
---@field url string the URL it was opened with
local WebSocket = {}

---Sends one message (unfragmented) and suspends the task until it is
---written to the socket. One task sends at a time. Raises ferry.Error
---"closed" once the connection is closed or closing, "too_large" over
---max_message, "connection" once the connection is lost.
---@param data string
---@param kind? "binary"|"text" default "binary"; text must be UTF-8
function WebSocket:send(data, kind) end

---The next message, suspending the task until one is complete (fragments
---reassembled; pings answered on the way). After the server's close frame
---(which is answered): nil, its close code (1005 when it gave none), its
---reason; again on every later call. A connection lost without a close
---frame gives nil, 1006 and what happened. Raises ferry.Error "too_large"
---for a message over max_message (the server gets close 1009), "protocol"
---when the server breaks the protocol, "closed" after close() (also to a
---task waiting here when another task closes). One task receives at a time.
---@return string? data
---@return "binary"|"text"|integer kind_or_code
---@return string? reason
function WebSocket:receive() end

---Sends a close frame with code (default 1000) if that can be done without
---waiting, then frees the connection. Idempotent; `<close>` does the same
---with 1000; garbage collection frees without sending.
---@param code? integer 1000-1003, 1007-1014 or 3000-4999
function WebSocket:close(code) end

---Opens a WebSocket connection (RFC 6455) over libcurl: TLS, client
---certificates, CA, resolve and proxies as for http.request, HTTP/1.1 only.
---Suspends the task until the server has accepted the upgrade. A refusal
---raises ferry.Error {code = "handshake", status, headers, body (for
---Kubernetes, a Status JSON), url, retryable}; a bad Sec-WebSocket-Accept or
---an unoffered subprotocol raises "handshake" without status; transport
---failures raise as http.request's do ("connect", "tls", "timeout", ...).
---@param opts http.WebSocketOptions
---@return http.WebSocket
function http.websocket(opts) end

return http
