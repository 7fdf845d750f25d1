"""control.py: fault injection, the call log, and the /_ferry/ control endpoints.

Control endpoints are unsigned and never logged or faulted. Bodies are JSON;
answers are JSON; a bad request gets 400 {"error": "...", "message": "..."}.

  GET  /_ferry/health        {"ok": true, "services": [...], "load_errors": {...}}
  POST /_ferry/reset         forget faults, calls, clock offset, added keys,
                             provider settings, and every service's state
  POST /_ferry/faults        add a fault (or {"faults": [...]}):
         {"service": "ecr", "operation": "DescribeImages", "kind": K, "count": 2,
          "skip": 0, "delay_ms": 1500, "code": ..., "message": ..., "status": ...}
         service / operation: omit for "any"; count: how many matching calls get
         it (default 1, -1 = until reset); skip: let that many matching calls
         through first. Kinds:
           throttle            JSON 400 ThrottlingException "Rate exceeded"; Query 400
                               Throttling; S3 503 SlowDown; container/IMDS 429
           error500            JSON 500 with the operation's modeled server fault
                               (ECR ServerException, SSM InternalServerError) else
                               InternalFailure; Query 500 InternalFailure; S3 500 InternalError
           slow                wait delay_ms (default 1000), then answer normally
           drop                close the connection without an answer
           expire_credentials  ExpiredTokenException (JSON, 400) / ExpiredToken (Query,
                               403), and a temporary key that signed it stays expired
           error               the given code, message (default: code) and status (default 400)
       GET lists the pending faults; DELETE clears them.
  GET  /_ferry/calls[?service=S&operation=O&since=SEQ]
         {"calls": [{"seq", "time" (double's clock), "monotonic", "service",
         "operation", "method", "path", "status", "error" (code or null), "fault"
         (kind or null), "access_key_id", "region"}]}; DELETE clears the log.
  GET|POST /_ferry/clock     {"offset": seconds} sets the skew, {"advance": s} adds to
                             it; answers {"now", "offset"}
  GET|POST /_ferry/credentials
         POST {"access_key_id", "secret_access_key", "session_token"?, "expires_in"?,
               "arn"?}: add a key;  {"issue": true, "expires_in"?}: mint a temporary
               key and answer it with its secret and token;  {"expire": AKID}: expire
               a temporary key now;  {"provider": {"container_token", "duration_seconds",
               "role_name", "region"}}: container/IMDS settings.
         GET lists keys (no secrets) and the provider settings.
  POST /_ferry/eks/verify    {"token": "k8s-aws-v1.…", "cluster": NAME}: what
         aws-iam-authenticator does (decode, check, call STS): 200 {"arn", "account",
         "user_id"} or 401 {"error", "message"}
  *    /_ferry/<service>[/…]  the service's own control hook (seeding), see its file
"""

import json
import time
from urllib.parse import parse_qsl

from base import AwsError, CallContext
from credentials import ACCOUNT_ID, Key
import faults  # tests/doubles/faults.py
import protocols

KINDS = ("throttle", "error500", "slow", "drop", "expire_credentials", "error")
MAX_CALLS = 20_000  # call log entries kept (oldest dropped)
MAX_FAULTS = 1_000
MAX_DELAY_MS = 120_000


class Fault:
    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        self.service = spec.get("service")
        self.operation = spec.get("operation")
        self.kind = spec.get("kind")
        self.count = spec.get("count", 1)
        self.skip = spec.get("skip", 0)
        self.delay_ms = spec.get("delay_ms", 1000)
        self.code = spec.get("code")
        self.message = spec.get("message")
        self.status = spec.get("status", 400)
        unknown = set(spec) - {"service", "operation", "kind", "count", "skip", "delay_ms", "code", "message", "status"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        for name in ("service", "operation"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string")
        if not isinstance(self.count, int) or not (self.count >= 1 or self.count == -1):
            raise ValueError("count must be a positive integer, or -1 for every call")
        if not isinstance(self.skip, int) or self.skip < 0:
            raise ValueError("skip must be a non-negative integer")
        if not isinstance(self.delay_ms, int) or not 0 <= self.delay_ms <= MAX_DELAY_MS:
            raise ValueError(f"delay_ms must be an integer in 0..{MAX_DELAY_MS}")
        if self.kind == "error":
            if not isinstance(self.code, str) or not self.code:
                raise ValueError("kind error needs a code")
            if not isinstance(self.status, int) or not 400 <= self.status <= 599:
                raise ValueError("status must be in 400..599")
            self.message = self.message if isinstance(self.message, str) else self.code
        if self.kind == "expire_credentials" and self.service in ("container", "imds"):
            raise ValueError("expire_credentials applies to signed AWS calls only")

    def matches(self, service, operation):
        return self.service in (None, service) and self.operation in (None, operation)

    def public(self):
        out = {"service": self.service, "operation": self.operation, "kind": self.kind, "count": self.count, "skip": self.skip}
        if self.kind == "slow":
            out["delay_ms"] = self.delay_ms
        if self.kind == "error":
            out.update(code=self.code, message=self.message, status=self.status)
        return out


class CallLog(faults.Log):
    def __init__(self):
        super().__init__(MAX_CALLS)

    def query(self, service=None, operation=None, since=0):
        return self.select(lambda c: c["seq"] > since and service in (None, c["service"]) and operation in (None, c["operation"]))


class ControlError(Exception):
    def __init__(self, status, error, message):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _body(raw):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ControlError(400, "BadRequest", f"body is not JSON: {e}") from None


def _need(method, *allowed):
    if method not in allowed:
        raise ControlError(405, "MethodNotAllowed", f"use {' or '.join(allowed)}")


def handle(core, method, path, raw_query, raw_body):
    """Serve one control request; returns a protocols.Response."""
    try:
        return protocols.plain_json(200, _route(core, method, path, dict(parse_qsl(raw_query)), _body(raw_body)))
    except ControlError as e:
        return protocols.plain_json(e.status, {"error": e.error, "message": e.message})
    except AwsError as e:
        return protocols.plain_json(e.status, {"error": e.code, "message": e.message})
    except ValueError as e:
        return protocols.plain_json(400, {"error": "BadRequest", "message": str(e)})


def _route(core, method, path, query, body):
    name = path[len("/_ferry/") :]
    if name == "health":
        return {"ok": True, "services": sorted(core.services), "load_errors": core.load_errors}
    if name == "reset":
        _need(method, "POST")
        core.reset()
        return {"ok": True}
    if name == "faults":
        return _faults(core, method, body)
    if name == "calls":
        _need(method, "GET", "DELETE")
        if method == "DELETE":
            core.calls.clear()
            return {"ok": True}
        since = int(query.get("since", "0")) if query.get("since", "0").isdigit() else 0
        return {"calls": core.calls.query(query.get("service"), query.get("operation"), since)}
    if name == "clock":
        return _clock(core, method, body)
    if name == "credentials":
        return _credentials(core, method, body)
    if name == "eks/verify":
        _need(method, "POST")
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise ControlError(400, "BadRequest", 'expected {"token": "k8s-aws-v1....", "cluster": NAME}')
        status, answer = core.verify_eks_token(body["token"], body.get("cluster"))
        if status != 200:
            raise ControlError(status, answer["error"], answer["message"])
        return answer
    service_name, _, rest = name.partition("/")
    service = core.services.get(service_name)
    hook = getattr(service, "control", None)
    if hook is None:
        raise ControlError(404, "NotFound", f"no control endpoint {path}")
    _need(method, "GET", "POST", "PUT", "DELETE")
    ctx = CallContext(ACCOUNT_ID, core.region, "", core.now(), "control", core.state_dir)
    with core.lock:
        return hook(method, "/" + rest if rest else "", body, ctx)


def _faults(core, method, body):
    _need(method, "GET", "POST", "DELETE")
    if method == "POST":
        specs = body.get("faults") if isinstance(body, dict) and "faults" in body else [body]
        if not isinstance(specs, list):
            raise ControlError(400, "BadRequest", "faults must be a list")
        added = [Fault(s) for s in specs]  # all valid, or none added
        for f in added:
            core.faults.add(f)
    elif method == "DELETE":
        core.faults.clear()
    return {"faults": core.faults.listing()}


def _clock(core, method, body):
    _need(method, "GET", "POST")
    if method == "POST":
        if not isinstance(body, dict):
            raise ControlError(400, "BadRequest", 'expected {"offset": seconds} or {"advance": seconds}')
        for name in ("offset", "advance"):
            value = body.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ControlError(400, "BadRequest", f"{name} must be a number of seconds")
        if body.get("offset") is not None:
            core.offset = float(body["offset"])
        if body.get("advance") is not None:
            core.offset += float(body["advance"])
    return {"now": core.now(), "offset": core.offset}


def _credentials(core, method, body):
    _need(method, "GET", "POST")
    out = {}
    if method == "POST":
        if not isinstance(body, dict):
            raise ControlError(400, "BadRequest", "expected a JSON object")
        if "provider" in body:
            if not isinstance(body["provider"], dict):
                raise ControlError(400, "BadRequest", "provider must be an object")
            core.providers.configure(body["provider"])
        if body.get("expire"):
            core.keys.revoke(str(body["expire"]))
        if body.get("issue"):
            life = body.get("expires_in", 3600)
            if isinstance(life, bool) or not isinstance(life, (int, float)):
                raise ControlError(400, "BadRequest", "expires_in must be a number")
            key = core.keys.issue(core.now(), life, body.get("arn", f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/ferry-test-role/issued"), "AROAFERRYTESTROLE0001:issued")
            out["issued"] = {"access_key_id": key.access_key_id, "secret_access_key": key.secret, "session_token": key.session_token, "expiration": key.expiration}
        if "access_key_id" in body:
            akid, secret = body.get("access_key_id"), body.get("secret_access_key")
            if not isinstance(akid, str) or not akid or not isinstance(secret, str) or not secret:
                raise ControlError(400, "BadRequest", "access_key_id and secret_access_key must be non-empty strings")
            expiration = body.get("expiration")
            if body.get("expires_in") is not None:
                expiration = core.now() + float(body["expires_in"])
            key = Key(akid, secret, body.get("session_token"), expiration)
            if body.get("arn"):
                key.arn = str(body["arn"])
            core.keys.add(key)
    out.update(keys=core.keys.listing(), provider=core.providers.settings())
    return out


def log_entry(service, operation, method, path, now):
    return {
        "time": now,
        "monotonic": time.monotonic(),
        "service": service,
        "operation": operation,
        "method": method,
        "path": path,
        "status": None,
        "error": None,
        "fault": None,
        "access_key_id": None,
        "region": None,
    }
