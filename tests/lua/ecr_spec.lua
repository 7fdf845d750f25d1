-- ecr_spec.lua: the ecr module against the loopback AWS double (ECR state
-- seeded through /_ferry/ecr, calls read back from /_ferry/calls): lookup,
-- URIs, waits on the double's scan progression, the scan gate, retag with the
-- byte-exact manifest, pagination and login.
local aws = require("aws")
local aws_support = require("aws_support")
local ecr = require("ecr")
local errors = require("errors")
local log = require("log")
local support = require("support")
local task = require("task")

local ACCOUNT = "123456789012"
local REGION = "eu-west-1"
local REGISTRY = ACCOUNT .. ".dkr.ecr." .. REGION .. ".amazonaws.com"

-- A Docker v2 manifest as `docker push` writes it: three-space indents, keys in
-- Docker's order. Any re-encoding changes its bytes and so its digest.
local function manifest(n)
  return table.concat({
    '{',
    '   "schemaVersion": 2,',
    '   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",',
    '   "config": {',
    '      "mediaType": "application/vnd.docker.container.image.v1+json",',
    ('      "size": %d,'):format(1400 + n),
    ('      "digest": "sha256:%064x"'):format(n),
    '   },',
    '   "layers": [',
    '      {',
    '         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",',
    '         "size": 2811478,',
    '         "digest": "sha256:' .. ("ab"):rep(32) .. '"',
    '      }',
    '   ]',
    '}',
  }, "\n")
end

-- An OCI manifest with no "mediaType" member: PutImage needs the media type
-- passed alongside it.
local OCI_MANIFEST = '{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
  .. '"digest":"sha256:' .. ("cd"):rep(32) .. '","size":512},"layers":[]}'
local OCI = "application/vnd.oci.image.manifest.v1+json"

local control = aws_support.control

local function seed(repositories, scans)
  return control("POST", "ecr/seed", {repositories = repositories, scans = scans})
end

-- The calls the double logged for an ECR operation.
local function calls(operation)
  return aws_support.calls("ecr", operation)
end

-- sha256 of s as "sha256:<hex>", by sha256sum(1): an oracle independent of Ferry and the double.
local function sha256(s)
  local path = os.tmpname()
  support.write(path, s)
  local p = io.popen("sha256sum " .. support.q(path))
  local hex = p:read("a"):match("^(%x+)")
  p:close()
  os.remove(path)
  return "sha256:" .. hex
end

describe("ecr", function()
  before_each(function()
    control("POST", "reset")
  end)

  it("looks an image up by tag", function()
    local m = manifest(1)
    seed({{repositoryName = "team/app",
           images = {{manifest = m, tags = {"v1", "latest"}, imageSizeInBytes = 2812900}}}})
    local image, err = ecr.image{repository = "team/app", tag = "v1"}
    assert.is_nil(err)
    assert.equal(sha256(m), image.digest)
    table.sort(image.tags)
    assert.same({"latest", "v1"}, image.tags)
    assert.equal(2812900, image.size)
    assert.equal("application/vnd.docker.distribution.manifest.v2+json", image.media_type)
    assert.is_number(image.pushed_at)
    assert.equal("team/app", image.repository)
    assert.equal(ACCOUNT, image.registry_id)
    assert.same({}, image.scan.counts)
  end)

  it("looks an image up by digest", function()
    local m = manifest(2)
    seed({{repositoryName = "app", images = {{manifest = m, tags = {"v2"}}}}})
    local image = assert(ecr.image{repository = "app", digest = sha256(m)})
    assert.same({"v2"}, image.tags)
    assert.equal(sha256(m), image.digest)
  end)

  it("returns nil and a not_found error for a tag that does not exist", function()
    seed({{repositoryName = "app", images = {{manifest = manifest(3), tags = {"v1"}}}}})
    local image, err = ecr.image{repository = "app", tag = "v9"}
    assert.is_nil(image)
    assert.is_true(errors.is(err, "not_found"))
    assert.matches("app:v9", err.message, 1, true)
    image, err = ecr.image{repository = "app", digest = "sha256:" .. ("0"):rep(64)}
    assert.is_nil(image)
    assert.is_true(errors.is(err, "not_found"))
  end)

  it("raises for a repository that does not exist", function()
    local err = support.raised(ecr.image, {repository = "nope", tag = "v1"})
    assert.is_true(errors.is(err, "RepositoryNotFoundException"))
  end)

  it("parses and formats image URIs as round trips", function()
    local digest = "sha256:" .. ("0123456789abcdef"):rep(4)
    for _, uri in ipairs({
      REGISTRY .. "/app",
      REGISTRY .. "/app:v1.2.3",
      REGISTRY .. "/team/sub-team/app_x__y.z:latest",
      REGISTRY .. "/app@" .. digest,
      REGISTRY .. "/team/app:v1@" .. digest,
      "210987654321.dkr.ecr.us-gov-west-1.amazonaws.com/a-b--c:Tag_1",
      "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/app:v1",
    }) do
      local parts, err = ecr.parse(uri)
      assert.is_nil(err)
      assert.equal(uri, ecr.format(parts))
      assert.same(parts, ecr.parse(ecr.format(parts)))
    end
    assert.same({registry = REGISTRY, registry_id = ACCOUNT, region = REGION, repository = "team/app", tag = "v1",
                 digest = digest}, ecr.parse(REGISTRY .. "/team/app:v1@" .. digest))
  end)

  it("rejects malformed URIs with nil and a message naming the problem", function()
    local good = "sha256:" .. ("ab"):rep(32)
    for _, case in ipairs({
      {"https://" .. REGISTRY .. "/app", "no scheme"},
      {REGISTRY, "no repository"},
      {"docker.io/library/nginx:1", "is not <account>.dkr.ecr.<region>.amazonaws.com"},
      {"1234.dkr.ecr.eu-west-1.amazonaws.com/app", "account id '1234' must be 12 digits"},
      {ACCOUNT .. ".dkr.ecr.EU-WEST-1.amazonaws.com/app", "region 'EU-WEST-1'"},
      {ACCOUNT .. ".dkr.ecr.eu-west-1.amazonaws.com.cn/app", "does not belong"},
      {REGISTRY .. "/App", "must start and end with a lowercase letter or digit"},
      {REGISTRY .. "/a..b", "'..' is not allowed"},
      {REGISTRY .. "/team//app", "empty path component"},
      {REGISTRY .. "/a", "2 to 256 characters"},
      {REGISTRY .. "/app:", "empty tag"},
      {REGISTRY .. "/app:-bad", "tag '-bad'"},
      {REGISTRY .. "/app:" .. ("t"):rep(129), "1 to 128"},
      {REGISTRY .. "/app@sha256:abc", "digest 'sha256:abc'"},
      {REGISTRY .. "/app@" .. good:upper():gsub("^SHA256", "sha256"), "lowercase hex"},
      {REGISTRY .. "/app@md5:" .. ("ab"):rep(16), "must be sha256:"},
    }) do
      local parts, err = ecr.parse(case[1])
      assert.is_nil(parts, case[1])
      assert.matches(case[2], err, 1, true)
      assert.matches("ecr.parse: '" .. case[1] .. "'", err, 1, true)
    end
  end)

  it("raises when format is given invalid parts", function()
    assert.matches("registry_id", support.raised(ecr.format, {registry_id = "12", region = REGION, repository = "app"}))
    assert.matches("repository name", support.raised(ecr.format, {registry_id = ACCOUNT, region = REGION,
                                                                   repository = "Bad"}))
    assert.matches("field 'region' is required", support.raised(ecr.format, {registry_id = ACCOUNT,
                                                                              repository = "app"}))
  end)

  it("resolves a tagged URI to its digest-pinned reference", function()
    local m = manifest(4)
    seed({{repositoryName = "team/app", images = {{manifest = m, tags = {"v4"}}}}})
    local ref, image = ecr.resolve(REGISTRY .. "/team/app:v4")
    assert.equal(REGISTRY .. "/team/app@" .. sha256(m), ref)
    assert.equal(sha256(m), image.digest)
    local missing, err = ecr.resolve(REGISTRY .. "/team/app:v5")
    assert.is_nil(missing)
    assert.is_true(errors.is(err, "not_found"))
    assert.matches("no tag or digest", support.raised(ecr.resolve, REGISTRY .. "/team/app"))
  end)

  it("waits for an image pushed while it polls", function()
    seed({{repositoryName = "app", images = {{manifest = manifest(5), tags = {"old"}}}}})
    local pusher = task.spawn(function()
      support.wait_for(10, function() return #calls("DescribeImages") >= 2 end, 0.02)
      seed({{repositoryName = "app", images = {{manifest = manifest(6), tags = {"new"}}}}})
    end)
    local image = ecr.wait_image{repository = "app", tag = "new", timeout = 20, interval = 0.05}
    task.wait(pusher)
    assert.equal(sha256(manifest(6)), image.digest)
    assert.is_true(#calls("DescribeImages") >= 3)
  end)

  it("times out waiting for an image, naming it and the last status", function()
    seed({{repositoryName = "app", images = {}}})
    local err = support.raised(ecr.wait_image, {repository = "app", tag = "never", timeout = 0.2, interval = 0.05})
    assert.is_true(errors.is(err, "timeout"))
    assert.matches("image app:never", err.message, 1, true)
    assert.matches("last status: not found", err.message, 1, true)
  end)

  it("waits for a scan through IN_PROGRESS to COMPLETE", function()
    local m = manifest(7)
    seed({{repositoryName = "app", images = {{manifest = m, tags = {"v7"},
           scan = {status = "COMPLETE", inProgressPolls = 3, findingSeverityCounts = {HIGH = 2, LOW = 4}}}}}})
    local scan = ecr.wait_scan{repository = "app", tag = "v7", timeout = 20, interval = 0.02}
    assert.equal("COMPLETE", scan.status)
    assert.same({HIGH = 2, LOW = 4}, scan.counts)
    assert.equal(sha256(m), scan.digest)
    assert.is_true(#calls("DescribeImageScanFindings") >= 4) -- three answers IN_PROGRESS first
  end)

  it("returns a FAILED scan with its description", function()
    seed({{repositoryName = "app", images = {{manifest = manifest(8), tags = {"v8"},
           scan = {status = "FAILED", inProgressPolls = 1, description = "layer could not be read"}}}}})
    local scan = ecr.wait_scan{repository = "app", tag = "v8", timeout = 20, interval = 0.02}
    assert.equal("FAILED", scan.status)
    assert.equal("layer could not be read", scan.description)
  end)

  it("times out waiting for a scan, naming the last status", function()
    seed({{repositoryName = "app", images = {{manifest = manifest(9), tags = {"v9"},
           scan = {status = "COMPLETE", inProgressPolls = 1000}}}}})
    local err = support.raised(ecr.wait_scan, {repository = "app", tag = "v9", timeout = 0.2, interval = 0.05})
    assert.is_true(errors.is(err, "timeout"))
    assert.matches("the scan of image app:v9", err.message, 1, true)
    assert.matches("last status: IN_PROGRESS", err.message, 1, true)
  end)

  it("passes the scan gate when every count is within its limit", function()
    local m = manifest(10)
    seed({{repositoryName = "app", images = {{manifest = m, tags = {"v10"},
           scan = {status = "COMPLETE", findingSeverityCounts = {HIGH = 5, MEDIUM = 40}}}}}})
    local scan = ecr.scan_gate{repository = "app", digest = sha256(m), max = {CRITICAL = 0, HIGH = 5}, interval = 0.02}
    assert.same({HIGH = 5, MEDIUM = 40}, scan.counts)
  end)

  it("fails the scan gate with the counts over their limits", function()
    local m = manifest(11)
    seed({{repositoryName = "app", images = {{manifest = m, tags = {"v11"},
           scan = {status = "COMPLETE", findingSeverityCounts = {CRITICAL = 2, HIGH = 7, LOW = 1}}}}}})
    local err = support.raised(ecr.scan_gate, {repository = "app", digest = sha256(m),
                                               max = {CRITICAL = 0, HIGH = 5, LOW = 3}, interval = 0.02})
    assert.is_true(errors.is(err, "scan_gate"))
    assert.equal(("image app@%s fails the scan gate: CRITICAL 2 > 0, HIGH 7 > 5 "
                  .. "(findings: CRITICAL 2, HIGH 7, LOW 1)"):format(sha256(m)), err.message)
    assert.same({"CRITICAL 2 > 0", "HIGH 7 > 5"}, err.over)
    assert.matches("'URGENT' is not a severity", support.raised(ecr.scan_gate, {repository = "app", tag = "v11",
                                                                                max = {URGENT = 0}}))
  end)

  it("retags with the byte-exact manifest, keeping the digest", function()
    local m = manifest(12)
    seed({{repositoryName = "team/app", images = {{manifest = m, tags = {"build-12"}}}}})
    local out = ecr.retag{repository = "team/app", from = "build-12", to = "prod"}
    assert.same({digest = sha256(m), tag = "prod", changed = true,
                 media_type = "application/vnd.docker.distribution.manifest.v2+json"}, out)
    local state = control("GET", "ecr/state").repositories["team/app"]
    assert.equal(sha256(m), state.tags.prod)
    assert.equal(1, #(function() local n = {} for d in pairs(state.images) do n[#n + 1] = d end return n end)())
    local got = aws.call{service = "ecr", operation = "BatchGetImage",
                         params = {repositoryName = "team/app", imageIds = {{imageTag = "prod"}}}}
    assert.equal(m, got.images[1].imageManifest)
    assert.equal(sha256(m), sha256(got.images[1].imageManifest))
    assert.equal(1, #calls("PutImage"))
  end)

  it("retags an OCI manifest without a mediaType member by passing its media type", function()
    seed({{repositoryName = "app", images = {{manifest = OCI_MANIFEST, mediaType = OCI, tags = {"rc"}}}}})
    local out = ecr.retag{repository = "app", from = "rc", to = "stable"}
    assert.equal(sha256(OCI_MANIFEST), out.digest)
    assert.equal(OCI, out.media_type)
    assert.equal(OCI, control("GET", "ecr/state").repositories.app.images[out.digest].mediaType)
  end)

  it("treats a tag that already points at the image as success", function()
    local m = manifest(13)
    seed({{repositoryName = "app", images = {{manifest = m, tags = {"v13", "prod"}}}}})
    local out = ecr.retag{repository = "app", from = "v13", to = "prod"}
    assert.is_false(out.changed)
    assert.equal(sha256(m), out.digest)
    assert.equal("ImageAlreadyExistsException", calls("PutImage")[1].error)
  end)

  it("raises a clear error when an immutable repository already has the tag", function()
    seed({{repositoryName = "locked", imageTagMutability = "IMMUTABLE",
           images = {{manifest = manifest(14), tags = {"v14"}}, {manifest = manifest(15), tags = {"prod"}}}}})
    local err = support.raised(ecr.retag, {repository = "locked", from = "v14", to = "prod"})
    assert.is_true(errors.is(err, "ImageTagAlreadyExistsException"))
    assert.matches("cannot tag image locked:v14 as 'prod'", err.message, 1, true)
    assert.matches("immutable tags", err.message, 1, true)
    assert.equal(sha256(manifest(15)), control("GET", "ecr/state").repositories.locked.tags.prod)
  end)

  it("raises not_found when the image to retag does not exist", function()
    seed({{repositoryName = "app", images = {}}})
    local err = support.raised(ecr.retag, {repository = "app", from = "ghost", to = "prod"})
    assert.is_true(errors.is(err, "not_found"))
    assert.equal(0, #calls("PutImage"))
  end)

  it("iterates every image over all pages", function()
    local images = {}
    for i = 1, 250 do images[i] = {manifest = manifest(1000 + i), tags = i % 2 == 0 and {"t" .. i} or nil} end
    seed({{repositoryName = "big", images = images}})
    local seen, n = {}, 0
    for image in ecr.images{repository = "big"} do
      assert.is_nil(seen[image.digest])
      seen[image.digest] = true
      n = n + 1
    end
    assert.equal(250, n)
    for i = 1, 250 do assert.is_true(seen[sha256(manifest(1000 + i))]) end
    assert.equal(3, #calls("DescribeImages")) -- pages of 100, 100, 50
    local tagged = 0
    for _ in ecr.images{repository = "big", filter = {tag_status = "TAGGED"}, page_size = 1000} do
      tagged = tagged + 1
    end
    assert.equal(125, tagged)
  end)

  it("retries a throttled lookup", function()
    seed({{repositoryName = "app", images = {{manifest = manifest(16), tags = {"v16"}}}}})
    aws_support.fault{service = "ecr", operation = "DescribeImages", kind = "throttle", count = 2}
    assert.is_table(ecr.image{repository = "app", tag = "v16"})
    local log_ = calls("DescribeImages")
    assert.equal(3, #log_)
    assert.equal("ThrottlingException", log_[1].error)
    assert.equal("ThrottlingException", log_[2].error)
  end)

  it("logs in with the decoded token and masks the password", function()
    local login = ecr.login()
    assert.equal("AWS", login.username)
    assert.equal("https://" .. REGISTRY, login.endpoint)
    assert.equal(REGISTRY, login.registry)
    assert.is_number(login.expires_at)
    assert.is_true(login.expires_at > os.time() + 11 * 3600)
    assert.is_true(control("POST", "ecr/check-password", {password = login.password}).valid)
    assert.is_nil(log.redact("password=" .. login.password):find(login.password, 1, true))
  end)

  it("raises on bad arguments before calling", function()
    assert.matches("field 'repository' is required", support.raised(ecr.image, {tag = "v1"}))
    assert.matches("field 'tag' or 'digest' is required", support.raised(ecr.image, {repository = "app"}))
    assert.matches("64 lowercase hex", support.raised(ecr.image, {repository = "app", digest = "sha256:xyz"}))
    assert.matches("field 'from' is required", support.raised(ecr.retag, {repository = "app", to = "x"}))
    assert.equal(0, #aws_support.calls("ecr"))
  end)
end)
