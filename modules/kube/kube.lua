-- kube.lua: the kube module scripts require: kube.connect (a client from a
-- kubeconfig, KUBECONFIG, ~/.kube/config or the pod's service account) and
-- kube.manifests. The client class is kube.client; its operations come from
-- kube.ops and kube.apply, and the streaming extensions (watch, wait, exec,
-- logs) from their own files, each `function(Client)` adding methods, loaded
-- when present in package.preload so each lands on its own.
local client = require("kube.client")
local kubeconfig = require("kube.kubeconfig")
local manifest = require("kube.manifest")

local M = {}

M.Client = client
require("kube.ops")(client)
require("kube.apply")(client)

---The streaming extensions, loaded when embedded.
local EXTENSIONS = {"kube.watch", "kube.wait", "kube.exec", "kube.logs"}
for _, name in ipairs(EXTENSIONS) do
  if package.preload[name] then require(name)(client) end
end

---A client for a cluster. opts: kubeconfig (a path or a list of paths: only
---those), context, namespace, in_cluster (only the service account). Raises
---"kubeconfig" error objects naming the file and field.
function M.connect(opts)
  if opts ~= nil and type(opts) ~= "table" then error("kube.connect: opts must be a table", 2) end
  opts = opts or {}
  for _, key in ipairs({"context", "namespace"}) do
    if opts[key] ~= nil and (type(opts[key]) ~= "string" or opts[key] == "") then
      error(("kube.connect: %s must be a non-empty string"):format(key), 2)
    end
  end
  local k = opts.kubeconfig
  if k ~= nil and type(k) ~= "string" and type(k) ~= "table" then
    error("kube.connect: kubeconfig must be a path or a list of paths", 2)
  end
  -- opts._getenv replaces os.getenv (for specs)
  local conn = kubeconfig.load(opts, opts._getenv)
  return client.new(conn)
end

---The objects of manifests: a file path (.yaml, .yml, .json), YAML text, an
---object table, or a list of those; ${NAME} is replaced from vars.
function M.manifests(source, vars)
  return manifest.load(source, vars)
end

return M
