-- sigv4_spec.lua: the aws module's SigV4 signer (aws.sign, aws.presign,
-- aws._canonical and the _ primitives) against oracles it cannot bend:
-- AWS's test suites beside the repository (<repo>/../shared/ref/aws/
-- sigv4-testsuite: every aws-c-auth v4 case in header and query mode, the
-- valid classic cases), the S3 examples of the AWS documentation, vectors
-- made with botocore 1.43 (EKS presign, S3 bodies), RFC 4231 and RFC 4648;
-- plus argument errors and secrets kept out of error messages.
local aws = require("aws")
local json = require("json")
local time = require("http.time")
local lfs = require("lfs")

-- ---- where the suite is: <repo>/../shared, wherever the clone lives ----

local function repo_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  if src:sub(1, 1) ~= "/" then src = lfs.currentdir() .. "/" .. src end
  return assert(src:match("^(.*)/tests/lua/[^/]+$"), "cannot place the repository from " .. src)
end

local SUITE = repo_root() .. "/../shared/ref/aws/sigv4-testsuite"
local V4 = SUITE .. "/aws-c-auth/v4"
local CLASSIC = SUITE .. "/classic-aws4_testsuite"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- A file holding one expected value: its final newline, if any, is not part of it.
local function value_of(path)
  return (read(path):gsub("\n$", ""))
end

local function is_dir(path)
  return lfs.attributes(path, "mode") == "directory"
end

local function sorted_entries(dir)
  local names = {}
  if not is_dir(dir) then return names end
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

-- ---- raw HTTP requests as the suites write them ----

local function trim(s)
  return (s:match("^%s*(.-)%s*$"))
end

-- {method, target, headers = {Name = value or {values...}}, names = {in order}, body}.
-- Folded continuation lines join the previous value with `fold`.
local function parse_http(text, fold)
  local head, body = text:match("^(.-)\r?\n\r?\n(.*)$")
  if not head then head, body = text, "" end
  local lines = {}
  for line in (head .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  local method, target = lines[1]:match("^(%S+) (.-) HTTP/1%.1$")
  if not method then method, target = lines[1]:match("^(%S+) (.-)$") end
  local req = {method = method, target = target, headers = {}, names = {}, body = body}
  local last
  for i = 2, #lines do
    local line = lines[i]
    if line == "" then
      assert(i == #lines, "blank line inside the header block")
    elseif line:match("^%s") then
      local v = req.headers[last]
      if type(v) == "table" then
        v[#v] = v[#v] .. fold .. trim(line)
      else
        req.headers[last] = v .. fold .. trim(line)
      end
    else
      local name, value = line:match("^([^:]+):(.*)$")
      assert(name, "unreadable header line: " .. line)
      local seen = req.headers[name]
      if seen == nil then
        req.headers[name] = value
        req.names[#req.names + 1] = name
      elseif type(seen) == "table" then
        seen[#seen + 1] = value
      else
        req.headers[name] = {seen, value}
      end
      last = name
    end
  end
  return req
end

local function lower_keys(t)
  local out = {}
  for k, v in pairs(t) do
    assert(out[k:lower()] == nil, "header named twice: " .. k)
    out[k:lower()] = v
  end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function host_of(req)
  return trim(assert(lower_keys(req.headers).host, "request without Host"))
end

-- The request table aws.sign takes, from a parsed suite request.
local function request_of(req)
  return {
    method = req.method,
    url = "https://" .. host_of(req) .. req.target,
    headers = req.headers,
    body = req.body ~= "" and req.body or nil,
  }
end

-- ---- time, independent of the signer ----

local function epoch_of(stamp) -- "2015-08-30T12:36:00Z" or "20150830T123600Z"
  local y, mo, d, h, mi, s = stamp:match("^(%d%d%d%d)-?(%d%d)-?(%d%d)T(%d%d):?(%d%d):?(%d%d)Z$")
  assert(y, "unreadable timestamp " .. stamp)
  return time.utc_epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
end

-- ---- comparing results with the files ----

local SIGNER_SETS = {
  ["authorization"] = true,
  ["x-amz-date"] = true,
  ["x-amz-security-token"] = true,
  ["x-amz-content-sha256"] = true,
}

-- The headers sign returned against a signed request file: the same names,
-- and the exact values of every header the signer sets.
local function check_signed_headers(got, signed_text)
  local want = lower_keys(parse_http(signed_text, " ").headers)
  got = lower_keys(got)
  assert.same(sorted_keys(want), sorted_keys(got))
  for name in pairs(SIGNER_SETS) do
    if want[name] ~= nil then assert.equal(trim(want[name]), got[name], name) end
  end
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A query string as a sorted list of decoded "key=value" pairs.
local function query_pairs(query)
  local pairs_ = {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    pairs_[#pairs_ + 1] = unescape(k) .. "=" .. unescape(v)
  end
  table.sort(pairs_)
  return pairs_
end

-- A presigned URL against a query-signed request file: the same path and
-- the same query parameters, signature included.
local function check_presigned(url, signed_text)
  local target = signed_text:match("^%S+ (.-) HTTP/1%.1\r?\n")
  local path, query = target:match("^([^?]*)%?(.*)$")
  local our_path, our_query = url:match("^https://[^/]+([^?]*)%?(.*)$")
  assert.equal(path, our_path)
  assert.same(query_pairs(query), query_pairs(our_query))
end

-- ---- the suites ----

local function v4_opts(ctx, query)
  return {
    service = ctx.service,
    region = ctx.region,
    credentials = {
      access_key_id = ctx.credentials.access_key_id,
      secret_access_key = ctx.credentials.secret_access_key,
      session_token = ctx.credentials.token,
    },
    time = epoch_of(ctx.timestamp),
    normalize_path = ctx.normalize,
    sign_body = ctx.sign_body,
    omit_session_token = ctx.omit_session_token or false,
    expires = query and ctx.expiration_in_seconds or nil,
    presign = query,
  }
end

local function v4_case(name, mode)
  local dir = V4 .. "/" .. name .. "/"
  local ctx = json.decode(read(dir .. "context.json"))
  local req = request_of(parse_http(read(dir .. "request.txt"), " "))
  local opts = v4_opts(ctx, mode == "query")
  local canonical, sts, signature = aws._canonical(req, opts)
  assert.equal(value_of(dir .. mode .. "-canonical-request.txt"), canonical)
  assert.equal(value_of(dir .. mode .. "-string-to-sign.txt"), sts)
  assert.equal(value_of(dir .. mode .. "-signature.txt"), signature)
  if mode == "header" then
    check_signed_headers(aws.sign(req, opts), read(dir .. "header-signed-request.txt"))
  else
    check_presigned(aws.presign(req, opts), read(dir .. "query-signed-request.txt"))
  end
end

-- Every classic NAME.req, as {name = "normalize-path/get-space", dir, stem}.
local function classic_cases()
  local found = {}
  local function walk(dir, rel)
    for _, entry in ipairs(sorted_entries(dir)) do
      local path = dir .. "/" .. entry
      if is_dir(path) then
        walk(path, rel and rel .. "/" .. entry or entry)
      elseif entry:match("%.req$") then
        found[#found + 1] = {name = rel, dir = dir, stem = entry:gsub("%.req$", "")}
      end
    end
  end
  walk(CLASSIC, nil)
  return found
end

local function classic_case(case, suite)
  local quirk = suite.exceptions[case.stem] or {}
  local base = case.dir .. "/" .. case.stem
  local token = case.name:match("^post%-sts%-token/") and suite.session_token_post_sts_token or nil
  local opts = {
    service = quirk.service or suite.service,
    region = quirk.region or suite.region,
    credentials = {
      access_key_id = quirk.access_key_id or suite.credentials.access_key_id,
      secret_access_key = suite.credentials.secret_access_key,
      session_token = token,
    },
    time = epoch_of(quirk.x_amz_date or suite.x_amz_date),
    omit_session_token = case.stem == "post-sts-header-after",
  }
  local req = request_of(parse_http(read(base .. ".req"), ","))
  local canonical, sts = aws._canonical(req, opts)
  assert.equal(value_of(base .. ".creq"), canonical)
  assert.equal(value_of(base .. ".sts"), sts)
  local headers = aws.sign(req, opts)
  assert.equal(value_of(base .. ".authz"), headers.Authorization)
  check_signed_headers(headers, read(base .. ".sreq"))
end

-- ---- fixed vectors ----

local EXAMPLE = {access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
local S3_DOCS = {access_key_id = "AKIAIOSFODNN7EXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
local T_2015 = 1440938160 -- 2015-08-30T12:36:00Z
local T_2013 = 1369353600 -- 2013-05-24T00:00:00Z
local STS_URL = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
local TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"

-- botocore 1.43.11 SigV4QueryAuth(expires=60), header x-k8s-aws-id: my-cluster, at T_2015.
local EKS_URL = STS_URL .. "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
  .. "&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20150830T123600Z"
  .. "&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"
local EKS_SIG = "393dffdcf851beeb373f04f933b26ffa1d480490f11385a3dbd509617bb7cb79"
local EKS_TOKEN_SIG = "1d38befae23e34d2c8a2be8081dbafe49d1aa7706e2c53fd9a663b254c41796b"

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error, got a return: " .. tostring(err))
  return tostring(err)
end

describe("aws sigv4", function()
  local v4_names = {}
  for _, name in ipairs(sorted_entries(V4)) do
    if is_dir(V4 .. "/" .. name) then v4_names[#v4_names + 1] = name end
  end
  local suite = is_dir(CLASSIC) and json.decode(read(CLASSIC .. "/SUITE-CONTEXT.json"))
    or {exceptions = {}}
  local classic, flagged = {}, {}
  for _, case in ipairs(classic_cases()) do
    local quirk = suite.exceptions[case.stem]
    if quirk and quirk.note then
      flagged[#flagged + 1] = case.stem
    else
      classic[#classic + 1] = case
    end
  end

  it("finds the suites at <repo>/../shared/ref/aws/sigv4-testsuite", function()
    assert.is_true(is_dir(V4), "SigV4 suite missing: " .. V4)
    assert.is_true(is_dir(CLASSIC), "classic SigV4 suite missing: " .. CLASSIC)
    assert.equal(38, #v4_names)
    assert.equal(29, #classic)
    table.sort(flagged)
    assert.same({"double-encode-path", "get-vanilla-query-order-key-case", "post-x-www-form-urlencoded",
                 "post-x-www-form-urlencoded-parameters"}, flagged)
  end)

  for _, name in ipairs(v4_names) do
    for _, mode in ipairs({"header", "query"}) do
      it("matches aws-c-auth " .. name .. " in " .. mode .. " mode", function() v4_case(name, mode) end)
    end
  end

  for _, case in ipairs(classic) do
    it("matches classic " .. case.name, function() classic_case(case, suite) end)
  end

  it("presigns an EKS token URL signing x-k8s-aws-id (botocore)", function()
    local req = {method = "GET", url = STS_URL, headers = {["x-k8s-aws-id"] = "my-cluster"}}
    local opts = {service = "sts", region = "us-east-1", credentials = EXAMPLE, time = T_2015, expires = 60}
    local url = aws.presign(req, opts)
    assert.equal(EKS_URL .. "&X-Amz-Signature=" .. EKS_SIG, url)
    assert.truthy(url:find("&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&", 1, true))
    assert.truthy(url:find("&X-Amz-Expires=60&", 1, true))

    opts.credentials = {access_key_id = EXAMPLE.access_key_id, secret_access_key = EXAMPLE.secret_access_key,
                        session_token = TOKEN}
    assert.equal(EKS_URL .. "&X-Amz-Security-Token=" .. TOKEN .. "&X-Amz-Signature=" .. EKS_TOKEN_SIG,
                 aws.presign(req, opts))
  end)

  it("adds X-Amz-Content-Sha256 to s3 requests (AWS S3 documentation, GET Object)", function()
    local headers = aws.sign({method = "GET", url = "https://examplebucket.s3.amazonaws.com/test.txt",
                              headers = {Range = "bytes=0-9"}},
                             {service = "s3", region = "us-east-1", credentials = S3_DOCS, time = T_2013})
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                 headers["X-Amz-Content-Sha256"])
    assert.equal("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                 .. "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                 .. "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
                 headers.Authorization)
    assert.equal("examplebucket.s3.amazonaws.com", headers.Host)
    assert.equal("20130524T000000Z", headers["X-Amz-Date"])
    assert.equal("bytes=0-9", headers.Range)
  end)

  it("hashes an s3 body, or sends UNSIGNED-PAYLOAD, keeping the key's encoding (botocore)", function()
    local req = {method = "PUT", url = "https://examplebucket.s3.amazonaws.com/photos/my%20file%2B1.jpg",
                 headers = {["Content-Type"] = "image/jpeg"}, body = "hello"}
    local opts = {service = "s3", region = "us-east-1", credentials = S3_DOCS, time = T_2013}
    local prefix = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
      .. "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature="
    local headers = aws.sign(req, opts)
    assert.equal("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                 headers["X-Amz-Content-Sha256"])
    assert.equal(prefix .. "0a489785b0372adc88d6fcfaa7e42d0770ac5b936b3e699338d626e8933c92a2",
                 headers.Authorization)
    opts.unsigned_payload = true
    headers = aws.sign(req, opts)
    assert.equal("UNSIGNED-PAYLOAD", headers["X-Amz-Content-Sha256"])
    assert.equal(prefix .. "dc3fc2d76eef9023c319764adbabdc7d6f92dff6e75b776e476e4a97b76585e8",
                 headers.Authorization)
  end)

  it("presigns s3 with UNSIGNED-PAYLOAD (AWS S3 documentation, presigned URL)", function()
    local url = aws.presign({method = "GET", url = "https://examplebucket.s3.amazonaws.com/test.txt"},
                            {service = "s3", region = "us-east-1", credentials = S3_DOCS, time = T_2013,
                             expires = 86400})
    assert.equal("https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 .. "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                 .. "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                 .. "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", url)
  end)

  it("derives Host from the URL as curl sends it: no default port, no userinfo", function()
    local opts = {service = "ecr", region = "eu-west-1", credentials = EXAMPLE, time = T_2015}
    local cases = {
      ["https://api.ecr.eu-west-1.amazonaws.com/"] = "api.ecr.eu-west-1.amazonaws.com",
      ["https://api.ecr.eu-west-1.amazonaws.com:443/"] = "api.ecr.eu-west-1.amazonaws.com",
      ["http://127.0.0.1:80"] = "127.0.0.1",
      ["http://127.0.0.1:8443/x"] = "127.0.0.1:8443",
      ["https://user:pw@[::1]:9000/?a=b"] = "[::1]:9000",
      ["https://example.com:80/"] = "example.com:80",
    }
    for url, host in pairs(cases) do
      assert.equal(host, aws.sign({url = url}, opts).Host, url)
      local canonical = aws._canonical({url = url}, opts)
      assert.truthy(canonical:find("\nhost:" .. host .. "\n", 1, true), url)
    end
    local given = aws.sign({url = "https://10.0.0.1/", headers = {host = "sts.amazonaws.com"}}, opts)
    assert.is_nil(given.Host)
    assert.equal("sts.amazonaws.com", given.host)
  end)

  it("replaces the request's own signing headers and joins list values with ','", function()
    local opts = {service = "service", region = "us-east-1", credentials = EXAMPLE, time = T_2015}
    local headers = aws.sign({url = "https://example.amazonaws.com/", headers = {
      ["x-amz-date"] = "19990101T000000Z", authorization = "stale", ["My-Header1"] = {"value4", "value1"},
    }}, opts)
    assert.same({"Authorization", "Host", "My-Header1", "X-Amz-Date"}, sorted_keys(headers))
    assert.equal("20150830T123600Z", headers["X-Amz-Date"])
    assert.equal("value4,value1", headers["My-Header1"])
    assert.truthy(headers.Authorization:find("SignedHeaders=host;my-header1;x-amz-date,", 1, true))
  end)

  it("raises on bad arguments, naming the field", function()
    local good_req = {method = "GET", url = "https://example.amazonaws.com/"}
    local function opts(extra)
      local o = {service = "service", region = "us-east-1", credentials = EXAMPLE, time = T_2015}
      for k, v in pairs(extra) do o[k] = v end
      return o
    end
    local cases = {
      {aws.sign, nil, opts({}), "bad argument #1 .*table expected"},
      {aws.sign, good_req, nil, "bad argument #2"},
      {aws.sign, good_req, opts({credentials = false}), "opts%.credentials must be a table"},
      {aws.sign, good_req, opts({credentials = {secret_access_key = "x"}}), "opts%.credentials%.access_key_id"},
      {aws.sign, good_req, opts({credentials = {access_key_id = "AKID", secret_access_key = 42}}),
       "opts%.credentials%.secret_access_key must be a string"},
      {aws.sign, good_req, opts({credentials = {access_key_id = "AKID", secret_access_key = "s",
                                                session_token = {}}}), "opts%.credentials%.session_token"},
      {aws.sign, good_req, {service = "service", credentials = EXAMPLE, time = T_2015},
       "opts%.region must be a string"},
      {aws.sign, good_req, opts({service = ""}), "opts%.service must not be empty"},
      {aws.sign, good_req, opts({region = "us east/1"}), "opts%.region"},
      {aws.sign, good_req, opts({time = "now"}), "opts%.time must be a number"},
      {aws.sign, good_req, opts({time = -1}), "opts%.time out of range"},
      {aws.sign, good_req, opts({time = 0 / 0}), "opts%.time out of range"},
      {aws.sign, good_req, opts({unsigned_payload = "yes"}), "opts%.unsigned_payload must be a boolean"},
      {aws.sign, {url = 42}, opts({}), "request%.url must be a string"},
      {aws.sign, {url = "ftp://example.com/"}, opts({}), "request%.url is not an http%(s%) URL"},
      {aws.sign, {url = "https:///path"}, opts({}), "request%.url is not an http%(s%) URL"},
      {aws.sign, {url = "https://h:12x/"}, opts({}), "request%.url is not an http%(s%) URL"},
      {aws.sign, {url = "https://h/", method = "GET /"}, opts({}), "request%.method"},
      {aws.sign, {url = "https://h/", body = {}}, opts({}), "request%.body must be a string"},
      {aws.sign, {url = "https://h/", headers = "x"}, opts({}), "request%.headers must be a table"},
      {aws.sign, {url = "https://h/", headers = {["Bad Name"] = "x"}}, opts({}), "invalid name 'Bad Name'"},
      {aws.sign, {url = "https://h/", headers = {X = "a\r\nInjected: 1"}}, opts({}), "line break"},
      {aws.sign, {url = "https://h/", headers = {X = {}}}, opts({}), "empty list"},
      {aws.sign, {url = "https://h/", headers = {X = {{}}}}, opts({}), "request%.headers%['X'%]"},
      {aws.sign, {url = "https://h/", headers = {X = "1", x = "2"}}, opts({}), "name the same header"},
      {aws.presign, good_req, opts({expires = 0}), "opts%.expires must be an integer from 1 to 604800"},
      {aws.presign, good_req, opts({expires = 604801}), "opts%.expires"},
      {aws.presign, good_req, opts({expires = 1.5}), "opts%.expires"},
      {aws._canonical, good_req, opts({presign = 1}), "opts%.presign must be a boolean"},
    }
    for i, c in ipairs(cases) do
      local err = raised(c[1], c[2], c[3])
      assert.truthy(err:find(c[4]), "case " .. i .. ": " .. err)
    end
    local many = {}
    for i = 1, 257 do many["X-H" .. i] = "v" end
    assert.truthy(raised(aws.sign, {url = "https://h/", headers = many}, opts({})):find("more than 256"))
    assert.truthy(raised(aws.sign, {url = "https://h/" .. ("a"):rep(65536)}, opts({})):find("longer than 64 KiB"))
  end)

  it("never puts the secret key or the session token in an error", function()
    local secret, token = "wJalrXUtnFEMI/SECRET/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzTOKEN0123456789"
    local function creds(extra)
      local c = {access_key_id = "AKIDEXAMPLE", secret_access_key = secret, session_token = token}
      for k, v in pairs(extra or {}) do c[k] = v end
      return c
    end
    local function opts(c, extra)
      local o = {service = "sts", region = "us-east-1", credentials = c, time = T_2015}
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
    end
    local calls = {
      {aws.sign, {url = "not a url"}, opts(creds())},
      {aws.sign, {url = "https://h/", headers = {["X-Session"] = token .. "\n" .. secret}}, opts(creds())},
      {aws.presign, {url = "https://h/", headers = {["X-Amz-Security-Token"] = token .. "\n"}}, opts(creds())},
      {aws.sign, {url = "https://h/"}, opts(creds({session_token = token .. "\r\n" .. secret}))},
      {aws.sign, {url = "https://h/"}, opts(creds({access_key_id = secret .. "/" .. token}))},
      {aws.sign, {url = "https://h/"}, opts(creds({secret_access_key = secret:rep(40)}))},
      {aws.sign, {url = "https://h/"}, opts(creds(), {region = secret})},
      {aws.presign, {url = "https://h/"}, opts(creds(), {expires = -1})},
      {aws.presign, {url = "https://h/", method = secret}, opts(creds())},
    }
    for i, c in ipairs(calls) do
      local err = raised(c[1], c[2], c[3])
      assert.falsy(err:find("SECRET", 1, true), "call " .. i .. " leaked the secret: " .. err)
      assert.falsy(err:find("TOKEN", 1, true), "call " .. i .. " leaked the token: " .. err)
    end
  end)

  it("gives aws.lua its primitives", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", aws._sha256_hex(""))
    -- RFC 4231 test case 2
    local mac = aws._hmac_sha256("Jefe", "what do ya want for nothing?")
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                 (mac:gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
    -- RFC 4648 §10
    local b64 = {[""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==", fooba = "Zm9vYmE=",
                 foobar = "Zm9vYmFy"}
    for plain, coded in pairs(b64) do
      assert.equal(coded, aws._base64(plain))
      assert.equal((coded:gsub("=", "")), aws._base64url(plain))
      assert.equal(plain, aws._base64_decode(coded))
      assert.equal(plain, aws._base64_decode((coded:gsub("=", ""))))
    end
    assert.equal("+//+", aws._base64("\251\255\254"))
    assert.equal("-__-", aws._base64url("\251\255\254"))
    for _, bad in ipairs({"Z", "Zg=", "Zm9v!", "Zm 9v", "-__-", "Z===", "=Zg="}) do
      local v, err = aws._base64_decode(bad)
      assert.is_nil(v, bad)
      assert.equal("invalid base64", err)
    end
    assert.equal("a%2Fb%20c~%E1%88%B4", aws._uri_encode("a/b c~ሴ"))
    assert.equal("/a/b%20c", aws._uri_encode("/a/b c", false))
    assert.equal("20150830T123600Z", aws._amz_date(T_2015))
    assert.equal("20150830T123600Z", aws._amz_date(T_2015 + 0.9))
    assert.truthy(aws._amz_date():match("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$"))
    assert.truthy(raised(aws._amz_date, "x"):find("time must be a number"))
  end)
end)
