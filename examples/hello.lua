-- hello.lua: a small but real Ferry workflow, run by `make demo` against a
-- loopback HTTP service. It has the shape of the real pipeline: check the
-- service, fan out over many items at once, record something (with an undo
-- action in case a later step fails), verify it, and always tear down.
--
--   ferry run examples/hello.lua -p url=http://127.0.0.1:8080
--   ferry run examples/hello.lua -p url=... -p fail=true   (see the undo run)
local http = require("http")
local json = require("json")
local log = require("log")
local task = require("task")
local workflow = require("workflow")

return workflow.define{
  name = "hello",
  description = "Fan out over a service, record a result, verify it, tear down.",
  params = {
    url = {type = "string", required = true, doc = "base URL of the service"},
    items = {type = "integer", default = 20, doc = "how many items to fetch"},
    limit = {type = "integer", default = 8, doc = "requests in flight at once"},
    fail = {type = "boolean", default = false, doc = "fail the verify step on purpose"},
  },
  steps = {
    {
      name = "check service",
      run = function(ctx)
        local res = http.get(ctx.params.url .. "/echo")
        if res.status ~= 200 then error(("service answered %d"):format(res.status)) end
        return {server = res.headers["server"]}
      end,
    },
    {
      name = "fetch items",
      run = function(ctx)
        local ids = {}
        for i = 1, ctx.params.items do ids[i] = i end
        local t0 = task.now()
        local statuses = task.map(ids, function(id)
          return http.get(("%s/delay?ms=100&item=%d"):format(ctx.params.url, id)).status
        end, {limit = ctx.params.limit})
        local ok = 0
        for _, status in ipairs(statuses) do
          if status == 200 then ok = ok + 1 end
        end
        log.info("%d of %d items in %.2fs, %d at a time", ok, #ids, task.now() - t0, ctx.params.limit)
        return {fetched = ok}
      end,
    },
    {
      name = "record result",
      run = function(ctx)
        local record = {name = "hello-run", fetched = ctx.outputs["fetch items"].fetched}
        local res = http.post(ctx.params.url .. "/json", record)
        local saved = json.decode(res.body).received
        ctx:defer(function()
          http.delete(ctx.params.url .. "/echo?record=" .. saved.name)
          log.info("removed record %s", saved.name)
        end, "remove the record")
        return {record = saved}
      end,
    },
    {
      name = "verify result",
      run = function(ctx)
        local record = ctx.outputs["record result"].record
        if ctx.params.fail then error("verification failed on purpose (-p fail=true)") end
        if record.fetched ~= ctx.params.items then
          error(("fetched %d of %d items"):format(record.fetched, ctx.params.items))
        end
        log.info("record %s verified: %d items", record.name, record.fetched)
      end,
    },
  },
  teardown = function(ctx)
    log.info("teardown: nothing left behind by %s", ctx.workflow)
  end,
}
