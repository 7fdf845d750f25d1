#!/usr/bin/python3
"""test_conformance.py: the Kubernetes double checked with real clients.

Starts its own server.py (HTTPS, client-certificate and token auth; certificates
from ../certs.sh in a scratch directory) and writes a kubeconfig for it, then:
  - kubectl (a fresh KUBECACHEDIR per run): discovery of both VolumeSnapshot
    groups, apply of a multi-document manifest (namespace, configmap, deployment,
    service) with the OpenAPI v3 stub (fieldValidation=Strict), get -o json,
    re-apply unchanged / changed, rollout status and wait --for=condition (need
    controllers.py), exec with exit codes and logs (need streams.py), server-side
    apply conflicts and --force-conflicts, --dry-run=server, 403 for the limited
    token, 401 for an expired token, delete;
  - Debian's python3-kubernetes: list, create (409 on a duplicate), paginated list,
    patch, watch.Watch().stream with a timeout, delete;
  - the wire protocol directly: watch 410 as an ERROR event and as HTTP 410,
    bookmarks, exact-RV resume, WatchList's initial-events-end bookmark, continue
    expiry, selectors, faults (429 + Retry-After, 500, dropped connection), 415,
    404/409/422 Status bodies, server-side apply over HTTP, dry run, finalizers,
    namespace Terminating, a CRD created at run time, anonymous access, scale.
Skips (with a message) only what cannot run: kubectl absent, controllers.py or
streams.py absent. Closes with "N passed, N failed"; exits 1 on any failure.

    /usr/bin/python3 tests/doubles/kube/test_conformance.py [name-substring]
"""

import http.client
import importlib.util
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
# Never let this folder's modules (auth, control, ...) shadow python3-kubernetes' imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.append(os.path.dirname(HERE))  # testlib.py
import testlib  # noqa: E402

SERVER = os.path.join(HERE, "server.py")
CERTS_SH = os.path.join(os.path.dirname(HERE), "certs.sh")
DEADLINE = 15.0
ADMIN = "ferry-admin-token"
TESTS = test = testlib.Tests()
S = {}  # run state: url, port, certs, kubeconfig, cache, health, workdir
check, eq, Skip = testlib.check, testlib.eq, testlib.Skip


def wait_for(condition, what, deadline=DEADLINE):
    return testlib.wait_for(condition, what, deadline)


def _load(name):
    spec = importlib.util.spec_from_file_location(f"ferry_kube_{name}", os.path.join(HERE, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- HTTP plumbing ------------------------------------------------------------------


def tls_context(client_cert=False):
    ctx = ssl.create_default_context(cafile=os.path.join(S["certs"], "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(os.path.join(S["certs"], "client.pem"), os.path.join(S["certs"], "client.key"))
    return ctx


def raw(method, path, body=None, headers=None, token=ADMIN, ctype="application/json", conn=None):
    """(status, headers dict lowercased, body bytes); token None sends no credentials."""
    own = conn is None
    conn = conn or http.client.HTTPSConnection("127.0.0.1", S["port"], context=tls_context(), timeout=DEADLINE)
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if body is not None:
        h.setdefault("Content-Type", ctype)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if own:
            conn.close()


def api(method, path, body=None, expect=None, **kw):
    status, headers, data = raw(method, path, body, **kw)
    doc = json.loads(data) if data and headers.get("content-type", "").startswith("application/json") else data
    if expect is not None:
        check(status == expect, f"{method} {path}: status {status}, want {expect}: {data[:400]!r}")
    return status, doc, headers


def ctl(method, name, body=None):
    status, doc, _ = api(method, "/_ferry/" + name, body)
    check(status == 200, f"control {name}: {status} {doc}")
    return doc


def requests_since(seq=0, **filters):
    q = "&".join([f"since={seq}"] + [f"{k}={v}" for k, v in filters.items()])
    return ctl("GET", f"requests?{q}")["requests"]


def last_seq():
    reqs = requests_since()
    return reqs[-1]["seq"] if reqs else 0


def watch_lines(path, count, timeout=5.0, token=ADMIN):
    """(status, [events]) reading up to `count` events of a watch stream."""
    conn = http.client.HTTPSConnection("127.0.0.1", S["port"], context=tls_context(), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        if r.status != 200:
            return r.status, [json.loads(r.read())]
        events = []
        end = time.monotonic() + timeout
        while len(events) < count and time.monotonic() < end:
            line = r.fp.readline()
            if not line:
                break
            line = line.strip()
            if not line or all(c in b"0123456789abcdefABCDEF" for c in line):
                continue  # chunk-size lines
            events.append(json.loads(line))
        return r.status, events
    finally:
        conn.close()


def namespace(name):
    api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, expect=201)


def configmap(ns, name, labels=None, data=None, finalizers=None):
    md = {"name": name}
    if labels:
        md["labels"] = labels
    if finalizers:
        md["finalizers"] = finalizers
    _, doc, _ = api("POST", f"/api/v1/namespaces/{ns}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data or {"k": "v"}}, expect=201)
    return doc


# -- kubectl ------------------------------------------------------------------------

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: staging-1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: staging-1
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: staging-1
  labels: {app: web}
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: staging-1
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
"""


def kubectl(*args, stdin=None, ok=True, timeout=30):
    if not shutil.which("kubectl"):
        raise Skip("kubectl is not installed")
    env = dict(os.environ, KUBECONFIG=S["kubeconfig"], KUBECACHEDIR=S["cache"])
    env.pop("HTTPS_PROXY", None)
    env.pop("https_proxy", None)
    p = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout)
    if ok:
        check(p.returncode == 0, f"kubectl {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()[:500]}")
    return p


def manifest(replicas=2):
    path = os.path.join(S["workdir"], f"app-{replicas}.yaml")
    with open(path, "w") as f:
        f.write(MANIFEST.replace("REPLICAS", str(replicas)))
    return path


def need(module):
    if not S["health"].get(module):
        raise Skip(f"{module}.py is not there yet (needed for this check)")


@test
def kubectl_discovery_maps_both_snapshot_groups():
    out = kubectl("api-resources", "-o", "name").stdout.split()
    for name in ("volumesnapshots.snapshot.storage.k8s.io", "volumesnapshots.volumesnapshot.external-storage.k8s.io", "groupvolumesnapshots.stork.libopenstorage.org", "rules.stork.libopenstorage.org", "deployments.apps", "pods"):
        check(name in out, f"{name} missing from kubectl api-resources: {out}")
    p = kubectl("get", "volumesnapshots.volumesnapshot.external-storage.k8s.io", "-A")
    check("No resources found" in p.stderr, p.stderr)
    p = kubectl("get", "vsclass", "-o", "json")
    eq([i["metadata"]["name"] for i in json.loads(p.stdout)["items"]], ["px-csi-snapclass"], "default VolumeSnapshotClass")


@test
def kubectl_apply_multi_document_manifest():
    seq = last_seq()
    p = kubectl("apply", "-f", manifest(2))
    for line in ("namespace/staging-1 created", "configmap/web-config created", "deployment.apps/web created", "service/web created"):
        check(line in p.stdout, f"{line!r} not in {p.stdout!r}")
    posts = [r for r in requests_since(seq, method="POST")]
    eq(len(posts), 4, "POSTs")
    check(all("fieldValidation=Strict" in r["query"] for r in posts), f"kubectl did not use server-side field validation: {[r['query'] for r in posts]}")


@test
def kubectl_get_json():
    p = kubectl("-n", "staging-1", "get", "deployment", "web", "-o", "json")
    d = json.loads(p.stdout)
    eq(d["kind"], "Deployment", "kind")
    check(d["metadata"]["uid"] and d["metadata"]["resourceVersion"], "uid/resourceVersion")
    eq(d["metadata"]["generation"], 1, "generation")
    eq(d["spec"]["strategy"]["type"], "RollingUpdate", "defaulted strategy")
    check("kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"], "last-applied annotation")


@test
def kubectl_reapply_unchanged_then_changed():
    p = kubectl("apply", "-f", manifest(2))
    check("deployment.apps/web unchanged" in p.stdout, p.stdout)
    p = kubectl("apply", "-f", manifest(3))
    check("deployment.apps/web configured" in p.stdout, p.stdout)
    d = json.loads(kubectl("-n", "staging-1", "get", "deploy", "web", "-o", "json").stdout)
    eq(d["spec"]["replicas"], 3, "replicas after apply")
    eq(d["metadata"]["generation"], 2, "generation after a spec change")


@test
def kubectl_rollout_status_is_watch_driven():
    need("controllers")
    seq = last_seq()
    p = kubectl("-n", "staging-1", "rollout", "status", "deployment/web", "--timeout=20s")
    check('deployment "web" successfully rolled out' in p.stdout, p.stdout)
    reqs = [r for r in requests_since(seq, resource="deployments.apps")]
    check(any(r["watch"] for r in reqs), f"no watch in {[(r['verb'], r['query']) for r in reqs]}")
    gets = [r for r in reqs if r["verb"] == "get"]
    check(len(gets) <= 2, f"rollout status polled: {len(gets)} GETs")


@test
def kubectl_wait_for_condition():
    need("controllers")
    p = kubectl("-n", "staging-1", "wait", "--for=condition=Available", "deployment/web", "--timeout=20s")
    check("condition met" in p.stdout, p.stdout)


def _a_pod():
    need("controllers")
    pods = json.loads(kubectl("-n", "staging-1", "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    check(pods, "no pods for deployment web")
    return pods[0]["metadata"]["name"]


@test
def kubectl_exec_exit_codes():
    need("streams")
    pod = _a_pod()
    p = kubectl("-n", "staging-1", "exec", pod, "--", "sh", "-c", "echo hi; exit 3", ok=False)
    eq(p.returncode, 3, f"exit code (stderr {p.stderr!r})")
    eq(p.stdout, "hi\n", "stdout")
    p = kubectl("-n", "staging-1", "exec", pod, "--", "echo", "ok")
    eq(p.stdout, "ok\n", "stdout")


@test
def kubectl_logs():
    need("streams")
    pod = _a_pod()
    ctl("POST", "exec", {"logs": [{"pod": f"staging-1/{pod}", "lines": ["one", "two", "three"]}]})
    p = kubectl("-n", "staging-1", "logs", pod, "--tail=2")
    eq(p.stdout, "two\nthree\n", "log tail")


@test
def kubectl_server_side_apply_conflict_and_force():
    path = manifest(4)
    p = kubectl("apply", "--server-side", "--field-manager=ci-tool", "-f", path, ok=False)
    check(p.returncode != 0 and "conflict" in p.stderr.lower() and ".spec.replicas" in p.stderr, f"no SSA conflict: {p.returncode} {p.stderr!r}")
    p = kubectl("apply", "--server-side", "--field-manager=ci-tool", "--force-conflicts", "-f", path)
    check("deployment.apps/web serverside-applied" in p.stdout, p.stdout)
    d = json.loads(kubectl("-n", "staging-1", "get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)
    managers = {(m["manager"], m["operation"]) for m in d["metadata"]["managedFields"]}
    check(("ci-tool", "Apply") in managers, f"managedFields: {managers}")
    eq(d["spec"]["replicas"], 4, "replicas after forced apply")


@test
def kubectl_dry_run_server_persists_nothing():
    path = os.path.join(S["workdir"], "dry.yaml")
    with open(path, "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry, namespace: staging-1}\ndata: {a: b}\n")
    p = kubectl("apply", "--dry-run=server", "-f", path)
    check("configmap/dry created (server dry run)" in p.stdout, p.stdout)
    p = kubectl("-n", "staging-1", "get", "configmap", "dry", ok=False)
    check(p.returncode != 0 and "NotFound" in p.stderr, p.stderr)


@test
def kubectl_limited_token_is_forbidden():
    p = kubectl("--context", "ferry-limited", "-n", "staging-1", "delete", "configmap", "web-config", ok=False)
    check(p.returncode != 0 and "Forbidden" in p.stderr and 'User "ferry-limited" cannot delete resource "configmaps"' in p.stderr, p.stderr)
    kubectl("--context", "ferry-limited", "-n", "staging-1", "get", "configmap", "web-config")


def unauthorized(p):
    """Whether kubectl failed with a 401 (older kubectl says Unauthorized, newer
    "the server has asked for the client to provide credentials")."""
    return p.returncode != 0 and ("Unauthorized" in p.stderr or "provide credentials" in p.stderr)


@test
def kubectl_expired_token_is_unauthorized():
    ctl("POST", "tokens", {"token": "short-lived", "user": "ci", "expires_in": 1})
    check(raw("GET", "/api/v1/namespaces", token="short-lived")[0] == 200, "the short-lived token works at first")
    wait_for(lambda: raw("GET", "/api/v1/namespaces", token="short-lived")[0] == 401, "the short-lived token to expire")
    p = kubectl("--context", "ferry-token", "--token", "short-lived", "get", "ns", ok=False)
    check(unauthorized(p), p.stderr)
    ctl("POST", "faults", {"kind": "expire_token", "verb": "list", "resource": "namespaces"})
    ctl("POST", "tokens", {"token": "soon-revoked", "user": "ci"})
    p = kubectl("--context", "ferry-token", "--token", "soon-revoked", "get", "ns", ok=False)
    check(unauthorized(p), p.stderr)
    # the fault is spent, but the token it expired stays invalid
    p = kubectl("--context", "ferry-token", "--token", "soon-revoked", "get", "ns", ok=False)
    check(unauthorized(p), "a token expired by a fault must stay expired: " + p.stderr)


@test
def kubectl_delete_manifest():
    p = kubectl("delete", "-f", manifest(2), timeout=60)
    check('namespace "staging-1" deleted' in p.stdout, p.stdout)
    wait_for(lambda: api("GET", "/api/v1/namespaces/staging-1")[0] == 404, "namespace staging-1 gone")


# -- python3-kubernetes --------------------------------------------------------------


def py():
    from kubernetes import client, config

    return client, config.new_client_from_config(S["kubeconfig"])


@test
def python_list_create_duplicate():
    client, c = py()
    v1 = client.CoreV1Api(c)
    names = [n.metadata.name for n in v1.list_namespace().items]
    check("default" in names and "kube-system" in names, names)
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    cm = v1.create_namespaced_config_map("py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a", labels={"x": "1"}), data={"k": "v"}))
    check(cm.metadata.uid, "uid")
    try:
        v1.create_namespaced_config_map("py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"), data={"k": "v"}))
        raise AssertionError("duplicate create succeeded")
    except client.ApiException as e:
        eq(e.status, 409, "status")
        eq(json.loads(e.body)["reason"], "AlreadyExists", "reason")


@test
def python_paginated_list():
    client, c = py()
    v1 = client.CoreV1Api(c)
    for i in range(7):
        v1.create_namespaced_config_map("py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"page-{i}", labels={"page": "yes"}), data={"i": str(i)}))
    seen, token, rvs = [], None, set()
    while True:
        page = v1.list_namespaced_config_map("py", limit=3, _continue=token, label_selector="page=yes")
        seen += [i.metadata.name for i in page.items]
        rvs.add(page.metadata.resource_version)
        token = page.metadata._continue
        if not token:
            break
    eq(seen, [f"page-{i}" for i in range(7)], "pages")
    eq(len(rvs), 1, "one resourceVersion across pages")
    page = v1.list_namespaced_config_map("py", limit=3)
    check(page.metadata.remaining_item_count and page.metadata.remaining_item_count > 0, "remainingItemCount")


@test
def python_patch_and_watch():
    from kubernetes import watch

    client, c = py()
    v1 = client.CoreV1Api(c)
    rv = v1.list_namespaced_config_map("py", field_selector="metadata.name=a").metadata.resource_version

    def later():
        time.sleep(0.2)
        v1.patch_namespaced_config_map("a", "py", {"data": {"k": "w"}})
        v1.delete_namespaced_config_map("a", "py")

    t = threading.Thread(target=later)
    t.start()
    seen = []
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, "py", resource_version=rv, field_selector="metadata.name=a", timeout_seconds=5):
        seen.append((ev["type"], ev["object"].data.get("k")))
        if ev["type"] == "DELETED":
            w.stop()
    t.join()
    eq(seen, [("MODIFIED", "w"), ("DELETED", "w")], "watch events")


@test
def python_apps_and_delete_status():
    client, c = py()
    apps = client.AppsV1Api(c)
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "x:1"}]}}},
    }
    d = apps.create_namespaced_deployment("py", body)
    eq(d.spec.replicas, 1, "defaulted replicas")
    d = apps.patch_namespaced_deployment("api", "py", {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "x:2"}]}}}})
    eq([ct.image for ct in d.spec.template.spec.containers], ["x:2"], "strategic merge by container name")
    st = apps.delete_namespaced_deployment("api", "py", body=client.V1DeleteOptions(propagation_policy="Background"))
    eq(st.status, "Success", "delete Status")


@test
def python_exec_over_websocket_v4():
    need("controllers")
    need("streams")
    from kubernetes.stream import stream

    client, c = py()
    v1 = client.CoreV1Api(c)
    v1.create_namespaced_pod("py", client.V1Pod(metadata=client.V1ObjectMeta(name="shell"), spec=client.V1PodSpec(containers=[client.V1Container(name="sh", image="busybox:1.36")])))
    wait_for(lambda: v1.read_namespaced_pod("shell", "py").status.phase == "Running", "pod py/shell Running")
    resp = stream(v1.connect_get_namespaced_pod_exec, "shell", "py", command=["sh", "-c", "echo out; echo err >&2; exit 4"], stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=10)
    eq((resp.read_stdout(), resp.read_stderr(), resp.returncode), ("out\n", "err\n", 4), "exec")


# -- the wire protocol --------------------------------------------------------------


@test
def wire_status_bodies_404_409_422():
    namespace("wire")
    _, doc, _ = api("GET", "/apis/apps/v1/namespaces/wire/deployments/nope", expect=404)
    eq((doc["reason"], doc["message"], doc["details"]), ("NotFound", 'deployments.apps "nope" not found', {"name": "nope", "group": "apps", "kind": "deployments"}), "404")
    cm = configmap("wire", "c1")
    stale = dict(cm, data={"k": "2"})
    api("PUT", "/api/v1/namespaces/wire/configmaps/c1", stale, expect=200)
    _, doc, _ = api("PUT", "/api/v1/namespaces/wire/configmaps/c1", stale, expect=409)
    eq(doc["reason"], "Conflict", "stale RV")
    check("the object has been modified" in doc["message"], doc["message"])
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "Bad_Name"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "x"}]}}}}
    _, doc, _ = api("POST", "/apis/apps/v1/namespaces/wire/deployments", bad, expect=422)
    eq(doc["reason"], "Invalid", "reason")
    fields = [c["field"] for c in doc["details"]["causes"]]
    eq(fields, ["metadata.name", "spec.template.metadata.labels", "spec.template.spec.containers[0].image"], "causes")
    _, doc, _ = api("POST", "/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "x"}}, expect=404)
    eq(doc["message"], 'namespaces "nowhere" not found', "missing namespace")
    api("POST", "/api/v1/namespaces/wire/configmaps", b"\x0a\x02", ctype="application/vnd.kubernetes.protobuf", expect=415)


@test
def wire_strict_field_validation():
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"}, "data": {"a": "b"}, "bogus": 1}
    _, doc, _ = api("POST", "/api/v1/namespaces/wire/configmaps?fieldValidation=Strict", body, expect=400)
    eq(doc["message"], 'strict decoding error: unknown field "bogus"', "strict")
    _, doc, headers = api("POST", "/api/v1/namespaces/wire/configmaps?fieldValidation=Warn", body, expect=201)
    check("bogus" not in doc, "unknown field pruned")
    check('unknown field \\"bogus\\"' in headers.get("warning", ""), f"Warning header: {headers.get('warning')}")


@test
def wire_selectors():
    configmap("wire", "s1", {"tier": "a", "env": "prod"})
    configmap("wire", "s2", {"tier": "b"})
    configmap("wire", "s3", {"tier": "c", "canary": "yes"})

    def names(q):
        _, doc, _ = api("GET", f"/api/v1/namespaces/wire/configmaps?{q}", expect=200)
        return [i["metadata"]["name"] for i in doc["items"]]

    eq(names("labelSelector=tier%20in%20(a,b)"), ["s1", "s2"], "set-based in")
    eq(names("labelSelector=tier,!canary,env!%3Dprod"), ["s2"], "exists, not exists, !=")
    eq(names("labelSelector=tier,tier%20notin%20(a)"), ["s2", "s3"], "notin (which alone also matches objects without the label)")
    eq(names("fieldSelector=metadata.name%3Ds3"), ["s3"], "field selector")
    status, doc, _ = api("GET", "/api/v1/namespaces/wire/configmaps?fieldSelector=data.k%3Dv")
    eq((status, doc["message"]), (400, "field label not supported: data.k"), "unsupported field")


@test
def wire_watch_resume_and_410():
    _, doc, _ = api("GET", "/api/v1/namespaces/wire/configmaps", expect=200)
    rv = doc["metadata"]["resourceVersion"]
    configmap("wire", "w1")
    api("DELETE", "/api/v1/namespaces/wire/configmaps/w1", expect=200)
    status, events = watch_lines(f"/api/v1/namespaces/wire/configmaps?watch=true&resourceVersion={rv}", 2)
    eq((status, [(e["type"], e["object"]["metadata"]["name"]) for e in events]), (200, [("ADDED", "w1"), ("DELETED", "w1")]), "exact-RV resume")
    ctl("POST", "compact")
    status, events = watch_lines(f"/api/v1/namespaces/wire/configmaps?watch=true&resourceVersion={rv}", 1)
    eq(status, 200, "a stale watch is accepted")
    eq((events[0]["type"], events[0]["object"]["code"], events[0]["object"]["reason"]), ("ERROR", 410, "Expired"), "ERROR event")
    check(events[0]["object"]["message"].startswith(f"too old resource version: {rv} ("), events[0]["object"]["message"])
    ctl("POST", "faults", {"kind": "expired", "verb": "watch", "resource": "configmaps", "mode": "http"})
    status, events = watch_lines("/api/v1/namespaces/wire/configmaps?watch=true", 1)
    eq((status, events[0]["code"], events[0]["reason"]), (410, 410, "Expired"), "HTTP 410")


@test
def wire_watch_bookmarks_and_watchlist():
    ctl("POST", "config", {"bookmark_interval": 0.1})
    try:
        rv = api("GET", "/api/v1/namespaces/wire/configmaps")[1]["metadata"]["resourceVersion"]
        status, events = watch_lines(f"/api/v1/namespaces/wire/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={rv}", 1)
        eq((status, events[0]["type"], events[0]["object"]["kind"]), (200, "BOOKMARK", "ConfigMap"), "bookmark")
        q = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=tier"
        status, events = watch_lines(f"/api/v1/namespaces/wire/configmaps?{q}", 4)
        eq([e["type"] for e in events], ["ADDED", "ADDED", "ADDED", "BOOKMARK"], "initial events then bookmark")
        eq(events[3]["object"]["metadata"].get("annotations"), {"k8s.io/initial-events-end": "true"}, "initial-events-end")
    finally:
        ctl("POST", "config", {"bookmark_interval": 2.0})


@test
def wire_continue_token_expires():
    _, doc, _ = api("GET", "/api/v1/namespaces/wire/configmaps?limit=1", expect=200)
    token = doc["metadata"]["continue"]
    ctl("POST", "config", {"continue_ttl": 0.0})
    try:
        time.sleep(0.01)
        _, doc, _ = api("GET", f"/api/v1/namespaces/wire/configmaps?limit=1&continue={token}", expect=410)
        check(doc["message"].startswith("The provided continue parameter is too old"), doc["message"])
    finally:
        ctl("POST", "config", {"continue_ttl": 300.0})


@test
def wire_faults_and_request_log():
    ctl("POST", "faults", {"faults": [{"kind": "throttle", "verb": "get", "resource": "configmaps", "retry_after": 2}, {"kind": "error", "verb": "get", "resource": "configmaps", "status": 503}]})
    status, doc, headers = api("GET", "/api/v1/namespaces/wire/configmaps/s1")
    eq((status, headers.get("retry-after"), doc["reason"], doc["details"]["retryAfterSeconds"]), (429, "2", "TooManyRequests", 2), "throttle")
    status, doc, _ = api("GET", "/api/v1/namespaces/wire/configmaps/s1")
    eq((status, doc["reason"]), (503, "ServiceUnavailable"), "error")
    api("GET", "/api/v1/namespaces/wire/configmaps/s1", expect=200)
    ctl("POST", "faults", {"kind": "drop", "verb": "list"})
    try:
        raw("GET", "/api/v1/namespaces/wire/configmaps")
        raise AssertionError("the connection was not dropped")
    except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
        pass
    log = requests_since(0, resource="configmaps", namespace="wire")
    eq([r["fault"] for r in log if r["fault"]][-3:], ["throttle", "error", "drop"], "faults in the request log")


@test
def wire_server_side_apply():
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n"
    path = "/api/v1/namespaces/wire/configmaps/ssa"
    _, out, _ = api("PATCH", path + "?fieldManager=ferry", doc, ctype="application/apply-patch+yaml", expect=201)
    eq(out["data"], {"a": "1"}, "created by apply")
    api("PATCH", path, doc, ctype="application/apply-patch+yaml", expect=422)
    api("PATCH", path + "?fieldManager=x&force=true", {"data": {"a": "2"}}, ctype="application/merge-patch+json", expect=422)
    api("PATCH", path + "?fieldManager=other", {"data": {"a": "2"}}, ctype="application/merge-patch+json", expect=200)
    _, out, _ = api("PATCH", path + "?fieldManager=ferry", doc, ctype="application/apply-patch+yaml", expect=409)
    eq((out["reason"], out["details"]["causes"][0]["reason"], out["details"]["causes"][0]["field"]), ("Conflict", "FieldManagerConflict", ".data.a"), "conflict")
    check(out["message"] == 'Apply failed with 1 conflict: conflict with "other" using v1: .data.a', out["message"])
    _, out, _ = api("PATCH", path + "?fieldManager=ferry&force=true", doc, ctype="application/apply-patch+yaml", expect=200)
    eq(out["data"], {"a": "1"}, "forced apply")
    ctl("POST", "faults", {"kind": "apply_conflict", "verb": "patch", "resource": "configmaps", "manager": "kube-controller-manager", "fields": [".data.a"]})
    _, out, _ = api("PATCH", path + "?fieldManager=ferry", doc, ctype="application/apply-patch+yaml", expect=409)
    check('conflict with "kube-controller-manager"' in out["message"], out["message"])
    _, out, _ = api("PATCH", path, [{"op": "test", "path": "/data/a", "value": "9"}], ctype="application/json-patch+json", expect=422)
    api("PATCH", "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses/px-csi-snapclass", {}, ctype="application/strategic-merge-patch+json", expect=415)


@test
def wire_dry_run():
    api("POST", "/api/v1/namespaces/wire/configmaps?dryRun=All", {"metadata": {"name": "dry"}}, expect=201)
    api("GET", "/api/v1/namespaces/wire/configmaps/dry", expect=404)
    api("DELETE", "/api/v1/namespaces/wire/configmaps/s1?dryRun=All", expect=200)
    api("GET", "/api/v1/namespaces/wire/configmaps/s1", expect=200)


@test
def wire_finalizers_and_terminating_namespace():
    namespace("fin")
    configmap("fin", "held", finalizers=["ferry.test/hold"])
    _, doc, _ = api("DELETE", "/api/v1/namespaces/fin/configmaps/held", {"propagationPolicy": "Background"}, expect=200)
    check(doc["metadata"].get("deletionTimestamp"), "deletionTimestamp set")
    _, ns, _ = api("DELETE", "/api/v1/namespaces/fin", expect=200)
    eq(ns["status"]["phase"], "Terminating", "namespace phase")
    _, doc, _ = api("POST", "/api/v1/namespaces/fin/configmaps", {"metadata": {"name": "late"}}, expect=403)
    eq(doc["details"]["causes"][0]["reason"], "NamespaceTerminating", "terminating cause")
    wait_for(lambda: any(c["type"] == "NamespaceFinalizersRemaining" and c["status"] == "True" for c in (api("GET", "/api/v1/namespaces/fin")[1].get("status") or {}).get("conditions") or []), "NamespaceFinalizersRemaining")
    _, held, _ = api("GET", "/api/v1/namespaces/fin/configmaps/held", expect=200)
    api("PATCH", "/api/v1/namespaces/fin/configmaps/held", [{"op": "remove", "path": "/metadata/finalizers"}], ctype="application/json-patch+json", expect=200)
    api("GET", "/api/v1/namespaces/fin/configmaps/held", expect=404)
    wait_for(lambda: api("GET", "/api/v1/namespaces/fin")[0] == 404, "namespace fin gone")


@test
def wire_crd_created_at_run_time():
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"}, "scope": "Namespaced", "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, expect=201)
    _, doc, _ = api("GET", "/apis/example.com/v1", expect=200)
    eq([r["name"] for r in doc["resources"]], ["widgets"], "discovery")
    api("POST", "/apis/example.com/v1/namespaces/wire/widgets", {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}, expect=201)
    _, doc, _ = api("PUT", "/apis/example.com/v1/namespaces/wire/widgets/w", {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 4}}, expect=422)
    check("metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in doc["message"], doc["message"])
    api("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com", expect=200)
    api("GET", "/apis/example.com/v1", expect=404)


@test
def wire_auth_forms():
    eq(raw("GET", "/version", token=None)[0], 200, "anonymous /version")
    eq(raw("GET", "/api", token=None)[0], 403, "anonymous /api")
    eq(raw("GET", "/api", token="nope")[0], 401, "unknown token")
    conn = http.client.HTTPSConnection("127.0.0.1", S["port"], context=tls_context(client_cert=True), timeout=DEADLINE)
    status, _, data = raw("GET", "/api/v1/namespaces/default", token=None, conn=conn)
    conn.close()
    eq(status, 200, f"client certificate: {data[:200]!r}")
    eq(raw("GET", "/_ferry/health", token="ferry-limited-token")[0], 403, "control needs admin")


@test
def wire_scale_subresource():
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sc"}, "spec": {"selector": {"matchLabels": {"a": "sc"}}, "template": {"metadata": {"labels": {"a": "sc"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    api("POST", "/apis/apps/v1/namespaces/wire/deployments", body, expect=201)
    _, doc, _ = api("PATCH", "/apis/apps/v1/namespaces/wire/deployments/sc/scale", {"spec": {"replicas": 5}}, ctype="application/merge-patch+json", expect=200)
    eq((doc["kind"], doc["spec"]["replicas"], doc["status"]["selector"]), ("Scale", 5, "a=sc"), "scale")
    eq(api("GET", "/apis/apps/v1/namespaces/wire/deployments/sc")[1]["spec"]["replicas"], 5, "replicas")


# -- harness ------------------------------------------------------------------------


def start(workdir):
    certs = os.path.join(workdir, "certs")
    subprocess.run(["bash", CERTS_SH, certs], check=True)
    server = testlib.Server(SERVER, workdir, "kube", "--tls", os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"), "--client-ca", os.path.join(certs, "ca.pem"))
    port = server.port
    url = f"https://127.0.0.1:{port}"
    S.update(port=port, url=url, certs=certs, workdir=workdir, cache=os.path.join(workdir, "kube-cache"), kubeconfig=os.path.join(workdir, "kubeconfig"))
    kc = _load("kubeconfig")
    S["health"] = kc.health(url, certs, time.monotonic() + 10)
    kc.write(S["kubeconfig"], url, certs)
    return server


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else None
    workdir = tempfile.mkdtemp(prefix="ferry-kube-conformance-")
    server = start(workdir)
    tally = testlib.Tally()
    try:
        if S["health"].get("load_errors"):
            print(f"FAIL load: controllers.py/streams.py failed to load: {S['health']['load_errors']}")
            tally.failed += 1
        testlib.run(TESTS, only=only, tally=tally, timed=True)
    finally:
        server.stop()
        if tally.failed:
            print(f"(server log: {server.log_file})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return testlib.summary(tally)


if __name__ == "__main__":
    sys.exit(main())
