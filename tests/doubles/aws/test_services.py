#!/usr/bin/python3
"""test_services.py: unit tests of the ECR and CodePipeline services of the AWS double.

Calls the classes directly (no HTTP). Like the core, each call is first checked
against the botocore model (models.validate; a bad request becomes the model's
validation error) unless raw=True, and every result is checked with
models.check_output, so an unknown or mistyped output member fails the test.
Prints a failure report per failed test and closes with "N passed, N failed".

    /usr/bin/python3 tests/doubles/aws/test_services.py [name-substring]
"""

import base64
import hashlib
import json
import os
import sys
import threading

sys.dont_write_bytecode = True   # leave no __pycache__ in the tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.append(os.path.dirname(HERE))  # testlib.py

from base import AwsError, CallContext  # noqa: E402
import codepipeline  # noqa: E402
import ecr  # noqa: E402
import models  # noqa: E402
import testlib  # noqa: E402

ACCOUNT = "123456789012"
T0 = 1_700_000_000.0
try:
    MODELS = {n: models.load(models.default_root(), n) for n in ("ecr", "codepipeline")}
except models.MissingModel as e:
    sys.exit(f"test_services: {e}")
JOB0 = "11111111-abcd-1111-abcd-111111abcdef"   # a well-formed job id nobody seeded


class Client:
    """A service plus a clock, called the way the core calls it."""

    def __init__(self, service, model_name, repo=None):
        self.svc, self.model, self.now, self.region, self.repo = service, MODELS[model_name], T0, "eu-west-1", repo

    def ctx(self):
        return CallContext(ACCOUNT, self.region, "AKIDEXAMPLE", self.now, "req-0001")

    def __call__(self, op, raw=False, **params):
        m = self.model
        if self.repo and "repositoryName" in m.shapes[m.input_shape(op)]["members"]:
            params.setdefault("repositoryName", self.repo)   # the default repository
        if not raw and m.input_shape(op):
            errors = models.validate(m, m.input_shape(op), params)
            if errors:
                raise AwsError(m.validation_code(op), models.message(errors))
        out = self.svc.call(op, params, self.ctx())
        assert isinstance(out, dict) and json.dumps(out), "%s returned %r" % (op, out)
        if m.output_shape(op):
            problems = models.check_output(m, m.output_shape(op), out)
            assert not problems, "%s output: %s" % (op, problems)
        return out


def raises(code, fn, *args, status=400, **kw):
    try:
        fn(*args, **kw)
    except AwsError as e:
        assert e.code == code, "expected %s, got %s: %s" % (code, e.code, e.message)
        assert e.status == status and e.sender and e.message, (e.status, e.sender, e.message)
        return e
    raise AssertionError("expected %s, nothing raised" % code)


def value_error(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return
    raise AssertionError("expected ValueError")


def eq(a, b, what=""):
    assert a == b, "%s: %r != %r" % (what, a, b)


def pages(c, op, key, split=False, **params):
    """Every item of a paginated call (a list per page with split)."""
    out, token = [], None
    while True:
        page = c(op, **params, **({"nextToken": token} if token else {}))
        out.append(page[key])
        token = page.get("nextToken")
        if not token:
            return out if split else [x for p in out for x in p]


# ----------------------------------------------------------------- ECR fixtures
def manifest(n=0, layers=(100, 200), media="application/vnd.docker.distribution.manifest.v2+json", field=True):
    doc = dict({"schemaVersion": 2}, **({"mediaType": media} if field else {}))
    doc["config"] = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": digest("c%d" % n)}
    doc["layers"] = [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": s,
                      "digest": digest("l%d-%d" % (n, i))} for i, s in enumerate(layers)]
    return json.dumps(doc, indent=3) + "\n"   # odd formatting on purpose: digests use exact bytes


def digest(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def ecr_client(*repos, **kw):
    c = Client(ecr.ECR(), "ecr", repos[0] if repos else None)
    [c("CreateRepository", repositoryName=name, **kw) for name in repos]
    return c


def push(c, repo, n, tag):
    return c("PutImage", repositoryName=repo, imageManifest=manifest(n), imageTag=tag)["image"]


# ----------------------------------------------------------------- ECR tests
def test_ecr_authorization_token():
    c = ecr_client()
    data = c("GetAuthorizationToken")["authorizationData"]
    user, _, password = base64.b64decode(data[0]["authorizationToken"]).decode().partition(":")
    eq((len(data), user, data[0]["expiresAt"], type(data[0]["expiresAt"])), (1, "AWS", T0 + 12 * 3600, float))
    eq(data[0]["proxyEndpoint"], "https://%s.dkr.ecr.eu-west-1.amazonaws.com" % ACCOUNT)
    eq([c.svc.check_password(*a) for a in ((password, T0 + 60), (password, T0 + 43201), ("no", T0))], [1, 0, 0])
    two = c("GetAuthorizationToken", registryIds=["111111111111", "222222222222"])["authorizationData"]
    eq([d["proxyEndpoint"][8:20] for d in two], ["111111111111", "222222222222"])


def test_ecr_create_and_describe_repositories():
    c = ecr_client()
    r = c("CreateRepository", repositoryName="team/app", imageTagMutability="IMMUTABLE",
          imageScanningConfiguration={"scanOnPush": True})["repository"]
    eq((r["repositoryUri"], r["repositoryArn"]), ("%s.dkr.ecr.eu-west-1.amazonaws.com/team/app" % ACCOUNT,
                                                   "arn:aws:ecr:eu-west-1:%s:repository/team/app" % ACCOUNT))
    eq((r["imageTagMutability"], r["imageScanningConfiguration"], r["createdAt"]), ("IMMUTABLE", {"scanOnPush": True}, T0))
    raises("RepositoryAlreadyExistsException", c, "CreateRepository", repositoryName="team/app")
    raises("InvalidParameterException", c, "CreateRepository", repositoryName="x1", imageTagMutability="MUTABLE",
           imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "a*"}])
    eq(c("DescribeRepositories", repositoryNames=["team/app"])["repositories"], [r])
    e = raises("RepositoryNotFoundException", c, "DescribeRepositories", repositoryNames=["team/app", "nope"])
    eq(e.message, "The repository with name 'nope' does not exist in the registry with id '%s'" % ACCOUNT)
    raises("InvalidParameterException", c, "DescribeRepositories", repositoryNames=["team/app"], maxResults=5)
    raises("InvalidParameterException", c, "DescribeRepositories", repositoryNames=["team/app"], nextToken="x")
    raises("RepositoryNotFoundException", c, "DescribeRepositories", registryId="999999999999",
           repositoryNames=["team/app"])
    eq(c("DescribeRepositories", registryId="999999999999")["repositories"], [])


def test_ecr_describe_repositories_pages():
    c = ecr_client(*["repo-%03d" % i for i in range(150)])
    eq([len(p) for p in pages(c, "DescribeRepositories", "repositories", split=True)], [100, 50])
    eq([r["repositoryName"] for r in pages(c, "DescribeRepositories", "repositories", maxResults=40)],
       ["repo-%03d" % i for i in range(150)])


def test_ecr_put_image_digest_is_sha256_of_exact_bytes():
    c = ecr_client("app")
    text = manifest(1)
    img = c("PutImage", imageManifest=text, imageTag="v1")["image"]
    eq(img, {"registryId": ACCOUNT, "repositoryName": "app", "imageId": {"imageDigest": digest(text), "imageTag": "v1"},
             "imageManifest": text, "imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json"})
    compact = json.dumps(json.loads(text), separators=(",", ":"))
    other = c("PutImage", imageManifest=compact, imageTag="v1-compact")["image"]
    assert other["imageId"]["imageDigest"] != digest(text), "re-serialized manifest must get another digest"
    ok = c("PutImage", imageManifest=manifest(2), imageTag="v2", imageDigest=digest(manifest(2)))
    eq(ok["image"]["imageId"]["imageDigest"], digest(manifest(2)))
    raises("ImageDigestDoesNotMatchException", c, "PutImage", imageManifest=manifest(3),
           imageTag="v3", imageDigest=digest(manifest(4)))
    eq(ecr.manifest_digest(text), digest(text))


def test_ecr_retag_and_already_exists():
    c = ecr_client("app")
    push(c, "app", 1, "v1")
    push(c, "app", 1, "prod")      # retag: same manifest, new tag
    d = c("DescribeImages")["imageDetails"]
    eq((len(d), d[0]["imageTags"]), (1, ["v1", "prod"]))
    e = raises("ImageAlreadyExistsException", push, c, "app", 1, "v1")
    assert digest(manifest(1)) in e.message and "'v1'" in e.message, e.message
    raises("ImageAlreadyExistsException", c, "PutImage", imageManifest=manifest(1), imageDigest=digest(manifest(1)))


def test_ecr_immutable_tags():
    c = ecr_client("imm", imageTagMutability="IMMUTABLE")
    push(c, "imm", 1, "v1")
    e = raises("ImageTagAlreadyExistsException", push, c, "imm", 2, "v1")
    assert "'v1'" in e.message and "imm" in e.message, e.message
    raises("ImageAlreadyExistsException", push, c, "imm", 1, "v1")   # identical tag + manifest
    push(c, "imm", 1, "v1-alias") and push(c, "imm", 2, "v2")       # new tags are fine
    eq(c.svc.state()["repositories"]["imm"]["tags"],
       {"v1": digest(manifest(1)), "v1-alias": digest(manifest(1)), "v2": digest(manifest(2))})


def test_ecr_mutable_tag_moves_and_leaves_untagged_image():
    c = ecr_client("app")
    push(c, "app", 1, "latest") and push(c, "app", 2, "latest")
    ids = c("ListImages")["imageIds"]
    eq(ids, [{"imageDigest": digest(manifest(1))}, {"imageDigest": digest(manifest(2)), "imageTag": "latest"}])
    untagged = c("DescribeImages", filter={"tagStatus": "UNTAGGED"})["imageDetails"]
    eq([(d["imageDigest"], "imageTags" in d) for d in untagged], [(digest(manifest(1)), False)])


def test_ecr_exclusion_filters():
    c = ecr_client()
    c("CreateRepository", repositoryName="ie", imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
      imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}])
    c("CreateRepository", repositoryName="me", imageTagMutability="MUTABLE_WITH_EXCLUSION",
      imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "release-*"}])
    [push(c, repo, 1, tag) for repo in ("ie", "me") for tag in ("dev-1", "release-1")]
    push(c, "ie", 2, "dev-1") and push(c, "me", 2, "dev-1")
    raises("ImageTagAlreadyExistsException", push, c, "ie", 2, "release-1")
    raises("ImageTagAlreadyExistsException", push, c, "me", 2, "release-1")
    r = c("DescribeRepositories", repositoryNames=["ie"])["repositories"][0]
    eq(r["imageTagMutabilityExclusionFilters"], [{"filterType": "WILDCARD", "filter": "dev-*"}])


def test_ecr_media_types():
    c = ecr_client("app")
    oci = manifest(5, media="application/vnd.oci.image.manifest.v1+json", field=False)
    e = raises("InvalidParameterException", c, "PutImage", imageManifest=oci, imageTag="o")
    assert "Invalid JSON syntax" in e.message, e.message
    img = c("PutImage", imageManifest=oci, imageTag="o",
            imageManifestMediaType="application/vnd.oci.image.manifest.v1+json")["image"]
    eq(img["imageManifestMediaType"], "application/vnd.oci.image.manifest.v1+json")
    raises("InvalidParameterException", c, "PutImage", imageManifest="{not json", imageTag="x")
    raises("InvalidParameterException", c, "PutImage", imageManifest=manifest(6),
           imageTag="x", imageManifestMediaType="application/vnd.oci.image.manifest.v1+json")
    raises("InvalidParameterException", c, "PutImage", imageManifest=manifest(7))
    untagged = c("PutImage", imageManifest=manifest(7), imageDigest=digest(manifest(7)))
    eq(untagged["image"]["imageId"], {"imageDigest": digest(manifest(7))})
    d = c("DescribeImages", imageIds=[{"imageTag": "o"}])["imageDetails"][0]
    eq((d["imageManifestMediaType"], d["artifactMediaType"]),
       ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.container.image.v1+json"))


def test_ecr_describe_images_details():
    c = ecr_client("app")
    c.now = T0 + 0.25
    push(c, "app", 1, "v1")
    d = c("DescribeImages", imageIds=[{"imageTag": "v1"}, {"imageDigest": digest(manifest(1))}])
    eq(len(d["imageDetails"]), 1, "same image twice is described once")
    d = d["imageDetails"][0]
    eq((d["imagePushedAt"], type(d["imagePushedAt"]), d["imageSizeInBytes"]), (T0 + 0.25, float, 300))
    eq((d["imageTags"], d["registryId"], d["repositoryName"], "imageScanStatus" in d), (["v1"], ACCOUNT, "app", False))
    e = raises("ImageNotFoundException", c, "DescribeImages", imageIds=[{"imageTag": "v9"}])
    eq(e.message, "The image with imageId {imageDigest:'null', imageTag:'v9'} does not exist within the "
                  "repository with name 'app' in the registry with id '%s'" % ACCOUNT)
    raises("ImageNotFoundException", c, "DescribeImages", repositoryName="app",
           imageIds=[{"imageTag": "v1", "imageDigest": digest(manifest(2))}])
    raises("InvalidParameterException", c, "DescribeImages", imageIds=[{"imageTag": "v1"}], maxResults=10)
    raises("InvalidParameterException", c, "DescribeImages", imageIds=[{"imageTag": "v1"}], nextToken="abc")
    eq(c("DescribeImages", filter={"imageStatus": "ARCHIVED"})["imageDetails"], [])


def test_ecr_describe_and_list_images_pages():
    c = ecr_client("app")
    c.svc.seed({"repositories": [{"repositoryName": "app",
                                  "images": [{"manifest": manifest(i), "tags": ["t%d" % i]} for i in range(250)]}]})
    got = pages(c, "DescribeImages", "imageDetails", split=True)
    eq([len(p) for p in got], [100, 100, 50])
    eq([d["imageTags"][0] for p in got for d in p], ["t%d" % i for i in range(250)])
    page = c("ListImages", maxResults=7)
    eq((len(page["imageIds"]), c("ListImages", maxResults=7, nextToken=page["nextToken"])["imageIds"][0]["imageTag"]), (7, "t7"))
    raises("InvalidParameterException", c, "ListImages", nextToken="garbage")
    raises("InvalidParameterException", c, "DescribeImages", nextToken=page["nextToken"])
    eq(len(c("ListImages", filter={"tagStatus": "UNTAGGED"})["imageIds"]), 0)
    eq(len(c("ListImages", filter={"tagStatus": "TAGGED"}, maxResults=1000)["imageIds"]), 250)


def test_ecr_batch_get_image():
    c = ecr_client("app")
    push(c, "app", 1, "v1") and push(c, "app", 2, "v2")
    c.now = T0 + 5
    out = c("BatchGetImage", imageIds=[{"imageTag": "v1"}, {"imageDigest": digest(manifest(2))}, {"imageTag": "gone"},
        {"imageTag": "v1", "imageDigest": digest(manifest(2))}, {"imageDigest": "sha256:xyz"}, {}],
        acceptedMediaTypes=["application/vnd.docker.distribution.manifest.v2+json"])
    eq([i["imageId"] for i in out["images"]],
       [{"imageDigest": digest(manifest(1)), "imageTag": "v1"}, {"imageDigest": digest(manifest(2))}])
    eq((out["images"][0]["imageManifest"], out["images"][0]["imageManifestMediaType"]),
       (manifest(1), "application/vnd.docker.distribution.manifest.v2+json"))
    eq([f["failureCode"] for f in out["failures"]],
       ["ImageNotFound", "ImageTagDoesNotMatchDigest", "InvalidImageDigest", "MissingDigestAndTag"])
    eq(out["failures"][0], {"imageId": {"imageTag": "gone"}, "failureCode": "ImageNotFound",
                            "failureReason": "Requested image not found"})
    d = c("DescribeImages", imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
    eq(d["lastRecordedPullTime"], T0 + 5)


def test_ecr_batch_delete_image():
    c = ecr_client("app")
    push(c, "app", 1, "a") and push(c, "app", 1, "b") and push(c, "app", 2, "c")
    out = c("BatchDeleteImage", imageIds=[{"imageTag": "a"}, {"imageTag": "zzz"}])
    eq((out["imageIds"], out["failures"][0]["failureCode"]), ([{"imageDigest": digest(manifest(1)), "imageTag": "a"}], "ImageNotFound"))
    out = c("BatchDeleteImage", imageIds=[{"imageTag": "b"}, {"imageDigest": digest(manifest(2))}])
    eq(len(out["imageIds"]), 2)
    eq(c("ListImages")["imageIds"], [])


def test_ecr_repository_not_found_everywhere():
    c = ecr_client("app")
    image_id = {"imageTag": "v1"}
    calls = [("PutImage", dict(imageManifest=manifest(1), imageTag="v1")), ("ListImages", {}),
             ("DescribeImages", {}), ("BatchGetImage", dict(imageIds=[image_id])),
             ("BatchDeleteImage", dict(imageIds=[image_id])), ("DescribeImageScanFindings", dict(imageId=image_id))]
    for op, extra in calls:
        e = raises("RepositoryNotFoundException", c, op, repositoryName="missing", **extra)
        assert "'missing'" in e.message, e.message
        raises("RepositoryNotFoundException", c, op, registryId="999999999999", **extra)
    raises("UnknownOperationException", c, "DeleteRepository")


def test_ecr_scan_progresses_by_polls():
    c = ecr_client("app")
    push(c, "app", 1, "v1")
    raises("ScanNotFoundException", c, "DescribeImageScanFindings", imageId={"imageTag": "v1"})
    c.svc.seed({"scans": [{"repositoryName": "app", "imageTag": "v1", "inProgressPolls": 2,
                           "findingSeverityCounts": {"HIGH": 2, "LOW": 1}}]})
    outs = [c("DescribeImageScanFindings", imageId={"imageTag": "v1"}) for _ in range(3)]
    eq([o["imageScanStatus"]["status"] for o in outs], ["IN_PROGRESS", "IN_PROGRESS", "COMPLETE"])
    out, f = outs[-1], outs[-1]["imageScanFindings"]
    eq((f["findingSeverityCounts"], type(f["imageScanCompletedAt"])), ({"HIGH": 2, "LOW": 1}, float))
    eq(out["imageId"], {"imageDigest": digest(manifest(1)), "imageTag": "v1"})
    d = c("DescribeImages")["imageDetails"][0]
    eq((d["imageScanStatus"]["status"], d["imageScanFindingsSummary"]["findingSeverityCounts"]), ("COMPLETE", {"HIGH": 2, "LOW": 1}))
    raises("ImageNotFoundException", c, "DescribeImageScanFindings", imageId={"imageTag": "x"})


def test_ecr_scan_progresses_by_seconds_and_fails():
    c = ecr_client("app")
    push(c, "app", 1, "v1") and push(c, "app", 2, "v2")
    c.svc.seed({"scans": [{"repositoryName": "app", "imageTag": "v1", "inProgressSeconds": 30},
                          {"repositoryName": "app", "imageDigest": digest(manifest(2)), "status": "FAILED"}]}, c.ctx())
    scan = lambda tag: c("DescribeImageScanFindings", imageId={"imageTag": tag})
    eq(scan("v1")["imageScanStatus"]["status"], "IN_PROGRESS")
    c.now = T0 + 10
    assert "imageScanFindings" not in scan("v1")
    c.now = T0 + 31
    eq(scan("v1")["imageScanStatus"]["status"], "COMPLETE")
    failed = scan("v2")
    eq((failed["imageScanStatus"]["status"], "imageScanFindings" in failed), ("FAILED", False))
    assert failed["imageScanStatus"]["description"]
    eq(c("DescribeImages", imageIds=[{"imageTag": "v2"}])["imageDetails"][0] ["imageScanStatus"]["status"], "FAILED")


def test_ecr_scan_on_push_and_findings_pages():
    c = ecr_client("app", imageScanningConfiguration={"scanOnPush": True})
    push(c, "app", 1, "v1")
    scan = lambda **kw: c("DescribeImageScanFindings", imageId={"imageTag": "v1"}, **kw)
    eq([scan()["imageScanStatus"]["status"] for _ in range(2)], ["IN_PROGRESS", "COMPLETE"])
    eq(scan()["imageScanFindings"]["findingSeverityCounts"], {})
    findings = [{"name": "CVE-%d" % i, "severity": ("HIGH", "LOW", "CRITICAL")[i % 3], "uri": "https://cve/%d" % i}
                for i in range(150)]
    c.svc.seed({"scans": [{"repositoryName": "app", "imageTag": "v1", "findings": findings}]})
    first = scan()
    eq((first["imageScanFindings"]["findingSeverityCounts"], len(first["imageScanFindings"]["findings"])),
       ({"HIGH": 50, "LOW": 50, "CRITICAL": 50}, 100))
    rest = scan(nextToken=first["nextToken"])
    eq([f["name"] for f in rest["imageScanFindings"]["findings"]], ["CVE-%d" % i for i in range(100, 150)])
    assert "nextToken" not in rest


def test_ecr_seed_state_reset_and_control():
    svc = ecr.ECR()
    c = Client(svc, "ecr", "app")
    out = svc.control("POST", "/seed", {"repositories": [{
        "repositoryName": "app", "imageTagMutability": "IMMUTABLE", "scanOnPush": True,
        "scanOnPushResult": {"status": "COMPLETE", "findingSeverityCounts": {"MEDIUM": 3}},
        "images": [{"manifest": manifest(1), "tags": ["v1", "latest"], "imageSizeInBytes": 4242,
                    "imagePushedAt": T0 - 100, "scan": {"inProgressPolls": 1, "status": "COMPLETE"}}]}]}, c.ctx())
    eq(out, {"repositories": [{"repositoryName": "app", "images": [
        {"imageDigest": digest(manifest(1)), "imageTags": ["v1", "latest"]}]}]})
    d = c("DescribeImages")["imageDetails"][0]
    eq((d["imageSizeInBytes"], d["imagePushedAt"], d["imageScanStatus"]["status"]), (4242, T0 - 100, "IN_PROGRESS"))
    raises("ImageTagAlreadyExistsException", push, c, "app", 2, "v1") and push(c, "app", 2, "v2")
    eq(c("DescribeImageScanFindings", imageId={"imageTag": "v2"})
       ["imageScanFindings"]["findingSeverityCounts"], {"MEDIUM": 3})
    state = svc.control("GET", "", None, c.ctx())["repositories"]["app"]["images"]
    eq((state[digest(manifest(1))]["imageTags"], state[digest(manifest(2))]["scanStatus"]), (["v1", "latest"], "COMPLETE"))
    pw = base64.b64decode(c("GetAuthorizationToken")["authorizationData"][0]["authorizationToken"]).decode()[4:]
    eq(svc.control("POST", "/check-password", {"password": pw}, c.ctx()), {"valid": True})
    raises("NotFound", svc.control, "GET", "/nope", None, c.ctx(), status=404)
    raises("BadRequest", svc.control, "POST", "", {"repositories": [{"images": []}]}, c.ctx())
    svc.control("POST", "/reset", {}, c.ctx())
    raises("RepositoryNotFoundException", c, "ListImages")
    value_error(svc.seed, {"scans": [{"repositoryName": "none", "imageTag": "x"}]})


def test_ecr_threads():
    c, errors = ecr_client("app"), []

    def worker(k):
        try:
            [push(c, "app", k * 100 + i, "t%d-%d" % (k, i)) for i in range(25)]
        except Exception as e:   # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    [t.start() for t in threads] and [t.join() for t in threads]
    eq(errors, [])
    eq(len(c("ListImages", maxResults=1000)["imageIds"]), 200)


# ----------------------------------------------------------------- CodePipeline fixtures
CUSTOM = {"category": "Build", "owner": "Custom", "provider": "FerryRunner", "version": "1"}
LAMBDA = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}


def cp_client(body=None):
    c = Client(codepipeline.CodePipeline(), "codepipeline")
    return c, c.svc.seed(body or {}, c.ctx())


def lambda_job(c, **data):
    return c.svc.seed({"jobs": [{"data": dict({"actionConfiguration": {"configuration": {
        "FunctionName": "f", "UserParameters": "p"}}}, **data)}]}, c.ctx())["jobs"][0]["id"]


PIPE = {"name": "deploy", "stages": [
    {"name": "Source", "actions": [{"name": "Src", "actionTypeId": {
        "category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}, "outputArtifacts": [{"name": "src"}]}]},
    {"name": "Test", "actions": [{"name": "Run", "actionTypeId": LAMBDA, "configuration": {"FunctionName": "t"},
                                  "inputArtifacts": [{"name": "src"}]}]},
    {"name": "Ship", "actions": [{"name": "Push", "actionTypeId": CUSTOM}]}]}


# ----------------------------------------------------------------- CodePipeline tests
def test_cp_job_details_and_success():
    c, _ = cp_client()
    jid = lambda_job(c, inputArtifacts=[{"name": "src", "location": {"type": "S3", "s3Location": {
        "bucketName": "b", "objectKey": "k"}}}], artifactCredentials={
        "accessKeyId": "AKIA", "secretAccessKey": "s", "sessionToken": "t"})
    jd = c("GetJobDetails", jobId=jid)["jobDetails"]
    eq((jd["id"], jd["accountId"], jd["data"]["actionTypeId"]), (jid, ACCOUNT, LAMBDA))
    eq(jd["data"]["inputArtifacts"][0]["location"]["s3Location"], {"bucketName": "b", "objectKey": "k"})
    c.now = T0 + 3
    eq(c("PutJobSuccessResult", jobId=jid, outputVariables={"testRunId": "42"},
         executionDetails={"summary": "ok", "percentComplete": 100},
         currentRevision={"revision": "r1", "changeIdentifier": "c1"}), {})
    eq(c.svc.job(jid)["status"], "Succeeded")
    eq(c.svc.results(), [{"jobId": jid, "kind": "success", "at": T0 + 3, "outputVariables": {"testRunId": "42"},
                          "executionDetails": {"summary": "ok", "percentComplete": 100},
                          "currentRevision": {"revision": "r1", "changeIdentifier": "c1"}}])
    raises("InvalidJobStateException", c, "PutJobSuccessResult", jobId=jid)
    raises("InvalidJobStateException", c, "PutJobFailureResult", jobId=jid,
           failureDetails={"type": "JobFailed", "message": "late"})
    eq(len(c.svc.results()), 1)


def test_cp_failure_result():
    c, _ = cp_client()
    jid = lambda_job(c)
    c("PutJobFailureResult", jobId=jid, failureDetails={"type": "ConfigurationError", "message": "bad input",
                                                        "externalExecutionId": "x-1"})
    eq((c.svc.job(jid)["status"], c.svc.job(jid)["result"]["failureDetails"]["type"]), ("Failed", "ConfigurationError"))
    raises("InvalidJobStateException", c, "PutJobSuccessResult", jobId=jid)


def test_cp_job_not_found():
    c, _ = cp_client()
    raises("JobNotFoundException", c, "PutJobSuccessResult", jobId=JOB0)
    raises("JobNotFoundException", c, "PutJobFailureResult", jobId=JOB0, failureDetails={"type": "JobFailed", "message": "m"})
    raises("JobNotFoundException", c, "PutJobSuccessResult", raw=True, jobId="not-a-uuid")
    raises("ValidationException", c, "PutJobSuccessResult", jobId="not-a-uuid")   # the core's model check
    raises("JobNotFoundException", c, "GetJobDetails", jobId=JOB0)


def test_cp_output_variables_limits():
    c, _ = cp_client()
    jid = lambda_job(c)
    e = raises("ValidationException", c, "PutJobSuccessResult", jobId=jid, continuationToken="t",
               outputVariables={"a": "b"})
    assert "continuation token" in e.message, e.message
    big = {"k": "é" * 61439}                                # 1 + 2 * 61439 = 122879 bytes
    big2 = {"k": "é" * 61439 + "xx"}                        # 122881 bytes
    raises("OutputVariablesSizeExceededException", c, "PutJobSuccessResult", jobId=jid, outputVariables=big2)
    raises("ValidationException", c, "PutJobSuccessResult", raw=True, jobId=jid, outputVariables={"bad key": "v"})
    c("PutJobSuccessResult", jobId=jid, outputVariables=dict(big, x=""))
    eq(c.svc.job(jid)["status"], "Succeeded")


def test_cp_summary_message_and_type_limits():
    c, _ = cp_client()
    jid = lambda_job(c)
    for raw in (True, False):      # True: this module's checks; False: the core's model check first
        e = raises("ValidationException", c, "PutJobSuccessResult", raw=raw, jobId=jid,
                   executionDetails={"summary": "s" * 2049})
        assert "executionDetails.summary" in e.message and "2048" in e.message, e.message
        e = raises("ValidationException", c, "PutJobFailureResult", raw=raw, jobId=jid,
                   failureDetails={"type": "JobFailed", "message": "m" * 5001})
        assert "failureDetails.message" in e.message and "5000" in e.message, e.message
        raises("ValidationException", c, "PutJobFailureResult", raw=raw, jobId=jid,
               failureDetails={"type": "Oops", "message": "m"})
    e = raises("ValidationException", c, "PutJobFailureResult", raw=True, jobId=jid,
               failureDetails={"type": "Oops", "message": ""})
    assert e.message.startswith("2 validation errors detected: "), e.message
    c("PutJobFailureResult", jobId=jid, failureDetails={"type": "JobFailed", "message": "m" * 5000})
    jid2 = lambda_job(c)
    c("PutJobSuccessResult", jobId=jid2, executionDetails={"summary": "s" * 2048})


def test_cp_continuation_creates_new_job():
    c, _ = cp_client()
    jid = lambda_job(c)
    ev = c.svc.lambda_event(ctx=c.ctx())["CodePipeline.job"]
    eq((ev["id"], c.svc.job(jid)["status"]), (jid, "InProgress"))
    assert "actionTypeId" not in ev["data"] and "continuationToken" not in ev["data"] and ev["data"]["artifactCredentials"]
    eq(ev["data"]["actionConfiguration"]["configuration"]["UserParameters"], "p")
    c("PutJobSuccessResult", jobId=jid, continuationToken="step-2", executionDetails={"percentComplete": 50})
    new = c.svc.results()[0]["newJobId"]
    assert new != jid and codepipeline.UUID_RE.match(new)
    eq((c.svc.job(jid)["status"], c.svc.job(jid)["continuedBy"]), ("Succeeded", new))
    eq((c.svc.job(new)["status"], c.svc.job(new)["continuedFrom"]), ("Created", jid))
    ev2 = c.svc.lambda_event(ctx=c.ctx())["CodePipeline.job"]
    eq((ev2["id"], ev2["data"]["continuationToken"]), (new, "step-2"))
    eq(c("GetJobDetails", jobId=new)["jobDetails"]["data"]["continuationToken"], "step-2")
    c("PutJobSuccessResult", jobId=new, outputVariables={"done": "yes"})
    eq(c.svc.lambda_event(), None)
    eq([r["kind"] for r in c.svc.results()], ["success", "success"])


def test_cp_poll_acknowledge_custom_jobs():
    c, seeded = cp_client({"jobs": [{"actionTypeId": CUSTOM, "pipelineName": "deploy", "stageName": "Ship",
                                     "actionName": "Push",
                                     "data": {"actionConfiguration": {"configuration": {"Env": e}}}}
                                    for e in ("a", "b", "a")]})
    ids = [j["id"] for j in seeded["jobs"]]
    raises("ActionTypeNotFoundException", c, "PollForJobs", actionTypeId=LAMBDA)
    raises("ActionTypeNotFoundException", c, "PollForJobs", actionTypeId=dict(CUSTOM, provider="Other"))
    one = c("PollForJobs", actionTypeId=CUSTOM)["jobs"]
    job = one[0]
    eq(([j["id"] for j in one], bool(job["nonce"]), job["accountId"]), (ids[:1], True, ACCOUNT))
    pc = job["data"]["pipelineContext"]
    eq((pc["pipelineName"], pc["stage"]["name"], pc["action"]["name"]), ("deploy", "Ship", "Push"))
    eq(pc["pipelineArn"], "arn:aws:codepipeline:eu-west-1:%s:deploy" % ACCOUNT)
    eq(c("PollForJobs", actionTypeId=CUSTOM, maxBatchSize=5, queryParam={"Env": "a"})["jobs"][0]["id"], ids[2])
    eq([j["id"] for j in c("PollForJobs", actionTypeId=CUSTOM, maxBatchSize=5)["jobs"]], ids[1:2])
    eq(c("PollForJobs", actionTypeId=CUSTOM, maxBatchSize=5)["jobs"], [])
    eq((raises("InvalidNonceException", c, "AcknowledgeJob", jobId=ids[0], nonce="1").code, c.svc.job(ids[0])["status"]),
       ("InvalidNonceException", "Dispatched"))
    eq(c("AcknowledgeJob", jobId=ids[0], nonce=job["nonce"]), {"status": "InProgress"})
    raises("JobNotFoundException", c, "AcknowledgeJob", jobId=JOB0, nonce="1")
    fresh = c.svc.seed({"jobs": [{"actionTypeId": CUSTOM}]})["jobs"][0]["id"]
    raises("InvalidNonceException", c, "AcknowledgeJob", jobId=fresh, nonce="1")
    c("PutJobFailureResult", jobId=fresh, failureDetails={"type": "JobFailed", "message": "never polled"})
    c("PutJobSuccessResult", jobId=ids[0], continuationToken="deploy-123")
    again = c("PollForJobs", actionTypeId=CUSTOM)["jobs"][0]
    eq((again["data"]["continuationToken"], again["id"] != ids[0]), ("deploy-123", True))
    eq(again["data"]["pipelineContext"]["action"]["actionExecutionId"], pc["action"]["actionExecutionId"])
    eq(c("AcknowledgeJob", jobId=again["id"], nonce=again["nonce"])["status"], "InProgress")
    c("PutJobSuccessResult", jobId=again["id"])
    eq(c("AcknowledgeJob", jobId=again["id"], nonce=again["nonce"])["status"], "Succeeded")


def test_cp_start_execution_idempotency_and_variables():
    c, _ = cp_client({"pipelines": [PIPE, {"name": "busy", "busy": True}, {"name": "vars", "stages": [], "variables": [
        {"name": "env", "defaultValue": "dev"}, {"name": "ver"}]}]})
    raises("PipelineNotFoundException", c, "StartPipelineExecution", name="nope")
    a = c("StartPipelineExecution", name="deploy", clientRequestToken="tok-1")["pipelineExecutionId"]
    eq(c("StartPipelineExecution", name="deploy", clientRequestToken="tok-1")["pipelineExecutionId"], a)
    b = c("StartPipelineExecution", name="deploy", clientRequestToken="tok-2")["pipelineExecutionId"]
    assert a != b and codepipeline.UUID_RE.match(b)
    raises("ConflictException", c, "StartPipelineExecution", name="busy")
    v = c("StartPipelineExecution", name="vars", variables=[{"name": "ver", "value": "1.2.3"}])["pipelineExecutionId"]
    got = c("GetPipelineExecution", pipelineName="vars", pipelineExecutionId=v)["pipelineExecution"]
    eq(sorted((x["name"], x["resolvedValue"]) for x in got["variables"]), [("env", "dev"), ("ver", "1.2.3")])
    eq(got["trigger"], {"triggerType": "StartPipelineExecution", "triggerDetail": "AKIDEXAMPLE"})
    raises("ValidationException", c, "StartPipelineExecution", name="vars", variables=[{"name": "nope", "value": "x"}])
    raises("ValidationException", c, "StartPipelineExecution", name="vars",
           variables=[{"name": "env", "value": "x"}, {"name": "env", "value": "y"}])
    raises("ValidationException", c, "StartPipelineExecution", name="deploy", sourceRevisions=[
        {"actionName": "Nope", "revisionType": "COMMIT_ID", "revisionValue": "abc"}])
    s = c("StartPipelineExecution", name="deploy", variables=[{"name": "any", "value": "v"}], sourceRevisions=[
        {"actionName": "Src", "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": "v9"}])["pipelineExecutionId"]
    eq(c("GetPipelineExecution", pipelineName="deploy", pipelineExecutionId=s)["pipelineExecution"]
       ["artifactRevisions"], [{"name": "Src", "revisionId": "v9"}])


def test_cp_execution_status_progression():
    c, _ = cp_client({"pipelines": [dict(PIPE, executionPolls=2), dict(name="slow", stages=[], executionPolls=0,
                                    executionSeconds=60, executionResult="Failed")]})
    ex = c("StartPipelineExecution", name="deploy")["pipelineExecutionId"]
    get = lambda name, i: c("GetPipelineExecution", pipelineName=name, pipelineExecutionId=i)["pipelineExecution"]
    eq([get("deploy", ex)["status"] for _ in range(3)], ["InProgress", "InProgress", "Succeeded"])
    eq((get("deploy", ex)["pipelineVersion"], get("deploy", ex)["pipelineName"]), (1, "deploy"))
    slow = c("StartPipelineExecution", name="slow")["pipelineExecutionId"]
    eq(get("slow", slow)["status"], "InProgress")
    c.now = T0 + 61
    eq(get("slow", slow)["status"], "Failed")
    raises("PipelineExecutionNotFoundException", c, "GetPipelineExecution", pipelineName="slow", pipelineExecutionId=ex)
    raises("PipelineExecutionNotFoundException", c, "GetPipelineExecution", pipelineName="deploy", pipelineExecutionId=JOB0)
    raises("PipelineNotFoundException", c, "GetPipelineExecution", pipelineName="x", pipelineExecutionId=ex)
    forced = c.svc.seed({"executions": [{"pipelineName": "deploy", "status": "Stopped", "statusSummary": "halt"}]})
    fid = forced["executions"][0]["pipelineExecutionId"]
    eq((get("deploy", fid)["status"], get("deploy", fid)["statusSummary"]), ("Stopped", "halt"))


def test_cp_pipeline_state():
    c, _ = cp_client({"pipelines": [dict(PIPE, executionPolls=0)]})
    st = c("GetPipelineState", name="deploy")
    eq(([s["stageName"] for s in st["stageStates"]], st["created"]), (["Source", "Test", "Ship"], T0))
    assert all("latestExecution" not in s for s in st["stageStates"])
    raises("PipelineNotFoundException", c, "GetPipelineState", name="nope")
    ex = c("StartPipelineExecution", name="deploy")["pipelineExecutionId"]
    st = c("GetPipelineState", name="deploy")["stageStates"]
    eq([(s["latestExecution"]["pipelineExecutionId"], s["latestExecution"]["status"]) for s in st],
       [(ex, "Succeeded")] * 3)
    eq(st[1]["actionStates"][0]["latestExecution"]["status"], "Succeeded")


def test_cp_jobs_on_start_drive_execution():
    c, _ = cp_client({"pipelines": [dict(PIPE, jobsOnStart=True, executionPolls=0)]})
    ex = c("StartPipelineExecution", name="deploy")["pipelineExecutionId"]
    get = lambda: c("GetPipelineExecution", pipelineName="deploy", pipelineExecutionId=ex)["pipelineExecution"]
    eq(get()["status"], "InProgress")
    event = c.svc.lambda_event(ctx=c.ctx())["CodePipeline.job"]
    eq((event["data"]["actionConfiguration"]["configuration"], event["data"]["inputArtifacts"][0]["name"]),
       ({"FunctionName": "t"}, "src"))
    assert event["data"]["artifactCredentials"]["sessionToken"]
    eq(c.svc.jobs()[0]["data"]["pipelineContext"]["pipelineExecutionId"], ex)
    st = c("GetPipelineState", name="deploy")["stageStates"]
    eq([s.get("latestExecution", {}).get("status") for s in st], ["Succeeded", "InProgress", None])
    c("PutJobSuccessResult", jobId=event["id"], executionDetails={"summary": "tests passed"})
    st = c("GetPipelineState", name="deploy")["stageStates"]
    eq(st[1]["actionStates"][0]["latestExecution"]["summary"], "tests passed")
    eq([s.get("latestExecution", {}).get("status") for s in st], ["Succeeded", "Succeeded", "InProgress"])
    job = c("PollForJobs", actionTypeId=CUSTOM)["jobs"][0]
    c("AcknowledgeJob", jobId=job["id"], nonce=job["nonce"])
    c("PutJobFailureResult", jobId=job["id"], failureDetails={"type": "JobFailed", "message": "push denied"})
    eq((get()["status"], get()["statusSummary"]), ("Failed", "push denied"))
    st = c("GetPipelineState", name="deploy")["stageStates"]
    eq(st[2]["latestExecution"]["status"], "Failed")
    eq(st[2]["actionStates"][0]["latestExecution"]["errorDetails"], {"code": "JobFailed", "message": "push denied"})
    ex2 = c("StartPipelineExecution", name="deploy")["pipelineExecutionId"]
    c("PutJobSuccessResult", jobId=c.svc.lambda_event()["CodePipeline.job"]["id"])
    job = c("PollForJobs", actionTypeId=CUSTOM)["jobs"][0]
    c("PutJobSuccessResult", jobId=job["id"])
    eq(c("GetPipelineExecution", pipelineName="deploy", pipelineExecutionId=ex2)["pipelineExecution"]["status"],
       "Succeeded")


def test_cp_control_and_reset():
    svc = codepipeline.CodePipeline()
    c = Client(svc, "codepipeline")
    jid = svc.control("POST", "", {"jobs": [{"id": JOB0, "accountId": "111111111111"}]}, c.ctx())["jobs"][0]["id"]
    eq(jid, JOB0)
    ev = svc.control("POST", "/lambda-event", {"jobId": jid}, c.ctx())["event"]["CodePipeline.job"]
    eq((ev["id"], ev["accountId"]), (jid, "111111111111"))
    c("PutJobSuccessResult", jobId=jid)
    eq((svc.control("GET", "/results", None, c.ctx())["results"][0]["jobId"], len(svc.control("GET", "", None, c.ctx())["jobs"]),
        svc.control("GET", "/jobs/" + jid, None, c.ctx())["status"], len(svc.control("GET", "/jobs", None, c.ctx())["jobs"])),
       (jid, 1, "Succeeded", 1))
    raises("NotFound", svc.control, "GET", "/jobs/nope", None, c.ctx(), status=404)
    raises("BadRequest", svc.control, "POST", "/seed", {"executions": [{"pipelineName": "none"}]}, c.ctx())
    eq(svc.control("POST", "/lambda-event", {}, c.ctx()), {"event": None})
    eq((svc.control("POST", "/reset", {}, c.ctx()), svc.results()), ({}, []))
    raises("JobNotFoundException", c, "GetJobDetails", jobId=jid)
    raises("UnknownOperationException", c, "ListPipelines")
    value_error(svc.seed, {"jobs": [{"id": "NOT-A-UUID"}]})


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    tests = [fn for name, fn in list(globals().items()) if name.startswith("test_")]
    return testlib.summary(testlib.run(tests, only=only, quiet=True))


if __name__ == "__main__":
    sys.exit(main())
