-- watch.lua (module "kube.watch"): client:watch, list-then-watch as client-go's
-- Reflector does it (notes §2.4), for kube.lua to add to the client class.
--
--   1. LIST the collection (all pages) and hand every item to fn as ADDED; the
--      list's resourceVersion is where the watch starts. A given
--      opts.resource_version skips the list ("Start at Exact", §2.2).
--   2. WATCH from that version with bookmarks; every event's object advances
--      the version. A stream the server ends cleanly (timeoutSeconds) is
--      watched again from the last version, never failed (§9).
--   3. 410 — as an HTTP status or as an ERROR event with reason Expired or
--      Gone — means the version is gone from the server's history: LIST again
--      and watch from the new list's version, never re-watch the same one
--      (§9). What changed in between reaches fn as synthetic events (ADDED,
--      MODIFIED, DELETED) computed against the objects seen so far, so a
--      consumer never misses a deletion.
--   4. Connection errors, 429 and 5xx are retried with backoff a few times;
--      any other ERROR event or status raises a Status-shaped error.
--
-- The optional deadline (opts.timeout) covers everything, including fn; it
-- raises {code = "timeout", last = <the last object seen>}.
-- Reads with client:_request (LIST) and http.open (the stream), the client's
-- private transport methods; nothing else.
local errors = require("errors")
local http = require("http")
local json = require("json")
local task = require("task")

local RETRIES = 5 -- consecutive failed attempts before a transport error is raised
local MAX_EXPIRED = 5 -- consecutive 410s without a single event in between
local PAGE = 500 -- items per LIST page, as kubectl asks
local WATCH_SECONDS = {300, 600} -- server-side timeoutSeconds, random in this range (client-go)
local SHORT_WATCH = 1 -- seconds: a stream ending this fast without events backs off first

local function fail(code, fmt, ...)
  error(errors.new{code = code, message = fmt:format(...)}, 0)
end

local function is_table(v) return type(v) == "table" end

-- The client's Status-shaped error for a Status object sent in an ERROR
-- event (there is no response of its own: its code is the HTTP status).
local function event_error(client, status, op)
  local code = is_table(status) and math.tointeger(status.code) or 500
  return client._status_error({status = code, headers = {}, body = json.encode(status)}, op)
end

local function is_expired(status)
  return is_table(status) and (status.code == 410 or status.reason == "Expired" or status.reason == "Gone")
end

-- Worth another attempt after a backoff: connection errors (a dead stream's
-- transfer timeout included) and 429/5xx. Cancellation is never retryable.
local function transient(err)
  return errors.is(err) and err.retryable == true
end

local function key_of(obj)
  local md = is_table(obj.metadata) and obj.metadata or {}
  return tostring(md.namespace or "") .. "/" .. tostring(md.name or "")
end

local function meta(obj, field)
  local md = is_table(obj) and obj.metadata
  return is_table(md) and md[field] or nil
end

local function join_selectors(a, b)
  if a and a ~= "" and b then return a .. "," .. b end
  return b or a
end

-- Calls on_line(line) for every non-blank line of the stream's body; a line
-- may span any number of chunks but no more than `max` bytes. Returns true
-- when on_line asked to stop, else false at the end of the body, plus
-- whether the body ended inside a line (a cut connection).
local function each_line(stream, max, on_line)
  local parts, size = {}, 0
  while true do
    local chunk = stream:read()
    if chunk == nil then break end
    local pos = 1
    while true do
      local nl = chunk:find("\n", pos, true)
      if not nl then
        if pos <= #chunk then
          size = size + #chunk - pos + 1
          if size > max then fail("too_large", "watch: an event is longer than %d bytes", max) end
          parts[#parts + 1] = pos == 1 and chunk or chunk:sub(pos)
        end
        break
      end
      local line = chunk:sub(pos, nl - 1)
      if #parts > 0 then
        parts[#parts + 1] = line
        line = table.concat(parts)
        parts, size = {}, 0
      end
      if #line > max then fail("too_large", "watch: an event is longer than %d bytes", max) end
      if line:find("%S") and on_line(line) then return true, false end
      pos = nl + 1
    end
  end
  return false, #parts > 0 and table.concat(parts):find("%S") ~= nil
end

-- A list's items carry no kind or apiVersion; give them the ones watch
-- events carry, so fn sees the same shape from both.
local function typed_items(list)
  local items = is_table(list.items) and list.items or {}
  local kind = type(list.kind) == "string" and list.kind:match("^(.+)List$")
  for _, item in ipairs(items) do
    if is_table(item) then
      if item.kind == nil then item.kind = kind end
      if item.apiVersion == nil then item.apiVersion = list.apiVersion end
    end
  end
  return items
end

-- One watch: its target, position, the objects it has seen and its callback.
---@class kube.Watcher
local Watcher = {}
Watcher.__index = Watcher

-- Calls the user's fn; a failure there is the caller's error and is never retried.
function Watcher:deliver(kind, obj)
  local ok, res = pcall(self.fn, kind, obj)
  if not ok then
    self.callback_failed = true
    error(res, 0)
  end
  if res then
    self.stopped = {obj, kind}
    return true
  end
  return false
end

-- LISTs the collection (every page, restarting when a continue token
-- expires), then brings fn up to date with synthetic events against what it
-- has seen. Returns true when fn stopped the watch.
function Watcher:list()
  local items, list, complete
  for _ = 1, MAX_EXPIRED do
    items, list = {}, nil
    local continue, expired = nil, false
    repeat
      local query = {labelSelector = self.label_selector, fieldSelector = self.field_selector,
                     limit = tostring(PAGE), continue = continue}
      local ok, page = pcall(self.client._request, self.client, {method = "GET", path = self.path, query = query})
      if not ok then
        if not (is_table(page) and page.status == 410) then error(page, 0) end
        expired = true -- an expired continue token: start the list again
        break
      end
      if not is_table(page) then fail("invalid_response", "watch: LIST %s did not answer with a list", self.path) end
      list = list or page
      for _, item in ipairs(typed_items(page)) do items[#items + 1] = item end
      local md = is_table(page.metadata) and page.metadata or {}
      continue = type(md.continue) == "string" and md.continue ~= "" and md.continue or nil
    until not continue
    complete = not expired
    if complete then break end
  end
  if not complete then fail("expired", "watch: LIST %s expired %d times in a row", self.path, MAX_EXPIRED) end
  local md = is_table(list) and is_table(list.metadata) and list.metadata or {}
  if type(md.resourceVersion) ~= "string" then
    fail("invalid_response", "watch: LIST %s gave no resourceVersion", self.path)
  end

  -- Gone objects first (in a stable order), then the list's in its order.
  local seen, events, gone = {}, {}, {}
  for _, item in ipairs(items) do seen[key_of(item)] = item end
  for key in pairs(self.known) do
    if not seen[key] then gone[#gone + 1] = key end
  end
  table.sort(gone)
  for _, key in ipairs(gone) do events[#events + 1] = {"DELETED", self.known[key]} end
  for _, item in ipairs(items) do
    local old = self.known[key_of(item)]
    if not old then
      events[#events + 1] = {"ADDED", item}
    elseif meta(old, "uid") ~= meta(item, "uid") then
      events[#events + 1] = {"DELETED", old}
      events[#events + 1] = {"ADDED", item}
    elseif meta(old, "resourceVersion") ~= meta(item, "resourceVersion") then
      events[#events + 1] = {"MODIFIED", item}
    end
  end
  self.known, self.rv = seen, md.resourceVersion
  for _, ev in ipairs(events) do
    self.last = ev[2]
    if self:deliver(ev[1], ev[2]) then return true end
  end
  if self.on_sync then
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    if self.on_sync(n) then
      self.stopped = {self.last, nil}
      return true
    end
  end
  return false
end

-- Handles one line of a watch stream. Returns true to stop reading.
function Watcher:event(line)
  local ok, ev = pcall(json.decode, line)
  if not ok or not is_table(ev) or type(ev.type) ~= "string" then
    fail("invalid_response", "watch: the server sent an unreadable event: %s", line:sub(1, 200))
  end
  local kind, obj = ev.type, ev.object
  if kind == "ERROR" then
    if is_expired(obj) then
      self.expired = true
      return true
    end
    error(event_error(self.client, obj, "WATCH " .. self.path), 0)
  end
  if not is_table(obj) then fail("invalid_response", "watch: a %s event without an object", kind) end
  self.events = self.events + 1
  local rv = meta(obj, "resourceVersion")
  if type(rv) == "string" and rv ~= "" then self.rv = rv end
  if kind == "ADDED" or kind == "MODIFIED" then
    self.known[key_of(obj)] = obj
  elseif kind == "DELETED" then
    self.known[key_of(obj)] = nil
  elseif kind ~= "BOOKMARK" then
    return false -- an event type this client does not know: skip it, as client-go does
  end
  if kind ~= "BOOKMARK" then self.last = obj end
  return self:deliver(kind, obj)
end

-- One WATCH request, read to its end. Returns "stop" (fn said so),
-- "expired" (410), "again" (a 401 refreshed the credentials) or "ended"
-- (the server closed the stream).
function Watcher:watch_once()
  local seconds = math.random(WATCH_SECONDS[1], WATCH_SECONDS[2])
  if self.deadline then
    seconds = math.max(1, math.min(seconds, math.ceil(self.deadline - task.now())))
  end
  local query = {watch = "true", resourceVersion = self.rv, timeoutSeconds = tostring(seconds),
                 allowWatchBookmarks = self.bookmarks and "true" or nil,
                 labelSelector = self.label_selector, fieldSelector = self.field_selector}
  local req = self.client:_http_options() -- a fresh table, headers included
  req.headers = req.headers or {}
  req.headers.Accept = "application/json"
  req.method, req.url = "GET", self.client:_url(self.path, query)
  req.timeout = seconds + 30 -- the server ends the stream first; this only catches a dead one

  local stream = http.open(req)
  local _ <close> = setmetatable({}, {__close = function() pcall(stream.close, stream) end})
  if stream.status == 410 then return "expired" end
  if stream.status == 401 and not self.refreshed and self.client:_refresh_auth() then
    self.refreshed = true
    return "again"
  end
  if stream.status ~= 200 then
    local err = self.client._stream_error(stream, "WATCH " .. self.path)
    if err.reason == "Expired" or err.reason == "Gone" then return "expired" end
    err.retry_after = http.retry_after(stream.headers)
    error(err, 0)
  end
  self.refreshed = false

  self.expired = false
  local stopped, cut = each_line(stream, self.max_line, function(line) return self:event(line) end)
  if self.expired then return "expired" end
  if stopped then return "stop" end
  if cut then
    error(errors.new{code = "closed", retryable = true,
                     message = "watch: the connection closed in the middle of an event"}, 0)
  end
  return "ended"
end

-- The list-watch loop; returns the object and event type fn stopped on.
-- Outcomes of one round: "listed", "stop", "expired" (LIST next), "again"
-- (credentials refreshed after a 401) and "ended" (watch again from the
-- last version).
function Watcher:run()
  local need_list = self.rv == nil or self.rv == ""
  local failures, expired = 0, 0
  while true do
    local started = task.now()
    self.events = 0
    local ok, res = pcall(function()
      if need_list then return self:list() and "stop" or "listed" end
      return self:watch_once()
    end)
    if self.callback_failed then error(res, 0) end
    if ok and self.events > 0 then failures, expired = 0, 0 end
    if not ok then
      if not transient(res) or failures >= RETRIES then error(res, 0) end
      failures = failures + 1
      task.sleep(http.backoff(failures, res.retry_after))
    elseif res == "stop" then
      return self.stopped[1], self.stopped[2]
    elseif res == "expired" then
      expired = expired + 1
      if expired > MAX_EXPIRED then
        fail("expired", "watch: %s: resourceVersion expired %d times in a row", self.path, expired)
      end
      need_list = true
    elseif res == "listed" then
      need_list, failures = false, 0
    elseif res == "ended" and self.events == 0 and task.now() - started < SHORT_WATCH then
      task.sleep(http.backoff(1)) -- a server that ends every stream at once is not hammered
    end
  end
end

return function(Client)
  ---Longest single watch event accepted, in bytes.
  Client._watch_max_line = 16 * 1024 * 1024

  ---Streams a collection's changes to fn: first its current objects as ADDED
  ---(unless opts.resource_version is given), then ADDED, MODIFIED, DELETED
  ---and BOOKMARK events as they happen. Resumes from the last resourceVersion
  ---when the server ends the stream, re-lists after 410 Gone (reporting what
  ---changed meanwhile as synthetic events), retries connection errors, 429
  ---and 5xx a few times. fn returning true stops the watch. A named resource
  ---("deployment/web") watches that one object (fieldSelector metadata.name).
  ---@param resource kube.Resource a kind ("pods", "deployments.apps"), a named resource or an object
  ---@param opts? kube.WatchOpts
  ---@param fn fun(type: "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK", object: table): boolean?
  ---@return table? object the object of the event fn stopped on
  ---@return string? type that event's type
  function Client:watch(resource, opts, fn)
    if type(opts) == "function" and fn == nil then opts, fn = nil, opts end
    opts = opts or {}
    if not is_table(opts) then error("kube watch: opts must be a table", 2) end
    if type(fn) ~= "function" then error("kube watch: fn must be a function", 2) end
    local timeout = opts.timeout
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
      error("kube watch: timeout must be a number of seconds >= 0", 2)
    end
    local rv = opts.resource_version
    if rv ~= nil and type(rv) ~= "string" then error("kube watch: resource_version must be a string", 2) end

    local r = self:_resolve(resource, opts.namespace)
    local w = setmetatable({
      client = self, fn = fn,
      path = opts.all_namespaces and r.all_namespaces or r.collection, rv = rv, known = {}, events = 0,
      label_selector = opts.label_selector,
      field_selector = join_selectors(opts.field_selector, r.name and "metadata.name=" .. r.name or nil),
      bookmarks = opts.bookmarks ~= false, max_line = self._watch_max_line, on_sync = opts._on_sync,
    }, Watcher)
    if timeout == nil then return w:run() end

    w.deadline = task.now() + timeout
    local ok, obj, kind = pcall(task.timeout, timeout, w.run, w)
    if ok then return obj, kind end
    if errors.is(obj, "timeout") and not w.callback_failed and task.now() >= w.deadline - 0.001 then
      error(errors.new{code = "timeout", last = w.last,
                       message = ("watch of %s timed out after %gs"):format(r.collection, timeout)}, 0)
    end
    error(obj, 0)
  end
end
