-- exec.lua (module "kube.exec"): client:exec, a command in a pod's container
-- over the WebSocket exec protocol (notes §6.1-6.2), as kubectl ≥ 1.30 runs it.
--
-- The pod is read first, as kubectl does: a completed pod is refused, and
-- without opts.container the container is the one the
-- kubectl.kubernetes.io/default-container annotation names, else the first.
-- argv travels as repeated `command=` parameters, one element each: no shell
-- is involved unless argv starts one.
--
-- Frames are binary, byte 0 the channel: 0 stdin, 1 stdout, 2 stderr,
-- 3 status, 4 resize. v5.channel.k8s.io is offered first, then
-- v4.channel.k8s.io; under v5 the end of stdin is the frame {255, 0}, under v4
-- it cannot be told (the protocol has no half-close), so a command that reads
-- stdin to its end needs v5. Channel 3 carries one Status when the command
-- ends: Success is exit code 0, Failure with reason NonZeroExitCode gives the
-- ExitCode cause, any other Failure raises; a connection that closes with no
-- Status raises too — it is never taken for exit 0 (§9).
local errors = require("errors")
local http = require("http")
local json = require("json")
local task = require("task")

local V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
local STDIN_FRAME = 64 * 1024 -- bytes of stdin per frame
local CONNECT_ATTEMPTS = 3 -- for connections never made, 429 and 503
local DEFAULT_TIMEOUT = 600 -- seconds, when opts.timeout is not given
local CANCELLED = {cancelled = true, timeout = true, interrupted = true}

local function is_table(v) return type(v) == "table" end

local function fail(code, fields, fmt, ...)
  local e = {code = code, message = fmt:format(...)}
  for k, v in pairs(fields or {}) do e[k] = v end
  error(errors.new(e), 0)
end

-- The exit code in a channel-3 Status, or a raise for any other outcome.
local function exit_code(text, out)
  local ok, status = pcall(json.decode, text)
  if not ok or not is_table(status) then
    fail("exec_failed", out, "exec: unreadable status from the server: %s", text:sub(1, 200))
  end
  if status.status == "Success" then return 0 end
  local details = is_table(status.details) and status.details or {}
  if status.reason == "NonZeroExitCode" then
    for _, cause in ipairs(is_table(details.causes) and details.causes or {}) do
      if is_table(cause) and cause.reason == "ExitCode" then
        local n = math.tointeger(tonumber(cause.message))
        if n then return n end
        fail("exec_failed", out, "exec: the exit code %q is not a number", tostring(cause.message))
      end
    end
    fail("exec_failed", out, "exec: %s", tostring(status.message or "non-zero exit code without an ExitCode"))
  end
  local fields = {reason = status.reason, causes = details.causes}
  for k, v in pairs(out) do fields[k] = v end
  fail("exec_failed", fields, "exec: %s", tostring(status.message or status.reason or "the command failed"))
end

-- Collects one stream's bytes up to a cap.
local function collector(name, max)
  local parts, size = {}, 0
  return {
    add = function(data, from)
      local n = #data - from + 1
      if n <= 0 then return end
      size = size + n
      if size > max then
        fail("too_large", nil, "exec: %s passed %d bytes (the cap); redirect it to a file in the pod", name, max)
      end
      parts[#parts + 1] = from == 1 and data or data:sub(from)
    end,
    text = function() return table.concat(parts) end,
  }
end

-- Writes stdin on channel 0 and, under v5, ends it with {255, 0}. Runs in a
-- task of its own beside the receiving one, so a command that writes while
-- it reads never blocks on a full socket. A send that fails because the
-- command has already ended (the server closed) is not an error of exec's:
-- the exit status says what happened.
local function send_stdin(ws, stdin)
  for i = 1, #stdin, STDIN_FRAME do
    ws:send("\0" .. stdin:sub(i, i + STDIN_FRAME - 1), "binary")
  end
  if ws.protocol == V5 then ws:send("\255\0", "binary") end
end

-- Runs the session on an open WebSocket: stdin, then every frame until the
-- server closes. Returns stdout, stderr, exit code.
local function session(ws, stdin, max)
  local sender
  if stdin then
    sender = task.spawn(function() pcall(send_stdin, ws, stdin) end)
  end
  local _ <close> = setmetatable({}, {__close = function() if sender then task.cancel(sender) end end})
  local stdout, stderr = collector("stdout", max), collector("stderr", max)
  local status
  while true do
    local ok, data, kind, reason = pcall(ws.receive, ws)
    if not ok then
      local err = data
      if not errors.is(err) or CANCELLED[err.code] then error(err, 0) end
      fail("exec_failed", {stdout = stdout.text(), stderr = stderr.text(), cause = err},
           "exec: the connection was lost before the command's exit status arrived: %s", tostring(err.message))
    end
    if data == nil then
      local out = {stdout = stdout.text(), stderr = stderr.text(), close_code = kind}
      if status == nil then
        fail("exec_failed", out, "exec: the connection closed before the command's exit status arrived%s",
             kind and (" (close code %s%s)"):format(tostring(kind), reason and reason ~= "" and ": " .. reason or "")
             or "")
      end
      return out.stdout, out.stderr, exit_code(status, out)
    end
    if kind == "binary" and #data > 0 then
      local ch = data:byte(1)
      if ch == 1 then
        stdout.add(data, 2)
      elseif ch == 2 then
        stderr.add(data, 2)
      elseif ch == 3 then
        status = (status or "") .. data:sub(2)
        if #status > max then fail("too_large", nil, "exec: the status passed %d bytes", max) end
      end
    elseif kind == "text" then
      fail("exec_failed", nil, "exec: the server sent a text frame; the exec protocol is binary only")
    end
  end
end

-- Opens the exec WebSocket: a refusal becomes the client's Status-shaped
-- error; a 401 refreshes the credentials once; a connection that was never
-- made, 429 and 503 are tried again a few times.
local function connect(client, url, op)
  local refreshed = false
  for attempt = 1, CONNECT_ATTEMPTS do
    local req = client:_http_options()
    req.url, req.protocols = url, client._exec_protocols
    local ok, ws = pcall(http.websocket, req)
    if ok then return ws end
    local err = ws
    if not errors.is(err) then error(err, 0) end
    if err.status then
      if err.status == 401 and not refreshed and client:_refresh_auth() then
        refreshed = true
      else
        err = client._status_error({status = err.status, headers = err.headers or {}, body = err.body}, op)
        if not (err.retryable and (err.status == 429 or err.status == 503)) or attempt == CONNECT_ATTEMPTS then
          error(err, 0)
        end
        task.sleep(http.backoff(attempt, http.retry_after(err.headers)))
      end
    elseif (err.code == "connect" or err.code == "resolve") and attempt < CONNECT_ATTEMPTS then
      task.sleep(http.backoff(attempt))
    else
      error(err, 0)
    end
  end
end

return function(Client)
  ---Largest stdout or stderr exec collects, in bytes.
  Client._exec_max_output = 64 * 1024 * 1024
  ---Subprotocols offered, most preferred first.
  Client._exec_protocols = {V5, V4}

  ---Runs argv in a container of a pod (over WebSocket, v5 then v4 channel
  ---protocol) and returns its output and exit code. argv is passed as an
  ---array, never through a shell. A non-zero exit is returned, not raised;
  ---a failure to run (no such binary, a completed pod, a lost connection
  ---with no exit status) raises {code = "exec_failed"}; output over 64 MiB
  ---raises {code = "too_large"}; the deadline raises {code = "timeout"}.
  ---@param pod string|table "name", "pod/name", a Pod object or {name, namespace}
  ---@param argv string[]
  ---@param opts? kube.ExecOpts
  ---@return kube.ExecResult
  function Client:exec(pod, argv, opts)
    opts = opts or {}
    if not is_table(opts) then error("kube exec: opts must be a table", 2) end
    if not is_table(argv) or #argv == 0 then error("kube exec: argv must be a non-empty list of strings", 2) end
    for i, a in ipairs(argv) do
      if type(a) ~= "string" then error(("kube exec: argv[%d] must be a string"):format(i), 2) end
    end
    if opts.stdin ~= nil and type(opts.stdin) ~= "string" then error("kube exec: stdin must be a string", 2) end
    local timeout = opts.timeout or DEFAULT_TIMEOUT
    if type(timeout) ~= "number" or timeout <= 0 then error("kube exec: timeout must be a number > 0", 2) end

    local r = self:_resolve_pod(pod, opts.namespace)
    local function run()
      local obj = self:_request{method = "GET", path = r.path}
      local phase = is_table(obj.status) and obj.status.phase
      if phase == "Succeeded" or phase == "Failed" then
        fail("exec_failed", {phase = phase},
             "exec: cannot exec into a container in a completed pod; current phase is %s", phase)
      end
      local container = self._pick_container(obj, opts.container)
      local url = self:_url(r.path .. "/exec", {command = argv, container = container, stdin = opts.stdin and "true",
                                               stdout = "true", stderr = "true", tty = "false"})
      local ws = connect(self, url, "GET " .. r.path .. "/exec")
      local _ <close> = setmetatable({}, {__close = function() pcall(ws.close, ws) end})
      if ws.protocol ~= V5 and ws.protocol ~= V4 then
        fail("exec_failed", nil, "exec: the server chose no channel protocol (%s); v5 or v4.channel.k8s.io is needed",
             tostring(ws.protocol))
      end
      local stdout, stderr, code = session(ws, opts.stdin, self._exec_max_output)
      return {stdout = stdout, stderr = stderr, exit_code = code, container = container}
    end

    local deadline = task.now() + timeout
    local ok, res = pcall(task.timeout, timeout, run)
    if ok then return res end
    if errors.is(res, "timeout") and task.now() >= deadline - 0.001 then
      error(errors.new{code = "timeout", pod = r.name,
                       message = ("exec in pod %s timed out after %gs: %s"):format(r.name, timeout,
                                                                                  table.concat(argv, " "))}, 0)
    end
    error(res, 0)
  end
end
