-- kube_list.lua: Ferry's side of the pod-list benchmark in `make bench`, run
-- as `ferry lua tests/bench/kube_list.lua NAMESPACE COUNT` against the
-- Kubernetes double (KUBECONFIG from tests/doubles/start): every pod of the
-- namespace, all pages (client:list), decoded into Lua tables. Fails unless
-- there are COUNT pods, all Running. Prints one JSON line {"items": n}.
local json = require("json")
local kube = require("kube")

local namespace = assert(arg[1], "usage: kube_list.lua NAMESPACE COUNT")
local count = math.tointeger(tonumber(arg[2]))

local items = kube.connect():list("pods", {namespace = namespace})
local running = 0
for _, pod in ipairs(items) do
  if pod.status.phase == "Running" then running = running + 1 end
end
if running ~= #items or (count and #items ~= count) then
  error(("expected %s Running pods, got %d of which %d Running"):format(count, #items, running))
end
print(json.encode{items = #items})
