-- portworx_spec.lua: the portworx module's own logic, without a cluster —
-- connect's argument checks, both Volume encodings (SDK gateway JSON and
-- pxctl JSON) read into one shape, quantities and times, SDK error bodies as
-- error objects with their gRPC codes, and freeze/thaw ordering against a
-- stand-in exec. The backends against the doubles are in
-- portworx_sdk_spec.lua, portworx_kube_spec.lua and portworx_pxctl_spec.lua.
local errors = require("errors")
local json = require("json")
local portworx = require("portworx")
local support = require("support")
local task = require("task")

local freeze = require("portworx.freeze")
local gateway = require("portworx.gateway")
local perr = require("portworx.errors")
local volume = require("portworx.volume")

local function env(vars) return function(k) return vars[k] end end

describe("portworx", function()
  describe("connect", function()
    it("picks the sdk backend when an endpoint is known and kube otherwise", function()
      assert.equal("sdk", portworx.connect{endpoint = "http://127.0.0.1:9", _getenv = env{}}.backend)
      assert.equal("sdk", portworx.connect{_getenv = env{PORTWORX_SDK_ENDPOINT = "127.0.0.1:9021"}}.backend)
      local fake_kube = {get = function() end, namespace = "default"}
      assert.equal("kube", portworx.connect{kube = fake_kube, _getenv = env{}}.backend)
      assert.equal("stork", portworx.connect{kube = fake_kube, backend = "kube", snapshot_api = "stork"}.snapshot_api)
    end)

    it("refuses bad options with the caller's line", function()
      local cases = {
        {{backend = "nfs"}, "backend must be"},
        {{backend = "kube"}, "the kube backend needs kube"},
        {{backend = "pxctl"}, "the pxctl backend needs kube"},
        {{snapshot_api = "velero", endpoint = "x:1"}, "snapshot_api must be"},
        {{endpoint = ""}, "endpoint must be a non%-empty string"},
        {{kube = "cluster"}, "kube must be a kube client"},
        {{timeout = -1, endpoint = "x:1"}, "timeout must be"},
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(function() portworx.connect(c[1]) end)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("portworx.connect: " .. c[2]), tostring(err))
        assert.truthy(tostring(err):find("portworx_spec.lua", 1, true), tostring(err))
      end
    end)

    it("checks method arguments before any request", function()
      local px = portworx.connect{endpoint = "http://127.0.0.1:9", _getenv = env{}}
      local cases = {
        {function() px:snapshot{volume = "v"} end, "portworx.snapshot: field 'name' is required"},
        {function() px:snapshot{name = "s"} end, "portworx.snapshot: field 'volume' is required"},
        {function() px:snapshot{volume = "v", name = "s", labels = {env = 1}} end, "must map strings to strings"},
        {function() px:prune{keep = 2} end, "portworx.prune: labels are required"},
        {function() px:prune{labels = {env = "stage"}, keep = -1} end, "keep must be an integer"},
        {function() px:restore_pvc{snapshot = "s", name = "n"} end, "field 'namespace' is required"},
        {function() px:restore_pvc{snapshot = "s", namespace = "n", name = "n", size = "lots"} end, "size must be"},
        {function() px:volume_for_pvc("", "data") end, "namespace is required"},
        {function() px:cloudsnap_status("") end, "expected a task id"},
        {function() px:snapshot{volume = "v", name = "s", freeze = {pod = "p", argv = {}}} end, "freeze and thaw run"},
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(c[1])
        assert.is_false(ok)
        assert.truthy(tostring(err):find(c[2]), tostring(err))
      end
    end)

    it("raises unsupported for what a backend cannot do", function()
      local fake_kube = {get = function() end, namespace = "default"}
      local px = portworx.connect{kube = fake_kube, backend = "kube"}
      local err = support.raised(px.cloudsnap, px, {volume = {id = "1"}})
      assert.equal("unsupported", err.code)
      assert.truthy(err.message:find("sdk backend", 1, true))
      err = support.raised(px.create_volume, px, {name = "x", size = "1Gi"})
      assert.equal("unsupported", err.code)
    end)

    it("names the ways to give an endpoint when it has none", function()
      local px = portworx.connect{backend = "sdk", _getenv = env{}}
      local err = support.raised(px.volume, px, "123")
      assert.equal("no_endpoint", err.code)
      assert.truthy(err.message:find("PORTWORX_SDK_ENDPOINT", 1, true))
    end)
  end)

  describe("volume encodings", function()
    -- The SDK gateway: defaults omitted, int64 as strings, enum names.
    local sdk_json = [[{"id":"951679824907051932","source":{"parent":"11"},"readonly":true,
      "locator":{"name":"snap-1","volume_labels":{"env":"stage","pvc":"data"}},"ctime":"2025-03-01T10:00:00.5Z",
      "spec":{"size":"1073741824","ha_level":"2","format":"FS_TYPE_EXT4"},"usage":"33964032",
      "status":"VOLUME_STATUS_UP","state":"VOLUME_STATE_ATTACHED","attached_on":"10.0.0.10"}]]
    -- pxctl -j: defaults present, short lower-case enums.
    local pxctl_json = [[{"id":"951679824907051932","source":{"parent":"11","seed":""},"readonly":true,
      "locator":{"name":"snap-1","volume_labels":{"env":"stage","pvc":"data"}},"ctime":"2025-03-01T10:00:00.5Z",
      "spec":{"size":"1073741824","ha_level":"2","format":"ext4","shared":false},"usage":"33964032",
      "status":"up","state":"attached","attached_on":"10.0.0.10","error":""}]]

    it("reads SDK and pxctl JSON into the same table", function()
      local a, b = volume.normalize(json.decode(sdk_json)), volume.normalize(json.decode(pxctl_json))
      assert.same(a, b)
      assert.same({id = "951679824907051932", name = "snap-1", size = 1073741824, ha_level = 2, state = "attached",
                   status = "up", attached_on = "10.0.0.10", labels = {env = "stage", pvc = "data"}, parent = "11",
                   readonly = true, snapshot = true, clone = false, ctime = "2025-03-01T10:00:00.5Z",
                   usage = 33964032, format = "ext4", shared = false, sharedv4 = false, encrypted = false}, a)
    end)

    it("takes omitted SDK fields as their defaults, not as errors", function()
      local v = volume.normalize(json.decode([[{"id":"7","locator":{"name":"fresh"},"spec":{}}]]))
      assert.same({}, v.labels)
      assert.is_nil(v.parent)
      assert.is_false(v.readonly)
      assert.is_false(v.snapshot)
      assert.equal("none", v.state)
      assert.is_false(volume.is_attached(v))
      v = volume.normalize(json.decode([[{"id":"8","source":{"parent":"7"},"spec":{"size":"5"}}]]))
      assert.is_true(v.clone)
      assert.equal(5, v.size)
    end)

    it("orders snapshots by creation time, fractions included", function()
      local list = {
        {id = "3", ctime = "2025-03-01T10:00:01Z"},
        {id = "2", ctime = "2025-03-01T10:00:00.75Z"},
        {id = "1", ctime = "2025-03-01T10:00:00Z"},
        {id = "4", ctime = "2025-03-01T11:59:59+02:00"}, -- 09:59:59 UTC: before all of them
      }
      volume.sort_oldest_first(list)
      assert.same({"4", "1", "2", "3"}, {list[1].id, list[2].id, list[3].id, list[4].id})
      -- a clock with whole seconds only: names in natural order decide
      local same = {{id = "9", name = "stage-10", ctime = "2025-03-01T10:00:00Z"},
                    {id = "8", name = "stage-9", ctime = "2025-03-01T10:00:00Z"}}
      volume.sort_oldest_first(same)
      assert.same({"stage-9", "stage-10"}, {same[1].name, same[2].name})
      assert.equal(0, volume.epoch("1970-01-01T00:00:00Z"))
      assert.equal(951782400, volume.epoch("2000-02-29T00:00:00Z"))
    end)

    it("converts Kubernetes quantities both ways", function()
      assert.equal(10 * (1 << 30), volume.bytes("10Gi"))
      assert.equal(1500000000, volume.bytes("1.5G"))
      assert.equal(1073741824, volume.bytes("1073741824"))
      assert.equal(1000000000, volume.bytes("1e9"))
      assert.is_nil(volume.bytes("lots"))
      assert.equal("10Gi", volume.quantity(10 * (1 << 30)))
      assert.equal("1536Mi", volume.quantity(1536 * (1 << 20)))
      assert.equal("1000", volume.quantity(1000))
    end)
  end)

  describe("SDK errors", function()
    it("keep the gRPC code as a name and a number, and the SDK's message", function()
      local body = json.decode('{"error":"Volume id 123 not found","code":5,"message":"Volume id 123 not found"}')
      local err = perr.from_response(404, body, "", "GET /v1/volumes/inspect/123")
      assert.is_true(errors.is(err, "NotFound"))
      assert.equal(5, err.grpc_code)
      assert.equal(404, err.status)
      assert.equal("Volume id 123 not found", err.sdk_message)
      assert.equal("portworx: GET /v1/volumes/inspect/123: Volume id 123 not found [NotFound, HTTP 404]",
                   tostring(err))
    end)

    it("derive a code from the status for plain-text routing errors", function()
      local err = perr.from_response(404, nil, "Not Found\n", "GET /v1/nope")
      assert.equal("NotFound", err.code)
      assert.equal("Not Found", err.sdk_message)
      err = perr.from_response(401, nil, "", "GET /v1/volumes")
      assert.equal("Unauthenticated", err.code)
      assert.equal(16, err.grpc_code)
    end)

    it("recognise a duplicate snapshot name and the snapshot limit", function()
      local dup = perr.from_response(500, {code = 13, message = "Failed to create snapshot: Volume with name s already "
                                                                .. "exists"}, "", "POST /v1/volumes/snapshots")
      assert.equal("Internal", dup.code)
      assert.is_true(perr.is_already_exists(dup))
      assert.is_true(perr.is_ambiguous(dup))
      local text = "volume 1 has reached the maximum number of snapshots (64)"
      local limit = perr.from_response(500, {code = 13, message = text}, "", "POST /v1/volumes/snapshots")
      assert.is_true(perr.says_limit(limit))
      local err = support.raised(perr.snapshot_limit, {id = "1", name = "data"}, 64, limit)
      assert.equal("snapshot_limit", err.code)
      assert.equal(64, err.count)
      assert.truthy(err.message:find("prune", 1, true))
    end)
  end)

  describe("gateway helpers", function()
    it("normalizes endpoints and decodes Secret data", function()
      assert.equal("http://10.0.0.1:9021", gateway.normalize_endpoint("10.0.0.1:9021/"))
      assert.equal("https://px:9023", gateway.normalize_endpoint("https://px:9023"))
      assert.equal("hello token", gateway.base64_decode("aGVsbG8gdG9rZW4="))
      assert.equal("hello token", gateway.base64_decode("aGVsbG8gdG9rZW4"))
      assert.is_nil(gateway.base64_decode("not base64!"))
    end)
  end)

  describe("freeze and thaw", function()
    -- A stand-in kube client whose exec records argv and answers from a script.
    local function fake_kube(script)
      local calls = {}
      return {
        namespace = "prod",
        exec = function(_, pod, argv, opts)
          calls[#calls + 1] = {pod = pod, argv = argv[1], namespace = opts.namespace}
          local r = script[argv[1]]
          if type(r) == "function" then return r() end
          return r or {stdout = "", stderr = "", exit_code = 0}
        end,
      }, calls
    end
    local fz = {pod = "mongo-0", namespace = "prod", argv = {"lock"}}
    local th = {pod = "mongo-0", namespace = "prod", argv = {"unlock"}}

    it("runs freeze, the snapshot, then thaw", function()
      local kube, calls = fake_kube({})
      local got = freeze.run(kube, fz, th, 10, function() return "snap" end, "the snapshot")
      assert.equal("snap", got)
      assert.same({"lock", "unlock"}, {calls[1].argv, calls[2].argv})
    end)

    it("thaws when the snapshot fails, and raises the snapshot's error", function()
      local kube, calls = fake_kube({})
      local fail = function() error({code = "Internal"}, 0) end
      local err = support.raised(freeze.run, kube, fz, th, 10, fail, "x")
      assert.equal("Internal", err.code)
      assert.equal("unlock", calls[2].argv)
    end)

    it("thaws when the snapshot times out", function()
      local kube, calls = fake_kube({})
      local err = support.raised(freeze.run, kube, fz, th, 0.05, function() task.sleep(5) end, "the snapshot")
      assert.equal("timeout", err.code)
      assert.truthy(err.message:find("did not finish within 0.05s", 1, true))
      assert.equal("unlock", calls[2].argv)
    end)

    it("thaws when the calling task is cancelled mid-snapshot", function()
      local kube, calls = fake_kube({})
      local in_snapshot = false
      local t = task.spawn(freeze.run, kube, fz, th, 10, function() in_snapshot = true task.sleep(5) end, "x")
      -- cancel only once the freeze ran and the snapshot is under way
      assert.truthy(support.wait_for(5, function() return in_snapshot and task.status(t) == "waiting" end, 0.005),
                    "the snapshot never started")
      assert.equal(1, #calls)
      task.cancel(t)
      assert.is_false(pcall(task.wait, t))
      assert.truthy(support.wait_for(2, function() return #calls == 2 end))
      assert.equal("unlock", calls[2].argv)
    end)

    it("does not snapshot when the freeze fails, but still thaws", function()
      local kube, calls = fake_kube({lock = {stdout = "", stderr = "not primary\n", exit_code = 2}})
      local ran = false
      local err = support.raised(freeze.run, kube, fz, th, 10, function() ran = true end, "x")
      assert.equal("freeze_failed", err.code)
      assert.equal(2, err.exit_code)
      assert.truthy(err.message:find("not primary", 1, true))
      assert.is_false(ran)
      assert.equal("unlock", calls[2].argv)
    end)

    it("reports a failed thaw with the snapshot it took", function()
      local kube = fake_kube({unlock = {stdout = "", stderr = "not locked\n", exit_code = 1}})
      local err = support.raised(freeze.run, kube, fz, th, 10, function() return {id = "42"} end, "x")
      assert.equal("thaw_failed", err.code)
      assert.equal("42", err.snapshot.id)
    end)

    it("retries a thaw whose exec could not run", function()
      local n = 0
      local kube, calls = fake_kube({unlock = function()
        n = n + 1
        if n == 1 then error(errors.new{code = "exec_failed", message = "connection lost"}, 0) end
        return {stdout = "", stderr = "", exit_code = 0}
      end})
      assert.equal("snap", freeze.run(kube, fz, th, 10, function() return "snap" end, "x"))
      assert.equal(3, #calls)
    end)
  end)
end)
