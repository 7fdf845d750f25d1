-- ini.lua (module "aws.ini"): the parser of the AWS shared files
-- (~/.aws/credentials and ~/.aws/config), as the SDKs read them.
--
-- - `[name]` starts a section; whitespace inside the brackets is trimmed and
--   inner runs collapse to one space, so `[ profile  dev ]` is "profile dev".
-- - `key = value` (or `key: value`) sets a property; keys are lower-cased and
--   trimmed. A comment starting with `#` or `;` after whitespace ends a value.
-- - Lines starting with `#` or `;` are comments; blank lines are ignored.
-- - An indented line continues the property above it. When that property's
--   value was empty (`s3 =` then `  max_concurrent_requests = 20`), the
--   indented `key = value` lines form a sub-table; otherwise they append to the
--   value, joined by "\n".
-- - A property before any section, or a line that is none of these, raises
--   "FILE:LINE: ..." naming the line.
-- Later sections of the same name add to earlier ones; later keys win.
local M = {}

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- A property value without its trailing comment (" # ..." or " ; ...").
local function strip_comment(v)
  local cut = v:find("%s[#;]")
  if cut then v = v:sub(1, cut - 1) end
  return trim(v)
end

---Parses ini text; returns {[section] = {[key] = value or sub-table}}.
---Raises "NAME:LINE: message" on a malformed line, NAME being `name`.
---@param text string
---@param name string the file name used in error messages
---@return table<string, table<string, string|table<string, string>>>
function M.parse(text, name)
  local sections = {}
  local current, last_key, lineno = nil, nil, 0
  local function fail(msg)
    error(("%s:%d: %s"):format(name, lineno, msg), 0)
  end
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    local line = raw:gsub("\r$", "")
    local body = trim(line)
    if body == "" or body:match("^[#;]") then
      -- blank or comment: keeps the property above open for continuations
      goto continue
    end
    if line:match("^%s") and last_key then
      -- a continuation of the property above
      local prop = current[last_key]
      if type(prop) == "table" then
        local k, v = body:match("^([^=]-)%s*=%s*(.*)$")
        if k and trim(k) ~= "" then
          prop[trim(k):lower()] = strip_comment(v)
        elseif next(prop) == nil then
          current[last_key] = strip_comment(body) -- `key =` with its value on the next line
        else
          fail("expected 'key = value' in the nested block of '" .. last_key .. "'")
        end
      else
        current[last_key] = prop .. "\n" .. strip_comment(body)
      end
      goto continue
    end
    do
      local header = body:match("^%[(.*)%]$") or body:match("^%[(.-)%]%s+[#;]")
      if header then
        header = trim(header):gsub("%s+", " ")
        if header == "" then fail("empty section name") end
        current = sections[header] or {}
        sections[header] = current
        last_key = nil
        goto continue
      end
      if body:match("^%[") then fail("malformed section header: missing ']'") end
      local k, sep, v = body:match("^([^=:]-)%s*([=:])%s*(.*)$")
      if not k then fail("expected '[section]' or 'key = value'") end
      k = trim(k):lower()
      if k == "" then fail("missing key before '" .. sep .. "'") end
      if not current then fail("property '" .. k .. "' outside a section") end
      v = strip_comment(v)
      if v == "" then
        current[k] = {} -- a nested block may follow; an empty one reads as ""
      else
        current[k] = v
      end
      last_key = k
    end
    ::continue::
  end
  -- properties that stayed empty, with no nested lines, are the empty string
  for _, props in pairs(sections) do
    for k, v in pairs(props) do
      if type(v) == "table" and next(v) == nil then props[k] = "" end
    end
  end
  return sections
end

---Reads and parses the file at path; returns nil when it does not exist.
---@param path string
---@return table? sections
function M.load(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return M.parse(text, path)
end

return M
