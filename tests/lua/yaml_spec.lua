-- yaml_spec.lua: the yaml module — how load reads streams, scalars, tags,
-- anchors and merges, the errors it raises for bad or hostile input, how dump
-- lays out and quotes what it writes, and that Kubernetes manifests survive a
-- dump and a load unchanged.
local yaml = require("yaml")
local json = require("json")
local support = require("support")

local raised = support.raised -- the error a call raises; fails the spec when it returns

-- The one document of text.
local function load1(text)
  local docs = yaml.load(text)
  assert.are.equal(1, #docs)
  return docs[1]
end

-- Deep equality that also tells integers from floats and NaN from everything.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then
    if a ~= a then return b ~= b end
    return a == b and math.type(a) == math.type(b)
  end
  if json.is_array(a) ~= json.is_array(b) then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local DEPLOYMENT = [[
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: staging
  labels:
    app.kubernetes.io/name: web
    tier: "1"
  annotations: {}
spec:
  replicas: 3
  revisionHistoryLimit: 0
  selector:
    matchLabels:
      app.kubernetes.io/name: web
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
    spec:
      containers:
      - name: web
        image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:0123abcd
        args: ["--port", "8080", "-v"]
        ports:
        - containerPort: 8080
          protocol: TCP
        env:
        - name: DEBUG
          value: "true"
        - name: PORT
          value: "8080"
        - name: MODE
          value: "0755"
        - name: RATIO
          value: "1.0"
        - name: EMPTY
          value: ""
        - name: GREETING
          value: 'say: "hi" # not a comment'
        resources:
          limits:
            cpu: 500m
            memory: 256Mi
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 2.5
        volumeMounts: []
      volumes:
      - name: data
        persistentVolumeClaim:
          claimName: mongo-snap-clone
      tolerations: []
      nodeSelector: {}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-scripts
data:
  check.sh: |
    #!/bin/sh
    set -eu
    mongosh --quiet --eval 'db.runCommand({ping: 1})'

    echo "ok: $(date)"
  motd: |-
    no trailing newline
  one-line: plain text
  number-like: "42"
]]

describe("yaml", function()
  it("loads each document of a multi-document stream into a list", function()
    local docs = yaml.load("a: 1\n---\n- x\n--- text\n...\n---\n")
    assert.are.equal(4, #docs)
    assert.are.same({a = 1}, docs[1])
    assert.are.equal("x", docs[2][1])
    assert.are.equal("text", docs[3])
    assert.are.equal(json.null, docs[4])
    assert.are.equal(0, #yaml.load(""))
    assert.are.equal(0, #yaml.load("# only a comment\n"))
    assert.is_true(json.is_array(yaml.load("")))
  end)

  it("resolves plain scalars as Kubernetes does (y and n stay strings)", function()
    local cases = {
      {"null", json.null}, {"Null", json.null}, {"NULL", json.null}, {"~", json.null}, {"", json.null},
      {"true", true}, {"True", true}, {"TRUE", true}, {"yes", true}, {"Yes", true}, {"YES", true},
      {"on", true}, {"On", true}, {"ON", true},
      {"false", false}, {"False", false}, {"no", false}, {"NO", false}, {"off", false}, {"Off", false},
      {"y", "y"}, {"Y", "Y"}, {"n", "n"}, {"N", "N"}, {"yES", "yES"}, {"nil", "nil"},
      {"0", 0}, {"42", 42}, {"-17", -17}, {"+5", 5}, {"1_000", 1000},
      {"0x1F", 31}, {"0o17", 15}, {"0755", 493}, {"0b101", 5}, {"-0x10", -16},
      {"9223372036854775807", math.maxinteger}, {"-9223372036854775808", math.mininteger},
      {"9223372036854775808", 9223372036854775808.0}, {"08", 8.0},
      {"1.5", 1.5}, {".5", 0.5}, {"-.5", -0.5}, {"1.", 1.0}, {"1e3", 1000.0}, {"2.5E-1", 0.25},
      {".inf", math.huge}, {".Inf", math.huge}, {"+.INF", math.huge}, {"-.inf", -math.huge},
      {"-.Inf", -math.huge}, {".nan", 0 / 0}, {".NaN", 0 / 0},
      {"1e400", "1e400"}, {"0x", "0x"}, {"2024-01-01", "2024-01-01"}, {"1:20", "1:20"},
      {"1.2.3", "1.2.3"}, {"500m", "500m"}, {"hello world", "hello world"},
    }
    for _, case in ipairs(cases) do
      local got = load1("v: " .. case[1]).v
      assert.is_true(same(case[2], got),
        ("%q should load as %s (%s), got %s (%s)"):format(case[1], tostring(case[2]),
          math.type(case[2]) or type(case[2]), tostring(got), math.type(got) or type(got)))
    end
  end)

  it("keeps quoted scalars as strings", function()
    local doc = load1([[{a: "true", b: '8080', c: "~", d: '', e: "0x1F", f: 'null', g: "1.0"}]])
    assert.are.same({a = "true", b = "8080", c = "~", d = "", e = "0x1F", f = "null", g = "1.0"}, doc)
  end)

  it("keeps block scalars as strings, with their chomping", function()
    local doc = load1("clip: |\n  a\n  b\n\nstrip: |-\n  a\n  b\nkeep: |+\n  a\n\n"
      .. "folded: >\n  one\n  two\n\n  three\nnum: |\n  42\n")
    assert.are.equal("a\nb\n", doc.clip)
    assert.are.equal("a\nb", doc.strip)
    assert.are.equal("a\n\n", doc.keep)
    assert.are.equal("one two\nthree\n", doc.folded)
    assert.are.equal("42\n", doc.num)
  end)

  it("honours the !!str !!int !!float !!bool !!null tags and ignores others", function()
    local doc = load1("a: !!str 123\nb: !!int '42'\nc: !!float 1\nd: !!bool 'yes'\ne: !!null ''\n"
      .. "f: !custom 12\ng: !!str yes\n")
    assert.is_true(same({a = "123", b = 42, c = 1.0, d = true, e = json.null, f = 12, g = "yes"}, doc))
    assert.are.equal('yaml.load: input:1:4: cannot read "abc" as !!int', raised(yaml.load, "a: !!int abc"))
  end)

  it("marks sequences as arrays and keeps nulls in place", function()
    local doc = load1("list: []\nmap: {}\nitems: [1, ~, 3]\nmissing:\n")
    assert.is_true(json.is_array(doc.list))
    assert.is_false(json.is_array(doc.map))
    assert.are.equal(json.null, doc.items[2])
    assert.are.equal(3, #doc.items)
    assert.are.equal(json.null, doc.missing)
    assert.are.equal('{"items":[1,null,3],"list":[],"map":{},"missing":null}', json.encode(doc))
  end)

  it("turns every mapping key into its source text", function()
    local doc = load1("80: http\n443: https\ntrue: t\n~: n\n1.5: f\n'quoted': q\n")
    assert.are.same({["80"] = "http", ["443"] = "https", ["true"] = "t", ["~"] = "n", ["1.5"] = "f",
      quoted = "q"}, doc)
    assert.are.equal("yaml.load: input:1:3: mapping keys must be scalars (complex keys not supported)",
      raised(yaml.load, "? [a, b]\n: v\n"))
  end)

  it("shares anchored values through aliases and merges << keys", function()
    local doc = load1([[
defaults: &defaults {cpu: 100m, memory: 64Mi}
extra: &extra {memory: 128Mi, gpu: 1}
ports: &ports [80, 443]
web:
  <<: *defaults
  cpu: 500m
api:
  cpu: 1
  <<: [*extra, *defaults]
svc: {ports: *ports, name: &n svc}
alias: *n
]])
    assert.are.equal(doc.ports, doc.svc.ports)
    assert.are.same({cpu = "500m", memory = "64Mi"}, doc.web)
    assert.are.same({cpu = 1, memory = "128Mi", gpu = 1}, doc.api)
    assert.are.equal("svc", doc.alias)
    assert.are.equal('yaml.load: input:1:4: unknown anchor "nope"', raised(yaml.load, "a: *nope"))
    assert.are.equal("yaml.load: input:1:9: merge key << needs a mapping or a list of mappings",
      raised(yaml.load, "a: {<<: 1}"))
  end)

  it("rejects an alias bomb instead of expanding it", function()
    local lines = {'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'}
    for i = 1, 9 do
      local a = "*a" .. (i - 1)
      lines[#lines + 1] = ("a%d: &a%d [%s]"):format(i, i, (a .. ", "):rep(9) .. a)
    end
    local err = raised(yaml.load, table.concat(lines, "\n"))
    assert.are.equal("yaml.load: input:6:45: aliases expand to more than 1000000 nodes", err)
  end)

  it("rejects nesting deeper than 128 levels", function()
    assert.are.equal(1, #yaml.load(("["):rep(128) .. ("]"):rep(128)))
    assert.are.equal("yaml.load: input:1:129: nesting deeper than 128 levels",
      raised(yaml.load, ("["):rep(129) .. ("]"):rep(129)))
  end)

  it("rejects duplicate keys, naming the line", function()
    local err = raised(yaml.load, "metadata:\n  name: a\n  labels: {}\n  name: b\n", {name = "app.yaml"})
    assert.are.equal('yaml.load: app.yaml:4:3: duplicate key "name"', err)
  end)

  it("reports parse errors as name:line:column: problem (context)", function()
    assert.are.equal("yaml.load: input:3:1: did not find expected ',' or ']' (while parsing a flow sequence)",
      raised(yaml.load, "a: 1\nb: [1, 2\n"))
    assert.are.equal("yaml.load: deploy.yaml:2:5: mapping values are not allowed in this context",
      raised(yaml.load, "a: 1\nb: c: d\n", {name = "deploy.yaml"}))
    assert.are.equal("yaml.load: input:1:1: found character that cannot start any token "
      .. "(while scanning for the next token)", raised(yaml.load, "\tkey: v\n"))
  end)

  it("load_file reads a file and names its path in errors", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("kind: Namespace\n---\nkind: Pod\nkind: Pod\n")
    f:close()
    local err = raised(yaml.load_file, path)
    assert.are.equal("yaml.load_file: " .. path .. ':4:1: duplicate key "kind"', err)
    f = assert(io.open(path, "w"))
    f:write("kind: Namespace\n")
    f:close()
    assert.are.same({{kind = "Namespace"}}, yaml.load_file(path))
    os.remove(path)
    assert.are.equal("yaml.load_file: " .. path .. ": No such file or directory", raised(yaml.load_file, path))
  end)

  it("dumps mapping keys in byte order, sequences unindented under their key", function()
    local text = yaml.dump({spec = {b = 1, a = 2, B = 3, ["_x"] = 4}, kind = "Pod", apiVersion = "v1",
      items = {"x", "z"}})
    assert.are.equal("apiVersion: v1\nitems:\n- x\n- z\nkind: Pod\nspec:\n  B: 3\n  _x: 4\n  a: 2\n  b: 1\n", text)
  end)

  it("quotes strings that would not read back as the same string", function()
    local quoted = {"yes", "No", "on", "y", "N", "true", "null", "~", "", "1.0", "0755", "0x1F", "1e3", "8080",
      "-1", ".inf", "1e400", "2024-01-01", "1:20", "<<", " lead", "trail ", "a: b", "a #b", "#c", "- x", "-",
      "---", "[x]", "{x}", "*ref", "&anchor", "!tag", "|", ">", "'q'", '"q"', "%p", "@at", "`b`", "?", ":x",
      "tab\there", "nul\0byte"}
    for _, s in ipairs(quoted) do
      local text = yaml.dump({v = s})
      assert.are.equal('v: "', text:sub(1, 4), ("%q should be double-quoted, got %q"):format(s, text))
      assert.are.equal(s, load1(text).v)
    end
    local plain = {"web", "500m", "a:b", "a#b", "-x", "--flag", "http://x:80/y", "it's", 'say "hi"', "naïve",
      "1.2.3-rc1", "Yes please"}
    for _, s in ipairs(plain) do
      assert.are.equal("v: " .. s .. "\n", yaml.dump({v = s}))
    end
  end)

  it("dumps multi-line strings as literal blocks when a block can carry them", function()
    -- a kept final newline at the end of a document needs the "..." end marker
    assert.are.equal("a: |\n  line 1\n  line 2\nb: |-\n  x\n  y\nc: |+\n  z\n\n...\n",
      yaml.dump({a = "line 1\nline 2\n", b = "x\ny", c = "z\n\n"}))
    assert.are.equal('a: "trailing \\nspace\\n"\n', yaml.dump({a = "trailing \nspace\n"}))
    assert.are.equal('a: "cr\\r\\nlf\\n"\n', yaml.dump({a = "cr\r\nlf\n"}))
  end)

  it("dumps empty arrays as [] and empty tables as {}", function()
    assert.are.equal("a: []\nb: {}\nc: []\n", yaml.dump({a = json.array(), b = {}, c = load1("[]")}))
    assert.are.equal("[]\n", yaml.dump(json.array()))
    assert.are.equal("{}\n", yaml.dump({}))
    assert.are.equal("args: []\n", yaml.dump({args = json.empty_array})) -- the shared marker too
  end)

  it("dumps integers exactly and floats so they reload as floats", function()
    local v = json.array({math.maxinteger, math.mininteger, 3.0, 0.1, -0.0, 1e300, 2.5e-7, math.huge, -math.huge, 0 / 0,
      json.null, true, false})
    local text = yaml.dump(v)
    assert.are.equal("- 9223372036854775807\n- -9223372036854775808\n- 3.0\n- 0.1\n- -0.0\n- 1e+300\n"
      .. "- 2.5e-07\n- .inf\n- -.inf\n- .nan\n- null\n- true\n- false\n", text)
    assert.is_true(same(v, load1(text)))
  end)

  it("dumps a list of documents as a multi-document stream", function()
    local text = yaml.dump({{kind = "Namespace"}, {kind = "Pod"}}, {documents = true})
    assert.are.equal("kind: Namespace\n---\nkind: Pod\n", text)
    assert.are.same({{kind = "Namespace"}, {kind = "Pod"}}, yaml.load(text))
    assert.are.equal("", yaml.dump({}, {documents = true}))
  end)

  it("refuses values YAML cannot carry, naming their path", function()
    assert.are.equal("yaml.dump: cannot encode function at $.spec.template",
      raised(yaml.dump, {spec = {template = print}}))
    assert.are.equal("yaml.dump: cannot encode userdata at $.items[1]", raised(yaml.dump, {items = {1, io.stdout}}))
    assert.are.equal("yaml.dump: non-string key (boolean) in mapping at $.metadata",
      raised(yaml.dump, {metadata = {[true] = 1}}))
    assert.are.equal("yaml.dump: non-string key (number) in mapping at $.labels",
      raised(yaml.dump, {labels = {"a", b = 1}}))
    assert.are.equal('yaml.dump: string is not valid UTF-8 at $["app.kubernetes.io/name"]',
      raised(yaml.dump, {["app.kubernetes.io/name"] = "\xff"}))
    assert.are.equal("yaml.dump: cannot encode function at $[1].kind",
      raised(yaml.dump, {{kind = "A"}, {kind = print}}, {documents = true}))
    local cycle = {spec = {}}
    cycle.spec.owner = cycle
    assert.are.equal("yaml.dump: cycle at $.spec.owner", raised(yaml.dump, cycle))
    local deep = {}
    local t = deep
    for _ = 1, 200 do
      t[1] = {}
      t = t[1]
    end
    assert.matches("^yaml%.dump: nesting deeper than 128 levels at %$%[0%]", raised(yaml.dump, deep))
  end)

  it("round-trips a Deployment and a ConfigMap through dump and load", function()
    local docs = yaml.load(DEPLOYMENT)
    assert.are.equal(2, #docs)
    local deploy, cm = docs[1], docs[2]
    local env = deploy.spec.template.spec.containers[1].env
    assert.are.equal("true", env[1].value)
    assert.are.equal("8080", env[2].value)
    assert.are.equal(8080, deploy.spec.template.spec.containers[1].ports[1].containerPort)
    assert.are.equal(2.5, deploy.spec.template.spec.containers[1].readinessProbe.periodSeconds)
    assert.are.equal(
      "#!/bin/sh\nset -eu\nmongosh --quiet --eval 'db.runCommand({ping: 1})'\n\necho \"ok: $(date)\"\n",
      cm.data["check.sh"])
    local text = yaml.dump(docs, {documents = true})
    assert.matches('\n          value: "true"\n', text, 1, true)
    assert.matches('\n          value: "8080"\n', text, 1, true)
    assert.matches("\n  check.sh: |\n    #!/bin/sh\n", text, 1, true)
    assert.matches("\n        volumeMounts: []\n", text, 1, true)
    assert.matches("\n      nodeSelector: {}\n", text, 1, true)
    local back = yaml.load(text)
    assert.is_true(same(docs, back), text)
    for i = 1, 2 do
      assert.is_true(same(docs[i], load1(yaml.dump(docs[i]))))
      assert.are.equal(json.encode(docs[i]), json.encode(back[i]))
    end
  end)
end)
