-- http_spec.lua: the http module against the loopback doubles
-- (tests/doubles/httpd.py, one HTTP and one HTTPS instance).
local errors = require("errors")
local http = require("http")
local json = require("json")
local support = require("support")
local task = require("task")

local base = assert(os.getenv("FERRY_TEST_HTTP"), "FERRY_TEST_HTTP is not set: run through tests/run")
local tls_base = assert(os.getenv("FERRY_TEST_HTTPS"), "FERRY_TEST_HTTPS is not set: run through tests/run")
local certs = assert(os.getenv("FERRY_TEST_CERTS"), "FERRY_TEST_CERTS is not set: run through tests/run")

-- The PEM file `name` the doubles' certificates were written to.
local function cert(name)
  return assert(support.read(certs .. "/" .. name), "cannot read " .. certs .. "/" .. name)
end

-- The decoded JSON body of a GET to one of the doubles' endpoints.
local function get_json(url)
  local res = http.get(url)
  assert.are.equal(200, res.status, res.body)
  return json.decode(res.body)
end

local function stats() return get_json(base .. "/_stats") end

local function attempts(key) return get_json(base .. "/_attempts?key=" .. key) end

local raised = support.raised -- the error a call raises; fails the spec when it returns

describe("http", function()
  before_each(function()
    assert.are.equal(200, http.post(base .. "/_reset", "").status)
    assert.are.equal(200, http.post(tls_base .. "/_reset", "", {insecure = true}).status)
  end)

  local sends = {
    GET = function(url, opts) return http.get(url, opts) end,
    POST = function(url, opts) return http.post(url, "posted body", opts) end,
    PUT = function(url, opts) return http.put(url, "put body", opts) end,
    DELETE = function(url, opts) return http.delete(url, opts) end,
  }
  local bodies = {GET = "", POST = "posted body", PUT = "put body", DELETE = ""}
  for _, method in ipairs({"GET", "POST", "PUT", "DELETE"}) do
    it(method .. " reaches the server with its path, query, headers and body", function()
      local res = sends[method](base .. "/echo?x=1", {headers = {["X-Ferry-Test"] = "yes " .. method}})
      assert.are.equal(200, res.status)
      local echo = json.decode(res.body)
      assert.are.equal(method, echo.method)
      assert.are.equal("/echo", echo.path)
      assert.are.equal("1", echo.query.x)
      assert.are.equal("yes " .. method, echo.headers["x-ferry-test"])
      assert.are.equal(bodies[method], echo.body)
    end)
  end

  it("returns response headers with lower-case names", function()
    local res = http.get(base .. "/headers?X-Custom-Thing=abc&X-Twice=1&X-Twice=2")
    assert.are.equal(200, res.status)
    assert.are.equal("abc", res.headers["x-custom-thing"])
    assert.is_nil(res.headers["X-Custom-Thing"])
    assert.are.equal("1, 2", res.headers["x-twice"])
    assert.are.equal("2", res.headers["content-length"])
  end)

  it("sends a table body as JSON with a JSON content type", function()
    local res = http.post(base .. "/echo", {name = "vol-1", sizes = {1, 2, 3}})
    local echo = json.decode(res.body)
    assert.are.equal("application/json", echo.headers["content-type"])
    assert.are.same({name = "vol-1", sizes = {1, 2, 3}}, json.decode(echo.body))
    -- a content type the caller gave is kept
    res = http.put(base .. "/echo", {a = 1}, {headers = {["content-type"] = "application/merge-patch+json"}})
    assert.are.equal("application/merge-patch+json", json.decode(res.body).headers["content-type"])
  end)

  it("reuses one connection for 50 sequential requests", function()
    for _ = 1, 50 do assert.are.equal(200, http.get(base .. "/echo").status) end
    local s = stats()
    assert.are.equal(50, s.requests)
    assert.are.equal(1, s.connections)
  end)

  it("runs task.map requests with {limit = 10} exactly 10 at a time over 10 connections", function()
    local urls = {}
    for i = 1, 50 do urls[i] = base .. "/delay?ms=100" end
    local statuses = task.map(urls, function(url) return http.get(url).status end, {limit = 10})
    assert.are.equal(50, #statuses)
    for _, status in ipairs(statuses) do assert.are.equal(200, status) end
    local s = stats()
    assert.are.equal(50, s.requests)
    assert.are.equal(10, s.peak_inflight)
    assert.are.equal(10, s.connections)
  end)

  it("retries a GET that got 503 and returns the success", function()
    local res = http.get(base .. "/flaky?key=get-once&fail=1&code=503")
    assert.are.equal(200, res.status)
    assert.are.equal(2, res.attempts)
    assert.are.equal(2, attempts("get-once").count)
  end)

  it("stops retrying at the limit and returns the last 503", function()
    local res = http.request{url = base .. "/flaky?key=always&fail=100&code=503", retries = 2}
    assert.are.equal(503, res.status)
    assert.are.equal(3, res.attempts)
    assert.are.equal(3, attempts("always").count)
  end)

  it("does not retry a POST unless asked", function()
    local res = http.post(base .. "/flaky?key=post&fail=1&code=503", "x")
    assert.are.equal(503, res.status)
    assert.are.equal(1, res.attempts)
    assert.are.equal(1, attempts("post").count)
  end)

  it("waits as long as Retry-After asks before retrying", function()
    local res = http.get(base .. "/flaky?key=after&fail=1&code=503&retry_after=1")
    assert.are.equal(200, res.status)
    local log = attempts("after")
    assert.are.equal(2, log.count)
    -- the server's own clock: the gap it saw between the two attempts
    assert.is_true(log.times[2] - log.times[1] >= 0.9, ("gap %.3f s"):format(log.times[2] - log.times[1]))
  end)

  it("raises a retryable connect error after retrying a refused connection", function()
    local err = raised(http.get, "http://127.0.0.1:1/") -- GETs are retried twice by default
    assert.is_true(errors.is(err, "connect"), tostring(err))
    assert.is_true(err.retryable)
    assert.are.equal(3, err.attempts)
    assert.are.equal("GET", err.method)
    assert.matches("127.0.0.1:1", err.url, 1, true)
  end)

  it("keeps a presigned URL's signature, session token and a URL password out of its errors", function()
    local aws = require("aws")
    local url = aws.presign({method = "GET", url = "http://127.0.0.1:1/bucket/key"},
                            {service = "s3", region = "us-east-1", expires = 60,
                             credentials = {access_key_id = "AKIDEXAMPLE", secret_access_key = "not-registered-secret",
                                            session_token = "SESSION-TOKEN-NOT-REGISTERED"}})
    local signature = url:match("X%-Amz%-Signature=(%x+)")
    local err = raised(http.get, url, {retries = 0})
    assert.is_true(errors.is(err, "connect"), tostring(err))
    for _, text in ipairs({tostring(err), err.url}) do
      assert.is_nil(text:find(signature, 1, true), text)
      assert.is_nil(text:find("SESSION-TOKEN-NOT-REGISTERED", 1, true), text)
      assert.matches("X-Amz-Signature=****", text, 1, true)
      assert.matches("X-Amz-Credential=AKIDEXAMPLE", text, 1, true) -- not a secret: kept for debugging
    end
    err = raised(http.get, "http://user:hunter2-password@127.0.0.1:1/x", {retries = 0})
    assert.is_nil(tostring(err):find("hunter2-password", 1, true), tostring(err))
    assert.matches("user:****@127.0.0.1:1/x", err.url, 1, true)
  end)

  it("raises a connection error when the server closes without answering", function()
    local err = raised(http.get, base .. "/drop", {retries = 1})
    assert.is_true(errors.is(err, "connection"), tostring(err))
    assert.is_true(err.retryable)
    assert.are.equal(2, err.attempts)
  end)

  -- slow requests go to the HTTPS double, whose counters no spec reads, so a
  -- request still sleeping there cannot disturb the HTTP double's peak_inflight
  it("raises a retryable timeout error for a response slower than timeout", function()
    local err = raised(http.get, tls_base .. "/delay?ms=2000", {insecure = true, timeout = 0.2, retries = 0})
    assert.is_true(errors.is(err, "timeout"), tostring(err))
    assert.is_true(err.retryable)
  end)

  it("abandons a request in flight when its task is cancelled", function()
    local err = raised(task.timeout, 0.1, http.get, tls_base .. "/delay?ms=2000", {insecure = true})
    assert.is_true(errors.is(err, "timeout"), tostring(err))
    assert.matches("deadline exceeded", err.message, 1, true) -- the task's deadline, not curl's
  end)

  it("goes through the proxy named by http_proxy", function()
    -- ferry.invalid cannot resolve: the request only succeeds through the
    -- proxy, which here is the loopback double answering absolute-form requests
    local cmd = support.ferry_command({"-e",
      'io.write(require("http").get("http://ferry.invalid/echo?via=proxy", {retries = 0}).body)'},
      {"http_proxy=" .. base}) .. " 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    local echoed = json.decode(out)
    assert.are.equal("/echo", echoed.path)
    assert.are.equal("proxy", echoed.query.via)
    assert.are.equal("ferry.invalid", echoed.headers.host)
  end)

  it("goes through the proxy given in proxy, even for a host no_proxy names", function()
    -- the environment's proxy is unusable and no_proxy covers every host: only
    -- the request's own proxy field can make this work
    local code = ('local res = require("http").get("http://ferry.invalid/echo?via=field", {retries = 0, proxy = %q})'
      .. " io.write(res.body)"):format(base)
    local cmd = support.ferry_command({"-e", code}, {"http_proxy=http://127.0.0.1:1", "no_proxy=*"}) .. " 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    local echoed = json.decode(out)
    assert.are.equal("field", echoed.query.via)
    assert.are.equal("ferry.invalid", echoed.headers.host)
  end)

  it("connects a made-up host name to the address given in resolve", function()
    local port = assert(base:match(":(%d+)$"))
    local res = http.get(("http://request.ferry.invalid:%s/echo"):format(port),
                         {resolve = {("request.ferry.invalid:%s:127.0.0.1"):format(port)}})
    assert.are.equal(200, res.status)
    assert.are.equal("request.ferry.invalid:" .. port, json.decode(res.body).headers.host)
  end)

  it("connects elsewhere with connect_to while TLS checks the URL's host", function()
    -- the URL names localhost on a port where nothing listens; connect_to sends
    -- the connection to the HTTPS double, whose certificate is for localhost
    local port = assert(tls_base:match(":(%d+)$"))
    local opts = {connect_to = {("localhost:9:127.0.0.1:%s"):format(port)}, ca_data = support.read(certs .. "/ca.pem")}
    local res = http.get("https://localhost:9/echo", opts)
    assert.are.equal(200, res.status)
    assert.matches("^localhost:9$", json.decode(res.body).headers.host)
  end)

  it("refuses a response body over max_body", function()
    local res = http.get(base .. "/bytes?n=1000", {max_body = 1000})
    assert.are.equal(1000, #res.body)
    local err = raised(http.get, base .. "/bytes?n=1001", {max_body = 1000})
    assert.is_true(errors.is(err, "too_large"), tostring(err))
    assert.matches("max_body", err.message, 1, true)
  end)

  it("verifies the server with the CA given as ca_data", function()
    local res = http.get(tls_base .. "/echo", {ca_data = cert("ca.pem")})
    assert.are.equal(200, res.status)
  end)

  it("refuses a server whose CA is not trusted", function()
    local err = raised(http.get, tls_base .. "/echo")
    assert.is_true(errors.is(err, "tls"), tostring(err))
    assert.is_false(err.retryable)
  end)

  it("refuses a server signed by a CA other than ca_data", function()
    local err = raised(http.get, tls_base .. "/echo", {ca_data = cert("other-ca.pem")})
    assert.is_true(errors.is(err, "tls"), tostring(err))
  end)

  it("presents a client certificate from cert_data and key_data", function()
    local mtls = assert(os.getenv("FERRY_TEST_MTLS"), "FERRY_TEST_MTLS is not set: run through tests/run")
    local ca = cert("ca.pem")
    local err = raised(http.get, mtls .. "/echo", {ca_data = ca, retries = 0})
    assert.is_true(errors.is(err), tostring(err)) -- the server refuses a client without one
    local res = http.get(mtls .. "/echo", {ca_data = ca, cert_data = cert("client.pem"),
                                           key_data = cert("client.key")})
    assert.are.equal(200, res.status)
  end)

  it("skips verification with insecure = true", function()
    assert.are.equal(200, http.get(tls_base .. "/echo", {insecure = true}).status)
  end)

  it("reads Retry-After as delta-seconds or an HTTP-date", function()
    assert.are.equal(120, http.retry_after({["retry-after"] = "120"}))
    assert.are.equal(0, http.retry_after({["retry-after"] = "0"}))
    -- Wed, 21 Oct 2015 07:28:00 GMT is 1445412480 s after the epoch
    assert.are.equal(30, http.retry_after({["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT"}, 1445412450))
    assert.are.equal(0, http.retry_after({["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT"}, 1445412490))
    assert.is_nil(http.retry_after({["retry-after"] = "soon"}))
    assert.is_nil(http.retry_after({}))
  end)

  it("rejects header values containing CR or LF before sending anything", function()
    for _, value in ipairs({"a\r\nX-Injected: 1", "a\nb", "a\rb"}) do
      local err = raised(http.get, base .. "/echo", {headers = {["X-Bad"] = value}})
      assert.matches("invalid header", tostring(err), 1, true)
    end
    assert.are.equal(0, stats().requests)
  end)
end)
