-- kube_watch_spec.lua: client:watch against the loopback Kubernetes double —
-- list-then-watch, resuming from the last resourceVersion when the server ends
-- a stream, re-listing after 410 (as an ERROR event and as a plain HTTP 410),
-- retries after dropped connections and 5xx, events longer than one read, and
-- the deadline. What the client sent is read back from the double's request
-- log; the double's faults (/_ferry/faults) end, expire and drop streams.
local errors = require("errors")
local ks = require("kube_support")
local support = require("support")

local function configmap(name, data)
  return {apiVersion = "v1", kind = "ConfigMap", metadata = {name = name}, data = data or {}}
end

describe("kube watch", function()
  local client, ns

  before_each(function()
    client, ns = ks.setup("watch")
  end)

  -- The watch requests the double logged for configmaps in this namespace.
  local function watches()
    return ks.requests(client, ns, function(r) return r.resource == "configmaps" and r.verb == "watch" end)
  end

  local function lists()
    return ks.requests(client, ns, function(r) return r.resource == "configmaps" and r.verb == "list" end)
  end

  describe("list then watch", function()
    it("hands existing objects to fn as ADDED, then every change in order", function()
      client:create(configmap("a"))
      local seen = {}
      local obj, kind = client:watch("configmaps", {timeout = 10}, function(t, o)
        seen[#seen + 1] = t .. " " .. o.metadata.name
        if t == "ADDED" and o.metadata.name == "a" then
          client:create(configmap("b", {x = "1"}))
        elseif t == "ADDED" and o.metadata.name == "b" then
          client:patch("configmap/b", {data = {x = "2"}})
        elseif t == "MODIFIED" then
          client:delete("configmap/b")
        end
        return t == "DELETED"
      end)
      assert.same({"ADDED a", "ADDED b", "MODIFIED b", "DELETED b"}, seen)
      assert.equal("DELETED", kind)
      assert.equal("b", obj.metadata.name)
      assert.equal("ConfigMap", obj.kind)
    end)

    it("gives listed objects the kind and apiVersion watch events carry", function()
      client:create(configmap("a"))
      local obj = client:watch("configmaps", {timeout = 10}, function() return true end)
      assert.same({"ConfigMap", "v1", "a"}, {obj.kind, obj.apiVersion, obj.metadata.name})
    end)

    it("watches from the list's resourceVersion with bookmarks", function()
      client:create(configmap("a"))
      client:watch("configmaps", {timeout = 10}, function(t, o)
        if t == "ADDED" and o.metadata.name == "a" then client:create(configmap("b")) end
        return t == "ADDED" and o.metadata.name == "b"
      end)
      local list = lists()
      assert.equal(1, #list)
      local w = watches()
      assert.equal(1, #w)
      local q = ks.query(w[1])
      assert.equal("true", q.allowWatchBookmarks)
      assert.truthy(tonumber(q.timeoutSeconds) <= 10, q.timeoutSeconds)
      assert.truthy(q.resourceVersion ~= nil and q.resourceVersion ~= "" and q.resourceVersion ~= "0")
    end)

    it("watches one named object through a metadata.name field selector", function()
      client:create(configmap("a"))
      client:create(configmap("other"))
      local names = {}
      client:watch("configmap/a", {timeout = 10}, function(t, o)
        names[#names + 1] = o.metadata.name
        if t == "ADDED" then
          client:patch("configmap/other", {data = {x = "1"}})
          client:patch("configmap/a", {data = {x = "1"}})
        end
        return t == "MODIFIED"
      end)
      assert.same({"a", "a"}, names)
      assert.equal("metadata.name=a", ks.query(watches()[1]).fieldSelector)
    end)

    it("starts after a given resource_version without listing", function()
      local first = client:create(configmap("a"))
      client:create(configmap("b"))
      local names = {}
      client:watch("configmaps", {timeout = 10, resource_version = first.metadata.resourceVersion}, function(_, o)
        names[#names + 1] = o.metadata.name
        return true
      end)
      assert.same({"b"}, names)
      assert.equal(0, #lists())
    end)

    it("delivers BOOKMARK events and passes their version on", function()
      ks.control(client, "POST", "config", {bookmark_interval = 0.05})
      local bookmark = client:watch("configmaps", {timeout = 10}, function(t) return t == "BOOKMARK" end)
      assert.is_string(bookmark.metadata.resourceVersion)
    end)

    it("reassembles an event longer than one read of the stream", function()
      local big = ("0123456789abcdef"):rep(3 * 65536) -- 3 MiB; a stream read hands out at most ~1 MiB
      client:create(configmap("a"))
      local obj = client:watch("configmaps", {timeout = 20}, function(t, o)
        if t == "ADDED" and o.metadata.name == "a" then client:create(configmap("big", {blob = big})) end
        return t == "ADDED" and o.metadata.name == "big"
      end)
      assert.equal(#big, #obj.data.blob)
      assert.equal(big, obj.data.blob)
    end)

    it("refuses an event longer than its cap with a clear error", function()
      client:create(configmap("a"))
      client._watch_max_line = 256 * 1024
      local err = support.raised(client.watch, client, "configmaps", {timeout = 20}, function(t, o)
        if t == "ADDED" and o.metadata.name == "a" then
          client:create(configmap("big", {blob = ("x"):rep(512 * 1024)}))
        end
      end)
      assert.is_true(errors.is(err, "too_large"), tostring(err))
      assert.truthy(support.contains(err.message, "262144 bytes"), err.message)
    end)

    it("raises what fn raises, without retrying", function()
      client:create(configmap("a"))
      local err = support.raised(client.watch, client, "configmaps", {timeout = 10}, function()
        error(errors.new{code = "mine", message = "fn failed", retryable = true})
      end)
      assert.is_true(errors.is(err, "mine"), tostring(err))
      assert.equal(1, #lists())
      assert.equal(0, #watches())
    end)
  end)

  describe("resuming", function()
    it("watches again from the last resourceVersion when the server ends the stream", function()
      ks.fault(client, {verb = "watch", resource = "configmaps", namespace = ns, kind = "end_watch", after = 1})
      client:create(configmap("a"))
      local names, rvs = {}, {}
      client:watch("configmaps", {timeout = 10}, function(t, o)
        names[#names + 1] = t .. " " .. o.metadata.name
        rvs[o.metadata.name] = o.metadata.resourceVersion
        if o.metadata.name == "a" then client:create(configmap("b")) end
        if o.metadata.name == "b" then client:create(configmap("c")) end
        return o.metadata.name == "c"
      end)
      assert.same({"ADDED a", "ADDED b", "ADDED c"}, names) -- nothing lost, nothing twice
      local w = watches()
      assert.equal(2, #w)
      assert.equal(1, w[1].events)
      assert.equal(rvs.b, ks.query(w[2]).resourceVersion)
      assert.equal(1, #lists())
    end)

    it("retries a watch whose connection drops", function()
      ks.fault(client, {verb = "watch", resource = "configmaps", namespace = ns, kind = "drop"})
      client:create(configmap("a"))
      local got = client:watch("configmaps", {timeout = 20}, function(t, o)
        if o.metadata.name == "a" then client:create(configmap("b")) end
        return t == "ADDED" and o.metadata.name == "b"
      end)
      assert.equal("b", got.metadata.name)
      assert.equal(2, #watches())
    end)

    it("retries a watch answered with 503 and raises a 403 at once", function()
      ks.fault(client, {verb = "watch", resource = "configmaps", namespace = ns, kind = "error", status = 503,
                        count = 2})
      client:create(configmap("a"))
      client:watch("configmaps", {timeout = 20}, function(t, o)
        if o.metadata.name == "a" then client:create(configmap("b")) end
        return t == "ADDED" and o.metadata.name == "b"
      end)
      assert.equal(3, #watches())

      ks.fault(client, {verb = "watch", resource = "configmaps", namespace = ns, kind = "error", status = 403,
                        reason = "Forbidden", message = "watch is forbidden here"})
      local err = support.raised(client.watch, client, "configmaps", {timeout = 20}, function() end)
      assert.is_true(errors.is(err, "Forbidden"), tostring(err))
      assert.equal(403, err.status)
      assert.equal("watch is forbidden here", err.message)
    end)
  end)

  describe("credentials", function()
    it("re-reads a rotated token file after a 401 on the stream and watches on", function()
      local dir = support.make_tmpdir()
      local old, new = ks.issue_token(client), ks.issue_token(client)
      local rotating, token_path = ks.client_with_token_file(client, dir, old, ns)
      client:create(configmap("a"))
      ks.fault(client, {verb = "watch", resource = "configmaps", namespace = ns, kind = "expire_token"})
      local got = rotating:watch("configmaps", {timeout = 10}, function(t, o)
        if t == "ADDED" and o.metadata.name == "a" then
          support.write(token_path, new) -- rotated, as the kubelet does with projected tokens
          client:create(configmap("b"))
        end
        return t == "ADDED" and o.metadata.name == "b"
      end)
      support.remove_tree(dir)
      assert.equal("b", got.metadata.name)
      local statuses = {}
      for _, r in ipairs(watches()) do statuses[#statuses + 1] = r.status end
      assert.same({401, 200}, statuses)
    end)
  end)

  describe("410 Gone", function()
    -- fn sees "a" listed, deletes it and creates "b" before the watch starts;
    -- the watch then gets 410, so the client must learn both from a new LIST.
    local function expire_and_check(mode)
      ks.fault(client, {verb = "watch", resource = "configmaps", namespace = ns, kind = "expired", mode = mode})
      client:create(configmap("a"))
      local seen = {}
      client:watch("configmaps", {timeout = 10}, function(t, o)
        if t == "BOOKMARK" then return false end
        seen[#seen + 1] = t .. " " .. o.metadata.name
        if t == "ADDED" and o.metadata.name == "a" then
          client:delete("configmap/a")
          client:create(configmap("b"))
        end
        if t == "ADDED" and o.metadata.name == "b" then client:create(configmap("c")) end
        return o.metadata.name == "c"
      end)
      assert.same({"ADDED a", "DELETED a", "ADDED b", "ADDED c"}, seen)
      local l, w = lists(), watches()
      assert.equal(2, #l) -- the first LIST, then one after the 410
      assert.equal(2, #w)
      local first_rv, second_rv = ks.query(w[1]).resourceVersion, ks.query(w[2]).resourceVersion
      assert.are_not.equal(first_rv, second_rv) -- never the expired version again
      assert.truthy(tonumber(second_rv) > tonumber(first_rv))
    end

    it("re-lists after an ERROR event with reason Expired and reports what changed meanwhile", function()
      expire_and_check("event")
    end)

    it("re-lists after a plain HTTP 410", function()
      expire_and_check("http")
    end)

    it("re-lists after the server compacted its history", function()
      local a = client:create(configmap("a"))
      client:create(configmap("b"))
      ks.control(client, "POST", "compact", {})
      local names = {}
      client:watch("configmaps", {timeout = 10, resource_version = a.metadata.resourceVersion}, function(t, o)
        names[#names + 1] = t .. " " .. o.metadata.name
        return #names == 2
      end)
      table.sort(names)
      assert.same({"ADDED a", "ADDED b"}, names)
      assert.equal(1, #lists())
    end)
  end)

  describe("deadline", function()
    it("raises a timeout carrying the last object seen", function()
      client:create(configmap("a", {x = "last"}))
      local err = support.raised(client.watch, client, "configmaps", {timeout = 0.5}, function() end)
      assert.is_true(errors.is(err, "timeout"), tostring(err))
      assert.equal("a", err.last.metadata.name)
      assert.equal("last", err.last.data.x)
    end)

    it("asks the server to end its stream by the deadline", function()
      local err = support.raised(client.watch, client, "configmaps", {timeout = 1.5}, function() end)
      assert.is_true(errors.is(err, "timeout"), tostring(err))
      assert.is_nil(err.last)
      local w = watches()
      assert.truthy(#w >= 1)
      assert.truthy(tonumber(ks.query(w[1]).timeoutSeconds) <= 2)
    end)
  end)
end)
