#!/usr/bin/python3
"""server.py: Ferry's loopback AWS test double, one HTTP/1.1 server for every service.

Standard library only. One thread per connection, keep-alive, every answer with a
Date header from the double's clock (skewable) and a Content-Length.

Usage:
    server.py [--host 127.0.0.1] [--port 0] [--port-file PATH] [--state-dir DIR]
              [--models DIR] [--region eu-west-1] [--verbose]

Routing (first match):
    /_ferry/...                  control endpoints (control.py): unsigned, not logged
    /creds/..., /v1/credentials  container credentials (metadata.py)
    /latest/...                  IMDSv2 (metadata.py)
    X-Amz-Target: Prefix.Op      JSON 1.1: ECR (AmazonEC2ContainerRegistry_V20150921),
                                 CodePipeline (CodePipeline_20150709), SSM (AmazonSSM)
    Action=Op in query or form   Query protocol: STS (XML; JSON with Accept: application/json)
    anything else                S3 GetObject/HeadObject, path or virtual-host style
A signed request must be scoped to the signing name of the service it reaches
("ecr", "codepipeline", "ssm", "sts", "s3") and a valid region; that region is the
call's region. Every call (not control) is logged with its outcome: GET /_ferry/calls.

Service files: sts.py, ssm.py, s3.py, ecr.py, codepipeline.py (see base.py for the
interface). Models: <repo>/../shared/ref/aws/models.
"""

import argparse
import base64
import binascii
import email.message
import email.utils
import importlib
import json
import os
import sys
import threading
import time
import traceback
import uuid
from urllib.parse import parse_qsl, urlsplit

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
HERE = os.path.dirname(os.path.abspath(__file__))
# This folder's modules, then serving.py from the folder above.
sys.path[:0] = [p for p in (HERE, os.path.dirname(HERE)) if p not in sys.path]

import auth  # noqa: E402
import control  # noqa: E402
import faults  # noqa: E402
import models  # noqa: E402
import protocols  # noqa: E402
import serving  # noqa: E402
import sigv4  # noqa: E402
import sts as sts_module  # noqa: E402
from base import AwsError, CallContext  # noqa: E402
from credentials import ACCOUNT_ID, Keystore  # noqa: E402
from metadata import Providers  # noqa: E402
from s3 import S3Error  # noqa: E402

SERVICE_FILES = ("sts", "ssm", "s3", "ecr", "codepipeline")
MAX_BODY = 16 * 1024 * 1024
INTERNAL = "We encountered an internal error. Please try again."


class Request:
    def __init__(self, method, target, headers, body):
        self.method = method
        self.target = target
        self.path, _, self.raw_query = target.partition("?")
        self.headers = headers  # email.message.Message: case-insensitive get()
        self.header_list = list(headers.items())
        self.body = body
        self.content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()


class Reply:
    """Builds one call's answers in its protocol; remembers the error code for the log."""

    def __init__(self, protocol, request_id, as_json=False, namespace="", model=None):
        self.protocol, self.request_id, self.as_json, self.namespace = protocol, request_id, as_json, namespace
        self.model = model  # JSON 1.1: the error shapes say "message" or "Message"
        self.code = None

    def error(self, code, message, status, sender=None, extra=()):
        self.code = code
        sender = status < 500 if sender is None else sender
        if self.protocol == "json":
            members = ((self.model.shapes.get(code) if self.model else None) or {}).get("members", {})
            key = "Message" if "Message" in members and "message" not in members else "message"
            return protocols.json_error(code, message, status, self.request_id, message_key=key)
        if self.protocol == "query":
            return protocols.query_error(code, message, status, sender, self.request_id, self.namespace, self.as_json)
        if self.protocol == "s3":
            return protocols.s3_error(code, message, status, self.request_id, extra)
        return protocols.plain_json(status, {"code": code, "message": message})

    def auth_error(self, failure):
        return self.error(*auth.failure(failure.kind, self.protocol, failure.message))


DROP = object()  # the answer to a "drop" fault: close without a response


class Core:
    def __init__(self, models_root, state_dir=None, region="eu-west-1"):
        self.models_root = models_root
        self.state_dir = state_dir
        self.region = region
        self.lock = threading.RLock()  # serializes service calls and control hooks
        self.keys = Keystore()
        self.faults = faults.Faults(control.MAX_FAULTS)  # take(service, operation)
        self.calls = control.CallLog()
        self.providers = Providers(self.keys, region)
        self.offset = 0.0
        self.services, self.models, self.by_target, self.load_errors = {}, {}, {}, {}
        for name in SERVICE_FILES:
            self._load(name)

    def now(self):
        return time.time() + self.offset

    def _load(self, name):
        try:
            svc = importlib.import_module(name).SERVICE
            svc.core = self
            if svc.protocol in ("json", "query"):
                self.models[svc.signing_name] = models.load(self.models_root, getattr(svc, "model_name", svc.signing_name))
            if svc.protocol == "json":
                self.by_target[svc.target_prefix] = svc.signing_name
            self.services[svc.signing_name] = svc
        except models.MissingModel as e:
            self.load_errors[name] = str(e)
            sys.stderr.write(f"aws: cannot load {name}.py: {e}\n")
        except Exception as e:  # a broken service file must not take the others down
            self.load_errors[name] = f"{type(e).__name__}: {e}"
            sys.stderr.write(f"aws: cannot load {name}.py:\n")
            traceback.print_exc()

    def reset(self):
        with self.lock:
            self.faults.clear()
            self.calls.clear()
            self.offset = 0.0
            self.keys.reset()
            self.providers.reset()
            for svc in self.services.values():
                svc.reset()

    # -- routing --------------------------------------------------------------------

    def handle(self, req):
        """The answer to one API request (a protocols.Response, or DROP); logs the call."""
        path = req.path
        if path.startswith("/creds/") or path == "/v1/credentials":
            return self._plain(req, "container", Providers.container_operation(path), self.providers.container)
        if path.startswith("/latest/"):
            return self._plain(req, "imds", Providers.imds_operation(path), self.providers.imds)
        target = req.headers.get("X-Amz-Target")
        if target is not None:
            return self._json(req, target.strip())
        fields = parse_qsl(req.raw_query, keep_blank_values=True)
        if req.method == "POST" and req.content_type == "application/x-www-form-urlencoded":
            fields += parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        if any(n == "Action" for n, _ in fields):
            return self._query(req, fields)
        return self._s3(req)

    def _run(self, entry, fn):
        """Call fn() -> Response and record the outcome in the call log."""
        response = reply = None
        try:
            response, reply = fn(entry)
            return response
        finally:
            entry["status"] = None if response is DROP or response is None else response.status
            entry["error"] = reply.code if reply is not None else None
            self.calls.add(entry)

    def _apply_fault(self, entry, reply, model, op, key):
        """The response a pending fault dictates (DROP for drop), or None to go on."""
        fault = self.faults.take(entry["service"], entry["operation"])
        if fault is None:
            return None
        entry["fault"] = fault.kind
        if fault.kind == "slow":
            time.sleep(fault.delay_ms / 1000)
            return None
        if fault.kind == "drop":
            return DROP
        if fault.kind == "error":
            return reply.error(fault.code, fault.message, fault.status)
        if fault.kind == "expire_credentials":
            if key is not None:
                self.keys.revoke(key.access_key_id)
            return reply.error(*auth.expired_token(reply.protocol))
        throttle = fault.kind == "throttle"
        if reply.protocol == "json":
            if throttle:
                return reply.error("ThrottlingException", "Rate exceeded", 400)
            return reply.error(model.server_error_code(op), INTERNAL, 500)
        if reply.protocol == "query":
            return reply.error("Throttling", "Rate exceeded", 400) if throttle else reply.error("InternalFailure", INTERNAL, 500)
        if reply.protocol == "s3":
            if throttle:
                return reply.error("SlowDown", "Please reduce your request rate.", 503)
            return reply.error("InternalError", INTERNAL, 500)
        return reply.error("Throttled", "Too Many Requests", 429) if throttle else reply.error("InternalError", INTERNAL, 500)

    def _authenticate(self, entry, signing_name, req, s3=False):
        """The signing Key, after recording it; AuthFailure otherwise."""
        a, key = auth.authenticate(self.keys, self.now(), signing_name, req.method, req.target, req.header_list, req.body, s3)
        entry["access_key_id"], entry["region"] = key.access_key_id, a.region
        return a, key

    def _context(self, a, key, reply):
        region = a.region if a is not None else self.region
        return CallContext(ACCOUNT_ID, region, key.access_key_id if key else "", self.now(), reply.request_id, self.state_dir)

    def _invoke(self, svc, model, op, params, ctx, reply):
        """Run the service; (result dict, None) or (None, error response)."""
        try:
            with self.lock:
                result = svc.call(op, params, ctx)
        except AwsError as e:
            return None, reply.error(e.code, e.message, e.status, e.sender, getattr(e, "extra", ()))
        except Exception:
            sys.stderr.write(f"aws: {svc.signing_name}.{op} raised:\n")
            traceback.print_exc()
            return None, reply.error("InternalFailure", f"Ferry's AWS test double failed in {op}; see its log", 500)
        result = {} if result is None else result
        shape = model.output_shape(op)
        problems = models.check_output(model, shape, result) if shape else ([] if result == {} else ["result must be empty"])
        if problems:
            text = f"Ferry's AWS test double returned an invalid {op} result: " + "; ".join(problems[:5])
            sys.stderr.write(f"aws: {text}\n")
            return None, reply.error("InternalFailure", text, 500)
        return result, None

    # -- JSON 1.1 -------------------------------------------------------------------

    def _json(self, req, target):
        prefix, _, op = target.partition(".")
        name = self.by_target.get(prefix)
        entry = control.log_entry(name or prefix, op, req.method, req.path, self.now())
        return self._run(entry, lambda e: self._json_call(req, e, name, op))

    def _json_call(self, req, entry, name, op):
        model = self.models.get(name)
        reply = Reply("json", str(uuid.uuid4()), model=model)
        if model is None or op not in model.operations or req.method != "POST" or req.path != "/":
            what = f"{entry['service']}.{op}" if req.method == "POST" and req.path == "/" else f"{req.method} {req.path}"
            return reply.error("UnknownOperationException", f"Unknown operation {what}", 400), reply
        svc = self.services[name]
        try:
            a, key = self._authenticate(entry, svc.signing_name, req)
        except auth.AuthFailure as f:
            return reply.auth_error(f), reply
        faulted = self._apply_fault(entry, reply, model, op, key)
        if faulted is not None:
            return faulted, reply
        if req.content_type not in ("application/x-amz-json-1.1", "application/x-amz-json-1.0"):
            got = req.content_type or "none"
            return reply.error("UnknownOperationException", f"Content-Type must be application/x-amz-json-1.1, got {got!r}", 400), reply
        try:
            params = json.loads(req.body) if req.body.strip() else {}
        except ValueError:
            params = None
        if not isinstance(params, dict):
            return reply.error("SerializationException", "Start of structure or map found where not expected; the body must be a JSON object", 400), reply
        errors = models.validate(model, model.input_shape(op), params) if model.input_shape(op) else []
        if errors:
            return reply.error(model.validation_code(op), models.message(errors), 400), reply
        result, failed = self._invoke(svc, model, op, params, self._context(a, key, reply), reply)
        return (failed, reply) if failed else (protocols.json_ok(result, reply.request_id), reply)

    # -- Query (STS) ----------------------------------------------------------------

    def _query(self, req, fields):
        action = next(v for n, v in fields if n == "Action")
        entry = control.log_entry("sts", action, req.method, req.path, self.now())
        return self._run(entry, lambda e: self._query_call(req, e, fields, action))

    def _query_call(self, req, entry, fields, op):
        model = self.models["sts"]
        accept = (req.headers.get("Accept") or "").lower()
        reply = Reply("query", str(uuid.uuid4()), "application/json" in accept, model.metadata.get("xmlNamespace", ""))
        version = next((v for n, v in fields if n == "Version"), None)
        if version is None:
            return reply.error("MissingParameter", "The request must contain the parameter Version", 400), reply
        if op not in model.operations or version != model.metadata["apiVersion"]:
            return reply.error("InvalidAction", f"Could not find operation {op} for version {version}", 400), reply
        svc = self.services["sts"]
        pairs = sigv4.query_pairs(req.raw_query)
        presigned = any(n in ("X-Amz-Signature", "X-Amz-Credential") for n, _ in pairs)
        signed = presigned or req.headers.get("Authorization") is not None
        a = key = None
        if signed or not model.is_unsigned(op):
            try:
                if presigned and op == "GetCallerIdentity":
                    parsed = sigv4.parse(req.method, req.target, req.header_list)
                    problem = sts_module.eks_problems(pairs, parsed)
                    if problem:
                        raise auth.AuthFailure("eks", problem)
                a, key = self._authenticate(entry, "sts", req)
            except sigv4.SigError as e:
                return reply.auth_error(auth.AuthFailure(e.kind, e.message)), reply
            except auth.AuthFailure as f:
                return reply.auth_error(f), reply
        faulted = self._apply_fault(entry, reply, model, op, key)
        if faulted is not None:
            return faulted, reply
        op_fields = [(n, v) for n, v in fields if n not in ("Action", "Version") and n not in sigv4.PRESIGN_PARAMS]
        shape = model.input_shape(op)
        try:
            params, unknown = models.from_query(model, shape, op_fields)
        except models.QueryInputError as e:
            return reply.error("ValidationError", models.message([str(e)]), 400), reply
        errors = [f"Value at '{n}' failed to satisfy constraint: Member is not part of {shape}" for n in unknown]
        errors += models.validate(model, shape, params) if shape else []
        if errors:
            return reply.error("ValidationError", models.message(errors), 400), reply
        result, failed = self._invoke(svc, model, op, params, self._context(a, key, reply), reply)
        if failed:
            return failed, reply
        return protocols.query_ok(model, op, result, reply.request_id, reply.as_json), reply

    # -- S3 -------------------------------------------------------------------------

    def _s3(self, req):
        op = {"GET": "GetObject", "HEAD": "HeadObject"}.get(req.method, req.method)
        entry = control.log_entry("s3", op, req.method, req.path, self.now())
        return self._run(entry, lambda e: self._s3_call(req, e, op))

    def _s3_call(self, req, entry, op):
        reply = Reply("s3", uuid.uuid4().hex[:16].upper())
        svc = self.services["s3"]
        bucket, key_name = svc.locate(req.headers.get("Host"), req.path)
        try:
            a, key = self._authenticate(entry, "s3", req, s3=True)
        except auth.AuthFailure as f:
            return reply.auth_error(f), reply
        faulted = self._apply_fault(entry, reply, None, op, key)
        if faulted is not None:
            return faulted, reply
        if not bucket:
            return reply.error("NotImplemented", "Only GetObject and HeadObject are implemented", 501), reply
        try:
            with self.lock:
                return svc.get_object(req.method, bucket, key_name, req.headers, self._context(a, key, reply)), reply
        except S3Error as e:
            return reply.error(e.code, e.message, e.status, extra=e.extra), reply

    # -- container credentials and IMDS ---------------------------------------------

    def _plain(self, req, service, op, handler):
        entry = control.log_entry(service, op, req.method, req.path, self.now())

        def serve(e):
            reply = Reply("plain", "")
            faulted = self._apply_fault(e, reply, None, op, None)
            if faulted is not None:
                return faulted, reply
            response = handler(req.method, req.path, req.headers, self.now())
            if response.status >= 400:
                reply.code = str(response.status)
            return response, reply

        return self._run(entry, serve)

    # -- EKS tokens -----------------------------------------------------------------

    def verify_eks_token(self, token, cluster):
        """What aws-iam-authenticator does with a bearer token: (status, answer)."""
        bad = lambda why: (401, {"error": "InvalidToken", "message": f"input token was not properly formatted: {why}"})
        prefix = "k8s-aws-v1."
        if len(token) > 4096 or not token.startswith(prefix):
            return bad("token is over 4096 bytes or lacks the k8s-aws-v1. prefix")
        raw = token[len(prefix) :]
        try:
            url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return bad("base64 decoding failed")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.path != "/":
            return bad(f"unexpected scheme or path in pre-signed URL: {parts.scheme}://…{parts.path}")
        headers = email.message.Message()
        for name, value in (("Host", parts.netloc), ("x-k8s-aws-id", cluster or ""), ("Accept", "application/json")):
            headers[name] = value
        response = self.handle(Request("GET", "/?" + parts.query, headers, b""))
        if response is DROP or response.status != 200:
            detail = "" if response is DROP else response.body.decode("utf-8", "replace")
            return 401, {"error": "AccessDenied", "message": f"sts getCallerIdentity failed: {detail}"}
        result = json.loads(response.body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
        return 200, {"arn": result["Arn"], "account": result["Account"], "user_id": result["UserId"]}


class Handler(serving.Handler):
    server_version = "ferry-aws/1"

    def date_time_string(self, timestamp=None):
        # Every response's Date comes from the double's clock, so clients can correct skew.
        return email.utils.formatdate(self.server.core.now() if timestamp is None else timestamp, usegmt=True)

    def _dispatch(self):
        try:
            body = self.read_body(MAX_BODY)
        except serving.HttpError as e:
            self.close_connection = True
            self._send(protocols.plain_json(e.status, {"error": str(e)}))
            return
        except OSError:
            self.close_connection = True
            return
        response = self.guarded(lambda: self._route(body), lambda: protocols.plain_json(500, {"error": "internal error in Ferry's AWS test double"}))
        if response is DROP:
            self.close_connection = True
            return
        self._send(response)

    def _route(self, body):
        if self.path.startswith("/_ferry/"):
            path, _, query = self.path.partition("?")
            return control.handle(self.server.core, self.command, path, query, body)
        return self.server.core.handle(Request(self.command, self.path, self.headers, body))

    def _send(self, response):
        try:
            self.send_whole(response.status, response.headers, response.body)
        except OSError:
            self.close_connection = True


class Server(serving.Server):
    name = "aws"

    def __init__(self, address, core, verbose=False):
        self.core = core
        super().__init__(address, Handler, verbose)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Loopback AWS test double for Ferry.")
    serving.add_listen_args(p)
    p.add_argument("--state-dir", metavar="DIR", help="handed to services as CallContext.state_dir")
    p.add_argument("--models", metavar="DIR", default=models.default_root(), help="botocore models root")
    p.add_argument("--region", default="eu-west-1", help="region of unsigned calls and IMDS")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    serving.stop_on_signals()
    core = Core(args.models, args.state_dir, args.region)
    if "sts" not in core.services:
        sys.stderr.write(f"aws: cannot start without the STS model (looked in {args.models})\n")
        return 1
    server = Server((args.host, args.port), core, args.verbose)
    services = ", ".join(sorted(core.services))
    return serving.serve(server, args.port_file, lambda port: f"aws: listening on http://{args.host}:{port} ({services})")


if __name__ == "__main__":
    sys.exit(main())
