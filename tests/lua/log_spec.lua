-- log_spec.lua: the log module as a user sees it: the lines `ferry -e CODE`
-- writes to stderr (text or JSON, levels, secrets masked, the step from the
-- task context) and what log.excerpt keeps per step.
local json = require("json")

local support = require("support")

local lines = support.lines

-- Runs `ferry -e code` with the log variables cleared, then `env` set;
-- returns its stderr and stdout together (stdout only when stdout_only), and
-- its exit code.
local function run(code, env, stdout_only)
  local env_args = {"-u", "FERRY_LOG_LEVEL", "-u", "FERRY_LOG_FORMAT"}
  for k, v in pairs(env or {}) do env_args[#env_args + 1] = k .. "=" .. v end
  local cmd = support.ferry_command({"-e", code}, env_args) .. (stdout_only and " 2>/dev/null" or " 2>&1")
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, how, status = p:close()
  assert.are.equal("exit", how)
  return out, status
end

local TIME = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ"

describe("log", function()
  it("writes text lines with time, level and message", function()
    local out, status = run([[
      local log = require("log")
      log.info("starting up")
      log.warn("disk almost full")
      log.error("it broke")
    ]])
    assert.are.equal(0, status)
    local got = lines(out)
    assert.are.equal(3, #got, out)
    assert.matches("^" .. TIME .. " INFO +starting up$", got[1])
    assert.matches("^" .. TIME .. " WARN +disk almost full$", got[2])
    assert.matches("^" .. TIME .. " ERROR +it broke$", got[3])
  end)

  it("writes one JSON object per line with FERRY_LOG_FORMAT=json", function()
    local out, status = run([[
      local log = require("log")
      log.info('a "quoted" word')
      log.warn("two\nlines")
    ]], {FERRY_LOG_FORMAT = "json"})
    assert.are.equal(0, status)
    local got = lines(out)
    assert.are.equal(2, #got, out)
    local first, second = json.decode(got[1]), json.decode(got[2])
    assert.matches("^" .. TIME .. "$", first.time)
    assert.are.equal("info", first.level)
    assert.are.equal('a "quoted" word', first.msg)
    assert.matches("^" .. TIME .. "$", second.time)
    assert.are.equal("warn", second.level)
    assert.are.equal("two\nlines", second.msg)
  end)

  it("hides debug lines unless FERRY_LOG_LEVEL=debug", function()
    local code = [[
      local log = require("log")
      log.debug("fine detail")
      log.info("summary")
    ]]
    local out = run(code)
    assert.is_nil(out:find("fine detail", 1, true))
    assert.is_truthy(out:find("summary", 1, true))
    out = run(code, {FERRY_LOG_LEVEL = "debug"})
    assert.matches("DEBUG fine detail", out, 1, true)
    assert.is_truthy(out:find("summary", 1, true))
  end)

  it("formats its arguments like string.format", function()
    local out = run([[require("log").info("%d items in %s", 3, "ns-a")]])
    assert.matches("INFO  3 items in ns-a\n", out, 1, true)
  end)

  it("masks a secret in log lines", function()
    local out, status = run([[
      local log = require("log")
      local token = log.secret("s3cr3t-t0ken-value")
      log.info("using token " .. token)
      log.info("embedded:" .. token .. ":end")
    ]])
    assert.are.equal(0, status)
    assert.is_nil(out:find("s3cr3t-t0ken-value", 1, true), out)
    assert.matches("using token ****", out, 1, true)
    assert.matches("embedded:****:end", out, 1, true)
  end)

  it("masks a secret in the error the host prints on exit", function()
    local out, status = run([[
      local token = require("log").secret("s3cr3t-t0ken-value")
      error("token=" .. token)
    ]])
    assert.are.equal(2, status)
    assert.is_nil(out:find("s3cr3t-t0ken-value", 1, true), out)
    assert.matches("token=****", out, 1, true)
  end)

  it("names the step from the task context in text lines", function()
    local out = run([[
      local task, log = require("task"), require("log")
      task.wait(task.spawn(function()
        task.context({step = "snapshot"})
        log.info("inside")
      end))
      log.info("outside")
    ]])
    local got = lines(out)
    assert.are.equal(2, #got, out)
    assert.matches(" INFO  %[snapshot%] inside$", got[1])
    assert.matches(" INFO  outside$", got[2])
  end)

  it("keeps the lines logged in a step for log.excerpt", function()
    local out, status = run([[
      local task, log = require("task"), require("log")
      local secret = log.secret("s3cr3t-t0ken-value")
      task.wait(task.spawn(function()
        task.context({step = "x"})
        log.info("one")
        log.info("two %d", 2)
        log.warn("key " .. secret)
      end))
      log.info("outside")
      io.write(log.excerpt("x"), "|", log.excerpt("never-ran"))
    ]], nil, true)
    assert.are.equal(0, status)
    -- only that step's lines, oldest first, secrets masked; an unknown step has none
    assert.are.equal("one\ntwo 2\nkey ****\n|", out)
  end)
end)
