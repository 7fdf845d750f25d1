---@meta workflow
-- Workflows: named steps, typed params, outputs, undo actions and a
-- teardown that always runs. One workflow per file: `return workflow.define{...}`.

---@class workflow.Param
---@field type? "string"|"number"|"integer"|"boolean" default "string"
---@field default? any
---@field required? boolean
---@field doc? string
---@field secret? boolean the value is masked in everything Ferry prints (log.secret)

---@class workflow.Step
---@field name string a verb phrase: "snapshot volume"
---@field run fun(ctx: workflow.Ctx): table? returns the step's outputs
---@field description? string
---@field timeout? number seconds

---@class workflow.Definition
---@field name string
---@field description? string
---@field params? table<string, workflow.Param>
---@field steps workflow.Step[]
---@field teardown? fun(ctx: workflow.Ctx) runs always: success, failure, timeout, signal
---@field teardown_timeout? number seconds (default 600)

---@class workflow.Ctx
---@field workflow string the workflow's name
---@field params table<string, any> typed parameter values
---@field outputs table<string, table> outputs of the steps that ran, by step name
---@field failed? string the name of the step that failed
local Ctx = {}

---Registers an undo action, run last-first if a later step fails.
---@param fn fun(ctx: workflow.Ctx)
---@param description? string
function Ctx:defer(fn, description) end

---@class workflow.Workflow

local workflow = {}

---Validates a definition and returns the workflow; runs nothing.
---@param def workflow.Definition
---@return workflow.Workflow
function workflow.define(def) end

---@param value any
---@return boolean
function workflow.is_workflow(value) end

---Types raw parameter values (command-line strings or typed values) against
---the workflow's declarations.
---@param wf workflow.Workflow
---@param raw table<string, any>
---@return table<string, any>? params
---@return string? error
function workflow.resolve_params(wf, raw) end

---Runs a workflow; returns the exit code (0, 1, 2, 3, 130, 143) and per-step results.
---@param wf workflow.Workflow
---@param opts? {params?: table<string, any>, timeout?: number, junit?: string}
---@return integer code
---@return table results
function workflow.run(wf, opts) end

return workflow
