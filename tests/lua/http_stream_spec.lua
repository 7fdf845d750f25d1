-- http_stream_spec.lua: http.open, streamed responses, against the loopback
-- doubles' /stream endpoint (tests/doubles/httpd.py), which logs each stream's
-- progress under a key: how many body bytes the socket took, whether a write
-- is waiting for the client (backpressure) and whether the client closed.
local errors = require("errors")
local http = require("http")
local json = require("json")
local support = require("support")
local task = require("task")

local base = assert(os.getenv("FERRY_TEST_HTTP"), "FERRY_TEST_HTTP is not set: run through tests/run")
local tls_base = assert(os.getenv("FERRY_TEST_HTTPS"), "FERRY_TEST_HTTPS is not set: run through tests/run")
local certs = assert(os.getenv("FERRY_TEST_CERTS"), "FERRY_TEST_CERTS is not set: run through tests/run")

local CAP = 1024 * 1024 -- bytes a stream buffers ahead of read() (stream.c STREAM_CAP)
local CURL_CHUNK = 16384 -- the most curl hands over at once
local raised = support.raised

local function ca() return assert(support.read(certs .. "/ca.pem")) end

-- The double's log of the stream under key: {state, sent, chunks, blocked_for}.
local function stream_log(key, server)
  local res = http.get((server or base) .. "/_streams?key=" .. key, {ca_data = server and ca() or nil})
  assert.are.equal(200, res.status, res.body)
  return json.decode(res.body)
end

-- Waits (up to 10 s) until the double's log for key satisfies cond; returns the log.
local function await_log(key, cond, server)
  local log
  local ok = support.wait_for(10, function()
    log = stream_log(key, server)
    return cond(log)
  end)
  assert.is_truthy(ok, "stream " .. key .. " never got there: " .. json.encode(log))
  return log
end

local function release(key)
  assert.are.equal(200, http.post(base .. "/_release?key=" .. key, "").status)
end

-- n bytes of the doubles' body pattern (byte i is i % 256) from offset.
local PATTERN = {}
for i = 0, 255 do PATTERN[#PATTERN + 1] = string.char(i) end
PATTERN = table.concat(PATTERN)
local function pattern(offset, n)
  local start = offset % 256
  return PATTERN:rep((start + n) // 256 + 1):sub(start + 1, start + n)
end

-- Reads s to its end; returns the body and the largest `buffered` seen.
local function read_all(s)
  local parts, most = {}, 0
  while true do
    most = math.max(most, s.buffered)
    local chunk = s:read()
    if not chunk then break end
    parts[#parts + 1] = chunk
  end
  return table.concat(parts), most
end

-- Reads s to its end, checking every piece against the body pattern from
-- byte `offset` on; returns the bytes read and the largest `buffered` seen.
local function read_pattern(s, offset)
  local got, most = 0, 0
  while true do
    most = math.max(most, s.buffered)
    local chunk = s:read()
    if not chunk then break end
    assert(chunk == pattern(offset + got, #chunk), "the body differs from what the server sent")
    got = got + #chunk
  end
  return got, most
end

-- Splits the body bytes read so far into complete lines; returns them and the rest.
local function split_lines(pending)
  local lines = {}
  for line, rest in pending:gmatch("([^\n]*)\n()") do
    lines[#lines + 1] = line
    pending = pending:sub(rest)
  end
  return lines, pending:match("[^\n]*$")
end

describe("http.open", function()
  before_each(function()
    assert.are.equal(200, http.post(base .. "/_reset", "").status)
    assert.are.equal(200, http.post(tls_base .. "/_reset", "", {ca_data = ca()}).status)
  end)

  it("returns the status and headers before the body has been sent", function()
    local s <close> = http.open{url = base .. "/stream?key=head&hold=1&chunks=3&size=100"}
    assert.are.equal(200, s.status)
    assert.are.equal("chunked", s.headers["transfer-encoding"])
    assert.are.equal("application/octet-stream", s.headers["content-type"])
    assert.is_nil(s.headers["Content-Type"]) -- names are lower-case, as in http.request
    assert.are.equal(0, s.buffered)
    local log = stream_log("head")
    assert.are.equal("holding", log.state)
    assert.are.equal(0, log.sent)
    release("head")
    assert.are.equal(pattern(0, 300), read_all(s))
    assert.is_nil(s:read()) -- the end stays the end
  end)

  it("reassembles the exact body from many chunks", function()
    local s <close> = http.open{url = base .. "/stream?chunks=200&size=1000"}
    local body = read_all(s)
    assert.are.equal(200000, #body)
    assert.is_true(body == pattern(0, 200000), "the body differs from what the server sent")
  end)

  it("reads line-delimited JSON whose lines are cut across chunks", function()
    local s <close> = http.open{url = base .. "/stream?lines=20&split=1&interval_ms=5"}
    assert.are.equal("application/json", s.headers["content-type"])
    local events, pending, reads = {}, "", 0
    while true do
      local chunk = s:read()
      if not chunk then break end
      reads = reads + 1
      local lines
      lines, pending = split_lines(pending .. chunk)
      for _, line in ipairs(lines) do events[#events + 1] = json.decode(line) end
    end
    assert.are.equal("", pending)
    assert.are.equal(20, #events)
    for i, ev in ipairs(events) do
      assert.are.equal("ADDED", ev.type)
      assert.are.equal(i, ev.object.n)
    end
    assert.is_true(reads > 20, "every line arrived in one piece: nothing was cut")
  end)

  it("interleaves two slow streams read by two tasks", function()
    local order = {}
    local function follow(name)
      return function()
        local s <close> = http.open{url = base .. "/stream?lines=5&interval_ms=100&key=" .. name}
        local got = ""
        while true do
          local chunk = s:read()
          if not chunk then break end
          got = got .. chunk
          order[#order + 1] = name
        end
        return select(2, got:gsub("\n", ""))
      end
    end
    local counts = task.all({follow("a"), follow("b")})
    assert.are.same({5, 5}, counts)
    local first, last = {}, {}
    for i, name in ipairs(order) do
      first[name] = first[name] or i
      last[name] = i
    end
    assert.is_true(first.b < last.a and first.a < last.b, "not interleaved: " .. table.concat(order, " "))
  end)

  it("holds a fast server back while the reader is slow, buffering at most its cap", function()
    local total = 64 * 1024 * 1024
    local s <close> = http.open{url = base .. "/stream?key=big&chunks=1024&size=65536", timeout = 120}
    local got = #assert(s:read())
    -- the reader now sleeps; the server must end up blocked in a write
    local log = await_log("big", function(l) return l.blocked_for > 0 end)
    assert.is_true(s.buffered <= CAP + CURL_CHUNK, "buffered " .. s.buffered)
    assert.is_true(log.sent < 16 * 1024 * 1024,
                   ("the server got %d bytes ahead of a reader that stopped"):format(log.sent))
    local rest, most = read_pattern(s, got)
    assert.are.equal(total, got + rest)
    assert.is_true(most <= CAP + CURL_CHUNK, "buffered up to " .. most)
    assert.are.equal("done", stream_log("big").state)
  end)

  it("pauses and resumes a TLS stream without losing bytes", function()
    local total = 64 * 1024 * 1024
    local s <close> = http.open{url = tls_base .. "/stream?key=tls&chunks=1024&size=65536", ca_data = ca(),
                                timeout = 120}
    local first = assert(s:read())
    assert.are.equal(pattern(0, #first), first)
    await_log("tls", function(l) return l.blocked_for > 0 end, tls_base)
    assert.are.equal(total, #first + read_pattern(s, #first))
  end)

  it("aborts the transfer on close() and <close>, and the server sees the connection end", function()
    local s = http.open{url = base .. "/stream?key=closed&chunks=1000&interval_ms=20&size=10"}
    assert.is_string(s:read())
    s:close()
    s:close() -- idempotent
    assert.are.equal(0, s.buffered)
    await_log("closed", function(l) return l.state == "closed" end)
    assert.matches("closed stream", tostring(raised(s.read, s)), 1, true)

    do
      local s2 <close> = http.open{url = base .. "/stream?key=scoped&chunks=1000&interval_ms=20&size=10"}
      assert.is_string(s2:read())
    end
    await_log("scoped", function(l) return l.state == "closed" end)
  end)

  it("aborts a stream nobody references when it is collected", function()
    http.open{url = base .. "/stream?key=dropped&chunks=1000&interval_ms=20&size=10"}
    collectgarbage()
    collectgarbage()
    await_log("dropped", function(l) return l.state == "closed" end)
  end)

  it("raises timeout when task.timeout expires during a read, and drops the connection", function()
    local s -- kept here, not closed: only the cancellation can end the transfer
    local err = raised(task.timeout, 0.2, function()
      s = http.open{url = base .. "/stream?key=stuck&hold=1"}
      return s:read()
    end)
    assert.is_true(errors.is(err, "timeout"), tostring(err))
    assert.matches("deadline exceeded", err.message, 1, true) -- the task's deadline, not curl's
    await_log("stuck", function(l) return l.state == "closed" end)
    assert.matches("closed stream", tostring(raised(s.read, s)), 1, true)
  end)

  it("raises timeout when task.timeout expires before the headers arrive", function()
    local err = raised(task.timeout, 0.1, http.open, {url = tls_base .. "/delay?ms=2000", ca_data = ca()})
    assert.is_true(errors.is(err, "timeout"), tostring(err))
    assert.matches("deadline exceeded", err.message, 1, true)
  end)

  it("raises a connection error when the body is cut off, then again on every read", function()
    local s <close> = http.open{url = base .. "/stream?chunks=10&size=100&interval_ms=5&abort_after=3"}
    local got = ""
    local err = raised(function()
      while true do got = got .. assert(s:read()) end
    end)
    assert.are.equal(pattern(0, 300), got) -- what came before the failure is delivered first
    assert.is_true(errors.is(err, "connection"), tostring(err))
    assert.is_true(err.retryable)
    assert.are.equal("GET", err.method)
    assert.matches("/stream", err.url, 1, true)
    assert.are.equal(err, raised(s.read, s))
  end)

  it("raises transport errors from open as http.request does, without retrying", function()
    local err = raised(http.open, {url = "http://127.0.0.1:1/"})
    assert.is_true(errors.is(err, "connect"), tostring(err))
    local s <close> = http.open{url = base .. "/flaky?key=once&fail=1&code=503"}
    assert.are.equal(503, s.status) -- a status is not an error, and open never retries
    assert.are.same({attempt = 1, error = "injected failure"}, json.decode(read_all(s)))
  end)

  it("ends a stream with code timeout after timeout seconds in all", function()
    local s <close> = http.open{url = base .. "/stream?key=slow&hold=1", timeout = 0.3}
    local err = raised(s.read, s)
    assert.is_true(errors.is(err, "timeout"), tostring(err))
  end)

  it("ends a stream that sends nothing for idle_timeout seconds", function()
    local s <close> = http.open{url = base .. "/stream?key=quiet&hold=1", timeout = 30, idle_timeout = 1}
    local err = raised(s.read, s)
    assert.is_true(errors.is(err, "timeout"), tostring(err))
  end)

  it("does not count the time a slow reader holds the stream paused as idle", function()
    local s <close> = http.open{url = base .. "/stream?key=paused&chunks=1024&size=65536", idle_timeout = 1,
                                timeout = 120}
    local got = #assert(s:read())
    await_log("paused", function(l) return l.blocked_for > 0 end) -- the transfer is paused now
    task.sleep(2.5) -- a reader busy elsewhere for longer than idle_timeout
    got = got + read_pattern(s, got)
    assert.are.equal(64 * 1024 * 1024, got)
  end)

  it("returns nil to a read waiting in one task when another task closes the stream", function()
    local s = http.open{url = base .. "/stream?key=shared&hold=1"}
    local reader = task.spawn(function() return s:read() end)
    assert.truthy(support.wait_for(5, function() return reader:status() == "waiting" end, 0.01),
                  "the reader never waited in read")
    local err = raised(s.read, s) -- one reader at a time
    assert.matches("another task is reading", tostring(err), 1, true)
    s:close()
    assert.is_nil(task.wait(reader))
  end)

  it("connects a made-up host name to the address given in resolve", function()
    local port = assert(base:match(":(%d+)$"))
    local s <close> = http.open{url = ("http://stream.ferry.invalid:%s/stream?lines=2"):format(port),
                                resolve = {("stream.ferry.invalid:%s:127.0.0.1"):format(port)}}
    assert.are.equal(200, s.status)
    assert.are.equal(2, select(2, read_all(s):gsub("\n", "")))
  end)

  it("rejects resolve entries that are not host:port:address", function()
    for _, bad in ipairs({"nohost", "a:b:c", "-a:1:127.0.0.1", "a:80:", "a:80:1.2.3.4\r\nX: y"}) do
      local err = raised(http.open, {url = base .. "/stream", resolve = {bad}})
      assert.matches("field 'resolve' item 1", tostring(err), 1, true)
    end
    assert.matches("field 'resolve' must be a list", tostring(raised(http.open, {url = base, resolve = "x"})), 1, true)
  end)

  it("goes through the proxy given in proxy", function()
    -- ferry.invalid cannot resolve: the stream only flows through the proxy,
    -- which here is the loopback double answering absolute-form requests
    local s <close> = http.open{url = "http://ferry.invalid/stream?key=proxied&lines=3", proxy = base}
    assert.are.equal(200, s.status)
    assert.are.equal(3, select(2, read_all(s):gsub("\n", "")))
    assert.are.equal("done", stream_log("proxied").state)
  end)

  it("checks its arguments", function()
    assert.matches("http.open: expected a table", tostring(raised(http.open, "http://x")), 1, true)
    assert.matches("field 'url' must be a string", tostring(raised(http.open, {})), 1, true)
    assert.matches("must be > 0 seconds", tostring(raised(http.open, {url = base, idle_timeout = 0})), 1, true)
  end)
end)
