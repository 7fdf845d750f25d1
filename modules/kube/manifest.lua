-- manifest.lua: objects from manifests — Lua tables, YAML (or JSON) text, or
-- files, multi-document — with explicit ${NAME} substitution from a vars
-- table. `kind: List` (and any *List with items) is expanded into its items;
-- empty documents are skipped.
--
-- Substitution is textual and happens before YAML parsing, so a value lands
-- exactly where ${NAME} stands: quote it in YAML where it must stay a string
-- (`image: "${IMAGE}"`, `tag: "${TAG}"`). `$${` is a literal `${`. Names are
-- [A-Za-z_][A-Za-z0-9_]*; values are strings, numbers or booleans. Lines whose
-- first non-blank character is `#` are comments and left alone. In Lua
-- tables, every string value (not keys) is substituted the same way.
--
-- Errors: an undefined variable raises an error object with code
-- "manifest", naming the variable, the source (file name, "input" or
-- "table") and the line; unreadable files and YAML syntax errors raise the same
-- code with the file and position.
local errors = require("errors")
local json = require("json")
local yaml = require("yaml")

local M = {}

local function fail(source, fmt, ...)
  error(errors.new{code = "manifest", message = ("manifest %s: %s"):format(source, fmt:format(...)), source = source,
                   causes = json.array()}, 0)
end

local function check_vars(vars)
  if vars == nil then return {} end
  if type(vars) ~= "table" then error("kube.manifests: vars must be a table of name = value", 4) end
  for k, v in pairs(vars) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
      error(("kube.manifests: variable name %s is not [A-Za-z_][A-Za-z0-9_]*"):format(tostring(k)), 4)
    end
    local t = type(v)
    if t ~= "string" and t ~= "number" and t ~= "boolean" then
      error(("kube.manifests: variable %s must be a string, number or boolean, got %s"):format(k, t), 4)
    end
  end
  return vars
end

-- Substitutes ${NAME} in one line; `where(name)` raises for an undefined one.
local function subst_line(line, vars, where)
  return (line:gsub("(%$?)%${([^}]*)}", function(escape, name)
    if escape == "$" then return "${" .. name .. "}" end
    if not name:match("^[%a_][%w_]*$") then where(name, true) end
    local v = vars[name]
    if v == nil then where(name, false) end
    return tostring(v)
  end))
end

---Substitutes ${NAME} in text (see the file comment); source names it in errors.
---@param text string
---@param vars table
---@param source string
---@return string
function M.substitute(text, vars, source)
  local out, n = {}, 0
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*#") or not line:find("${", 1, true) then
      out[n] = line
    else
      out[n] = subst_line(line, vars, function(name, malformed)
        if malformed then fail(source, "line %d: '${%s}' is not a variable name", n, name) end
        fail(source, "line %d: undefined variable ${%s}", n, name)
      end)
    end
  end
  local result = table.concat(out, "\n")
  if text:sub(-1) == "\n" then result = result .. "\n" end
  return result
end

local function subst_table(value, vars, path)
  if type(value) == "string" then
    if not value:find("${", 1, true) then return value end
    return subst_line(value, vars, function(name, malformed)
      if malformed then fail("table", "%s: '${%s}' is not a variable name", path, name) end
      fail("table", "%s: undefined variable ${%s}", path, name)
    end)
  elseif type(value) == "table" and value ~= json.null then
    local out = {}
    for k, v in pairs(value) do
      local p = type(k) == "number" and ("%s[%d]"):format(path, k - 1) or (path .. "." .. tostring(k))
      out[k] = subst_table(v, vars, p)
    end
    return setmetatable(out, getmetatable(value))
  end
  return value
end

local function is_object(v) return type(v) == "table" and v ~= json.null and v.kind ~= nil end

-- Appends doc (an object, a List or nothing) to out.
local function add(out, doc, source, index)
  if doc == nil or doc == json.null then return end
  if type(doc) ~= "table" then fail(source, "document %d is not an object", index) end
  local kind = doc.kind
  if type(kind) == "string" and kind:match("List$") and type(doc.items) == "table" then
    for _, item in ipairs(doc.items) do add(out, item, source, index) end
    return
  end
  if not is_object(doc) then fail(source, "document %d has no kind", index) end
  out[#out + 1] = doc
end

local function from_text(text, vars, source, out)
  text = M.substitute(text, vars, source)
  local ok, docs = pcall(yaml.load, text, {name = source})
  if not ok then fail(source, "%s", (tostring(docs):gsub("^yaml%.load: ", ""))) end
  for i, doc in ipairs(docs) do add(out, doc, source, i) end
end

local function looks_like_path(s)
  return not s:find("\n", 1, true) and (s:match("%.ya?ml$") or s:match("%.json$")) ~= nil
end

local function from_source(source, vars, out)
  if type(source) == "string" then
    if looks_like_path(source) then
      local f, why = io.open(source, "rb")
      if not f then fail(source, "cannot read: %s", why) end
      local text = f:read("a")
      f:close()
      from_text(text, vars, source, out)
    else
      from_text(source, vars, "input", out)
    end
  elseif type(source) == "table" and source ~= json.null then
    if source.kind ~= nil then
      local doc = subst_table(source, vars, "$")
      add(out, doc, "table", 1)
    else
      for _, item in ipairs(source) do from_source(item, vars, out) end
    end
  else
    error(("kube.manifests: a source is a file path, YAML text, an object table or a list of those, got %s")
          :format(type(source)), 4)
  end
end

---Every object of source (see the file comment), in order.
---@param source string|table a path ending .yaml/.yml/.json, YAML text, an object, or a list of those
---@param vars? table<string, string|number|boolean>
---@return table[] objects
function M.load(source, vars)
  vars = check_vars(vars)
  local out = json.array()
  from_source(source, vars, out)
  return out
end

return M
