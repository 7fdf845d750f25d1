---@meta yaml
-- YAML for manifests, fixtures and buildspecs, on libyaml: multi-document
-- streams in (read the way Kubernetes reads them) and out (written the way
-- kubectl prints them), shaped so that values move freely between yaml and json.
--
-- Loaded sequences carry json's array marker (json.is_array is true, json.encode
-- keeps an empty one as `[]`); nulls are json.null, so they keep their place in
-- tables and come back out as `null`.

-- luacheck: no unused args

---@class yaml.load.Opts
---@inlinedoc
---
---The name error messages give the text, e.g. the file it came from.
---(default: `"input"`)
---@field name? string

---@class yaml.dump.Opts
---@inlinedoc
---
---value is a list of documents: write them as one stream, separated by `---`.
---(default: `false`)
---@field documents? boolean

local yaml = {}

---Parses a YAML stream and returns the list of its documents (`{}` for an empty
---stream, `{json.null}` for a lone `---`).
---
--- - Mappings become tables with string keys: a key is its source text (`80:` gives
---   `"80"`, `yes:` gives `"yes"`). Sequences and mappings as keys raise; so does a
---   key repeated in one mapping (Kubernetes rejects those too).
--- - Sequences become tables marked as json arrays.
--- - Quoted (`'…'`, `"…"`) and block (`|`, `>`, any chomping) scalars are strings.
--- - Plain scalars resolve as Kubernetes (go-yaml v2, YAML 1.1) resolves them:
---   `~ null Null NULL` and nothing → json.null; `true yes on` / `false no off` in
---   lower, Capitalised or UPPER case → booleans (but `y`, `n` stay strings);
---   decimal, `0x` hex, `0o` / leading-zero (`0755`) octal and `0b` binary integers,
---   with optional sign and `_` separators → integers; `1.5 .5 1. 1e3 .inf -.Inf
---   .nan` → floats. A decimal integer beyond 64 bits becomes a float; a hex, octal
---   or binary one, or a float beyond double range (`1e400`), stays a string.
---   Everything else (timestamps, `1:20`, `1.2.3`, `500m`) is a string.
--- - Tags `!!str !!int !!float !!bool !!null` decide the type (`!!int "42"` is 42;
---   a value the tag cannot read raises); any other tag is ignored.
--- - Anchors and aliases: an alias gives the anchored value itself (the same table).
---   Merge keys `<<: *base` and `<<: [*a, *b]` copy the keys a mapping lacks; its own
---   keys win, then earlier sources over later ones. Anchors are per document.
---
---Errors are strings naming the position (line and column from 1):
---`yaml.load: deploy.yaml:4:3: duplicate key "name"`,
---`yaml.load: input:3:1: did not find expected ',' or ']' (while parsing a flow sequence)`.
---Limits: input up to 64 MiB; nesting up to 128 levels; aliases may stand for at
---most 1,000,000 nodes in all (so a "billion laughs" document raises).
---
---Example:
---
---```lua
---local docs = yaml.load("kind: Pod\n---\nkind: Service\nspec: {ports: [{port: 80}]}\n")
----- #docs == 2, docs[2].spec.ports[1].port == 80 (an integer)
---```
---
---@param text string a YAML stream (UTF-8, or UTF-16 with a byte order mark)
---@param opts? yaml.load.Opts
---@return any[] documents
function yaml.load(text, opts) end

---Reads the file at path and parses it as yaml.load does, with the path as the
---name in error messages. A file that cannot be read raises
---`yaml.load_file: <path>: <reason>` (e.g. `No such file or directory`), and so
---does one over 64 MiB.
---@param path string
---@return any[] documents
function yaml.load_file(path) end

---Writes a Lua value as YAML text, laid out as kubectl prints objects.
---
--- - A table with the json array marker, or with exactly the keys 1..n (n > 0), is
---   a block sequence (an empty marked table is `[]`); any other table is a block
---   mapping with its keys in byte order (an empty one is `{}`) and needs string
---   keys. Sequences under a mapping key are not indented (`- name: web`).
--- - nil and json.null → `null`; booleans; integers exactly; floats in the shortest
---   form that reads back the same, always with a `.` or exponent (`3.0`, `1e+300`),
---   infinities and NaN as `.inf`, `-.inf`, `.nan`.
--- - Strings are plain when they read back as the same string, here and in
---   Kubernetes; otherwise double-quoted: anything that would read as null, a
---   boolean (including `y`, `n`) or a number (`"8080"`, `"0755"`, `"1.0"`), a
---   timestamp, the empty string, leading or trailing spaces, `: ` or ` #`, a
---   leading indicator (`-`, `*`, `&`, `!`, `[`, `{`, quotes, ...), control
---   characters. Strings with a newline are literal blocks (`|`, `|-`, `|+` per
---   their trailing newlines) unless a block cannot carry them exactly (trailing
---   spaces on a line, control characters), then double-quoted.
--- - With `{documents = true}`, value is a list of documents written as one stream:
---   `a: 1\n---\nb: 2\n` (an empty list gives `""`).
---
---Errors are strings naming the JSONPath of the value (indices from 0):
---`yaml.dump: cannot encode function at $.spec.template`,
---`yaml.dump: non-string key (boolean) in mapping at $.metadata`,
---`yaml.dump: string is not valid UTF-8 at $.data["key.bin"]`, `... cycle at $.a.b`.
---Tables nested deeper than 128 levels raise, and so does output over 64 MiB.
---Metamethods are not consulted.
---
---Example:
---
---```lua
---yaml.dump({kind = "ConfigMap", data = {port = "8080", script = "echo hi\n"}})
----- 'data:\n  port: "8080"\n  script: |\n    echo hi\nkind: ConfigMap\n'
---```
---
---@param value any
---@param opts? yaml.dump.Opts
---@return string
function yaml.dump(value, opts) end

return yaml
