-- ecr.lua: Amazon ECR for workflows: image lookup by tag or digest, image
-- URIs (parse, format, resolve to a digest-pinned reference), waits for an
-- image and for its scan, a scan gate, retag/promote with the byte-exact
-- manifest, every image of a repository page by page, and a docker login.
--
-- Every call goes through aws.call (service "ecr"), so it is signed, retried
-- and redirected by AWS_ENDPOINT_URL_ECR like any other. Service failures
-- raise aws error objects {code, message, status, request_id, retryable, op};
-- ecr.image and ecr.resolve return nil and a "not_found" error object when
-- the image does not exist; bad arguments raise plain strings "ecr.<fn>: ...".
local aws = require("aws")
local errors = require("errors")
local json = require("json")
local log = require("log")
local task = require("task")

local M = {}

M.default_timeout = 300 -- seconds wait_image and wait_scan wait when not told
M.default_interval = 5 -- seconds between polls (botocore's ImageScanComplete waiter)

-- What BatchGetImage may answer with: every manifest type ECR stores, so the
-- manifest comes back as pushed, never converted.
local MEDIA_TYPES = {
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
}
local SEVERITIES = {"CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"}
local SEVERITY = {}
for _, s in ipairs(SEVERITIES) do SEVERITY[s] = true end
-- Scan states that are not an answer yet; wait_scan polls through them.
local SCAN_PENDING = {IN_PROGRESS = true, PENDING = true}
-- Scan states whose findings can be gated on.
local SCAN_DONE = {COMPLETE = true, ACTIVE = true}

---------------------------------------------------------------------------
-- Arguments

-- Raises "ecr.<fname>: msg" at the caller's line: the first stack frame
-- outside this file.
local function argerror(fname, msg)
  local level = 2
  while (debug.getinfo(level, "S") or {}).source == "@modules/ecr/ecr.lua" do level = level + 1 end
  error(("ecr.%s: %s"):format(fname, msg), level)
end

local function check_table(fname, args)
  if type(args) ~= "table" then argerror(fname, "expected a table of arguments") end
end

local function opt_string(fname, args, key)
  local v = args[key]
  if v ~= nil and (type(v) ~= "string" or v == "") then
    argerror(fname, ("field '%s' must be a non-empty string"):format(key))
  end
  return v
end

local function need_string(fname, args, key)
  if args[key] == nil then argerror(fname, ("field '%s' is required"):format(key)) end
  return opt_string(fname, args, key)
end

local function opt_number(fname, args, key, default)
  local v = args[key]
  if v == nil then return default end
  if type(v) ~= "number" or v < 0 then
    argerror(fname, ("field '%s' must be a non-negative number"):format(key))
  end
  return v
end

local function is_digest(s)
  return #s == 71 and s:match("^sha256:%x+$") ~= nil and not s:find("%u")
end

-- The ImageIdentifier of args (digest wins over tag, as docker pulls a
-- "repo:tag@digest" by its digest) and how to name it in messages.
local function image_id(fname, args)
  local tag, digest = opt_string(fname, args, "tag"), opt_string(fname, args, "digest")
  if digest then
    if not is_digest(digest) then
      argerror(fname, ("digest '%s' must be sha256: and 64 lowercase hex digits"):format(digest))
    end
    return {imageDigest = digest}, args.repository .. "@" .. digest
  end
  if not tag then argerror(fname, "field 'tag' or 'digest' is required") end
  return {imageTag = tag}, args.repository .. ":" .. tag
end

-- The common call arguments: repository (required), registry_id, region.
local function repo_args(fname, args)
  check_table(fname, args)
  need_string(fname, args, "repository")
  opt_string(fname, args, "registry_id")
  opt_string(fname, args, "region")
end

local function call(op, params, args)
  return aws.call{service = "ecr", operation = op, params = params, region = args.region}
end

-- nil for an absent value or a JSON null.
local function value(v)
  if v == json.null then return nil end
  return v
end

local function copy_counts(counts)
  local out = {}
  for k, v in pairs(value(counts) or {}) do out[k] = v end
  return out
end

-- The plain image table of an ECR ImageDetail.
local function image_from_detail(d)
  local status = value(d.imageScanStatus) or {}
  local summary = value(d.imageScanFindingsSummary) or {}
  local tags = {}
  for i, t in ipairs(value(d.imageTags) or {}) do tags[i] = t end
  return {
    digest = d.imageDigest,
    tags = json.array(tags),
    pushed_at = value(d.imagePushedAt),
    size = value(d.imageSizeInBytes),
    media_type = value(d.imageManifestMediaType),
    artifact_media_type = value(d.artifactMediaType),
    repository = d.repositoryName,
    registry_id = d.registryId,
    scan = {
      status = value(status.status),
      description = value(status.description),
      counts = copy_counts(summary.findingSeverityCounts),
      completed_at = value(summary.imageScanCompletedAt),
    },
  }
end

local function not_found(err, what, op)
  return errors.new{code = "not_found", message = ("image %s not found"):format(what), op = op,
                    status = err.status, request_id = err.request_id, aws_code = err.code}
end

---------------------------------------------------------------------------
-- Lookup

---The image a tag or digest names, or nil and a "not_found" error object.
function M.image(args)
  repo_args("image", args)
  local id, what = image_id("image", args)
  local ok, out = pcall(call, "DescribeImages",
                        {repositoryName = args.repository, registryId = args.registry_id, imageIds = {id}}, args)
  if not ok then
    if errors.is(out, "ImageNotFoundException") then return nil, not_found(out, what, "DescribeImages") end
    error(out, 0)
  end
  local d = value(out.imageDetails) and out.imageDetails[1]
  if not d then
    return nil, errors.new{code = "not_found", message = ("image %s not found"):format(what), op = "DescribeImages"}
  end
  return image_from_detail(d)
end

---Every image of a repository, as an iterator over all pages of DescribeImages.
function M.images(args)
  repo_args("images", args)
  local params = {repositoryName = args.repository, registryId = args.registry_id}
  local filter = args.filter
  if filter ~= nil then
    if type(filter) ~= "table" then argerror("images", "field 'filter' must be a table") end
    local f = {tagStatus = opt_string("images", filter, "tag_status"),
               imageStatus = opt_string("images", filter, "image_status")}
    params.filter = next(f) and f or nil
  end
  if args.page_size ~= nil then
    if math.type(args.page_size) ~= "integer" or args.page_size < 1 or args.page_size > 1000 then
      argerror("images", "field 'page_size' must be an integer from 1 to 1000")
    end
    params.maxResults = args.page_size
  end
  local page, i, done = {}, 0, false
  return function()
    while i >= #page do
      if done then return nil end
      local out = call("DescribeImages", params, args)
      page, i = value(out.imageDetails) or {}, 0
      params.nextToken = value(out.nextToken)
      done = params.nextToken == nil
    end
    i = i + 1
    return image_from_detail(page[i])
  end
end

---------------------------------------------------------------------------
-- URIs

-- Why a repository name is invalid, or nil. ECR's pattern:
-- [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
local function repository_problem(name)
  if #name < 2 or #name > 256 then
    return ("repository name '%s' must be 2 to 256 characters"):format(name)
  end
  for part in (name .. "/"):gmatch("([^/]*)/") do
    if part == "" then return ("repository name '%s' has an empty path component"):format(name) end
    if not part:match("^[a-z0-9]") or not part:match("[a-z0-9]$") then
      return ("repository name '%s': '%s' must start and end with a lowercase letter or digit"):format(name, part)
    end
    for sep in part:gmatch("[^a-z0-9]+") do
      if sep ~= "." and sep ~= "_" and sep ~= "__" and not sep:match("^%-+$") then
        return ("repository name '%s': '%s' is not allowed (lowercase letters and digits, separated by "
                .. "'.', '_', '__' or dashes)"):format(name, sep)
      end
    end
  end
  return nil
end

local function tag_problem(tag)
  if #tag > 128 or not tag:match("^[%w_][%w_.%-]*$") then
    return ("tag '%s' must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"):format(tag)
  end
  return nil
end

local function region_problem(region)
  if not region:match("^%l%l%-[%l%-]+%-%d+$") or region:find("--", 1, true) then
    return ("region '%s' is not a region name such as eu-west-1"):format(region)
  end
  return nil
end

local function registry_host(registry_id, region)
  local suffix = region:match("^cn%-") and ".amazonaws.com.cn" or ".amazonaws.com"
  return registry_id .. ".dkr.ecr." .. region .. suffix
end

---Splits an ECR image URI into its parts, or returns nil and what is wrong.
function M.parse(uri)
  if type(uri) ~= "string" then argerror("parse", "expected a string") end
  local function bad(msg) return nil, ("ecr.parse: '%s': %s"):format(uri, msg) end
  local scheme = uri:match("^%a[%w+.-]*://")
  if scheme then return bad("an image URI has no scheme; remove '" .. scheme .. "'") end
  local host, rest = uri:match("^([^/]*)/(.*)$")
  if not host then return bad("no repository: expected <account>.dkr.ecr.<region>.amazonaws.com/<repository>") end
  local cn = host:match("%.amazonaws%.com%.cn$") ~= nil
  local account, region = host:gsub("%.cn$", ""):match("^([^.]*)%.dkr%.ecr%.([^.]+)%.amazonaws%.com$")
  if not account then
    return bad(("registry '%s' is not <account>.dkr.ecr.<region>.amazonaws.com"):format(host))
  end
  if not account:match("^%d+$") or #account ~= 12 then
    return bad(("account id '%s' must be 12 digits"):format(account))
  end
  local problem = region_problem(region)
  if problem then return bad(problem) end
  if cn ~= (region:match("^cn%-") ~= nil) then
    return bad(("registry '%s': region '%s' does not belong to that domain"):format(host, region))
  end
  local name_tag, digest = rest, nil
  local at = rest:find("@", 1, true)
  if at then name_tag, digest = rest:sub(1, at - 1), rest:sub(at + 1) end
  local repository, tag = name_tag, nil
  local colon = name_tag:find(":", 1, true)
  if colon then repository, tag = name_tag:sub(1, colon - 1), name_tag:sub(colon + 1) end
  if repository == "" then return bad("no repository name") end
  problem = repository_problem(repository)
  if problem then return bad(problem) end
  if tag then
    if tag == "" then return bad("empty tag after ':'") end
    problem = tag_problem(tag)
    if problem then return bad(problem) end
  end
  if digest and not is_digest(digest) then
    return bad(("digest '%s' must be sha256: and 64 lowercase hex digits"):format(digest))
  end
  return {registry = host, registry_id = account, region = region, repository = repository, tag = tag,
          digest = digest}
end

---The image URI of parts (the inverse of ecr.parse); raises on invalid parts.
function M.format(parts)
  check_table("format", parts)
  local registry_id = need_string("format", parts, "registry_id")
  local region = need_string("format", parts, "region")
  local repository = need_string("format", parts, "repository")
  local tag, digest = opt_string("format", parts, "tag"), opt_string("format", parts, "digest")
  if not registry_id:match("^%d+$") or #registry_id ~= 12 then
    argerror("format", ("registry_id '%s' must be 12 digits"):format(registry_id))
  end
  local problem = region_problem(region) or repository_problem(repository) or (tag and tag_problem(tag))
  if problem then argerror("format", problem) end
  if digest and not is_digest(digest) then
    argerror("format", ("digest '%s' must be sha256: and 64 lowercase hex digits"):format(digest))
  end
  return registry_host(registry_id, region) .. "/" .. repository .. (tag and ":" .. tag or "")
         .. (digest and "@" .. digest or "")
end

---The digest-pinned reference of an image URI, and the image; nil and a
---"not_found" error object when the image does not exist.
function M.resolve(uri)
  local parts, problem = M.parse(uri)
  if not parts then argerror("resolve", problem:gsub("^ecr%.parse: ", "")) end
  if not parts.tag and not parts.digest then
    argerror("resolve", ("'%s': no tag or digest to resolve"):format(uri))
  end
  local image, err = M.image{repository = parts.repository, tag = parts.tag, digest = parts.digest,
                             registry_id = parts.registry_id, region = parts.region}
  if not image then return nil, err end
  return M.format{registry_id = parts.registry_id, region = parts.region, repository = parts.repository,
                  digest = image.digest}, image
end

---------------------------------------------------------------------------
-- Waits and the scan gate

-- Polls probe() every args.interval seconds until it returns a value; at the
-- args.timeout deadline raises a "timeout" error naming what and the last
-- status probe reported (its second result).
local function poll(fname, args, what, probe)
  local timeout = opt_number(fname, args, "timeout", M.default_timeout)
  local interval = opt_number(fname, args, "interval", M.default_interval)
  local deadline = task.now() + timeout
  while true do
    local result, status = probe()
    if result ~= nil then return result end
    local left = deadline - task.now()
    if left <= 0 then
      error(errors.new{code = "timeout", message = ("timed out after %gs waiting for %s (last status: %s)")
                                                      :format(timeout, what, status)}, 0)
    end
    task.sleep(math.min(interval, left))
  end
end

---Waits until the image exists; returns it.
function M.wait_image(args)
  repo_args("wait_image", args)
  local _, what = image_id("wait_image", args)
  return poll("wait_image", args, "image " .. what, function()
    local image = M.image(args)
    return image, "not found"
  end)
end

---The current scan of an image: {status, description, counts, completed_at},
---with status "NONE" when no scan exists.
local function scan_of(args, id)
  local ok, out = pcall(call, "DescribeImageScanFindings",
                        {repositoryName = args.repository, registryId = args.registry_id, imageId = id,
                         maxResults = 1}, args)
  if not ok then
    if errors.is(out, "ScanNotFoundException") then
      return {status = "NONE", description = value(out.message), counts = {}}
    end
    error(out, 0)
  end
  local status = value(out.imageScanStatus) or {}
  local findings = value(out.imageScanFindings) or {}
  return {status = value(status.status) or "NONE", description = value(status.description),
          counts = copy_counts(findings.findingSeverityCounts),
          completed_at = value(findings.imageScanCompletedAt),
          digest = value(out.imageId) and value(out.imageId.imageDigest)}
end

---Waits until the image's scan is over (any state but IN_PROGRESS, PENDING or
---no scan yet); returns {status, description, counts, completed_at, digest}.
function M.wait_scan(args)
  repo_args("wait_scan", args)
  local id, what = image_id("wait_scan", args)
  return poll("wait_scan", args, "the scan of image " .. what, function()
    local scan = scan_of(args, id)
    if SCAN_PENDING[scan.status] or scan.status == "NONE" then return nil, scan.status end
    return scan
  end)
end

local function format_counts(counts)
  local out = {}
  for _, s in ipairs(SEVERITIES) do
    if counts[s] then out[#out + 1] = ("%s %d"):format(s, counts[s]) end
  end
  return #out > 0 and table.concat(out, ", ") or "none"
end

---Waits for the image's scan and raises a "scan_gate" error listing every
---severity whose count is over its limit; returns the scan when it passes.
function M.scan_gate(args)
  repo_args("scan_gate", args)
  local _, what = image_id("scan_gate", args)
  if type(args.max) ~= "table" then argerror("scan_gate", "field 'max' must be a table such as {CRITICAL = 0}") end
  for k, v in pairs(args.max) do
    if not SEVERITY[k] then
      argerror("scan_gate", ("max: '%s' is not a severity (%s)"):format(tostring(k), table.concat(SEVERITIES, ", ")))
    end
    if math.type(v) ~= "integer" or v < 0 then
      argerror("scan_gate", ("max.%s must be a non-negative integer"):format(k))
    end
  end
  local scan = M.wait_scan(args)
  if not SCAN_DONE[scan.status] then
    error(errors.new{code = "scan_failed", scan_status = scan.status, op = "DescribeImageScanFindings",
                     message = ("image %s has no scan findings to gate on: scan %s%s"):format(
                       what, scan.status, scan.description and (": " .. scan.description) or "")}, 0)
  end
  local over = {}
  for _, s in ipairs(SEVERITIES) do
    local limit, n = args.max[s], scan.counts[s] or 0
    if limit and n > limit then over[#over + 1] = ("%s %d > %d"):format(s, n, limit) end
  end
  if #over > 0 then
    error(errors.new{code = "scan_gate", counts = scan.counts, over = over,
                     message = ("image %s fails the scan gate: %s (findings: %s)"):format(
                       what, table.concat(over, ", "), format_counts(scan.counts))}, 0)
  end
  log.info("image %s passes the scan gate (findings: %s)", what, format_counts(scan.counts))
  return scan
end

---------------------------------------------------------------------------
-- Retag, login

---Tags the image `from` (a tag or a sha256 digest) as `to` with the exact
---manifest bytes; returns {digest, tag, media_type, changed}.
function M.retag(args)
  repo_args("retag", args)
  local from, to = need_string("retag", args, "from"), need_string("retag", args, "to")
  local problem = tag_problem(to)
  if problem then argerror("retag", problem) end
  local id = is_digest(from) and {imageDigest = from} or {imageTag = from}
  local what = args.repository .. (id.imageDigest and "@" or ":") .. from
  local out = call("BatchGetImage", {repositoryName = args.repository, registryId = args.registry_id,
                                     imageIds = {id}, acceptedMediaTypes = MEDIA_TYPES}, args)
  local image = value(out.images) and out.images[1]
  if not image then
    local f = value(out.failures) and out.failures[1] or {}
    local code = f.failureCode == "ImageNotFound" and "not_found" or (value(f.failureCode) or "ImageNotFound")
    error(errors.new{code = code, op = "BatchGetImage",
                     message = ("cannot retag image %s: %s"):format(what, value(f.failureReason) or "not found")}, 0)
  end
  local digest = image.imageId and image.imageId.imageDigest
  local ok, err = pcall(call, "PutImage", {repositoryName = args.repository, registryId = args.registry_id,
                                           imageManifest = image.imageManifest,
                                           imageManifestMediaType = value(image.imageManifestMediaType),
                                           imageTag = to}, args)
  if not ok then
    if errors.is(err, "ImageAlreadyExistsException") then
      return {digest = digest, tag = to, media_type = value(image.imageManifestMediaType), changed = false}
    end
    if errors.is(err, "ImageTagAlreadyExistsException") then
      err.message = ("cannot tag image %s as '%s': the tag already exists and repository '%s' has immutable tags (%s)")
                    :format(what, to, args.repository, err.message)
    end
    error(err, 0)
  end
  log.info("tagged image %s as %s", what, to)
  return {digest = digest, tag = to, media_type = value(image.imageManifestMediaType), changed = true}
end

-- The bytes a standard, padded base64 string encodes (whitespace ignored), or nil.
local function base64_decode(s)
  s = s:gsub("%s", "")
  if #s % 4 ~= 0 then return nil end
  return (aws._base64_decode(s))
end

---A registry login for docker: {username, password, endpoint, registry, expires_at}.
---The password is registered with log.secret.
function M.login(args)
  args = args or {}
  check_table("login", args)
  local registry_id = opt_string("login", args, "registry_id")
  opt_string("login", args, "region")
  local out = call("GetAuthorizationToken", {registryIds = registry_id and {registry_id} or nil}, args)
  local data = value(out.authorizationData) and out.authorizationData[1]
  if not data or type(data.authorizationToken) ~= "string" then
    error(errors.new{code = "invalid_response", op = "GetAuthorizationToken",
                     message = "GetAuthorizationToken returned no authorization token"}, 0)
  end
  log.secret(data.authorizationToken)
  local decoded = base64_decode(data.authorizationToken)
  local username, password = (decoded or ""):match("^([^:]+):(.+)$")
  if not username then
    error(errors.new{code = "invalid_response", op = "GetAuthorizationToken",
                     message = "GetAuthorizationToken returned a token that is not base64 of user:password"}, 0)
  end
  log.secret(password)
  local endpoint = value(data.proxyEndpoint)
  return {username = username, password = password, endpoint = endpoint,
          registry = endpoint and endpoint:gsub("^%a+://", ""):gsub("/.*$", "") or nil,
          expires_at = value(data.expiresAt)}
end

return M
