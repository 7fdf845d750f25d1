-- cli_spec.lua: the ferry command line as a user meets it — version, help,
-- usage errors, and the plain interpreter (`ferry lua`, `ferry -e`) with its
-- module loading: native modules need no path, pure-Lua modules come from
-- LUA_PATH, bytecode is refused everywhere. Runs FERRY_BIN as a subprocess.

local support = require("support")

-- ---- helpers ----

local q, read, write, contains = support.q, support.read, support.write, support.contains
local ferry = support.run_ferry -- ferry(dir, args, env) runs FERRY_BIN: {code, stdout, stderr}

-- Lua code for `ferry -e` that writes the bytecode of a small function to
-- the file named by arg[1].
local DUMP_BYTECODE = [[
local f = assert(io.open(arg[1], "wb"))
f:write(string.dump(function() print("bytecode ran") return {} end))
f:close()
]]

-- ---- specs ----

describe("ferry cli", function()
  local tmp

  before_each(function() tmp = support.make_tmpdir() end)
  after_each(function() support.remove_tree(tmp) end)

  describe("version and help", function()
    it("prints the versions of ferry, Lua and libcurl", function()
      local r = ferry(tmp, {"version"})
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:match("^ferry %d+%.%d+%.%d+"), r.stdout)
      assert.is_true(contains(r.stdout, "Lua 5.4"), r.stdout)
      assert.is_true(contains(r.stdout, "libcurl"), r.stdout)
    end)

    it("prints usage for `ferry help`, naming the commands", function()
      local r = ferry(tmp, {"help"})
      assert.are.equal(0, r.code, r.stderr)
      assert.is_true(contains(r.stdout, "usage: ferry COMMAND"), r.stdout)
      for _, cmd in ipairs({"run SCRIPT", "check SCRIPT", "lua FILE", "-e CODE", "version"}) do
        assert.is_true(contains(r.stdout, cmd), "help does not mention " .. cmd .. ":\n" .. r.stdout)
      end
    end)

    it("prints the run command's options for `ferry run --help`", function()
      local r = ferry(tmp, {"run", "--help"})
      assert.are.equal(0, r.code, r.stderr)
      assert.is_true(contains(r.stdout, "usage: ferry run SCRIPT"), r.stdout)
      for _, opt in ipairs({"-p, --param", "--junit", "--timeout"}) do
        assert.is_true(contains(r.stdout, opt), "run --help does not mention " .. opt .. ":\n" .. r.stdout)
      end
    end)

    it("exits 2 on an unknown command, naming it", function()
      local r = ferry(tmp, {"frobnicate"})
      assert.are.equal(2, r.code, r.stderr)
      assert.is_true(contains(r.stderr, "frobnicate"), r.stderr)
      assert.are.equal("", r.stdout)
    end)

    it("exits 2 with usage when given no command", function()
      local r = ferry(tmp, {})
      assert.are.equal(2, r.code, r.stderr)
      assert.is_true(contains(r.stderr, "usage: ferry"), r.stderr)
    end)
  end)

  describe("interpreter", function()
    it("runs a string of Lua with -e", function()
      local r = ferry(tmp, {"-e", "print(1 + 1)"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("2\n", r.stdout)
    end)

    it("exits 2 with the message and a traceback when -e code raises", function()
      local r = ferry(tmp, {"-e", "local function f() error('boom here') end f()"})
      assert.are.equal(2, r.code, r.stderr)
      assert.is_true(contains(r.stderr, "boom here"), r.stderr)
      assert.is_true(contains(r.stderr, "stack traceback:"), r.stderr)
    end)

    it("gives `ferry lua FILE a b` the arguments in arg and in ...", function()
      local script = tmp .. "/args.lua"
      write(script, 'print(arg[0], arg[1], arg[2], select("#", ...), ...)\n')
      local r = ferry(tmp, {"lua", script, "a", "b"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(script .. "\ta\tb\t2\ta\tb\n", r.stdout)
    end)

    it("loads the native modules without a search path", function()
      local code = [[
for _, name in ipairs({"http", "json", "yaml", "log", "task", "workflow"}) do
  io.write(name, "=", type(require(name)), "\n")
end]]
      local r = ferry(tmp, {"-e", code}, {"LUA_PATH=" .. tmp .. "/none/?.lua", "LUA_CPATH=" .. tmp .. "/none/?.so",
                                          "LUA_PATH_5_4=" .. tmp .. "/none/?.lua",
                                          "LUA_CPATH_5_4=" .. tmp .. "/none/?.so"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("http=table\njson=table\nyaml=table\nlog=table\ntask=table\nworkflow=table\n", r.stdout)
    end)

    it("loads a pure-Lua module from LUA_PATH", function()
      os.execute("mkdir -p " .. q(tmp .. "/lib/acme"))
      write(tmp .. "/lib/acme/greet.lua", 'local M = {}\nfunction M.hello(who) return "hello " .. who end\nreturn M\n')
      local r = ferry(tmp, {"-e", 'print(require("acme.greet").hello("ferry"))'},
        {"LUA_PATH=" .. tmp .. "/lib/?.lua;;", "LUA_PATH_5_4=" .. tmp .. "/lib/?.lua;;"})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("hello ferry\n", r.stdout)
    end)
  end)

  describe("bytecode", function()
    local chunk

    before_each(function()
      chunk = tmp .. "/chunk.luac"
      local r = ferry(tmp, {"-e", DUMP_BYTECODE, chunk})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("\27Lua", read(chunk):sub(1, 4), "string.dump did not produce bytecode")
    end)

    -- A command that refuses the chunk: exit 2, a complaint that it is
    -- binary, and none of the chunk's own output.
    local function assert_refused(r)
      assert.are.equal(2, r.code, r.stderr)
      assert.is_true(contains(r.stderr, "binary"), r.stderr)
      assert.is_false(contains(r.stdout, "bytecode ran"), r.stdout)
    end

    it("is refused by `ferry lua` with exit 2", function()
      assert_refused(ferry(tmp, {"lua", chunk}))
    end)

    it("is refused by `ferry run` with exit 2", function()
      assert_refused(ferry(tmp, {"run", chunk}))
    end)

    it("is refused by load(), which returns nil and a message", function()
      local r = ferry(tmp, {"-e", [[
local f, err = load(string.dump(function() return 1 end))
print(f, err)
f, err = load(string.dump(function() return 1 end), "chunk", "b")
print(f, err)]]})
      assert.are.equal(0, r.code, r.stderr)
      local first, second = r.stdout:match("^([^\n]*)\n([^\n]*)\n$")
      assert.is_truthy(first and first:match("^nil\t.*binary"), r.stdout)
      assert.is_truthy(second and second:match("^nil\t.*binary"), "mode 'b' let bytecode in: " .. r.stdout)
    end)

    it("leaves load() and loadfile() of source text in the global environment", function()
      local path = tmp .. "/chunk.lua"
      support.write(path, "return type(print)")
      local r = ferry(tmp, {"-e", ("print(load('return type(print)')(), loadfile(%q)())"):format(path)})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("function\tfunction\n", r.stdout)
    end)

    it("is refused by loadfile() and dofile()", function()
      local r = ferry(tmp, {"-e", [[
local f, err = loadfile(arg[1])
print(f, err)
local ok, derr = pcall(dofile, arg[1])
print(ok, derr)]], chunk})
      assert.are.equal(0, r.code, r.stderr)
      assert.is_false(contains(r.stdout, "bytecode ran"), r.stdout)
      local first, second = r.stdout:match("^([^\n]*)\n([^\n]*)\n$")
      assert.is_truthy(first and first:match("^nil\t.*binary"), r.stdout)
      assert.is_truthy(second and second:match("^false\t.*binary"), r.stdout)
    end)

    it("is refused by require() for a module on LUA_PATH", function()
      os.execute("mkdir -p " .. q(tmp .. "/lib"))
      assert(os.rename(chunk, tmp .. "/lib/sneaky.lua"))
      local r = ferry(tmp, {"-e", 'print(pcall(require, "sneaky"))'},
        {"LUA_PATH=" .. tmp .. "/lib/?.lua", "LUA_PATH_5_4=" .. tmp .. "/lib/?.lua"})
      assert.are.equal(0, r.code, r.stderr)
      assert.is_false(contains(r.stdout, "bytecode ran"), r.stdout)
      assert.is_truthy(r.stdout:match("^false\t.*binary"), r.stdout)
    end)
  end)
end)
