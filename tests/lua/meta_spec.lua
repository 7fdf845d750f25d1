-- meta_spec.lua: every function a module exports is annotated in its
-- ---@meta file (modules/<name>/meta.lua), and every annotated function exists.
local support = require("support")

local MODULES = {"aws", "codepipeline", "ecr", "errors", "http", "json", "kube", "log", "portworx", "task", "workflow",
                 "yaml", "zip"}

describe("meta files", function()
  for _, name in ipairs(MODULES) do
    it("cover the " .. name .. " module exactly", function()
      local mod = require(name)
      local path = "modules/" .. name .. "/meta.lua"
      local meta = assert(support.read(path), "cannot read " .. path)
      assert.truthy(meta:match("^%-%-%-@meta " .. name .. "\n"), "first line must be ---@meta " .. name)
      local documented = {}
      for fn in meta:gmatch("\nfunction " .. name .. "%.([%w_]+)%(") do documented[fn] = true end
      for key, value in pairs(mod) do
        if type(value) == "function" and not key:match("^_") then
          assert.truthy(documented[key], name .. "." .. key .. " is not annotated in its meta file")
        end
      end
      for fn in pairs(documented) do
        assert.equal("function", type(mod[fn]), name .. "." .. fn .. " is annotated but does not exist")
      end
    end)
  end
end)
