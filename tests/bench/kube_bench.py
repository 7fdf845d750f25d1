"""kube_bench.py: the Kubernetes half of `make bench` (bench.py calls kube()), against
the Kubernetes double that tests/doubles/start runs. Standard library only.

  list     5,000 realistic pods (Running and Ready on a node, owned by a ReplicaSet,
           ~3.5 KB of JSON each) seeded into one namespace with one
           POST /_ferry/seed, controllers paused, then listed in full, pages of
           500, by `ferry lua tests/bench/kube_list.lua`, `kubectl get pods -o
           json` and python3-kubernetes (tests/bench/kube_list.py: into model
           objects, and with _preload_content=False + json.loads). Each
           process runs once to warm up, then LIST_RUNS times round-robin, under
           GNU time: median wall time, median CPU time of the client (user +
           system: the wall time also holds the double serving the pages, the
           same for every client) and peak RSS, with ratios baseline / Ferry.
  rollout  with the controllers at their default small delays, how long after the
           double stores the Deployment's final status (the one that completes
           the rollout) `ferry lua tests/bench/kube_rollout.lua` (client:create,
           then client:wait(deploy, "rollout")) and `kubectl rollout status`
           report it, TRIALS times each. The controllers are held (paused) until
           the waiter's watch is open, so start-up and discovery are not part of
           the figure. The double records no precise time for that write (its
           timestamps have one-second resolution; controllers write to the store,
           not through the request log), so the reference moment is when an
           independent raw watch in this process, opened before the controllers
           are released, reads that status: the double sends it to every watcher
           at once. The other end is when the waiter's "rolled out" line reaches
           this process. Both are time.monotonic(). The double's request log
           gives the requests each waiter made on the Deployment (watch-driven:
           one list and one watch, no repeated GETs).

The rollouts run first: the seeded pods name a ReplicaSet that does not exist, so
the controllers stay paused from the seeding on (else they would collect them).
"""

import collections
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from benchlib import DEVNULL, GNU_TIME, Failure, doubles, python_has, shown, timed

NAMESPACE, PODS = "bench-list", 5000
ROLLOUT_NAMESPACE = "bench-rollout"
LIST_RUNS = 3
TRIALS = 10  # rollouts per waiter
REPLICAS = 3
USER_AGENT = "ferry-bench"  # this process's requests, told apart in the request log
DEADLINE = 60  # seconds for any one wait of this harness

Row = collections.namedtuple("Row", "cmd wall_ms cpu_ms rss_mib exact")  # one client in the list table


class Api:
    """The double's API and /_ferry/ control endpoints, with the admin token."""

    def __init__(self, env):
        url = urllib.parse.urlsplit(env["FERRY_TEST_KUBE"])
        self.host, self.port = url.hostname, url.port
        self.tls = ssl.create_default_context(cafile=os.path.join(env["FERRY_TEST_CERTS"], "ca.pem"))
        self.headers = {"Authorization": "Bearer " + env["FERRY_TEST_KUBE_TOKEN"], "User-Agent": USER_AGENT,
                        "Content-Type": "application/json", "Accept": "application/json"}

    def open(self, method, path, body=None):
        """(connection, unread response) of one request; raises Failure on a status >= 300."""
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=DEADLINE)
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=self.headers)
        resp = conn.getresponse()
        if resp.status >= 300:
            text = resp.read()[:500]
            conn.close()
            raise Failure(f"Kubernetes double: {method} {path}: {resp.status} {text!r}")
        return conn, resp

    def call(self, method, path, body=None):
        conn, resp = self.open(method, path, body)
        try:
            return json.loads(resp.read())
        finally:
            conn.close()

    def controllers(self, **config):
        self.call("POST", "/_ferry/controllers", config)

    def requests(self, **query):
        return self.call("GET", "/_ferry/requests?" + urllib.parse.urlencode(query))["requests"]


# -- the 5,000-pod list -------------------------------------------------------------------


def pod(i):
    """Pod i of a Deployment's ReplicaSet as a real API server stores it, Running and Ready."""
    t, ip, image = "2025-06-01T09:00:00Z", f"10.244.{i // 250}.{i % 250 + 2}", "registry.example.com/team/web:1.42.0"
    probe = {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
             "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"web-7c9f8d6b5-{i:05d}", "generateName": "web-7c9f8d6b5-", "namespace": NAMESPACE,
            "labels": {"app": "web", "pod-template-hash": "7c9f8d6b5", "tier": "frontend"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": t},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9f8d6b5",
                                 "uid": "5b1c2a4e-7d3f-4c1b-9e2a-6f0d8c3b1a47", "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": [{
                "name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "MONGO_URL", "value": "mongodb://staging-db:27017/app"},
                        {"name": "POD_NAME",
                         "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "readinessProbe": probe, "livenessProbe": probe,
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": True,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            }],
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
            "nodeName": f"ferry-node-{i % 3 + 1}", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "serviceAccountName": "default", "serviceAccount": "default",
            "securityContext": {}, "terminationGracePeriodSeconds": 30, "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "tolerations": [{"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300} for taint in ("not-ready", "unreachable")],
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "hostIP": f"10.0.0.{i % 3 + 1}",
            "hostIPs": [{"ip": f"10.0.0.{i % 3 + 1}"}], "podIP": ip, "podIPs": [{"ip": ip}], "startTime": t,
            "conditions": [{"type": c, "status": "True", "lastProbeTime": None, "lastTransitionTime": t}
                           for c in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                     "PodScheduled")],
            "containerStatuses": [{
                "name": "web", "ready": True, "started": True, "restartCount": 0, "image": image,
                "imageID": "registry.example.com/team/web@sha256:" + f"{i:08x}" * 8,
                "containerID": f"containerd://{i:064x}", "state": {"running": {"startedAt": t}}, "lastState": {}}],
        },
    }


def pod_list(ferry, api, env):
    """Seeds the pods and measures each client listing them: rows, notes and the JSON size."""
    api.controllers(paused=True)  # nothing reconciles (or garbage-collects) the seeded pods
    body = {"objects": [pod(i) for i in range(PODS)]}
    api.call("POST", "/_ferry/seed", body)
    size = len(json.dumps(body["objects"]).encode())

    subjects = [("ferry", [ferry, "lua", "tests/bench/kube_list.lua", NAMESPACE, str(PODS)])]
    notes = []
    if shutil.which("kubectl"):
        subjects.append(("kubectl", ["kubectl", "get", "pods", "-n", NAMESPACE, "-o", "json"]))
    else:
        notes.append("kubectl skipped: not on PATH")
    if python_has("kubernetes"):
        script = [sys.executable, "tests/bench/kube_list.py", NAMESPACE, str(PODS)]
        subjects += [("python3-kubernetes", script), ("  json.loads", script + ["--raw"])]
    else:
        notes.append(f"python3-kubernetes skipped: {sys.executable} cannot import kubernetes")

    for _, cmd in subjects:
        timed(cmd, env)  # warm-up: page cache, kubectl's discovery cache
    samples = {name: [] for name, _ in subjects}
    for _ in range(LIST_RUNS):  # round-robin, so a drift in the double's pace hits every client alike
        for name, cmd in subjects:
            samples[name].append(timed(cmd, env))
    rows = {}
    for name, cmd in subjects:
        runs = samples[name]
        rows[name] = Row(shown(cmd), statistics.median(wall for wall, _, _, _ in runs) * 1000,
                         statistics.median(cpu for _, cpu, _, _ in runs) * 1000,
                         max(kib for _, _, kib, _ in runs) / 1024, runs[0][3])
    return rows, notes, size


def print_list(rows, notes, size):
    rss_how = "GNU time" if GNU_TIME else "os.wait4 (an upper bound: install `time`)"
    print(f"\nKubernetes list: {PODS:,} pods ({size / 1e6:.1f} MB of JSON), all pages of 500, from the double;")
    print(f"median of {LIST_RUNS} runs after 1 warm-up; CPU = the client's user + system; peak RSS by {rss_how}")
    width = max(len(row.cmd) for row in rows.values())
    print(f"  {'':20} {'command':{width}} {'wall ms':>8} {'CPU ms':>8} {'peak RSS MiB':>13}")
    for name, row in rows.items():
        rss = f"{row.rss_mib:.1f}" if row.exact else f"<={row.rss_mib:.1f}"
        print(f"  {name:20} {row.cmd:{width}} {row.wall_ms:8.0f} {row.cpu_ms:8.0f} {rss:>13}")
    ours = rows["ferry"]
    if len(rows) > 1:
        print(f"\n  {'ratio (baseline / ferry)':28} {'wall':>7} {'CPU':>7} {'peak RSS':>9}")
        for name, row in rows.items():
            if name != "ferry":
                print(f"  {name:28} {row.wall_ms / ours.wall_ms:6.1f}x {row.cpu_ms / ours.cpu_ms:6.1f}x "
                      f"{row.rss_mib / ours.rss_mib:8.1f}x")
    print("  wall time includes the double serving the pages, the same for every client; most of it is the\n"
          "  first page (a copy of all 5,000 pods), which varies from run to run: CPU is the client's own cost")
    if "python3-kubernetes" in rows:
        print("  python3-kubernetes builds model objects (V1Pod ...); json.loads: the same pages with "
              "_preload_content=False")
    for note in notes:
        print(f"  note: {note}")


# -- how soon a rollout wait returns --------------------------------------------------------


def deployment(name):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ROLLOUT_NAMESPACE, "labels": {"app": name}},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": "registry.example.com/team/web:1.42.0",
                                                       "ports": [{"containerPort": 8080}]}]}}},
    }


def rolled_out(d):
    """kubectl's test of a complete Deployment rollout (rollout_status.go)."""
    md, spec, st = d.get("metadata", {}), d.get("spec", {}), d.get("status") or {}
    updated = st.get("updatedReplicas", 0)
    return (st.get("observedGeneration", 0) >= md.get("generation", 0) and updated >= spec.get("replicas", 1)
            and st.get("replicas", 0) <= updated and st.get("availableReplicas", 0) >= updated)


class Observer(threading.Thread):
    """A raw watch on one Deployment: `at` is when the event completing its rollout was read."""

    def __init__(self, api, name):
        super().__init__(daemon=True)
        query = urllib.parse.urlencode({"watch": "true", "fieldSelector": f"metadata.name={name}"})
        # the double registers a watch before it answers, so from here on no event is missed
        self.conn, self.resp = api.open("GET", f"/apis/apps/v1/namespaces/{ROLLOUT_NAMESPACE}/deployments?{query}")
        self.at = None

    def run(self):
        try:
            for line in self.resp:
                event = json.loads(line)
                if event["type"] in ("ADDED", "MODIFIED") and rolled_out(event["object"]):
                    self.at = time.monotonic()
                    return
        finally:
            self.conn.close()


def await_watch(api, proc, agent):
    """Waits until the waiter (user agent prefix agent) has its Deployment watch open."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for r in api.requests(watch="true", resource="deployments.apps", namespace=ROLLOUT_NAMESPACE):
            if r["status"] == 200 and (r["user_agent"] or "").startswith(agent):
                return
        if proc.poll() is not None:
            return  # it ended without watching: rollout_trial reports it
        time.sleep(0.005)
    raise Failure(f"{agent} opened no watch on deployments in {DEADLINE}s")


def rollout_trial(ferry, api, env, waiter, name):
    """One rollout: (gap ms, rollout ms, {verb: count}) for waiter "ferry" or "kubectl"."""
    api.controllers(paused=True)
    api.call("DELETE", "/_ferry/requests")
    if waiter == "ferry":
        cmd, agent, done = [ferry, "lua", "tests/bench/kube_rollout.lua", json.dumps(deployment(name))], \
            "ferry/", '"rolled_out"'
    else:
        api.call("POST", f"/apis/apps/v1/namespaces/{ROLLOUT_NAMESPACE}/deployments", deployment(name))
        cmd, agent, done = ["kubectl", "rollout", "status", f"deployment/{name}", "-n", ROLLOUT_NAMESPACE,
                            f"--timeout={DEADLINE}s"], "kubectl", "successfully rolled out"
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdin=DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        try:
            await_watch(api, proc, agent)
            observer = Observer(api, name)
            observer.start()
            released = time.monotonic()
            api.controllers(paused=False)
            returned = None
            for line in proc.stdout:
                if done in line:
                    returned = time.monotonic()
                    break
            proc.stdout.read()
            status = proc.wait(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        if status != 0 or returned is None:
            raise Failure(f"{shown(cmd)} exited with status {status} without a rolled-out line:\n{err.read()[-2000:]}")
    observer.join(DEADLINE)
    if observer.at is None:
        raise Failure(f"the observer's watch never saw deployment {name} rolled out")
    verbs = {}
    for r in api.requests(resource="deployments.apps", namespace=ROLLOUT_NAMESPACE):
        if (r["user_agent"] or "").startswith(agent):
            verb = "watch" if r["watch"] else r["verb"]
            verbs[verb] = verbs.get(verb, 0) + 1
    return (returned - observer.at) * 1000, (observer.at - released) * 1000, verbs


def rollouts(ferry, api, env):
    """TRIALS rollouts per waiter, alternating: {waiter: [(gap, rollout, verbs)]}, notes."""
    waiters, notes = ["ferry"], []
    if shutil.which("kubectl"):
        waiters.append("kubectl")
    else:
        notes.append("kubectl skipped: not on PATH")
    api.call("POST", "/_ferry/seed", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ROLLOUT_NAMESPACE}})
    trials = {w: [] for w in waiters}
    try:
        for i in range(TRIALS):
            for w in waiters:
                trials[w].append(rollout_trial(ferry, api, env, w, f"{w}-{i + 1}"))
    finally:
        api.controllers(paused=False)
    return trials, notes


def print_rollouts(trials, notes):
    print(f"\nKubernetes rollout wait: a {REPLICAS}-replica Deployment, the controllers at their default delays; "
          f"{TRIALS} rollouts each")
    print("  gap = the waiter's \"rolled out\" line arrives - an independent watch reads the completing status")
    print(f"  {'waiter':10} {'median gap ms':>14} {'min ms':>7} {'max ms':>7} {'rollout ms':>11}  "
          "requests on the Deployment, per rollout")
    gaps = {}
    for w, rows in trials.items():
        gaps[w] = statistics.median(g for g, _, _ in rows)
        rollout_ms = statistics.median(r for _, r, _ in rows)
        counts = {}
        for _, _, verbs in rows:
            for verb, n in verbs.items():
                counts.setdefault(verb, set()).add(n)
        reqs = ", ".join(f"{min(n)}{'' if len(n) == 1 else f'-{max(n)}'} {v}" for v, n in sorted(counts.items()))
        print(f"  {w:10} {gaps[w]:14.1f} {min(g for g, _, _ in rows):7.1f} {max(g for g, _, _ in rows):7.1f} "
              f"{rollout_ms:11.0f}  {reqs}")
    if "kubectl" in gaps and gaps["ferry"] > 0:
        print(f"  gap ratio kubectl / ferry: {gaps['kubectl'] / gaps['ferry']:.1f}x")
    elif "kubectl" in gaps:
        print("  gap ratio kubectl / ferry: none (Ferry's median gap is within the reference's jitter)")
    print("  the reference jitters by a millisecond or so: the double writes to each watch from its own thread,\n"
          "  so a waiter can be served before the reference watch (a negative gap)")
    for note in notes:
        print(f"  note: {note}")


def kube(ferry):
    """The Kubernetes benchmarks: rollouts first (the seeded pods need paused controllers)."""
    with doubles("ferry-bench-kube-") as env:
        api = Api(env)
        trials, rollout_notes = rollouts(ferry, api, env)
        rows, list_notes, size = pod_list(ferry, api, env)
    print_list(rows, list_notes, size)
    print_rollouts(trials, rollout_notes)
