-- kube_rollout.lua: Ferry's side of the rollout-wait benchmark in `make bench`,
-- run as `ferry lua tests/bench/kube_rollout.lua DEPLOYMENT_JSON` against the
-- Kubernetes double (KUBECONFIG from tests/doubles/start): creates the
-- Deployment, waits for its rollout (client:wait, watch-driven), and at once
-- prints one JSON line {"rolled_out": name, "at": task.now()} and flushes it:
-- kube_bench.py times the line's arrival.
local json = require("json")
local kube = require("kube")
local task = require("task")

local client = kube.connect()
local deploy = client:create(json.decode(assert(arg[1], "usage: kube_rollout.lua DEPLOYMENT_JSON")))
client:wait(deploy, "rollout", {timeout = 60})
io.stdout:write(json.encode{rolled_out = deploy.metadata.name, at = task.now()}, "\n")
io.stdout:flush()
