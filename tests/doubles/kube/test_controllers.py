#!/usr/bin/python3
"""test_controllers.py: tests of the Kubernetes double's controllers (controllers.py)
and streaming endpoints (streams.py).

Controllers run against the real Store (store.py) with the default, fast timings;
every test waits on a condition with a deadline (woken by the store's change
notifications), never on a fixed sleep. The readiness checks are kubectl's own
(kubernetes notes §4.1, §4.2). The stream tests serve streams.handle_* from a tiny
local HTTP server (plain and TLS) and talk to it with streams.connect(), kubectl
(when installed) and Debian's python3-kubernetes (in a subprocess, when installed).
Prints a report per failed test and closes with "N passed, N failed".

    /usr/bin/python3 tests/doubles/kube/test_controllers.py [name-substring]
"""

import base64
import http.client
import http.server
import json
import os
import re
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote, urlsplit

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
HERE = os.path.dirname(os.path.abspath(__file__))


def _load():
    """Import the double's modules from this folder (and only them from it)."""
    sys.path.insert(0, HERE)
    try:
        import store as store_mod
        import controllers as ctl_mod
        import streams as streams_mod
    finally:
        sys.path.remove(HERE)
    return store_mod, ctl_mod, streams_mod


store, controllers, streams = _load()
sys.path.append(os.path.dirname(HERE))  # testlib.py
import testlib  # noqa: E402

NS = "t"
DEADLINE = 15.0


class Env:
    """A Store with running Controllers, and a way to wait for a condition."""

    def __init__(self, **config):
        self.store = store.Store()
        self.ctl = controllers.Controllers(self.store, config or None)
        self._cv = threading.Condition()
        self.events = []  # (type, res, name) in order
        self.store.subscribe(self._seen)
        self.ctl.start()
        self.store.create("namespaces", None, {"metadata": {"name": NS}})

    def _seen(self, etype, res, obj):
        with self._cv:
            self.events.append((etype, res, (obj.get("metadata") or {}).get("name")))
            self._cv.notify_all()

    def wait(self, pred, what, timeout=DEADLINE):
        end = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for " + what)
            with self._cv:
                self._cv.wait(min(left, 0.05))

    def get(self, res, name, ns=NS):
        return self.store.get(res, ns, name)

    def list(self, res, ns=NS, labels=None):
        return self.store.list(res, ns, label_selector=labels)

    def create(self, res, obj, ns=NS):
        return self.store.create(res, None if res in controllers.CLUSTER_SCOPED else ns, obj)

    def close(self):
        self.ctl.stop()
        self.store.unsubscribe(self._seen)


def eq(got, want, what=""):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def cond(obj, ctype):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def rollout_deployment(d):
    """kubectl rollout status for a Deployment (notes §4.1): (done, message); raises
    on ProgressDeadlineExceeded."""
    name = d["metadata"]["name"]
    st, spec = d.get("status") or {}, d.get("spec") or {}
    if d["metadata"].get("generation", 0) <= st.get("observedGeneration", 0):
        c = cond(d, "Progressing")
        if c and c.get("reason") == "ProgressDeadlineExceeded":
            raise RuntimeError('deployment "%s" exceeded its progress deadline' % name)
        if spec.get("replicas") is not None and st.get("updatedReplicas", 0) < spec["replicas"]:
            return False, "Waiting for deployment %r rollout to finish: %d out of %d new replicas have been updated..." % (
                name, st.get("updatedReplicas", 0), spec["replicas"])
        if st.get("replicas", 0) > st.get("updatedReplicas", 0):
            return False, "Waiting: %d old replicas are pending termination..." % (
                st.get("replicas", 0) - st.get("updatedReplicas", 0))
        if st.get("availableReplicas", 0) < st.get("updatedReplicas", 0):
            return False, "Waiting: %d of %d updated replicas are available..." % (
                st.get("availableReplicas", 0), st.get("updatedReplicas", 0))
        return True, 'deployment "%s" successfully rolled out' % name
    return False, "Waiting for deployment spec update to be observed..."


def rollout_statefulset(s):
    """kubectl rollout status for a StatefulSet (notes §4.2): (done, message)."""
    st, spec = s.get("status") or {}, s.get("spec") or {}
    us = spec.get("updateStrategy") or {}
    if us.get("type") != "RollingUpdate":
        raise RuntimeError("rollout status is only available for RollingUpdate strategy type")
    if not st.get("observedGeneration") or s["metadata"].get("generation", 0) > st["observedGeneration"]:
        return False, "Waiting for statefulset spec update to be observed..."
    if spec.get("replicas") is not None and st.get("readyReplicas", 0) < spec["replicas"]:
        return False, "Waiting for %d pods to be ready..." % (spec["replicas"] - st.get("readyReplicas", 0))
    ru = us.get("rollingUpdate")
    if ru is not None:
        if spec.get("replicas") is not None and ru.get("partition") is not None:
            if st.get("updatedReplicas", 0) < spec["replicas"] - ru["partition"]:
                return False, "Waiting for partitioned roll out to finish..."
        return True, "partitioned roll out complete: %d new pods have been updated..." % st.get("updatedReplicas", 0)
    if st.get("updateRevision") != st.get("currentRevision"):
        return False, "waiting for statefulset rolling update to complete..."
    return True, "statefulset rolling update complete"


def deployment(name, replicas=2, image="nginx:1.25", **spec):
    labels = {"app": name}
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": name, "image": image}]}}}}
    d["spec"].update(spec)
    return d


def pvc(name, size="5Gi", **spec):
    p = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}
    p["spec"].update(spec)
    return p


def owned(objs, uid):
    return [o for o in objs if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]


def events_for(env, name, ns=NS):
    return [e for e in env.store.list("events", ns) if (e.get("involvedObject") or {}).get("name") == name]


# -- controllers: Deployments ---------------------------------------------------------------


def test_deployment_rolls_out_like_kubectl_sees_it():
    env = Env()
    try:
        messages = []
        seen = threading.Lock()

        def watch(etype, res, obj):
            if res == "deployments.apps" and etype != "DELETED":
                with seen:
                    messages.append(rollout_deployment(obj)[1])
        env.store.subscribe(watch)
        env.create("deployments.apps", deployment("web", replicas=2))
        d = env.wait(lambda: (lambda o: o if rollout_deployment(o)[0] else None)(env.get("deployments.apps", "web")),
                     "web rolled out")
        assert any("new replicas have been updated" in m or "updated replicas are available" in m for m in messages), \
            "no intermediate rollout state was ever visible: %r" % messages
        st = d["status"]
        eq((st["observedGeneration"], st["replicas"], st["updatedReplicas"], st["readyReplicas"],
            st["availableReplicas"]), (d["metadata"]["generation"], 2, 2, 2, 2), "status counts")
        assert "unavailableReplicas" not in st, "zero counts are omitted, as the API server does"
        eq((cond(d, "Available")["status"], cond(d, "Available")["reason"]), ("True", "MinimumReplicasAvailable"))
        rss = env.list("replicasets.apps")
        eq(len(rss), 1, "replica sets")
        rs = rss[0]
        h = rs["metadata"]["labels"]["pod-template-hash"]
        eq(rs["metadata"]["name"], "web-" + h)
        eq(rs["spec"]["selector"]["matchLabels"], {"app": "web", "pod-template-hash": h})
        ref = rs["metadata"]["ownerReferences"][0]
        eq((ref["kind"], ref["name"], ref["uid"], ref["controller"]), ("Deployment", "web", d["metadata"]["uid"], True))
        prog = cond(d, "Progressing")
        eq((prog["status"], prog["reason"], prog["message"]),
           ("True", "NewReplicaSetAvailable", 'ReplicaSet "%s" has successfully progressed.' % rs["metadata"]["name"]))
        eq(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1")
        pods = env.list("pods")
        eq(len(owned(pods, rs["metadata"]["uid"])), 2, "pods owned by the replica set")
        for p in pods:
            assert p["metadata"]["name"].startswith("web-%s-" % h), p["metadata"]["name"]
            eq(p["metadata"]["labels"]["pod-template-hash"], h)
            eq((p["spec"]["nodeName"], p["status"]["phase"], cond(p, "Ready")["status"]),
               ("ferry-node-1", "Running", "True"), p["metadata"]["name"])
            cs = p["status"]["containerStatuses"][0]
            assert cs["ready"] and "running" in cs["state"] and cs["containerID"].startswith("containerd://"), cs
        reasons = {e["reason"] for e in events_for(env, "web")}
        assert "ScalingReplicaSet" in reasons, reasons
    finally:
        env.close()


def test_deployment_spec_change_rolls_a_new_replicaset():
    env = Env()
    try:
        env.create("deployments.apps", deployment("web", replicas=2))
        done = lambda: (lambda o: o if rollout_deployment(o)[0] else None)(env.get("deployments.apps", "web"))  # noqa: E731
        env.wait(done, "first rollout")
        old_rs = env.list("replicasets.apps")[0]
        with env.store.lock:
            d = env.get("deployments.apps", "web")
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
            d = env.store.update("deployments.apps", NS, d)
        eq(d["metadata"]["generation"], 2, "generation after a template change")
        d = env.wait(lambda: (lambda o: o if o["status"].get("observedGeneration") == 2 and rollout_deployment(o)[0]
                              else None)(env.get("deployments.apps", "web")), "second rollout")
        rss = {r["metadata"]["name"]: r for r in env.list("replicasets.apps")}
        eq(len(rss), 2, "replica sets after the change")
        new = [r for n, r in rss.items() if n != old_rs["metadata"]["name"]][0]
        eq((new["spec"]["replicas"], rss[old_rs["metadata"]["name"]]["spec"]["replicas"]), (2, 0), "scaled")
        eq(new["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2")
        eq(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2")
        env.wait(lambda: len(env.list("pods")) == 2 and all(
            p["metadata"]["labels"]["pod-template-hash"] == new["metadata"]["labels"]["pod-template-hash"]
            for p in env.list("pods")), "only new pods left")
        for p in env.list("pods"):
            eq(p["spec"]["containers"][0]["image"], "nginx:1.27")
        msgs = [e["message"] for e in events_for(env, "web") if e["reason"] == "ScalingReplicaSet"]
        assert any(m.startswith("Scaled down replica set %s" % old_rs["metadata"]["name"]) for m in msgs), msgs
        # scaling keeps the replica set
        with env.store.lock:
            d = env.get("deployments.apps", "web")
            d["spec"]["replicas"] = 3
            env.store.update("deployments.apps", NS, d)
        env.wait(lambda: (lambda o: o["status"].get("availableReplicas") == 3 and rollout_deployment(o)[0])(
            env.get("deployments.apps", "web")), "scaled to 3")
        eq(len(env.list("replicasets.apps")), 2, "scaling made no new replica set")
    finally:
        env.close()


def test_crashloop_pods_back_off_and_deployment_stays_unavailable():
    env = Env(crashloop=["web"])
    try:
        env.create("deployments.apps", deployment("web", replicas=1))
        pod = env.wait(lambda: next((p for p in env.list("pods")
                                     if any(cs.get("restartCount", 0) >= 2
                                            for cs in (p.get("status") or {}).get("containerStatuses") or [])), None),
                       "restartCount >= 2")
        cs = pod["status"]["containerStatuses"][0]
        eq(cs["state"]["waiting"]["reason"], "CrashLoopBackOff")
        assert cs["state"]["waiting"]["message"].startswith("back-off "), cs
        eq((cs["lastState"]["terminated"]["exitCode"], cs["lastState"]["terminated"]["reason"]), (1, "Error"))
        eq((pod["status"]["phase"], cond(pod, "Ready")["status"], cond(pod, "Ready")["reason"]),
           ("Running", "False", "ContainersNotReady"))
        d = env.get("deployments.apps", "web")
        eq((cond(d, "Available")["status"], cond(d, "Available")["reason"]), ("False", "MinimumReplicasUnavailable"))
        assert not rollout_deployment(d)[0]
        assert any(e["reason"] == "BackOff" and e["type"] == "Warning"
                   for e in events_for(env, pod["metadata"]["name"])), "BackOff event"
    finally:
        env.close()


def test_progress_deadline_exceeded():
    env = Env(progress_deadline=["api"])
    try:
        env.create("deployments.apps", deployment("api", replicas=2))
        env.create("deployments.apps", deployment("ok", replicas=1))
        d = env.wait(lambda: (lambda o: o if (cond(o, "Progressing") or {}).get("reason") == "ProgressDeadlineExceeded"
                              else None)(env.get("deployments.apps", "api")), "ProgressDeadlineExceeded")
        c = cond(d, "Progressing")
        rs = env.list("replicasets.apps", labels="app=api")[0]
        eq((c["status"], c["message"]), ("False", 'ReplicaSet "%s" has timed out progressing.' % rs["metadata"]["name"]))
        try:
            rollout_deployment(d)
            raise AssertionError("kubectl's check did not fail")
        except RuntimeError as e:
            eq(str(e), 'deployment "api" exceeded its progress deadline')
        env.wait(lambda: rollout_deployment(env.get("deployments.apps", "ok"))[0], "the other deployment is unaffected")
    finally:
        env.close()


def test_recreate_strategy_replaces_pods():
    env = Env()
    try:
        env.create("deployments.apps", deployment("db", replicas=1, strategy={"type": "Recreate"}))
        env.wait(lambda: rollout_deployment(env.get("deployments.apps", "db"))[0], "first rollout")
        with env.store.lock:
            d = env.get("deployments.apps", "db")
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "mongo:7"
            env.store.update("deployments.apps", NS, d)
        env.wait(lambda: (lambda o: o["status"].get("observedGeneration") == 2 and rollout_deployment(o)[0])(
            env.get("deployments.apps", "db")), "recreated")
        pods = env.list("pods")
        eq([p["spec"]["containers"][0]["image"] for p in pods], ["mongo:7"])
    finally:
        env.close()


# -- controllers: StatefulSets, Jobs -----------------------------------------------------------


def statefulset(name, replicas=3, image="mongo:7"):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "mongo", "image": image,
                                                           "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                               "spec": {"accessModes": ["ReadWriteOnce"],
                                                        "resources": {"requests": {"storage": "1Gi"}}}}]}}


def test_statefulset_ordinal_pods_claims_and_rolling_update():
    env = Env()
    try:
        env.create("statefulsets.apps", statefulset("db"))
        s = env.wait(lambda: (lambda o: o if rollout_statefulset(o)[0] else None)(env.get("statefulsets.apps", "db")),
                     "statefulset rolled out")
        eq(rollout_statefulset(s)[1], "partitioned roll out complete: 3 new pods have been updated...")
        st = s["status"]
        eq((st["replicas"], st["readyReplicas"], st["currentReplicas"], st["updatedReplicas"],
            st["observedGeneration"]), (3, 3, 3, 3, 1), "status")
        eq(st["currentRevision"], st["updateRevision"])
        added = [n for (t, r, n) in env.events if t == "ADDED" and r == "pods"]
        eq(added, ["db-0", "db-1", "db-2"], "pods created one at a time, in order")
        for i in range(3):
            p = env.get("pods", "db-%d" % i)
            eq(p["metadata"]["labels"]["controller-revision-hash"], st["updateRevision"])
            eq((p["spec"]["hostname"], p["spec"]["subdomain"]), ("db-%d" % i, "db"))
            vol = [v for v in p["spec"]["volumes"] if v["name"] == "data"][0]
            eq(vol["persistentVolumeClaim"]["claimName"], "data-db-%d" % i)
            c = env.get("persistentvolumeclaims", "data-db-%d" % i)
            eq((c["status"]["phase"], c["spec"]["volumeName"]), ("Bound", "pvc-" + c["metadata"]["uid"]))
            eq(c["metadata"]["labels"], {"app": "db"})
            assert not c["metadata"].get("ownerReferences"), "claims are retained (whenDeleted: Retain)"
        with env.store.lock:
            s = env.get("statefulsets.apps", "db")
            s["spec"]["template"]["spec"]["containers"][0]["image"] = "mongo:8"
            env.store.update("statefulsets.apps", NS, s)
        mark = len(env.events)
        s = env.wait(lambda: (lambda o: o if o["status"].get("observedGeneration") == 2 and rollout_statefulset(o)[0]
                              and o["status"]["currentRevision"] == o["status"]["updateRevision"] else None)(
            env.get("statefulsets.apps", "db")), "rolling update")
        deleted = [n for (t, r, n) in env.events[mark:] if t == "DELETED" and r == "pods"]
        eq(deleted, ["db-2", "db-1", "db-0"], "pods replaced from the highest ordinal down")
        for i in range(3):
            p = env.get("pods", "db-%d" % i)
            eq((p["spec"]["containers"][0]["image"], p["metadata"]["labels"]["controller-revision-hash"]),
               ("mongo:8", s["status"]["updateRevision"]))
        # scale down: highest ordinal first; claims stay
        with env.store.lock:
            s = env.get("statefulsets.apps", "db")
            s["spec"]["replicas"] = 1
            env.store.update("statefulsets.apps", NS, s)
        env.wait(lambda: sorted(p["metadata"]["name"] for p in env.list("pods")) == ["db-0"], "scaled to 1")
        eq(len(env.list("persistentvolumeclaims")), 3, "claims kept after scale-down")
    finally:
        env.close()


def rollout_daemonset(d):
    """kubectl rollout status for a DaemonSet (same file as §4.1)."""
    st = d.get("status") or {}
    if d["metadata"].get("generation", 0) <= st.get("observedGeneration", 0):
        if st.get("updatedNumberScheduled", 0) < st.get("desiredNumberScheduled", 0):
            return False
        return st.get("numberAvailable", 0) >= st.get("desiredNumberScheduled", 0)
    return False


def test_daemonset_one_pod_per_node_and_update():
    env = Env()
    try:
        labels = {"app": "agent"}
        env.create("daemonsets.apps", {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                                       "spec": {"selector": {"matchLabels": labels}, "template": {
                                           "metadata": {"labels": labels},
                                           "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}})
        d = env.wait(lambda: (lambda o: o if rollout_daemonset(o) else None)(env.get("daemonsets.apps", "agent")),
                     "daemonset rolled out")
        eq((d["status"]["desiredNumberScheduled"], d["status"]["numberReady"]), (1, 1))
        eq([p["spec"]["nodeName"] for p in env.list("pods")], ["ferry-node-1"])
        with env.store.lock:
            d = env.get("daemonsets.apps", "agent")
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2"
            env.store.update("daemonsets.apps", NS, d)
        env.wait(lambda: (lambda o: o["status"].get("observedGeneration") == 2 and rollout_daemonset(o))(
            env.get("daemonsets.apps", "agent")), "updated")
        env.wait(lambda: [p["spec"]["containers"][0]["image"] for p in env.list("pods")] == ["agent:2"], "new pod")
    finally:
        env.close()


def job(name, **spec):
    j = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
         "spec": {"template": {"spec": {"restartPolicy": "Never",
                                        "containers": [{"name": "run", "image": "busybox:1.36"}]}}}}
    j["spec"].update(spec)
    return j


def test_job_completes():
    env = Env()
    try:
        env.create("jobs.batch", job("migrate"))
        j = env.wait(lambda: (lambda o: o if (cond(o, "Complete") or {}).get("status") == "True" else None)(
            env.get("jobs.batch", "migrate")), "Complete")
        eq((j["status"].get("succeeded"), j["status"].get("failed"), j["status"].get("active")), (1, None, None))
        assert j["status"]["completionTime"] and j["status"]["startTime"]
        eq(cond(j, "Complete")["reason"], "CompletionsReached")
        pods = env.list("pods")
        eq(len(pods), 1)
        p = pods[0]
        eq(p["status"]["phase"], "Succeeded")
        eq(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0)
        eq((p["metadata"]["labels"]["job-name"], p["metadata"]["ownerReferences"][0]["kind"]), ("migrate", "Job"))
    finally:
        env.close()


def test_job_fails_after_backoff_limit():
    env = Env(job_fail=["bad"])
    try:
        env.create("jobs.batch", job("bad", backoffLimit=1))
        j = env.wait(lambda: (lambda o: o if (cond(o, "Failed") or {}).get("status") == "True" else None)(
            env.get("jobs.batch", "bad")), "Failed")
        eq((cond(j, "Failed")["reason"], cond(j, "Failed")["message"]),
           ("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
        eq(j["status"]["failed"], 2, "backoffLimit 1 allows one retry")
        assert cond(j, "Complete") is None
        for p in env.list("pods"):
            eq(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 1)
    finally:
        env.close()


# -- controllers: volumes and snapshots --------------------------------------------------------


def bound(env, name):
    return env.wait(lambda: (lambda o: o if o and (o.get("status") or {}).get("phase") == "Bound" else None)(
        env.get("persistentvolumeclaims", name)), "%s Bound" % name)


def test_pvc_binds_to_a_provisioned_portworx_volume():
    env = Env()
    try:
        env.create("persistentvolumeclaims", pvc("data", "5Gi"))
        c = bound(env, "data")
        pv = env.get("persistentvolumes", c["spec"]["volumeName"], ns=None)
        eq(pv["metadata"]["name"], "pvc-" + c["metadata"]["uid"])
        eq((pv["spec"]["csi"]["driver"], pv["spec"]["storageClassName"], pv["spec"]["capacity"]["storage"]),
           ("pxd.portworx.com", "px-csi-db", "5Gi"))
        assert re.fullmatch(r"\d{10,20}", pv["spec"]["csi"]["volumeHandle"]), pv["spec"]["csi"]["volumeHandle"]
        eq((pv["spec"]["claimRef"]["name"], pv["spec"]["claimRef"]["namespace"], pv["spec"]["claimRef"]["uid"]),
           ("data", NS, c["metadata"]["uid"]))
        eq(pv["status"]["phase"], "Bound")
        eq(c["status"]["capacity"], {"storage": "5Gi"})
        eq(c["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"], "yes")
        assert "ProvisioningSucceeded" in {e["reason"] for e in events_for(env, "data")}
        env.store.delete("persistentvolumeclaims", NS, "data")
        env.wait(lambda: env.get("persistentvolumes", pv["metadata"]["name"], ns=None) is None,
                 "PV deleted with its claim (reclaimPolicy Delete)")
    finally:
        env.close()


def test_wait_for_first_consumer():
    env = Env()
    try:
        env.create("storageclasses.storage.k8s.io", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "px-wffc"},
            "provisioner": "pxd.portworx.com", "volumeBindingMode": "WaitForFirstConsumer"})
        env.create("persistentvolumeclaims", pvc("late", storageClassName="px-wffc"))
        ev = env.wait(lambda: next((e for e in events_for(env, "late") if e["reason"] == "WaitForFirstConsumer"), None),
                      "WaitForFirstConsumer event")
        eq(ev["message"], "waiting for first consumer to be created before binding")
        eq(env.get("persistentvolumeclaims", "late")["status"]["phase"], "Pending")
        env.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"},
                            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                     "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "late"}}]}})
        bound(env, "late")
        env.wait(lambda: (cond(env.get("pods", "user"), "Ready") or {}).get("status") == "True", "consumer Ready")
    finally:
        env.close()


def test_pvc_pending_injection_then_release():
    env = Env(pvc_pending=["data"])
    try:
        env.create("persistentvolumeclaims", pvc("data"))
        env.create("persistentvolumeclaims", pvc("other"))
        bound(env, "other")
        ev = env.wait(lambda: next((e for e in events_for(env, "data") if e["reason"] == "ProvisioningFailed"), None),
                      "ProvisioningFailed event")
        eq(ev["type"], "Warning")
        assert ev["message"].startswith('failed to provision volume with StorageClass "px-csi-db"'), ev["message"]
        eq(env.get("persistentvolumeclaims", "data")["status"]["phase"], "Pending")
        env.ctl.configure({"pvc_pending": {"data": {"reason": "FailedBinding", "message": "no persistent volumes "
                                                    "available for this claim and no storage class is set"}}})
        env.wait(lambda: any(e["reason"] == "FailedBinding" for e in events_for(env, "data")), "chosen event")
        env.ctl.configure({"pvc_pending": []})
        bound(env, "data")
    finally:
        env.close()


def test_pvc_lost():
    env = Env(pvc_lost=["data"])
    try:
        env.create("persistentvolumeclaims", pvc("data"))
        env.wait(lambda: env.get("persistentvolumeclaims", "data")["status"].get("phase") == "Lost", "Lost")
        assert any(e["reason"] == "ClaimLost" for e in events_for(env, "data"))
    finally:
        env.close()


def test_csi_snapshot_ready_with_hook_and_restore():
    env = Env()
    calls = []

    def on_snapshot(res, obj):
        calls.append((res, obj["metadata"]["name"], obj["_ferry"]["volume_handle"]))
        return {"snapshot_handle": "px-snap-%d" % sum(1 for c in calls if c[0] == res)}

    def on_provision(pvc_obj, sc, source):
        calls.append(("provision", pvc_obj["metadata"]["name"], source))
        return {"volume_handle": "clone-of-" + source["snapshot_handle"]} if source else None

    env.ctl.hooks.update(on_snapshot=on_snapshot, on_provision=on_provision)
    try:
        env.create("persistentvolumeclaims", pvc("data", "10Gi"))
        c = bound(env, "data")
        handle = env.get("persistentvolumes", c["spec"]["volumeName"], ns=None)["spec"]["csi"]["volumeHandle"]
        env.create("volumesnapshots.snapshot.storage.k8s.io", {
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "snap"},
            "spec": {"source": {"persistentVolumeClaimName": "data"}}})
        vs = env.wait(lambda: (lambda o: o if (o.get("status") or {}).get("readyToUse") else None)(
            env.get("volumesnapshots.snapshot.storage.k8s.io", "snap")), "readyToUse")
        st = vs["status"]
        eq((st["boundVolumeSnapshotContentName"], st["restoreSize"]), ("snapcontent-" + vs["metadata"]["uid"], "10Gi"))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", st["creationTime"]), st
        content = env.get("volumesnapshotcontents.snapshot.storage.k8s.io", st["boundVolumeSnapshotContentName"], ns=None)
        eq((content["status"]["readyToUse"], content["status"]["snapshotHandle"], content["status"]["restoreSize"]),
           (True, "px-snap-1", 10 << 30))
        eq((content["spec"]["source"]["volumeHandle"], content["spec"]["driver"],
            content["spec"]["volumeSnapshotClassName"]), (handle, "pxd.portworx.com", "px-csi-snapclass"))
        eq(calls[-1], ("volumesnapshots.snapshot.storage.k8s.io", "snap", handle))
        env.create("persistentvolumeclaims", pvc("restored", "10Gi", dataSource={
            "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}))
        r = bound(env, "restored")
        eq(env.get("persistentvolumes", r["spec"]["volumeName"], ns=None)["spec"]["csi"]["volumeHandle"],
           "clone-of-px-snap-1")
        src = [x for x in calls if x[0] == "provision" and x[1] == "restored"][0][2]
        eq((src["kind"], src["name"], src["snapshot_handle"]), ("VolumeSnapshot", "snap", "px-snap-1"))
        env.store.delete("volumesnapshots.snapshot.storage.k8s.io", NS, "snap")
        env.wait(lambda: env.get("volumesnapshotcontents.snapshot.storage.k8s.io",
                                 st["boundVolumeSnapshotContentName"], ns=None) is None, "content deleted")
    finally:
        env.close()


def test_snapshot_errors_csi_and_stork():
    env = Env(snapshot_error=["bad"])
    try:
        env.create("persistentvolumeclaims", pvc("data"))
        bound(env, "data")
        env.create("volumesnapshots.snapshot.storage.k8s.io", {
            "metadata": {"name": "bad"}, "spec": {"source": {"persistentVolumeClaimName": "data"}}})
        env.create("volumesnapshots.volumesnapshot.external-storage.k8s.io", {
            "metadata": {"name": "bad"}, "spec": {"persistentVolumeClaimName": "data"}})
        vs = env.wait(lambda: (lambda o: o if (o.get("status") or {}).get("error") else None)(
            env.get("volumesnapshots.snapshot.storage.k8s.io", "bad")), "CSI error")
        eq(vs["status"]["readyToUse"], False)
        assert "injected failure" in vs["status"]["error"]["message"]
        sv = env.wait(lambda: (lambda o: o if cond(o, "Error") else None)(
            env.get("volumesnapshots.volumesnapshot.external-storage.k8s.io", "bad")), "STORK Error condition")
        eq(cond(sv, "Error")["status"], "True")
        # a snapshot of a missing claim is an error too
        env.create("volumesnapshots.snapshot.storage.k8s.io", {
            "metadata": {"name": "orphan"}, "spec": {"source": {"persistentVolumeClaimName": "nope"}}})
        vs = env.wait(lambda: (lambda o: o if (o.get("status") or {}).get("error") else None)(
            env.get("volumesnapshots.snapshot.storage.k8s.io", "orphan")), "missing claim error")
        assert 'persistentvolumeclaims "nope" not found' in vs["status"]["error"]["message"], vs["status"]
    finally:
        env.close()


def test_snapshot_hook_error_then_retry():
    env = Env()
    tries = []

    def on_snapshot(res, obj):
        tries.append(res)
        if len(tries) == 1:
            raise RuntimeError("px: volume busy")
        return {"snapshot_handle": "ok-1"}
    env.ctl.hooks["on_snapshot"] = on_snapshot
    try:
        env.create("persistentvolumeclaims", pvc("data"))
        bound(env, "data")
        env.create("volumesnapshots.snapshot.storage.k8s.io", {
            "metadata": {"name": "snap"}, "spec": {"source": {"persistentVolumeClaimName": "data"}}})
        vs = env.wait(lambda: (lambda o: o if (o.get("status") or {}).get("error") else None)(
            env.get("volumesnapshots.snapshot.storage.k8s.io", "snap")), "the hook's error")
        eq(vs["status"]["error"]["message"], "Failed to check and update snapshot content: px: volume busy")
        vs = env.wait(lambda: (lambda o: o if (o.get("status") or {}).get("readyToUse") else None)(
            env.get("volumesnapshots.snapshot.storage.k8s.io", "snap")), "ready after a retry")
        assert "error" not in vs["status"], vs["status"]
        eq(len(tries), 2)
    finally:
        env.close()


def test_stork_snapshot_ready():
    env = Env()
    env.ctl.hooks["on_snapshot"] = lambda res, obj: {"snapshot_handle": "778899"}
    try:
        env.create("persistentvolumeclaims", pvc("data"))
        c = bound(env, "data")
        env.create("volumesnapshots.volumesnapshot.external-storage.k8s.io", {
            "apiVersion": "volumesnapshot.external-storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": "snap"}, "spec": {"persistentVolumeClaimName": "data"}})
        vs = env.wait(lambda: (lambda o: o if (cond(o, "Ready") or {}).get("status") == "True" else None)(
            env.get("volumesnapshots.volumesnapshot.external-storage.k8s.io", "snap")), "STORK Ready")
        eq(cond(vs, "Ready")["message"], "Snapshot created successfully and it is ready")
        data = env.get("volumesnapshotdatas.volumesnapshot.external-storage.k8s.io", vs["spec"]["snapshotDataName"],
                       ns=None)
        eq(data["spec"]["portworxVolume"]["snapshotId"], "778899")
        eq(data["spec"]["persistentVolumeRef"]["name"], c["spec"]["volumeName"])
    finally:
        env.close()


# -- controllers: garbage collection, pods, configuration --------------------------------------


def test_garbage_collection_background_foreground_orphan():
    env = Env()
    try:
        for n in ("bg", "fg", "or"):
            env.create("deployments.apps", deployment(n, replicas=2))
        for n in ("bg", "fg", "or"):
            env.wait(lambda n=n: rollout_deployment(env.get("deployments.apps", n))[0], n + " rolled out")
        env.store.delete("deployments.apps", NS, "bg")
        env.wait(lambda: not env.list("replicasets.apps", labels="app=bg") and not env.list("pods", labels="app=bg"),
                 "background: replica set and pods collected")
        env.store.delete("deployments.apps", NS, "fg", propagation="Foreground")
        d = env.get("deployments.apps", "fg")
        assert d is not None and "foregroundDeletion" in d["metadata"]["finalizers"], "foreground keeps the owner first"
        env.wait(lambda: env.get("deployments.apps", "fg") is None, "foreground: owner gone")
        eq((env.list("replicasets.apps", labels="app=fg"), env.list("pods", labels="app=fg")), ([], []),
           "foreground: dependents were gone first")
        mark = len(env.events)
        env.store.delete("deployments.apps", NS, "or", propagation="Orphan")
        env.wait(lambda: env.get("deployments.apps", "or") is None, "orphan: owner gone")
        rs = env.list("replicasets.apps", labels="app=or")
        eq(len(rs), 1, "orphaned replica set kept")
        assert not rs[0]["metadata"].get("ownerReferences"), rs[0]["metadata"]
        eq(len(env.list("pods", labels="app=or")), 2, "its pods kept")
        assert not [e for e in env.events[mark:] if e[0] == "DELETED" and e[1] == "pods"]
    finally:
        env.close()


def test_graceful_pod_deletion_is_confirmed():
    env = Env()
    env.store.graceful_pods = True
    try:
        env.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        env.wait(lambda: (cond(env.get("pods", "p"), "Ready") or {}).get("status") == "True", "Ready")
        out = env.store.delete("pods", NS, "p")
        assert out["metadata"].get("deletionTimestamp"), "kept while terminating"
        env.wait(lambda: env.get("pods", "p") is None, "the kubelet confirms the deletion")
    finally:
        env.close()


def test_unschedulable_and_image_pull_errors():
    env = Env(unschedulable=["app=big"], image_pull_error=["typo"])
    try:
        env.create("pods", {"metadata": {"name": "huge", "labels": {"app": "big"}},
                            "spec": {"containers": [{"name": "c", "image": "x"}]}})
        env.create("pods", {"metadata": {"name": "typo"}, "spec": {"containers": [{"name": "c", "image": "ngnix:1"}]}})
        p = env.wait(lambda: (lambda o: o if cond(o, "PodScheduled") else None)(env.get("pods", "huge")), "PodScheduled")
        eq((p["status"]["phase"], cond(p, "PodScheduled")["status"], cond(p, "PodScheduled")["reason"]),
           ("Pending", "False", "Unschedulable"))
        assert not p["spec"].get("nodeName")
        p = env.wait(lambda: (lambda o: o if any(((cs.get("state") or {}).get("waiting") or {}).get("reason") ==
                                                 "ImagePullBackOff" for cs in o["status"].get("containerStatuses") or [])
                              else None)(env.get("pods", "typo")), "ImagePullBackOff")
        eq(p["status"]["phase"], "Pending")
    finally:
        env.close()


def test_configure_validates_merges_resets_and_pauses():
    env = Env()
    try:
        for bad in ({"pod_ready_delay": -1}, {"nope": 1}, {"crashloop": [1]},
                    {"paused": "yes"}, {"snapshot_error": {"a": {"oops": 1}}}, []):
            try:
                env.ctl.configure(bad)
                raise AssertionError("accepted %r" % (bad,))
            except ValueError:
                pass
        out = env.ctl.configure({"pod_ready_delay": 0.2, "crashloop": "web"})
        eq((out["pod_ready_delay"], out["crashloop"], out["pvc_bind_delay"]), (0.2, ["web"], 0.05))
        out = env.ctl.configure({"reset": True})
        eq(out, controllers.DEFAULTS)
        env.ctl.configure({"paused": True})
        env.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        env.store.wait_idle()
        time.sleep(0.1)  # paused controllers must do nothing, so there is no condition to wait for
        assert not env.get("pods", "p")["spec"].get("nodeName"), "paused controllers acted"
        env.ctl.configure({"paused": False})
        env.wait(lambda: (cond(env.get("pods", "p"), "Ready") or {}).get("status") == "True", "resumed")
        controllers.reset()
        eq(env.ctl.configure({}), controllers.DEFAULTS)
    finally:
        env.close()


# -- streams: a tiny API server ------------------------------------------------------------


class StreamServer:
    """handle_exec / handle_log / handle_proxy behind an HTTP/1.1 server, plus pod GETs
    and /version so kubectl can exec through it."""

    def __init__(self, st, tls=None):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.route(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.store = st
        self.httpd = Server(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def route(self, h):
        u = urlsplit(h.path)
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)(?:/(exec|attach|log))?", u.path)
        if m and m.group(3) in ("exec", "attach"):
            return streams.handle_exec(h, self.store, m.group(1), m.group(2), u.query)
        if m and m.group(3) == "log":
            return streams.handle_log(h, self.store, m.group(1), m.group(2), u.query)
        m2 = re.fullmatch(r"/api/v1/namespaces/([^/]+)/services/([^/]+)/proxy(/.*)?", u.path)
        if m2:
            return streams.handle_proxy(h, self.store, m2.group(1), m2.group(2), None, m2.group(3) or "/")
        if m:
            obj = self.store.get("pods", m.group(1), m.group(2))
            return self.json(h, 200 if obj else 404, obj or store.not_found("pods", m.group(2)).to_status())
        if u.path == "/version":
            return self.json(h, 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.4"})
        if u.path == "/api":
            return self.json(h, 200, {"kind": "APIVersions", "versions": ["v1"]})
        if u.path == "/apis":
            return self.json(h, 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if u.path == "/api/v1":
            return self.json(h, 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"],
                 "shortNames": ["po"]},
                {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
                 "verbs": ["create", "get"]}]})
        return self.json(h, 404, {"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound",
                                  "message": "the server could not find the requested resource"})

    @staticmethod
    def json(h, code, obj):
        body = json.dumps(obj).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def running_pod(name, containers=("mongo",), phase="Running"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": c, "image": "mongo:7"} for c in containers]},
            "status": {"phase": phase, "containerStatuses": [
                {"name": c, "ready": True, "restartCount": 0, "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}
                for c in containers]}}


_SERVER = {}


def server(tls=False):
    """One shared store and server (plain or TLS) for the stream tests."""
    key = "tls" if tls else "plain"
    if "store" not in _SERVER:
        st = store.Store()
        st.create("namespaces", None, {"metadata": {"name": NS}})
        st.create("pods", NS, running_pod("mongo-0"))
        st.create("pods", NS, running_pod("multi", ("a", "b")))
        st.create("pods", NS, running_pod("done", phase="Succeeded"))
        st.create("services", NS, {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}})
        _SERVER["store"] = st
    if key not in _SERVER:
        tls_files = None
        if tls:
            d = _SERVER["tmp"] = tempfile.mkdtemp(prefix="ferry-kube-test-")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=localhost", "-keyout", d + "/key.pem", "-out", d + "/cert.pem"],
                           check=True, capture_output=True)
            tls_files = (d + "/cert.pem", d + "/key.pem")
        _SERVER[key] = StreamServer(_SERVER["store"], tls_files)
    streams.reset()
    return _SERVER[key]


def exec_path(pod, argv, ns=NS, **flags):
    q = "&".join("command=" + quote(a, safe="") for a in argv)
    flags.setdefault("stdout", "true")
    flags.setdefault("stderr", "true")
    q += "".join("&%s=%s" % (k, v) for k, v in flags.items())
    return "/api/v1/namespaces/%s/pods/%s/exec?%s" % (ns, pod, q)


class Session:
    """A client exec session: frames by channel, the Status, how it ended."""

    def __init__(self, srv, path, protocols=("v5.channel.k8s.io",), tls=False):
        ctx = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.ws, self.protocol = streams.connect("localhost" if tls else "127.0.0.1", srv.port, path, protocols,
                                                 ssl_context=ctx)
        self.b64 = bool(self.protocol) and "base64" in self.protocol
        self.frames = []  # (channel, bytes)
        self.closed = None

    def send(self, channel, data=b""):
        if self.b64:
            self.ws.send(streams.OP_TEXT, chr(48 + channel) + base64.b64encode(data).decode())
        else:
            self.ws.send(streams.OP_BINARY, bytes([channel]) + data)

    def run(self, timeout=10.0):
        end = time.monotonic() + timeout
        while self.closed is None:
            msg = self.ws.poll(max(end - time.monotonic(), 0.01))
            if msg is None:
                if time.monotonic() > end:
                    raise AssertionError("exec session did not end")
                continue
            op, payload = msg
            if op == streams.OP_CLOSE:
                self.closed = payload
                break
            if self.b64:
                assert op == streams.OP_TEXT, "base64 protocols use text frames"
                self.frames.append((ord(payload[:1]) - 48, base64.b64decode(payload[1:])))
            else:
                assert op == streams.OP_BINARY, "kubectl rejects text frames"
                self.frames.append((payload[0], payload[1:]))
        self.ws.shutdown()
        return self

    def out(self, ch):
        return b"".join(d for c, d in self.frames if c == ch)

    def status(self):
        raw = self.out(3)
        return json.loads(raw) if raw else None


def test_exec_v5_success_and_first_empty_frame():
    srv = server()
    s = Session(srv, exec_path("mongo-0", ["echo", "hello", "world"])).run()
    eq(s.protocol, "v5.channel.k8s.io")
    eq(s.frames[0], (1, b""), "the kubelet's empty first frame on stdout")
    eq(s.out(1), b"hello world\n")
    eq(s.status(), {"metadata": {}, "status": "Success"})
    eq(s.closed[0], 1000, "close code")


def test_exec_nonzero_exit_status_is_kubelets():
    srv = server()
    s = Session(srv, exec_path("mongo-0", ["sh", "-c", "echo out; >&2 echo oops; exit 3"])).run()
    eq((s.out(1), s.out(2)), (b"out\n", b"oops\n"))
    eq(s.status(), {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                    "message": "command terminated with non-zero exit code: error executing command "
                               "[sh -c echo out; >&2 echo oops; exit 3], exit code 3",
                    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})
    s = Session(srv, exec_path("mongo-0", ["sh", "-c", "false || echo rescued && nosuch"])).run()
    eq((s.out(1), s.out(2), s.status()["details"]["causes"][0]["message"]),
       (b"rescued\n", b"sh: 1: nosuch: not found\n", "127"))


def test_exec_scripted_rules_by_pod_and_argv():
    srv = server()
    streams.configure_exec({"pods": {
        "t/mongo-0": [{"match": ["mongosh", "--quiet", "--eval", "re:db\\.runCommand\\(.*ping.*"],
                       "stdout": '{ ok: 1 }\n'},
                      {"match": ["pxctl"], "times": 1, "stderr": "pxctl: busy\n", "exit": 2}],
        "*": [{"match": "^pxctl -j volume list", "stdout": "[]\n"}]}})
    s = Session(srv, exec_path("mongo-0", ["mongosh", "--quiet", "--eval", "db.runCommand({ping:1})"])).run()
    eq((s.out(1), s.status()["status"]), (b"{ ok: 1 }\n", "Success"))
    s = Session(srv, exec_path("mongo-0", ["pxctl", "-j", "volume", "list"])).run()
    eq((s.out(2), s.status()["details"]["causes"][0]["message"]), (b"pxctl: busy\n", "2"), "first call: the rule")
    s = Session(srv, exec_path("mongo-0", ["pxctl", "-j", "volume", "list"])).run()
    eq((s.out(1), s.status()["status"]), (b"[]\n", "Success"), "then the * rule")
    calls = streams.exec_calls()
    eq([c["command"][0] for c in calls], ["mongosh", "pxctl", "pxctl"])
    eq((calls[0]["container"], calls[0]["exit"], calls[0]["rule"]), ("mongo", 0, True))


def test_exec_stdin_v5_close_and_resize():
    srv = server()
    s = Session(srv, exec_path("mongo-0", ["cat"], stdin="true"))
    s.send(4, b'{"Width":80,"Height":24}')
    s.send(0, b"abc")
    s.send(0, b"def\n")
    s.ws.send(streams.OP_BINARY, bytes([255, 0]))
    s.run()
    eq((s.out(1), s.status()["status"]), (b"abcdef\n", "Success"))
    call = streams.exec_calls()[-1]
    eq((call["stdin"], call["stdin_closed"], call["resize"]), ("abcdef\n", True, [{"Width": 80, "Height": 24}]))


def test_exec_v4_and_base64_protocols():
    srv = server()
    streams.configure_exec({"stdin_idle": 0.1})
    s = Session(srv, exec_path("mongo-0", ["cat"], stdin="true"), protocols=("v4.channel.k8s.io",))
    eq(s.protocol, "v4.channel.k8s.io")
    s.send(0, b"v4 has no stdin close")
    s.run()
    eq((s.out(1), s.status()["status"]), (b"v4 has no stdin close", "Success"))
    s = Session(srv, exec_path("mongo-0", ["sh", "-c", "echo b64; exit 4"]),
                protocols=("v4.base64.channel.k8s.io", "v4.channel.k8s.io")).run()
    eq(s.protocol, "v4.base64.channel.k8s.io", "the client's first supported offer wins")
    eq((s.frames[0], s.out(1), s.status()["reason"]), ((1, b""), b"b64\n", "NonZeroExitCode"))
    s = Session(srv, exec_path("mongo-0", ["sh", "-c", "exit 5"]), protocols=()).run()
    eq(s.protocol, None, "no offer: channel.k8s.io, nothing echoed")
    eq(s.out(3), b"command terminated with non-zero exit code: error executing command [sh -c exit 5], exit code 5")
    try:
        Session(srv, exec_path("mongo-0", ["true"]), protocols=("v9.channel.k8s.io",))
        raise AssertionError("an unsupported protocol was accepted")
    except streams.HandshakeError as e:
        eq(e.status, 400)


def test_exec_ping_pong_during_a_slow_command():
    srv = server()
    s = Session(srv, exec_path("mongo-0", ["sleep", "0.3"]))
    s.ws.send(streams.OP_PING, b"are you there")
    s.run()
    eq((s.ws.pongs, s.status()["status"]), (1, "Success"))
    eq(streams.exec_calls()[-1]["pings"], 1)


def test_exec_large_output():
    srv = server()
    n = 3 * 1024 * 1024 + 17
    streams.configure_exec({"pods": {"mongo-0": [{"match": ["dump"], "stdout": "head\n", "stdout_bytes": n}]}})
    s = Session(srv, exec_path("mongo-0", ["dump"])).run(timeout=30)
    out = s.out(1)
    eq(len(out), 5 + n)
    line = b"0123456789abcdef" * 3 + b"0123456789abcde\n"
    eq(out[5:5 + 128], line * 2)
    eq(out[5:], (line * (n // 64 + 1))[:n])
    assert max(len(d) for c, d in s.frames) <= streams.FRAME_CHUNK


def test_exec_failures_internal_error_drop_and_no_status():
    srv = server()
    s = Session(srv, exec_path("mongo-0", ["nosuchbinary", "-x"])).run()
    st = s.status()
    eq((st["status"], st["reason"], st["code"]), ("Failure", "InternalError", 500))
    assert st["message"].startswith("Internal error occurred: error executing command in container: failed to exec "
                                    "in container: "), st["message"]
    assert 'exec: "nosuchbinary": executable file not found in $PATH' in st["message"]
    streams.configure_exec({"unknown_exit": 127, "pods": {"mongo-0": [{"match": ["gone"], "drop": True},
                                                                       {"match": ["quiet"], "no_status": True}]}})
    s = Session(srv, exec_path("mongo-0", ["nosuchbinary"])).run()
    eq(s.status()["details"]["causes"][0]["message"], "127")
    s = Session(srv, exec_path("mongo-0", ["quiet"])).run()
    eq((s.status(), s.closed[0]), (None, 1000))
    s = Session(srv, exec_path("mongo-0", ["gone"]))
    try:
        s.run()
        raise AssertionError("a dropped session ended with a close frame")
    except streams.ConnectionClosed:
        pass
    eq(s.status(), None)


def test_exec_checks_before_the_upgrade():
    srv = server()
    cases = [
        (exec_path("nope", ["true"]), 404, 'pods "nope" not found'),
        (exec_path("multi", ["true"]), 400, "a container name must be specified for pod multi, choose one of: [a b]"),
        (exec_path("multi", ["true"], container="c"), 400, "container c is not valid for pod multi"),
        ("/api/v1/namespaces/t/pods/mongo-0/exec?stdout=true", 400,
         "you must specify at least one command for the container"),
        (exec_path("mongo-0", ["true"], stdout="false", stderr="false"), 400,
         "you must specify at least 1 of stdin, stdout, stderr"),
        (exec_path("done", ["true"]), 400, "cannot exec into a container in a completed pod; current phase is Succeeded"),
    ]
    for path, code, message in cases:
        try:
            Session(srv, path)
            raise AssertionError("upgraded: " + path)
        except streams.HandshakeError as e:
            st = json.loads(e.body)
            eq((e.status, st["code"], st["kind"], st["message"]), (code, code, "Status", message), path)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", exec_path("mongo-0", ["true"]))
    r = conn.getresponse()
    eq((r.status, json.loads(r.read())["message"]), (400, "Upgrade request required"), "a plain GET")
    s = Session(srv, exec_path("multi", ["hostname"], container="b")).run()
    eq(s.out(1), b"multi\n")


def test_attach_prints_logs_and_echoes_stdin():
    srv = server()
    streams.configure_exec({"logs": {"t/mongo-0": ["booted"]}})
    s = Session(srv, "/api/v1/namespaces/t/pods/mongo-0/attach?stdout=true&stdin=true")
    s.send(0, b"typed\n")
    s.ws.send(streams.OP_BINARY, bytes([255, 0]))
    s.run()
    eq((s.out(1), s.status()["status"]), (b"booted\ntyped\n", "Success"))


def test_exec_over_tls():
    if not shutil.which("openssl"):
        raise testlib.Skip("openssl is not installed")
    srv = server(tls=True)
    s = Session(srv, exec_path("mongo-0", ["cat"], stdin="true"), tls=True)
    s.send(0, b"x" * 200_000)
    s.ws.send(streams.OP_PING, b"p")
    s.ws.send(streams.OP_BINARY, bytes([255, 0]))
    s.run()
    eq((len(s.out(1)), s.status()["status"], s.ws.pongs), (200_000, "Success", 1))


def test_exec_with_kubectl():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise testlib.Skip("kubectl is not installed")
    srv = server()
    home = tempfile.mkdtemp(prefix="ferry-kubectl-")
    try:
        env = dict(os.environ, HOME=home, KUBECONFIG=os.path.join(home, "none"), KUBECACHEDIR=os.path.join(home, "cache"))
        base = [kubectl, "--server=http://127.0.0.1:%d" % srv.port, "-n", NS, "exec", "mongo-0", "--"]
        r = subprocess.run(base + ["sh", "-c", "echo hi; echo err >&2; exit 3"], env=env, capture_output=True, text=True,
                           timeout=60)
        eq((r.returncode, r.stdout), (3, "hi\n"), "kubectl exec exit code and stdout (stderr: %s)" % r.stderr)
        assert "err\n" in r.stderr and "command terminated with exit code 3" in r.stderr, r.stderr
        r = subprocess.run(base + ["sh", "-c", "exit 0"], env=env, capture_output=True, text=True, timeout=60)
        eq(r.returncode, 0, r.stderr)
        r = subprocess.run([kubectl, "--server=http://127.0.0.1:%d" % srv.port, "-n", NS, "exec", "-i", "mongo-0", "--",
                            "cat"], input="piped stdin\n", env=env, capture_output=True, text=True, timeout=60)
        eq((r.returncode, r.stdout), (0, "piped stdin\n"), "kubectl exec -i (stderr: %s)" % r.stderr)
        eq(streams.exec_calls()[-1]["protocol"], "v5.channel.k8s.io")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_exec_with_python_kubernetes():
    probe = subprocess.run(["/usr/bin/python3", "-c", "import kubernetes.stream"], capture_output=True)
    if probe.returncode:
        raise testlib.Skip("python3-kubernetes is not installed")
    srv = server()
    code = r"""
import sys
from kubernetes import client
from kubernetes.stream import stream
cfg = client.Configuration(); cfg.host = sys.argv[1]
api = client.CoreV1Api(client.ApiClient(cfg))
r = stream(api.connect_get_namespaced_pod_exec, "mongo-0", "t", command=["sh", "-c", "echo py; exit 3"],
           stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
r.run_forever(timeout=10)
print(repr(r.read_stdout(timeout=1)), r.returncode)
"""
    r = subprocess.run(["/usr/bin/python3", "-c", code, "http://127.0.0.1:%d" % srv.port], capture_output=True,
                       text=True, timeout=60, cwd="/")
    eq(r.stdout.strip(), "'py\\n' 3", "python3-kubernetes v4 exec (stderr: %s)" % r.stderr[-500:])
    eq(streams.exec_calls()[-1]["protocol"], "v4.channel.k8s.io")


# -- streams: logs and proxy -----------------------------------------------------------------


def get(srv, path, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def test_logs_tail_timestamps_previous_and_errors():
    srv = server()
    streams.configure_exec({"logs": [{"pod": "t/mongo-0", "lines": ["one", "two", "three", "four"],
                                      "previous": ["crashed"]},
                                     {"pod": "multi", "container": "b", "lines": "b says hi\n"}]})
    base = "/api/v1/namespaces/t/pods/%s/log"
    st, hd, body = get(srv, base % "mongo-0")
    eq((st, hd["content-type"], body), (200, "text/plain", b"one\ntwo\nthree\nfour\n"))
    eq(get(srv, base % "mongo-0" + "?tailLines=2")[2], b"three\nfour\n")
    eq(get(srv, base % "mongo-0" + "?tailLines=0")[2], b"")
    eq(get(srv, base % "mongo-0" + "?limitBytes=6")[2], b"one\ntw")
    eq(get(srv, base % "mongo-0" + "?previous=true")[2], b"crashed\n")
    eq(get(srv, base % "mongo-0" + "?sinceTime=2999-01-01T00:00:00Z")[2], b"")
    eq(get(srv, base % "mongo-0" + "?sinceSeconds=3600")[2], b"one\ntwo\nthree\nfour\n")
    lines = get(srv, base % "mongo-0" + "?timestamps=true&tailLines=1")[2].decode()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z four\n", lines), lines
    eq(get(srv, base % "multi" + "?container=b")[2], b"b says hi\n")
    st, _, body = get(srv, base % "multi")
    eq((st, json.loads(body)["message"]), (400, "a container name must be specified for pod multi, choose one of: [a b]"))
    st, _, body = get(srv, base % "multi" + "?container=a&previous=true")
    eq((st, json.loads(body)["message"]), (400, 'previous terminated container "a" in pod "multi" not found'))
    st, _, body = get(srv, base % "mongo-0" + "?sinceSeconds=0")
    eq((st, json.loads(body)["reason"]), (422, "Invalid"))
    eq(get(srv, base % "ghost")[0], 404)


def test_logs_follow_streams_appended_lines():
    srv = server()
    streams.configure_exec({"logs": {"t/mongo-0": ["first"]}})
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/api/v1/namespaces/t/pods/mongo-0/log?follow=true")
    r = conn.getresponse()
    eq((r.status, r.getheader("Transfer-Encoding")), (200, "chunked"))
    eq(r.readline(), b"first\n")
    streams.configure_exec({"logs": [{"pod": "t/mongo-0", "lines": ["second", "third"], "append": True}]})
    eq((r.readline(), r.readline()), (b"second\n", b"third\n"))
    streams.configure_exec({"logs": [{"pod": "t/mongo-0", "lines": ["last"], "append": True, "end": True}]})
    eq(r.read(), b"last\n", "the stream ends after `end`")
    conn.close()


def test_logs_follow_over_tls():
    if not shutil.which("openssl"):
        raise testlib.Skip("openssl is not installed")
    srv = server(tls=True)
    streams.configure_exec({"logs": {"t/mongo-0": ["a"]}})
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection("localhost", srv.port, timeout=10, context=ctx)
    conn.request("GET", "/api/v1/namespaces/t/pods/mongo-0/log?follow=true&timestamps=true")
    r = conn.getresponse()
    assert r.readline().endswith(b"Z a\n")
    streams.configure_exec({"logs": [{"pod": "t/mongo-0", "lines": ["b"], "append": True}]})
    assert r.readline().endswith(b"Z b\n")
    streams.configure_exec({"logs": [{"pod": "t/mongo-0", "end": True, "append": True}]})
    eq(r.read(), b"")
    conn.close()


def test_proxy_echo_configured_responses_and_endpoints():
    srv = server()
    st, hd, body = get(srv, "/api/v1/namespaces/t/services/web:80/proxy/api/items?limit=2", "POST", b'{"a":1}',
                       {"Content-Type": "application/json", "Authorization": "Bearer secret"})
    echo = json.loads(body)
    eq((st, echo["method"], echo["path"], echo["query"], echo["body"], echo["port"], echo["service"]),
       (200, "POST", "/api/items", "limit=2", '{"a":1}', "80", "web"))
    assert "authorization" not in echo["headers"], "the proxy must not forward credentials"
    eq(json.loads(get(srv, "/api/v1/namespaces/t/services/https:web:http/proxy/")[2])["scheme"], "https")
    streams.configure_proxy({"t/web": [{"path": "/healthz", "status": 503, "body": "not ready",
                                        "headers": {"Retry-After": "1"}},
                                       {"method": "GET", "path": "re:/api/.*", "body": {"items": []}}]})
    st, hd, body = get(srv, "/api/v1/namespaces/t/services/web/proxy/healthz")
    eq((st, hd["retry-after"], body), (503, "1", b"not ready"))
    st, hd, body = get(srv, "/api/v1/namespaces/t/services/web/proxy/api/x")
    eq((st, hd["content-type"], json.loads(body)), (200, "application/json", {"items": []}))
    eq(json.loads(get(srv, "/api/v1/namespaces/t/services/web/proxy/other")[2])["path"], "/other", "falls back to echo")
    eq(get(srv, "/api/v1/namespaces/t/services/nope/proxy/")[0], 404)
    eq(get(srv, "/api/v1/namespaces/t/services/web:9999/proxy/")[0], 503)
    streams.configure_proxy({"require_endpoints": True})
    st, _, body = get(srv, "/api/v1/namespaces/t/services/web/proxy/other")
    eq((st, json.loads(body)["message"]), (503, 'no endpoints available for service "web"'))
    for bad in ({"t/web": {"status": 99}}, {"t/web": {"nope": 1}}, [1]):
        try:
            streams.configure_proxy(bad)
            raise AssertionError("accepted %r" % (bad,))
        except ValueError:
            pass


def test_configure_exec_rejects_bad_bodies():
    for bad in ({"pods": {"x": [{"match": 3}]}}, {"pods": {"x": [{"exit": 300}]}}, {"pods": {"x": [{"bogus": 1}]}},
                {"logs": [{"pod": "x", "lines": [1]}]}, {"what": 1}, {"unknown_exit": 0}, "x"):
        try:
            streams.configure_exec(bad)
            raise AssertionError("accepted %r" % (bad,))
        except ValueError:
            pass


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    tests = [fn for name, fn in list(globals().items()) if name.startswith("test_")]
    tally = testlib.run(tests, only=only, timed=True, quiet=not os.environ.get("VERBOSE"))
    for key in ("plain", "tls"):
        if key in _SERVER:
            _SERVER[key].close()
    if "tmp" in _SERVER:
        shutil.rmtree(_SERVER["tmp"], ignore_errors=True)
    return testlib.summary(tally)


if __name__ == "__main__":
    sys.exit(main())
