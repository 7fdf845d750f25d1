-- kube_exec_spec.lua: a pod's I/O against the loopback Kubernetes double —
-- client:exec over WebSocket (exit codes, stdin, large output, v4, failures),
-- client:logs (tail, since, previous, follow) and client:proxy through the
-- service proxy. The double's exec scripts (/_ferry/exec) say what commands
-- print and exit with; its exec call log shows what arrived (argv, container,
-- protocol, stdin).
local errors = require("errors")
local json = require("json")
local ks = require("kube_support")
local support = require("support")
local task = require("task")

local function pod(name, containers, annotations)
  return {apiVersion = "v1", kind = "Pod", metadata = {name = name, labels = {app = name}, annotations = annotations},
          spec = {containers = containers or {{name = "app", image = "registry.example/app:1"}}}}
end

describe("kube pod I/O", function()
  local client, ns

  before_each(function()
    client, ns = ks.setup("exec")
    client:create(pod("p"))
    client:wait("pod/p", "ready", {timeout = 30})
  end)

  local function script(rules) return ks.exec_script(client, {pods = {[ns .. "/p"] = rules}}) end

  -- The exec calls the double recorded for this namespace, oldest first,
  -- once there are at least n (the double records a call after its close).
  local function calls(n)
    local out
    support.wait_for(10, function()
      out = {}
      for _, c in ipairs(ks.exec_script(client, {}).calls) do
        if c.namespace == ns then out[#out + 1] = c end
      end
      return #out >= (n or 1)
    end)
    return out
  end

  local function exec_error(code, ...)
    local err = support.raised(client.exec, client, ...)
    assert.is_true(errors.is(err, code), tostring(err))
    return err
  end

  describe("exec", function()
    it("runs argv and returns stdout with exit code 0", function()
      local res = client:exec("p", {"echo", "hello", "world"})
      assert.same({stdout = "hello world\n", stderr = "", exit_code = 0, container = "app"}, res)
      local c = calls()[1]
      assert.same({"echo", "hello", "world"}, c.command)
      assert.equal("v5.channel.k8s.io", c.protocol)
    end)

    it("returns a non-zero exit code with stderr instead of raising", function()
      local res = client:exec("pod/p", {"sh", "-c", "echo oops >&2; exit 3"})
      assert.equal(3, res.exit_code)
      assert.equal("oops\n", res.stderr)
    end)

    it("passes each argv element as it is, never through a shell", function()
      local argv = {"echo", "two words", "$HOME", "it's", "a;b", "*"}
      local res = client:exec("p", argv)
      assert.equal("two words $HOME it's a;b *\n", res.stdout)
      assert.same(argv, calls()[1].command)
    end)

    it("answers from a scripted command with its output and exit code", function()
      script({{match = {"mongosh", "--eval"}, stdout = '{"ok":1}\n', stderr = "warning: old shell\n", exit = 0},
              {match = {"pxctl"}, stdout = "", stderr = "pxctl: volume not found\n", exit = 1}})
      local res = client:exec("p", {"mongosh", "--eval", "db.runCommand({ping:1})"})
      assert.same({'{"ok":1}\n', "warning: old shell\n", 0}, {res.stdout, res.stderr, res.exit_code})
      res = client:exec("p", {"pxctl", "-j", "volume", "inspect", "v1"})
      assert.same({"pxctl: volume not found\n", 1}, {res.stderr, res.exit_code})
    end)

    it("raises exec_failed when the command cannot run", function()
      local err = exec_error("exec_failed", "p", {"no-such-binary", "--help"})
      assert.truthy(support.contains(err.message, "no-such-binary"), err.message)
      assert.equal("InternalError", err.reason)
    end)

    it("raises exec_failed, never exit 0, when the connection closes without a status", function()
      script({{match = {"backup"}, stdout = "partial output\n", no_status = true}})
      local err = exec_error("exec_failed", "p", {"backup"})
      assert.truthy(support.contains(err.message, "closed before the command's exit status arrived"), err.message)
      assert.equal("partial output\n", err.stdout)

      script({{match = {"crash"}, drop = true}})
      exec_error("exec_failed", "p", {"crash"})
    end)

    it("sends stdin and closes it, so a command reading to its end finishes", function()
      local res = client:exec("p", {"cat"}, {stdin = "line one\nline two\n"})
      assert.equal("line one\nline two\n", res.stdout)
      local c = calls()[1]
      assert.is_true(c.stdin_closed)
      assert.equal(#"line one\nline two\n", c.stdin_bytes)
    end)

    it("streams several MiB of stdin and stdout", function()
      local blob = ("0123456789abcdef"):rep(4 * 65536) .. "end\n" -- 4 MiB
      local res = client:exec("p", {"cat"}, {stdin = blob})
      assert.equal(#blob, #res.stdout)
      assert.equal(blob, res.stdout)
    end)

    it("collects several MiB of output", function()
      script({{match = {"dump"}, stdout_bytes = 8 * 1024 * 1024}})
      local res = client:exec("p", {"dump"})
      assert.equal(8 * 1024 * 1024, #res.stdout)
      assert.equal(("0123456789abcdef"):rep(3) .. "0123456789abcde\n", res.stdout:sub(1, 64))
    end)

    it("refuses output over its cap with a clear error", function()
      script({{match = {"dump"}, stdout_bytes = 2 * 1024 * 1024}})
      client._exec_max_output = 1024 * 1024
      local err = exec_error("too_large", "p", {"dump"})
      assert.truthy(support.contains(err.message, "stdout passed 1048576 bytes"), err.message)
    end)

    it("speaks v4.channel.k8s.io when that is what the server offers", function()
      client._exec_protocols = {"v4.channel.k8s.io"}
      local res = client:exec("p", {"sh", "-c", "echo v4; exit 4"})
      assert.same({"v4\n", 4}, {res.stdout, res.exit_code})
      assert.equal("v4.channel.k8s.io", calls()[1].protocol)
      res = client:exec("p", {"cat"}, {stdin = "under v4\n"}) -- no stdin close in v4: the server stops waiting
      assert.equal("under v4\n", res.stdout)
    end)

    it("uses the default-container annotation, else the first container, else the one asked for", function()
      local two = {{name = "sidecar", image = "registry.example/proxy:1"}, {name = "db", image = "mongo:7"}}
      client:create(pod("annotated", two, {["kubectl.kubernetes.io/default-container"] = "db"}))
      client:create(pod("plain", two))
      client:wait("pod/annotated", "ready", {timeout = 30})
      client:wait("pod/plain", "ready", {timeout = 30})
      assert.equal("db", client:exec("annotated", {"true"}).container)
      assert.equal("sidecar", client:exec("plain", {"true"}).container)
      assert.equal("db", client:exec("plain", {"true"}, {container = "db"}).container)
      local containers = {}
      for _, c in ipairs(calls(3)) do containers[#containers + 1] = c.pod .. ":" .. c.container end
      assert.same({"annotated:db", "plain:sidecar", "plain:db"}, containers)
    end)

    it("takes the pod as a name, a pod/name, an object or {name, namespace}", function()
      local obj = client:get("pod/p")
      for _, ref in ipairs({"p", "pod/p", "pods/p", obj, {name = "p", namespace = ns}}) do
        assert.equal(0, client:exec(ref, {"true"}).exit_code)
      end
    end)

    it("refuses a completed pod as kubectl does", function()
      ks.controllers(client, {paused = true})
      local done = pod("done")
      done.metadata.namespace = ns
      done.status = {phase = "Succeeded"}
      ks.control(client, "POST", "seed", {objects = {done}})
      local err = exec_error("exec_failed", "done", {"true"})
      assert.truthy(support.contains(err.message,
                                     "cannot exec into a container in a completed pod; current phase is Succeeded"))
    end)

    it("raises the API server's Status when the upgrade is refused", function()
      local err = exec_error("BadRequest", "p", {"true"}, {container = "nope"})
      assert.equal(400, err.status)
      err = exec_error("NotFound", "ghost", {"true"})
      assert.equal(404, err.status)
    end)

    it("re-reads a rotated token file after a 401 on the upgrade", function()
      local dir = support.make_tmpdir()
      local old, new = ks.issue_token(client), ks.issue_token(client)
      local rotating, token_path = ks.client_with_token_file(client, dir, old, ns)
      assert.equal(0, rotating:exec("p", {"true"}).exit_code)
      ks.fault(client, {verb = "create", resource = "pods/exec", namespace = ns, kind = "expire_token"})
      support.write(token_path, new)
      local res = rotating:exec("p", {"echo", "again"})
      support.remove_tree(dir)
      assert.equal("again\n", res.stdout)
      local upgrades = ks.requests(client, ns, function(x) return x.subresource == "exec" end)
      assert.equal(3, #upgrades) -- the first exec, the refused upgrade, the one after the refresh
      assert.equal(401, upgrades[2].status)
    end)

    it("gives up at its deadline", function()
      script({{match = {"slow"}, delay = 5, stdout = "late\n"}})
      local err = exec_error("timeout", "p", {"slow"}, {timeout = 0.5})
      assert.truthy(support.contains(err.message, "timed out after 0.5s"), err.message)
    end)
  end)

  describe("logs", function()
    local LINES = {"starting", "listening on :27017", "ready"}

    before_each(function()
      ks.exec_script(client, {logs = {{pod = ns .. "/p", lines = LINES, previous = {"crashed: out of memory"}}}})
    end)

    local function log_query()
      local r = ks.requests(client, ns, function(x) return x.subresource == "log" end)
      return ks.query(r[#r])
    end

    it("returns the log as text", function()
      assert.equal(table.concat(LINES, "\n") .. "\n", client:logs("p"))
      assert.equal("app", log_query().container)
    end)

    it("returns only the last lines with tail", function()
      assert.equal("listening on :27017\nready\n", client:logs("pod/p", {tail = 2}))
      assert.equal("2", log_query().tailLines)
    end)

    it("passes since as sinceSeconds or sinceTime", function()
      assert.equal(table.concat(LINES, "\n") .. "\n", client:logs("p", {since = 3600}))
      assert.equal("3600", log_query().sinceSeconds)
      assert.equal("", client:logs("p", {since = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600)}))
      assert.is_string(log_query().sinceTime)
    end)

    it("reads the previous container's log and prefixes timestamps", function()
      assert.equal("crashed: out of memory\n", client:logs("p", {previous = true}))
      local stamped = client:logs("p", {timestamps = true, tail = 1})
      assert.truthy(stamped:match("^%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z ready\n$"), stamped)
    end)

    it("streams a followed log line by line until it ends", function()
      local got = {}
      local follower = task.spawn(function()
        client:logs("p", {follow = true, timeout = 30}, function(line) got[#got + 1] = line end)
      end)
      assert.truthy(support.wait_for(10, function() return #got == 3 end))
      ks.exec_script(client, {logs = {{pod = ns .. "/p", lines = {"backup done"}, append = true}}})
      assert.truthy(support.wait_for(10, function() return #got == 4 end))
      ks.exec_script(client, {logs = {{pod = ns .. "/p", lines = "", append = true, ["end"] = true}}})
      task.wait(follower)
      assert.same({"starting", "listening on :27017", "ready", "backup done"}, got)
      assert.equal("true", log_query().follow)
    end)

    it("stops following when fn returns true", function()
      local got = {}
      client:logs("p", {follow = true, timeout = 30}, function(line)
        got[#got + 1] = line
        return line == "listening on :27017"
      end)
      assert.same({"starting", "listening on :27017"}, got)
    end)

    it("raises a timeout when a followed log does not end in time", function()
      local err = support.raised(client.logs, client, "p", {follow = true, timeout = 0.5}, function() end)
      assert.is_true(errors.is(err, "timeout"), tostring(err))
    end)

    it("raises the Status of a missing pod", function()
      local err = support.raised(client.logs, client, "ghost")
      assert.is_true(errors.is(err, "NotFound"), tostring(err))
    end)
  end)

  describe("proxy", function()
    before_each(function()
      client:create({apiVersion = "v1", kind = "Service", metadata = {name = "web"},
                     spec = {selector = {app = "p"},
                             ports = {{name = "http", port = 8080}, {name = "https", port = 8443}}}})
    end)

    it("returns the service's answer", function()
      ks.control(client, "POST", "proxy", {services = {[ns .. "/web"] = {path = "/ping", status = 200, body = "pong",
                                                                        headers = {["X-Served-By"] = "web-0"}}}})
      local res = client:proxy("web", {path = "/ping"})
      assert.same({200, "pong", "web-0"}, {res.status, res.body, res.headers["x-served-by"]})
    end)

    it("builds the proxy URL from scheme, name, port and path, and sends method, body and headers", function()
      local res = client:proxy("svc/web", {scheme = "https", port = 8443, method = "POST",
                                           path = "/api/v1/items?limit=5", body = {name = "x"},
                                           headers = {["X-Request-Id"] = "r-1"}, timeout = 10})
      assert.equal(200, res.status)
      local echo = json.decode(res.body)
      assert.same({ns, "web", "8443", "POST", "/api/v1/items"},
                  {echo.namespace, echo.service, tostring(echo.port), echo.method, echo.path})
      assert.truthy(support.contains(json.encode(echo.query), "limit"), json.encode(echo.query))
      assert.same({name = "x"}, json.decode(echo.body))
      local headers = {}
      for k, v in pairs(echo.headers) do headers[k:lower()] = v end
      assert.equal("r-1", headers["x-request-id"])
      assert.equal(("/api/v1/namespaces/%s/services/https:web:8443/proxy/api/v1/items"):format(ns),
                   ks.requests(client, ns, function(r) return r.subresource == "proxy" end)[1].path)
    end)

    it("returns an error status from the service instead of raising", function()
      ks.control(client, "POST", "proxy", {services = {[ns .. "/web"] = {status = 503, body = "draining"}}})
      local res = client:proxy("web", {path = "/health", retries = 0})
      assert.same({503, "draining"}, {res.status, res.body})
    end)
  end)
end)
