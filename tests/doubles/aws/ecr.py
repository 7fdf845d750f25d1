"""ecr.py: Amazon ECR service for Ferry's loopback AWS double (stdlib only).

The core (server.py) does HTTP, SigV4, model validation, JSON 1.1 encoding and
fault injection; this module keeps the registry state and answers operations:
GetAuthorizationToken, CreateRepository, DescribeRepositories, PutImage,
BatchGetImage, BatchDeleteImage, ListImages, DescribeImages and
DescribeImageScanFindings. Anything else is UnknownOperationException (400).

Behaviour
  - Images are keyed by digest = "sha256:" + sha256 hex of the exact UTF-8 bytes
    of the manifest text; tags map to digests; a moved tag leaves the old image
    untagged. Timestamps are float epoch seconds from ctx.now.
  - PutImage: IMMUTABLE repositories (and *_WITH_EXCLUSION per WILDCARD filter)
    refuse to move an existing tag (ImageTagAlreadyExistsException); putting a
    manifest whose digest exists with the same (or no) tag is
    ImageAlreadyExistsException; imageDigest must match the computed digest
    (ImageDigestDoesNotMatchException); invalid JSON, or no media type (neither
    imageManifestMediaType nor a "mediaType" field) on a schema-2 manifest, is
    InvalidParameterException "... 'Invalid JSON syntax'".
  - Pages of maxResults (default 100) with an opaque nextToken; DescribeImages /
    DescribeRepositories refuse nextToken or maxResults together with imageIds /
    repositoryNames (InvalidParameterException).
  - BatchGetImage / BatchDeleteImage report missing ids in failures[] with
    ImageNotFound, ImageTagDoesNotMatchDigest, InvalidImageDigest or
    MissingDigestAndTag. acceptedMediaTypes is ignored (no conversion).
  - Scans: an image has no scan (ScanNotFoundException) unless its repository
    has scanOnPush or a scan was seeded. A scan reports IN_PROGRESS until it has
    been asked about inProgressPolls times by DescribeImageScanFindings AND
    inProgressSeconds have passed since it started, then its final status
    (COMPLETE with findingSeverityCounts/findings, or FAILED, ...).

Control methods (JSON-ready dicts in and out), served by control() as base.py's
hook at /_ferry/ecr: POST "" or /seed, GET "" or /state, POST /reset, POST /check-password.
A bad seed body is 400 BadRequest.

  ECR.seed(body, ctx=None) -> {"repositories": [{"repositoryName",
        "images": [{"imageDigest", "imageTags"}]}]}
    body = {
      "repositories": [{
        "repositoryName": "app",                  required; created if missing
        "registryId": "123456789012",             default: the caller's account
        "imageTagMutability": "IMMUTABLE",        default MUTABLE
        "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "dev-*"}],
        "scanOnPush": true,                       PutImage then starts a scan
        "scanOnPushResult": {SCAN},               how those scans go (default COMPLETE, 1 poll)
        "images": [{
          "manifest": "<exact text>",             required
          "mediaType": "...",                     default: the manifest's "mediaType"
          "tags": ["v1", "latest"],               moved onto this image (no immutability check)
          "imageSizeInBytes": 1234, "artifactMediaType": "...", "imagePushedAt": 1.7e9,
          "scan": {SCAN}}]}],
      "scans": [{"repositoryName": "app", "imageDigest" or "imageTag": "...", SCAN...}]}
    SCAN = {"status": "COMPLETE" (final status: COMPLETE, FAILED, UNSUPPORTED_IMAGE ...),
            "inProgressPolls": 0, "inProgressSeconds": 0,
            "findingSeverityCounts": {"HIGH": 1}   (default: counted from findings),
            "findings": [{"name", "severity", "uri", "description", "attributes"}],
            "description": "..."}
  ECR.state() -> {"repositories": {name: {"imageTagMutability", "tags": {tag: digest},
        "images": {digest: {"imageTags", "mediaType", "scanStatus", "scanPolls"}}}}}
  ECR.check_password(password, now) -> bool: a password from GetAuthorizationToken
        that has not expired (for a registry double).
"""

import base64
import fnmatch
import hashlib
import json
import re
import secrets
import time

from base import AwsError, Service

DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL", "UNDEFINED")
TOKEN_TTL = 12 * 3600
SCAN_DESCRIPTIONS = {
    "IN_PROGRESS": "The scan is in progress.",
    "COMPLETE": "The scan was completed successfully.",
    "FAILED": "UnsupportedImageError: The operating system and/or package manager are not supported.",
}


def manifest_digest(manifest):
    """The ECR digest of a manifest given as text (or bytes)."""
    data = manifest.encode("utf-8") if isinstance(manifest, str) else manifest
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _id_text(image_id):
    return "{imageDigest:'%s', imageTag:'%s'}" % (
        image_id.get("imageDigest") or "null", image_id.get("imageTag") or "null")


def _invalid(message):
    return AwsError("InvalidParameterException", message)


class _Repo:
    def __init__(self, name, registry_id, created_at, mutability="MUTABLE", filters=None,
                 scan_on_push=False, scan_spec=None):
        self.name = name
        self.registry_id = registry_id   # None: whichever account asks
        self.created_at = created_at
        self.mutability = mutability
        self.filters = list(filters or [])
        self.scan_on_push = scan_on_push
        self.scan_spec = scan_spec
        self.images = {}    # digest -> _Image, in push order
        self.tags = {}      # tag -> digest

    def tag_immutable(self, tag):
        hit = any(fnmatch.fnmatchcase(tag, f.get("filter", "")) for f in self.filters)
        if self.mutability == "IMMUTABLE":
            return True
        if self.mutability == "IMMUTABLE_WITH_EXCLUSION":
            return not hit
        if self.mutability == "MUTABLE_WITH_EXCLUSION":
            return hit
        return False

    def tags_of(self, digest):
        return [t for t, d in self.tags.items() if d == digest]


class _Image:
    def __init__(self, digest, manifest, media_type, pushed_at, size, artifact_media_type, subject):
        self.digest = digest
        self.manifest = manifest
        self.media_type = media_type
        self.pushed_at = pushed_at
        self.size = size
        self.artifact_media_type = artifact_media_type
        self.subject = subject
        self.last_pull = None
        self.scan = None    # dict, see _new_scan


def _new_scan(spec, started_at):
    spec = dict(spec or {})
    findings = list(spec.get("findings") or [])
    counts = spec.get("findingSeverityCounts")
    if counts is None:
        counts = {}
        for f in findings:
            sev = f.get("severity", "UNDEFINED")
            counts[sev] = counts.get(sev, 0) + 1
    return {"final": spec.get("status", "COMPLETE"),
            "polls_needed": int(spec.get("inProgressPolls", 0)),
            "seconds": float(spec.get("inProgressSeconds", 0)),
            "description": spec.get("description"),
            "counts": dict(counts), "findings": findings,
            "polls": 0, "started_at": started_at, "completed_at": None}


def _parse_manifest(text, media_type):
    """(media type, size, artifact media type, subject digest) or InvalidParameterException."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise _invalid("Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'")
    field = doc.get("mediaType")
    if media_type and field and field != media_type:
        raise _invalid("Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
                       "'Manifest media type does not match the mediaType field of the manifest'")
    media_type = media_type or field
    if not media_type:
        if doc.get("schemaVersion") == 1:
            media_type = "application/vnd.docker.distribution.manifest.v1+json"
        else:
            raise _invalid("Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'")
    parts = doc.get("layers") or doc.get("manifests") or []
    sizes = [p.get("size") for p in parts if isinstance(p, dict) and isinstance(p.get("size"), int)]
    size = sum(sizes) if sizes else len(text.encode("utf-8"))
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    subject = doc.get("subject") if isinstance(doc.get("subject"), dict) else {}
    return media_type, size, config.get("mediaType"), subject.get("digest")


class ECR(Service):
    signing_name = "ecr"
    protocol = "json"
    target_prefix = "AmazonEC2ContainerRegistry_V20150921"

    def reset(self):
        with self._lock:
            self._repos = {}        # name -> _Repo, in creation order
            self._passwords = {}    # password -> expiresAt
            self._salt = secrets.token_hex(4)

    # ---------------------------------------------------------------- helpers
    def _registry(self, repo, ctx):
        return repo.registry_id or ctx.account_id

    def _repo(self, params, ctx, name=None):
        name = name or params["repositoryName"]
        registry = params.get("registryId") or ctx.account_id
        repo = self._repos.get(name)
        if repo is None or self._registry(repo, ctx) != registry:
            raise AwsError("RepositoryNotFoundException",
                           "The repository with name '%s' does not exist in the registry with id '%s'"
                           % (name, registry))
        return repo

    def _token(self, op, key, offset):
        raw = json.dumps({"o": op, "k": key, "i": offset, "s": self._salt}).encode()
        return base64.urlsafe_b64encode(raw).decode()

    def _page(self, items, params, op, key):
        limit = params.get("maxResults") or 100
        start = 0
        if params.get("nextToken") is not None:
            try:
                tok = json.loads(base64.urlsafe_b64decode(params["nextToken"].encode()))
                assert tok["o"] == op and tok["k"] == key and tok["s"] == self._salt
                start = int(tok["i"])
            except Exception:
                raise _invalid("Invalid parameter at 'nextToken' failed to satisfy constraint: "
                               "'Invalid NextToken'") from None
        end = start + limit
        return items[start:end], (self._token(op, key, end) if end < len(items) else None)

    def _resolve(self, repo, image_id):
        """(digest, failureCode, failureReason) for an ImageIdentifier."""
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        if not digest and not tag:
            return None, "MissingDigestAndTag", "Missing digest and tag"
        if digest and not DIGEST_RE.match(digest):
            return None, "InvalidImageDigest", "Invalid image digest"
        if tag is not None:
            found = repo.tags.get(tag)
            if found is None:
                return None, "ImageNotFound", "Requested image not found"
            if digest and digest != found:
                return None, "ImageTagDoesNotMatchDigest", "Tag does not match digest"
            return found, None, None
        if digest not in repo.images:
            return None, "ImageNotFound", "Requested image not found"
        return digest, None, None

    def _image_or_raise(self, repo, image_id, ctx):
        digest, code, _ = self._resolve(repo, image_id)
        if code in ("MissingDigestAndTag", "InvalidImageDigest"):
            raise _invalid("Invalid parameter at 'imageId' failed to satisfy constraint: '%s'"
                           % ("Missing digest and tag" if code == "MissingDigestAndTag" else "Invalid image digest"))
        if digest is None:
            raise AwsError("ImageNotFoundException",
                           "The image with imageId %s does not exist within the repository with name '%s' "
                           "in the registry with id '%s'" % (_id_text(image_id), repo.name, self._registry(repo, ctx)))
        return repo.images[digest]

    def _scan_status(self, scan, now, poll=False):
        """Advance a scan; returns its current status."""
        if scan["started_at"] is None:
            scan["started_at"] = now
        if scan["completed_at"] is None:
            if scan["polls"] >= scan["polls_needed"] and now >= scan["started_at"] + scan["seconds"]:
                scan["completed_at"] = now
            elif poll:
                scan["polls"] += 1
        return scan["final"] if scan["completed_at"] is not None else "IN_PROGRESS"

    def _scan_fields(self, scan, status):
        return {"status": status,
                "description": scan["description"] if status == scan["final"] and scan["description"]
                else SCAN_DESCRIPTIONS.get(status, status)}

    def _describe_repo(self, repo, ctx):
        registry, region = self._registry(repo, ctx), ctx.region
        out = {"repositoryArn": "arn:aws:ecr:%s:%s:repository/%s" % (region, registry, repo.name),
               "registryId": registry, "repositoryName": repo.name,
               "repositoryUri": "%s.dkr.ecr.%s.amazonaws.com/%s" % (registry, region, repo.name),
               "createdAt": repo.created_at, "imageTagMutability": repo.mutability,
               "imageScanningConfiguration": {"scanOnPush": repo.scan_on_push},
               "encryptionConfiguration": {"encryptionType": "AES256"}}
        if repo.filters:
            out["imageTagMutabilityExclusionFilters"] = [dict(f) for f in repo.filters]
        return out

    def _detail(self, repo, image, ctx):
        out = {"registryId": self._registry(repo, ctx), "repositoryName": repo.name,
               "imageDigest": image.digest, "imageSizeInBytes": image.size,
               "imagePushedAt": image.pushed_at, "imageManifestMediaType": image.media_type,
               "imageStatus": "ACTIVE"}
        tags = repo.tags_of(image.digest)
        if tags:
            out["imageTags"] = tags
        if image.artifact_media_type:
            out["artifactMediaType"] = image.artifact_media_type
        if image.subject:
            out["subjectManifestDigest"] = image.subject
        if image.last_pull is not None:
            out["lastRecordedPullTime"] = image.last_pull
        if image.scan is not None:
            status = self._scan_status(image.scan, ctx.now)
            out["imageScanStatus"] = self._scan_fields(image.scan, status)
            if status == "COMPLETE":
                out["imageScanFindingsSummary"] = {
                    "imageScanCompletedAt": image.scan["completed_at"],
                    "vulnerabilitySourceUpdatedAt": image.scan["started_at"],
                    "findingSeverityCounts": dict(image.scan["counts"])}
        return out

    # ---------------------------------------------------------------- operations
    def _op_GetAuthorizationToken(self, params, ctx):
        data = []
        for registry in params.get("registryIds") or [ctx.account_id]:
            password = "ferry-ecr-" + secrets.token_urlsafe(24)
            expires = ctx.now + TOKEN_TTL
            if len(self._passwords) >= 1000:   # bounded: forget expired passwords
                self._passwords = {p: e for p, e in self._passwords.items() if e > ctx.now}
            self._passwords[password] = expires
            data.append({"authorizationToken": base64.b64encode(("AWS:" + password).encode()).decode(),
                         "expiresAt": expires,
                         "proxyEndpoint": "https://%s.dkr.ecr.%s.amazonaws.com" % (registry, ctx.region)})
        return {"authorizationData": data}

    def _op_CreateRepository(self, params, ctx):
        name = params["repositoryName"]
        registry = params.get("registryId") or ctx.account_id
        if name in self._repos:
            raise AwsError("RepositoryAlreadyExistsException",
                           "The repository with name '%s' already exists in the registry with id '%s'"
                           % (name, registry))
        mutability = params.get("imageTagMutability", "MUTABLE")
        filters = params.get("imageTagMutabilityExclusionFilters")
        if filters and not mutability.endswith("_WITH_EXCLUSION"):
            raise _invalid("Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy "
                           "constraint: 'Exclusion filters require a *_WITH_EXCLUSION imageTagMutability'")
        scan = (params.get("imageScanningConfiguration") or {}).get("scanOnPush", False)
        repo = _Repo(name, registry, ctx.now, mutability, filters, scan)
        self._repos[name] = repo
        return {"repository": self._describe_repo(repo, ctx)}

    def _op_DescribeRepositories(self, params, ctx):
        names = params.get("repositoryNames")
        if names:
            if params.get("nextToken") is not None or params.get("maxResults") is not None:
                raise _invalid("Invalid parameter: nextToken and maxResults cannot be used with repositoryNames")
            return {"repositories": [self._describe_repo(self._repo(params, ctx, n), ctx) for n in names]}
        registry = params.get("registryId") or ctx.account_id
        repos = [r for r in self._repos.values() if self._registry(r, ctx) == registry]
        page, token = self._page(repos, params, "DescribeRepositories", registry)
        out = {"repositories": [self._describe_repo(r, ctx) for r in page]}
        if token:
            out["nextToken"] = token
        return out

    def _op_PutImage(self, params, ctx):
        repo = self._repo(params, ctx)
        manifest = params["imageManifest"]
        media_type, size, artifact, subject = _parse_manifest(manifest, params.get("imageManifestMediaType"))
        digest = manifest_digest(manifest)
        tag = params.get("imageTag")
        if params.get("imageDigest") and params["imageDigest"] != digest:
            raise AwsError("ImageDigestDoesNotMatchException",
                           "Invalid parameter at 'imageDigest' failed to satisfy constraint: 'Provided digest "
                           "%s does not match the digest %s that Amazon ECR calculated for the image'"
                           % (params["imageDigest"], digest))
        if tag is None and not params.get("imageDigest") and (
                media_type.endswith("manifest.v2+json") or media_type == "application/vnd.oci.image.manifest.v1+json"):
            raise _invalid("Invalid parameter at 'imageTag' failed to satisfy constraint: 'imageTag or imageDigest "
                           "is required for this manifest media type'")
        registry = self._registry(repo, ctx)
        if digest in repo.images and (tag is None or repo.tags.get(tag) == digest):
            raise AwsError("ImageAlreadyExistsException",
                           "Image with digest '%s' and tag '%s' already exists in the repository with name '%s' "
                           "in registry with id '%s'" % (digest, tag or "null", repo.name, registry))
        if tag is not None and tag in repo.tags and repo.tags[tag] != digest and repo.tag_immutable(tag):
            raise AwsError("ImageTagAlreadyExistsException",
                           "The image tag '%s' already exists in the '%s' repository and cannot be overwritten "
                           "because the tag is immutable." % (tag, repo.name))
        image = repo.images.get(digest)
        if image is None:
            image = _Image(digest, manifest, media_type, ctx.now, size, artifact, subject)
            if repo.scan_on_push:
                image.scan = _new_scan(repo.scan_spec or {"inProgressPolls": 1}, ctx.now)
            repo.images[digest] = image
        image_id = {"imageDigest": digest}
        if tag is not None:
            repo.tags[tag] = digest
            image_id["imageTag"] = tag
        return {"image": {"registryId": registry, "repositoryName": repo.name, "imageId": image_id,
                          "imageManifest": image.manifest, "imageManifestMediaType": image.media_type}}

    def _op_BatchGetImage(self, params, ctx):
        repo = self._repo(params, ctx)
        images, failures = [], []
        for image_id in params["imageIds"]:
            digest, code, reason = self._resolve(repo, image_id)
            if code:
                failures.append({"imageId": dict(image_id), "failureCode": code, "failureReason": reason})
                continue
            image = repo.images[digest]
            image.last_pull = ctx.now
            out_id = {"imageDigest": digest}
            if image_id.get("imageTag"):
                out_id["imageTag"] = image_id["imageTag"]
            images.append({"registryId": self._registry(repo, ctx), "repositoryName": repo.name,
                           "imageId": out_id, "imageManifest": image.manifest,
                           "imageManifestMediaType": image.media_type})
        return {"images": images, "failures": failures}

    def _op_BatchDeleteImage(self, params, ctx):
        repo = self._repo(params, ctx)
        deleted, failures = [], []
        for image_id in params["imageIds"]:
            digest, code, reason = self._resolve(repo, image_id)
            if code:
                failures.append({"imageId": dict(image_id), "failureCode": code, "failureReason": reason})
                continue
            if image_id.get("imageTag"):
                del repo.tags[image_id["imageTag"]]
                deleted.append({"imageDigest": digest, "imageTag": image_id["imageTag"]})
                if not repo.tags_of(digest):
                    del repo.images[digest]
                continue
            tags = repo.tags_of(digest)
            for t in tags:
                del repo.tags[t]
                deleted.append({"imageDigest": digest, "imageTag": t})
            if not tags:
                deleted.append({"imageDigest": digest})
            del repo.images[digest]
        return {"imageIds": deleted, "failures": failures}

    def _tag_status_ok(self, repo, digest, params):
        status = (params.get("filter") or {}).get("tagStatus", "ANY")
        tagged = bool(repo.tags_of(digest))
        return status == "ANY" or (status == "TAGGED") == tagged

    def _op_ListImages(self, params, ctx):
        repo = self._repo(params, ctx)
        if (params.get("filter") or {}).get("imageStatus") in ("ARCHIVED", "ACTIVATING"):
            ids = []
        else:
            ids = []
            for digest in repo.images:
                if not self._tag_status_ok(repo, digest, params):
                    continue
                tags = repo.tags_of(digest)
                ids.extend([{"imageDigest": digest, "imageTag": t} for t in tags] or [{"imageDigest": digest}])
        page, token = self._page(ids, params, "ListImages", repo.name)
        out = {"imageIds": page}
        if token:
            out["nextToken"] = token
        return out

    def _op_DescribeImages(self, params, ctx):
        repo = self._repo(params, ctx)
        if params.get("imageIds"):
            if params.get("nextToken") is not None or params.get("maxResults") is not None:
                raise _invalid("Invalid parameter: nextToken and maxResults cannot be used with imageIds")
            seen, details = set(), []
            for image_id in params["imageIds"]:
                image = self._image_or_raise(repo, image_id, ctx)
                if image.digest not in seen:
                    seen.add(image.digest)
                    details.append(self._detail(repo, image, ctx))
            return {"imageDetails": details}
        status = (params.get("filter") or {}).get("imageStatus", "ANY")
        digests = [d for d in repo.images if self._tag_status_ok(repo, d, params)
                   and status in ("ANY", "ACTIVE")]
        page, token = self._page(digests, params, "DescribeImages", repo.name)
        out = {"imageDetails": [self._detail(repo, repo.images[d], ctx) for d in page]}
        if token:
            out["nextToken"] = token
        return out

    def _op_DescribeImageScanFindings(self, params, ctx):
        repo = self._repo(params, ctx)
        image = self._image_or_raise(repo, params["imageId"], ctx)
        registry = self._registry(repo, ctx)
        if image.scan is None:
            raise AwsError("ScanNotFoundException",
                           "Image scan does not exist for the image with '%s' in the repository with name '%s' "
                           "in the registry with id '%s'" % (_id_text(params["imageId"]), repo.name, registry))
        scan = image.scan
        status = self._scan_status(scan, ctx.now, poll=True)
        image_id = {"imageDigest": image.digest}
        if params["imageId"].get("imageTag"):
            image_id["imageTag"] = params["imageId"]["imageTag"]
        out = {"registryId": registry, "repositoryName": repo.name, "imageId": image_id,
               "imageScanStatus": self._scan_fields(scan, status)}
        if status == "COMPLETE":
            page, token = self._page(scan["findings"], params, "DescribeImageScanFindings", image.digest)
            out["imageScanFindings"] = {"imageScanCompletedAt": scan["completed_at"],
                                        "vulnerabilitySourceUpdatedAt": scan["started_at"],
                                        "findingSeverityCounts": dict(scan["counts"]),
                                        "findings": [dict(f) for f in page]}
            if token:
                out["nextToken"] = token
        return out

    # ---------------------------------------------------------------- control
    def seed(self, body, ctx=None):
        now = ctx.now if ctx else time.time()
        out = []
        with self._lock:
            for spec in body.get("repositories") or []:
                name = spec["repositoryName"]
                repo = self._repos.get(name)
                if repo is None:
                    repo = _Repo(name, spec.get("registryId"), spec.get("createdAt", now))
                    self._repos[name] = repo
                repo.mutability = spec.get("imageTagMutability", repo.mutability)
                repo.filters = list(spec.get("imageTagMutabilityExclusionFilters", repo.filters))
                repo.scan_on_push = spec.get("scanOnPush", repo.scan_on_push)
                repo.scan_spec = spec.get("scanOnPushResult", repo.scan_spec)
                pushed = []
                for im in spec.get("images") or []:
                    manifest = im["manifest"]
                    media_type, size, artifact, subject = _parse_manifest(manifest, im.get("mediaType"))
                    digest = manifest_digest(manifest)
                    image = repo.images.get(digest)
                    if image is None:
                        image = _Image(digest, manifest, media_type, im.get("imagePushedAt", now),
                                       im.get("imageSizeInBytes", size), im.get("artifactMediaType", artifact),
                                       subject)
                        repo.images[digest] = image
                    for tag in im.get("tags") or []:
                        repo.tags[tag] = digest
                    if "scan" in im:
                        image.scan = _new_scan(im["scan"], now if ctx else None)
                    elif repo.scan_on_push and image.scan is None:
                        image.scan = _new_scan(repo.scan_spec or {"inProgressPolls": 1}, now if ctx else None)
                    pushed.append({"imageDigest": digest, "imageTags": repo.tags_of(digest)})
                out.append({"repositoryName": name, "images": pushed})
            for spec in body.get("scans") or []:
                repo = self._repos.get(spec["repositoryName"])
                if repo is None:
                    raise ValueError("seed scans: no repository %r" % spec["repositoryName"])
                digest, code, reason = self._resolve(repo, spec)
                if code:
                    raise ValueError("seed scans: %s %s" % (reason, _id_text(spec)))
                repo.images[digest].scan = _new_scan(spec, now if ctx else None)
        return {"repositories": out}

    def state(self):
        def scan(im):
            if im.scan is None:
                return None, 0
            done = im.scan["completed_at"] is not None
            return (im.scan["final"] if done else "IN_PROGRESS"), im.scan["polls"]
        with self._lock:
            return {"repositories": {r.name: {
                "imageTagMutability": r.mutability, "tags": dict(r.tags),
                "images": {d: dict(zip(("scanStatus", "scanPolls"), scan(im)), imageTags=r.tags_of(d),
                                   mediaType=im.media_type) for d, im in r.images.items()}}
                for r in self._repos.values()}}

    def check_password(self, password, now=None):
        with self._lock:
            expires = self._passwords.get(password)
            return expires is not None and (now if now is not None else time.time()) < expires

    def control(self, method, path, body, ctx):
        """/_ferry/ecr: POST "" or /seed, GET "" or /state, POST /reset, POST /check-password {"password"}."""
        if method == "POST" and path in ("", "/seed"):
            try:
                return self.seed(body or {}, ctx)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise AwsError("BadRequest", "invalid ECR seed body: %r" % e) from None
        if method == "GET" and path in ("", "/state"):
            return self.state()
        if method == "POST" and path == "/reset":
            self.reset()
            return {}
        if method == "POST" and path == "/check-password":
            return {"valid": self.check_password((body or {}).get("password", ""), ctx.now)}
        raise AwsError("NotFound", "no ECR control endpoint %s %s" % (method, path), 404)


SERVICE = ECR()
