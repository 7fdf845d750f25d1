#!/usr/bin/python3
"""test_portworx.py: the Portworx double (OpenStorage SDK REST gateway inside the
Kubernetes double) checked over real HTTP.

Starts its own ../kube/server.py (plain HTTP, so the Kubernetes API needs no
credentials) with --portworx-port-file, then checks:
  - every SDK endpoint's behaviour and errors (ref/notes/portworx.md §1.4-§1.6, §6):
    identity, cluster, nodes, volumes (create, inspect, filters, update, delete,
    stats, usage), snapshots (create, enumerate, filters, restore), clone, cloud
    backups, credentials; routing failures (plain-text 404/405, 501);
  - the JSON encoding: every response is validated against the swagger's schemas
    (ref/openstorage-sdk.swagger.json, OpenAPI 3: $refs resolved, nullable
    handled, unknown keys refused, int64 strings, date-times) with Debian's
    python3-jsonschema, and no response carries a default value (jsonpb omits them);
  - secured mode (JWT roles, 401/403) and the px-admin-token Secret, faults, the
    call log, the 64-snapshot limit;
  - state shared with Kubernetes: PVC -> volume, pod -> attached, CSI and STORK
    snapshots -> PX snapshots, restores -> clones, GroupVolumeSnapshot, Rules,
    deletes, and pxctl exec'd in the Portworx pod (WebSocket, v5.channel.k8s.io).
Closes with "N passed, N failed"; exits 1 on any failure.

    /usr/bin/python3 tests/doubles/portworx/test_portworx.py [name-substring]
"""

import base64
import http.client
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from urllib.parse import quote

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
KUBE = os.path.join(os.path.dirname(HERE), "kube")
SERVER = os.path.join(KUBE, "server.py")
SWAGGER = os.environ.get("FERRY_PX_SWAGGER") or os.path.join(HERE, "..", "..", "..", "..", "shared", "ref", "openstorage-sdk.swagger.json")
sys.path.insert(0, KUBE)
import streams  # noqa: E402  (the Kubernetes double's WebSocket client)
sys.path.remove(KUBE)
sys.path.append(os.path.dirname(HERE))  # testlib.py
import testlib  # noqa: E402
_spec = importlib.util.spec_from_file_location("px_tokens", os.path.join(HERE, "tokens.py"))
tokens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tokens)

try:
    import jsonschema
except ImportError:  # reported as a failure by the schema test
    jsonschema = None

DEADLINE = 8.0
TESTS = test = testlib.Tests()
S = {"validated": 0}
STORK = "/apis/volumesnapshot.external-storage.k8s.io/v1"
CSI = "/apis/snapshot.storage.k8s.io/v1"
GROUP = "/apis/stork.libopenstorage.org/v1alpha1"
check, eq = testlib.check, testlib.eq


def wait_for(cond, what, deadline=DEADLINE):
    return testlib.wait_for(cond, what, deadline)


# -- the swagger as JSON Schema ---------------------------------------------------------------


class Swagger:
    """Response schemas of the SDK's OpenAPI 3 document, as JSON Schema: $refs
    resolved against the document, `nullable: true` as a "null" type, and
    additionalProperties false on every object with properties (an unknown key
    is a misspelling), int64/uint64 strings must be decimal, date-times RFC 3339."""

    INT_FORMATS = ("int64", "uint64")

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.schemas = {k: self._convert(v) for k, v in self.doc["components"]["schemas"].items()}
        self.root = {"components": {"schemas": self.schemas}}
        self.routes = []
        for p, ops in self.doc["paths"].items():
            rx = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]*", re.escape(p)) + "$")
            for method, op in ops.items():
                if method in ("get", "post", "put", "delete"):
                    self.routes.append((method.upper(), rx, op))
        checker = jsonschema.FormatChecker()

        @checker.checks("date-time")
        def _dt(v):
            return not isinstance(v, str) or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z", v) is not None

        for fmt in self.INT_FORMATS:
            checker.checks(fmt)(lambda v: not isinstance(v, str) or re.fullmatch(r"-?\d+", v) is not None)
        checker.checks("byte")(lambda v: not isinstance(v, str) or re.fullmatch(r"[A-Za-z0-9+/=]*", v) is not None)
        self.checker = checker

    def _convert(self, s):
        if isinstance(s, list):
            return [self._convert(x) for x in s]
        if not isinstance(s, dict):
            return s
        out = {k: self._convert(v) for k, v in s.items() if k not in ("nullable", "example", "x-nullable")}
        if s.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out

    def operation(self, method, path):
        path = path.split("?")[0]
        if path == "/v1/volumes/snapshots/filters":
            path += "/"
        for m, rx, op in self.routes:
            if m == method and rx.match(path):
                return op
        return None

    def response_schema(self, op, ok):
        content = (op["responses"].get("200" if ok else "default") or {}).get("content", {})
        ref = content.get("application/json", {}).get("schema")
        return ref

    def validate(self, schema, instance):
        """A list of problems (empty when valid)."""
        full = dict(schema)
        full["components"] = {"schemas": self.schemas}
        v = jsonschema.Draft7Validator(full, format_checker=self.checker, resolver=jsonschema.RefResolver("", full))
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in v.iter_errors(instance)]

    def defaults(self, schema, instance, where=""):
        """Fields that hold their default value (jsonpb with EmitDefaults=false
        leaves them out): "", 0, false, [], {} maps, an enum's default."""
        schema = self._deref(schema)
        out = []
        if isinstance(instance, dict) and "properties" in schema:
            for k, v in instance.items():
                sub = self._deref(schema["properties"].get(k, {}))
                here = f"{where}.{k}"
                if v in ("", 0, False, []) and not isinstance(v, dict):
                    out.append(here)
                elif isinstance(v, dict) and not v and isinstance(sub.get("additionalProperties"), dict):
                    out.append(here + " (empty map)")
                elif "enum" in sub and v == sub.get("default", sub["enum"][0]):
                    out.append(here + f" (enum default {v})")
                else:
                    out += self.defaults(sub, v, here)
        elif isinstance(instance, dict) and isinstance(schema.get("additionalProperties"), dict):
            for k, v in instance.items():
                out += self.defaults(schema["additionalProperties"], v, f"{where}[{k}]")
        elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for i, v in enumerate(instance):
                out += self.defaults(schema["items"], v, f"{where}[{i}]")
        return out

    def _deref(self, s):
        while isinstance(s, dict) and "$ref" in s:
            s = self.schemas[s["$ref"].rsplit("/", 1)[-1]]
        return s if isinstance(s, dict) else {}


# -- clients ---------------------------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, raw):
        self.status, self.headers, self.raw = status, headers, raw
        self.ctype = headers.get("content-type", "")
        self.json = json.loads(raw) if self.ctype.startswith("application/json") and raw else None

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


def request(port, method, path, body=None, headers=None, raw=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = dict(headers or {})
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    out = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    return out


def px(method, path, body=None, token=None, expect=None, raw=None, headers=None, validate=True):
    """An SDK call; the JSON answer is validated against the swagger."""
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"bearer {token}"
    r = request(S["px_port"], method, path, body, hdrs, raw)
    if expect is not None:
        check(r.status == expect, f"{method} {path}: want {expect}, got {r}")
    if validate and r.ctype.startswith("application/json"):
        validate_response(method, path, r)
    return r


def validate_response(method, path, r):
    sw = S["swagger"]
    op = sw.operation(method, path)
    check(op is not None, f"{method} {path} is not in the swagger")
    schema = sw.response_schema(op, r.status == 200)
    problems = sw.validate(schema, r.json)
    check(not problems, f"{method} {path} -> {r.status}: response does not match {schema}: {problems[:5]}")
    dflt = sw.defaults(schema, r.json)
    check(not dflt, f"{method} {path}: default values are emitted (jsonpb omits them): {dflt[:5]}")
    S["validated"] += 1


def ok(method, path, body=None, token=None):
    return px(method, path, body, token, expect=200).json


def sdk_error(r, status, code, message=None):
    check(r.status == status, f"want HTTP {status}, got {r}")
    check(set(r.json) == {"error", "code", "message"}, f"error body keys: {sorted(r.json)}")
    eq(r.json["code"], code, "grpc code")
    eq(r.json["error"], r.json["message"], "error == message")
    if message is not None:
        if message.startswith("re:"):
            check(re.search(message[3:], r.json["message"]), f"message {r.json['message']!r} !~ {message[3:]!r}")
        else:
            eq(r.json["message"], message, "message")


def kube(method, path, body=None, expect=None, ctype=None):
    r = request(S["kube_port"], method, path, body, {"Content-Type": ctype} if ctype else None)
    if expect is not None:
        check(r.status == expect, f"kube {method} {path}: want {expect}, got {r}")
    return r.json


def control(method, what, body=None, expect=200):
    r = request(S["px_port"], method, "/_ferry/portworx/" + what, body)
    check(r.status == expect, f"control {method} {what}: want {expect}, got {r}")
    return r.json


def reset():
    kube("POST", "/_ferry/reset", {}, expect=200)


def create_volume(name, size=1 << 30, labels=None, ha=1):
    body = {"name": name, "spec": {"size": str(size), "ha_level": str(ha), "format": "FS_TYPE_EXT4"}}
    if labels:
        body["labels"] = labels
    return ok("POST", "/v1/volumes", body)["volume_id"]


def inspect(vid, token=None):
    return ok("GET", f"/v1/volumes/inspect/{vid}", token=token)


def pvc(ns, name, size="1Gi", labels=None, sc=None, data_source=None, annotations=None):
    md = {"name": name}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if sc:
        spec["storageClassName"] = sc
    if data_source:
        spec["dataSource"] = data_source
    ensure_ns(ns)
    return kube("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": md, "spec": spec}, expect=201)


def ensure_ns(ns):
    if request(S["kube_port"], "GET", f"/api/v1/namespaces/{ns}").status == 404:
        kube("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, expect=201)


def bound(ns, name):
    def done():
        c = kube("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")
        return c if (c.get("status") or {}).get("phase") == "Bound" else None
    return wait_for(done, f"PVC {ns}/{name} Bound")


def pv_volume_id(claim):
    pv = kube("GET", f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
    return (pv["spec"].get("csi") or {}).get("volumeHandle") or (pv["spec"].get("portworxVolume") or {}).get("volumeID"), pv


def pod(ns, name, claim=None, px_volume=None, labels=None):
    vols = []
    if claim:
        vols.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
    if px_volume:
        vols.append({"name": "px", "portworxVolume": {"volumeID": px_volume}})
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "mongo:7"}], "volumes": vols}}
    return kube("POST", f"/api/v1/namespaces/{ns}/pods", body, expect=201)


def running(ns, name):
    return wait_for(lambda: (kube("GET", f"/api/v1/namespaces/{ns}/pods/{name}").get("status") or {}).get("phase") == "Running", f"pod {ns}/{name} Running")


def ready_condition(obj):
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def px_volume_of(ns, claim):
    c = bound(ns, claim)
    vid, _ = pv_volume_id(c)
    return inspect(vid)["volume"]


class Exec:
    """pxctl (or anything) exec'd through the Kubernetes double over WebSocket."""

    def __init__(self, argv, pod_name="portworx-ferry-node-1", ns="kube-system", container="portworx", stdin=None):
        q = "&".join("command=" + quote(a, safe="") for a in argv)
        q += f"&container={container}&stdout=true&stderr=true" + ("&stdin=true" if stdin is not None else "")
        ws, proto = streams.connect("127.0.0.1", S["kube_port"], f"/api/v1/namespaces/{ns}/pods/{pod_name}/exec?{q}", ("v5.channel.k8s.io",))
        eq(proto, "v5.channel.k8s.io", "exec protocol")
        if stdin is not None:
            ws.send(streams.OP_BINARY, bytes([0]) + stdin)
            ws.send(streams.OP_BINARY, bytes([255, 0]))
        frames = []
        end = time.monotonic() + 10
        while True:
            msg = ws.poll(max(end - time.monotonic(), 0.01))
            if msg is None:
                if time.monotonic() > end:
                    raise AssertionError("exec did not end")
                continue
            op, payload = msg
            if op == streams.OP_CLOSE:
                break
            frames.append((payload[0], payload[1:]))
        ws.shutdown()
        self.stdout = b"".join(d for c, d in frames if c == 1).decode()
        self.stderr = b"".join(d for c, d in frames if c == 2).decode()
        raw = b"".join(d for c, d in frames if c == 3)
        self.status = json.loads(raw) if raw else None
        if self.status and self.status.get("status") == "Success":
            self.exit = 0
        elif self.status and self.status.get("reason") == "NonZeroExitCode":
            self.exit = int(self.status["details"]["causes"][0]["message"])
        else:
            self.exit = None  # InternalError

    def json(self):
        return json.loads(self.stdout)


def pxctl(*args, **kw):
    return Exec(["/opt/pwx/bin/pxctl", *args], **kw)


# == SDK: identity, cluster, nodes =======================================================================


@test
def identity_version_omits_zero_major():
    r = px("GET", "/v1/identities/version", expect=200)
    eq(r.json, {"sdk_version": {"minor": 186, "version": "0.186.0"}, "version": {"driver": "pxd", "version": "3.1.0.0-ferry"}}, "version")
    eq(r.ctype, "application/json", "content type")
    caps = ok("GET", "/v1/identities/capabilities")["capabilities"]
    check({"service": {"type": "VOLUME"}} in caps and {"service": {"type": "CLOUD_BACKUP"}} in caps, f"capabilities {caps}")


@test
def cluster_and_nodes():
    c = ok("GET", "/v1/clusters/inspectcurrent")["cluster"]
    eq((c["status"], c["name"]), ("STATUS_OK", "ferry-px-cluster"), "cluster")
    ids = ok("GET", "/v1/nodes")["node_ids"]
    eq(len(ids), 1, "one PX node per Kubernetes node")
    n = ok("GET", f"/v1/nodes/inspect/{ids[0]}")["node"]
    eq((n["id"], n["hostname"], n["scheduler_node_name"], n["mgmt_ip"], n["status"]), (ids[0], "ferry-node-1", "ferry-node-1", "10.0.0.10", "STATUS_OK"), "node")
    eq(n["mem_total"], str(32 << 30), "uint64 as a string")
    eq(ok("GET", "/v1/nodes/inspectcurrent")["node"]["id"], ids[0], "inspectcurrent")
    eq([x["id"] for x in ok("GET", "/v1/nodes/filters")["nodes"]], ids, "enumerate with filters")
    sdk_error(px("GET", "/v1/nodes/inspect/nope"), 404, 5, "Node id nope not found")


# == SDK: volumes =====================================================================================


@test
def enumerate_empty_is_an_empty_object():
    reset()
    eq(px("GET", "/v1/volumes", expect=200).raw, b"{}", "no volumes")
    eq(ok("GET", "/v1/volumes/snapshots"), {}, "no snapshots")
    eq(ok("POST", "/v1/volumes/inspectwithfilters", {"name": "nope"}), {}, "no matches")


@test
def create_and_inspect_volume():
    reset()
    vid = create_volume("vol-a", 2 << 30, {"app": "web"}, ha=2)
    check(re.fullmatch(r"[0-9]{18}", vid), f"numeric id {vid}")
    r = inspect(vid)
    v = r["volume"]
    eq((r["name"], r["labels"]), ("vol-a", {"app": "web"}), "top-level name and labels")
    eq((v["id"], v["locator"], v["source"]), (vid, {"name": "vol-a", "volume_labels": {"app": "web"}}, {}), "identity")
    eq((v["spec"]["size"], v["spec"]["ha_level"], v["spec"]["format"], v["spec"]["block_size"]), (str(2 << 30), "2", "FS_TYPE_EXT4", "4096"), "spec int64s as strings")
    eq((v["status"], v["state"], v["format"]), ("VOLUME_STATUS_UP", "VOLUME_STATE_DETACHED", "FS_TYPE_EXT4"), "enum names")
    check("readonly" not in v and "attached_on" not in v and "parent" not in v["source"], f"defaults omitted: {sorted(v)}")
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", v["ctime"]), f"ctime {v['ctime']}")
    eq(ok("GET", f"/v1/volumes/inspect/{vid}?options.deep=true")["volume"]["id"], vid, "deep inspect")
    sdk_error(px("GET", f"/v1/volumes/inspect/{vid}?options.deep=maybe"), 400, 3, 'strconv.ParseBool: parsing "maybe": invalid syntax')
    # camelCase input and int64 as a JSON number are accepted (jsonpb)
    vid2 = ok("POST", "/v1/volumes", {"name": "vol-b", "spec": {"size": 1073741824, "haLevel": "3", "ioProfile": "IO_PROFILE_DB"}})["volume_id"]
    s = inspect(vid2)["volume"]["spec"]
    eq((s["size"], s["ha_level"], s["io_profile"]), ("1073741824", "3", "IO_PROFILE_DB"), "camelCase input")
    eq(ok("GET", "/v1/volumes")["volume_ids"], [vid, vid2], "enumerate in creation order")


@test
def create_errors_and_idempotency():
    reset()
    vid = create_volume("same", 1 << 30)
    eq(create_volume("same", 1 << 30), vid, "create is idempotent by name")
    sdk_error(px("POST", "/v1/volumes", {"name": "same", "spec": {"size": str(2 << 30)}}), 409, 6,
              f"Existing volume has a size of {1 << 30} which differs from requested size of {2 << 30}")
    sdk_error(px("POST", "/v1/volumes", {"spec": {"size": "1"}}), 400, 3, "Must supply a unique name")
    sdk_error(px("POST", "/v1/volumes", {"name": "x"}), 400, 3, "Must supply spec object")
    sdk_error(px("POST", "/v1/volumes", raw=b'{"name": '), 400, 3, "unexpected EOF")
    sdk_error(px("POST", "/v1/volumes", raw=b"xyz"), 400, 3, "invalid character 'x' looking for beginning of value")
    sdk_error(px("POST", "/v1/volumes", raw=b"[1]"), 400, 3, "re:cannot unmarshal array")
    sdk_error(px("POST", "/v1/volumes", {"name": 5, "spec": {}}), 400, 3, "json: cannot unmarshal number into Go value of type string")
    sdk_error(px("POST", "/v1/volumes/filters", {"labels": {"a": 1}}), 400, 3, "re:map\\[string\\]string")


@test
def inspect_unknown_is_404_with_the_exact_body():
    reset()
    r = px("GET", "/v1/volumes/inspect/123", expect=404)
    eq(r.json, {"error": "Volume id 123 not found", "code": 5, "message": "Volume id 123 not found"}, "grpc-gateway error body")


@test
def filters_by_name_and_labels():
    reset()
    a = create_volume("a", labels={"env": "prod", "app": "db"})
    b = create_volume("b", labels={"env": "stage", "app": "db"})
    eq(ok("POST", "/v1/volumes/filters", {"name": "b"})["volume_ids"], [b], "exact name")
    eq(ok("POST", "/v1/volumes/filters", {"labels": {"app": "db"}})["volume_ids"], [a, b], "label subset")
    eq(ok("POST", "/v1/volumes/filters", {"labels": {"app": "db", "env": "prod"}})["volume_ids"], [a], "all labels")
    eq(ok("POST", "/v1/volumes/filters", {}), {"volume_ids": [a, b]}, "no filter")
    eq(ok("POST", "/v1/volumes/filters", {"name": "zzz"}), {}, "none")
    got = ok("POST", "/v1/volumes/inspectwithfilters", {"labels": {"env": "stage"}, "options": {"deep": True}})["volumes"]
    eq([(x["name"], x["volume"]["id"], x["labels"]) for x in got], [("b", b, {"env": "stage", "app": "db"})], "inspectwithfilters")


@test
def update_labels_and_size():
    reset()
    vid = create_volume("u", 1 << 30, {"keep": "1", "drop": "x"})
    eq(px("PUT", f"/v1/volumes/{vid}", {"labels": {"drop": "", "new": "y"}, "spec": {"size": str(2 << 30), "ha_level": "2"}}, expect=200).json, {}, "update answer")
    r = inspect(vid)
    eq((r["labels"], r["volume"]["spec"]["size"], r["volume"]["spec"]["ha_level"]), ({"keep": "1", "new": "y"}, str(2 << 30), "2"), "updated")
    sdk_error(px("PUT", f"/v1/volumes/{vid}", {"spec": {"size": "1024"}}), 500, 13, "re:^Failed to update volume: .*cannot shrink")
    sdk_error(px("PUT", "/v1/volumes/999", {"labels": {"a": "b"}}), 404, 5, "Volume id 999 not found")


@test
def delete_is_idempotent():
    reset()
    vid = create_volume("d")
    eq(px("DELETE", f"/v1/volumes/{vid}", expect=200).json, {}, "delete")
    eq(px("DELETE", f"/v1/volumes/{vid}", expect=200).json, {}, "again: not found is 200")
    sdk_error(px("GET", f"/v1/volumes/inspect/{vid}"), 404, 5)
    control("POST", "config", {"delete_attached": "refuse"})
    vid = create_volume("busy")
    control("POST", "attach", {"volume_id": vid})
    sdk_error(px("DELETE", f"/v1/volumes/{vid}"), 500, 13, f"re:^Failed to delete volume {vid}: volume is attached")


@test
def stats_and_usage():
    reset()
    vid = create_volume("s")
    st = ok("GET", f"/v1/volumes/stats/{vid}?not_cumulative=true")["stats"]
    eq(st["bytes_used"], "33964032", "bytes used")
    eq(ok("GET", f"/v1/volumes/usage/{vid}")["capacity_usage_info"]["total_bytes"], "33964032", "usage")
    sdk_error(px("GET", "/v1/volumes/stats/1"), 404, 5)


# == SDK: snapshots and clones ==========================================================================


@test
def snapshot_create_and_errors():
    reset()
    vid = create_volume("prod", 4 << 30, {"pvc": "data", "namespace": "prod", "app": "mongo"}, ha=3)
    sid = ok("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "prod-snap-1", "labels": {"env": "stage"}})["snapshot_id"]
    r = inspect(sid)
    v = r["volume"]
    eq((v["readonly"], v["source"], r["labels"], r["name"]), (True, {"parent": vid}, {"env": "stage"}, "prod-snap-1"), "snapshot")
    eq((v["spec"]["size"], v["spec"]["ha_level"]), (str(4 << 30), "3"), "the parent's spec")
    sdk_error(px("POST", "/v1/volumes/snapshots", {"name": "x"}), 400, 3, "Must supply volume id")
    sdk_error(px("POST", "/v1/volumes/snapshots", {"volume_id": vid}), 400, 3, "Must supply a name")
    sdk_error(px("POST", "/v1/volumes/snapshots", {"volume_id": "42", "name": "x"}), 404, 5, "Id 42 not found")
    r = px("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "prod-snap-1"})
    sdk_error(r, 500, 13, "re:^Failed to create snapshot: .*already exists$")


@test
def snapshot_enumerate_forms():
    reset()
    a, b = create_volume("a"), create_volume("b")
    s1 = ok("POST", "/v1/volumes/snapshots", {"volume_id": a, "name": "a1", "labels": {"env": "stage"}})["snapshot_id"]
    s2 = ok("POST", "/v1/volumes/snapshots", {"volume_id": a, "name": "a2"})["snapshot_id"]
    s3 = ok("POST", "/v1/volumes/snapshots", {"volume_id": b, "name": "b1", "labels": {"env": "stage"}})["snapshot_id"]
    clone = ok("POST", "/v1/volumes/clone", {"name": "a-clone", "parent_id": a})["volume_id"]
    eq(ok("GET", f"/v1/volumes/snapshots?volume_id={a}")["volume_snapshot_ids"], [s1, s2, clone], "clones enumerate with snapshots (§5.7)")
    eq(ok("GET", "/v1/volumes/snapshots")["volume_snapshot_ids"], [s1, s2, s3, clone], "all")
    eq(ok("POST", f"/v1/volumes/snapshots/filters/{a}", {"labels": {"env": "stage"}})["volume_snapshot_ids"], [s1], "path id + labels")
    eq(ok("POST", "/v1/volumes/snapshots/filters/", {"labels": {"env": "stage"}})["volume_snapshot_ids"], [s1, s3], "empty trailing segment")
    eq(ok("POST", "/v1/volumes/snapshots/filters/777", {}), {}, "unknown volume: none")


@test
def clone_semantics():
    reset()
    vid = create_volume("src", 1 << 30, {"pvc": "data", "namespace": "prod", "app": "mongo"})
    sid = ok("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "s"})["snapshot_id"]
    cid = ok("POST", "/v1/volumes/clone", {"name": "staging", "parent_id": sid, "additional_labels": {"env": "stage"}})["volume_id"]
    r = inspect(cid)
    check("readonly" not in r["volume"], "a clone is writable")
    eq((r["volume"]["source"], r["labels"]), ({"parent": sid}, {"env": "stage"}), "parent, labels minus pvc/namespace (the snapshot has none)")
    c2 = ok("POST", "/v1/volumes/clone", {"name": "of-volume", "parent_id": vid})["volume_id"]
    eq(inspect(c2)["labels"], {"app": "mongo"}, "parent labels minus pvc and namespace")
    eq(ok("POST", "/v1/volumes/clone", {"name": "staging", "parent_id": sid})["volume_id"], cid, "idempotent by name")
    sdk_error(px("POST", "/v1/volumes/clone", {"name": "staging", "parent_id": vid}), 409, 6, "Existing volume has conflicting parent value")
    sdk_error(px("POST", "/v1/volumes/clone", {"parent_id": vid}), 400, 3, "Must supply a uniqe name")
    sdk_error(px("POST", "/v1/volumes/clone", {"name": "n"}), 400, 3, "Must parent volume id")
    sdk_error(px("POST", "/v1/volumes/clone", {"name": "n", "parent_id": "404"}), 404, 5)
    eq(inspect(ok("POST", "/v1/volumes/clone", {"name": "by-name", "parent_id": "s"})["volume_id"])["volume"]["source"], {"parent": sid}, "parent by name")


@test
def restore_in_place():
    reset()
    vid = create_volume("r")
    sid = ok("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "r-snap"})["snapshot_id"]
    other = ok("POST", "/v1/volumes/snapshots", {"volume_id": create_volume("o"), "name": "o-snap"})["snapshot_id"]
    eq(ok("POST", "/v1/volumes/snapshots/restore", {"volume_id": vid, "snapshot_id": sid}), {}, "restore")
    sdk_error(px("POST", "/v1/volumes/snapshots/restore", {"volume_id": vid}), 400, 3, "Must supply snapshot id")
    sdk_error(px("POST", "/v1/volumes/snapshots/restore", {"snapshot_id": sid}), 400, 3, "Must supply volume id")
    sdk_error(px("POST", "/v1/volumes/snapshots/restore", {"volume_id": "1", "snapshot_id": sid}), 404, 5)
    sdk_error(px("POST", "/v1/volumes/snapshots/restore", {"volume_id": vid, "snapshot_id": other}), 500, 13, "re:is not a snapshot of volume")
    control("POST", "attach", {"volume_id": vid})
    sdk_error(px("POST", "/v1/volumes/snapshots/restore", {"volume_id": vid, "snapshot_id": sid}), 500, 13,
              f"re:^Failed to restore volume {vid} to snapshot {sid}: volume {vid} is attached on 10.0.0.10")
    control("POST", "config", {"restore_attached": "allow"})
    eq(ok("POST", "/v1/volumes/snapshots/restore", {"volume_id": vid, "snapshot_id": sid}), {}, "allowed by config")


@test
def snapshot_limit_64_per_volume():
    reset()
    vid = create_volume("many")
    for i in range(64):
        ok("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": f"many-{i}"})
    r = px("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "many-64"})
    sdk_error(r, 500, 13, "re:^Failed to create snapshot: .*maximum number of snapshots \\(64\\)")
    ok("POST", "/v1/volumes/clone", {"name": "clones-do-not-count", "parent_id": vid})
    px("DELETE", "/v1/volumes/" + ok("GET", f"/v1/volumes/snapshots?volume_id={vid}")["volume_snapshot_ids"][0], expect=200)
    ok("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "many-64"})
    # configurable, and a fault that hits the limit once
    control("POST", "config", {"snapshot_limit": 1})
    other = create_volume("few")
    ok("POST", "/v1/volumes/snapshots", {"volume_id": other, "name": "few-0"})
    sdk_error(px("POST", "/v1/volumes/snapshots", {"volume_id": other, "name": "few-1"}), 500, 13, "re:maximum number of snapshots \\(1\\)")
    control("POST", "config", {"snapshot_limit": 64})
    control("POST", "faults", {"kind": "snapshot_limit"})
    sdk_error(px("POST", "/v1/volumes/snapshots", {"volume_id": other, "name": "few-2"}), 500, 13, "re:maximum number of snapshots")
    ok("POST", "/v1/volumes/snapshots", {"volume_id": other, "name": "few-2"})


@test
def routing_failures_are_plain_text():
    r = px("GET", "/v1/nonsense")
    eq((r.status, r.raw, r.ctype), (404, b"Not Found\n", "text/plain; charset=utf-8"), "unknown path")
    r = px("GET", "/v1/volumes/123")
    eq((r.status, r.raw), (405, b"Method Not Allowed\n"), "wrong method")
    r = px("POST", "/v1/volumes/snapshot/schedules/1", {})
    sdk_error(r, 501, 12, "Ferry's Portworx double does not implement OpenStorageVolume_SnapshotScheduleUpdate")


# == SDK: cloud backups and credentials =====================================================================


@test
def credentials():
    reset()
    ids = ok("GET", "/v1/credentials")["credential_ids"]
    eq(len(ids), 1, "one seeded credential")
    c = ok("GET", f"/v1/credentials/inspect/{ids[0]}")
    eq((c["name"], c["bucket"], c["aws_credential"]["region"]), ("ferry-s3", "ferry-cloudsnaps", "eu-west-1"), "credential")
    new = ok("POST", "/v1/credentials", {"name": "other", "bucket": "b", "aws_credential": {"access_key": "A", "secret_key": "S", "region": "us-east-1"}})["credential_id"]
    eq(ok("GET", "/v1/credentials")["credential_ids"], [ids[0], new], "enumerate")
    eq(ok("DELETE", f"/v1/credentials/{new}"), {}, "delete")
    sdk_error(px("GET", "/v1/credentials/inspect/nope"), 404, 5)


@test
def cloud_backup_round_trip():
    reset()
    vid = create_volume("cs", 1 << 30, {"app": "mongo"})
    task = ok("POST", "/v1/cloudbackups", {"volume_id": vid, "labels": {"run": "1"}})["task_id"]
    seen = []
    for _ in range(3):
        st = ok("POST", "/v1/cloudbackups/status", {"task_id": task})["statuses"][task]
        seen.append(st["status"])
    eq(seen, ["SdkCloudBackupStatusTypeNotStarted", "SdkCloudBackupStatusTypeActive", "SdkCloudBackupStatusTypeDone"], "NotStarted -> Active -> Done")
    eq((st["optype"], st["src_volume_id"], st["bytes_done"], st["bytes_total"]), ("SdkCloudBackupOpTypeBackupOp", vid, "33964032", "33964032"), "done status")
    backups = ok("POST", "/v1/cloudbackups/enumerate/filters", {"src_volume_id": vid})["backups"]
    eq([(b["id"], b["src_volume_name"], b["metadata"]) for b in backups], [(st["backup_id"], "cs", {"run": "1"})], "enumerate")
    r = ok("POST", "/v1/cloudbackups/restore", {"backup_id": st["backup_id"], "restore_volume_name": "cs-restored"})
    rv = inspect(r["restore_volume_id"])
    eq((rv["name"], rv["volume"]["spec"]["ha_level"], rv["labels"]), ("cs-restored", "1", {"app": "mongo"}), "restored volume (ha 1)")
    for _ in range(3):
        rst = ok("POST", "/v1/cloudbackups/status", {"task_id": r["task_id"]})["statuses"][r["task_id"]]
    eq((rst["status"], rst["optype"], rst["src_volume_id"]), ("SdkCloudBackupStatusTypeDone", "SdkCloudBackupOpTypeRestoreOp", r["restore_volume_id"]), "restore task")
    eq(sorted(ok("POST", "/v1/cloudbackups/status", {"volume_id": vid})["statuses"]), [task], "status by volume")
    eq(ok("GET", f"/v1/cloudbackups/history/{vid}")["history_list"][0]["status"], "SdkCloudBackupStatusTypeDone", "history")


@test
def cloud_backup_errors():
    reset()
    vid = create_volume("ce")
    ok("POST", "/v1/cloudbackups", {"volume_id": vid, "task_id": "t1"})
    sdk_error(px("POST", "/v1/cloudbackups", {"volume_id": vid, "task_id": "t1"}), 409, 6)
    sdk_error(px("POST", "/v1/cloudbackups", {}), 400, 3, "Must supply volume id")
    sdk_error(px("POST", "/v1/cloudbackups", {"volume_id": "1"}), 404, 5)
    sdk_error(px("POST", "/v1/cloudbackups", {"volume_id": vid, "credential_id": "nope"}), 404, 5)
    sdk_error(px("POST", "/v1/cloudbackups/status", {"task_id": "nope"}), 503, 14, "No Backup status found")
    sdk_error(px("POST", "/v1/cloudbackups/restore", {"backup_id": "nope"}), 404, 5)
    control("POST", "faults", {"kind": "cloudsnap_failed", "message": "bucket is gone"})
    control("POST", "config", {"cloudsnap_steps": ["SdkCloudBackupStatusTypeDone"]})
    t = ok("POST", "/v1/cloudbackups", {"volume_id": vid})["task_id"]
    st = ok("POST", "/v1/cloudbackups/status", {"task_id": t})["statuses"][t]
    eq((st["status"], st["info"]), ("SdkCloudBackupStatusTypeFailed", ["bucket is gone"]), "failed backup")


# == faults and the call log ==========================================================================


@test
def faults_error_slow_drop_unauthorized():
    reset()
    control("POST", "faults", {"kind": "error", "op": "SnapshotCreate", "code": 14, "message": "px is restarting"})
    vid = create_volume("f")
    sdk_error(px("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "x"}), 503, 14, "px is restarting")
    ok("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "x"})
    control("POST", "faults", {"kind": "error", "path": "^/v1/volumes/inspect/", "skip": 1})
    inspect(vid)
    sdk_error(px("GET", f"/v1/volumes/inspect/{vid}"), 500, 13, "re:injected Internal error")
    control("POST", "faults", {"kind": "slow", "op": "OpenStorageVolume_Inspect", "delay_ms": 300})
    t0 = time.monotonic()
    inspect(vid)
    check(time.monotonic() - t0 >= 0.3, "slow fault")
    control("POST", "faults", {"kind": "drop", "method": "GET", "path": "/v1/volumes$"})
    try:
        px("GET", "/v1/volumes")
        raise AssertionError("the connection should have been dropped")
    except (http.client.RemoteDisconnected, ConnectionError):
        pass
    control("POST", "faults", {"kind": "unauthorized"})
    sdk_error(px("GET", "/v1/volumes"), 401, 16, "Unable to authenticate token: Token is expired")
    ok("GET", "/v1/volumes")
    control("POST", "faults", {"kind": "error", "count": -1, "op": "Clone"})
    eq(len(control("GET", "faults")["faults"]), 1, "persistent fault listed")
    control("DELETE", "faults")
    eq(control("GET", "faults")["faults"], [], "cleared")
    control("POST", "faults", {"kind": "bogus"}, expect=400)


@test
def call_log():
    reset()
    control("DELETE", "calls")
    vid = create_volume("logged")
    px("GET", "/v1/volumes/inspect/1")
    calls = control("GET", "calls")["calls"]
    eq([(c["method"], c["path"], c["op"], c["status"], c["code"]) for c in calls],
       [("POST", "/v1/volumes", "OpenStorageVolume_Create", 200, 0), ("GET", "/v1/volumes/inspect/1", "OpenStorageVolume_Inspect", 404, 5)], "calls")
    check('"logged"' in calls[0]["body"], "request body recorded")
    eq(len(control("GET", f"calls?since={calls[0]['seq']}")["calls"]), 1, "since")
    eq(len(control("GET", "calls?op=Create")["calls"]), 1, "by op")
    check(vid, "")


# == secured mode =====================================================================================


@test
def secured_mode_tokens_and_roles():
    reset()
    vid = create_volume("sec")
    cfg = control("POST", "config", {"secured": True})["config"]
    eq(cfg["secured"], True, "secured")
    health = control("GET", "health")
    admin = health["admin_token"]
    secret = kube("GET", "/api/v1/namespaces/kube-system/secrets/px-admin-token", expect=200)
    eq(base64.b64decode(secret["data"]["auth-token"]).decode(), admin, "px-admin-token/auth-token")
    shared = kube("GET", "/api/v1/namespaces/kube-system/secrets/px-shared-secret", expect=200)
    eq(base64.b64decode(shared["data"]["shared-secret"]).decode(), tokens.DEFAULT_SECRET, "px-shared-secret")
    claims = tokens.unverified_claims(admin)
    eq((claims["iss"], claims["roles"], claims["groups"]), ("operator.portworx.io", ["system.admin"], ["*"]), "admin claims")
    sdk_error(px("GET", "/v1/volumes"), 401, 16, "Invalid or missing authentication token")
    sdk_error(px("GET", "/v1/volumes", headers={"Authorization": "Basic abc"}), 401, 16, "Request unauthenticated with bearer")
    forged = tokens.mint("x@y", roles=["system.admin"], secret="wrong")
    sdk_error(px("GET", "/v1/volumes", token=forged), 401, 16, "Unable to authenticate token: signature is invalid")
    sdk_error(px("GET", "/v1/volumes", token=tokens.mint("x@y", issuer="evil.example.com")), 401, 16, "evil.example.com is not a trusted issuer")
    sdk_error(px("GET", "/v1/volumes", token=tokens.mint("x@y", expires_in=-10)), 401, 16, "Unable to authenticate token: Token is expired")
    sdk_error(px("GET", "/v1/volumes", token="not.a-token"), 401, 16)
    sdk_error(px("GET", "/v1/volumes", token=tokens.sign({"iss": "operator.portworx.io", "sub": "s", "exp": time.time() + 60, "iat": 1}, tokens.DEFAULT_SECRET)), 403, 7,
              "re:missing required claims: name, email")
    eq(ok("GET", "/v1/volumes", token=admin)["volume_ids"], [vid], "admin")
    view = tokens.mint("viewer@ferry.test", roles=["system.view"])
    eq(inspect(vid, token=view)["volume"]["id"], vid, "view may inspect")
    sdk_error(px("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "v"}, token=view), 403, 7, "Access denied to roles: [system.view]")
    user = control("GET", "tokens")["user_token"]
    sid = ok("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "u"}, token=user)["snapshot_id"]
    eq(inspect(sid, token=admin)["volume"]["spec"]["ownership"], {"owner": "px-user@ferry.test"}, "owner from the token")
    sdk_error(px("GET", "/v1/clusters/inspectcurrent", token=tokens.mint("n@f", roles=["custom.none"])), 403, 7)
    minted = control("POST", "tokens", {"sub": "ci@ferry.test", "roles": ["system.user"]})["token"]
    ok("GET", "/v1/volumes", token=minted)


@test
def secured_guest_rotation_and_off():
    reset()
    create_volume("g")
    control("POST", "config", {"secured": True, "guest_access": True})
    ok("GET", "/v1/volumes")  # guest: volume APIs
    ok("GET", "/v1/identities/version")
    sdk_error(px("GET", "/v1/credentials"), 403, 7, "Access denied to roles: [system.guest]")
    control("POST", "config", {"guest_access": False})
    old = control("GET", "health")["admin_token"]
    new = control("POST", "tokens", {"rotate": True})["token"]
    sdk_error(px("GET", "/v1/volumes", token=old), 401, 16, "Unable to authenticate token: Token is expired")
    ok("GET", "/v1/volumes", token=new)
    secret = kube("GET", "/api/v1/namespaces/kube-system/secrets/px-admin-token", expect=200)
    eq(base64.b64decode(secret["data"]["auth-token"]).decode(), new, "the Secret holds the new token (re-read on 401)")
    control("POST", "tokens", {"trust": True, "issuer": "ferry.ci", "secret": "s3cret"})
    ok("GET", "/v1/volumes", token=tokens.mint("ci@f", issuer="ferry.ci", secret="s3cret"))
    control("POST", "config", {"secured": False})
    ok("GET", "/v1/volumes")
    check(request(S["kube_port"], "GET", "/api/v1/namespaces/kube-system/secrets/px-admin-token").status == 404, "Secrets removed when security is off")


# == shared state with Kubernetes ======================================================================


@test
def seeded_portworx_objects():
    reset()
    pods = kube("GET", "/api/v1/namespaces/kube-system/pods?labelSelector=name%3Dportworx")["items"]
    eq([(p["metadata"]["name"], p["status"]["phase"], p["spec"]["containers"][0]["name"]) for p in pods], [("portworx-ferry-node-1", "Running", "portworx")], "Portworx pod")
    svcs = kube("GET", "/api/v1/services?labelSelector=name%3Dportworx-api")["items"]
    eq([(s["metadata"]["namespace"], s["metadata"]["name"], [p["port"] for p in s["spec"]["ports"]]) for s in svcs], [("kube-system", "portworx-api", [9001, 9020, 9021])], "portworx-api")
    eq(kube("GET", "/apis/storage.k8s.io/v1/storageclasses/stork-snapshot-sc")["provisioner"], "stork-snapshot", "stork-snapshot-sc")
    control("POST", "config", {"namespace": "portworx", "secured": True})
    eq(len(kube("GET", "/api/v1/namespaces/portworx/pods?labelSelector=name%3Dportworx")["items"]), 1, "moved pod")
    eq(len(kube("GET", "/api/v1/services?labelSelector=name%3Dportworx-api")["items"]), 1, "one Service")
    kube("GET", "/api/v1/namespaces/portworx/secrets/px-admin-token", expect=200)
    eq(kube("GET", "/api/v1/namespaces/kube-system/pods?labelSelector=name%3Dportworx")["items"], [], "gone from kube-system")
    reset()
    eq(control("GET", "config")["config"]["namespace"], "kube-system", "reset restores the namespace")


@test
def pvc_gets_a_portworx_volume():
    reset()
    pvc("prod", "mongo-data", "2Gi", labels={"app": "mongo"})
    c = bound("prod", "mongo-data")
    vid, pv = pv_volume_id(c)
    eq(pv["spec"]["csi"]["driver"], "pxd.portworx.com", "CSI PV")
    r = inspect(vid)
    eq((r["name"], r["labels"]), (c["spec"]["volumeName"], {"app": "mongo", "pvc": "mongo-data", "namespace": "prod"}), "name = PV name; labels")
    eq((r["volume"]["spec"]["size"], r["volume"]["spec"]["ha_level"], r["volume"]["spec"]["io_profile"]), (str(2 << 30), "3", "IO_PROFILE_DB_REMOTE"), "spec from the StorageClass")
    eq(ok("POST", "/v1/volumes/filters", {"labels": {"pvc": "mongo-data", "namespace": "prod"}})["volume_ids"], [vid], "found by labels")
    # a non-Portworx class is left alone
    kube("POST", "/apis/storage.k8s.io/v1/storageclasses", {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "ebs"}, "provisioner": "ebs.csi.aws.com"}, expect=201)
    pvc("prod", "other", sc="ebs")
    bound("prod", "other")
    eq(len(ok("GET", "/v1/volumes")["volume_ids"]), 1, "no PX volume for an EBS claim")
    # deleting the claim deletes the volume (reclaim Delete)
    kube("DELETE", "/api/v1/namespaces/prod/persistentvolumeclaims/mongo-data", expect=200)
    wait_for(lambda: px("GET", f"/v1/volumes/inspect/{vid}").status == 404, "PX volume deleted with its PV")


@test
def pods_attach_and_detach():
    reset()
    pvc("prod", "data")
    vid = px_volume_of("prod", "data")["id"]
    pod("prod", "mongo-0", claim="data")
    running("prod", "mongo-0")
    v = wait_for(lambda: (lambda v: v if v["state"] == "VOLUME_STATE_ATTACHED" else None)(inspect(vid)["volume"]), "attached")
    eq((v["attached_on"], v["device_path"], [c["name"] for c in v["volume_consumers"]]), ("10.0.0.10", f"/dev/pxd/pxd{vid}", ["mongo-0"]), "attachment")
    check(v["attach_path"][0].endswith("/mount"), f"attach path {v['attach_path']}")
    out = pxctl("-j", "volume", "inspect", vid).json()[0]
    eq((out["state"], out["attached_on"]), ("attached", "10.0.0.10"), "pxctl sees it attached")
    kube("DELETE", "/api/v1/namespaces/prod/pods/mongo-0?gracePeriodSeconds=0", expect=200)
    v = wait_for(lambda: (lambda v: v if v["state"] == "VOLUME_STATE_DETACHED" else None)(inspect(vid)["volume"]), "detached")
    check("attached_on" not in v and "detach_time" in v, f"detached fields {sorted(v)}")
    # in-tree portworxVolume by name
    name = inspect(vid)["name"]
    pod("prod", "raw", px_volume=name)
    wait_for(lambda: inspect(vid)["volume"]["state"] == "VOLUME_STATE_ATTACHED", "attached by in-tree name")
    # a pod already on its node before its claim is bound attaches once it is
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "early"},
            "spec": {"nodeName": "ferry-node-1", "containers": [{"name": "main", "image": "busybox"}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "late"}}]}}
    kube("POST", "/api/v1/namespaces/prod/pods", body, expect=201)
    pvc("prod", "late")
    late = px_volume_of("prod", "late")["id"]
    wait_for(lambda: inspect(late)["volume"]["state"] == "VOLUME_STATE_ATTACHED", "attached once bound")


@test
def concurrent_snapshots():
    import concurrent.futures
    reset()
    vids = [create_volume(f"c{i}") for i in range(25)]

    def snap(i):
        r = request(S["px_port"], "POST", "/v1/volumes/snapshots", {"volume_id": vids[i % 25], "name": f"c-snap-{i}"})
        return r.status, r.json.get("snapshot_id")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(snap, range(50)))
    eq({st for st, _ in got}, {200}, "all created")
    eq(len({sid for _, sid in got}), 50, "distinct ids")
    eq(len(ok("GET", "/v1/volumes/snapshots")["volume_snapshot_ids"]), 50, "enumerated")


@test
def csi_snapshot_and_restore():
    reset()
    pvc("prod", "data", "1Gi")
    vid = px_volume_of("prod", "data")["id"]
    kube("POST", f"{CSI}/namespaces/prod/volumesnapshots", {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "snap1"},
                                                          "spec": {"volumeSnapshotClassName": "px-csi-snapclass", "source": {"persistentVolumeClaimName": "data"}}}, expect=201)
    vs = wait_for(lambda: (lambda o: o if (o.get("status") or {}).get("readyToUse") else None)(kube("GET", f"{CSI}/namespaces/prod/volumesnapshots/snap1")), "CSI snapshot ready")
    content = kube("GET", f"{CSI}/volumesnapshotcontents/{vs['status']['boundVolumeSnapshotContentName']}")
    sid = content["status"]["snapshotHandle"]
    s = inspect(sid)
    eq((s["volume"]["readonly"], s["volume"]["source"]["parent"], s["name"]), (True, vid, f"snapshot-{vs['metadata']['uid']}"), "PX snapshot")
    eq(vs["status"]["restoreSize"], "1Gi", "restore size")
    eq(ok("GET", f"/v1/volumes/snapshots?volume_id={vid}")["volume_snapshot_ids"], [sid], "enumerated")
    pvc("prod", "restored", "1Gi", data_source={"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap1"})
    clone = px_volume_of("prod", "restored")
    eq((clone["source"]["parent"], clone.get("readonly"), clone["locator"]["volume_labels"]["pvc"]), (sid, None, "restored"), "the restore is a PX clone of the snapshot")
    # deleting the VolumeSnapshot deletes the PX snapshot (deletionPolicy Delete)
    kube("DELETE", "/api/v1/namespaces/prod/persistentvolumeclaims/restored", expect=200)
    kube("DELETE", f"{CSI}/namespaces/prod/volumesnapshots/snap1", expect=200)
    wait_for(lambda: px("GET", f"/v1/volumes/inspect/{sid}").status == 404, "PX snapshot deleted")
    wait_for(lambda: px("GET", f"/v1/volumes/inspect/{clone['id']}").status == 404, "clone deleted")


@test
def csi_snapshot_hits_the_limit():
    reset()
    control("POST", "config", {"snapshot_limit": 0})
    pvc("prod", "data")
    bound("prod", "data")
    kube("POST", f"{CSI}/namespaces/prod/volumesnapshots", {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "s"},
                                                          "spec": {"source": {"persistentVolumeClaimName": "data"}}}, expect=201)
    vs = wait_for(lambda: (lambda o: o if (o.get("status") or {}).get("error") else None)(kube("GET", f"{CSI}/namespaces/prod/volumesnapshots/s")), "snapshot error")
    check("maximum number of snapshots (0)" in vs["status"]["error"]["message"] and "code = Internal" in vs["status"]["error"]["message"], vs["status"]["error"])
    eq(vs["status"]["readyToUse"], False, "not ready")


@test
def stork_snapshot_rules_and_cross_namespace_restore():
    reset()
    pvc("prod", "data", labels={"app": "mongo"})
    vid = px_volume_of("prod", "data")["id"]
    pod("prod", "mongo-0", labels={"app": "mongo"})
    running("prod", "mongo-0")
    for name, cmd in (("presnap", 'mongosh --eval "db.fsyncLock()"'), ("postsnap", 'mongosh --eval "db.fsyncUnlock()"')):
        kube("POST", f"{GROUP}/namespaces/prod/rules", {"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "Rule", "metadata": {"name": name},
                                                       "rules": [{"podSelector": {"app": "mongo"}, "actions": [{"type": "command", "value": cmd}]}]}, expect=201)
    control("DELETE", "calls")
    kube("POST", f"{STORK}/namespaces/prod/volumesnapshots", {
        "apiVersion": "volumesnapshot.external-storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "nightly", "annotations": {"stork.libopenstorage.org/pre-snapshot-rule": "presnap", "stork.libopenstorage.org/post-snapshot-rule": "postsnap",
                                                        "stork.libopenstorage.org/snapshot-restore-namespaces": "staging"}},
        "spec": {"persistentVolumeClaimName": "data"}}, expect=201)
    vs = wait_for(lambda: (lambda o: o if ready_condition(o) else None)(kube("GET", f"{STORK}/namespaces/prod/volumesnapshots/nightly")), "STORK snapshot Ready")
    eq(vs["status"]["conditions"][0]["message"], "Snapshot created successfully and it is ready", "Ready message")
    vsd = kube("GET", f"{STORK}/volumesnapshotdatas/{vs['spec']['snapshotDataName']}")
    sid = vsd["spec"]["portworxVolume"]["snapshotId"]
    s = inspect(sid)
    eq((s["name"], s["labels"], s["volume"]["source"]["parent"]), (f"snapshot-{vs['metadata']['uid']}", {"stork-snap": "nightly", "namespace": "prod"}, vid), "STORK's PX snapshot")
    rules = [(c["phase"], c["pod"], c["command"]) for c in control("GET", "calls?method=RULE")["calls"]]
    eq(rules, [("pre", "mongo-0", 'mongosh --eval "db.fsyncLock()"'), ("post", "mongo-0", 'mongosh --eval "db.fsyncUnlock()"')], "rules around the snapshot")
    ann = {"snapshot.alpha.kubernetes.io/snapshot": "nightly", "stork.libopenstorage.org/snapshot-source-namespace": "prod"}
    pvc("staging", "copy", sc="stork-snapshot-sc", annotations=ann)
    clone = px_volume_of("staging", "copy")
    eq((clone["source"]["parent"], clone["locator"]["volume_labels"]["namespace"], clone["locator"]["name"]),
       (sid, "staging", f"pvc-{kube('GET', '/api/v1/namespaces/staging/persistentvolumeclaims/copy')['metadata']['uid']}"), "STORK restore = clone named pvc-<uid>")
    pv = kube("GET", f"/api/v1/persistentvolumes/{bound('staging', 'copy')['spec']['volumeName']}")
    eq((pv["spec"].get("portworxVolume"), pv["spec"].get("csi")), ({"volumeID": clone["id"], "fsType": "ext4"}, None), "an in-tree PV from the start")
    # another namespace is not allowed by the snapshot
    pvc("dev", "copy", sc="stork-snapshot-sc", annotations=ann)
    ev = wait_for(lambda: [e for e in kube("GET", "/api/v1/namespaces/dev/events")["items"] if e["reason"] == "ProvisioningFailed"], "ProvisioningFailed")
    check("not in its stork.libopenstorage.org/snapshot-restore-namespaces" in ev[0]["message"], ev[0]["message"])
    eq(kube("GET", "/api/v1/namespaces/dev/persistentvolumeclaims/copy")["status"]["phase"], "Pending", "still pending")
    kube("DELETE", f"{STORK}/namespaces/prod/volumesnapshots/nightly", expect=200)
    wait_for(lambda: px("GET", f"/v1/volumes/inspect/{sid}").status == 404, "PX snapshot deleted with the STORK snapshot")


@test
def stork_cloud_snapshot():
    reset()
    pvc("prod", "data")
    vid = px_volume_of("prod", "data")["id"]
    kube("POST", f"{STORK}/namespaces/prod/volumesnapshots", {
        "apiVersion": "volumesnapshot.external-storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "offsite", "annotations": {"portworx/snapshot-type": "cloud"}}, "spec": {"persistentVolumeClaimName": "data"}}, expect=201)
    vs = wait_for(lambda: (lambda o: o if ready_condition(o) else None)(kube("GET", f"{STORK}/namespaces/prod/volumesnapshots/offsite")), "cloud snapshot Ready")
    bid = kube("GET", f"{STORK}/volumesnapshotdatas/{vs['spec']['snapshotDataName']}")["spec"]["portworxVolume"]["snapshotId"]
    backups = ok("POST", "/v1/cloudbackups/enumerate/filters", {"src_volume_id": vid})["backups"]
    eq([b["id"] for b in backups], [bid], "the cloud backup behind the snapshot")
    st = ok("POST", "/v1/cloudbackups/status", {"task_id": vs["metadata"]["uid"]})["statuses"]
    eq(list(st), [vs["metadata"]["uid"]], "task id = VolumeSnapshot UID")


@test
def group_volume_snapshot():
    reset()
    for n in ("db-0", "db-1"):
        pvc("prod", n, labels={"app": "db"})
    pvc("prod", "cache", labels={"app": "cache"})
    ids = {n: px_volume_of("prod", n)["id"] for n in ("db-0", "db-1")}
    kube("POST", f"{GROUP}/namespaces/prod/rules", {"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "Rule", "metadata": {"name": "freeze"},
                                                   "rules": [{"podSelector": {"app": "db"}, "actions": [{"type": "command", "value": "fsfreeze -f /data"}]}]}, expect=201)
    pod("prod", "db-pod", labels={"app": "db"})
    running("prod", "db-pod")
    control("DELETE", "calls")
    kube("POST", f"{GROUP}/namespaces/prod/groupvolumesnapshots", {
        "apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "GroupVolumeSnapshot", "metadata": {"name": "grp"},
        "spec": {"preExecRule": "freeze", "pvcSelector": {"matchLabels": {"app": "db"}}, "restoreNamespaces": ["staging"]}}, expect=201)
    g = wait_for(lambda: (lambda o: o if (o.get("status") or {}).get("stage") == "Final" else None)(kube("GET", f"{GROUP}/namespaces/prod/groupvolumesnapshots/grp")), "group Final")
    eq(g["status"]["status"], "Successful", "group status")
    uid = g["metadata"]["uid"]
    entries = g["status"]["volumeSnapshots"]
    eq(sorted(e["VolumeSnapshotName"] for e in entries), [f"grp-db-0-{uid}", f"grp-db-1-{uid}"], "children names")
    eq(sorted(e["ParentVolumeID"] for e in entries), sorted(ids.values()), "parents")
    for e in entries:
        child = kube("GET", f"{STORK}/namespaces/prod/volumesnapshots/{e['VolumeSnapshotName']}")
        check(ready_condition(child), f"child {e['VolumeSnapshotName']} Ready")
        eq(child["metadata"]["annotations"]["stork.libopenstorage.org/snapshot-restore-namespaces"], "staging", "restore namespaces copied")
        sid = e["DataSource"]["portworxVolume"]["snapshotId"]
        eq(inspect(sid)["volume"]["readonly"], True, "PX snapshot")
    eq([c["command"] for c in control("GET", "calls?method=RULE")["calls"]], ["fsfreeze -f /data"], "pre rule ran once")
    # restore one child into staging via STORK
    pvc("staging", "db-0", sc="stork-snapshot-sc", annotations={"snapshot.alpha.kubernetes.io/snapshot": f"grp-db-0-{uid}", "stork.libopenstorage.org/snapshot-source-namespace": "prod"})
    eq(px_volume_of("staging", "db-0")["source"]["parent"], next(e["DataSource"]["portworxVolume"]["snapshotId"] for e in entries if "db-0" in e["VolumeSnapshotName"]), "restored child")
    sids = [e["DataSource"]["portworxVolume"]["snapshotId"] for e in entries]
    kube("DELETE", f"{GROUP}/namespaces/prod/groupvolumesnapshots/grp", expect=200)
    wait_for(lambda: all(px("GET", f"/v1/volumes/inspect/{s}").status == 404 for s in sids), "group snapshots deleted")
    # a missing rule fails the group
    kube("POST", f"{GROUP}/namespaces/prod/groupvolumesnapshots", {
        "apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "GroupVolumeSnapshot", "metadata": {"name": "bad"},
        "spec": {"preExecRule": "nope", "pvcSelector": {"matchLabels": {"app": "db"}}}}, expect=201)
    g = wait_for(lambda: (lambda o: o if (o.get("status") or {}).get("status") == "Failed" else None)(kube("GET", f"{GROUP}/namespaces/prod/groupvolumesnapshots/bad")), "group Failed")
    eq(g["status"]["stage"], "PreSnapshot", "failed stage")


@test
def kube_reset_resets_portworx():
    reset()
    create_volume("gone")
    control("POST", "config", {"snapshot_limit": 3})
    reset()
    eq(ok("GET", "/v1/volumes"), {}, "volumes gone")
    eq(control("GET", "config")["config"]["snapshot_limit"], 64, "config back")
    eq(len(kube("GET", "/api/v1/namespaces/kube-system/pods?labelSelector=name%3Dportworx")["items"]), 1, "pod re-seeded")


# == pxctl ========================================================================================


@test
def pxctl_json_shapes():
    reset()
    vid = create_volume("pxv", 1 << 30, {"app": "mongo"}, ha=2)
    r = pxctl("-j", "volume", "list")
    eq(r.exit, 0, f"exit ({r.stderr})")
    vols = r.json()
    eq(len(vols), 1, "one volume")
    v = vols[0]
    eq((v["id"], v["locator"]["name"], v["locator"]["volume_labels"], v["status"], v["state"], v["format"]), (vid, "pxv", {"app": "mongo"}, "up", "detached", "ext4"), "pxctl enums")
    eq((v["spec"]["size"], v["spec"]["ha_level"], v["source"]["parent"], v["readonly"], v["spec"]["cos"]), (str(1 << 30), "2", "", False, "low"), "defaults emitted, int64 strings")
    eq(pxctl("volume", "list", "-j").json()[0]["id"], vid, "-j after the command")
    eq(pxctl("--json", "v", "i", "pxv").json()[0]["id"], vid, "inspect by name, aliases")
    r = pxctl("-j", "volume", "inspect", "nope")
    eq((r.exit, r.stderr), (1, "Volume nope not found\n"), "unknown volume")
    check(pxctl("volume", "list").stdout.startswith("ID\t"), "text columns without -j")


@test
def pxctl_snapshots_share_state():
    reset()
    vid = create_volume("prod-vol")
    r = pxctl("-j", "snap", "create", "--name", "stage-1", "--label", "env=stage", vid)
    m = re.search(r"([0-9]+)\s*$", r.stdout)
    check(r.exit == 0 and r.stdout.startswith("Volume successfully snapped: ") and m, f"snap create: {r.stdout!r} {r.stderr!r}")
    sid = m.group(1)
    s = inspect(sid)
    eq((s["volume"]["readonly"], s["volume"]["source"]["parent"], s["labels"]), (True, vid, {"env": "stage"}), "SDK sees the pxctl snapshot")
    r = pxctl("-j", "volume", "snapshot", "create", "--name", "stage-2", "prod-vol")
    check(r.stdout.startswith("Volume snap successful: "), r.stdout)
    sdk_sid = ok("POST", "/v1/volumes/snapshots", {"volume_id": vid, "name": "stage-3"})["snapshot_id"]
    snaps = pxctl("-j", "snap", "list").json()
    eq([x["locator"]["name"] for x in snaps], ["stage-1", "stage-2", "stage-3"], "snap list")
    check(all(x["readonly"] and x["source"]["parent"] == vid for x in snaps), "true snapshots")
    eq([x["locator"]["name"] for x in pxctl("-j", "volume", "list", "--snapshot", "--label", "env=stage").json()], ["stage-1"], "list -s -l")
    eq([x["id"] for x in pxctl("-j", "volume", "list").json()], [vid], "volume list omits snapshots")
    r = pxctl("-j", "snap", "create", "--name", "stage-1", vid)
    check(r.exit == 1 and "already exists" in r.stderr, f"duplicate: {r.stderr!r}")
    r = pxctl("-j", "snap", "delete", sdk_sid)
    eq((r.exit, r.stdout), (0, f"Snapshot {sdk_sid} successfully deleted.\n"), "snap delete")
    sdk_error(px("GET", f"/v1/volumes/inspect/{sdk_sid}"), 404, 5)
    r = pxctl("volume", "delete", "stage-2")
    eq((r.exit, r.stdout, r.stderr), (1, "Delete volume 'stage-2', proceed ? (Y/N): ", "Aborted\n"), "delete prompts; no stdin aborts")
    r = pxctl("volume", "delete", "stage-2", stdin=b"Y\n")
    eq((r.exit, r.stdout.endswith("Volume stage-2 successfully deleted.\n")), (0, True), "Y deletes")
    r = pxctl("volume", "clone", "--name", "stage-clone", sid)
    cid = re.search(r"([0-9]+)\s*$", r.stdout).group(1)
    eq(inspect(cid)["volume"]["source"]["parent"], sid, "pxctl clone")
    r = pxctl("volume", "restore", "--snapshot", "stage-1", "prod-vol")
    eq(r.stdout, "Successfully started restoring volume prod-vol from stage-1.\n", "restore")


@test
def pxctl_where_and_how():
    reset()
    create_volume("w")
    eq(len(Exec(["env", "FOO=1", "pxctl", "-j", "volume", "list"]).json()), 1, "env prefix")
    eq(len(Exec(["sh", "-c", "/opt/pwx/bin/pxctl -j volume list"]).json()), 1, "sh -c")
    pvc("prod", "data")
    bound("prod", "data")
    pod("prod", "app")
    running("prod", "app")
    r = Exec(["pxctl", "-j", "volume", "list"], pod_name="app", ns="prod", container="main")
    check(r.exit is None and "executable file not found" in r.status["message"], f"no pxctl outside the Portworx pod: {r.status}")
    kube("POST", "/_ferry/exec", {"pods": {"kube-system/portworx-ferry-node-1": [{"match": ["pxctl"], "stderr": "scripted\n", "exit": 3}]}}, expect=200)
    eq(pxctl("-j", "volume", "list").exit, 0, "rules match argv[0] exactly (/opt/pwx/bin/pxctl is not pxctl)")
    eq(Exec(["pxctl", "status"]).exit, 3, "a scripted rule wins")
    kube("POST", "/_ferry/exec", {"reset": True}, expect=200)
    control("POST", "faults", {"kind": "error", "op": "pxctl", "message": "pxctl: PX is not running on this host"})
    r = pxctl("-j", "volume", "list")
    eq((r.exit, r.stderr), (1, "pxctl: PX is not running on this host\n"), "pxctl fault")
    calls = [c for c in control("GET", "calls?op=pxctl")["calls"]]
    check(calls and calls[-1]["argv"][1:] == ["-j", "volume", "list"] and calls[-1]["exit"] == 1, f"pxctl call log {calls[-1:]}")
    control("POST", "config", {"secured": True})
    r = pxctl("-j", "volume", "list")
    check(r.exit == 1 and "Unauthenticated" in r.stderr, f"secured pxctl needs a token: {r.stderr!r}")
    admin = control("GET", "health")["admin_token"]
    eq(Exec(["env", f"PXCTL_AUTH_TOKEN={admin}", "/opt/pwx/bin/pxctl", "-j", "volume", "list"]).exit, 0, "PXCTL_AUTH_TOKEN")


# == the schema check itself ===========================================================================


@test
def schema_validation_is_effective():
    check(jsonschema is not None, "python3-jsonschema is not installed (Makefile DEPS)")
    sw = S["swagger"]
    ref = {"$ref": "#/components/schemas/apiSdkVolumeInspectResponse"}
    good = {"volume": {"id": "1", "spec": {"size": "1024"}, "state": "VOLUME_STATE_DETACHED"}, "name": "n"}
    eq(sw.validate(ref, good), [], "a good document")
    check(sw.validate(ref, {"volume": {"spec": {"size": 1024}}}), "int64 as a number is refused")
    check(sw.validate(ref, {"volume": {"state": "detached"}}), "pxctl enum spelling is refused")
    check(sw.validate(ref, {"volume": {"volumeId": "1"}}), "an unknown (camelCase) key is refused")
    check(sw.validate(ref, {"volume": {"ctime": "yesterday"}}), "a bad date-time is refused")
    check(sw.defaults(ref, {"volume": {"readonly": False, "state": "VOLUME_STATE_NONE"}, "labels": {}}), "defaults are spotted")
    check(S["validated"] >= 100, f"only {S['validated']} responses were validated")


# -- harness ------------------------------------------------------------------------------------------------


def start(workdir):
    pport = os.path.join(workdir, "portworx.port")
    server = testlib.Server(SERVER, workdir, "kube", "--portworx-port-file", pport)
    S["kube_port"] = server.port
    S["px_port"] = int(open(pport).read())
    health = kube("GET", "/_ferry/health", expect=200)
    return server, health


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else None
    workdir = tempfile.mkdtemp(prefix="ferry-portworx-test-")
    tally = testlib.Tally()
    server = None
    try:
        if jsonschema is None:
            print("FAIL setup: python3-jsonschema is missing (apt-get install python3-jsonschema)")
            print("0 passed, 1 failed")
            return 1
        S["swagger"] = Swagger(SWAGGER)
        server, health = start(workdir)
        if health.get("load_errors"):
            print(f"FAIL load: {health['load_errors']}")
            tally.failed += 1

        def before(fn):
            if only and fn is schema_validation_is_effective and S["validated"] < 100:
                S["validated"] = 100  # a partial run validates fewer responses

        testlib.run(TESTS, only=only, tally=tally, timed=True, before=before)
    finally:
        if server is not None:
            server.stop()
        if tally.failed or os.environ.get("FERRY_TEST_KEEP"):
            print(f"(server log: {os.path.join(workdir, 'kube.log')})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"({S['validated']} SDK responses validated against the swagger)")
    return testlib.summary(tally)


if __name__ == "__main__":
    sys.exit(main())
