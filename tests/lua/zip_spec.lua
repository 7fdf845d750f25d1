-- zip_spec.lua: the zip module: reading in-memory archives made by other
-- tools (Python's zipfile, as CodeBuild's artifacts are made by other
-- tools), writing archives they read, and the caps that stop zip bombs.
local support = require("support")
local zip = require("zip")

-- The bytes of a zip archive made by /usr/bin/python3's zipfile from a list of
-- {name, contents} (a name ending in "/" is a directory entry).
local function python_zip(entries, dir)
  local lines = {"import sys, zipfile", "z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)"}
  for _, e in ipairs(entries) do
    lines[#lines + 1] = ("z.writestr(%q, bytes.fromhex(%q))"):format(e[1], (e[2]:gsub(".", function(c)
      return ("%02x"):format(c:byte())
    end)))
  end
  lines[#lines + 1] = "z.close()"
  local script, out = dir .. "/make.py", dir .. "/out.zip"
  support.write(script, table.concat(lines, "\n") .. "\n")
  assert(os.execute(("/usr/bin/python3 %s %s"):format(support.q(script), support.q(out))))
  return assert(support.read(out))
end

-- name -> contents as Python's zipfile reads the archive bytes.
local function python_unzip(bytes, dir)
  support.write(dir .. "/in.zip", bytes)
  support.write(dir .. "/read.py", table.concat({
    "import sys, zipfile",
    "z = zipfile.ZipFile(sys.argv[1])",
    "assert z.testzip() is None",
    "for i in z.infolist(): print(i.filename, i.date_time[0], z.read(i).hex())",
  }, "\n") .. "\n")
  local p = io.popen(("/usr/bin/python3 %s %s"):format(support.q(dir .. "/read.py"), support.q(dir .. "/in.zip")))
  local out, years = {}, {}
  for line in p:lines() do
    local name, year, hex = line:match("^(%S+) (%d+) (%x*)$")
    out[name] = hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
    years[#years + 1] = tonumber(year)
  end
  assert(p:close())
  return out, years
end

-- Overwrites the 4 little-endian bytes at 1-based position pos.
local function patch_u32(s, pos, v)
  return s:sub(1, pos - 1) .. string.pack("<I4", v) .. s:sub(pos + 4)
end

describe("zip", function()
  local dir
  before_each(function() dir = support.make_tmpdir() end)
  after_each(function() support.remove_tree(dir) end)

  it("reads an archive made by another tool into path -> contents, skipping directories", function()
    local binary = {}
    for i = 0, 255 do binary[#binary + 1] = string.char(i) end
    local bytes = python_zip({{"build.json", '{"image":"app:v1"}'}, {"conf/", ""},
                              {"conf/app.yaml", "replicas: 2\n"}, {"bin/blob", table.concat(binary):rep(50)},
                              {"empty.txt", ""}}, dir)
    local files = assert(zip.read(bytes))
    assert.same({["build.json"] = '{"image":"app:v1"}', ["conf/app.yaml"] = "replicas: 2\n",
                 ["bin/blob"] = table.concat(binary):rep(50), ["empty.txt"] = ""}, files)
  end)

  it("writes an archive another tool reads back exactly", function()
    local files = {["build.json"] = '{"tag":"v2"}', ["deep/dir/file.bin"] = ("\0\1\2\255"):rep(3000),
                   ["empty"] = ""}
    local got = python_unzip(zip.write(files), dir)
    assert.same(files, got)
  end)

  it("round-trips write then read", function()
    local files = {a = "alpha", ["b/c"] = ("x"):rep(100000), ["ünïcode.txt"] = "ok"}
    assert.same(files, zip.read(zip.write(files)))
  end)

  it("writes the same bytes for the same files, dated 1980-01-01", function()
    local a = zip.write({one = "1", two = "2", three = "3"})
    local b = zip.write({three = "3", two = "2", one = "1"})
    assert.equal(a, b)
    local _, years = python_unzip(a, dir)
    assert.same({1980, 1980, 1980}, years)
  end)

  it("writes an empty archive that reads back as no files", function()
    local bytes = zip.write({})
    assert.equal("PK\5\6", bytes:sub(1, 4))
    assert.same({}, python_unzip(bytes, dir))
    assert.same({}, zip.read(bytes))
  end)

  it("returns nil and a message for data that is not a zip archive", function()
    local files, err = zip.read("this is not a zip file at all")
    assert.is_nil(files)
    assert.matches("^zip.read: not a zip archive", err)
    files, err = zip.read("")
    assert.is_nil(files)
    assert.matches("not a zip archive", err)
  end)

  it("returns nil and a message for a truncated archive", function()
    local bytes = zip.write({a = ("data"):rep(1000)})
    local files, err = zip.read(bytes:sub(1, #bytes - 30))
    assert.is_nil(files)
    assert.matches("^zip.read: ", err)
  end)

  it("returns nil and a message naming the entry whose contents are corrupt", function()
    local bytes = zip.write({["payload.bin"] = ("abcdefgh"):rep(4000)})
    local corrupt = bytes:sub(1, 60) .. ("\255"):rep(16) .. bytes:sub(77)
    local files, err = zip.read(corrupt)
    assert.is_nil(files)
    assert.matches("payload.bin", err, 1, true)
  end)

  it("refuses more files than max_files", function()
    local many = {}
    for i = 1, 20 do many["f" .. i] = tostring(i) end
    local bytes = zip.write(many)
    assert.is_table(zip.read(bytes, {max_files = 20}))
    local files, err = zip.read(bytes, {max_files = 19})
    assert.is_nil(files)
    assert.equal("zip.read: more than 19 files in the archive (max_files)", err)
  end)

  it("refuses contents larger than max_size by their declared size", function()
    local bytes = zip.write({a = ("a"):rep(600), b = ("b"):rep(600)})
    assert.is_table(zip.read(bytes, {max_size = 1200}))
    local files, err = zip.read(bytes, {max_size = 1199})
    assert.is_nil(files)
    assert.equal("zip.read: uncompressed size over 1199 bytes (max_size)", err)
  end)

  it("stops a zip bomb that declares a small size once decompression passes max_size", function()
    local bytes = zip.write({bomb = ("\0"):rep(4 * 1024 * 1024)}) -- deflates to a few KiB
    assert.is_true(#bytes < 16 * 1024)
    local central = assert(bytes:find("PK\1\2", 1, true))
    local lying = patch_u32(patch_u32(bytes, 23, 10), central + 24, 10) -- local and central "10 bytes"
    local files, err = zip.read(lying, {max_size = 64 * 1024})
    assert.is_nil(files)
    assert.equal("zip.read: uncompressed size over 65536 bytes (max_size)", err)
  end)

  it("raises on bad arguments", function()
    assert.matches("bad argument #1", support.raised(zip.read, nil))
    assert.matches("max_size", support.raised(zip.read, "x", {max_size = -1}))
    assert.matches("bad argument #1", support.raised(zip.write, "x"))
    assert.matches("must be a string", support.raised(zip.write, {a = 1}))
    assert.matches("bad file name", support.raised(zip.write, {["dir/"] = ""}))
    assert.matches("bad file name", support.raised(zip.write, {[""] = "x"}))
  end)
end)
