-- kubeconfig.lua: where a client connects and how it authenticates, read the
-- way kubectl reads it (client-go tools/clientcmd), as one plain "connection"
-- table the client and kube.credentials work from. Reads files and the
-- environment; makes no network calls and runs no plugins.
--
-- Sources, first match wins: opts.in_cluster; opts.kubeconfig (only that file,
-- or those files, which must exist); KUBECONFIG (a ':'-separated list, merged:
-- the first file to define a cluster, user or context name wins it whole, the
-- first non-empty current-context wins; missing files are skipped); then
-- ~/.kube/config; then in-cluster when KUBERNETES_SERVICE_HOST is set.
-- Relative paths resolve against the directory of the file that named them.
--
-- Every problem with the configuration raises an error object with code
-- "kubeconfig", naming the file and the field:
--   kubeconfig /home/ci/.kube/config: users[ci-bot].user.client-key-data: not valid base64
-- with fields `file` and `field`; the host reports it and exits 2.
local errors = require("errors")
local json = require("json")
local yaml = require("yaml")

local M = {}

M.serviceaccount_dir = "/var/run/secrets/kubernetes.io/serviceaccount"

local EXEC_APIS = {["client.authentication.k8s.io/v1"] = true, ["client.authentication.k8s.io/v1beta1"] = true}
local INTERACTIVE = {Never = true, IfAvailable = true, Always = true}

---------------------------------------------------------------------------
-- Errors and small helpers

local function fail(file, field, fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  local where = field and (field .. ": ") or ""
  error(errors.new{code = "kubeconfig", message = ("kubeconfig %s: %s%s"):format(file, where, msg),
                   file = file, field = field}, 0)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[B64:byte(i)] = i - 1 end

---Standard base64 (padding required, whitespace ignored, as Go's decoder of
---[]byte fields does); nil when s is not base64.
---@param s string
---@return string?
function M.base64_decode(s)
  s = s:gsub("%s", "")
  if #s % 4 ~= 0 or s:find("=[^=]") or s:find("===$") then return nil end
  local out, n = {}, 0
  for i = 1, #s, 4 do
    local a, b, c, d = s:byte(i, i + 3)
    local va, vb = B64_INDEX[a], B64_INDEX[b]
    local vc, vd = B64_INDEX[c], B64_INDEX[d]
    if not va or not vb or (not vc and c ~= 61) or (not vd and d ~= 61) or (c == 61 and d ~= 61) then return nil end
    if (c == 61 or d == 61) and i + 3 < #s then return nil end
    local v = va << 18 | vb << 12 | (vc or 0) << 6 | (vd or 0)
    n = n + 1
    if c == 61 then
      out[n] = string.char(v >> 16)
    elseif d == 61 then
      out[n] = string.char(v >> 16, v >> 8 & 255)
    else
      out[n] = string.char(v >> 16, v >> 8 & 255, v & 255)
    end
  end
  return table.concat(out)
end

---Standard base64 with padding.
---@param s string
---@return string
function M.base64_encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a << 16 | (b or 0) << 8 | (c or 0)
    local q = {}
    for k = 1, 4 do
      local idx = v >> (6 * (4 - k)) & 63
      q[k] = B64:sub(idx + 1, idx + 1)
    end
    if not b then q[3], q[4] = "=", "=" elseif not c then q[4] = "=" end
    out[#out + 1] = table.concat(q)
  end
  return table.concat(out)
end

local function read_file(path)
  local f, why = io.open(path, "rb")
  if not f then return nil, why end
  local s = f:read("a")
  f:close()
  if not s then return nil, path .. ": cannot read" end
  return s
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function is_absolute(path) return path:sub(1, 1) == "/" end

local function join(dir, path)
  if is_absolute(path) then return path end
  if dir == "" or dir == "." then return path end
  return dir .. "/" .. path
end

local function nonempty(v) return v ~= nil and v ~= json.null and v ~= "" end

local function val(v) if v == json.null then return nil end return v end

---------------------------------------------------------------------------
-- Loading and merging files

-- One file, parsed and shape-checked: {file, dir, clusters = {name -> entry},
-- users, contexts, order = {clusters = {names}}, current_context}.
local function load_file(path)
  local text, why = read_file(path)
  if not text then fail(path, nil, "cannot read: %s", why) end
  local ok, docs = pcall(yaml.load, text, {name = path})
  if not ok then fail(path, nil, "%s", tostring(docs):gsub("^yaml%.load: ", "")) end
  local doc = docs[1]
  if doc == nil or doc == json.null then doc = {} end
  if type(doc) ~= "table" then fail(path, nil, "not a kubeconfig (expected a mapping)") end
  local cfg = {file = path, dir = dirname(path), clusters = {}, users = {}, contexts = {}, order = {}}
  local kind = val(doc.kind)
  if kind ~= nil and kind ~= "Config" then fail(path, "kind", "expected Config, got %s", tostring(kind)) end
  for _, section in ipairs({{"clusters", "cluster"}, {"users", "user"}, {"contexts", "context"}}) do
    local key, inner = section[1], section[2]
    local list = val(doc[key])
    cfg.order[key] = {}
    if list ~= nil then
      if type(list) ~= "table" then fail(path, key, "must be a list") end
      for i, item in ipairs(list) do
        local where = ("%s[%d]"):format(key, i - 1)
        if type(item) ~= "table" then fail(path, where, "must be a mapping with name and %s", inner) end
        local name = val(item.name)
        if type(name) ~= "string" or name == "" then fail(path, where .. ".name", "is required") end
        local body = val(item[inner])
        if body == nil then body = {} end
        if type(body) ~= "table" then fail(path, ("%s[%s].%s"):format(key, name, inner), "must be a mapping") end
        if not cfg[key][name] then
          cfg[key][name] = {name = name, body = body, file = path, dir = cfg.dir}
          table.insert(cfg.order[key], name)
        end
      end
    end
  end
  local cc = val(doc["current-context"])
  if cc ~= nil and type(cc) ~= "string" then fail(path, "current-context", "must be a string") end
  cfg.current_context = cc
  return cfg
end

---Merges kubeconfig files as kubectl does: the first file defining a name wins
---it whole; the first non-empty current-context wins. Returns the merged
---{files, clusters, users, contexts, current_context, current_context_file}.
---@param paths string[]
---@return table
function M.merge(paths)
  local merged = {files = {}, clusters = {}, users = {}, contexts = {}}
  for _, path in ipairs(paths) do
    local cfg = load_file(path)
    merged.files[#merged.files + 1] = path
    for _, key in ipairs({"clusters", "users", "contexts"}) do
      for _, name in ipairs(cfg.order[key]) do
        if not merged[key][name] then merged[key][name] = cfg[key][name] end
      end
    end
    if not nonempty(merged.current_context) and nonempty(cfg.current_context) then
      merged.current_context, merged.current_context_file = cfg.current_context, path
    end
  end
  return merged
end

---------------------------------------------------------------------------
-- Building the connection from a context

local function string_field(entry, section, inner, key)
  local v = val(entry.body[key])
  if v ~= nil and type(v) ~= "string" then
    fail(entry.file, ("%s[%s].%s.%s"):format(section, entry.name, inner, key), "must be a string")
  end
  if v == "" then return nil end
  return v
end

-- The bytes of `<key>-data` (base64) or of the file `<key>` (relative to the
-- entry's file); data wins, as in kubectl.
local function data_or_file(entry, section, inner, key)
  local where = ("%s[%s].%s."):format(section, entry.name, inner)
  local data = string_field(entry, section, inner, key .. "-data")
  if data then
    local bytes = M.base64_decode(data)
    if not bytes then fail(entry.file, where .. key .. "-data", "not valid base64") end
    return bytes, data
  end
  local path = string_field(entry, section, inner, key)
  if path then
    local full = join(entry.dir, path)
    local bytes, why = read_file(full)
    if not bytes then fail(entry.file, where .. key, "cannot read %s: %s", full, why) end
    return bytes
  end
end

local function bool_field(entry, section, inner, key)
  local v = val(entry.body[key])
  if v == nil then return false end
  if type(v) ~= "boolean" then
    fail(entry.file, ("%s[%s].%s.%s"):format(section, entry.name, inner, key), "must be true or false")
  end
  return v
end

local function check_known(entry, section, inner, known)
  for k in pairs(entry.body) do
    if not known[k] then
      -- unknown keys are ignored by kubectl too, except auth kinds it would act on
      if k == "auth-provider" then
        local ap = val(entry.body[k])
        local name = type(ap) == "table" and val(ap.name) or "?"
        fail(entry.file, ("%s[%s].%s.auth-provider"):format(section, entry.name, inner),
             "unsupported auth-provider '%s': use an exec plugin (e.g. kubelogin, gke-gcloud-auth-plugin)",
             tostring(name))
      end
    end
  end
end

local function cluster_conn(entry, conn)
  local where = ("clusters[%s].cluster."):format(entry.name)
  local server = string_field(entry, "clusters", "cluster", "server")
  if not server then fail(entry.file, where .. "server", "is required") end
  if not server:match("^https?://[^/]") then
    fail(entry.file, where .. "server", "must be an http(s) URL, got '%s'", server)
  end
  conn.server = server:gsub("/+$", "")
  conn.ca_data, conn.ca_base64 = data_or_file(entry, "clusters", "cluster", "certificate-authority")
  conn.insecure = bool_field(entry, "clusters", "cluster", "insecure-skip-tls-verify")
  if conn.insecure and conn.ca_data then
    fail(entry.file, where .. "insecure-skip-tls-verify",
         "specifying a root certificates file with the insecure flag is not allowed")
  end
  conn.tls_server_name = string_field(entry, "clusters", "cluster", "tls-server-name")
  conn.proxy_url = string_field(entry, "clusters", "cluster", "proxy-url")
  if conn.proxy_url and not conn.proxy_url:match("^%a[%w+.-]*://") then
    fail(entry.file, where .. "proxy-url", "must be a URL (http://, https:// or socks5://), got '%s'", conn.proxy_url)
  end
  local ext_config = json.null
  local exts = val(entry.body.extensions)
  if type(exts) == "table" then
    for _, e in ipairs(exts) do
      if type(e) == "table" and e.name == "client.authentication.k8s.io/exec" then ext_config = e.extension end
    end
  end
  conn.exec_cluster_config = ext_config
end

local function exec_conn(entry, exec)
  local where = ("users[%s].user.exec"):format(entry.name)
  if type(exec) ~= "table" then fail(entry.file, where, "must be a mapping") end
  local api = val(exec.apiVersion)
  if api == nil then fail(entry.file, where .. ".apiVersion", "is required") end
  if not EXEC_APIS[api] then
    fail(entry.file, where .. ".apiVersion",
         "unsupported '%s' (client.authentication.k8s.io/v1 or v1beta1)", tostring(api))
  end
  local command = val(exec.command)
  if type(command) ~= "string" or command == "" then fail(entry.file, where .. ".command", "is required") end
  if command:find("/", 1, true) then command = join(entry.dir, command) end
  local args = {}
  local raw_args = val(exec.args)
  if raw_args ~= nil then
    if type(raw_args) ~= "table" then fail(entry.file, where .. ".args", "must be a list of strings") end
    for i, a in ipairs(raw_args) do
      if type(a) ~= "string" and type(a) ~= "number" then
        fail(entry.file, ("%s.args[%d]"):format(where, i - 1), "must be a string")
      end
      args[i] = tostring(a)
    end
  end
  local env = {}
  local raw_env = val(exec.env)
  if raw_env ~= nil then
    if type(raw_env) ~= "table" then fail(entry.file, where .. ".env", "must be a list of {name, value}") end
    for i, e in ipairs(raw_env) do
      local f = ("%s.env[%d]"):format(where, i - 1)
      if type(e) ~= "table" or type(val(e.name)) ~= "string" then fail(entry.file, f .. ".name", "is required") end
      if not e.name:match("^[%a_][%w_]*$") then fail(entry.file, f .. ".name", "'%s' is not a valid name", e.name) end
      local v = val(e.value)
      if v == nil then v = "" end
      env[#env + 1] = {name = e.name, value = tostring(v)}
    end
  end
  local mode = val(exec.interactiveMode)
  if mode == nil then
    if api == "client.authentication.k8s.io/v1" then
      fail(entry.file, where .. ".interactiveMode", "is required for client.authentication.k8s.io/v1")
    end
    mode = "IfAvailable"
  elseif not INTERACTIVE[mode] then
    fail(entry.file, where .. ".interactiveMode", "must be Never, IfAvailable or Always, got '%s'", tostring(mode))
  end
  return {api_version = api, command = command, args = args, env = env, interactive_mode = mode,
          provide_cluster_info = val(exec.provideClusterInfo) == true, file = entry.file}
end

local USER_KEYS = {
  ["client-certificate"] = true, ["client-certificate-data"] = true, ["client-key"] = true,
  ["client-key-data"] = true, token = true, tokenFile = true, username = true, password = true, exec = true,
  as = true, ["as-uid"] = true, ["as-groups"] = true, ["as-user-extra"] = true, extensions = true,
}

local function user_conn(entry, conn)
  local where = ("users[%s].user."):format(entry.name)
  check_known(entry, "users", "user", USER_KEYS)
  conn.cert_data = data_or_file(entry, "users", "user", "client-certificate")
  conn.key_data = data_or_file(entry, "users", "user", "client-key")
  if conn.cert_data and not conn.key_data then
    fail(entry.file, where .. "client-key", "is required with client-certificate")
  end
  if conn.key_data and not conn.cert_data then
    fail(entry.file, where .. "client-certificate", "is required with client-key")
  end
  conn.token = string_field(entry, "users", "user", "token")
  local token_file = string_field(entry, "users", "user", "tokenFile")
  if token_file then conn.token_file = join(entry.dir, token_file) end
  local username = string_field(entry, "users", "user", "username")
  local password = string_field(entry, "users", "user", "password")
  if (username or password) and (conn.token or conn.token_file) then
    fail(entry.file, where .. "username", "more than one authentication method found: token and basic auth")
  end
  if username or password then
    conn.username, conn.password = username or "", password or ""
  end
  local exec = val(entry.body.exec)
  if exec ~= nil then conn.exec = exec_conn(entry, exec) end
  local imp = {}
  imp.user = string_field(entry, "users", "user", "as")
  imp.uid = string_field(entry, "users", "user", "as-uid")
  local groups = val(entry.body["as-groups"])
  if groups ~= nil then
    if type(groups) ~= "table" then fail(entry.file, where .. "as-groups", "must be a list of strings") end
    imp.groups = {}
    for i, g in ipairs(groups) do imp.groups[i] = tostring(g) end
  end
  local extra = val(entry.body["as-user-extra"])
  if extra ~= nil then
    if type(extra) ~= "table" then fail(entry.file, where .. "as-user-extra", "must be a mapping of lists") end
    imp.extra = {}
    for k, vs in pairs(extra) do
      imp.extra[k] = {}
      for i, v in ipairs(type(vs) == "table" and vs or {vs}) do imp.extra[k][i] = tostring(v) end
    end
  end
  if imp.user or imp.uid or imp.groups or imp.extra then
    if not imp.user and (imp.groups or imp.extra or imp.uid) then
      fail(entry.file, where .. "as", "is required when as-groups, as-uid or as-user-extra is set")
    end
    conn.impersonate = imp
  end
end

---The connection for a context of merged kubeconfig files.
---@param merged table from M.merge
---@param opts {context?: string, namespace?: string}
---@return table conn
function M.from_merged(merged, opts)
  local files = table.concat(merged.files, ":")
  local name = opts.context
  if not nonempty(name) then
    name = merged.current_context
    if not nonempty(name) then
      fail(files, "current-context", "is not set (pass context to kube.connect)")
    end
  end
  local ctx = merged.contexts[name]
  if not ctx then
    local known = {}
    for n in pairs(merged.contexts) do known[#known + 1] = n end
    table.sort(known)
    local file = (not opts.context and merged.current_context_file) or files
    fail(file, opts.context and "context" or "current-context", "context \"%s\" is not defined (contexts: %s)", name,
         #known > 0 and table.concat(known, ", ") or "none")
  end
  local where = ("contexts[%s].context."):format(name)
  local cluster_name = string_field(ctx, "contexts", "context", "cluster")
  if not cluster_name then fail(ctx.file, where .. "cluster", "is required") end
  local cluster = merged.clusters[cluster_name]
  if not cluster then fail(ctx.file, where .. "cluster", "cluster \"%s\" is not defined", cluster_name) end
  local conn = {source = ctx.file, files = merged.files, context = name, cluster_name = cluster_name}
  cluster_conn(cluster, conn)
  local user_name = string_field(ctx, "contexts", "context", "user")
  if user_name then
    local user = merged.users[user_name]
    if not user then fail(ctx.file, where .. "user", "user \"%s\" is not defined", user_name) end
    conn.user_name = user_name
    user_conn(user, conn)
  end
  conn.namespace = opts.namespace or string_field(ctx, "contexts", "context", "namespace") or "default"
  return conn
end

---------------------------------------------------------------------------
-- In-cluster

---The connection of a pod's service account: https://KUBERNETES_SERVICE_HOST:PORT,
---the token file (re-read by kube.credentials), ca.crt and the namespace
---(POD_NAMESPACE, else the namespace file, else "default"). The directory is
---FERRY_SERVICEACCOUNT_DIR when set (for tests), else the standard one.
---@param getenv fun(name: string): string?
---@param opts {namespace?: string}
---@return table conn
function M.in_cluster(getenv, opts)
  local host, port = getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
  if not nonempty(host) or not nonempty(port) then
    fail("in-cluster", "KUBERNETES_SERVICE_HOST", "not running in a cluster: KUBERNETES_SERVICE_HOST and "
         .. "KUBERNETES_SERVICE_PORT must be set")
  end
  local dir = getenv("FERRY_SERVICEACCOUNT_DIR") or M.serviceaccount_dir
  local token_file = dir .. "/token"
  local token, why = read_file(token_file)
  if not token then fail("in-cluster", token_file, "cannot read the service-account token: %s", why) end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  local conn = {source = "in-cluster", context = "in-cluster", server = ("https://%s:%s"):format(host, port),
                token_file = token_file}
  conn.ca_data = read_file(dir .. "/ca.crt")
  if not conn.ca_data then conn.ca_missing = dir .. "/ca.crt" end
  local ns = opts.namespace or getenv("POD_NAMESPACE")
  if not nonempty(ns) then
    local text = read_file(dir .. "/namespace")
    ns = text and text:match("^%s*(.-)%s*$") or nil
  end
  conn.namespace = nonempty(ns) and ns or "default"
  return conn
end

---------------------------------------------------------------------------
-- Choosing the source

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

---The connection kube.connect uses for opts {kubeconfig?, context?,
---namespace?, in_cluster?}, reading the environment through getenv.
---@param opts table
---@param getenv? fun(name: string): string?
---@return table conn
function M.load(opts, getenv)
  getenv = getenv or os.getenv
  if opts.in_cluster then return M.in_cluster(getenv, opts) end
  local paths
  if opts.kubeconfig ~= nil then
    paths = type(opts.kubeconfig) == "table" and opts.kubeconfig or {opts.kubeconfig}
    for _, p in ipairs(paths) do
      if not file_exists(p) then
        local _, why = read_file(p)
        fail(p, nil, "cannot read: %s", why or "not found")
      end
    end
    return M.from_merged(M.merge(paths), opts)
  end
  local list = getenv("KUBECONFIG")
  if nonempty(list) then
    paths = {}
    local seen = {}
    for p in list:gmatch("[^:]+") do
      if not seen[p] and file_exists(p) then paths[#paths + 1] = p end
      seen[p] = true
    end
    if #paths > 0 then return M.from_merged(M.merge(paths), opts) end
    if nonempty(getenv("KUBERNETES_SERVICE_HOST")) then return M.in_cluster(getenv, opts) end
    fail(list, "KUBECONFIG", "none of the listed files exists")
  end
  local home = getenv("HOME")
  local default = nonempty(home) and (home .. "/.kube/config") or nil
  if default and file_exists(default) then return M.from_merged(M.merge({default}), opts) end
  if nonempty(getenv("KUBERNETES_SERVICE_HOST")) then return M.in_cluster(getenv, opts) end
  fail(default or "~/.kube/config", nil, "no configuration: set KUBECONFIG, create ~/.kube/config, "
       .. "or run in a cluster (KUBERNETES_SERVICE_HOST)")
end

return M
