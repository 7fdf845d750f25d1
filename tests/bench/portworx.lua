-- portworx.lua: the Portworx snapshot benchmark. Creates 50 volumes through
-- the SDK backend, snapshots them one by one, then all 50 again through
-- task.map with at most 16 in flight, deletes what it made, and prints one
-- JSON line: {"sequential": seconds, "concurrent": seconds}.
--
-- Usage: ferry lua tests/bench/portworx.lua [ENDPOINT]
-- (default PORTWORX_SDK_ENDPOINT, which tests/doubles/start exports for the
-- Portworx double; PORTWORX_AUTH_TOKEN is honoured as by the module).
--
-- The double answers in well under a millisecond, where a real gateway
-- takes tens of milliseconds to cut a snapshot; on a loopback double both
-- runs would only measure Python's lock. So when the double's control
-- endpoint is known (FERRY_TEST_PORTWORX) every SnapshotCreate is delayed by
-- FERRY_BENCH_PX_LATENCY_MS (default 20) with its "slow" fault, for the
-- duration of the run, and the fault is removed afterwards.
local http = require("http")
local json = require("json")
local portworx = require("portworx")
local task = require("task")

local COUNT = 50
local LIMIT = 16
local LATENCY_MS = tonumber(os.getenv("FERRY_BENCH_PX_LATENCY_MS") or "20")
local control = os.getenv("FERRY_TEST_PORTWORX")

local function faults(method, body)
  if not control or control == "" then return end
  local res = http.request{url = control .. "/_ferry/portworx/faults", method = method, retries = 0,
                           body = body and json.encode(body) or nil, headers = {["Content-Type"] = "application/json"}}
  assert(res.status == 200, ("portworx double faults: %d %s"):format(res.status, res.body))
end

local endpoint = ... or os.getenv("PORTWORX_SDK_ENDPOINT")
if not endpoint or endpoint == "" then
  io.stderr:write("usage: ferry lua tests/bench/portworx.lua [ENDPOINT] (or set PORTWORX_SDK_ENDPOINT)\n")
  os.exit(2)
end

local px = portworx.connect{backend = "sdk", endpoint = endpoint}
local run = ("bench-%d-%d"):format(os.time(), math.random(1000, 9999))

local indexes = {}
for i = 1, COUNT do indexes[i] = i end

local volumes = task.map(indexes, function(i)
  return px:create_volume{name = ("%s-vol-%d"):format(run, i), size = "1Gi", labels = {bench = run}}
end, {limit = LIMIT})

local function snap(vol, kind, i)
  local s = px:snapshot{volume = vol, name = ("%s-%s-%d"):format(run, kind, i), labels = {bench = run}}
  assert(s.parent == vol.id, "snapshot of the wrong volume")
  return s
end

if LATENCY_MS > 0 then faults("POST", {kind = "slow", op = "SnapshotCreate", delay_ms = LATENCY_MS, count = -1}) end

local t0 = task.now()
for i, vol in ipairs(volumes) do snap(vol, "seq", i) end
local sequential = task.now() - t0

t0 = task.now()
local snaps = task.map(volumes, function(vol, i) return snap(vol, "con", i) end, {limit = LIMIT})
local concurrent = task.now() - t0
assert(#snaps == COUNT, ("task.map returned %d snapshots, want %d"):format(#snaps, COUNT))
faults("DELETE")

-- clean up: snapshots first, then the volumes (not timed)
task.map(px:snapshots{labels = {bench = run}}, function(s) return px:delete(s) end, {limit = LIMIT})
task.map(volumes, function(v) return px:delete(v, {force = true}) end, {limit = LIMIT})

print(('{"sequential": %.6f, "concurrent": %.6f}'):format(sequential, concurrent))
