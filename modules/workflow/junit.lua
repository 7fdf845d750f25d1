-- junit.lua: the JUnit XML report of a run, in the shape CodeBuild report
-- groups (and Jenkins, GitLab) read: one <testsuite> for the workflow, one
-- <testcase> per step, <failure> with the message and traceback, <skipped/>
-- for steps that never ran, and the step's last log lines in <system-out>.
-- Secrets are masked; the file is written whole or not at all.
local M = {}

local log = require("log")

local ESCAPES = {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;"}

---Escapes text for XML content and attributes, masking secrets and dropping
---characters XML 1.0 cannot carry.
function M.escape(s)
  s = log.redact(tostring(s))
  s = s:gsub("[%z\1-\8\11\12\14-\31]", "")
  return (s:gsub("[&<>\"']", ESCAPES))
end

local function attrs(t, order)
  local out = {}
  for _, k in ipairs(order) do
    if t[k] ~= nil then out[#out + 1] = ('%s="%s"'):format(k, M.escape(t[k])) end
  end
  return table.concat(out, " ")
end

---Renders suite = {name, time, cases = {{name, status, time, message?,
---details?, excerpt?}}} as a JUnit XML document.
function M.render(suite)
  local tests, failures, skipped = #suite.cases, 0, 0
  for _, c in ipairs(suite.cases) do
    if c.status == "failed" then failures = failures + 1 end
    if c.status == "skipped" then skipped = skipped + 1 end
  end
  local head = {name = suite.name, tests = tests, failures = failures, errors = 0, skipped = skipped,
                time = ("%.3f"):format(suite.time or 0), timestamp = os.date("!%Y-%m-%dT%H:%M:%S")}
  local order = {"name", "tests", "failures", "errors", "skipped", "time", "timestamp"}
  local x = {'<?xml version="1.0" encoding="UTF-8"?>',
             ("<testsuites %s>"):format(attrs(head, {"name", "tests", "failures", "errors", "skipped", "time"})),
             ("  <testsuite %s>"):format(attrs(head, order))}
  for _, c in ipairs(suite.cases) do
    local case = attrs({name = c.name, classname = suite.name, time = ("%.3f"):format(c.time or 0)},
      {"name", "classname", "time"})
    if c.status == "passed" and not c.excerpt then
      x[#x + 1] = ("    <testcase %s/>"):format(case)
    else
      x[#x + 1] = ("    <testcase %s>"):format(case)
      if c.status == "failed" then
        local body = c.message or "failed"
        if c.details then body = body .. "\n" .. c.details end
        x[#x + 1] = ('      <failure message="%s" type="StepFailed">%s</failure>'):format(
          M.escape(c.message or "failed"), M.escape(body))
      elseif c.status == "skipped" then
        x[#x + 1] = '      <skipped message="not run: an earlier step failed or the run was interrupted"/>'
      end
      if c.excerpt and c.excerpt ~= "" then
        x[#x + 1] = ("      <system-out>%s</system-out>"):format(M.escape(c.excerpt))
      end
      x[#x + 1] = "    </testcase>"
    end
  end
  x[#x + 1] = "  </testsuite>"
  x[#x + 1] = "</testsuites>"
  return table.concat(x, "\n") .. "\n"
end

---Writes the report to path (via a temporary file and a rename).
function M.write(path, suite)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then error(("cannot write %s: %s"):format(path, err), 0) end
  local ok, werr = f:write(M.render(suite))
  f:close()
  if not ok then
    os.remove(tmp)
    error(("cannot write %s: %s"):format(path, werr), 0)
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    error(("cannot write %s: %s"):format(path, rerr), 0)
  end
end

return M
