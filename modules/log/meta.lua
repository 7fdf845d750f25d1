---@meta log
-- Levelled log lines on stderr: text, or one JSON object per line
-- (--log-format json, for CloudWatch). Each line carries the UTC time and
-- the current step. Secrets registered with log.secret are masked in
-- everything Ferry prints: logs, errors, JUnit reports.

local log = {}

---@param fmt any a string.format pattern, or any value when alone
---@param ... any
function log.debug(fmt, ...) end

---@param fmt any
---@param ... any
function log.info(fmt, ...) end

---@param fmt any
---@param ... any
function log.warn(fmt, ...) end

---@param fmt any
---@param ... any
function log.error(fmt, ...) end

---Registers a secret (4 bytes or longer) to mask from now on; returns it.
---@param value string
---@return string
function log.secret(value) end

---Masks every registered secret in text.
---@param text string
---@return string
function log.redact(text) end

---The last lines (up to 20) logged in a step, oldest first.
---@param step string
---@return string
function log.excerpt(step) end

---The least severe level printed; with a name, sets it.
---@param name? "debug"|"info"|"warn"|"error"
---@return string
function log.level(name) end

---"text" or "json".
---@return string
function log.format() end

return log
