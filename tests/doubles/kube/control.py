"""control.py: fault injection, the request log, and the /_ferry/ control endpoints
of the Kubernetes double.

Control endpoints need admin credentials (the admin token or the admin client
certificate), are never logged and never faulted. Bodies and answers are JSON; a
bad request gets 400 {"error": "BadRequest", "message": "..."}.

  GET  /_ferry/health       {"ok", "version", "controllers", "streams", "swagger",
                             "load_errors"}
  POST /_ferry/reset        default objects only; faults, request log, tokens and
                            config back to defaults; every watch ends; controllers
                            and streams reset (their reset() when they have one)
  GET|POST|DELETE /_ferry/faults
         POST one fault or {"faults": [...]}:
         {"verb": "list", "resource": "pods", "namespace": "ci", "name": "web",
          "kind": K, "count": 1, "skip": 0, ...}
         verb: get list watch create update patch delete deletecollection (connect
         subresources: exec/attach = create, log = get, proxy = the HTTP method's
         verb); resource: "pods", "deployments.apps", "pods/exec", "*" (omitted =
         any; "pods" matches the pods resource itself, not its subresources);
         count: matching requests that get it (-1 = until reset); skip: let that
         many matching requests through first. Kinds:
           throttle       429 TooManyRequests, Retry-After: retry_after (default 1)
           error          status (default 500), reason, message, retry_after?
           drop           close the connection without an answer
           slow           wait delay_ms (default 1000), then answer normally
           unauthorized   401 once (the credentials stay valid)
           expire_token   401, and the request's bearer token stays invalid
           expired        410 Expired: on a watch, an ERROR event on the 200
                          stream (mode "event", default; after "after" events) or a
                          plain HTTP 410 (mode "http"); on a list, HTTP 410 as for
                          an expired continue token
           end_watch      the watch stream ends cleanly after "after" events (0)
           apply_conflict an apply (or any PATCH) gets 409 Conflict with
                          FieldManagerConflict causes: manager (default
                          "other-manager"), fields (default [".spec.replicas"])
  GET|DELETE /_ferry/requests[?since=SEQ&verb=V&resource=R&namespace=N&watch=true]
         {"requests": [{"seq", "time", "method", "path", "query", "verb",
          "resource", "subresource", "namespace", "name", "watch", "status",
          "user", "fault", "user_agent", "content_type", "field_manager",
          "dry_run", "events"}]}   (events: for watches, the number sent)
  POST /_ferry/seed         objects created (or replaced) as given, status
                            included, namespaces created as needed: a JSON object,
                            a list, {"objects": [...]}, or YAML documents
                            (Content-Type: application/yaml)
  GET  /_ferry/objects?resource=pods[&namespace=ns]   the stored objects
  POST /_ferry/events       {"involved": {"resource", "namespace", "name"},
                             "reason", "message", "type"?}: record an Event
  GET|POST /_ferry/tokens   see auth.Auth.control
  GET|POST /_ferry/config   {"bookmark_interval": s, "namespace_delay": s,
                             "graceful_pods": bool, "history_size": n,
                             "aggregated_discovery": bool, "version": "v1.36.0",
                             "continue_ttl": s}
  POST /_ferry/compact      forget the watch history: older RVs now get 410
  POST /_ferry/controllers  JSON handed to controllers' configure()
  POST /_ferry/exec         JSON handed to streams.configure_exec()
  POST /_ferry/proxy        JSON handed to streams.configure_proxy()
"""

import json
import time
from urllib.parse import parse_qsl

import faults  # tests/doubles/faults.py
from store import ApiError

KINDS = ("throttle", "error", "drop", "slow", "unauthorized", "expire_token", "expired", "end_watch", "apply_conflict")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
MAX_REQUESTS = 50_000
MAX_FAULTS = 1_000
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class Fault:
    FIELDS = {"verb", "resource", "namespace", "name", "kind", "count", "skip", "status", "reason", "message", "retry_after", "delay_ms", "mode", "after", "manager", "fields"}

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(spec) - self.FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        self.verb = spec.get("verb")
        self.resource = spec.get("resource")
        self.namespace = spec.get("namespace")
        self.name = spec.get("name")
        self.kind = spec.get("kind")
        self.count = spec.get("count", 1)
        self.skip = spec.get("skip", 0)
        self.status = spec.get("status", 500)
        self.reason = spec.get("reason")
        self.message = spec.get("message")
        self.retry_after = spec.get("retry_after")
        self.delay_ms = spec.get("delay_ms", 1000)
        self.mode = spec.get("mode", "event")
        self.after = spec.get("after", 0)
        self.manager = spec.get("manager", "other-manager")
        self.fields = spec.get("fields", [".spec.replicas"])
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if self.verb is not None and self.verb not in VERBS:
            raise ValueError(f"verb must be one of {', '.join(VERBS)}")
        for name in ("resource", "namespace", "name"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not (self.count >= 1 or self.count == -1):
            raise ValueError("count must be a positive integer, or -1 for every request")
        if isinstance(self.skip, bool) or not isinstance(self.skip, int) or self.skip < 0:
            raise ValueError("skip must be a non-negative integer")
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError("status must be in 400..599")
        if self.retry_after is not None and (isinstance(self.retry_after, bool) or not isinstance(self.retry_after, int) or self.retry_after < 0):
            raise ValueError("retry_after must be a non-negative integer")
        if isinstance(self.delay_ms, bool) or not isinstance(self.delay_ms, int) or not 0 <= self.delay_ms <= 120_000:
            raise ValueError("delay_ms must be an integer in 0..120000")
        if self.mode not in ("event", "http"):
            raise ValueError('mode must be "event" or "http"')
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise ValueError("after must be a non-negative integer")
        if not isinstance(self.fields, list) or not all(isinstance(f, str) for f in self.fields):
            raise ValueError("fields must be a list of field paths")

    def matches(self, info):
        if self.verb is not None and self.verb != info.verb:
            return False
        if self.resource not in (None, "*"):
            full = f"{info.res}/{info.subresource}" if info.subresource else info.res
            if self.resource != full:
                return False
        if self.namespace is not None and self.namespace != info.namespace:
            return False
        if self.name is not None and self.name != info.name:
            return False
        return True

    def public(self):
        out = {"verb": self.verb, "resource": self.resource, "namespace": self.namespace, "name": self.name, "kind": self.kind, "count": self.count, "skip": self.skip}
        if self.kind == "error":
            out.update(status=self.status, reason=self.reason, message=self.message)
        if self.kind in ("throttle", "error"):
            out["retry_after"] = self.retry_after
        if self.kind == "slow":
            out["delay_ms"] = self.delay_ms
        if self.kind in ("expired", "end_watch"):
            out.update(mode=self.mode, after=self.after)
        if self.kind == "apply_conflict":
            out.update(manager=self.manager, fields=self.fields)
        return out

    def error(self):
        """The ApiError this fault answers with (kinds throttle, error, unauthorized,
        expire_token, expired)."""
        if self.kind == "throttle":
            retry = self.retry_after if self.retry_after is not None else 1
            return ApiError(
                429, "TooManyRequests", self.message or "Too many requests, please try again later.", {"retryAfterSeconds": retry}, [("Retry-After", str(retry))]
            )
        if self.kind in ("unauthorized", "expire_token"):
            return ApiError(401, "Unauthorized", "Unauthorized")
        if self.kind == "expired":
            return ApiError(410, "Expired", self.message or "too old resource version: 1 (2)", {})
        reason = self.reason or REASONS.get(self.status, "InternalError")
        message = self.message or ("Internal error occurred: injected fault" if self.status == 500 else f"injected fault ({self.status})")
        details = {}
        headers = []
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
            headers.append(("Retry-After", str(self.retry_after)))
        return ApiError(self.status, reason, message, details or None, headers)


class RequestLog(faults.Log):
    def __init__(self):
        super().__init__(MAX_REQUESTS)

    def query(self, filters):
        since = int(filters.get("since", "0")) if str(filters.get("since", "0")).isdigit() else 0
        watch = filters.get("watch")

        def keep(e):
            if e["seq"] <= since:
                return False
            if any(filters.get(k) not in (None, "") and str(e.get(k)) != filters[k] for k in ("verb", "resource", "namespace", "name", "method", "subresource")):
                return False
            if watch in ("true", "1") and not e.get("watch"):
                return False
            if watch in ("false", "0") and e.get("watch"):
                return False
            return True

        return [dict(e) for e in self.select(keep)]


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _need(method, *allowed):
    if method not in allowed:
        raise ControlError(405, f"use {' or '.join(allowed)}")


def parse_body(raw, content_type):
    if not raw:
        return None
    if "yaml" in (content_type or ""):
        try:
            import yaml
        except ImportError:
            raise ControlError(400, "YAML bodies need python3-yaml") from None
        try:
            docs = [d for d in yaml.safe_load_all(raw.decode("utf-8")) if d is not None]
        except Exception as e:
            raise ControlError(400, f"body is not YAML: {e}") from None
        return docs
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ControlError(400, f"body is not JSON: {e}") from None


def handle(core, method, path, raw_query, raw_body, content_type):
    """(status, answer dict) for one control request."""
    try:
        body = parse_body(raw_body, content_type)
        return 200, route(core, method, path, dict(parse_qsl(raw_query)), body)
    except ControlError as e:
        return e.status, {"error": "BadRequest" if e.status == 400 else "Error", "message": e.message}
    except ApiError as e:
        return e.status, {"error": e.reason, "message": e.message, "status": e.to_status()}
    except (ValueError, TypeError, KeyError) as e:
        return 400, {"error": "BadRequest", "message": str(e)}


def route(core, method, path, query, body):
    name = path[len("/_ferry/") :].strip("/")
    if name == "health":
        return core.health()
    if name == "reset":
        _need(method, "POST")
        core.reset()
        return {"ok": True}
    if name == "faults":
        _need(method, "GET", "POST", "DELETE")
        if method == "POST":
            specs = body.get("faults") if isinstance(body, dict) and "faults" in body else (body if isinstance(body, list) else [body])
            added = [Fault(s) for s in specs]  # all valid, or none added
            for f in added:
                core.faults.add(f)
        elif method == "DELETE":
            core.faults.clear()
        return {"faults": core.faults.listing()}
    if name == "requests":
        _need(method, "GET", "DELETE")
        if method == "DELETE":
            core.requests.clear()
            return {"ok": True}
        return {"requests": core.requests.query(query)}
    if name == "seed":
        _need(method, "POST")
        return {"objects": core.seed(body)}
    if name == "objects":
        _need(method, "GET")
        res = query.get("resource")
        if not res:
            raise ControlError(400, "give ?resource=pods (plural[.group])")
        return {"items": core.store.list(res, query.get("namespace") or None)}
    if name == "events":
        _need(method, "POST")
        if not isinstance(body, dict) or not isinstance(body.get("involved"), dict) or not body.get("reason"):
            raise ControlError(400, 'expected {"involved": {"resource", "namespace", "name"}, "reason", "message", "type"?}')
        inv = body["involved"]
        obj = core.store.get(inv.get("resource", ""), inv.get("namespace"), inv.get("name", ""))
        if obj is None:
            raise ControlError(404, f"no {inv.get('resource')} {inv.get('namespace')}/{inv.get('name')}")
        return {"event": core.store.add_event(obj, body["reason"], body.get("message", ""), body.get("type", "Normal"))}
    if name == "tokens":
        _need(method, "GET", "POST")
        return core.auth.control(method, body)
    if name == "config":
        _need(method, "GET", "POST")
        if method == "POST":
            if not isinstance(body, dict):
                raise ControlError(400, "expected a JSON object")
            core.configure(body)
        return core.config_view()
    if name == "compact":
        _need(method, "POST")
        core.store.compact()
        return {"ok": True, "resourceVersion": core.store.rv_now()}
    if name in ("controllers", "exec", "proxy"):
        _need(method, "POST")
        return core.delegate(name, body if body is not None else {})
    raise ControlError(404, f"no control endpoint {path}")


def log_entry(method, path, query):
    return {
        "time": time.time(),
        "monotonic": time.monotonic(),
        "method": method,
        "path": path,
        "query": query,
        "verb": None,
        "resource": None,
        "subresource": None,
        "namespace": None,
        "name": None,
        "watch": False,
        "status": None,
        "user": None,
        "fault": None,
        "user_agent": None,
        "content_type": None,
        "field_manager": None,
        "dry_run": False,
        "events": None,
    }
