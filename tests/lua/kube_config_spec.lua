-- kube_config_spec.lua: how kube.connect reads its configuration and what a
-- client sends: kubeconfig parsing and KUBECONFIG merging, every auth form as
-- the http options it produces (client:_http_options), exec plugins (a fake
-- plugin script in a temporary directory: caching until expiry,
-- KUBERNETES_EXEC_INFO, re-run on a 401), EKS plugins made in-process, the
-- in-cluster service account, and errors naming the file and field. Each case
-- writes its files to a temporary directory and passes its own environment
-- (opts._getenv), so nothing depends on the caller's. The transport cases use
-- the loopback https/mTLS doubles (tests/doubles/httpd.py).
local errors = require("errors")
local json = require("json")
local kube = require("kube")
local log = require("log")
local support = require("support")

local credentials = require("kube.credentials")
local kubeconfig = require("kube.kubeconfig")

local CERTS = os.getenv("FERRY_TEST_CERTS")
local HTTPS = os.getenv("FERRY_TEST_HTTPS")
local KUBE = os.getenv("FERRY_TEST_KUBE")
local MTLS = os.getenv("FERRY_TEST_MTLS")

-- The plugin: counts its runs, records what it was given, prints `output`
-- with @N@ replaced by the run number.
local PLUGIN = [[#!/bin/sh
dir=$(dirname "$0")
n=$(cat "$dir/count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$dir/count"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$dir/info.json"
for a in "$@"; do printf '%s\n' "$a"; done > "$dir/args"
printf '%s' "$PLUGIN_GREETING" > "$dir/greeting"
readlink /proc/$$/fd/0 > "$dir/stdin"
sed "s/@N@/$n/g" "$dir/output"
exit "$(cat "$dir/exit" 2>/dev/null || echo 0)"
]]

local function b64(s) return kubeconfig.base64_encode(s) end

local function utc(epoch) return os.date("!%Y-%m-%dT%H:%M:%SZ", epoch) end

describe("kube config", function()
  local tmp

  before_each(function()
    tmp = support.make_tmpdir()
  end)

  after_each(function()
    support.remove_tree(tmp)
  end)

  -- Writes text to tmp/name (creating directories) and returns the path.
  local function file(name, text)
    local path = tmp .. "/" .. name
    os.execute("mkdir -p " .. support.q(path:match("^(.*)/")))
    support.write(path, text)
    return path
  end

  local function env(vars)
    return function(name) return vars[name] end
  end

  -- A kubeconfig with one context "ci" → cluster "c" → user "u".
  local function config(cluster, user, extra)
    local lines = {"apiVersion: v1", "kind: Config", "current-context: ci", "clusters:", "- name: c", "  cluster:"}
    for _, l in ipairs(cluster) do lines[#lines + 1] = "    " .. l end
    lines[#lines + 1] = "users:"
    lines[#lines + 1] = "- name: u"
    lines[#lines + 1] = "  user:"
    for _, l in ipairs(user or {}) do lines[#lines + 1] = "    " .. l end
    if #(user or {}) == 0 then lines[#lines] = "  user: {}" end
    lines[#lines + 1] = "contexts:"
    lines[#lines + 1] = "- name: ci"
    lines[#lines + 1] = "  context: {cluster: c, user: u" .. (extra or "") .. "}"
    return table.concat(lines, "\n") .. "\n"
  end

  local function connect_text(text, opts)
    opts = opts or {}
    opts.kubeconfig = file("config", text)
    opts._getenv = opts._getenv or env({})
    return kube.connect(opts)
  end

  local function options(cluster, user, extra)
    return connect_text(config(cluster, user, extra)):_http_options()
  end

  -- The kubeconfig error a configuration raises.
  -- Checks that client's token, read from the file name holding tokens[1],
  -- is trusted for 60 seconds, then re-read (tokens[2]), and re-read at once
  -- after a 401 (tokens[3]).
  local function assert_rereads_token(client, name, tokens)
    local now = 1000
    client._auth.now = function() return now end
    local function bearer() return client:_http_options().headers.Authorization end
    assert.equal("Bearer " .. tokens[1], bearer())
    file(name, tokens[2])
    now = now + 59
    assert.equal("Bearer " .. tokens[1], bearer())
    now = now + 1
    assert.equal("Bearer " .. tokens[2], bearer())
    file(name, tokens[3])
    assert.is_true(client:_refresh_auth())
    assert.equal("Bearer " .. tokens[3], bearer())
    assert.is_false(client:_refresh_auth()) -- unchanged: retrying would not help
  end

  local function config_error(text, opts)
    local err = support.raised(connect_text, text, opts)
    assert.is_true(errors.is(err, "kubeconfig"), tostring(err))
    return err
  end

  describe("kubeconfig files", function()
    it("gives the server, CA, namespace and context of the current context", function()
      local client = connect_text(config({"server: https://10.0.0.1:6443/",
                                          "certificate-authority-data: " .. b64("CA PEM")}, {}, ", namespace: staging"))
      local o = client:_http_options()
      assert.equal("https://10.0.0.1:6443", o.url)
      assert.equal("CA PEM", o.ca_data)
      assert.equal("staging", client.namespace)
      assert.is_nil(o.headers.Authorization)
      assert.equal("https://10.0.0.1:6443/api/v1/pods?a=1&b=x%20y&b=z",
                   client:_url("/api/v1/pods", {b = {"x y", "z"}, a = 1, c = false}))
    end)

    it("uses namespace default without one, and kube.connect's namespace over the context's", function()
      assert.equal("default", connect_text(config({"server: https://k:6443"})).namespace)
      local client = connect_text(config({"server: https://k:6443"}, {}, ", namespace: staging"), {namespace = "other"})
      assert.equal("other", client.namespace)
    end)

    it("chooses another context by name", function()
      local text = config({"server: https://one:6443"}) .. [[
- name: two
  context: {cluster: c2, user: u, namespace: ns2}
]]
      text = text:gsub("users:", "- name: c2\n  cluster: {server: 'https://two:6443'}\nusers:")
      local client = connect_text(text, {context = "two"})
      assert.equal("https://two:6443", client:_http_options().url)
      assert.equal("ns2", client.namespace)
    end)

    it("merges KUBECONFIG files: the first to define a name wins it whole, the first current-context wins", function()
      local a = file("a.yaml", [[
current-context: ""
clusters:
- name: shared
  cluster: {server: "https://from-a:6443"}
users:
- name: shared
  user: {token: token-a}
]])
      local b = file("b.yaml", [[
current-context: ctx-b
clusters:
- name: shared
  cluster: {server: "https://from-b:6443", insecure-skip-tls-verify: true}
contexts:
- name: ctx-b
  context: {cluster: shared, user: shared, namespace: from-b}
]])
      local c = file("c.yaml", "current-context: ctx-c\ncontexts:\n- name: ctx-c\n  context: {cluster: shared}\n")
      local client = kube.connect{_getenv = env({KUBECONFIG = table.concat({a, tmp .. "/missing.yaml", b, c}, ":")})}
      local o = client:_http_options()
      assert.equal("https://from-a:6443", o.url)
      assert.is_nil(o.insecure) -- a's cluster entry wins whole: b's fields are not merged in
      assert.equal("Bearer token-a", o.headers.Authorization)
      assert.equal("from-b", client.namespace) -- current-context ctx-b: a's is empty
    end)

    it("reads ~/.kube/config when KUBECONFIG is not set", function()
      file("home/.kube/config", config({"server: https://home:6443"}))
      local client = kube.connect{_getenv = env({HOME = tmp .. "/home"})}
      assert.equal("https://home:6443", client:_http_options().url)
    end)

    it("resolves relative paths against the kubeconfig's directory and keeps the files' bytes", function()
      file("conf/pki/ca.pem", "CA FROM FILE")
      file("conf/pki/client.pem", "CERT FROM FILE")
      file("conf/pki/client.key", "KEY FROM FILE")
      local path = file("conf/kubeconfig", config({"server: https://k:6443", "certificate-authority: pki/ca.pem"},
                                                  {"client-certificate: pki/client.pem",
                                                   "client-key: pki/client.key"}))
      local o = kube.connect{kubeconfig = path, _getenv = env({})}:_http_options()
      assert.equal("CA FROM FILE", o.ca_data)
      assert.equal("CERT FROM FILE", o.cert_data)
      assert.equal("KEY FROM FILE", o.key_data)
    end)

    it("prefers *-data over the file form", function()
      local o = options({"server: https://k:6443", "certificate-authority: /nonexistent/ca.pem",
                         "certificate-authority-data: " .. b64("DATA CA")},
                        {"client-certificate-data: " .. b64("C"), "client-key-data: " .. b64("K")})
      assert.equal("DATA CA", o.ca_data)
      assert.same({"C", "K"}, {o.cert_data, o.key_data})
    end)

    it("sends a static token as a bearer token and masks it in logs", function()
      local o = options({"server: https://k:6443"}, {"token: sekret-token-1234"})
      assert.equal("Bearer sekret-token-1234", o.headers.Authorization)
      assert.is_false(support.contains(log.redact("token sekret-token-1234"), "sekret-token-1234"))
    end)

    it("sends username and password as basic auth", function()
      local o = options({"server: https://k:6443"}, {"username: admin", "password: pa:ss"})
      assert.equal("Basic " .. b64("admin:pa:ss"), o.headers.Authorization)
    end)

    it("passes insecure-skip-tls-verify, proxy-url and impersonation", function()
      local o = options({"server: https://k:6443", "insecure-skip-tls-verify: true",
                         "proxy-url: http://proxy.local:3128"},
                        {"token: t0k3n-abcd", "as: jane", "as-groups: [dev, ops]", "as-uid: '42'",
                         "as-user-extra: {scopes: [read]}"})
      assert.is_true(o.insecure)
      assert.equal("http://proxy.local:3128", o.proxy)
      assert.equal("jane", o.headers["Impersonate-User"])
      assert.equal("dev,ops", o.headers["Impersonate-Group"])
      assert.equal("42", o.headers["Impersonate-Uid"])
      assert.equal("read", o.headers["Impersonate-Extra-scopes"])
    end)

    it("reaches the server's address while verifying tls-server-name", function()
      local o = options({"server: https://10.1.2.3:6443/prefix", "tls-server-name: kubernetes.default.svc"})
      assert.equal("https://kubernetes.default.svc:6443/prefix", o.url)
      assert.same({"kubernetes.default.svc:6443:10.1.2.3"}, o.resolve)
      o = options({"server: https://[::1]", "tls-server-name: api.internal"})
      assert.equal("https://api.internal:443", o.url)
      assert.same({"api.internal:443:[::1]"}, o.resolve)
    end)

    it("reads a token file, again after 60 seconds and after a 401", function()
      file("tok", "first-token-aaaa\n")
      local client = connect_text(config({"server: https://k:6443"}, {"tokenFile: tok"}))
      assert_rereads_token(client, "tok", {"first-token-aaaa", "second-token-bbbb", "third-token-cccc"})
    end)
  end)

  describe("configuration errors", function()
    local function expect(text, field, message, opts)
      local err = config_error(text, opts)
      assert.equal(field, err.field)
      assert.truthy(support.contains(err.message, message), err.message)
      assert.truthy(support.contains(err.message, err.file), err.message)
      return err
    end

    it("names the file that cannot be read", function()
      local err = support.raised(kube.connect, {kubeconfig = tmp .. "/nope", _getenv = env({})})
      assert.is_true(errors.is(err, "kubeconfig"))
      assert.equal(tmp .. "/nope", err.file)
      assert.truthy(support.contains(err.message, "cannot read"), err.message)
    end)

    it("names the file and position of YAML syntax errors", function()
      local err = config_error("clusters: [\n")
      assert.truthy(support.contains(err.message, tmp .. "/config:"), err.message)
    end)

    it("reports a missing current-context, context, cluster or user", function()
      expect(config({"server: https://k:6443"}):gsub("current%-context: ci\n", ""), "current-context", "is not set")
      expect(config({"server: https://k:6443"}), "context", "context \"other\" is not defined (contexts: ci)",
             {context = "other"})
      expect(config({"server: https://k:6443"}):gsub("cluster: c,", "cluster: gone,"),
             "contexts[ci].context.cluster", "cluster \"gone\" is not defined")
      expect(config({"server: https://k:6443"}):gsub("user: u}", "user: ghost}"),
             "contexts[ci].context.user", "user \"ghost\" is not defined")
      expect(config({"insecure-skip-tls-verify: true"}), "clusters[c].cluster.server", "is required")
    end)

    it("reports bad base64 and unreadable certificate files by field", function()
      expect(config({"server: https://k:6443", "certificate-authority-data: not*base64"}),
             "clusters[c].cluster.certificate-authority-data", "not valid base64")
      expect(config({"server: https://k:6443"}, {"client-certificate: missing.pem", "client-key-data: " .. b64("k")}),
             "users[u].user.client-certificate", "cannot read " .. tmp .. "/missing.pem")
      expect(config({"server: https://k:6443"}, {"client-certificate-data: " .. b64("c")}),
             "users[u].user.client-key", "is required with client-certificate")
    end)

    it("refuses auth it cannot use and contradictory settings", function()
      expect(config({"server: https://k:6443"}, {"auth-provider: {name: oidc}"}), "users[u].user.auth-provider",
             "unsupported auth-provider 'oidc'")
      expect(config({"server: https://k:6443"}, {"token: t", "username: u", "password: p"}),
             "users[u].user.username", "more than one authentication method")
      expect(config({"server: https://k:6443", "insecure-skip-tls-verify: true",
                     "certificate-authority-data: " .. b64("x")}),
             "clusters[c].cluster.insecure-skip-tls-verify", "not allowed")
    end)

    it("checks exec plugin settings", function()
      expect(config({"server: https://k:6443"}, {"exec: {command: x}"}), "users[u].user.exec.apiVersion", "is required")
      expect(config({"server: https://k:6443"}, {"exec: {apiVersion: client.authentication.k8s.io/v1}"}),
             "users[u].user.exec.command", "is required")
      expect(config({"server: https://k:6443"}, {"exec: {apiVersion: client.authentication.k8s.io/v1, command: x}"}),
             "users[u].user.exec.interactiveMode", "is required")
      expect(config({"server: https://k:6443"}, {"exec: {apiVersion: client.authentication.k8s.io/v9, command: x}"}),
             "users[u].user.exec.apiVersion", "unsupported")
    end)

    it("says where to look when there is no configuration at all", function()
      local err = support.raised(kube.connect, {_getenv = env({HOME = tmp})})
      assert.is_true(errors.is(err, "kubeconfig"))
      assert.truthy(support.contains(err.message, "set KUBECONFIG"), err.message)
    end)
  end)

  describe("exec plugins", function()
    local dir

    -- A plugin in tmp/bin printing `output`; returns the user lines of a kubeconfig.
    local function plugin(output, exec_extra)
      dir = tmp .. "/bin"
      file("bin/plugin", PLUGIN)
      os.execute("chmod +x " .. support.q(dir .. "/plugin"))
      file("bin/output", output)
      local lines = {"exec:", "  apiVersion: client.authentication.k8s.io/v1", "  command: bin/plugin",
                     "  args: [--flag, \"it's a 'quoted' $HOME arg\"]", "  interactiveMode: Never",
                     "  env: [{name: PLUGIN_GREETING, value: \"hi $(there)\"}]"}
      for _, l in ipairs(exec_extra or {}) do lines[#lines + 1] = "  " .. l end
      return lines
    end

    local function cred(status)
      return json.encode{apiVersion = "client.authentication.k8s.io/v1", kind = "ExecCredential", status = status}
    end

    local function runs() return tonumber(support.read(dir .. "/count")) or 0 end

    it("sends the plugin's token, passing args, env and KUBERNETES_EXEC_INFO without a shell or stdin", function()
      local user = plugin(cred{token = "exec-token-@N@"}, {"provideClusterInfo: true"})
      local client = connect_text(config({"server: https://k:6443", "certificate-authority-data: " .. b64("CA"),
                                          "tls-server-name: kubernetes.default.svc"}, user))
      assert.equal("Bearer exec-token-1", client:_http_options().headers.Authorization)
      assert.same({"--flag", "it's a 'quoted' $HOME arg"}, support.lines(support.read(dir .. "/args")))
      assert.equal("hi $(there)", support.read(dir .. "/greeting"))
      assert.equal("/dev/null", support.read(dir .. "/stdin"):gsub("%s+$", ""))
      local info = json.decode(support.read(dir .. "/info.json"))
      assert.equal("ExecCredential", info.kind)
      assert.equal("client.authentication.k8s.io/v1", info.apiVersion)
      assert.is_false(info.spec.interactive)
      assert.equal("https://k:6443", info.spec.cluster.server)
      assert.equal(b64("CA"), info.spec.cluster["certificate-authority-data"])
      assert.equal("kubernetes.default.svc", info.spec.cluster["tls-server-name"])
    end)

    it("leaves spec.cluster out unless provideClusterInfo", function()
      local client = connect_text(config({"server: https://k:6443"}, plugin(cred{token = "tok-@N@-xyz"})))
      client:_http_options()
      assert.is_nil(json.decode(support.read(dir .. "/info.json")).spec.cluster)
    end)

    it("caches the credential until its expirationTimestamp", function()
      local t0 = os.time()
      local client = connect_text(config({"server: https://k:6443"},
                                         plugin(cred{token = "tok-@N@-abc", expirationTimestamp = utc(t0 + 600)})))
      local now = t0
      client._auth.now = function() return now end
      assert.equal("Bearer tok-1-abc", client:_http_options().headers.Authorization)
      now = t0 + 599
      assert.equal("Bearer tok-1-abc", client:_http_options().headers.Authorization)
      -- another client of the same configuration shares the cache
      local other = kube.connect{kubeconfig = tmp .. "/config", _getenv = env({})}
      other._auth.now = client._auth.now
      assert.equal("Bearer tok-1-abc", other:_http_options().headers.Authorization)
      assert.equal(1, runs())
      now = t0 + 600
      assert.equal("Bearer tok-2-abc", client:_http_options().headers.Authorization)
      assert.equal(2, runs())
    end)

    it("keeps a credential without expirationTimestamp and re-runs the plugin after a 401", function()
      local client = connect_text(config({"server: https://k:6443"}, plugin(cred{token = "tok-@N@-def"})))
      client._auth.now = function() return os.time() + 10 ^ 9 end
      client:_http_options()
      client:_http_options()
      assert.equal(1, runs())
      assert.is_true(client:_refresh_auth())
      assert.equal("Bearer tok-2-def", client:_http_options().headers.Authorization)
    end)

    it("uses a client certificate and key from the plugin", function()
      local client = connect_text(config({"server: https://k:6443"},
                                         plugin(cred{clientCertificateData = "PEM CERT", clientKeyData = "PEM KEY"})))
      local o = client:_http_options()
      assert.same({"PEM CERT", "PEM KEY"}, {o.cert_data, o.key_data})
      assert.is_nil(o.headers.Authorization)
    end)

    it("raises auth errors for failing plugins and bad credentials", function()
      local cases = {
        {cred{token = "x-token-1"}, "1", "exit status 1"},
        {"not json", "0", "no ExecCredential JSON"},
        {json.encode{apiVersion = "client.authentication.k8s.io/v1beta1", kind = "ExecCredential",
                     status = {token = "x"}}, "0", "does not match the configured client.authentication.k8s.io/v1"},
        {cred{clientCertificateData = "only cert"}, "0", "only one of clientCertificateData and clientKeyData"},
        {cred{token = "x-token-2", expirationTimestamp = "tomorrow"}, "0", "is not RFC 3339"},
      }
      for i, c in ipairs(cases) do
        local sub = "case" .. i
        local user = plugin(c[1])
        support.write(dir .. "/exit", c[2])
        local client = connect_text(config({"server: https://" .. sub .. ":6443"}, user))
        local err = support.raised(client._http_options, client)
        assert.is_true(errors.is(err, "auth"), tostring(err))
        assert.truthy(support.contains(err.message, c[3]), err.message)
        support.remove_tree(dir)
      end
    end)

    it("re-runs the plugin once when the server answers 401", function()
      local user = plugin(cred{token = "tok-@N@-ghi"})
      local text = config({"server: " .. HTTPS, "certificate-authority: " .. CERTS .. "/ca.pem"}, user)
      local client = connect_text(text)
      local key = "kube-401-" .. tostring(os.time()) .. math.random(1e6)
      local body = client:_request{path = "/flaky", query = {key = key, fail = 1, code = 401}}
      assert.equal(2, body.attempt)
      assert.equal(2, runs())
      -- a second 401 in the same request is the caller's problem: raised as Unauthorized
      local err = support.raised(client._request, client,
                                 {path = "/flaky", query = {key = key .. "b", fail = 2, code = 401}})
      assert.is_true(errors.is(err, "Unauthorized"), tostring(err))
      assert.equal(401, err.status)
    end)

    it("re-runs the plugin when the Kubernetes double revokes its token", function()
      local admin = kube.connect() -- KUBECONFIG from tests/doubles/start: the double's admin
      local function tokens(body)
        admin:_request{method = "POST", path = "/_ferry/tokens", body = body, retry = false}
      end
      local prefix = ("plugin-%d-%d"):format(os.time(), math.random(1e6))
      tokens{token = prefix .. "-1", user = "plugin-user"}
      tokens{token = prefix .. "-2", user = "plugin-user"}
      local user = plugin(cred{token = prefix .. "-@N@"})
      local client = connect_text(config({"server: " .. KUBE, "certificate-authority: " .. CERTS .. "/ca.pem"}, user))
      assert.equal("default", client:get("namespace/default").metadata.name)
      tokens{expire = prefix .. "-1"}
      assert.equal("default", client:get("namespace/default").metadata.name)
      assert.equal(2, runs())
      tokens{expire = prefix .. "-2"} -- the plugin's next token was never issued: 401 after one re-run
      local err = support.raised(client.get, client, "namespace/default")
      assert.is_true(errors.is(err, "Unauthorized"), tostring(err))
      assert.equal(3, runs())
    end)

    it("makes EKS tokens in-process for aws eks get-token, ferry eks-token and aws-iam-authenticator", function()
      -- the commands do not exist: running one would fail
      local commands = {
        {"/nonexistent/aws", "[eks, get-token, --cluster-name, ferry-test, --region, eu-west-1]"},
        {"/nonexistent/ferry", "[eks-token, --cluster, ferry-test, --region, eu-west-1]"},
        {"/nonexistent/aws-iam-authenticator", "[token, -i, ferry-test]"},
      }
      for _, c in ipairs(commands) do
        local client = connect_text(config({"server: " .. KUBE, "certificate-authority: " .. CERTS .. "/ca.pem"},
                                           {"exec:", "  apiVersion: client.authentication.k8s.io/v1beta1",
                                            "  command: " .. c[1], "  args: " .. c[2],
                                            "  env: [{name: AWS_REGION, value: eu-west-1}]"}))
        local auth = client:_http_options().headers.Authorization
        local token = auth:match("^Bearer k8s%-aws%-v1%.(.+)$")
        assert.truthy(token, auth)
        local url = kubeconfig.base64_decode((token:gsub("-", "+"):gsub("_", "/")) .. ("="):rep(-#token % 4))
        assert.truthy(support.contains(url, "Action=GetCallerIdentity"), url)
        assert.truthy(support.contains(url, "x-k8s-aws-id"), url)
        assert.truthy(support.contains(url, "%2Feu-west-1%2Fsts%2F"), url)
        -- the double has the AWS double verify the token for its cluster "ferry-test", as EKS does
        assert.equal("default", client:get("namespace/default").metadata.name)
      end
    end)

    it("runs an EKS plugin that assumes a role as configured", function()
      plugin(json.encode{apiVersion = "client.authentication.k8s.io/v1beta1", kind = "ExecCredential",
                         status = {token = "role-token-@N@"}})
      os.execute(("mv %s %s"):format(support.q(dir .. "/plugin"), support.q(dir .. "/aws")))
      local client = connect_text(config({"server: https://eks:443"}, {
        "exec:", "  apiVersion: client.authentication.k8s.io/v1beta1", "  command: bin/aws",
        "  args: [eks, get-token, --cluster-name, prod, --role-arn, 'arn:aws:iam::1:role/x']"}))
      assert.equal("Bearer role-token-1", client:_http_options().headers.Authorization)
      assert.equal(1, runs())
    end)

    it("recognises EKS plugins by command and arguments", function()
      local function eks(command, args, envs)
        return credentials.eks_plugin{command = command, args = args, env = envs or {}}
      end
      assert.same({cluster = "prod", region = "us-east-1", profile = "p"},
                  eks("aws", {"--region", "us-east-1", "eks", "get-token", "--cluster-name=prod", "--profile", "p"}))
      assert.same({cluster = "c"}, eks("/usr/local/bin/aws-iam-authenticator", {"token", "--cluster-id", "c"}))
      assert.same({cluster = "c", region = "r"}, eks("ferry", {"eks-token", "--cluster", "c"},
                                                     {{name = "AWS_DEFAULT_REGION", value = "r"}}))
      assert.is_nil(eks("aws", {"eks", "update-kubeconfig", "--name", "c"}))
      assert.is_nil(eks("gke-gcloud-auth-plugin", {}))
    end)
  end)

  describe("in-cluster", function()
    local function sa_env(extra)
      local vars = {KUBERNETES_SERVICE_HOST = "10.96.0.1", KUBERNETES_SERVICE_PORT = "443",
                    FERRY_SERVICEACCOUNT_DIR = tmp .. "/sa"}
      for k, v in pairs(extra or {}) do vars[k] = v end
      return env(vars)
    end

    before_each(function()
      file("sa/token", "sa-token-one\n")
      file("sa/ca.crt", "CLUSTER CA")
      file("sa/namespace", "pipelines\n")
    end)

    it("uses the service account's token, CA and namespace", function()
      local client = kube.connect{in_cluster = true, _getenv = sa_env()}
      local o = client:_http_options()
      assert.equal("https://10.96.0.1:443", o.url)
      assert.equal("CLUSTER CA", o.ca_data)
      assert.equal("Bearer sa-token-one", o.headers.Authorization)
      assert.equal("pipelines", client.namespace)
      assert.equal("ns-from-env", kube.connect{in_cluster = true, _getenv = sa_env({POD_NAMESPACE = "ns-from-env"})}
                   .namespace)
    end)

    it("is the fallback when there is no kubeconfig", function()
      local client = kube.connect{_getenv = sa_env({HOME = tmp .. "/empty-home"})}
      assert.equal("https://10.96.0.1:443", client:_http_options().url)
    end)

    it("re-reads the rotated token after 60 seconds and after a 401", function()
      local client = kube.connect{in_cluster = true, _getenv = sa_env()}
      assert_rereads_token(client, "sa/token", {"sa-token-one", "sa-token-two", "sa-token-three"})
    end)

    it("brackets an IPv6 service host", function()
      local client = kube.connect{in_cluster = true, _getenv = sa_env({KUBERNETES_SERVICE_HOST = "fd00::1"})}
      assert.equal("https://[fd00::1]:443", client:_http_options().url)
    end)

    it("reports a missing token or environment", function()
      os.remove(tmp .. "/sa/token")
      local err = support.raised(kube.connect, {in_cluster = true, _getenv = sa_env()})
      assert.is_true(errors.is(err, "kubeconfig"))
      assert.truthy(support.contains(err.message, tmp .. "/sa/token"), err.message)
      err = support.raised(kube.connect, {in_cluster = true, _getenv = env({})})
      assert.truthy(support.contains(err.message, "KUBERNETES_SERVICE_HOST"), err.message)
    end)
  end)

  describe("transport", function()
    local function https_port() return HTTPS:match(":(%d+)$") end

    it("verifies the server against tls-server-name while connecting to the server's address", function()
      local ca = "certificate-authority: " .. CERTS .. "/ca.pem"
      local client = connect_text(config({"server: https://127.0.0.1:" .. https_port(), ca,
                                          "tls-server-name: localhost"}, {"token: tls-name-token"}))
      local echo = client:_request{path = "/echo"}
      assert.equal("localhost:" .. https_port(), echo.headers.Host or echo.headers.host)
      assert.equal("Bearer tls-name-token", echo.headers.Authorization or echo.headers.authorization)
      client = connect_text(config({"server: https://127.0.0.1:" .. https_port(), ca,
                                    "tls-server-name: wrong.example"}))
      local err = support.raised(client._request, client, {path = "/echo"})
      assert.is_true(errors.is(err, "tls"), tostring(err))
    end)

    it("presents the kubeconfig's client certificate", function()
      local client = connect_text(config({"server: " .. MTLS, "certificate-authority: " .. CERTS .. "/ca.pem"},
                                         {"client-certificate: " .. CERTS .. "/client.pem",
                                          "client-key: " .. CERTS .. "/client.key"}))
      assert.equal("GET", client:_request{path = "/echo"}.method)
      client = connect_text(config({"server: " .. MTLS, "certificate-authority: " .. CERTS .. "/ca.pem"}))
      client.max_retries = 0 -- the refused handshake looks like a dropped connection, which is retried
      assert.is_true(errors.is(support.raised(client._request, client, {path = "/echo"})))
    end)
  end)
end)
