---@meta json
-- JSON for manifests and API bodies: lua-cjson's decoder, wrapped so that
-- integers stay integers, `[]` stays apart from `{}`, and arrays stay arrays
-- when re-encoded; plus Ferry's own encoder with sorted keys and exact numbers.
--
-- Arrays carry a marker: the metatable `getmetatable(json.empty_array)`, named
-- "json.array". json.decode and yaml.load give it to every array they return,
-- so an array emptied by table.remove still encodes as `[]`. Mark a table you
-- build yourself with json.array(t) when it may be empty.

-- luacheck: no unused args

---@class json.array: table
---A table carrying the array marker: it encodes as a JSON array, even when empty.

---@class json.encode.Opts
---@inlinedoc
---
---Indent with two spaces, one value per line, a space after each colon; no final newline.
---(default: `false`)
---@field pretty? boolean
---
---Write object keys in byte order (deterministic output for plans, diffs and tests);
---`false` writes them in table order, which is faster and varies between runs.
---(default: `true`)
---@field sort? boolean

local json = {}

---The JSON `null`: a light userdata holding NULL (equal to lua-cjson's `cjson.null`).
---json.decode gives it for every `null`, so nulls keep their place in arrays and
---their key in objects; json.encode writes it (and `nil`) as `null`.
---@type lightuserdata
json.null = nil

---A shared, read-only empty array: encodes as `[]`. Assigning to it raises; use
---json.array() for an array you will fill.
---@type json.array
json.empty_array = nil

---Decodes JSON text.
---
--- - Objects become tables with string keys; `{}` becomes an empty unmarked table.
--- - Arrays become sequences marked with the array metatable; `[]` becomes an empty
---   marked table.
--- - Numbers with an exact integer value that fits a Lua integer become integers
---   (`3`, `3.0` and `1e3` give `3`, `3` and `1000`); integers of any length are
---   read exactly (`9223372036854775807` is math.maxinteger); other numbers become
---   floats. Numbers beyond a double's range become `inf`.
--- - `null` becomes json.null; `\u` escapes become UTF-8.
---
---Bad input raises a string naming the position:
---`json.decode: Expected value but found invalid token at character 16 (line 2, column 7)`.
---Strict JSON only: no NaN, Infinity, hex numbers, leading zeros or comments.
---Documents over 256 MiB are refused.
---
---Implementation note: empty arrays and integers of 16 or more digits travel through
---lua-cjson as placeholder strings beginning with a NUL byte
---(`"\u0000ferry:empty-array"`, `"\u0000ferry:int:<digits>"`). Only a document that
---also spells one of these out literally, in the same text as a `[]` or a long
---integer, could be misread; ordinary data cannot contain them.
---
---Example:
---
---```lua
---local doc = json.decode('{"replicas": 3, "args": [], "env": {}, "image": null}')
----- doc.replicas == 3 (math.type "integer"), json.is_array(doc.args) == true,
----- next(doc.env) == nil, doc.image == json.null
---```
---
---@param text string JSON text
---@return any value
function json.decode(text) end

---Encodes a Lua value as JSON text.
---
--- - `nil` and json.null → `null`; booleans; strings with `"`, `\` and control
---   characters escaped (`\n`, `\t`, ... or `\u00XX`), other bytes (UTF-8) as they are.
--- - Integers exactly; floats in the shortest form that reads back the same
---   (`0.1`, `1e+300`). NaN and infinities raise.
--- - A table is an array if it carries the array marker (holes become `null`) or if
---   its keys are exactly 1..n with n > 0; an object if its keys are all strings
---   (an empty unmarked table is `{}`); anything else raises.
---
---Errors are strings naming the JSONPath of the value (array indices from 0):
---`json.encode: mixed or non-string keys at $.spec.ports[0]`,
---`json.encode: cannot encode function at $.metadata.labels["app.kubernetes.io/name"]`.
---Tables nested deeper than 128 levels (so also cycles) raise, and so does output
---over 256 MiB. Metamethods (`__index`, `__pairs`, `__tojson`) are not consulted.
---
---Example:
---
---```lua
---json.encode({b = 1, a = {json.null, true}, c = json.array()})
----- '{"a":[null,true],"b":1,"c":[]}'
---```
---
---@param value any
---@param opts? json.encode.Opts
---@return string
function json.encode(value, opts) end

---Marks t as an array (so it encodes as `[]` when empty) and returns it; without t,
---returns a new empty array. Raises if t already has another metatable.
---
---```lua
---local ports = json.array()
---for _, p in ipairs(spec_ports) do ports[#ports + 1] = p end -- may stay empty
---```
---
---@generic T: table
---@param t? T
---@return T|json.array
function json.array(t) end

---Whether value is a table carrying the array marker (a decoded array, a
---json.array() result, or json.empty_array). Unmarked sequences answer false.
---@param value any
---@return boolean
function json.is_array(value) end

return json
