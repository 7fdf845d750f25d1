"""gateway.py: the OpenStorage SDK REST gateway of the Portworx double (HTTP side).

Routing, jsonpb-style request decoding, grpc-gateway v1 error bodies and status
mapping (ref/notes/portworx.md §1.1, §1.4), PX-Security (§1.3), fault injection, the
call log and the /_ferry/portworx/ control endpoints. The SDK semantics live in
model.py; the Kubernetes side in bridge.py.

Routing as grpc-gateway's ServeMux does it: a path+method we serve runs; a known
SDK path (from the swagger) with another method gets a plain-text 405; a swagger
path we do not implement gets 501 Unimplemented (JSON); anything else a plain-text
404 "Not Found".
"""

import json
import os
import re
import threading
import time
import uuid
from urllib.parse import parse_qsl, unquote, urlsplit

from . import model
from . import tokens
from .model import SdkError, clean, pick

HERE = os.path.dirname(os.path.abspath(__file__))
SWAGGER = os.environ.get("FERRY_PX_SWAGGER") or os.path.join(HERE, "..", "..", "..", "..", "shared", "ref", "openstorage-sdk.swagger.json")
MAX_BODY = 16 * 1024 * 1024
MAX_CALLS = 5000
FAULT_KINDS = ("error", "slow", "drop", "unauthorized", "snapshot_limit", "cloudsnap_failed")
DROP = object()

# (method, path pattern, operationId). {x} is one path segment, {x=**} the rest.
ROUTES = [
    ("GET", "/v1/identities/version", "OpenStorageIdentity_Version"),
    ("GET", "/v1/identities/capabilities", "OpenStorageIdentity_Capabilities"),
    ("GET", "/v1/clusters/inspectcurrent", "OpenStorageCluster_InspectCurrent"),
    ("GET", "/v1/nodes", "OpenStorageNode_Enumerate"),
    ("GET", "/v1/nodes/filters", "OpenStorageNode_EnumerateWithFilters"),
    ("GET", "/v1/nodes/inspect/{node_id}", "OpenStorageNode_Inspect"),
    ("GET", "/v1/nodes/inspectcurrent", "OpenStorageNode_InspectCurrent"),
    ("GET", "/v1/volumes", "OpenStorageVolume_Enumerate"),
    ("POST", "/v1/volumes", "OpenStorageVolume_Create"),
    ("POST", "/v1/volumes/filters", "OpenStorageVolume_EnumerateWithFilters"),
    ("GET", "/v1/volumes/inspect/{volume_id}", "OpenStorageVolume_Inspect"),
    ("POST", "/v1/volumes/inspectwithfilters", "OpenStorageVolume_InspectWithFilters"),
    ("POST", "/v1/volumes/clone", "OpenStorageVolume_Clone"),
    ("PUT", "/v1/volumes/{volume_id}", "OpenStorageVolume_Update"),
    ("DELETE", "/v1/volumes/{volume_id}", "OpenStorageVolume_Delete"),
    ("GET", "/v1/volumes/stats/{volume_id}", "OpenStorageVolume_Stats"),
    ("GET", "/v1/volumes/usage/{volume_id}", "OpenStorageVolume_CapacityUsage"),
    ("POST", "/v1/volumes/snapshots", "OpenStorageVolume_SnapshotCreate"),
    ("GET", "/v1/volumes/snapshots", "OpenStorageVolume_SnapshotEnumerate"),
    ("POST", "/v1/volumes/snapshots/filters/{volume_id}", "OpenStorageVolume_SnapshotEnumerateWithFilters"),
    ("POST", "/v1/volumes/snapshots/restore", "OpenStorageVolume_SnapshotRestore"),
    ("POST", "/v1/cloudbackups", "OpenStorageCloudBackup_Create"),
    ("POST", "/v1/cloudbackups/status", "OpenStorageCloudBackup_Status"),
    ("POST", "/v1/cloudbackups/restore", "OpenStorageCloudBackup_Restore"),
    ("POST", "/v1/cloudbackups/enumerate/filters", "OpenStorageCloudBackup_EnumerateWithFilters"),
    ("DELETE", "/v1/cloudbackups/backup/{backup_id=**}", "OpenStorageCloudBackup_Delete"),
    ("GET", "/v1/cloudbackups/history/{src_volume_id}", "OpenStorageCloudBackup_History"),
    ("GET", "/v1/credentials", "OpenStorageCredentials_Enumerate"),
    ("POST", "/v1/credentials", "OpenStorageCredentials_Create"),
    ("GET", "/v1/credentials/inspect/{credential_id}", "OpenStorageCredentials_Inspect"),
    ("DELETE", "/v1/credentials/{credential_id}", "OpenStorageCredentials_Delete"),
]


def _compile(pattern):
    parts = []
    for seg in pattern.strip("/").split("/"):
        m = re.fullmatch(r"\{(\w+)(=\*\*)?\}", seg)
        if m:
            parts.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]*)")
        else:
            parts.append(re.escape(seg))
    return re.compile("/" + "/".join(parts))


COMPILED = [(m, _compile(p), op) for m, p, op in ROUTES]


def _swagger_routes():
    """(method, compiled pattern, operationId) for every path in the SDK swagger."""
    try:
        with open(SWAGGER, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return []
    out = []
    for path, ops in (doc.get("paths") or {}).items():
        for method, op in ops.items():
            if method.lower() in ("get", "post", "put", "delete", "patch"):
                out.append((method.upper(), _compile(path), op.get("operationId", "")))
    return out


SWAGGER_ROUTES = _swagger_routes()


def service_api(op):
    """("volume", "snapshotcreate") for "OpenStorageVolume_SnapshotCreate"."""
    svc, _, api = op.partition("_")
    return svc[len("OpenStorage"):].lower(), api.lower()


class Reply:
    def __init__(self, status, body, ctype="application/json", headers=()):
        self.status, self.body, self.ctype, self.headers = status, body, ctype, list(headers)


def json_reply(obj, status=200):
    # grpc-gateway forwards the gRPC server's header metadata with this prefix
    return Reply(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), headers=[("Grpc-Metadata-Content-Type", "application/grpc")])


def error_reply(code, message):
    """grpc-gateway v1 DefaultHTTPError: {"error", "code", "message"} (+ details)."""
    body = {"error": message, "code": code, "message": message} if code else {"error": message, "message": message}
    return json_reply(body, model.HTTP_STATUS.get(code, 500))


def plain_reply(status, text):
    return Reply(status, (text + "\n").encode("utf-8"), "text/plain; charset=utf-8", [("X-Content-Type-Options", "nosniff")])


# -- request decoding (jsonpb input) --------------------------------------------------------


def _type_name(v):
    return {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(type(v), "null")


def req_str(body, name):
    v = pick(body, name)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise SdkError(3, f"json: cannot unmarshal {_type_name(v)} into Go value of type string")
    return v


def req_bool(body, name):
    v = pick(body, name)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise SdkError(3, f"json: cannot unmarshal {_type_name(v)} into Go value of type bool")
    return v


def req_map(body, name):
    v = pick(body, name)
    if v is None:
        return {}
    if not isinstance(v, dict) or any(not isinstance(x, str) for x in v.values()):
        raise SdkError(3, f"json: cannot unmarshal {_type_name(v)} into Go value of type map[string]string")
    return dict(v)


def req_obj(body, name):
    v = pick(body, name)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise SdkError(3, f"json: cannot unmarshal {_type_name(v)} into Go value of type map[string]json.RawMessage")
    return v


def decode_body(raw):
    if not raw.strip():
        return {}  # io.EOF: an empty request
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise SdkError(3, "invalid character looking for beginning of value") from None
    except ValueError as e:
        text = raw.decode("utf-8", "replace")
        pos = getattr(e, "pos", 0) or 0
        ch = text[pos:pos + 1] if pos < len(text) else ""
        raise SdkError(3, f"invalid character '{ch}' looking for beginning of value" if ch else "unexpected EOF") from None
    if not isinstance(body, dict):
        raise SdkError(3, f"json: cannot unmarshal {_type_name(body)} into Go value of type map[string]json.RawMessage")
    return body


def query_bool(query, name):
    v = query.get(name)
    if v is None:
        return False
    if v.lower() in ("1", "t", "true"):
        return True
    if v.lower() in ("0", "f", "false", ""):
        return False
    raise SdkError(3, f'strconv.ParseBool: parsing "{v}": invalid syntax')


# -- faults and the call log -----------------------------------------------------------------


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def clear(self):
        with self.lock:
            self.items = []

    def add(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        f = {
            "kind": kind,
            "op": spec.get("op"),
            "method": (spec.get("method") or "").upper() or None,
            "path": spec.get("path"),
            "count": int(spec.get("count", 1)),
            "skip": int(spec.get("skip", 0)),
            "code": spec.get("code"),
            "status": spec.get("status"),
            "message": spec.get("message"),
            "delay_ms": int(spec.get("delay_ms", 1000)),
            "id": str(uuid.uuid4()),
        }
        if f["code"] is not None and (not isinstance(f["code"], int) or f["code"] not in model.HTTP_STATUS):
            raise ValueError("code must be a gRPC code (0-16)")
        if f["path"] is not None:
            try:
                re.compile(f["path"])
            except re.error as e:
                raise ValueError(f"bad path regex: {e}") from None
        if kind not in ("snapshot_limit", "cloudsnap_failed"):  # those are queued in the model (see control)
            with self.lock:
                self.items.append(f)
        return f

    def take(self, method, path, op):
        """The fault to apply to this call (consumed), or None."""
        with self.lock:
            for f in self.items:
                if f["kind"] in ("snapshot_limit", "cloudsnap_failed"):
                    continue
                if f["op"] and f["op"] not in (op, op.partition("_")[2], op.replace("OpenStorage", "").replace("_", ".")):
                    continue
                if f["method"] and f["method"] != method:
                    continue
                if f["path"] and not re.search(f["path"], path):
                    continue
                if f["skip"] > 0:
                    f["skip"] -= 1
                    continue
                if f["count"] == 0:
                    continue
                if f["count"] > 0:
                    f["count"] -= 1
                self.items = [x for x in self.items if x["count"] != 0]
                return dict(f)
        return None

    def view(self):
        with self.lock:
            return [dict(f) for f in self.items]


class CallLog:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []
        self.seq = 0

    def clear(self):
        with self.lock:
            self.items = []

    def add(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            entry.setdefault("time", time.time())
            self.items.append(entry)
            del self.items[:-MAX_CALLS]
            return entry

    def view(self, since=0, op=None, method=None):
        with self.lock:
            out = [dict(e) for e in self.items if e["seq"] > since]
        if op:
            out = [e for e in out if op in (e.get("op"), (e.get("op") or "").partition("_")[2])]
        if method:
            out = [e for e in out if e.get("method") == method.upper()]
        return out


# -- the gateway -----------------------------------------------------------------------------------


class Gateway:
    """The SDK API over a model.State plus security, faults and the call log."""

    def __init__(self, state, secured=False):
        self.state = state
        self.faults = Faults()
        self.calls = CallLog()
        self.on_security_change = None  # set by the package: reseed Secrets
        self.initial_secured = secured
        # Minted once: a reset brings these back, so a token exported at start keeps working.
        self.initial_tokens = (
            tokens.mint("px-admin@ferry.test", roles=["system.admin"], groups=["*"], expires_in=365 * 24 * 3600),
            tokens.mint("px-user@ferry.test", roles=["system.user"], groups=["ferry"], expires_in=365 * 24 * 3600),
        )
        self.reset_security(secured)

    def reset_security(self, secured=None):
        self.secured = self.initial_secured if secured is None else bool(secured)
        self.guest_access = False
        self.issuers = {tokens.DEFAULT_ISSUER: tokens.DEFAULT_SECRET}
        self.revoked = set()
        self.admin_token, self.user_token = self.initial_tokens

    def rotate(self):
        """A new admin token; the old one stops working (as if it expired)."""
        self.revoked.add(self.admin_token)
        self.admin_token = tokens.mint("px-admin@ferry.test", roles=["system.admin"], groups=["*"], expires_in=365 * 24 * 3600,
                                       extra={"jti": str(uuid.uuid4())})
        return self.admin_token

    # -- authentication ------------------------------------------------------------------------

    def authenticate(self, header):
        """(user, roles) for the Authorization header; SdkError 401/403."""
        if not header or not header.strip():
            if self.guest_access:
                return "system.guest", ["system.guest"]
            raise SdkError(16, "Invalid or missing authentication token")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SdkError(16, "Request unauthenticated with bearer")
        try:
            claims = tokens.verify(token.strip(), self.issuers, self.revoked)
        except tokens.TokenError as e:
            raise SdkError(e.grpc_code, e.message) from None
        roles = claims.get("roles") or []
        return claims.get("sub"), roles if isinstance(roles, list) else []

    # -- routing ---------------------------------------------------------------------------------

    def route(self, method, path):
        """(operationId, path params) or a Reply for routing failures."""
        for m, rx, op in COMPILED:
            match = rx.fullmatch(path)
            if match and m == method:
                return op, {k: unquote(v) for k, v in match.groupdict().items()}
        if path == "/v1/volumes/snapshots/filters" and method == "POST":
            return "OpenStorageVolume_SnapshotEnumerateWithFilters", {"volume_id": ""}
        known = [(m, op) for m, rx, op in COMPILED + SWAGGER_ROUTES if rx.fullmatch(path)]
        if any(m == method for m, _ in known):
            op = next(op for m, op in known if m == method)
            return op, None  # in the SDK, not in the double: 501
        if known:
            return plain_reply(405, "Method Not Allowed"), None
        return plain_reply(404, "Not Found"), None

    def handle(self, method, target, headers, raw):
        """One SDK API request -> Reply (or DROP)."""
        split = urlsplit(target)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path == "/swagger.json" and method == "GET":  # served by the real gateway too
            try:
                with open(SWAGGER, "rb") as f:
                    return Reply(200, f.read())
            except OSError:
                return plain_reply(404, "Not Found")
        op, params = self.route(method, path)
        entry = {"method": method, "path": path, "query": split.query, "op": op if isinstance(op, str) else None,
                 "status": None, "code": None, "user": None, "fault": None}
        # request bodies are logged, except credentials (secret keys never reach the log)
        entry["body"] = "<redacted>" if "credentials" in path else raw[:4096].decode("utf-8", "replace")
        if isinstance(op, Reply):
            entry["status"] = op.status
            self.calls.add(entry)
            return op
        reply = self._call(entry, method, path, query, headers, raw, op, params)
        if reply is DROP:
            entry["status"] = "dropped"
        else:
            entry["status"] = reply.status
        self.calls.add(entry)
        return reply

    def _call(self, entry, method, path, query, headers, raw, op, params):
        fault = self.faults.take(method, path, op)
        if fault is not None:
            entry["fault"] = fault["kind"]
            if fault["kind"] == "slow":
                time.sleep(fault["delay_ms"] / 1000.0)
            elif fault["kind"] == "drop":
                return DROP
            elif fault["kind"] == "unauthorized":
                entry["code"] = 16
                return error_reply(16, fault["message"] or "Unable to authenticate token: Token is expired")
            elif fault["kind"] == "error":
                code = fault["code"] if fault["code"] is not None else 13
                msg = fault["message"] or f"Ferry fault: injected {model.CODE_NAMES.get(code, code)} error for {op}"
                entry["code"] = code
                reply = error_reply(code, msg)
                if fault["status"]:
                    reply.status = int(fault["status"])
                return reply
        user, roles = None, ["system.admin"]
        try:
            if self.secured:
                user, roles = self.authenticate(headers.get("Authorization"))
                entry["user"] = user
                service, api = service_api(op)
                if not tokens.allowed(roles, service, api):
                    raise SdkError(7, f"Access denied to roles: [{' '.join(roles)}]")
            if params is None:
                raise SdkError(12, f"Ferry's Portworx double does not implement {op}")
            body = decode_body(raw) if method in ("POST", "PUT") else {}
            for k, v in params.items():
                body[k] = v  # path parameters win over the body
            fn = getattr(self, "op_" + op.partition("_")[2].lower() + "_" + op.partition("_")[0][len("OpenStorage"):].lower())
            with self.state.lock:
                out = fn(body, query, user if self.secured else "")
            entry["code"] = 0
            return json_reply(clean(out) if not isinstance(out, model.Msg) else out)
        except SdkError as e:
            entry["code"] = e.code
            entry["error"] = e.message
            return error_reply(e.code, e.message)

    # -- identity, cluster, nodes -------------------------------------------------------------------

    def op_version_identity(self, body, query, user):
        major, minor, patch = model.SDK_VERSION
        return {"sdk_version": clean({"major": major, "minor": minor, "patch": patch, "version": f"{major}.{minor}.{patch}"}),
                "version": clean({"driver": "pxd", "version": model.PX_VERSION, "details": {}})}

    def op_capabilities_identity(self, body, query, user):
        return {"capabilities": [{"service": {"type": t}} for t in ("CLUSTER", "CLOUD_BACKUP", "CREDENTIALS", "NODE", "VOLUME", "MOUNT_ATTACH")]}

    def op_inspectcurrent_cluster(self, body, query, user):
        return {"cluster": clean({"id": self.state.cluster_id, "name": model.CLUSTER_NAME, "status": "STATUS_OK"})}

    def _node_json(self, n):
        return clean({
            "id": n["id"], "hostname": n["name"], "mgmt_ip": n["ip"], "data_ip": n["ip"], "status": "STATUS_OK",
            "scheduler_node_name": n["name"], "cpu": 2.5, "cpu_cores": "8", "mem_total": str(32 * model.GiB),
            "mem_used": str(6 * model.GiB), "mem_free": str(26 * model.GiB), "avg_load": "3",
            "node_labels": {"PX Version": model.PX_VERSION},
            "scheduler_topology": model.Msg(labels=n["topology"]) if n.get("topology") else None,
        })

    def op_enumerate_node(self, body, query, user):
        return {"node_ids": [n["id"] for n in self.state.nodes()]}

    def op_enumeratewithfilters_node(self, body, query, user):
        return {"nodes": [self._node_json(n) for n in self.state.nodes()]}

    def op_inspect_node(self, body, query, user):
        nid = body.get("node_id") or ""
        if not nid:
            raise SdkError(3, "Node id must be provided")
        n = self.state.node(nid)
        if n is None:
            raise SdkError(5, f"Node id {nid} not found")
        return {"node": self._node_json(n)}

    def op_inspectcurrent_node(self, body, query, user):
        n = self.state.node(None)
        return {"node": self._node_json(n)} if n else {}

    # -- volumes ----------------------------------------------------------------------------------

    def _inspect_view(self, v):
        return {"volume": self.state.sdk_volume(v), "name": v["name"], "labels": dict(v["labels"])}

    def op_enumerate_volume(self, body, query, user):
        return {"volume_ids": list(self.state.volumes)}

    def op_enumeratewithfilters_volume(self, body, query, user):
        name, labels = req_str(body, "name"), req_map(body, "labels")
        req_obj(body, "ownership")
        return {"volume_ids": [v["id"] for v in self.state.matching(name, labels)]}

    def op_inspect_volume(self, body, query, user):
        vid = body.get("volume_id") or ""
        if not vid:
            raise SdkError(3, "Must supply volume id")
        query_bool(query, "options.deep")
        v = self.state.get(vid)
        if v is None:
            raise SdkError(5, f"Volume id {vid} not found")
        return self._inspect_view(v)

    def op_inspectwithfilters_volume(self, body, query, user):
        name, labels = req_str(body, "name"), req_map(body, "labels")
        opts = req_obj(body, "options") or {}
        if pick(opts, "deep") is not None and not isinstance(pick(opts, "deep"), bool):
            raise SdkError(3, "json: cannot unmarshal into Go value of type bool")
        return {"volumes": [self._inspect_view(v) for v in self.state.matching(name, labels)]}

    def op_create_volume(self, body, query, user):
        name = req_str(body, "name")
        spec = req_obj(body, "spec")
        labels = req_map(body, "labels")
        if not name:
            raise SdkError(3, "Must supply a unique name")
        if spec is None:
            raise SdkError(3, "Must supply spec object")
        v = self.state.create(name, model.spec_from_request(spec), labels, owner=user or "")
        return {"volume_id": v["id"]}

    def op_clone_volume(self, body, query, user):
        v = self.state.clone(req_str(body, "name"), req_str(body, "parent_id"), req_map(body, "additional_labels"), owner=user or "")
        return {"volume_id": v["id"]}

    def op_update_volume(self, body, query, user):
        vid = body.get("volume_id") or ""
        if not vid:
            raise SdkError(3, "Must supply volume id")
        self.state.update(vid, req_map(body, "labels"), req_obj(body, "spec"))
        return {}

    def op_delete_volume(self, body, query, user):
        vid = body.get("volume_id") or ""
        if not vid:
            raise SdkError(3, "Must supply volume id")
        self.state.delete(vid)
        return {}

    def op_stats_volume(self, body, query, user):
        v = self.state.get(body.get("volume_id") or "")
        if v is None:
            raise SdkError(5, f"Volume id {body.get('volume_id')} not found")
        query_bool(query, "not_cumulative")
        return {"stats": clean({"reads": "12", "read_ms": "30", "read_bytes": str(12 * 4096), "writes": "40", "write_ms": "90",
                                "write_bytes": str(40 * 4096), "io_progress": "0", "io_ms": "120", "bytes_used": str(v["usage"]),
                                "interval_ms": "0"})}

    def op_capacityusage_volume(self, body, query, user):
        v = self.state.get(body.get("volume_id") or "")
        if v is None:
            raise SdkError(5, f"Volume id {body.get('volume_id')} not found")
        return {"capacity_usage_info": clean({"exclusive_bytes": str(v["usage"]), "shared_bytes": "0", "total_bytes": str(v["usage"])})}

    def op_snapshotcreate_volume(self, body, query, user):
        s = self.state.snapshot_create(req_str(body, "volume_id"), req_str(body, "name"), req_map(body, "labels"), owner=user or "")
        return {"snapshot_id": s["id"]}

    def op_snapshotenumerate_volume(self, body, query, user):
        vid = query.get("volume_id", "")
        return {"volume_snapshot_ids": [v["id"] for v in self.state.snapshots_of(vid)]}

    def op_snapshotenumeratewithfilters_volume(self, body, query, user):
        vid = body.get("volume_id") or ""
        return {"volume_snapshot_ids": [v["id"] for v in self.state.snapshots_of(vid, req_map(body, "labels"))]}

    def op_snapshotrestore_volume(self, body, query, user):
        self.state.restore(req_str(body, "volume_id"), req_str(body, "snapshot_id"))
        return {}

    # -- cloud backups and credentials ----------------------------------------------------------------

    def op_create_cloudbackup(self, body, query, user):
        req_bool(body, "full")
        task = self.state.backup_create(req_str(body, "volume_id"), req_str(body, "credential_id"), req_str(body, "task_id"),
                                        req_map(body, "labels"), req_bool(body, "full"))
        return {"task_id": task}

    def op_status_cloudbackup(self, body, query, user):
        req_bool(body, "local")
        return {"statuses": self.state.backup_status(req_str(body, "task_id"), req_str(body, "volume_id"))}

    def op_restore_cloudbackup(self, body, query, user):
        vid, task = self.state.backup_restore(req_str(body, "backup_id"), req_str(body, "restore_volume_name"),
                                              req_str(body, "credential_id"), req_str(body, "task_id"))
        return {"restore_volume_id": vid, "task_id": task}

    def op_enumeratewithfilters_cloudbackup(self, body, query, user):
        cred = req_str(body, "credential_id")
        if cred:
            self.state.credential(cred)
        return {"backups": self.state.backup_enumerate(req_str(body, "src_volume_id"), req_bool(body, "all"), req_str(body, "cloud_backup_id"))}

    def op_delete_cloudbackup(self, body, query, user):
        bid = body.get("backup_id") or ""
        if not bid:
            raise SdkError(3, "Must supply a backup id")
        if self.state.backups.pop(bid, None) is None:
            raise SdkError(5, f"Backup {bid} not found")
        return {}

    def op_history_cloudbackup(self, body, query, user):
        src = body.get("src_volume_id") or ""
        items = [{"src_volume_id": b["src_volume_id"], "timestamp": model.timestamp(b["timestamp"]), "status": model.BACKUP_STATUS + "Done"}
                 for b in self.state.backups.values() if not src or b["src_volume_id"] == src]
        return {"history_list": items}

    def op_enumerate_credentials(self, body, query, user):
        return {"credential_ids": list(self.state.credentials)}

    def op_create_credentials(self, body, query, user):
        return {"credential_id": self.state.credential_create(body)["credential_id"]}

    def op_inspect_credentials(self, body, query, user):
        c = self.state.credentials.get(body.get("credential_id") or "")
        if c is None:
            raise SdkError(5, f"Credential id {body.get('credential_id')} not found")
        out = {"credential_id": c["credential_id"], "name": c["name"], "bucket": c["bucket"]}
        if c.get("aws_credential"):
            out["aws_credential"] = clean(dict(c["aws_credential"]))
        return out

    def op_delete_credentials(self, body, query, user):
        cid = body.get("credential_id") or ""
        if self.state.credentials.pop(cid, None) is None:
            raise SdkError(5, f"Credential id {cid} not found")
        return {}
