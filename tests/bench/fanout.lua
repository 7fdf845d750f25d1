-- fanout.lua: the fan-out benchmark. GETs /delay?ms=100 fifty times one after
-- another, then the same fifty through task.map with all of them in flight,
-- and prints one JSON line: {"sequential": seconds, "concurrent": seconds}.
--
-- Usage: ferry lua tests/bench/fanout.lua http://127.0.0.1:PORT
-- (the server is tests/doubles/httpd.py; tests/bench/bench.py starts it).
local http = require("http")
local task = require("task")

local COUNT = 50
local DELAY_MS = 100

local base = ...
if not base then
  io.stderr:write("usage: ferry lua tests/bench/fanout.lua BASE_URL\n")
  os.exit(2)
end

local urls = {}
for i = 1, COUNT do urls[i] = base .. "/delay?ms=" .. DELAY_MS end

-- One GET; anything but 200 fails the benchmark rather than timing an error.
local function fetch(url)
  local res = http.get(url)
  if res.status ~= 200 then error(("GET %s: status %d"):format(url, res.status)) end
  return res.status
end

local t0 = task.now()
for _, url in ipairs(urls) do fetch(url) end
local sequential = task.now() - t0

t0 = task.now()
local statuses = task.map(urls, fetch, {limit = COUNT})
local concurrent = task.now() - t0
assert(#statuses == COUNT, ("task.map returned %d results, want %d"):format(#statuses, COUNT))

print(('{"sequential": %.6f, "concurrent": %.6f}'):format(sequential, concurrent))
