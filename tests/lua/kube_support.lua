-- kube_support.lua: what the kube watch, wait and exec specs share — a client
-- on the loopback Kubernetes double (KUBECONFIG, set by tests/run), a fresh
-- namespace per test, the double's control endpoints (/_ferry/...) and its
-- request log. Load it with `require("kube_support")`; it is not a spec.
local json = require("json")
local kube = require("kube")
local kubeconfig = require("kube.kubeconfig")
local support = require("support")

local M = {}

local serial = 0

---A control call to the double (the kubeconfig's user is its admin); the decoded answer.
---@param client kube.Client
---@param method string
---@param name string the part after /_ferry/
---@param body? table
---@return any
function M.control(client, method, name, body)
  return (client:_request{method = method, path = "/_ferry/" .. name, body = body, retry = false})
end

---Resets the double (objects, faults, request log, controllers, exec
---scripts), then returns a client whose default namespace is a new one.
---@param prefix string names the namespace
---@return kube.Client client
---@return string namespace
function M.setup(prefix)
  local client = kube.connect()
  M.control(client, "POST", "reset", {})
  serial = serial + 1
  local ns = ("%s-%d-%d"):format(prefix, os.time() % 100000, serial)
  client:ensure_namespace(ns)
  client.namespace = ns
  return client, ns
end

---A client for client's server, in namespace ns, whose user is a bearer
---token read from a file (kubeconfig tokenFile) holding token; returns it
---and the file's path, which a test may rewrite to rotate the token.
---@param client kube.Client
---@param dir string a directory for the kubeconfig and the token file
---@param token string
---@param ns string
---@return kube.Client
---@return string token_path
function M.client_with_token_file(client, dir, token, ns)
  local conn = client._conn
  local token_path, path = dir .. "/token", dir .. "/token-file.kubeconfig"
  support.write(token_path, token)
  support.write(path, json.encode{
    apiVersion = "v1", kind = "Config", ["current-context"] = "t",
    clusters = {{name = "k", cluster = {server = conn.server, ["tls-server-name"] = conn.tls_server_name,
                                        ["certificate-authority-data"] = kubeconfig.base64_encode(conn.ca_data)}}},
    users = {{name = "t", user = {tokenFile = token_path}}},
    contexts = {{name = "t", context = {cluster = "k", user = "t", namespace = ns}}},
  })
  return kube.connect{kubeconfig = path}, token_path
end

---Mints a bearer token the double accepts (with admin rights).
function M.issue_token(client)
  return M.control(client, "POST", "tokens", {issue = {user = "rotating"}}).issued.token
end

---Adds one fault (control.py's Fault fields).
function M.fault(client, spec) M.control(client, "POST", "faults", spec) end

---Merges settings into the controllers' configuration.
function M.controllers(client, cfg) return M.control(client, "POST", "controllers", cfg) end

---Sets exec scripts, log records or both (streams.configure_exec).
function M.exec_script(client, cfg) return M.control(client, "POST", "exec", cfg) end

---The query string of a logged request as a table (the last value of a repeated name wins).
---@param r table a request log entry
---@return table<string, string>
function M.query(r)
  local out = {}
  local q = r.query
  if type(q) == "table" then return q end
  for k, v in tostring(q or ""):gmatch("([^&=]+)=?([^&]*)") do
    out[k] = v:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return out
end

---The requests the double logged in namespace ns (all namespaces when nil),
---oldest first, keeping those for which keep(r) is true (all when nil).
---@param client kube.Client
---@param ns? string
---@param keep? fun(r: table): boolean
---@return table[]
function M.requests(client, ns, keep)
  local out = {}
  for _, r in ipairs(client:_request{path = "/_ferry/requests"}.requests) do
    if (ns == nil or r.namespace == ns) and (keep == nil or keep(r)) then out[#out + 1] = r end
  end
  return out
end

---How many requests with this verb ("get", "list", "watch", ...) the double
---logged for resource (e.g. "deployments.apps") in namespace ns.
function M.count(client, ns, resource, verb)
  return #M.requests(client, ns, function(r) return r.resource == resource and r.verb == verb end)
end

return M
