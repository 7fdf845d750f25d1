#!/usr/bin/python3
"""test_conformance.py: the AWS double checked with real clients (boto3/botocore).

Starts its own server.py on a free port, then: replays the aws-c-auth SigV4 suite
through the double's verifier; drives STS, SSM, S3, ECR and CodePipeline with boto3
clients and checks boto3 parses every answer; sends botocore-signed requests
(SigV4Auth, SigV4QueryAuth) as is and tampered; checks error shapes, validation,
faults, the call log, clock skew, the container and IMDS credential endpoints
(botocore's own fetchers) and EKS-style presigned GetCallerIdentity URLs. Closes
with "N passed, N failed"; exits 1 on any failure.

    /usr/bin/python3 tests/doubles/aws/test_conformance.py [name-substring]

Needs Debian's python3-boto3 (botocore 1.29; its older models are a subset).
"""

import base64
import http.client
import json
import os
import sys
import tempfile
import time

import boto3
import botocore
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.utils import ContainerMetadataFetcher, InstanceMetadataFetcher

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.append(os.path.dirname(HERE))  # testlib.py
import credentials as creds_module  # noqa: E402
import models  # noqa: E402
import sigv4  # noqa: E402
import testlib  # noqa: E402

SUITE = os.path.join(os.path.dirname(models.default_root()), "sigv4-testsuite", "aws-c-auth", "v4")
AKID, SECRET = creds_module.DEFAULT_ACCESS_KEY_ID, creds_module.DEFAULT_SECRET_ACCESS_KEY
REGION = "eu-west-1"
DEADLINE = 10.0
TESTS = test = testlib.Tests()
BASE = ""  # http://127.0.0.1:PORT once started
check, eq = testlib.check, testlib.eq


# -- plumbing -----------------------------------------------------------------------


def raw(method, path, headers=None, body=b""):
    """(status, headers dict lowercased, body bytes) of one request on a new connection."""
    conn = http.client.HTTPConnection(BASE[len("http://") :], timeout=DEADLINE)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def ctl(method, path, body=None):
    status, _, data = raw(method, "/_ferry/" + path, {"Content-Type": "application/json"}, json.dumps(body).encode() if body is not None else b"")
    check(status == 200, f"control {method} {path}: {status} {data[:300]!r}")
    return json.loads(data)


def client(service, key=AKID, secret=SECRET, token=None, attempts=1, mode="legacy", region=REGION):
    cfg = Config(retries={"total_max_attempts": attempts, "mode": mode}, connect_timeout=5, read_timeout=10,
                 signature_version="s3v4" if service == "s3" else None)  # botocore 1.29 presigns S3 with SigV2
    return boto3.client(service, endpoint_url=BASE, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token, config=cfg)


def client_error(fn, code, status=None, contains=None):
    try:
        fn()
    except ClientError as e:
        err, meta = e.response["Error"], e.response["ResponseMetadata"]
        eq(err.get("Code"), code, "error code")
        if status is not None:
            eq(meta["HTTPStatusCode"], status, "HTTP status")
        if contains is not None:
            check(contains in err.get("Message", ""), f"message {err.get('Message')!r} lacks {contains!r}")
        check(meta.get("RequestId"), "error without a request id")
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


def signed(service, method, path, headers=None, body=b"", key=AKID, secret=SECRET, token=None, region=REGION):
    """A botocore-signed request as (method, path, headers dict, body)."""
    req = AWSRequest(method=method, url=BASE + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(req)
    p = req.prepare()
    return p.method, p.url[len(BASE) :], dict(p.headers), p.body or b""


def send(method, path, headers, body):
    """Send a (possibly tampered) signed request; http.client sets Content-Length."""
    return raw(method, path, {k: v for k, v in headers.items() if k.lower() != "content-length"}, body)


def ssm_request(op="GetParameter", body=b'{"Name": "/ferry/plain"}', **kw):
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"AmazonSSM.{op}"}
    return signed("ssm", "POST", "/", headers, body, **kw)


def sts_request(body=b"Action=GetCallerIdentity&Version=2011-06-15", path="/", **kw):
    return signed("sts", "POST", path, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, body, **kw)


def json_code(status_headers_body):
    status, _, body = status_headers_body
    return status, json.loads(body).get("__type")


def xml_code(status_headers_body):
    status, _, body = status_headers_body
    text = body.decode()
    return status, text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in text else None


def presign_sts(extra_query="", expires=60, cluster="my-cluster", key=AKID, secret=SECRET, token=None):
    url = f"{BASE}/?Action=GetCallerIdentity&Version=2011-06-15{extra_query}"
    headers = {"x-k8s-aws-id": cluster} if cluster else {}
    req = AWSRequest(method="GET", url=url, headers=headers)
    SigV4QueryAuth(Credentials(key, secret, token), "sts", REGION, expires=expires).add_auth(req)
    return req.prepare().url


# -- SigV4 verifier against the aws-c-auth suite ---------------------------------------


def _suite_request(text):
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # folded continuation
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, rest.rsplit(" ", 1)[0], headers, body.encode()


@test
def sigv4_suite_vectors():
    check(os.path.isdir(SUITE), f"no SigV4 suite at {SUITE}")
    accepted = 0
    for name in sorted(os.listdir(SUITE)):
        with open(os.path.join(SUITE, name, "context.json")) as f:
            ctx = json.load(f)
        for mode in ("header", "query"):
            path = os.path.join(SUITE, name, f"{mode}-signed-request.txt")
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as f:
                method, target, headers, body = _suite_request(f.read())
            secret = ctx["credentials"]["secret_access_key"]
            if name == "post-sts-header-after":  # token added after signing: the double insists it is signed
                try:
                    auth = sigv4.parse(method, target, headers)
                    ok = sigv4.verify(auth, secret, method, target, headers, body, normalize=ctx["normalize"]).ok
                except sigv4.SigError:
                    ok = False
                check(not ok, f"{name} {mode}: an unsigned session token was accepted")
                continue
            auth = sigv4.parse(method, target, headers)
            result = sigv4.verify(auth, secret, method, target, headers, body, normalize=ctx["normalize"])
            with open(os.path.join(SUITE, name, f"{mode}-canonical-request.txt"), encoding="utf-8") as f:
                eq(result.canonical_request, f.read(), f"{name} {mode} canonical request")
            check(result.ok, f"{name} {mode}: signature rejected")
            accepted += 1
    check(accepted >= 74, f"only {accepted} suite cases verified")


# -- STS -------------------------------------------------------------------------


@test
def sts_get_caller_identity_xml_and_json():
    r = client("sts").get_caller_identity()
    eq((r["Account"], r["Arn"], r["UserId"]), ("123456789012", creds_module.DEFAULT_ARN, creds_module.DEFAULT_USER_ID), "identity")
    method, path, headers, body = sts_request()
    headers["Accept"] = "application/json"
    status, h, data = send(method, path, headers, body)
    eq(status, 200, "JSON status")
    tree = json.loads(data)["GetCallerIdentityResponse"]
    eq(tree["GetCallerIdentityResult"]["Account"], "123456789012", "JSON account")
    eq(tree["ResponseMetadata"]["RequestId"], h["x-amzn-requestid"], "JSON request id")


@test
def sts_assume_role_creds_sign_and_expire():
    r = client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/deploy", RoleSessionName="ferry", DurationSeconds=900)
    c = r["Credentials"]
    check(c["AccessKeyId"].startswith("ASIA") and c["SessionToken"], "temporary credentials")
    eq(r["AssumedRoleUser"]["Arn"], "arn:aws:sts::123456789012:assumed-role/deploy/ferry", "assumed role ARN")
    sts2 = client("sts", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    eq(sts2.get_caller_identity()["Arn"], r["AssumedRoleUser"]["Arn"], "caller is the role")
    client_error(lambda: client("sts", c["AccessKeyId"], c["SecretAccessKey"]).get_caller_identity(), "InvalidClientTokenId", 403)
    client_error(lambda: client("ssm", c["AccessKeyId"], c["SecretAccessKey"], "wrong").get_parameter(Name="x"), "UnrecognizedClientException", 400)
    ctl("POST", "clock", {"advance": 901})
    client_error(sts2.get_caller_identity, "ExpiredToken", 403)
    client_error(lambda: client("ssm", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]).get_parameter(Name="x"), "ExpiredTokenException", 400)
    ctl("POST", "clock", {"offset": 0})
    ctl("POST", "sts", {"deny_roles": ["arn:aws:iam::123456789012:role/locked"]})
    client_error(lambda: client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/locked", RoleSessionName="s1"), "AccessDenied", 403)


@test
def sts_assume_role_with_web_identity_unsigned():
    sts = boto3.client("sts", endpoint_url=BASE, region_name=REGION, config=Config(signature_version=botocore.UNSIGNED))
    r = sts.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/web", RoleSessionName="pod", WebIdentityToken="opaque-token")
    c = r["Credentials"]
    eq(client("sts", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]).get_caller_identity()["Arn"],
       "arn:aws:sts::123456789012:assumed-role/web/pod", "web identity caller")
    calls = ctl("GET", "calls?operation=AssumeRoleWithWebIdentity")["calls"]
    eq([(x["status"], x["access_key_id"]) for x in calls], [(200, None)], "logged unsigned call")
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    jwt = f"{b64({'alg': 'RS256'})}.{b64({'sub': 'system:serviceaccount:ci:ferry', 'aud': 'sts.amazonaws.com', 'exp': int(time.time()) + 600})}.c2ln"
    r = sts.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/web", RoleSessionName="pod", WebIdentityToken=jwt)
    eq(r["SubjectFromWebIdentityToken"], "system:serviceaccount:ci:ferry", "JWT subject")
    old = f"{b64({'alg': 'RS256'})}.{b64({'sub': 'x', 'exp': 1000})}.c2ln"
    client_error(lambda: sts.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/web", RoleSessionName="pod", WebIdentityToken=old), "ExpiredTokenException", 400)
    form = b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fweb&RoleSessionName=pod&WebIdentityToken="
    eq(xml_code(send("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, form)), (400, "ValidationError"), "empty token")


@test
def sts_presigned_get_caller_identity_eks_rules():
    url = presign_sts()
    path = url[len(BASE) :]
    status, _, data = raw("GET", path, {"x-k8s-aws-id": "my-cluster", "Accept": "application/json"})
    eq(status, 200, f"EKS-style presigned URL: {data[:300]!r}")
    eq(json.loads(data)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]["Arn"], creds_module.DEFAULT_ARN, "presigned identity")
    eq(xml_code(raw("GET", path, {"x-k8s-aws-id": "other-cluster"})), (403, "SignatureDoesNotMatch"), "cluster header is signed")
    extra = presign_sts("&Foo=bar")[len(BASE) :]
    eq(xml_code(raw("GET", extra, {"x-k8s-aws-id": "my-cluster"})), (403, "AccessDenied"), "extra parameter")
    long = presign_sts(expires=1000)[len(BASE) :]
    eq(xml_code(raw("GET", long, {"x-k8s-aws-id": "my-cluster"})), (403, "AccessDenied"), "X-Amz-Expires > 900")
    bare = presign_sts(cluster=None)[len(BASE) :]
    eq(xml_code(raw("GET", bare)), (403, "AccessDenied"), "unsigned x-k8s-aws-id")
    token = "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    eq(ctl("POST", "eks/verify", {"token": token, "cluster": "my-cluster"})["arn"], creds_module.DEFAULT_ARN, "eks/verify")
    ctl("POST", "clock", {"advance": 901})
    eq(xml_code(raw("GET", path, {"x-k8s-aws-id": "my-cluster"})), (403, "SignatureDoesNotMatch"), "15-minute window")


# -- SSM and S3 ------------------------------------------------------------------------


@test
def ssm_get_parameter():
    ctl("POST", "ssm", {"parameters": [{"name": "/ferry/plain", "value": "v1"}, {"name": "/ferry/secret", "value": "s3cr3t", "type": "SecureString"}]})
    ctl("POST", "ssm", {"name": "/ferry/plain", "value": "v2"})
    ssm = client("ssm")
    p = ssm.get_parameter(Name="/ferry/plain")["Parameter"]
    eq((p["Value"], p["Version"], p["Type"]), ("v2", 2, "String"), "latest version")
    check(hasattr(p["LastModifiedDate"], "year"), "LastModifiedDate parsed as a datetime")
    eq(ssm.get_parameter(Name="/ferry/plain:1")["Parameter"]["Value"], "v1", "version selector")
    eq(ssm.get_parameter(Name="/ferry/secret", WithDecryption=True)["Parameter"]["Value"], "s3cr3t", "decrypted")
    check(ssm.get_parameter(Name="/ferry/secret")["Parameter"]["Value"] != "s3cr3t", "SecureString left encrypted")
    client_error(lambda: ssm.get_parameter(Name="/ferry/none"), "ParameterNotFound", 400)
    eq(ssm.get_parameters(Names=["/ferry/plain", "/nope"])["InvalidParameters"], ["/nope"], "GetParameters")


@test
def s3_get_object_path_style():
    data = bytes(range(256)) * 4
    ctl("POST", "s3", {"bucket": "artifacts", "key": "build/out.zip", "body": base64.b64encode(data).decode(), "content_type": "application/zip"})
    s3 = client("s3")
    r = s3.get_object(Bucket="artifacts", Key="build/out.zip")
    eq(r["Body"].read(), data, "object bytes")
    eq(r["ContentType"], "application/zip", "content type")
    eq(s3.get_object(Bucket="artifacts", Key="build/out.zip", Range="bytes=10-19")["Body"].read(), data[10:20], "range")
    eq(s3.head_object(Bucket="artifacts", Key="build/out.zip")["ContentLength"], len(data), "HEAD length")
    client_error(lambda: s3.get_object(Bucket="artifacts", Key="missing"), "NoSuchKey", 404)
    client_error(lambda: s3.get_object(Bucket="nobucket", Key="k"), "NoSuchBucket", 404)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "artifacts", "Key": "build/out.zip"}, ExpiresIn=60)
    eq(raw("GET", url[len(BASE) :])[0], 200, "presigned GET")
    eq(raw("GET", url[len(BASE) :].replace("out.zip", "out.zap"))[0], 403, "presigned GET, other key")
    method, path, headers, body = signed("s3", "GET", "/artifacts/build/out.zip", {"X-Amz-Content-Sha256": sigv4.EMPTY_SHA256})
    eq(send(method, path, headers, body)[0], 200, "virtual path signed GET")
    headers["Host"] = f"artifacts.s3.{REGION}.amazonaws.com"
    method, path, headers, body = signed("s3", "GET", "/build/out.zip", headers)
    eq(send(method, path, headers, body)[0], 200, "virtual-host style GET")


# -- signatures, tampered --------------------------------------------------------------


@test
def json_signature_checks():
    ctl("POST", "ssm", {"name": "/ferry/plain", "value": "v"})
    ok = ssm_request()
    eq(send(*ok)[0], 200, "untampered")
    method, path, headers, body = ok
    eq(json_code(send(method, path, headers, b'{"Name": "/ferry/other"}')), (400, "InvalidSignatureException"), "tampered body")
    eq(json_code(send(method, path, {**headers, "X-Amz-Target": "AmazonSSM.GetParameters"}, body)), (400, "InvalidSignatureException"), "tampered header")
    date = headers["X-Amz-Date"]
    later = date[:-3] + f"{(int(date[-3:-1]) + 1) % 60:02d}Z"
    status, _, data = send(method, path, {**headers, "X-Amz-Date": later}, body)
    eq((status, json.loads(data)["__type"]), (400, "InvalidSignatureException"), "tampered date")
    check("Canonical String" in json.loads(data)["message"], "mismatch message shows the canonical request")
    hashed = ssm_request(body=b'{"Name": "/ferry/plain"}')
    method, path, headers, body = signed("ssm", "POST", "/", {**ok[2], "X-Amz-Content-Sha256": sigv4.EMPTY_SHA256}, ok[3])
    eq(json_code(send(method, path, headers, body)), (400, "InvalidSignatureException"), "declared body hash differs")
    eq(send(*hashed)[0], 200, "untampered again")
    eq(json_code(send(*ssm_request(key="AKIDUNKNOWN"))), (400, "UnrecognizedClientException"), "unknown key")
    eq(json_code(send(*ssm_request(secret="not-the-secret"))), (400, "InvalidSignatureException"), "wrong secret")
    eq(json_code(send(*ssm_request(region="not-a-region"))), (400, "InvalidSignatureException"), "bad region")
    req = AWSRequest(method="POST", url=BASE + "/", data=b'{"Name": "/ferry/plain"}', headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonSSM.GetParameter"})
    SigV4Auth(Credentials(AKID, SECRET), "ecr", REGION).add_auth(req)
    p = req.prepare()
    eq(json_code(send("POST", "/", dict(p.headers), p.body)), (400, "InvalidSignatureException"), "scope names another service")
    eq(json_code(send("POST", "/", {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonSSM.GetParameter"}, b"{}")),
       (400, "MissingAuthenticationTokenException"), "no auth")


@test
def query_signature_checks():
    eq(send(*sts_request())[0], 200, "untampered")
    method, path, headers, body = sts_request()
    eq(xml_code(send(method, path, headers, body + b"&Foo=1")), (403, "SignatureDoesNotMatch"), "tampered body")
    eq(xml_code(send(method, "/tampered", headers, body)), (403, "SignatureDoesNotMatch"), "tampered path")
    eq(xml_code(send(method, path, {**headers, "Content-Type": "application/x-www-form-urlencoded"}, body)), (403, "SignatureDoesNotMatch"), "tampered header")
    eq(xml_code(send(*sts_request(key="AKIDUNKNOWN"))), (403, "InvalidClientTokenId"), "unknown key")
    status, _, data = send("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, b"Action=GetCallerIdentity&Version=2011-06-15")
    eq((status, data.decode().split("<Code>")[1].split("<")[0]), (403, "MissingAuthenticationToken"), "no auth")
    check("<Type>Sender</Type>" in data.decode() and "<ErrorResponse" in data.decode(), "ErrorResponse shape")
    eq(xml_code(send(*sts_request(body=b"Action=Bogus&Version=2011-06-15"))), (400, "InvalidAction"), "unknown action")


@test
def clock_skew_signature_expired():
    ctl("POST", "clock", {"offset": 600})
    e = client_error(lambda: client("ssm").get_parameter(Name="x"), "InvalidSignatureException", 400, "Signature expired")
    server_date = e.response["ResponseMetadata"]["HTTPHeaders"]["date"]
    skew = time.mktime(time.strptime(server_date, "%a, %d %b %Y %H:%M:%S GMT")) - time.mktime(time.gmtime())
    check(550 < skew < 650, f"Date header is the double's clock: skew {skew}")
    client_error(lambda: client("sts").get_caller_identity(), "SignatureDoesNotMatch", 403, "Signature expired")
    ctl("POST", "clock", {"offset": -600})
    client_error(lambda: client("ssm").get_parameter(Name="x"), "InvalidSignatureException", 400, "Signature not yet current")
    ctl("POST", "clock", {"offset": 240})
    client_error(lambda: client("ssm").get_parameter(Name="x"), "ParameterNotFound")


# -- validation, faults, call log ------------------------------------------------------


@test
def validation_errors_name_the_member():
    status, _, data = send(*ssm_request(body=b"{}"))
    eq(status, 400, "status")
    err = json.loads(data)
    eq(err["__type"], "ValidationException", "code")
    text = lambda e: e.get("message") or e.get("Message")  # SSM's ValidationException says Message
    eq(text(err), "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null", "message")
    err = json.loads(send(*ssm_request(body=b'{"Name": "x", "Bogus": 1}'))[2])
    check(err["__type"] == "ValidationException" and "'Bogus'" in text(err), f"unknown member: {err}")
    err = json.loads(send(*ssm_request(body=b'{"Name": 5, "WithDecryption": "yes"}'))[2])
    check(text(err).startswith("2 validation errors detected"), f"types: {err}")
    eq(json_code(send(*ssm_request(body=b"[1"))), (400, "SerializationException"), "bad JSON")
    eq(json_code(send(*ssm_request(op="NoSuchOp"))), (400, "UnknownOperationException"), "unknown op")
    form = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fx&RoleSessionName=a"
    status, _, data = send(*sts_request(body=form))
    check(status == 400 and b"ValidationError" in data and b"roleSessionName" in data, f"STS validation: {data[:300]!r}")


@test
def faults_and_call_log():
    ctl("POST", "ssm", {"name": "/p", "value": "v"})
    ctl("POST", "faults", {"service": "ssm", "operation": "GetParameter", "kind": "throttle", "count": 1})
    r = client("ssm", attempts=3, mode="standard").get_parameter(Name="/p")
    eq(r["ResponseMetadata"]["RetryAttempts"], 1, "boto3 retried once")
    calls = ctl("GET", "calls?service=ssm&operation=GetParameter")["calls"]
    eq([(c["status"], c["error"], c["fault"]) for c in calls], [(400, "ThrottlingException", "throttle"), (200, None, None)], "call log")
    ctl("POST", "faults", {"faults": [{"service": "ssm", "kind": "error500"}, {"service": "sts", "kind": "throttle"}]})
    client_error(lambda: client("ssm").get_parameter(Name="/p"), "InternalServerError", 500)
    client_error(lambda: client("sts").get_caller_identity(), "Throttling", 400, "Rate exceeded")
    ctl("POST", "faults", {"service": "ssm", "kind": "throttle"})
    status, _, data = send(*ssm_request(body=b'{"Name": "/p"}'))
    eq((status, json.loads(data)), (400, {"__type": "ThrottlingException", "Message": "Rate exceeded"}), "SSM spells it Message")
    ctl("POST", "faults", {"service": "ssm", "kind": "error", "code": "ParameterVersionNotFound", "message": "gone", "skip": 1})
    client("ssm").get_parameter(Name="/p")
    client_error(lambda: client("ssm").get_parameter(Name="/p"), "ParameterVersionNotFound", 400, "gone")
    ctl("POST", "faults", {"service": "ssm", "kind": "drop"})
    try:
        send(*ssm_request(body=b'{"Name": "/p"}'))
        raise AssertionError("drop fault answered")
    except (http.client.RemoteDisconnected, ConnectionError):
        pass
    eq(ctl("GET", "calls?service=ssm")["calls"][-1]["fault"], "drop", "drop logged")
    key = ctl("POST", "credentials", {"issue": True})["issued"]
    temp = client("ssm", key["access_key_id"], key["secret_access_key"], key["session_token"])
    ctl("POST", "faults", {"service": "ssm", "kind": "expire_credentials"})
    client_error(lambda: temp.get_parameter(Name="/p"), "ExpiredTokenException", 400)
    client_error(lambda: temp.get_parameter(Name="/p"), "ExpiredTokenException", 400)  # it stays expired
    client("ssm").get_parameter(Name="/p")  # the permanent key is unaffected
    start = time.monotonic()
    ctl("POST", "faults", {"service": "ssm", "kind": "slow", "delay_ms": 300})
    client("ssm").get_parameter(Name="/p")
    check(time.monotonic() - start >= 0.3, "slow fault delayed the answer")
    eq(ctl("GET", "faults")["faults"], [], "faults consumed")


@test
def keep_alive_and_date_header():
    conn = http.client.HTTPConnection(BASE[len("http://") :], timeout=DEADLINE)
    try:
        for _ in range(3):
            method, path, headers, body = sts_request()
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            eq(r.status, 200, "keep-alive request")
            check(r.getheader("Date") and r.getheader("Connection") != "close", "Date, and the connection kept")
    finally:
        conn.close()


# -- credential providers --------------------------------------------------------------


@test
def container_credentials_endpoints():
    fetcher = ContainerMetadataFetcher()
    c = fetcher.retrieve_full_uri(BASE + "/creds/codebuild-1234")
    sts = client("sts", c["AccessKeyId"], c["SecretAccessKey"], c["Token"])
    check(":assumed-role/ferry-test-role/" in sts.get_caller_identity()["Arn"], "container creds sign")
    c = fetcher.retrieve_full_uri(BASE + "/v1/credentials", headers={"Authorization": "ferry-container-token"})
    check(c["AccessKeyId"].startswith("ASIA") and c["Expiration"].endswith("Z"), "full-URI creds")
    eq(raw("GET", "/v1/credentials")[0], 401, "full URI without the token")
    eq(raw("GET", "/v1/credentials", {"Authorization": "wrong"})[0], 401, "full URI with a wrong token")
    ctl("POST", "faults", {"service": "container", "kind": "error500"})
    eq(raw("GET", "/creds/x")[0], 500, "container fault")


@test
def imds_v2():
    c = InstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=BASE + "/").retrieve_iam_role_credentials()
    eq(c.get("role_name"), "ferry-test-role", f"IMDS credentials: {c}")
    client("sts", c["access_key"], c["secret_key"], c["token"]).get_caller_identity()
    eq(raw("GET", "/latest/meta-data/iam/security-credentials/")[0], 401, "no token")
    eq(raw("PUT", "/latest/api/token")[0], 400, "no TTL")
    status, h, token = raw("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "1"})
    eq((status, h.get("x-aws-ec2-metadata-token-ttl-seconds")), (200, "1"), "token")
    ctl("POST", "clock", {"advance": 2})
    eq(raw("GET", "/latest/meta-data/iam/security-credentials/", {"X-aws-ec2-metadata-token": token.decode()})[0], 401, "expired token")


# -- ECR and CodePipeline -------------------------------------------------------------

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "sha256:" + "a" * 64},
                       "layers": []}, indent=3)


@test
def ecr_operations():
    ctl("POST", "ecr", {"repositories": [{"repositoryName": "app", "images": [{"manifest": MANIFEST, "tags": ["v1"],
        "scan": {"status": "COMPLETE", "findings": [{"name": "CVE-1", "severity": "HIGH", "uri": "https://cve.test/1"}]}}]}]})
    ecr = client("ecr")
    auth = ecr.get_authorization_token()["authorizationData"][0]
    check(base64.b64decode(auth["authorizationToken"]).startswith(b"AWS:") and hasattr(auth["expiresAt"], "year"), "token")
    repo = ecr.describe_repositories(repositoryNames=["app"])["repositories"][0]
    check(repo["repositoryUri"].endswith("/app"), "repository URI")
    detail = ecr.describe_images(repositoryName="app", imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
    check(detail["imageDigest"].startswith("sha256:") and hasattr(detail["imagePushedAt"], "year"), "image detail")
    eq(ecr.list_images(repositoryName="app")["imageIds"][0]["imageDigest"], detail["imageDigest"], "ListImages")
    image = ecr.batch_get_image(repositoryName="app", imageIds=[{"imageTag": "v1"}])["images"][0]
    eq(image["imageManifest"], MANIFEST, "manifest bytes kept")
    put = ecr.put_image(repositoryName="app", imageManifest=image["imageManifest"], imageManifestMediaType=image["imageManifestMediaType"], imageTag="v2")
    eq(put["image"]["imageId"]["imageDigest"], detail["imageDigest"], "retag keeps the digest")
    client_error(lambda: ecr.put_image(repositoryName="app", imageManifest=MANIFEST, imageTag="v2"), "ImageAlreadyExistsException", 400)
    scan = ecr.describe_image_scan_findings(repositoryName="app", imageId={"imageTag": "v1"})
    eq(scan["imageScanStatus"]["status"], "COMPLETE", "scan status")
    eq(scan["imageScanFindings"]["findingSeverityCounts"].get("HIGH"), 1, "finding counts")
    client_error(lambda: ecr.describe_images(repositoryName="nope"), "RepositoryNotFoundException", 400)
    ctl("POST", "faults", {"service": "ecr", "operation": "DescribeImages", "kind": "error500"})
    client_error(lambda: ecr.describe_images(repositoryName="app"), "ServerException", 500)


@test
def codepipeline_operations():
    custom = {"category": "Test", "owner": "Custom", "provider": "FerryTest", "version": "1"}
    seeded = ctl("POST", "codepipeline", {
        "actionTypes": [custom],
        "pipelines": [{"name": "deploy", "stages": [
            {"name": "Source", "actions": [{"name": "Src", "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}, "configuration": {"S3Bucket": "b", "S3ObjectKey": "k"}}]},
            {"name": "Test", "actions": [{"name": "Run", "actionTypeId": custom, "configuration": {"Mode": "smoke"}}]}]}],
        "jobs": [{"actionTypeId": custom, "pipelineName": "deploy", "stageName": "Test", "actionName": "Run"},
                 {"data": {"actionConfiguration": {"configuration": {"FunctionName": "ferry", "UserParameters": "verify"}}}}]})
    lambda_job = seeded["jobs"][1]["id"]
    cp = client("codepipeline")
    jobs = cp.poll_for_jobs(actionTypeId=custom, maxBatchSize=1)["jobs"]
    eq(len(jobs), 1, "PollForJobs")
    eq(cp.acknowledge_job(jobId=jobs[0]["id"], nonce=jobs[0]["nonce"])["status"], "InProgress", "AcknowledgeJob")
    cp.put_job_success_result(jobId=jobs[0]["id"], outputVariables={"testRunId": "42"}, executionDetails={"summary": "ok"})
    client_error(lambda: cp.put_job_success_result(jobId=jobs[0]["id"]), "InvalidJobStateException", 400)
    cp.put_job_failure_result(jobId=lambda_job, failureDetails={"type": "JobFailed", "message": "verify failed"})
    execution_id = cp.start_pipeline_execution(name="deploy", clientRequestToken="run-1")["pipelineExecutionId"]
    e = cp.get_pipeline_execution(pipelineName="deploy", pipelineExecutionId=execution_id)["pipelineExecution"]
    eq(e["pipelineExecutionId"], execution_id, "GetPipelineExecution")
    state = cp.get_pipeline_state(name="deploy")
    eq([s["stageName"] for s in state["stageStates"]], ["Source", "Test"], "GetPipelineState stages")
    client_error(lambda: cp.get_pipeline_state(name="nope"), "PipelineNotFoundException", 400)
    ctl("POST", "faults", {"service": "codepipeline", "operation": "PollForJobs", "kind": "throttle"})
    client_error(lambda: cp.poll_for_jobs(actionTypeId=custom), "ThrottlingException", 400, "Rate exceeded")


# -- runner ----------------------------------------------------------------------------


def main():
    global BASE
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    with tempfile.TemporaryDirectory() as workdir:
        try:
            server = testlib.Server(os.path.join(HERE, "server.py"), workdir, "aws", "--state-dir", workdir, deadline=DEADLINE)
        except AssertionError as e:
            sys.stderr.write(f"{e}\n")
            raise SystemExit("test_conformance: server.py did not start") from None
        BASE = f"http://127.0.0.1:{server.port}"
        tally = testlib.Tally()
        try:
            health = ctl("GET", "health")
            if health["load_errors"]:
                print(f"FAIL service files: {health['load_errors']}")
                tally.failed += 1
            testlib.run(TESTS, only=only, tally=tally, before=lambda fn: ctl("POST", "reset"))
        finally:
            server.stop()
            if tally.failed:
                tail = server.log(tail=4000)
                if tail:
                    print("--- server log (tail) ---\n" + tail)
    return testlib.summary(tally)


if __name__ == "__main__":
    sys.exit(main())
