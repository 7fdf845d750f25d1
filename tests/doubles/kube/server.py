#!/usr/bin/python3
"""server.py: Ferry's loopback Kubernetes API server (test double).

Standard library only (python3-yaml, when installed, for YAML bodies). One thread
per connection, HTTP/1.1 keep-alive, HTTPS with client-certificate and bearer-token
auth. Behaviour follows ref/notes/kubernetes.md; kubectl and python3-kubernetes
are checked against it by test_conformance.py.

Usage:
    server.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
              [--tls CERT KEY --client-ca CA] [--eks-verify URL] [--eks-cluster NAME]
              [--controllers-config FILE] [--swagger FILE] [--verbose]
              [--portworx-port 0] [--portworx-port-file PATH] [--portworx-secured]

Without --tls it serves plain HTTP, where kubectl sends no credentials at all, so
anonymous requests may do everything there; use TLS for anything auth-related.

Routing:
    /version /healthz /livez /readyz     anonymous allowed
    /api /apis /api/v1 /apis/{g}[/{v}]   discovery (discovery.py); aggregated v2
                                         when the Accept header asks for it
    /openapi/v3[/{gv}]                   OpenAPI v3 stub (openapi.py); /openapi/v2 404
    /api/v1/..., /apis/{g}/{v}/...       resources: get, list (limit/continue,
                                         selectors), watch, create, update (PUT),
                                         patch (json, merge, strategic, apply),
                                         delete, deletecollection; subresources
                                         status, scale, finalize; exec, attach, log
                                         and proxy are handed to streams.py
    /_ferry/...                          control (control.py), admin credentials only

Modules: store.py (objects, watches), resources.py (types), validation.py,
schema.py (swagger), patch.py, selectors.py, auth.py, control.py, discovery.py,
openapi.py; controllers.py and streams.py when present (another engineer's).
The Portworx double (../portworx/, when present) runs in this process on the same
store: a second listener (plain HTTP, --portworx-port, its port written to
--portworx-port-file), reset with /_ferry/reset; see ../portworx/README.md.
"""

import argparse
import base64
import copy
import importlib
import json
import os
import select
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
HERE = os.path.dirname(os.path.abspath(__file__))
# This folder's modules, then serving.py from the folder above.
sys.path[:0] = [p for p in (HERE, os.path.dirname(HERE)) if p not in sys.path]

import auth as auth_module  # noqa: E402
import control  # noqa: E402
import faults  # noqa: E402
import discovery  # noqa: E402
import openapi  # noqa: E402
import patch as patch_module  # noqa: E402
import schema as schema_module  # noqa: E402
import selector as sel  # noqa: E402
import serving  # noqa: E402
import tables  # noqa: E402
import validation  # noqa: E402
from store import ApiError, Store, bad_request, method_not_allowed, not_found, unknown_resource  # noqa: E402

try:
    import yaml
except ImportError:  # YAML bodies then get 415
    yaml = None

MAX_BODY = 64 * 1024 * 1024
MAX_CONTROL_BODY = 512 * 1024 * 1024
IDLE_TIMEOUT = 300.0
DEFAULT_WATCH_TIMEOUT = 1800
MAX_SNAPSHOTS = 200
TRUE = ("1", "t", "T", "true", "True", "TRUE")
FLOWSCHEMA_UID = str(uuid.uuid5(uuid.NAMESPACE_URL, "ferry-flowschema"))
PRIORITY_UID = str(uuid.uuid5(uuid.NAMESPACE_URL, "ferry-prioritylevel"))
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
DEFAULT_CONFIG = {
    "bookmark_interval": 2.0,
    "namespace_delay": 0.3,
    "graceful_pods": False,
    "history_size": 10_000,
    "aggregated_discovery": True,
    "watch_list": True,
    "version": "v1.36.0",
    "continue_ttl": 300.0,
}
OPTIONAL_MODULES = ("controllers", "streams")
NOT_FOUND_MESSAGE = "the server could not find the requested resource"


def truthy(value):
    return value in TRUE


class Drop(Exception):
    """Close the connection without an answer (the drop fault)."""


class RequestInfo:
    """What a request addresses, filled by route()."""

    def __init__(self, method, path, raw_query):
        self.method = method
        self.path = path
        self.raw_query = raw_query
        self.query = dict(parse_qsl(raw_query, keep_blank_values=True))
        self.multi = parse_qs(raw_query, keep_blank_values=True)
        self.kind = "nonresource"  # or "resource"
        self.rt = None
        self.res = None
        self.namespace = None
        self.name = None
        self.subresource = None
        self.subpath = ""  # proxy: everything after /proxy
        self.verb = "get"
        self.watch_path = False  # the legacy /watch/ prefix


# -- the core: state shared by every connection ------------------------------------


class Core:
    def __init__(self, swagger=None, eks_verify=None, eks_cluster="ferry-test", controllers_config=None, tls=True, portworx=None):
        self.store = Store()
        self.schemas = schema_module.Schemas(swagger)
        self.auth = auth_module.Auth(eks_verify, eks_cluster, anonymous_admin=not tls)
        self.faults = faults.Faults(control.MAX_FAULTS)  # take(info)
        self.requests = control.RequestLog()
        self.config = dict(DEFAULT_CONFIG)
        self.snapshots = {}  # continue-token id -> (created, items, rv)
        self.snap_lock = threading.Lock()
        self.load_errors = {}
        self.modules = {}
        self.controllers = None
        self.controllers_config = controllers_config or {}
        for name in OPTIONAL_MODULES:
            self._load(name)
        self._start_controllers()
        self.portworx = None
        self._start_portworx(portworx or {})

    def _load(self, name):
        if not os.path.exists(os.path.join(HERE, f"{name}.py")):
            return
        try:
            self.modules[name] = importlib.import_module(name)
        except Exception as e:
            self.load_errors[name] = f"{type(e).__name__}: {e}"
            sys.stderr.write(f"kube: cannot load {name}.py:\n")
            traceback.print_exc()

    def _start_controllers(self):
        mod = self.modules.get("controllers")
        if mod is None:
            return
        try:
            self.controllers = mod.Controllers(self.store, copy.deepcopy(self.controllers_config))
            self.controllers.start()
        except Exception as e:
            self.controllers = None
            self.load_errors["controllers"] = f"{type(e).__name__}: {e}"
            sys.stderr.write("kube: controllers failed to start:\n")
            traceback.print_exc()

    def _start_portworx(self, options):
        """The Portworx double (../portworx/), when present: Portworx(store, ...)."""
        if not os.path.exists(os.path.join(os.path.dirname(HERE), "portworx", "__init__.py")):
            return
        try:
            mod = importlib.import_module("portworx")
            self.portworx = mod.Portworx(self.store, controllers=self.modules.get("controllers"), streams=self.modules.get("streams"), **options)
        except Exception as e:
            self.load_errors["portworx"] = f"{type(e).__name__}: {e}"
            sys.stderr.write("kube: the Portworx double failed to start:\n")
            traceback.print_exc()

    def stop(self):
        if self.portworx is not None:
            self.portworx.stop()
        if self.controllers is not None:
            try:
                self.controllers.stop()
            except Exception:
                traceback.print_exc()

    def health(self):
        return {
            "ok": True,
            "version": self.config["version"],
            "controllers": self.controllers is not None,
            "streams": "streams" in self.modules,
            "portworx": self.portworx.url if self.portworx is not None else None,
            "swagger": self.schemas.loaded,
            "load_errors": self.load_errors,
            "resourceVersion": self.store.rv_now(),
        }

    def reset(self):
        self.faults.clear()
        self.requests.clear()
        self.auth.reset()
        with self.snap_lock:
            self.snapshots.clear()
        self.config = dict(DEFAULT_CONFIG)
        self.store.reset()
        self.store.history_size = self.config["history_size"]
        if self.controllers is not None:
            if hasattr(self.controllers, "reset"):
                self.controllers.reset()
            else:
                self.controllers.stop()
                self._start_controllers()
        streams = self.modules.get("streams")
        if streams is not None and hasattr(streams, "reset"):
            streams.reset()
        if self.portworx is not None:
            self.portworx.reset()

    def configure(self, body):
        unknown = set(body) - set(DEFAULT_CONFIG)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        for k, v in body.items():
            want = type(DEFAULT_CONFIG[k])
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, want) or (want is not bool and isinstance(v, bool)):
                raise ValueError(f"{k} must be a {want.__name__}")
            self.config[k] = v
        with self.store.lock:
            self.store.namespace_delay = self.config["namespace_delay"]
            self.store.graceful_pods = self.config["graceful_pods"]
            self.store.history_size = self.config["history_size"]

    def config_view(self):
        return {"config": dict(self.config)}

    def delegate(self, name, body):
        if name == "controllers":
            target = self.controllers if self.controllers is not None and hasattr(self.controllers, "configure") else self.modules.get("controllers")
            fn = getattr(target, "configure", None) if target is not None else None
        else:
            fn = getattr(self.modules.get("streams"), f"configure_{name}", None)
        if fn is None:
            raise control.ControlError(501, f"{'controllers.py' if name == 'controllers' else 'streams.py'} is not loaded (or has no configure)")
        out = fn(body)
        return out if isinstance(out, dict) else {"ok": True}

    def seed(self, body):
        if isinstance(body, dict) and isinstance(body.get("objects"), list):
            objs = body["objects"]
        elif isinstance(body, list):
            objs = body
        elif isinstance(body, dict):
            objs = [body]
        else:
            raise ValueError("expected an object, a list, or {\"objects\": [...]}")
        flat = []
        for o in objs:
            if isinstance(o, dict) and isinstance(o.get("items"), list) and str(o.get("kind", "")).endswith("List"):
                flat += o["items"]
            elif isinstance(o, dict):
                flat.append(o)
            else:
                raise ValueError("every object must be a JSON object")
        rank = lambda o: 0 if o.get("kind") == "Namespace" else 1 if o.get("kind") == "CustomResourceDefinition" else 2  # noqa: E731
        out = []
        with self.store.lock:
            for o in sorted(flat, key=rank):
                rt = self.store.types.by_kind(o.get("apiVersion", ""), o.get("kind", ""))
                ns = (o.get("metadata") or {}).get("namespace")
                if rt is not None and rt.namespaced and ns and self.store.get("namespaces", None, ns) is None:
                    self.store.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                made = self.store.seed(o)
                md = made["metadata"]
                out.append({"apiVersion": made["apiVersion"], "kind": made["kind"], "namespace": md.get("namespace"), "name": md["name"], "resourceVersion": md["resourceVersion"]})
        return out

    # -- list snapshots for continue tokens -------------------------------------------

    def snapshot_put(self, items, rv):
        sid = uuid.uuid4().hex
        with self.snap_lock:
            if len(self.snapshots) >= MAX_SNAPSHOTS:
                oldest = min(self.snapshots, key=lambda k: self.snapshots[k][0])
                del self.snapshots[oldest]
            self.snapshots[sid] = (time.monotonic(), items, rv)
        return sid

    def snapshot_get(self, sid):
        with self.snap_lock:
            hit = self.snapshots.get(sid)
            if hit is None:
                return None
            if time.monotonic() - hit[0] > self.config["continue_ttl"]:
                del self.snapshots[sid]
                return None
            return hit


# -- routing -----------------------------------------------------------------------


def route(core, method, target):
    """A RequestInfo for an API path; raises ApiError 404 for unknown resources."""
    split = urlsplit(target)
    raw_path = split.path
    info = RequestInfo(method, raw_path, split.query)
    raw = raw_path.split("/")[1:]
    segs = [unquote(s) for s in raw]
    if not segs or segs[0] not in ("api", "apis"):
        return info
    if segs[0] == "api":
        if len(segs) < 2 or segs[1] == "":
            return info
        group, version, rest, raw_rest = "", segs[1], segs[2:], raw[2:]
    else:
        if len(segs) < 3 or segs[2] == "":
            return info
        group, version, rest, raw_rest = segs[1], segs[2], segs[3:], raw[3:]
    if rest and rest[-1] == "" and len(rest) == 1:
        rest, raw_rest = [], []
    if not rest:
        return info  # a discovery document
    info.kind = "resource"
    if rest[0] == "watch":
        info.watch_path = True
        rest, raw_rest = rest[1:], raw_rest[1:]
    namespace = None
    if rest and rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace = rest[1]
        rest, raw_rest = rest[2:], raw_rest[2:]
    if not rest:
        raise unknown_resource()
    with core.store.lock:
        rt = core.store.types.lookup(group, version, rest[0])
    if rt is None:
        raise unknown_resource()
    if (namespace is not None) != rt.namespaced and not (rt.namespaced and len(rest) == 1):
        raise unknown_resource()
    info.rt, info.res, info.namespace = rt, rt.res, namespace
    if len(rest) >= 2:
        info.name = rest[1]
        if not info.name:
            raise unknown_resource()
    if len(rest) >= 3:
        info.subresource = rest[2]
        if info.subresource not in rt.subresources:
            raise unknown_resource()
        if info.subresource == "proxy":
            info.subpath = "/" + "/".join(raw_rest[3:])
        elif len(rest) > 3:
            raise unknown_resource()
    info.verb = _verb(info, method)
    return info


def _verb(info, method):
    sub = info.subresource
    if sub in ("exec", "attach"):
        return "create"
    if sub == "log":
        return "get"
    if sub == "proxy":
        return {"GET": "get", "HEAD": "get", "OPTIONS": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "get")
    if info.name is None:
        if method == "GET":
            return "watch" if (info.watch_path or truthy(info.query.get("watch"))) else "list"
        return {"POST": "create", "DELETE": "deletecollection"}.get(method, method.lower())
    if method == "GET":
        return "watch" if info.watch_path else "get"
    return {"PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}.get(method, method.lower())


# -- the request handler -----------------------------------------------------------


class Handler(serving.Handler):
    server_version = "ferry-kube/1"
    timeout = IDLE_TIMEOUT

    def send_response(self, code, message=None):
        self.ferry_status = code  # what streams.py answered, for the request log
        super().send_response(code, message)

    # -- plumbing ----------------------------------------------------------------------

    def _peercert(self):
        try:
            return self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        except (ValueError, OSError):
            return None

    def _common_headers(self):
        """The headers every answer carries after its Content-Type."""
        return [
            ("Audit-Id", str(uuid.uuid4())),
            ("Cache-Control", "no-cache, private"),
            ("X-Kubernetes-Pf-Flowschema-Uid", FLOWSCHEMA_UID),
            ("X-Kubernetes-Pf-Prioritylevel-Uid", PRIORITY_UID),
        ]

    def send_body(self, status, body, content_type="application/json", headers=()):
        self.send_whole(status, [("Content-Type", content_type), *self._common_headers(), *headers], body)

    def send_json(self, status, obj, headers=()):
        if self._yaml_reply and yaml is not None:
            return self.send_body(status, yaml.safe_dump(obj, sort_keys=False).encode(), "application/yaml", headers)
        return self.send_body(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json", headers)

    def send_status(self, err):
        self.entry_status(err.status)
        self.send_json(err.status, err.to_status(), err.headers)

    def entry_status(self, status):
        if self.entry is not None:
            self.entry["status"] = status

    # -- dispatch ----------------------------------------------------------------------

    def _dispatch(self):
        self.entry = None
        self.ferry_status = None
        self._yaml_reply = False
        self.warnings = []
        core = self.server.core
        path = self.path.split("?", 1)[0]
        control_path = path.startswith("/_ferry/")
        try:
            self.request_body = self.read_body(MAX_CONTROL_BODY if control_path else MAX_BODY)
        except serving.HttpError as e:
            self.close_connection = True
            self.send_json(e.status, ApiError(e.status, "BadRequest" if e.status == 400 else "RequestEntityTooLarge", str(e)).to_status())
            return
        except OSError:
            self.close_connection = True
            return
        try:
            if control_path:
                self._control(core)
            else:
                self._api(core)
        except Drop:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception:
            sys.stderr.write(f"kube: error handling {self.command} {self.path}\n")
            traceback.print_exc()
            self.close_connection = True
            try:
                self.send_status(ApiError(500, "InternalError", "Internal error occurred: Ferry's Kubernetes double failed; see its log"))
            except OSError:
                pass
        finally:
            if self.entry is not None and self.entry["status"] is None:
                self.entry["status"] = self.ferry_status

    def _control(self, core):
        try:
            user = core.auth.authenticate(self.headers, self._peercert())
        except ApiError as e:
            self.send_json(e.status, e.to_status())
            return
        admin = (user.anonymous and core.auth.anonymous_admin) or (not user.anonymous and not user.forbid and ("system:masters" in user.groups or user.via == "cert"))
        if not admin:
            self.send_json(403, {"error": "Forbidden", "message": "control endpoints need the admin token or the admin client certificate"})
            return
        path, _, query = self.path.partition("?")
        status, answer = control.handle(core, self.command, path, query, self.request_body, self.headers.get("Content-Type"))
        self.send_body(status, json.dumps(answer, separators=(",", ":")).encode())

    def _api(self, core):
        method = self.command
        split = urlsplit(self.path)
        path = split.path
        entry = self.entry = control.log_entry(method, path, split.query)
        entry["user_agent"] = self.headers.get("User-Agent")
        entry["content_type"] = self.headers.get("Content-Type")
        core.requests.add(entry)  # logged as it starts; status filled in when known
        self._yaml_reply = _wants_yaml(self.headers.get("Accept"))
        try:
            user = core.auth.authenticate(self.headers, self._peercert())
        except ApiError as e:
            self.send_status(e)
            return
        entry["user"] = user.name
        try:
            info = route(core, method, self.path)
        except ApiError as e:
            if user.anonymous:  # anonymous users learn nothing about what exists
                e = ApiError(403, "Forbidden", f'forbidden: User "system:anonymous" cannot {method.lower()} path "{path}"', {})
            self.send_status(e)
            return
        entry.update(verb=info.verb if info.kind == "resource" else method.lower(), resource=info.res, subresource=info.subresource, namespace=info.namespace, name=info.name)
        entry["watch"] = info.kind == "resource" and info.verb == "watch"
        entry["field_manager"] = info.query.get("fieldManager")
        entry["dry_run"] = info.query.get("dryRun") == "All"
        try:
            if info.kind == "resource" and not _accepts_json(self.headers.get("Accept")):
                raise ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf", {})
            fault = core.faults.take(info) if info.kind == "resource" else None
            if fault is not None:
                entry["fault"] = fault.kind
                fault = self._apply_fault(core, fault, info)
            core.auth.authorize(user, info.verb, info.res, info.subresource, info.namespace, info.name, path)
            if info.kind == "nonresource":
                self._nonresource(core, path)
                return
            self.user = user
            self._resource(core, info, fault)
        except ApiError as e:
            self.send_status(e)

    def _apply_fault(self, core, fault, info):
        """Act on a fault; returns the fault when the handler must act (watch and
        apply kinds), else None after answering or raising."""
        kind = fault.kind
        if kind == "drop":
            raise Drop()
        if kind == "slow":
            time.sleep(fault.delay_ms / 1000)
            return None
        if kind == "expire_token":
            scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() == "bearer":
                core.auth.expire(value.strip())
            raise fault.error()
        if kind in ("end_watch", "apply_conflict"):
            return fault
        if kind == "expired":
            if info.verb == "watch" and fault.mode == "event":
                return fault
            raise fault.error()
        raise fault.error()

    def _nonresource(self, core, path):
        if self.command not in ("GET", "HEAD"):
            raise method_not_allowed(self.command, path)
        store = core.store
        p = path.rstrip("/") or "/"
        if p == "/version":
            return self.send_json(200, _version(core.config["version"]))
        if p in ("/healthz", "/livez", "/readyz"):
            return self.send_body(200, b"ok", "text/plain; charset=utf-8")
        aggregated = core.config["aggregated_discovery"] and discovery.wants_aggregated(self.headers.get("Accept"))
        with store.lock:
            if p == "/api":
                if aggregated:
                    body = json.dumps(discovery.aggregated(store.types, core=True), separators=(",", ":")).encode()
                    return self.send_body(200, body, discovery.AGGREGATED_TYPE)
                return self.send_json(200, discovery.api_versions())
            if p == "/apis":
                if aggregated:
                    body = json.dumps(discovery.aggregated(store.types, core=False), separators=(",", ":")).encode()
                    return self.send_body(200, body, discovery.AGGREGATED_TYPE)
                return self.send_json(200, discovery.api_group_list(store.types))
            segs = p.split("/")[1:]
            if segs[0] == "api" and len(segs) == 2:
                doc = discovery.api_resource_list(store.types, "", segs[1])
            elif segs[0] == "apis" and len(segs) == 2:
                doc = discovery.api_group(store.types, segs[1])
            elif segs[0] == "apis" and len(segs) == 3:
                doc = discovery.api_resource_list(store.types, segs[1], segs[2])
            elif p == "/openapi/v3" or p.startswith("/openapi/v3/"):
                index, docs = openapi.index(store.types, core.config["version"])
                if p == "/openapi/v3":
                    return self.send_json(200, index)
                hit = docs.get(p[len("/openapi/v3/") :])
                if hit is None:
                    raise ApiError(404, "NotFound", NOT_FOUND_MESSAGE, {})
                return self.send_body(200, hit[1], "application/json")
            else:
                doc = None
        if doc is None:
            if segs and segs[0] in ("api", "apis"):
                raise ApiError(404, "NotFound", NOT_FOUND_MESSAGE, {})
            return self.send_body(404, b"404 page not found\n", "text/plain; charset=utf-8")
        return self.send_json(200, doc)

    # -- resources ---------------------------------------------------------------------

    def _resource(self, core, info, fault):
        sub = info.subresource
        if sub in ("exec", "attach", "log", "proxy"):
            return self._stream(core, info)
        verb = info.verb
        if sub == "scale":
            return self._scale(core, info)
        if verb == "get":
            return self._get(core, info)
        if verb == "list":
            return self._list(core, info, fault)
        if verb == "watch":
            return self._watch(core, info, fault)
        if verb == "create" and sub is None:
            return self._create(core, info)
        if verb == "update":
            return self._update(core, info)
        if verb == "patch":
            return self._patch(core, info, fault)
        if verb == "delete" and sub is None:
            return self._delete(core, info)
        if verb == "deletecollection":
            return self._delete_collection(core, info)
        raise method_not_allowed(self.command if verb not in ("create", "delete") else verb, info.res)

    def _out(self, info, obj):
        """The object as this request's group version presents it."""
        if obj is not None and obj.get("apiVersion") != info.rt.api_version:
            obj = dict(obj, apiVersion=info.rt.api_version)
        return obj

    def _get(self, core, info):
        if info.subresource == "finalize":
            raise method_not_allowed("GET", info.res)
        obj = core.store.get(info.res, info.namespace, info.name)
        if obj is None:
            raise not_found(info.res, info.name)
        if tables.wants_table(self.headers.get("Accept")) and info.subresource is None:
            return self.send_json(200, tables.table(info.rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")}, info.query.get("includeObject", "Metadata")))
        self.send_json(200, self._out(info, obj))

    # list --------------------------------------------------------------------------

    def _selectors(self, info):
        try:
            labels = sel.parse_labels(info.query.get("labelSelector"))
        except ValueError as e:
            raise bad_request(str(e)) from None
        try:
            fields = sel.parse_fields(info.query.get("fieldSelector"))
        except ValueError as e:
            raise bad_request(str(e)) from None
        allowed = ("metadata.name", "metadata.namespace") + tuple(info.rt.fields)
        for f in fields.fields():
            if f not in allowed:
                if info.rt.crd:
                    known = ", ".join(f'"{a}"' for a in allowed)
                    raise bad_request(f'"{f}" is not a known field selector: only {known}')
                raise bad_request(f"field label not supported: {f}")
        return labels, fields

    def _list(self, core, info, fault):
        if info.subresource is not None:
            raise method_not_allowed("list", info.res)
        q = info.query
        labels, fields = self._selectors(info)
        limit = q.get("limit") or "0"
        if not limit.lstrip("-").isdigit():
            raise bad_request(f'limit: Invalid value: "{limit}": must be an integer')
        limit = max(0, int(limit))
        token = q.get("continue")
        if token:
            try:
                raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                sid, offset = raw["id"], int(raw["o"])
            except (ValueError, KeyError, TypeError):
                raise bad_request(f"continue key is not valid: {token}") from None
            hit = core.snapshot_get(sid)
            if hit is None:
                raise ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    {},
                )
            items, rv = hit[1], hit[2]
        else:
            rv_param = q.get("resourceVersion")
            with core.store.lock:
                current = int(core.store.rv_now())
                if rv_param not in (None, "", "0"):
                    try:
                        n = int(rv_param)
                    except ValueError:
                        raise bad_request(f'resourceVersion: Invalid value: "{rv_param}": must be an unsigned integer') from None
                    if n > current:
                        raise ApiError(
                            504, "Timeout", f"Too large resource version: {n}, current: {current}", {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}
                        )
                    if q.get("resourceVersionMatch") == "Exact" and n != current:
                        raise ApiError(410, "Expired", f"too old resource version: {n} ({current})", {})
                items, rv = core.store.list_rv(info.res, info.namespace, labels, fields)
            sid, offset = None, 0
        page = items[offset : offset + limit] if limit else items[offset:]
        meta = {"resourceVersion": rv}
        rest = len(items) - offset - len(page)
        if limit and rest > 0:
            if sid is None:
                sid = core.snapshot_put(items, rv)
            meta["continue"] = base64.urlsafe_b64encode(json.dumps({"id": sid, "o": offset + len(page)}).encode()).decode().rstrip("=")
            if labels.empty and fields.empty:
                meta["remainingItemCount"] = rest
        if tables.wants_table(self.headers.get("Accept")):
            return self.send_json(200, tables.table(info.rt, page, meta, info.query.get("includeObject", "Metadata")))
        strip = not info.rt.crd
        out_items = []
        for o in page:
            if strip:
                o = {k: v for k, v in o.items() if k not in ("apiVersion", "kind")}
            else:
                o = self._out(info, o)
            out_items.append(o)
        self.send_json(200, {"kind": info.rt.list_kind, "apiVersion": info.rt.api_version, "metadata": meta, "items": out_items})

    # watch -------------------------------------------------------------------------

    def _watch(self, core, info, fault):
        q = info.query
        labels, fields = self._selectors(info)
        if info.name:  # /watch/namespaces/x/pods/NAME
            fields = sel.FieldSelector(fields.requirements + [("metadata.name", "=", info.name)])
        initial = truthy(q.get("sendInitialEvents"))
        if initial:
            if not core.config["watch_list"]:
                raise ApiError(422, "Invalid", "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled", {})
            if q.get("resourceVersionMatch") != "NotOlderThan" or not truthy(q.get("allowWatchBookmarks")):
                raise ApiError(
                    422,
                    "Invalid",
                    'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan',
                    {},
                )
        bookmarks = truthy(q.get("allowWatchBookmarks"))
        as_table = tables.wants_table(self.headers.get("Accept"))
        try:
            timeout = int(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise bad_request(f'timeoutSeconds: Invalid value: "{q.get("timeoutSeconds")}"') from None
        timeout = max(0, timeout) or DEFAULT_WATCH_TIMEOUT
        error_event = None
        watcher = None
        try:
            watcher, events, start_rv = core.store.watch(info.rt, info.namespace, labels, fields, q.get("resourceVersion"), initial)
        except ApiError as e:
            if e.status != 410:
                raise
            error_event = e  # stale RV: accepted, then one ERROR event (watch cache behaviour)
            events, start_rv = [], core.store.rv_now()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            for name, value in self._common_headers():
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            self.entry_status(200)
            sent = 0
            if error_event is not None:
                self._chunk({"type": "ERROR", "object": error_event.to_status()})
                return self._end_chunks()
            after = fault.after if fault is not None else None
            deadline = time.monotonic() + timeout
            last_bookmark = time.monotonic()
            if initial:
                events = list(events) + [("BOOKMARK_INITIAL", None)]
            pending = list(events)
            while True:
                if after is not None and sent >= after:
                    if fault.kind == "expired":
                        rv = q.get("resourceVersion") or start_rv
                        self._chunk({"type": "ERROR", "object": ApiError(410, "Expired", fault.message or f"too old resource version: {rv} ({int(core.store.rv_now()) + 1})").to_status()})
                    break
                if pending:
                    etype, obj = pending.pop(0)
                else:
                    now = time.monotonic()
                    if now >= deadline:
                        if bookmarks:
                            self._bookmark(info, core.store.rv_now())
                        break
                    if self._client_gone():
                        break
                    wait = min(0.25, deadline - now)
                    if bookmarks:
                        wait = min(wait, max(0.01, last_bookmark + core.config["bookmark_interval"] - now))
                    got = watcher.next(wait)
                    if got is None:
                        if bookmarks and time.monotonic() - last_bookmark >= core.config["bookmark_interval"]:
                            self._bookmark(info, core.store.rv_now())
                            last_bookmark = time.monotonic()
                        continue
                    etype, obj = got
                    if etype == "CLOSED":
                        break
                if etype == "BOOKMARK_INITIAL":
                    self._bookmark(info, start_rv, initial_end=True)
                    last_bookmark = time.monotonic()
                    continue
                if as_table:
                    self._chunk({"type": etype, "object": tables.table(info.rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")}, info.query.get("includeObject", "Metadata"))})
                else:
                    self._chunk({"type": etype, "object": self._out(info, obj)})
                sent += 1
                if self.entry is not None:
                    self.entry["events"] = sent
            self._end_chunks()
        finally:
            if watcher is not None:
                core.store.unwatch(watcher)

    def _bookmark(self, info, rv, initial_end=False):
        md = {"resourceVersion": rv}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        self._chunk({"type": "BOOKMARK", "object": {"kind": info.rt.kind, "apiVersion": info.rt.api_version, "metadata": md}})

    def _chunk(self, event):
        data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _client_gone(self):
        """True once the client closed (or wrote to) a watch connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        self.close_connection = True
        return True

    # bodies ------------------------------------------------------------------------

    def _content_type(self):
        return (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()

    def _decode(self, allowed):
        """The request body as a dict; raises 415/400 like the API server."""
        ctype = self._content_type()
        if ctype not in allowed:
            kinds = ", ".join(allowed)
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: {kinds}", {})
        raw = self.request_body
        dups = []
        try:
            if ctype in ("application/yaml", "application/apply-patch+yaml"):
                if yaml is None:
                    raise ApiError(415, "UnsupportedMediaType", "YAML bodies need python3-yaml in the double", {})
                text = raw.decode("utf-8")
                try:
                    body = json.loads(text, object_pairs_hook=_dup_hook(dups))
                except ValueError:
                    body = yaml.safe_load(text)
            else:
                body = json.loads(raw.decode("utf-8"), object_pairs_hook=_dup_hook(dups))
        except ApiError:
            raise
        except (ValueError, UnicodeDecodeError) as e:
            if ctype in ("application/json", "application/yaml"):
                raise bad_request(f"couldn't get version/kind; json parse error: {e}") from None
            raise bad_request(f"error decoding patch: {e}") from None
        except Exception as e:  # yaml errors
            raise bad_request(f"error converting YAML to JSON: {e}") from None
        self._duplicates = dups
        return body

    def _field_validation(self, info):
        v = info.query.get("fieldValidation") or "Warn"
        if v not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f'fieldValidation: Invalid value: "{v}": fieldValidation must be one of Ignore, Warn, Strict')
        return v

    def _validate_fields(self, core, info, obj, mode):
        """Prune unknown fields of built-in types; Strict rejects them (400), Warn
        reports them in Warning headers."""
        unknown = core.schemas.prune(info.rt, obj) if not info.rt.crd else []
        problems = [f'unknown field "{u}"' for u in unknown] + [f'duplicate field "{d}"' for d in getattr(self, "_duplicates", [])]
        if not problems or mode == "Ignore":
            return
        if mode == "Strict":
            raise bad_request("strict decoding error: " + ", ".join(problems))
        self.warnings += problems

    def _warning_headers(self):
        return [("Warning", '299 - "' + w.replace('"', '\\"') + '"') for w in self.warnings]

    def _dry_run(self, info):
        v = info.multi.get("dryRun") or []
        for d in v:
            if d != "All":
                raise bad_request(f'dryRun: Unsupported value: "{d}": supported values: "All"')
        return bool(v)

    def _manager(self, info, required=False):
        m = info.query.get("fieldManager")
        if m is not None and len(m) > 128:
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes', {})
        if m:
            return m
        if required:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]},
            )
        agent = (self.headers.get("User-Agent") or "unknown").split("/")[0].strip()
        return agent or "unknown"

    def _check_kind(self, info, obj):
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        rt = info.rt
        if kind and kind != rt.kind:
            raise bad_request(f'{kind} in version "{(av or "").rpartition("/")[2]}" cannot be handled as a {rt.kind}: no kind "{kind}" is registered for version "{av}" in scheme')
        if av and av != rt.api_version:
            raise bad_request(f"the API version in the data ({av}) does not match the expected API version ({rt.api_version})")
        md = obj.get("metadata")
        if md is not None and not isinstance(md, dict):
            raise bad_request("metadata must be an object")

    def _check_namespace(self, info, obj):
        ns = (obj.get("metadata") or {}).get("namespace")
        if info.rt.namespaced and ns and info.namespace and ns != info.namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")

    # create ------------------------------------------------------------------------

    def _create(self, core, info):
        if info.name is not None:
            raise method_not_allowed("POST", info.res)
        if info.rt.namespaced and info.namespace is None:
            raise method_not_allowed("create", info.res)
        obj = self._decode(("application/json", "application/yaml"))
        self._check_kind(info, obj)
        self._check_namespace(info, obj)
        mode = self._field_validation(info)
        dry = self._dry_run(info)
        manager = self._manager(info)
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = info.rt.api_version, info.rt.kind
        self._validate_fields(core, info, obj, mode)
        if info.rt.has_status:
            obj.pop("status", None)  # the status subresource is the only way to set it
        with core.store.lock:
            prepared = copy.deepcopy(obj)
            if not info.rt.crd:
                validation.default(info.rt, prepared, core.store, create=False)
            prepared.setdefault("metadata", {}).pop("managedFields", None)
            patch_module.record_update(None, prepared, manager, info.rt.api_version, core.schemas.root(info.rt))
            created = core.store.create(info.res, info.namespace, prepared, dry_run=dry)
        self.send_json(201, self._out(info, created), self._warning_headers())

    # update ------------------------------------------------------------------------

    def _update(self, core, info):
        sub = info.subresource
        if sub not in (None, "status", "finalize"):
            raise method_not_allowed("PUT", info.res)
        obj = self._decode(("application/json", "application/yaml"))
        self._check_kind(info, obj)
        self._check_namespace(info, obj)
        md = obj.get("metadata") or {}
        if md.get("name") and md["name"] != info.name:
            raise bad_request(f"the name of the object ({md['name']}) does not match the name on the URL ({info.name})")
        mode = self._field_validation(info)
        dry = self._dry_run(info)
        manager = self._manager(info)
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["name"] = info.name
        self._validate_fields(core, info, obj, mode)
        with core.store.lock:
            cur = core.store.get(info.res, info.namespace, info.name)
            if cur is None:
                raise not_found(info.res, info.name)
            if info.rt.crd and not obj["metadata"].get("resourceVersion") and sub is None:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{info.rt.kind}.{info.rt.group} "{info.name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
                    {"name": info.name, "group": info.rt.group, "kind": info.rt.kind, "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: 0x0: must be specified for an update", "field": "metadata.resourceVersion"}]},
                )
            if sub is None and info.rt.has_status:
                if "status" in cur:
                    obj["status"] = cur["status"]
                else:
                    obj.pop("status", None)
            new = self._merge_subresource(cur, obj, sub)
            if not info.rt.crd and sub is None:
                validation.default(info.rt, new, core.store, create=False)
            patch_module.record_update(cur, new, manager, info.rt.api_version, core.schemas.root(info.rt), sub)
            updated = core.store.update(info.res, info.namespace, new, "status" if sub == "status" else ("finalize" if sub == "finalize" else None), dry_run=dry)
        self.send_json(200, self._out(info, updated), self._warning_headers())

    @staticmethod
    def _merge_subresource(cur, obj, sub):
        """The full object a write to `sub` produces (status: cur with obj's status)."""
        if sub == "status":
            new = copy.deepcopy(cur)
            new["status"] = copy.deepcopy(obj.get("status"))
            if new["status"] is None:
                new.pop("status")
            new["metadata"]["resourceVersion"] = (obj.get("metadata") or {}).get("resourceVersion") or cur["metadata"]["resourceVersion"]
            return new
        if sub == "finalize":
            new = copy.deepcopy(cur)
            new.setdefault("spec", {})["finalizers"] = list(((obj.get("spec") or {}).get("finalizers")) or [])
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                new["metadata"]["resourceVersion"] = rv
            return new
        return obj

    # patch -------------------------------------------------------------------------

    def _patch(self, core, info, fault):
        sub = info.subresource
        if sub not in (None, "status"):
            raise method_not_allowed("PATCH", info.res)
        ctype = self._content_type()
        kind = PATCH_TYPES.get(ctype)
        allowed = [t for t, k in PATCH_TYPES.items() if not (info.rt.crd and k == "strategic")]
        if kind is None or (info.rt.crd and kind == "strategic"):
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: {', '.join(allowed)}", {})
        body = self._decode(tuple(PATCH_TYPES))
        force = info.query.get("force")
        if force is not None and kind != "apply":
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch',
                {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch", "field": "force"}]},
            )
        manager = self._manager(info, required=(kind == "apply"))
        mode = self._field_validation(info)
        dry = self._dry_run(info)
        cursor = core.schemas.root(info.rt)
        if fault is not None and fault.kind == "apply_conflict":
            conflicts = [(fault.manager, info.rt.api_version, tuple("f:" + p for p in f.strip(".").split("."))) for f in fault.fields]
            raise patch_module.conflict_error(info.res, info.name, conflicts)
        with core.store.lock:
            cur = core.store.get(info.res, info.namespace, info.name)
            if kind == "apply":
                if not isinstance(body, dict):
                    raise bad_request("apply patch must be a YAML or JSON object")
                self._check_kind(info, body)
                if not body.get("apiVersion") or not body.get("kind"):
                    raise bad_request("invalid object type: /, Kind=")
                bmd = body.get("metadata") or {}
                if bmd.get("name") and bmd["name"] != info.name:
                    raise bad_request(f"the name of the object ({bmd['name']}) does not match the name on the URL ({info.name})")
                self._check_namespace(info, body)
                applied = copy.deepcopy(body)
                applied.setdefault("metadata", {})["name"] = info.name
                self._validate_fields(core, info, applied, mode)
                if cur is None:
                    if sub == "status":
                        raise not_found(info.res, info.name)
                    new = patch_module.apply(None, applied, manager, truthy(force), cursor, info.rt.api_version, info.res, info.name)
                    if info.rt.has_status:
                        new.pop("status", None)
                    new["apiVersion"], new["kind"] = info.rt.api_version, info.rt.kind
                    created = core.store.create(info.res, info.namespace, new, dry_run=dry)
                    return self.send_json(201, self._out(info, created), self._warning_headers())
                new = patch_module.apply(cur, applied, manager, truthy(force), cursor, info.rt.api_version, info.res, info.name, sub)
            else:
                if cur is None:
                    raise not_found(info.res, info.name)
                if kind == "json":
                    try:
                        new = patch_module.json_patch(cur, body)
                    except patch_module.PatchError as e:
                        raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {"causes": [{"message": str(e)}]}) from None
                elif kind == "merge":
                    if not isinstance(body, dict):
                        raise bad_request("merge patch must be a JSON object")
                    new = patch_module.merge_patch(cur, body)
                else:
                    try:
                        new = patch_module.strategic_merge(cur, body, cursor)
                    except patch_module.PatchError as e:
                        raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {"causes": [{"message": str(e)}]}) from None
                if not isinstance(new, dict):
                    raise bad_request("the patch produced something that is not an object")
                self._validate_fields(core, info, new, mode)
                nmd = new.get("metadata") or {}
                if nmd.get("name") != info.name:
                    raise bad_request(f"the name of the object ({nmd.get('name')}) does not match the name on the URL ({info.name})")
                if sub is None and info.rt.has_status:
                    if "status" in cur:
                        new["status"] = cur["status"]
                    else:
                        new.pop("status", None)
                if not info.rt.crd and sub is None:
                    validation.default(info.rt, new, core.store, create=False)
                patch_module.record_update(cur, new, manager, info.rt.api_version, cursor, sub)
            if sub == "status":
                new = self._merge_subresource(cur, new, "status")
            updated = core.store.update(info.res, info.namespace, new, "status" if sub == "status" else None, dry_run=dry)
        self.send_json(200, self._out(info, updated), self._warning_headers())

    # scale -------------------------------------------------------------------------

    def _scale(self, core, info):
        with core.store.lock:
            cur = core.store.get(info.res, info.namespace, info.name)
            if cur is None:
                raise not_found(info.res, info.name)
            scale = _scale_of(cur)
            if self.command == "GET":
                return self.send_json(200, scale)
            dry = self._dry_run(info)
            if self.command == "PUT":
                body = self._decode(("application/json", "application/yaml"))
                want = body
            elif self.command == "PATCH":
                kind = PATCH_TYPES.get(self._content_type())
                if kind is None:
                    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: " + ", ".join(PATCH_TYPES), {})
                body = self._decode(tuple(PATCH_TYPES))
                if kind == "json":
                    try:
                        want = patch_module.json_patch(scale, body)
                    except patch_module.PatchError as e:
                        raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {"causes": [{"message": str(e)}]}) from None
                else:
                    want = patch_module.merge_patch(scale, body)
            else:
                raise method_not_allowed(self.command, info.res)
            rv = (want.get("metadata") or {}).get("resourceVersion")
            replicas = (want.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise ApiError(422, "Invalid", f'Scale.autoscaling "{info.name}" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0', {})
            new = copy.deepcopy(cur)
            new["spec"]["replicas"] = replicas
            if rv:
                new["metadata"]["resourceVersion"] = rv
            manager = self._manager(info)
            patch_module.record_update(cur, new, manager, info.rt.api_version, core.schemas.root(info.rt))
            updated = core.store.update(info.res, info.namespace, new, dry_run=dry)
        self.send_json(200, _scale_of(updated))

    # delete ------------------------------------------------------------------------

    def _delete_options(self, info):
        opts = {}
        if self.request_body.strip():
            body = self._decode(("application/json", "application/yaml"))
            if not isinstance(body, dict):
                raise bad_request("DeleteOptions must be a JSON object")
            opts = body
        q = info.query
        propagation = opts.get("propagationPolicy") or q.get("propagationPolicy")
        if propagation is None:
            orphan = opts.get("orphanDependents", truthy(q.get("orphanDependents")) if "orphanDependents" in q else None)
            if orphan is True:
                propagation = "Orphan"
        grace = opts.get("gracePeriodSeconds", q.get("gracePeriodSeconds"))
        if grace is not None:
            try:
                grace = int(grace)
            except (TypeError, ValueError):
                raise bad_request(f'gracePeriodSeconds: Invalid value: "{grace}"') from None
        dry = self._dry_run(info) or "All" in (opts.get("dryRun") or [])
        return propagation or "Background", grace, opts.get("preconditions"), dry, opts

    def _delete(self, core, info):
        propagation, grace, pre, dry, opts = self._delete_options(info)
        result = core.store.delete(info.res, info.namespace, info.name, propagation, grace_period=grace, preconditions=pre, dry_run=dry)
        with core.store.lock:
            still = core.store.get(info.res, info.namespace, info.name)
        gone = still is None or dry and not (result.get("metadata") or {}).get("deletionTimestamp")
        if not gone:
            status = 202 if opts.get("orphanDependents") is False else 200
            return self.send_json(status, self._out(info, result))
        if info.res == "pods":
            return self.send_json(200, self._out(info, result))
        plural, _, group = info.res.partition(".")
        details = {"name": info.name}
        if group:
            details["group"] = group
        details["kind"] = plural
        details["uid"] = result["metadata"].get("uid")
        self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})

    def _delete_collection(self, core, info):
        propagation, grace, pre, dry, _ = self._delete_options(info)
        labels, fields = self._selectors(info)
        deleted = []
        with core.store.lock:
            for o in core.store.list(info.res, info.namespace, labels, fields):
                md = o["metadata"]
                r = core.store.delete(info.res, md.get("namespace"), md["name"], propagation, grace_period=grace, dry_run=dry, missing_ok=True)
                if r is not None:
                    deleted.append({k: v for k, v in r.items() if k not in ("apiVersion", "kind")} if not info.rt.crd else self._out(info, r))
            rv = core.store.rv_now()
        self.send_json(200, {"kind": info.rt.list_kind, "apiVersion": info.rt.api_version, "metadata": {"resourceVersion": rv}, "items": deleted})

    # streams -----------------------------------------------------------------------

    def _stream(self, core, info):
        streams = core.modules.get("streams")
        sub = info.subresource
        if sub == "proxy":
            # [scheme:]name[:port], as the API server splits it: two parts are name:port.
            parts = info.name.split(":")
            lookup, port = (parts[1], parts[2]) if len(parts) == 3 else (parts[0], parts[1] if len(parts) == 2 else None)
        else:
            lookup, port = info.name, None
        with core.store.lock:
            obj = core.store.get(info.res, info.namespace, lookup)
        if obj is None:
            raise not_found(info.res, lookup)
        if info.res != "pods" and sub in ("exec", "attach", "log"):
            raise unknown_resource()
        handler = {"exec": "handle_exec", "attach": "handle_exec", "log": "handle_log", "proxy": "handle_proxy"}[sub]
        fn = getattr(streams, handler, None) if streams is not None else None
        if fn is None or (sub == "proxy" and info.res != "services"):
            raise ApiError(501, "NotImplemented", f"{info.res}/{sub} is not implemented by Ferry's Kubernetes double" + ("" if streams else " yet (streams.py is not loaded)"), {})
        self.ferry_user = self.user
        self.ferry_info = info
        upgrade = "websocket" in (self.headers.get("Upgrade") or "").lower()
        if sub == "proxy":
            path = info.subpath + (("?" + info.raw_query) if info.raw_query else "")
            fn(self, core.store, info.namespace, lookup, port or None, path)
        else:
            fn(self, core.store, info.namespace, lookup, info.multi)
        if upgrade:
            self.close_connection = True


def _scale_of(obj):
    md = obj["metadata"]
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in md},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0), "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))},
    }


def _version(text):
    major, _, rest = text.lstrip("v").partition(".")
    minor = rest.partition(".")[0]
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": str(max(0, int(minor or 0) - 1)),
        "gitVersion": text,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-04-22T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _dup_hook(dups):
    def hook(pairs):
        seen = {}
        for k, v in pairs:
            if k in seen:
                dups.append(k)
            seen[k] = v
        return seen

    return hook


def _accepts_json(accept):
    if not accept:
        return True
    for part in accept.split(","):
        mt = part.split(";")[0].strip().lower()
        if mt in ("application/json", "*/*", "application/*", "application/yaml", "application/json-patch+json"):
            return True
    return False


def _wants_yaml(accept):
    if not accept:
        return False
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return first == "application/yaml"


# -- the server --------------------------------------------------------------------


class Server(serving.Server):
    """Threaded server over one Core; TLS as serving.Server does it."""

    name = "kube"

    def __init__(self, address, core, tls_context=None, verbose=False):
        self.core = core
        super().__init__(address, Handler, verbose, tls_context)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Loopback Kubernetes API server (test double) for Ferry.")
    serving.add_listen_args(p)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this PEM pair")
    p.add_argument("--client-ca", metavar="CA", help="with --tls: accept client certificates signed by CA")
    p.add_argument("--eks-verify", metavar="URL", help="the AWS double's /_ferry/eks/verify (or @PORT_FILE of the AWS double), to accept EKS tokens")
    p.add_argument("--eks-cluster", default="ferry-test", help="cluster name EKS tokens must carry (x-k8s-aws-id)")
    p.add_argument("--controllers-config", metavar="FILE", help="JSON handed to controllers.Controllers at start")
    p.add_argument("--swagger", metavar="FILE", help="Kubernetes OpenAPI v2 (default <repo>/../shared/ref/kube/swagger.json)")
    p.add_argument("--portworx-port", type=int, default=0, help="port of the Portworx double's SDK gateway (0 picks a free one)")
    p.add_argument("--portworx-port-file", metavar="PATH", help="write the Portworx double's port here once it listens")
    p.add_argument("--portworx-secured", action="store_true", help="start the Portworx double with PX-Security on")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tls_context = serving.tls_context(*args.tls, args.client_ca, ssl.CERT_OPTIONAL) if args.tls else None
    controllers_config = None
    if args.controllers_config:
        with open(args.controllers_config, encoding="utf-8") as f:
            controllers_config = json.load(f)
    serving.stop_on_signals()
    portworx = {"host": args.host, "port": args.portworx_port, "port_file": args.portworx_port_file, "secured": args.portworx_secured, "verbose": args.verbose}
    core = Core(args.swagger, args.eks_verify, args.eks_cluster, controllers_config, tls=tls_context is not None, portworx=portworx)
    if not core.schemas.loaded:
        sys.stderr.write(f"kube: no swagger ({core.schemas.error}); unknown fields are kept and strategic merge uses a built-in key table\n")
    server = Server((args.host, args.port), core, tls_context, args.verbose)
    scheme = "https" if tls_context else "http"
    extras = ", ".join(m for m in OPTIONAL_MODULES if m in core.modules) or "no controllers/streams"
    try:
        return serving.serve(server, args.port_file, lambda port: f"kube: listening on {scheme}://{args.host}:{port} ({extras})")
    finally:
        core.stop()


if __name__ == "__main__":
    sys.exit(main())
