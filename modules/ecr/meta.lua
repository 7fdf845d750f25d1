---@meta ecr
-- Amazon ECR for workflows: image lookup by tag or digest, image URIs, digest
-- pinning, waits for an image and its scan, a scan gate, retag/promote with
-- the byte-exact manifest, every image of a repository, and a docker login.
-- Calls go through aws.call (signed, retried, AWS_ENDPOINT_URL_ECR honoured).
-- Service failures raise aws error objects {code, message, status,
-- request_id, retryable, op}; bad arguments raise "ecr.<fn>: ..." strings.

-- luacheck: no unused args

---@class ecr.ImageRef
---@field repository string repository name (may contain "/")
---@field tag? string
---@field digest? string "sha256:<64 lowercase hex>"; wins over tag when both are given
---@field registry_id? string 12-digit account of the registry (default: the caller's)
---@field region? string default aws.region()

---@class ecr.Scan
---@field status string COMPLETE, FAILED, IN_PROGRESS, ... or "NONE" when no scan exists
---@field description? string
---@field counts table<string, integer> findings per severity: CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED
---@field completed_at? number epoch seconds
---@field digest? string

---@class ecr.Image
---@field digest string
---@field tags string[] (a json.array)
---@field pushed_at? number epoch seconds
---@field size? integer bytes
---@field media_type? string the manifest's media type
---@field artifact_media_type? string
---@field repository string
---@field registry_id string
---@field scan ecr.Scan the scan summary DescribeImages reports (status nil when never scanned)

---@class ecr.Parts
---@field registry string the host, "<account>.dkr.ecr.<region>.amazonaws.com"
---@field registry_id string 12-digit account
---@field region string
---@field repository string
---@field tag? string
---@field digest? string

---@class ecr.Login
---@field username string "AWS"
---@field password string registered with log.secret
---@field endpoint string "https://<account>.dkr.ecr.<region>.amazonaws.com"
---@field registry string the endpoint's host, for `docker login <registry>`
---@field expires_at number epoch seconds (12 hours after issue)

local ecr = {}

---Seconds wait_image and wait_scan wait when not told.
ecr.default_timeout = 300
---Seconds between polls when not told.
ecr.default_interval = 5

---The image a tag or digest names (DescribeImages), or nil and an error
---object with code "not_found" when the repository has no such image.
---Other failures (RepositoryNotFoundException, ...) raise.
---@param args ecr.ImageRef
---@return ecr.Image?
---@return ferry.Error? err
function ecr.image(args) end

---Every image of a repository, page by page (DescribeImages with nextToken):
---`for image in ecr.images{repository = "app"} do ... end`.
---@param args {repository: string, registry_id?: string, region?: string, filter?: {tag_status?: "TAGGED"|"UNTAGGED"|"ANY", image_status?: string}, page_size?: integer}
---@return fun(): ecr.Image?
function ecr.images(args) end

---Splits `<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag][@sha256:<hex>]`
---(".amazonaws.com.cn" in China); nil and a message naming what is wrong
---(no scheme, 12-digit account, region, repository name rules, tag, digest).
---@param uri string
---@return ecr.Parts?
---@return string? err
function ecr.parse(uri) end

---The URI of parts (inverse of ecr.parse); raises on invalid parts.
---@param parts {registry_id: string, region: string, repository: string, tag?: string, digest?: string}
---@return string
function ecr.format(parts) end

---The digest-pinned reference `<registry>/<repository>@sha256:...` of an
---image URI with a tag (or digest, checked to exist), and the image; nil and
---a "not_found" error object when there is no such image. Raises on a bad URI.
---@param uri string
---@return string? ref
---@return ecr.Image|ferry.Error image_or_err
function ecr.resolve(uri) end

---Polls ecr.image until the image exists and returns it; raises a "timeout"
---error naming the image and the last status at the deadline.
---@param args ecr.ImageRef|{timeout?: number, interval?: number}
---@return ecr.Image
function ecr.wait_image(args) end

---Polls DescribeImageScanFindings until the image's scan is over (any status
---but IN_PROGRESS, PENDING or no scan yet: COMPLETE, FAILED, ...) and returns
---it; raises a "timeout" error naming the image and the last status.
---@param args ecr.ImageRef|{timeout?: number, interval?: number}
---@return ecr.Scan
function ecr.wait_scan(args) end

---Waits for the image's scan, then raises an error with code "scan_gate"
---(fields counts, over) listing every severity over its limit, e.g.
---"CRITICAL 2 > 0, HIGH 7 > 5"; code "scan_failed" when the scan did not
---complete. Returns the scan when the image passes.
---@param args ecr.ImageRef|{max: table<string, integer>, timeout?: number, interval?: number}
---@return ecr.Scan
function ecr.scan_gate(args) end

---Tags image `from` (a tag, or a sha256 digest) as `to`: BatchGetImage, then
---PutImage with the manifest string unchanged and its media type, so the
---digest stays the same. Already tagged so is success (changed = false); an
---existing tag in an immutable repository raises ImageTagAlreadyExistsException
---with a message saying so; a missing source raises "not_found".
---@param args {repository: string, from: string, to: string, registry_id?: string, region?: string}
---@return {digest: string, tag: string, media_type?: string, changed: boolean}
function ecr.retag(args) end

---A registry login for docker (GetAuthorizationToken, decoded "AWS:password").
---@param args? {registry_id?: string, region?: string}
---@return ecr.Login
function ecr.login(args) end

return ecr
