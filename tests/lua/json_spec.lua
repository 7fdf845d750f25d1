-- json_spec.lua: the json module — what decode keeps (integers, [] versus {},
-- arrayness, null), what encode writes (exact numbers, escapes, sorted keys,
-- pretty layout) and the errors both raise for bad input.
local json = require("json")
local support = require("support")

local raised = support.raised -- the error a call raises; fails the spec when it returns

describe("json", function()
  it("decodes integers as integers and fractions as floats", function()
    local v = json.decode('{"replicas": 3, "port": -27017, "zero": 0, "ratio": 0.5, "whole": 3.0, "exp": 1e3}')
    assert.are.equal("integer", math.type(v.replicas))
    assert.are.equal(3, v.replicas)
    assert.are.equal(-27017, v.port)
    assert.are.equal("integer", math.type(v.zero))
    assert.are.equal("float", math.type(v.ratio))
    assert.are.equal("integer", math.type(v.whole))
    assert.are.equal(1000, v.exp)
    assert.are.equal("integer", math.type(v.exp))
    assert.are.equal('{"exp":1000,"port":-27017,"ratio":0.5,"replicas":3,"whole":3,"zero":0}', json.encode(v))
  end)

  it("reads and writes big integers exactly", function()
    local text = "[4611686018427387904,4611686018427387905,9223372036854775807,-9223372036854775808,9007199254740993]"
    local v = json.decode(text)
    assert.are.equal(1 << 62, v[1])
    assert.are.equal((1 << 62) + 1, v[2])
    assert.are.equal(math.maxinteger, v[3])
    assert.are.equal(math.mininteger, v[4])
    assert.are.equal(9007199254740993, v[5])
    for _, n in ipairs(v) do assert.are.equal("integer", math.type(n)) end
    assert.are.equal(text, json.encode(v))
  end)

  it("reads integers beyond 64 bits as floats", function()
    local v = json.decode("[18446744073709551616]")
    assert.are.equal("float", math.type(v[1]))
    assert.are.equal(2.0 ^ 64, v[1])
  end)

  it("round-trips floats exactly in their shortest form", function()
    local cases = {
      [0.1] = "0.1", [1 / 3] = "0.3333333333333333", [-2.5e-7] = "-2.5e-07", [1e300] = "1e+300",
      [2.0 ^ 63] = "9.223372036854776e+18", [123456.789] = "123456.789",
    }
    for x, text in pairs(cases) do
      assert.are.equal(text, json.encode(x))
      local back = json.decode(text)
      assert.are.equal("float", math.type(back))
      assert.are.equal(x, back)
    end
  end)

  it("keeps [] and {} apart, nested too", function()
    local text = '{"a":[],"b":{},"c":[[]],"d":[{},[[],{}]],"e":{"f":[]}}'
    local v = json.decode(text)
    assert.is_true(json.is_array(v.a))
    assert.is_false(json.is_array(v.b))
    assert.is_nil(next(v.a))
    assert.is_nil(next(v.b))
    assert.is_true(json.is_array(v.c[1]))
    assert.are.equal(text, json.encode(v))
  end)

  it("decodes [] written with whitespace inside as an empty array", function()
    local v = json.decode('{"a": [ \n\t ], "b": [\r\n]}')
    assert.are.equal('{"a":[],"b":[]}', json.encode(v))
  end)

  it("keeps decoded arrays arrays after table.remove empties them", function()
    local v = json.decode('{"finalizers": ["kubernetes"], "ports": [80, 443]}')
    table.remove(v.finalizers)
    table.remove(v.ports)
    table.remove(v.ports)
    assert.are.equal('{"finalizers":[],"ports":[]}', json.encode(v))
  end)

  it("decodes null as json.null and encodes json.null and nil as null", function()
    local v = json.decode('{"image": null, "args": [null, 1, null]}')
    assert.are.equal(json.null, v.image)
    assert.are.equal("userdata", type(json.null))
    assert.are.equal(3, #v.args)
    assert.are.equal(json.null, v.args[1])
    assert.are.equal('{"args":[null,1,null],"image":null}', json.encode(v))
    assert.are.equal("null", json.encode(nil))
    assert.are.equal("null", json.encode(json.null))
  end)

  it("escapes quotes, backslashes and control characters, and leaves / and UTF-8 alone", function()
    assert.are.equal([["say \"hi\" \\ a/b"]], json.encode('say "hi" \\ a/b'))
    assert.are.equal('"\\n\\r\\t\\b\\f\\u0000\\u0001\\u001f\127"', json.encode("\n\r\t\b\f\0\1\31\127"))
    assert.are.equal('"héllo → 世界 😀"', json.encode("héllo → 世界 😀"))
    local s = "a\"b\\c\0d\n\1é😀"
    assert.are.equal(s, json.decode(json.encode(s)))
  end)

  it("decodes \\u escapes, surrogate pairs included, to UTF-8", function()
    assert.are.equal("é→😀\0", json.decode([["\u00e9\u2192\ud83d\ude00\u0000"]]))
    assert.are.equal("/", json.decode([["\/"]]))
  end)

  it("writes object keys in byte order", function()
    local v = {zeta = 1, alpha = 2, Beta = 3, ["é"] = 4, ["a b"] = 5, a = 6, [""] = 7}
    assert.are.equal('{"":7,"Beta":3,"a":6,"a b":5,"alpha":2,"zeta":1,"é":4}', json.encode(v))
  end)

  it("writes the same object in table order when sort is false", function()
    local v = {spec = {replicas = 2, selector = {app = "mongo"}}, kind = "Deployment"}
    local text = json.encode(v, {sort = false})
    assert.are.same(v, json.decode(text))
  end)

  it("pretty-prints with two-space indentation", function()
    local v = json.decode('{"kind":"Pod","metadata":{"name":"db","labels":{}},"spec":{"containers":[{"name":"mongo",'
      .. '"ports":[27017,27018],"args":[]}]}}')
    local expected = table.concat({
      '{',
      '  "kind": "Pod",',
      '  "metadata": {',
      '    "labels": {},',
      '    "name": "db"',
      '  },',
      '  "spec": {',
      '    "containers": [',
      '      {',
      '        "args": [],',
      '        "name": "mongo",',
      '        "ports": [',
      '          27017,',
      '          27018',
      '        ]',
      '      }',
      '    ]',
      '  }',
      '}',
    }, "\n")
    assert.are.equal(expected, json.encode(v, {pretty = true}))
    assert.are.equal("[]", json.encode(json.array(), {pretty = true}))
    assert.are.equal("3", json.encode(3, {pretty = true}))
  end)

  it("encodes an empty unmarked table as {} and json.array() as []", function()
    assert.are.equal("{}", json.encode({}))
    assert.are.equal("[]", json.encode(json.array()))
    assert.are.equal("[]", json.encode(json.empty_array))
    assert.are.equal("[1,2]", json.encode({1, 2}))
  end)

  it("marks tables with json.array and reports the marker with json.is_array", function()
    local t = {1, 2}
    assert.are.equal(t, json.array(t))
    assert.is_true(json.is_array(t))
    assert.is_false(json.is_array({1, 2}))
    assert.is_false(json.is_array("[]"))
    assert.is_true(json.is_array(json.empty_array))
    assert.are.equal(getmetatable(json.array()), getmetatable(json.decode("[1]")))
    assert.are.equal(getmetatable(json.array()), getmetatable(json.empty_array))
    assert.are.equal("[1,null,3]", json.encode(json.array({1, nil, 3})))
    assert.matches("already has a metatable", raised(json.array, setmetatable({}, {})), 1, true)
  end)

  it("keeps json.empty_array empty", function()
    assert.matches("read-only", raised(function() json.empty_array[1] = "x" end), 1, true)
    assert.matches("protected metatable", raised(setmetatable, json.empty_array, nil), 1, true)
    assert.are.equal("[]", json.encode(json.empty_array))
  end)

  it("names the line and column of a decode error", function()
    local err = raised(json.decode, '{\n  "kind": "Pod",\n  "spec": {\n    "replicas": tree\n  }\n}')
    assert.is_string(err)
    assert.matches("json.decode: ", err, 1, true)
    assert.matches("(line 4, column 17)", err, 1, true)
  end)

  it("names the position in the original text when the text was rewritten", function()
    -- [] and long integers are rewritten before lua-cjson sees the text
    local err = raised(json.decode, '{"a": [],\n "b": 12345678901234567890,\n "c": [ ], "d": x}')
    assert.matches("(line 3, column 17)", err, 1, true)
    err = raised(json.decode, '{12345678901234567: []}')
    assert.matches("Expected object key string but found T_NUMBER at character 2 (line 1, column 2)", err, 1, true)
  end)

  it("refuses what strict JSON does not allow", function()
    for _, text in ipairs({"NaN", "[Infinity]", "0x10", "[01]", "", "[1,]", "{'a': 1}", "[1] x", "[1]\0"}) do
      assert.matches("^json%.decode: ", raised(json.decode, text))
    end
  end)

  it("leaves placeholder-like text inside strings untouched", function()
    local text = '{"a":"[]","b":"[ ]","c":"\\u0000ferry:empty-array x","d":"\\u0000ferry:int:5x",'
      .. '"e":"12345678901234567890","f":"[\\"]\\"]","g":[],"h":12345678901234567890123}'
    local v = json.decode(text)
    assert.are.equal("[]", v.a)
    assert.are.equal("[ ]", v.b)
    assert.are.equal("\0ferry:empty-array x", v.c)
    assert.are.equal("\0ferry:int:5x", v.d)
    assert.are.equal("12345678901234567890", v.e)
    assert.are.equal('["]"]', v.f)
    assert.is_true(json.is_array(v.g))
    assert.are.equal(text:gsub(',"h":.*', ',"h":1.2345678901234568e+22}'), json.encode(v))
  end)

  it("raises naming the path of a value it cannot encode", function()
    local err = raised(json.encode, {spec = {template = {command = print}}})
    assert.are.equal("json.encode: cannot encode function at $.spec.template.command", err)
    err = raised(json.encode, {metadata = {labels = {["app.kubernetes.io/name"] = coroutine.create(print)}}})
    assert.are.equal('json.encode: cannot encode thread at $.metadata.labels["app.kubernetes.io/name"]', err)
  end)

  it("raises on NaN and infinities, naming the path", function()
    assert.are.equal("json.encode: cannot encode NaN at $.status.ratio[1]",
      raised(json.encode, {status = {ratio = {1, 0 / 0}}}))
    assert.are.equal("json.encode: cannot encode inf at $", raised(json.encode, math.huge))
    assert.are.equal("json.encode: cannot encode -inf at $.x", raised(json.encode, {x = -math.huge}))
  end)

  it("raises on mixed, non-string or sparse keys, naming the path", function()
    assert.are.equal("json.encode: mixed or non-string keys at $.spec.ports",
      raised(json.encode, {spec = {ports = {80, name = "http"}}}))
    assert.are.equal("json.encode: mixed or non-string keys at $[0]", raised(json.encode, {{[true] = 1}}))
    assert.matches("json.encode: sparse array", raised(json.encode, {1, nil, 3}), 1, true)
  end)

  it("raises on nesting deeper than 128 tables, and so on cycles", function()
    local deep = {}
    local t = deep
    for _ = 1, 127 do t.a = {} t = t.a end
    assert.is_string(json.encode(deep)) -- 128 levels are fine
    t.a = {}
    local err = raised(json.encode, deep)
    assert.matches("^json%.encode: nested deeper than 128 tables %(a cycle%?%) at %$%.a%.a", err)
    local cycle = {}
    cycle.self = {cycle}
    assert.matches("^json%.encode: nested deeper than 128 tables", raised(json.encode, cycle))
  end)

  it("raises on unknown or mistyped options", function()
    assert.matches("unknown option 'prety'", raised(json.encode, {}, {prety = true}), 1, true)
    assert.matches("'sort' must be a boolean", raised(json.encode, {}, {sort = "no"}), 1, true)
    assert.matches("option names must be strings", raised(json.encode, {}, {true}), 1, true)
  end)

  it("prefixes its errors with the calling line, like other Lua errors", function()
    local line = debug.getinfo(1, "l").currentline
    local decode_err = raised(function() return json.decode("[1,") end)
    local encode_err = raised(function() return json.encode({f = print}) end)
    assert.matches("json_spec.lua:" .. (line + 1) .. ": json.decode: ", decode_err, 1, true)
    assert.matches("json_spec.lua:" .. (line + 2) .. ": json.encode: cannot encode function at $.f",
      encode_err, 1, true)
  end)
end)
