-- noop.lua: a workflow with one step that does nothing; `make bench` times
-- `ferry run tests/bench/noop.lua` to measure the cost of running any workflow.
return require("workflow").define{name = "noop", steps = {{name = "do nothing", run = function() end}}}
