---@meta errors
-- Ferry's error objects: what modules raise for service and transport failures.

---@class ferry.Error
---@field code string stable machine-readable kind: "timeout", "connect", "tls", "too_large", "cancelled", ...
---@field message string what happened, for people
---@field status? integer HTTP status, when there was one
---@field retryable? boolean whether trying again may succeed
---@field url? string
---@field traceback? string where it was raised, once reported

local errors = {}

---Gives a table the error metatable (readable tostring) and returns it.
---@param e {code: string, message: string} plus any other fields
---@return ferry.Error
function errors.new(e) end

---Is value an error object (with this code, when given)?
---@param value any
---@param code? string
---@return boolean
function errors.is(value, code) end

return errors
