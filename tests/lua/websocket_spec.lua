-- websocket_spec.lua: http.websocket against the loopback WebSocket double
-- (tests/doubles/wsd.py, one plain and one TLS instance).
local errors = require("errors")
local http = require("http")
local json = require("json")
local support = require("support")
local task = require("task")

local base = assert(os.getenv("FERRY_TEST_WS"), "FERRY_TEST_WS is not set: run through tests/run")
local tls_base = assert(os.getenv("FERRY_TEST_WSS"), "FERRY_TEST_WSS is not set: run through tests/run")
local http_base = assert(os.getenv("FERRY_TEST_HTTP"), "FERRY_TEST_HTTP is not set: run through tests/run")
local certs = assert(os.getenv("FERRY_TEST_CERTS"), "FERRY_TEST_CERTS is not set: run through tests/run")

local K8S = {"v5.channel.k8s.io", "v4.channel.k8s.io"}

local raised = support.raised -- the error a call raises; fails the spec when it returns

local function cert(name)
  return assert(support.read(certs .. "/" .. name), "cannot read " .. certs .. "/" .. name)
end

-- A connection to the plain double's path, opts added to the request.
local function open(path, opts)
  local req = {url = base .. path}
  for k, v in pairs(opts or {}) do req[k] = v end
  return http.websocket(req)
end

-- A name no other spec uses, for the double's per-connection event log.
local ids = 0
local function new_id()
  ids = ids + 1
  return ("spec-%d-%d"):format(os.time(), ids)
end

-- The events the double logged for connection id (asked over a new connection).
local function events(id)
  local ws <close> = open("/echo")
  ws:send("!events " .. id, "text")
  return json.decode((ws:receive()))
end

-- Waits (with a deadline) until the double has logged `event` for id.
local function saw(id, event)
  return support.wait_for(5, function()
    for _, e in ipairs(events(id)) do
      if e == event then return true end
    end
  end)
end

-- Whether task t got to wait (suspended in receive) within a deadline.
local function suspended(t)
  return support.wait_for(5, function() return task.status(t) == "waiting" end, 0.005) == true
end

-- Every message of an exec session until the server closes: a list of
-- {channel = byte 0, data = the rest}, then the close code.
local function exec_frames(ws)
  local frames = {}
  while true do
    local data, kind = ws:receive()
    if data == nil then return frames, kind end
    assert.are.equal("binary", kind)
    frames[#frames + 1] = {channel = data:byte(1), data = data:sub(2)}
  end
end

describe("http.websocket", function()
  it("negotiates v5.channel.k8s.io when the client offers it first", function()
    local ws <close> = open("/echo", {protocols = K8S})
    assert.are.equal("v5.channel.k8s.io", ws.protocol)
  end)

  it("falls back to v4.channel.k8s.io when the server only knows v4", function()
    local ws <close> = open("/echo?protocols=v4.channel.k8s.io", {protocols = K8S})
    assert.are.equal("v4.channel.k8s.io", ws.protocol)
  end)

  it("has no protocol when none was offered", function()
    local ws <close> = open("/echo")
    assert.is_nil(ws.protocol)
    assert.are.equal(base .. "/echo", ws.url)
  end)

  it("echoes text and binary messages with their kind", function()
    local ws <close> = open("/echo")
    ws:send("héllo wörld", "text")
    assert.are.same({"héllo wörld", "text"}, {ws:receive()})
    local bytes = "\0\1\2\255\254" .. string.rep("\0", 300)
    ws:send(bytes)
    assert.are.same({bytes, "binary"}, {ws:receive()})
    ws:send("", "binary")
    assert.are.same({"", "binary"}, {ws:receive()})
  end)

  it("sends and receives messages of several MiB", function()
    local ws <close> = open("/echo")
    local big = {}
    for i = 1, 5 * 1024 do big[i] = string.char(i % 251) .. string.rep("x", 1023) end
    big = table.concat(big) -- 5 MiB
    ws:send(big)
    local got, kind = ws:receive()
    assert.are.equal("binary", kind)
    assert.are.equal(#big, #got)
    assert.is_true(got == big)
    -- 6 MiB from the server in 1 MB frames, byte i being i % 256
    ws:send("!big 6291456 1000000", "text")
    got = ws:receive()
    assert.are.equal(6291456, #got)
    assert.are.same({0, 1, 255, 0, 255}, {got:byte(1), got:byte(2), got:byte(256), got:byte(257), got:byte(#got)})
  end)

  it("reassembles a fragmented message, answering a ping between its frames", function()
    local ws <close> = open("/echo")
    ws:send("!fragments 5 a message the server sends in five frames", "text")
    assert.are.same({"a message the server sends in five frames", "text"}, {ws:receive()})
  end)

  it("answers the server's ping with a pong carrying its payload", function()
    local id = new_id()
    local ws <close> = open("/echo?id=" .. id)
    ws:send("!ping are you there", "text")
    assert.are.same({"pong are you there", "text"}, {ws:receive()})
    assert.is_true(saw(id, "pong are you there"))
  end)

  it("pings a quiet server every ping_interval while a task waits in receive", function()
    local id = new_id()
    local ws <close> = open("/echo?id=" .. id, {ping_interval = 0.05})
    local err = raised(task.timeout, 0.3, function() return ws:receive() end)
    assert.is_true(errors.is(err, "timeout"), tostring(err))
    assert.is_true(saw(id, "ping"))
    ws:send("after the pings", "text") -- the pongs in between were taken in stride
    assert.are.same({"after the pings", "text"}, {ws:receive()})
  end)

  it("returns nil, the code and the reason once the server closes, and answers its close", function()
    local id = new_id()
    local ws <close> = open("/echo?id=" .. id)
    ws:send("!close 4001 going away now", "text")
    assert.are.same({nil, 4001, "going away now"}, {ws:receive()})
    assert.are.same({nil, 4001, "going away now"}, {ws:receive()}) -- and again
    assert.is_true(saw(id, "close 4001 going away now"), "the client's close reply")
  end)

  it("sends a close frame with the code given to close; closing twice is harmless", function()
    local id = new_id()
    local ws = open("/echo?id=" .. id)
    ws:close(4000)
    ws:close()
    assert.is_true(saw(id, "close 4000"))
    local err = raised(ws.send, ws, "after close")
    assert.is_true(errors.is(err, "closed"), tostring(err))
    err = raised(ws.receive, ws)
    assert.is_true(errors.is(err, "closed"), tostring(err))
  end)

  it("closes with 1000 when a <close> variable goes out of scope", function()
    local id = new_id()
    do
      local ws <close> = open("/echo?id=" .. id)
      ws:send("x", "text")
      ws:receive()
    end
    assert.is_true(saw(id, "close 1000"))
  end)

  it("raises the status, headers and Status body when the server refuses the upgrade", function()
    local err = raised(open, "/status?code=403", {protocols = K8S})
    assert.is_true(errors.is(err, "handshake"), tostring(err))
    assert.are.equal(403, err.status)
    assert.are.equal("application/json", err.headers["content-type"])
    local status = json.decode(err.body)
    assert.are.equal("Forbidden", status.reason)
    assert.are.equal(403, status.code)
    assert.is_false(err.retryable)
    assert.matches("HTTP 403", tostring(err), 1, true)
    -- a chunked body is decoded
    err = raised(open, "/status?code=400&chunked=1")
    assert.are.equal(400, err.status)
    assert.are.equal("BadRequest", json.decode(err.body).reason)
  end)

  it("refuses a 101 whose Sec-WebSocket-Accept does not match the key", function()
    local err = raised(open, "/badaccept")
    assert.is_true(errors.is(err, "handshake"), tostring(err))
    assert.matches("Sec-WebSocket-Accept", err.message, 1, true)
    assert.is_nil(err.status)
  end)

  it("refuses a 101 that chooses a subprotocol the client did not offer", function()
    local err = raised(open, "/badprotocol", {protocols = K8S})
    assert.is_true(errors.is(err, "handshake"), tostring(err))
    assert.matches("not%-offered%.example", err.message)
  end)

  it("connects over TLS, verifying the server with ca_data", function()
    local ws <close> = http.websocket{url = tls_base .. "/echo", protocols = K8S, ca_data = cert("ca.pem")}
    assert.are.equal("v5.channel.k8s.io", ws.protocol)
    ws:send("over tls", "text")
    assert.are.same({"over tls", "text"}, {ws:receive()})
    local big = string.rep("0123456789abcdef", 3 * 65536)
    ws:send(big)
    assert.is_true(ws:receive() == big)
  end)

  it("refuses a TLS server whose CA is not trusted", function()
    local err = raised(http.websocket, {url = tls_base .. "/echo", ca_data = cert("other-ca.pem")})
    assert.is_true(errors.is(err, "tls"), tostring(err))
    assert.is_false(err.retryable)
  end)

  it("sends the caller's headers and the offered protocols with the upgrade request", function()
    local ws <close> = open("/echo", {protocols = K8S, headers = {Authorization = "Bearer abc.def", ["X-Ferry"] = "1"}})
    ws:send("!headers", "text")
    local h = json.decode((ws:receive()))
    assert.are.equal("Bearer abc.def", h.authorization)
    assert.are.equal("1", h["x-ferry"])
    assert.are.equal("v5.channel.k8s.io, v4.channel.k8s.io", h["sec-websocket-protocol"])
    assert.are.equal("13", h["sec-websocket-version"])
    assert.matches("^ferry/", h["user-agent"])
  end)

  it("connects a made-up host name to the address given in resolve", function()
    local port = assert(base:match(":(%d+)$"))
    local ws <close> = http.websocket{url = ("ws://ws.ferry.invalid:%s/echo"):format(port),
                                      resolve = {("ws.ferry.invalid:%s:127.0.0.1"):format(port)}}
    ws:send("!headers", "text")
    assert.are.equal("ws.ferry.invalid:" .. port, json.decode((ws:receive())).host)
  end)

  it("goes through the proxy given in proxy with a CONNECT tunnel", function()
    -- only the proxy (the double itself) resolves names under .ferry.invalid
    local port = assert(base:match(":(%d+)$"))
    local ws <close> = http.websocket{url = ("ws://tunnel.ferry.invalid:%s/echo"):format(port),
                                      proxy = "http://127.0.0.1:" .. port}
    ws:send("through the tunnel", "text")
    assert.are.same({"through the tunnel", "text"}, {ws:receive()})
    -- TLS inside the tunnel, verified end to end
    local wss <close> = http.websocket{url = tls_base .. "/echo", proxy = "http://127.0.0.1:" .. port,
                                       ca_data = cert("ca.pem")}
    wss:send("tls through the tunnel", "text")
    assert.are.same({"tls through the tunnel", "text"}, {wss:receive()})
  end)

  it("lets two connections in two tasks progress concurrently", function()
    -- the double answers !barrier only once both connections have sent it: a
    -- client that ran them one after the other would never get an answer
    local key = new_id()
    local results = task.all({
      function()
        local ws <close> = open("/echo")
        ws:send("!barrier " .. key .. " 2", "text")
        return (ws:receive())
      end,
      function()
        local ws <close> = open("/echo", {protocols = K8S})
        ws:send("!barrier " .. key .. " 2", "text")
        return (ws:receive())
      end,
    })
    assert.are.same({"released " .. key, "released " .. key}, results)
  end)

  it("shares the loop with http transfers in flight", function()
    -- from here on the loop waits in curl_multi_poll, with the sockets as extra fds
    local slow = task.spawn(function() return http.get(http_base .. "/delay?ms=300").status end)
    local ws <close> = open("/echo")
    for i = 1, 20 do
      ws:send("message " .. i, "text")
      assert.are.equal("message " .. i, (ws:receive()))
    end
    assert.are.equal(200, task.wait(slow))
  end)

  it("lets one task send while another waits in receive on the same connection", function()
    local ws <close> = open("/echo")
    local reader = task.spawn(function() return ws:receive() end)
    assert.is_true(suspended(reader), "the reader never waited in receive")
    ws:send("crossing", "text")
    assert.are.equal("crossing", task.wait(reader))
    local second = task.spawn(function() return ws:receive() end)
    assert.is_true(suspended(second), "the second reader never waited in receive")
    assert.matches("another task is receiving", tostring(raised(ws.receive, ws)), 1, true)
    task.cancel(second)
  end)

  it("raises timeout when a task waiting in receive is cancelled, and the connection stays usable", function()
    local ws <close> = open("/echo")
    local err = raised(task.timeout, 0.1, function() return ws:receive() end)
    assert.is_true(errors.is(err, "timeout"), tostring(err))
    ws:send("still here", "text")
    assert.are.same({"still here", "text"}, {ws:receive()})
  end)

  it("wakes a task waiting in receive with closed when another closes the connection", function()
    local ws = open("/echo")
    local reader = task.spawn(function() return ws:receive() end)
    assert.is_true(suspended(reader), "the reader never waited in receive")
    ws:close()
    local err = raised(task.wait, reader)
    assert.is_true(errors.is(err, "closed"), tostring(err))
  end)

  it("raises timeout when the upgrade is not answered within timeout", function()
    local err = raised(http.websocket, {url = http_base:gsub("^http", "ws") .. "/delay?ms=3000", timeout = 0.2})
    assert.is_true(errors.is(err, "timeout"), tostring(err))
  end)

  it("raises a connect error for a port nobody listens on", function()
    local err = raised(http.websocket, {url = "ws://127.0.0.1:1/echo"})
    assert.is_true(errors.is(err, "connect"), tostring(err))
    assert.is_true(err.retryable)
    assert.are.equal("ws://127.0.0.1:1/echo", err.url)
  end)

  it("returns nil and 1006 when the server hangs up without a close frame; sending then raises", function()
    local ws <close> = open("/echo")
    ws:send("!drop", "text")
    local data, code, reason = ws:receive()
    assert.is_nil(data)
    assert.are.equal(1006, code)
    assert.matches("without a close frame", reason, 1, true)
    assert.are.same({nil, 1006, reason}, {ws:receive()}) -- and again
    local err = raised(ws.send, ws, "into the void")
    assert.is_true(errors.is(err, "connection"), tostring(err))
  end)

  it("raises protocol when the server breaks the protocol, closing with 1007 for bad text", function()
    local id = new_id()
    local ws <close> = open("/echo?id=" .. id)
    ws:send("!badtext", "text")
    local err = raised(ws.receive, ws)
    assert.is_true(errors.is(err, "protocol"), tostring(err))
    assert.is_true(saw(id, "close 1007"))
  end)

  it("refuses a message over max_message, telling the server with close 1009", function()
    local id = new_id()
    local ws <close> = open("/echo?id=" .. id, {max_message = 4096})
    ws:send("!big 4096", "text")
    assert.are.equal(4096, #ws:receive())
    ws:send("!big 4097 1000", "text")
    local err = raised(ws.receive, ws)
    assert.is_true(errors.is(err, "too_large"), tostring(err))
    assert.is_true(saw(id, "close 1009"))
    err = raised(ws.send, ws, string.rep("x", 4097))
    assert.is_true(errors.is(err, "too_large"), tostring(err))
  end)

  it("works outside any task, blocking in place", function()
    local co = coroutine.wrap(function()
      local ws <close> = open("/echo")
      ws:send("blocking", "text")
      return ws:receive()
    end)
    assert.are.equal("blocking", co())
  end)

  it("keeps the channel byte of Kubernetes exec frames (v5)", function()
    local ws <close> = open("/exec?command=sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%203",
                            {protocols = K8S})
    assert.are.equal("v5.channel.k8s.io", ws.protocol)
    local frames, code = exec_frames(ws)
    assert.are.equal(1000, code)
    assert.are.same({channel = 1, data = ""}, frames[1]) -- the kubelet's "connected" frame
    assert.are.same({channel = 1, data = "out\n"}, frames[2])
    assert.are.same({channel = 2, data = "err\n"}, frames[3])
    assert.are.equal(3, frames[4].channel)
    local status = json.decode(frames[4].data)
    assert.are.equal("NonZeroExitCode", status.reason)
    assert.are.equal("3", status.details.causes[1].message)
  end)

  it("carries stdin on channel 0 and its end as {255, 0} under v5", function()
    local ws <close> = open("/exec?command=cat&stdin=true", {protocols = K8S})
    ws:send("\0hello ")
    ws:send("\0stdin")
    ws:send("\255\0")
    local frames = exec_frames(ws)
    local out = {}
    for _, f in ipairs(frames) do
      if f.channel == 1 then out[#out + 1] = f.data end
    end
    assert.are.equal("hello stdin", table.concat(out))
    assert.are.same({metadata = {}, status = "Success"}, json.decode(frames[#frames].data))
    assert.are.equal(3, frames[#frames].channel)
  end)

  it("speaks v4 exec when the server only knows v4", function()
    local ws <close> = open("/exec?protocols=v4.channel.k8s.io&command=echo&command=hi", {protocols = K8S})
    assert.are.equal("v4.channel.k8s.io", ws.protocol)
    local frames = exec_frames(ws)
    assert.are.same({channel = 1, data = "hi\n"}, frames[2])
    assert.are.equal("Success", json.decode(frames[3].data).status)
  end)

  it("raises on bad arguments before connecting", function()
    assert.matches("url", tostring(raised(http.websocket, {})))
    assert.matches("scheme", tostring(raised(http.websocket, {url = "ftp://127.0.0.1/"})))
    assert.matches("protocols%[2%]", tostring(raised(http.websocket, {url = base, protocols = {"ok", "no spaces"}})))
    assert.matches("handshake's own",
                   tostring(raised(http.websocket, {url = base .. "/echo", headers = {["Sec-WebSocket-Key"] = "x"}})))
    assert.matches("max_message", tostring(raised(http.websocket, {url = base, max_message = 0})))
    local ws <close> = open("/echo")
    assert.matches("UTF%-8", tostring(raised(ws.send, ws, "\255", "text")))
    assert.matches("invalid option", tostring(raised(ws.send, ws, "x", "utf8")))
    assert.matches("close code", tostring(raised(ws.close, ws, 1005)))
  end)
end)
