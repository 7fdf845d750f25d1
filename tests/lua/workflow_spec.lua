-- workflow_spec.lua: `ferry run` and `ferry check` as a user meets them —
-- the binary under test (FERRY_BIN) runs the fixture workflows in
-- tests/lua/fixtures/workflows as a subprocess; the specs check exit codes,
-- what the steps recorded, stderr, and the JUnit report.

local support = require("support")

local FIXTURES = (debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "fixtures/workflows/"

-- ---- helpers ----

local q, read, write, exists = support.q, support.read, support.write, support.exists
local lines, contains, wait_for = support.lines, support.contains, support.wait_for
local ferry = support.run_ferry -- ferry(dir, args, env) runs FERRY_BIN: {code, stdout, stderr}

-- A script that does not parse (kept out of the fixtures so that luacheck,
-- which checks them, stays clean); the missing comma is reported at line 4,
-- where `steps` follows the unfinished field.
local SYNTAX_ERROR = [[
local workflow = require("workflow")
return workflow.define{
  name = "syntax_error"
  steps = {},
}
]]
local SYNTAX_ERROR_LINE = 4

-- The line number of the line of fixture `name` holding `marker`.
local function line_of(name, marker)
  local n = 0
  for line in io.lines(FIXTURES .. name) do
    n = n + 1
    if contains(line, marker) then return n end
  end
  error(("no line with %q in %s"):format(marker, name))
end

-- Starts ferry in the background under a shell that records its pid in
-- dir/pid and, once it exits, its exit status in dir/status.
local function ferry_background(dir, args, env)
  local d = function(name) return q(dir .. "/" .. name) end
  -- written to a .tmp file, then renamed, so each file appears whole
  local script = ("%s </dev/null >%s 2>%s & echo $! >%s && mv %s %s; wait $!; echo $? >%s && mv %s %s"):format(
    support.ferry_command(args, env), d("stdout"), d("stderr"), d("pid.tmp"), d("pid.tmp"), d("pid"),
    d("status.tmp"), d("status.tmp"), d("status"))
  assert(os.execute(("sh -c %s </dev/null >/dev/null 2>&1 &"):format(q(script))))
  local pid = wait_for(10, function() return tonumber(read(dir .. "/pid")) end)
  assert(pid, "the background ferry did not start")
  return math.tointeger(pid)
end

-- The JUnit report at path, parsed by Python's ElementTree: {root = tag,
-- suite = {attributes}, cases = {{name, status, message}}}. Fails the spec if
-- the file is not well-formed XML.
local JUNIT_READER = [[
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
print("root", root.tag)
print("suite", suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped"))
for case in suite.findall("testcase"):
    failure, skipped = case.find("failure"), case.find("skipped")
    status = "failed" if failure is not None else "skipped" if skipped is not None else "passed"
    message = failure.get("message", "") if failure is not None else ""
    print("case", case.get("name"), status, " ".join(message.split()))
]]

local function read_junit(path)
  local p = assert(io.popen(("/usr/bin/python3 -c %s %s 2>&1"):format(q(JUNIT_READER), q(path))))
  local text = p:read("a")
  local ok = p:close()
  assert(ok, "the JUnit report is not valid XML:\n" .. text)
  local report = {cases = {}}
  for _, line in ipairs(lines(text)) do
    local kind, rest = line:match("^(%S+) (.*)$")
    if kind == "root" then
      report.root = rest
    elseif kind == "suite" then
      local name, tests, failures, skipped = rest:match("^(%S+) (%S+) (%S+) (%S+)$")
      report.suite = {name = name, tests = tonumber(tests), failures = tonumber(failures),
                      skipped = tonumber(skipped)}
    elseif kind == "case" then
      local name, status, message = rest:match("^(%S+) (%S+) ?(.*)$")
      report.cases[#report.cases + 1] = {name = name, status = status, message = message}
    end
  end
  return report
end

-- ---- specs ----

describe("workflow", function()
  local tmp, out, background_pid

  before_each(function()
    tmp = support.make_tmpdir()
    out = tmp .. "/record"
    background_pid = nil
  end)

  after_each(function()
    if background_pid then os.execute(("kill -KILL %d 2>/dev/null"):format(background_pid)) end
    support.remove_tree(tmp)
  end)

  -- The arguments of `ferry run` for fixture `name`: "-p" before each of
  -- params, then the extra arguments.
  local function run_args(name, params, extra)
    local args = {"run", FIXTURES .. name}
    for _, p in ipairs(params) do
      args[#args + 1] = "-p"
      args[#args + 1] = p
    end
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return args
  end

  -- Runs flow.lua, recording to `out`, with more params and extra arguments.
  local function run_flow(params, extra)
    return ferry(tmp, run_args("flow.lua", {"out=" .. out, table.unpack(params or {})}, extra))
  end

  local function recorded()
    return lines(read(out))
  end

  describe("running steps", function()
    it("runs the steps in order and passes each step's outputs to the later ones", function()
      local r = run_flow()
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        "run create_volume",
        "run snapshot_volume from vol-42",
        "run clone_snapshot from snap-of-vol-42",
        "teardown",
      }, recorded())
    end)

    it("stops at a failing step: exit 1, later steps skipped, undo actions last-first, then teardown", function()
      local r = run_flow({"fail_at=snapshot_volume"})
      assert.are.equal(1, r.code, r.stderr)
      assert.are.same({
        "run create_volume",
        "run snapshot_volume from vol-42",
        "undo snapshot_volume",
        "undo create_volume",
        "teardown",
      }, recorded())
    end)

    it("reports a failing step's error with the script's file and line and a traceback", function()
      local r = run_flow({"fail_at=clone_snapshot"})
      assert.are.equal(1, r.code, r.stderr)
      local where = ("flow.lua:%d: clone_snapshot exploded"):format(line_of("flow.lua", "FAIL_LINE"))
      assert.is_true(contains(r.stderr, where), "stderr lacks '" .. where .. "':\n" .. r.stderr)
      assert.is_true(contains(r.stderr, "stack traceback:"), "stderr has no traceback:\n" .. r.stderr)
      assert.is_true(contains(r.stderr, "failed at step 'clone_snapshot'"), r.stderr)
    end)

    it("runs teardown after a successful run", function()
      local r = run_flow()
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("teardown", recorded()[#recorded()])
    end)

    it("does not run undo actions when every step succeeds", function()
      local r = run_flow()
      assert.are.equal(0, r.code, r.stderr)
      for _, line in ipairs(recorded()) do
        assert.is_nil(line:match("^undo"), "an undo action ran after a successful run: " .. line)
      end
      assert.are.equal(4, #recorded())
    end)

    it("exits 3 when teardown fails after the steps succeeded", function()
      local r = run_flow({"teardown_fails=true"})
      assert.are.equal(3, r.code, r.stderr)
      assert.is_true(contains(r.stderr, "teardown could not delete the clone"), r.stderr)
      assert.are.equal("teardown", recorded()[#recorded()])
    end)

    it("exits 3 when teardown fails after a step failed", function()
      local r = run_flow({"fail_at=clone_snapshot", "teardown_fails=true"})
      assert.are.equal(3, r.code, r.stderr)
      assert.are.equal("teardown", recorded()[#recorded()])
    end)
  end)

  describe("signals and deadlines", function()
    -- Starts flow hanging in snapshot_volume, waits until it is there, sends
    -- `signal`, and returns the exit status and stderr once it has exited.
    local function interrupt(signal)
      background_pid = ferry_background(tmp, run_args("flow.lua", {"out=" .. out, "hang_at=snapshot_volume"}))
      local hanging = wait_for(10, function() return contains(read(out), "hang snapshot_volume") end)
      assert.is_true(hanging, "the step never started; stderr:\n" .. (read(tmp .. "/stderr") or ""))
      assert(os.execute(("kill -%s %d"):format(signal, background_pid)))
      local status = wait_for(20, function() return tonumber(read(tmp .. "/status")) end)
      assert(status, ("ferry did not exit within 20 s of SIG%s"):format(signal))
      background_pid = nil
      return math.tointeger(status), read(tmp .. "/stderr") or ""
    end

    it("runs teardown and exits 143 when terminated (SIGTERM) mid-step", function()
      local code, stderr = interrupt("TERM")
      assert.are.equal(143, code, stderr)
      assert.are.equal("teardown", recorded()[#recorded()], stderr)
      assert.is_false(contains(read(out), "run clone_snapshot"), "a step ran after the signal")
      assert.is_true(contains(stderr, "interrupted"), stderr)
    end)

    it("runs teardown and exits 130 when interrupted (SIGINT) mid-step", function()
      local code, stderr = interrupt("INT")
      assert.are.equal(130, code, stderr)
      assert.are.equal("teardown", recorded()[#recorded()], stderr)
      assert.is_false(contains(read(out), "run clone_snapshot"), "a step ran after the signal")
    end)

    it("fails a step that outlives --timeout with a deadline error, then runs teardown", function()
      local r = run_flow({"hang_at=snapshot_volume"}, {"--timeout", "0.5"})
      assert.are.equal(1, r.code, r.stderr)
      assert.is_truthy(r.stderr:match("snapshot_volume failed: deadline exceeded[^\n]*timeout"),
        "stderr lacks the deadline error:\n" .. r.stderr)
      assert.is_false(contains(read(out), "run clone_snapshot"))
      assert.are.equal("teardown", recorded()[#recorded()])
    end)
  end)

  describe("JUnit report", function()
    it("writes one testcase per step plus teardown, with failure and skipped markers", function()
      local report = tmp .. "/junit.xml"
      local r = run_flow({"fail_at=snapshot_volume"}, {"--junit", report})
      assert.are.equal(1, r.code, r.stderr)
      local junit = read_junit(report)
      assert.are.same({name = "flow", tests = 4, failures = 1, skipped = 1}, junit.suite)
      assert.are.same({"create_volume", "snapshot_volume", "clone_snapshot", "teardown"},
        {junit.cases[1].name, junit.cases[2].name, junit.cases[3].name, junit.cases[4].name})
      assert.are.same({"passed", "failed", "skipped", "passed"},
        {junit.cases[1].status, junit.cases[2].status, junit.cases[3].status, junit.cases[4].status})
      assert.is_true(contains(junit.cases[2].message, "snapshot_volume exploded"), junit.cases[2].message)
    end)

    it("reports a successful run with no failures or skips", function()
      local report = tmp .. "/junit.xml"
      local r = run_flow({}, {"--junit", report})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({name = "flow", tests = 4, failures = 0, skipped = 0}, read_junit(report).suite)
    end)

    it("never writes a secret registered with log.secret into the report or the logs", function()
      local secret = "tok-3f9a-secret-value"
      local report = tmp .. "/junit.xml"
      local r = run_flow({"fail_at=clone_snapshot", "secret=" .. secret}, {"--junit", report})
      assert.are.equal(1, r.code, r.stderr)
      local xml = assert(read(report), "no JUnit report written")
      assert.is_true(contains(xml, "clone_snapshot exploded using token"), xml)
      assert.is_false(contains(xml, secret), "the secret is in the JUnit report:\n" .. xml)
      assert.is_false(contains(r.stderr, secret), "the secret is in the logs:\n" .. r.stderr)
    end)
  end)

  describe("parameters", function()
    local function run_params(params)
      return ferry(tmp, run_args("typed_params.lua", params))
    end

    -- A run refused before any step: exit 2, stderr naming `what`, nothing on
    -- stdout.
    local function assert_refused(r, what)
      assert.are.equal(2, r.code, r.stderr)
      assert.is_true(contains(r.stderr, what), r.stderr)
      assert.are.equal("", r.stdout)
    end

    it("delivers values converted to their declared types", function()
      local r = run_params({"region=eu-west-1", "replicas=5", "ratio=0.25", "dry=yes", "label=canary"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({"region=eu-west-1 string", "replicas=5 integer", "ratio=0.25 float", "dry=true boolean",
                       "label=canary string"}, lines(r.stdout))
    end)

    it("applies defaults to the parameters not given", function()
      local r = run_params({"region=eu-west-1"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({"region=eu-west-1 string", "replicas=3 integer", "ratio=0.5 float", "dry=false boolean",
                       "label=staging string"}, lines(r.stdout))
    end)

    it("rejects an unknown parameter name with exit 2, naming it, and runs no step", function()
      assert_refused(run_params({"region=eu-west-1", "colour=blue"}), "colour")
    end)

    it("rejects a value that is not an integer with exit 2, naming the parameter", function()
      for _, bad in ipairs({"three", "2.5"}) do
        assert_refused(run_params({"region=eu-west-1", "replicas=" .. bad}), "replicas")
      end
    end)

    it("masks a parameter declared secret in the logs and the JUnit report", function()
      local token, report = "tok-77c1-param-secret", tmp .. "/secret.xml"
      local r = ferry(tmp, run_args("secret_param.lua", {"token=" .. token}, {"--junit", report}))
      assert.are.equal(1, r.code, r.stderr)
      assert.is_true(contains(r.stderr, "calling the API with ****"), r.stderr)
      assert.is_false(contains(r.stderr, token), r.stderr)
      local xml = assert(read(report))
      assert.is_true(contains(xml, "refused token ****"), xml)
      assert.is_false(contains(xml, token), xml)
    end)

    it("rejects a value that is not a boolean with exit 2, naming the parameter", function()
      assert_refused(run_params({"region=eu-west-1", "dry=maybe"}), "dry")
    end)

    it("rejects a run missing a required parameter with exit 2, naming it", function()
      assert_refused(run_params({"replicas=2"}), "region")
    end)

    it("rejects -p without key=value with exit 2, naming the argument", function()
      assert_refused(run_params({"region=eu-west-1", "novalue"}), "novalue")
    end)
  end)

  describe("loading scripts", function()
    it("rejects a script with a syntax error with exit 2, naming its file and line", function()
      write(tmp .. "/syntax_error.lua", SYNTAX_ERROR)
      local r = ferry(tmp, {"run", tmp .. "/syntax_error.lua"})
      assert.are.equal(2, r.code, r.stderr)
      local where = ("syntax_error.lua:%d:"):format(SYNTAX_ERROR_LINE)
      assert.is_true(contains(r.stderr, where), "stderr lacks '" .. where .. "':\n" .. r.stderr)
    end)

    it("reports a script that raises while loading with exit 2 and a traceback", function()
      local r = ferry(tmp, {"run", FIXTURES .. "load_error.lua"})
      assert.are.equal(2, r.code, r.stderr)
      local where = ("load_error.lua:%d: cannot read config missing.yaml"):format(
        line_of("load_error.lua", "LOAD_LINE"))
      assert.is_true(contains(r.stderr, where), "stderr lacks '" .. where .. "':\n" .. r.stderr)
      assert.is_true(contains(r.stderr, "stack traceback:"), "stderr has no traceback:\n" .. r.stderr)
      assert.is_true(contains(r.stderr, "read_config"), "the traceback does not name the function:\n" .. r.stderr)
    end)

    it("rejects a script that does not return a workflow with exit 2", function()
      local r = ferry(tmp, {"run", FIXTURES .. "not_a_workflow.lua"})
      assert.are.equal(2, r.code, r.stderr)
      assert.is_true(contains(r.stderr, "not_a_workflow.lua"), r.stderr)
      assert.is_true(contains(r.stderr, "workflow.define"), r.stderr)
    end)

    -- workflow.define errors must point at the script's define call, where the
    -- mistake is, not (only) inside the workflow module. The fixture uses the
    -- idiomatic `return workflow.define(...)`, a tail call.
    local function assert_define_error(kind, named)
      local r = ferry(tmp, {"run", FIXTURES .. "bad_define.lua"}, {"BAD_DEFINE=" .. kind})
      local where = ("bad_define.lua:%d:"):format(line_of("bad_define.lua", "DEFINE_LINE"))
      assert.are.equal(2, r.code, r.stderr)
      assert.is_true(contains(r.stderr, named), r.stderr)
      assert.is_true(contains(r.stderr, where), "stderr lacks '" .. where .. "':\n" .. r.stderr)
    end

    it("rejects two steps with the same name with exit 2, naming the script line", function()
      assert_define_error("duplicate_step", "'create_volume'")
    end)

    it("rejects an unknown field in the definition with exit 2, naming the script line", function()
      assert_define_error("unknown_field", "'retries'")
    end)

    it("rejects a step without a run function with exit 2, naming the script line", function()
      assert_define_error("missing_run", "'verify_clone'")
    end)
  end)

  describe("ferry check", function()
    it("accepts valid workflows with one line per file and exit 0", function()
      local r = ferry(tmp, {"check", FIXTURES .. "flow.lua", FIXTURES .. "typed_params.lua"})
      assert.are.equal(0, r.code, r.stderr)
      local got = lines(r.stdout)
      assert.are.equal(2, #got, r.stdout)
      assert.is_truthy(got[1]:match("flow%.lua: ok"), got[1])
      assert.is_truthy(got[2]:match("typed_params%.lua: ok"), got[2])
    end)

    it("exits 2 when any script is bad, reporting each file", function()
      write(tmp .. "/syntax_error.lua", SYNTAX_ERROR)
      local r = ferry(tmp, {"check", FIXTURES .. "flow.lua", tmp .. "/syntax_error.lua",
                            FIXTURES .. "bad_define.lua", FIXTURES .. "typed_params.lua"})
      assert.are.equal(2, r.code, r.stderr)
      assert.is_truthy(r.stdout:match("flow%.lua: ok"), r.stdout)
      assert.is_truthy(r.stdout:match("typed_params%.lua: ok"), r.stdout)
      assert.is_true(contains(r.stderr, "syntax_error.lua:"), r.stderr)
      assert.is_true(contains(r.stderr, "bad_define.lua:"), r.stderr)
      assert.is_false(contains(r.stdout, "syntax_error.lua: ok"), r.stdout)
    end)

    it("runs no step and no teardown", function()
      local r = ferry(tmp, {"check", FIXTURES .. "flow.lua"}, {"FLOW_OUT=" .. out})
      assert.are.equal(0, r.code, r.stderr)
      assert.is_false(exists(out), "check ran a step or the teardown: " .. (read(out) or ""))
      -- the same script and environment do run steps under `ferry run`
      local ran = ferry(tmp, {"run", FIXTURES .. "flow.lua"}, {"FLOW_OUT=" .. out})
      assert.are.equal(0, ran.code, ran.stderr)
      assert.is_true(exists(out))
    end)
  end)
end)
