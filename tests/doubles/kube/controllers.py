"""controllers.py: the Kubernetes double's control plane: what the scheduler, the
kubelet, the deployment/replicaset/statefulset/daemonset/job controllers, the PV
binder, the CSI provisioner and snapshotter, STORK and the garbage collector would
do, fast.

Standard library only. One worker thread, woken by store change notifications
(Store.subscribe) and by a timer queue. Every reconcile reads the current object,
computes what a real cluster would write next, and writes only what changed (so
its own notifications settle). Reads and the writes that follow them happen under
Store.lock, so API requests never interleave with a half-done step.

Entry points (the API server core calls these):
    c = Controllers(store, config=None); c.start(); c.stop()
    c.configure(dict) -> dict     POST /_ferry/controllers (merge; {"reset": true} first
                                  restores the defaults); ValueError on a bad body
    reset()                       every live Controllers back to its start config
    register_hook(name, fn)       hooks for the Portworx double (module-wide), see HOOKS

Configuration (all optional; seconds as numbers):
    pod_schedule_delay 0.01   Pod created -> spec.nodeName, PodScheduled
    pod_start_delay    0.03   scheduled -> Running (containers started, not ready)
    pod_ready_delay    0.05   Running -> Ready/ContainersReady True
    pod_terminate_delay 0.02  a pod kept with deletionTimestamp -> deleted (kubelet confirm)
    rollout_step_delay 0.02   before each Deployment/ReplicaSet/StatefulSet/Job step
    pvc_bind_delay     0.05   PVC seen -> PV provisioned and both Bound
    job_duration       0.1    Job pod Running -> Succeeded (or Failed)
    job_backoff_delay  0.05   failed Job pod -> its replacement
    snapshot_ready_delay 0.1  snapshot seen -> ready (CSI readyToUse / STORK Ready)
    progress_deadline_delay 0.3  for "progress_deadline" deployments: no progress this
                              long -> Progressing False ProgressDeadlineExceeded (others
                              use spec.progressDeadlineSeconds, default 600)
    crashloop_backoff  0.1    first restart interval of a crash-looping container
                              (doubles each restart, capped at 10x)
    node_name "ferry-node-1"  paused false (freeze every controller; events queue up)
Failure injection: a list of selectors, each "name", "ns/name", "key=value" (labels)
or "*". A name matches the object or any owner up its chain (Pod -> ReplicaSet ->
Deployment, Pod -> StatefulSet/Job), so "web" covers the Deployment's pods.
    crashloop          pods: Running, container waiting CrashLoopBackOff, lastState
                       terminated (Error, exit 1), restartCount rising, Ready False
    image_pull_error   pods: Pending, waiting ErrImagePull then ImagePullBackOff
    unschedulable      pods: Pending, PodScheduled False reason Unschedulable
    not_ready          pods: Running but never Ready (ContainersNotReady)
    progress_deadline  deployments: new pods never Ready; after
                       progress_deadline_delay Progressing False ProgressDeadlineExceeded
    pvc_pending        PVCs stay Pending with an Event: WaitForFirstConsumer (Normal,
                       "waiting for first consumer to be created before binding") for a
                       WaitForFirstConsumer class, FailedBinding ("no persistent volumes
                       available for this claim and no storage class is set") without a
                       class, else ProvisioningFailed. Also a mapping selector ->
                       {"reason", "message", "type"} to choose the Event.
    pvc_lost           PVCs bind, then go Lost (Event ClaimLost; PV phase Failed)
    job_fail           jobs: pods exit 1 until backoffLimit, then Failed
                       (BackoffLimitExceeded)
    snapshot_error     snapshots (CSI or STORK; the source PVC's name matches too):
                       CSI status.error {message, time} and
                       readyToUse false; STORK condition Error True. A mapping selector
                       -> {"message"} chooses the message.

Hooks (module-wide HOOKS, or per instance `c.hooks`; each optional; exceptions become
the object's error):
    on_provision(pvc, storage_class, source) -> None | {"volume_handle", "volume_attributes"}
        source: None, or {"kind": "VolumeSnapshot"|"PersistentVolumeClaim", "name",
        "namespace", "snapshot_handle" | "volume_handle"} for a PVC with a dataSource.
    on_pv(pv) -> None | pv                the PV a provisioning is about to create (a copy);
                                          a returned dict is created instead (e.g. STORK's
                                          in-tree portworxVolume PVs)
    on_volume_delete(pv)                  before a reclaim-Delete PV is removed
    on_snapshot(res, obj) -> None | {"snapshot_handle", "restore_size" (bytes),
        "ready": False (not yet: asked again later), "error": message}
        res is "volumesnapshots.snapshot.storage.k8s.io" or
        "volumesnapshots.volumesnapshot.external-storage.k8s.io"; obj carries
        obj["_ferry"] = {"pvc": ..., "pv": ..., "volume_handle": ...} (not stored).
    on_snapshot_delete(res, obj, content)  a snapshot whose content/data is deleted
"""

import collections
import copy
import datetime
import hashlib
import heapq
import inspect
import json
import random
import re
import sys
import threading
import time
import traceback
import uuid
import weakref

PODS, RS, DEPLOY, STS, JOBS = "pods", "replicasets.apps", "deployments.apps", "statefulsets.apps", "jobs.batch"
DS = "daemonsets.apps"
PVC, PV, SC = "persistentvolumeclaims", "persistentvolumes", "storageclasses.storage.k8s.io"
CSI_VS = "volumesnapshots.snapshot.storage.k8s.io"
CSI_VSC = "volumesnapshotcontents.snapshot.storage.k8s.io"
CSI_CLASS = "volumesnapshotclasses.snapshot.storage.k8s.io"
STORK_VS = "volumesnapshots.volumesnapshot.external-storage.k8s.io"
STORK_VSD = "volumesnapshotdatas.volumesnapshot.external-storage.k8s.io"

PX_DRIVER = "pxd.portworx.com"
WATCHED = (DEPLOY, RS, STS, DS, JOBS, PODS, PVC, PV, CSI_VS, STORK_VS)
CLUSTER_SCOPED = {PV, SC, CSI_VSC, CSI_CLASS, STORK_VSD, "namespaces", "nodes"}

# (kind, group) -> resource, for ownerReferences
KIND_RES = {
    ("Pod", ""): PODS, ("ReplicaSet", "apps"): RS, ("Deployment", "apps"): DEPLOY, ("StatefulSet", "apps"): STS,
    ("Job", "batch"): JOBS, ("DaemonSet", "apps"): DS, ("PersistentVolumeClaim", ""): PVC, ("PersistentVolume", ""): PV,
    ("VolumeSnapshot", "snapshot.storage.k8s.io"): CSI_VS,
    ("VolumeSnapshotContent", "snapshot.storage.k8s.io"): CSI_VSC,
    ("VolumeSnapshot", "volumesnapshot.external-storage.k8s.io"): STORK_VS,
    ("ConfigMap", ""): "configmaps", ("Secret", ""): "secrets", ("Service", ""): "services",
    ("Namespace", ""): "namespaces", ("CronJob", "batch"): "cronjobs.batch",
}

DEFAULTS = {
    "pod_schedule_delay": 0.01,
    "pod_start_delay": 0.03,
    "pod_ready_delay": 0.05,
    "pod_terminate_delay": 0.02,
    "rollout_step_delay": 0.02,
    "pvc_bind_delay": 0.05,
    "job_duration": 0.1,
    "job_backoff_delay": 0.05,
    "snapshot_ready_delay": 0.1,
    "progress_deadline_delay": 0.3,
    "crashloop_backoff": 0.1,
    "node_name": "ferry-node-1",
    "paused": False,
    "crashloop": [],
    "image_pull_error": [],
    "unschedulable": [],
    "not_ready": [],
    "progress_deadline": [],
    "pvc_pending": [],
    "pvc_lost": [],
    "job_fail": [],
    "snapshot_error": [],
}
DELAY_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, float)}
SELECTOR_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, list)}
MAX_DELAY = 3600.0
RETRY = 0.5  # seconds before a reconcile that raised runs again
MAX_RETRIES = 8

HOOKS = {}
HOOK_NAMES = ("on_provision", "on_pv", "on_volume_delete", "on_snapshot", "on_snapshot_delete")
_instances = weakref.WeakSet()


def register_hook(name, fn):
    """Install (fn) or remove (None) a module-wide hook; see the module comment."""
    if name not in HOOK_NAMES:
        raise ValueError("unknown hook %r; hooks: %s" % (name, ", ".join(HOOK_NAMES)))
    if fn is None:
        HOOKS.pop(name, None)
    else:
        HOOKS[name] = fn


def reset():
    """Every live Controllers back to the configuration it was created with."""
    for c in list(_instances):
        c.reset()


# -- small helpers ------------------------------------------------------------------------


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery rand's alphabet (no vowels, no 0/1/3)


def _suffix(n=5):
    return "".join(random.choice(ALNUM) for _ in range(n))


def _template_hash(template):
    """A pod-template-hash as the deployment controller makes one: FNV-32a of the
    template, its decimal digits mapped through the safe alphabet."""
    h = 0x811C9DC5
    for b in json.dumps(template, sort_keys=True, separators=(",", ":")).encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(ALNUM[ord(c) % len(ALNUM)] for c in str(h))


def _md(obj):
    return obj.setdefault("metadata", {})


def _uid(obj):
    return (obj.get("metadata") or {}).get("uid")


def _name(obj):
    return (obj.get("metadata") or {}).get("name")


def _ns(obj):
    return (obj.get("metadata") or {}).get("namespace")


def _group(api_version):
    return api_version.split("/")[0] if "/" in (api_version or "") else ""


def _owned_by(obj, uid):
    return any(r.get("uid") == uid for r in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _controller_ref(obj):
    for r in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if r.get("controller"):
            return r
    return None


def _owner_ref(owner, api_version, kind):
    return {"apiVersion": api_version, "kind": kind, "name": _name(owner), "uid": _uid(owner),
            "controller": True, "blockOwnerDeletion": True}


def _cond(obj, ctype):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _is_true(obj, ctype):
    c = _cond(obj, ctype)
    return bool(c) and c.get("status") == "True"


def _set_cond(conds, ctype, status, reason=None, message=None, now=None, update_time=False, probe=False):
    """Set condition `ctype` in the list `conds` (in place). lastTransitionTime
    changes only with the status; lastUpdateTime (update_time=True, Deployment
    style) whenever anything changes. Returns True if something changed."""
    now = now or _now()
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") == status and c.get("reason") == reason and c.get("message") == message:
                return False
            if c.get("status") != status:
                c["lastTransitionTime"] = now
            c["status"] = status
            for k, v in (("reason", reason), ("message", message)):
                if v is None:
                    c.pop(k, None)
                else:
                    c[k] = v
            if update_time:
                c["lastUpdateTime"] = now
            return True
    c = {"type": ctype, "status": status}
    if probe:
        c["lastProbeTime"] = None
    if update_time:
        c["lastUpdateTime"] = now
    c["lastTransitionTime"] = now
    if reason is not None:
        c["reason"] = reason
    if message is not None:
        c["message"] = message
    conds.append(c)
    return True


def _omit_zero(status, keys):
    for k in keys:
        if not status.get(k):
            status.pop(k, None)
    return status


def _pod_ready(pod):
    return _is_true(pod, "Ready")


def _pod_active(pod):
    return not _md(pod).get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _int(v, default):
    return default if v is None else int(v)


def _scaled(value, total, round_up):
    """An IntOrString (3, "25%") against `total`, as intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        value = "25%"
    if isinstance(value, str) and value.endswith("%"):
        pct = float(value[:-1])
        x = pct * total / 100.0
        return int(-(-x // 1)) if round_up else int(x // 1)
    return int(value)


QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
MULT = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Ki": 1 << 10,
        "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}


def quantity_bytes(q):
    """Bytes of a resource quantity ("10Gi", "1.5G", "1e9", 1024); None if malformed."""
    if isinstance(q, (int, float)):
        return int(q)
    m = QUANTITY.match(str(q or "").strip())
    if not m:
        return None
    v = float(m.group(1)) * (10 ** int(m.group(2)[1:]) if m.group(2) else 1)
    return int(-(-v * MULT[m.group(3)] // 1))


def _api_status(exc):
    for attr in ("status", "code"):
        v = getattr(exc, attr, None)
        if isinstance(v, int):
            return v
    return None


def _match_selectors(selectors, obj, names):
    """The options for the first selector matching obj (a dict; {} for list entries),
    or None. `names` are the object's own name and its owners' names."""
    if not selectors:
        return None
    items = selectors.items() if isinstance(selectors, dict) else ((s, {}) for s in selectors)
    ns = _ns(obj)
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for sel, opts in items:
        if sel == "*":
            return opts or {}
        if "=" in sel:
            k, _, v = sel.partition("=")
            if labels.get(k.strip()) == v.strip():
                return opts or {}
        elif "/" in sel:
            sns, _, sname = sel.partition("/")
            if sns == ns and sname in names:
                return opts or {}
        elif sel in names:
            return opts or {}
    return None


def _check_config(body):
    if not isinstance(body, dict):
        raise ValueError("the body is a JSON object")
    out = {}
    for k, v in body.items():
        if k == "reset":
            continue
        if k not in DEFAULTS:
            raise ValueError("unknown controller setting %r; settings: %s" % (k, ", ".join(sorted(DEFAULTS))))
        if k in DELAY_KEYS:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_DELAY:
                raise ValueError("%s must be a number of seconds in 0..%d" % (k, MAX_DELAY))
            v = float(v)
        elif k in SELECTOR_KEYS:
            if isinstance(v, str):
                v = [v]
            if isinstance(v, list):
                if not all(isinstance(s, str) and s for s in v):
                    raise ValueError("%s is a list of selectors (name, ns/name, key=value or *)" % k)
            elif isinstance(v, dict) and k in ("pvc_pending", "snapshot_error"):
                for s, opts in v.items():
                    if not isinstance(opts, dict) or set(opts) - {"reason", "message", "type"}:
                        raise ValueError("%s maps a selector to {reason, message, type}" % k)
            else:
                raise ValueError("%s is a list of selectors" % k)
        elif k == "paused":
            if not isinstance(v, bool):
                raise ValueError("paused is true or false")
        elif k == "node_name":
            if not isinstance(v, str) or not v:
                raise ValueError("node_name is a non-empty string")
        out[k] = v
    return out


# -- the controllers ----------------------------------------------------------------------


class Controllers:
    def __init__(self, store, config=None):
        self.store = store
        self.hooks = {}
        self._base = dict(DEFAULTS)
        self._base.update(_check_config(config or {}))
        self.config = copy.deepcopy(self._base)
        self._cv = threading.Condition()
        self._due = {}  # key -> due (monotonic)
        self._heap = []  # [(due, seq, key)]
        self._seq = 0
        self._deleted = collections.deque()  # (res, obj) deletions to follow up
        self._work = threading.Lock()  # held while reconciling; guards _mem
        self._mem = {}  # per-object controller memory (timings, one-shot events)
        self._owners = {}  # owner uid -> {(res, ns, name)} dependents seen
        self._failures = {}  # key -> consecutive exceptions
        self._thread = None
        self._stop = False
        self._subscribed = False
        self._ip = 1
        self._del_kw = None
        self._reset_pending = False
        _instances.add(self)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self):
        if self._thread is not None:
            return
        if not self._subscribed:
            self.store.subscribe(self._on_change)
            self._subscribed = True
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="kube-controllers", daemon=True)
        self._thread.start()
        self._resync(index=True)

    def stop(self):
        if self._subscribed and hasattr(self.store, "unsubscribe"):
            self.store.unsubscribe(self._on_change)
            self._subscribed = False
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._thread = None

    def configure(self, body):
        """Merge settings (see the module comment); {"reset": true} starts from the
        defaults. Returns the settings now in force."""
        new = _check_config(body)
        with self._cv:
            if isinstance(body, dict) and body.get("reset"):
                self.config = copy.deepcopy(self._base)
            self.config.update(copy.deepcopy(new))
            out = copy.deepcopy(self.config)
            self._cv.notify_all()
        self._resync()
        return out

    def reset(self):
        # The worker forgets its memory before its next step; taking its lock here
        # could deadlock with a caller that holds Store.lock.
        with self._cv:
            self.config = copy.deepcopy(self._base)
            self._reset_pending = True
            self._owners.clear()  # rebuilt from what the store holds now
            self._cv.notify_all()
        self._resync(index=True)

    def _cfg(self):
        with self._cv:
            return copy.deepcopy(self.config)

    def _hook(self, name):
        return self.hooks.get(name) or HOOKS.get(name)

    # -- the work queue -------------------------------------------------------------------

    def _enqueue(self, key, delay=0.0):
        due = time.monotonic() + max(delay, 0.0)
        with self._cv:
            cur = self._due.get(key)
            if cur is not None and cur <= due:
                return
            self._due[key] = due
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, key))
            self._cv.notify()

    def _resync(self, index=False):
        """Queue every object the controllers care about (after start or a config change)."""
        keys = []
        with self.store.lock:
            for res in WATCHED:
                try:
                    objs = self.store.list(res)
                except Exception:  # noqa: BLE001 - a resource this store does not serve
                    continue
                for o in objs:
                    keys.append((res, _ns(o), _name(o)))
                    if index:
                        self._index(res, o)
            if index:
                for res in ("configmaps", "secrets", "services", "cronjobs.batch"):
                    try:
                        for o in self.store.list(res):
                            self._index(res, o)
                    except Exception:  # noqa: BLE001
                        continue
        for k in keys:
            self._enqueue(k)

    def _index(self, res, obj):
        md = obj.get("metadata") or {}
        for ref in md.get("ownerReferences") or []:
            if ref.get("uid"):
                with self._cv:
                    self._owners.setdefault(ref["uid"], set()).add((res, md.get("namespace"), md.get("name")))

    def _on_change(self, event_type, res, obj):
        """Store subscriber: note the change and queue what must look at it. Never
        touches the store (it may run inside a store write)."""
        try:
            et = str(event_type).upper()
            md = obj.get("metadata") or {}
            ns, name = md.get("namespace"), md.get("name")
            self._index(res, obj)
            if et == "DELETED":
                with self._cv:
                    self._deleted.append((res, copy.deepcopy(obj)))
                    self._cv.notify()
            elif res in WATCHED:
                self._enqueue((res, ns, name), 0.0 if res in (PODS, PVC, PV, CSI_VS, STORK_VS) else self._step())
            if et != "DELETED" and md.get("deletionTimestamp") and set(md.get("finalizers") or []) & {
                    "foregroundDeletion", "orphan"}:
                self._enqueue(("_gc", res, ns, name))
            for ref in md.get("ownerReferences") or []:
                ores = KIND_RES.get((ref.get("kind"), _group(ref.get("apiVersion"))))
                if ores:
                    oref_ns = None if ores in CLUSTER_SCOPED else ns
                    if ores in WATCHED:
                        self._enqueue((ores, oref_ns, ref.get("name")), self._step())
                    if et == "DELETED":
                        self._enqueue(("_gc", ores, oref_ns, ref.get("name")))
            if res == PODS:
                for claim in _pod_claims(obj):
                    self._enqueue((PVC, ns, claim))
            elif res == PVC:
                self._enqueue(("_consumers", ns, name))
            elif res == PV:
                ref = (obj.get("spec") or {}).get("claimRef") or {}
                if ref.get("name"):
                    self._enqueue((PVC, ref.get("namespace"), ref["name"]))
        except Exception:  # noqa: BLE001 - never break the store's write path
            traceback.print_exc()

    def _step(self):
        with self._cv:
            return self.config["rollout_step_delay"]

    def _run(self):
        while True:
            with self._cv:
                while True:
                    if self._stop:
                        return
                    if self._reset_pending:
                        self._reset_pending = False
                        self._mem.clear()
                        self._failures.clear()
                    if not self.config["paused"]:
                        if self._deleted:
                            item = ("deleted", self._deleted.popleft())
                            break
                        now = time.monotonic()
                        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                            heapq.heappop(self._heap)  # superseded entries
                        if self._heap and self._heap[0][0] <= now:
                            due, _, key = heapq.heappop(self._heap)
                            del self._due[key]
                            item = ("key", key)
                            break
                        wait = (self._heap[0][0] - now) if self._heap else 1.0
                    else:
                        wait = 1.0
                    self._cv.wait(min(max(wait, 0.001), 1.0))
            try:
                with self._work:
                    if item[0] == "deleted":
                        self._on_deleted(*item[1])
                    else:
                        self._reconcile(item[1])
                if item[0] == "key":
                    self._failures.pop(item[1], None)
            except Exception as e:  # noqa: BLE001
                key = item[1] if item[0] == "key" else None
                status = _api_status(e)
                if status in (403, 404):
                    continue  # raced with a deletion, or the namespace is terminating
                n = self._failures.get(key, 0) + 1 if key else MAX_RETRIES
                if status != 409:
                    sys.stderr.write("kube controllers: %s: %s\n" % (item[1] if key else item[1][0],
                                                                      traceback.format_exc()))
                if key and n < MAX_RETRIES:
                    self._failures[key] = n
                    self._enqueue(key, 0.01 if status == 409 else RETRY)

    def _reconcile(self, key):
        kind = key[0]
        fn = {
            PODS: self._pod, RS: self._replicaset, DEPLOY: self._deployment, STS: self._statefulset, DS: self._daemonset,
            JOBS: self._job, PVC: self._pvc, PV: self._pv, CSI_VS: self._csi_snapshot,
            STORK_VS: self._stork_snapshot, "_gc": self._gc_owner, "_consumers": self._pvc_consumers,
        }.get(kind)
        if fn is not None:
            fn(*key[1:])

    # -- store access ---------------------------------------------------------------------

    # Store.get and Store.list hand out deep copies: the controllers may change them.

    def _get(self, res, ns, name):
        try:
            return self.store.get(res, None if res in CLUSTER_SCOPED else ns, name)
        except Exception as e:  # noqa: BLE001
            if _api_status(e) == 404:
                return None
            raise

    def _list(self, res, ns=None):
        try:
            return self.store.list(res, ns)
        except Exception as e:  # noqa: BLE001
            if _api_status(e) == 404:
                return []
            raise

    def _owned(self, res, ns, uid):
        return [o for o in self._list(res, ns) if _owned_by(o, uid)]

    def _create(self, res, ns, obj):
        return self.store.create(res, None if res in CLUSTER_SCOPED else ns, obj)

    def _update(self, res, obj):
        return self.store.update(res, None if res in CLUSTER_SCOPED else _ns(obj), obj)

    def _write_status(self, res, obj, status):
        """Write obj's status if it differs; returns the object as stored."""
        if (obj.get("status") or {}) == status:
            return obj
        new = copy.deepcopy(obj)
        new["status"] = status
        ns = None if res in CLUSTER_SCOPED else _ns(obj)
        try:
            return self.store.update(res, ns, new, subresource="status")
        except Exception as e:  # noqa: BLE001 - CRDs without a status subresource
            if _api_status(e) not in (404, 405):
                raise
            if self._get(res, ns, _name(obj)) is None:
                raise
            return self.store.update(res, ns, new)

    def _delete(self, res, ns, name, propagation="Background"):
        try:
            return self.store.delete(res, None if res in CLUSTER_SCOPED else ns, name, propagation=propagation)
        except Exception as e:  # noqa: BLE001
            if _api_status(e) == 404:
                return None
            raise

    def _force_delete(self, res, ns, name):
        """Delete with grace period 0 when the store supports grace periods (the
        kubelet's confirmation of a graceful pod deletion)."""
        if self._del_kw is None:
            self._del_kw = ""
            try:
                params = inspect.signature(self.store.delete).parameters
                for k in ("grace_period_seconds", "grace_period", "grace"):
                    if k in params:
                        self._del_kw = k
                        break
            except (TypeError, ValueError):
                pass
        kw = {self._del_kw: 0} if self._del_kw else {}
        try:
            return self.store.delete(res, ns, name, **kw)
        except Exception as e:  # noqa: BLE001
            if _api_status(e) == 404:
                return None
            raise

    def _event(self, obj, reason, message, etype="Normal"):
        add = getattr(self.store, "add_event", None)
        if add is None:
            return
        try:
            add(obj, reason, message, type=etype)
        except Exception:  # noqa: BLE001 - events are best effort, as in Kubernetes
            pass

    def _once(self, obj, tag):
        """True the first time (object uid, tag) is asked; for one-shot Events."""
        k = ("once", _uid(obj), tag)
        if k in self._mem:
            return False
        self._mem[k] = True
        return True

    def _names(self, obj, depth=3):
        """The object's name and the names of its owners, up the controller chain."""
        names = {_name(obj)}
        cur = obj
        for _ in range(depth):
            ref = _controller_ref(cur) or ((cur.get("metadata") or {}).get("ownerReferences") or [None])[0]
            if not ref:
                break
            names.add(ref.get("name"))
            ores = KIND_RES.get((ref.get("kind"), _group(ref.get("apiVersion"))))
            if not ores:
                break
            cur = self._get(ores, _ns(cur), ref.get("name"))
            if cur is None:
                break
        return names

    def _inject(self, cfg, key, obj, extra=()):
        """The options of the first `key` selector matching obj (or one of `extra`
        names), or None."""
        if not cfg.get(key):
            return None
        return _match_selectors(cfg.get(key), obj, self._names(obj) | {n for n in extra if n})

    def _since(self, obj, stage, restart=False):
        """Seconds since the timer `stage` of obj (by uid) started; it starts at
        the first call (or again with restart=True)."""
        k = ("t", _uid(obj), stage)
        now = time.monotonic()
        if restart or k not in self._mem:
            self._mem[k] = now
        return now - self._mem[k]

    def _wait(self, key, obj, stage, delay):
        """True (and `key` queued for later) while obj's timer `stage` is younger
        than `delay`."""
        left = delay - self._since(obj, stage)
        if left > 0:
            self._enqueue(key, left)
            return True
        return False

    def _next_ip(self):
        self._ip = self._ip % 250 + 1
        return "10.244.0.%d" % (self._ip + 3)

    # -- pods: scheduler + kubelet --------------------------------------------------------

    def _pod(self, ns, name):
        cfg = self._cfg()
        key = (PODS, ns, name)
        with self.store.lock:
            pod = self._get(PODS, ns, name)
            if pod is None:
                return
            md, spec = pod["metadata"], pod.get("spec") or {}
            if md.get("deletionTimestamp"):
                if not md.get("finalizers") and not self._wait(key, pod, "terminating", cfg["pod_terminate_delay"]):
                    self._force_delete(PODS, ns, name)
                return
            status = copy.deepcopy(pod.get("status") or {})
            phase = status.get("phase")
            if phase in ("Succeeded", "Failed"):
                return
            now = _now()
            conds = status.setdefault("conditions", [])
            status.setdefault("qosClass", "BestEffort")
            if not spec.get("nodeName"):
                status["phase"] = "Pending"
                if self._wait(key, pod, "new", cfg["pod_schedule_delay"]):
                    if not (pod.get("status") or {}).get("phase"):
                        first = copy.deepcopy(pod.get("status") or {})
                        first.update({"phase": "Pending", "qosClass": status["qosClass"]})
                        self._write_status(PODS, pod, first)
                    return
                problem = None
                if self._inject(cfg, "unschedulable", pod) is not None:
                    problem = ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
                               "1 No preemption victims found for incoming pod.")
                else:
                    problem = self._pod_volume_problem(pod)
                if problem:
                    _set_cond(conds, "PodScheduled", "False", "Unschedulable", problem, now, probe=True)
                    if self._once(pod, "unschedulable:" + problem):
                        self._event(pod, "FailedScheduling", problem, "Warning")
                    self._write_status(PODS, pod, status)
                    return
                bound = copy.deepcopy(pod)
                bound["spec"]["nodeName"] = cfg["node_name"]
                pod = copy.deepcopy(self._update(PODS, bound))
                status = copy.deepcopy(pod.get("status") or {})
                status["phase"] = "Pending"
                status.setdefault("qosClass", "BestEffort")
                conds = status.setdefault("conditions", [])
                _set_cond(conds, "PodScheduled", "True", None, None, now, probe=True)
                status["containerStatuses"] = [_waiting(c, "ContainerCreating") for c in spec.get("containers") or []]
                self._write_status(PODS, pod, status)
                self._event(pod, "Scheduled", "Successfully assigned %s/%s to %s" % (ns, name, cfg["node_name"]))
                self._since(pod, "scheduled", restart=True)
                self._enqueue(key, cfg["pod_start_delay"])
                return
            if phase in (None, "Pending"):
                if self._wait(key, pod, "scheduled", cfg["pod_start_delay"]):
                    return
                if self._inject(cfg, "image_pull_error", pod) is not None:
                    reason = "ErrImagePull" if self._since(pod, "pull") < 3 * cfg["pod_start_delay"] \
                        else "ImagePullBackOff"
                    status["phase"] = "Pending"
                    status["containerStatuses"] = [
                        _waiting(c, reason, 'Back-off pulling image "%s"' % c.get("image") if reason == "ImagePullBackOff"
                                 else 'failed to pull and unpack image "%s": not found' % c.get("image"))
                        for c in spec.get("containers") or []]
                    _set_cond(conds, "Ready", "False", "ContainersNotReady",
                              "containers with unready status: [%s]" % " ".join(_cnames(pod)), now, probe=True)
                    self._write_status(PODS, pod, status)
                    if self._once(pod, "pull:" + reason):
                        self._event(pod, "Failed" if reason == "ErrImagePull" else "BackOff",
                                    "Failed to pull image \"%s\": not found" % _image(pod) if reason == "ErrImagePull"
                                    else "Back-off pulling image \"%s\"" % _image(pod), "Warning")
                    if reason == "ErrImagePull":
                        self._enqueue(key, 3 * cfg["pod_start_delay"])
                    return
                self._start_pod(pod, status, cfg, now)
                return
            # Running
            self._running_pod(pod, status, cfg, now, key)

    def _pod_volume_problem(self, pod):
        """Why the pod cannot be scheduled yet because of its PVCs, or None."""
        ns = _ns(pod)
        for claim in _pod_claims(pod):
            pvc = self._get(PVC, ns, claim)
            if pvc is None:
                return 'persistentvolumeclaim "%s" not found' % claim
            if (pvc.get("status") or {}).get("phase") != "Bound":
                self._enqueue((PVC, ns, claim))
                return ("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 "
                        "nodes are available: 1 Preemption is not helpful for scheduling.")
        return None

    def _start_pod(self, pod, status, cfg, now):
        ns, name = _ns(pod), _name(pod)
        spec = pod.get("spec") or {}
        ip = status.get("podIP") or self._next_ip()
        status.update({"phase": "Running", "hostIP": "10.0.0.10", "hostIPs": [{"ip": "10.0.0.10"}], "podIP": ip,
                       "podIPs": [{"ip": ip}], "startTime": status.get("startTime") or now})
        conds = status.setdefault("conditions", [])
        _set_cond(conds, "PodReadyToStartContainers", "True", None, None, now, probe=True)
        _set_cond(conds, "Initialized", "True", None, None, now, probe=True)
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [_terminated(c, 0, "Completed", now, ready=False)
                                               for c in spec["initContainers"]]
        crash = self._inject(cfg, "crashloop", pod) is not None
        if crash:
            status["containerStatuses"] = [_crashing(c, 1, now, pod) for c in spec.get("containers") or []]
        else:
            status["containerStatuses"] = [_running(c, now, ready=False) for c in spec.get("containers") or []]
        unready = "containers with unready status: [%s]" % " ".join(_cnames(pod))
        _set_cond(conds, "ContainersReady", "False", "ContainersNotReady", unready, now, probe=True)
        _set_cond(conds, "Ready", "False", "ContainersNotReady", unready, now, probe=True)
        _set_cond(conds, "PodScheduled", "True", None, None, now, probe=True)
        self._write_status(PODS, pod, status)
        for c in spec.get("containers") or []:
            if self._once(pod, "started:" + c.get("name", "")):
                self._event(pod, "Pulled", 'Container image "%s" already present on machine' % c.get("image"))
                self._event(pod, "Created", "Created container: %s" % c.get("name"))
                self._event(pod, "Started", "Started container %s" % c.get("name"))
        if crash:
            self._event(pod, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)"
                        % (_cnames(pod)[0] if _cnames(pod) else "", name, ns, _uid(pod)), "Warning")
        self._since(pod, "running", restart=True)
        key = (PODS, ns, name)
        if crash:
            self._since(pod, "crash", restart=True)
            self._enqueue(key, cfg["crashloop_backoff"])
        else:
            self._enqueue(key, min(cfg["pod_ready_delay"], self._job_duration(pod, cfg)))

    def _job_duration(self, pod, cfg):
        return cfg["job_duration"] if _job_owner(pod) else float("inf")

    def _running_pod(self, pod, status, cfg, now, key):
        spec = pod.get("spec") or {}
        conds = status.setdefault("conditions", [])
        if self._inject(cfg, "crashloop", pod) is not None:
            # count restarts with a doubling back-off
            restarts = max((cs.get("restartCount") or 0) for cs in status.get("containerStatuses") or [{}])
            interval = cfg["crashloop_backoff"] * min(2 ** max(restarts - 1, 0), 10)
            if self._wait(key, pod, "crash", interval):
                return
            status["containerStatuses"] = [_crashing(c, restarts + 1, now, pod) for c in spec.get("containers") or []]
            unready = "containers with unready status: [%s]" % " ".join(_cnames(pod))
            _set_cond(conds, "ContainersReady", "False", "ContainersNotReady", unready, now, probe=True)
            _set_cond(conds, "Ready", "False", "ContainersNotReady", unready, now, probe=True)
            self._write_status(PODS, pod, status)
            self._event(pod, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)"
                        % (_cnames(pod)[0] if _cnames(pod) else "", _name(pod), _ns(pod), _uid(pod)), "Warning")
            self._since(pod, "crash", restart=True)
            self._enqueue(key, cfg["crashloop_backoff"] * min(2 ** restarts, 10))
            return
        job = _job_owner(pod)
        if job is not None:
            ran = self._since(pod, "running")
            if ran < cfg["job_duration"]:
                nxt = cfg["job_duration"] - ran
                if not _pod_ready(pod):
                    if ran >= cfg["pod_ready_delay"]:
                        self._set_ready(pod, status, now)
                    else:
                        nxt = min(nxt, cfg["pod_ready_delay"] - ran)
                self._enqueue(key, nxt)
                return
            job_obj = self._get(JOBS, _ns(pod), job)
            fail = job_obj is not None and self._inject(cfg, "job_fail", job_obj) is not None
            code = 1 if fail else 0
            status["phase"] = "Failed" if fail else "Succeeded"
            status["containerStatuses"] = [_terminated(c, code, "Error" if fail else "Completed", now)
                                           for c in spec.get("containers") or []]
            _set_cond(conds, "Ready", "False", "PodCompleted", None, now, probe=True)
            _set_cond(conds, "ContainersReady", "False", "PodCompleted", None, now, probe=True)
            _set_cond(conds, "PodReadyToStartContainers", "False", None, None, now, probe=True)
            self._write_status(PODS, pod, status)
            return
        if _pod_ready(pod):
            return
        if self._wait(key, pod, "running", cfg["pod_ready_delay"]):
            return
        if self._inject(cfg, "not_ready", pod) is not None or self._inject(cfg, "progress_deadline", pod) is not None:
            if self._once(pod, "unhealthy"):
                self._event(pod, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503",
                            "Warning")
            return
        self._set_ready(pod, status, now)

    def _set_ready(self, pod, status, now):
        conds = status.setdefault("conditions", [])
        for cs in status.get("containerStatuses") or []:
            cs["ready"] = True
        _set_cond(conds, "ContainersReady", "True", None, None, now, probe=True)
        _set_cond(conds, "Ready", "True", None, None, now, probe=True)
        self._write_status(PODS, pod, status)

    # -- replicasets ----------------------------------------------------------------------

    def _replicaset(self, ns, name):
        with self.store.lock:
            rs = self._get(RS, ns, name)
            if rs is None or rs["metadata"].get("deletionTimestamp"):
                return
            uid = _uid(rs)
            desired = _int((rs.get("spec") or {}).get("replicas"), 1)
            pods = [p for p in self._owned(PODS, ns, uid) if _pod_active(p)]
            if len(pods) < desired:
                for _ in range(desired - len(pods)):
                    p = self._create(PODS, ns, _pod_from_template(rs, "apps/v1", "ReplicaSet", name + "-" + _suffix()))
                    self._event(rs, "SuccessfulCreate", "Created pod: %s" % _name(p))
                pods = [p for p in self._owned(PODS, ns, uid) if _pod_active(p)]
            elif len(pods) > desired:
                # delete unscheduled, then pending, then not-ready pods, newest first
                def rank(p):
                    st = p.get("status") or {}
                    return (bool(p["spec"].get("nodeName")), st.get("phase") == "Running", _pod_ready(p),
                            -_rv(p))
                for p in sorted(pods, key=rank)[:len(pods) - desired]:
                    self._delete(PODS, ns, _name(p))
                    self._event(rs, "SuccessfulDelete", "Deleted pod: %s" % _name(p))
                pods = [p for p in self._owned(PODS, ns, uid) if _pod_active(p)]
            ready = sum(1 for p in pods if _pod_ready(p))
            status = copy.deepcopy(rs.get("status") or {})
            status.update({"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                           "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)})
            _omit_zero(status, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"))
            self._write_status(RS, rs, status)

    # -- deployments ----------------------------------------------------------------------

    def _deployment(self, ns, name):
        cfg = self._cfg()
        key = (DEPLOY, ns, name)
        with self.store.lock:
            d = self._get(DEPLOY, ns, name)
            if d is None or d["metadata"].get("deletionTimestamp"):
                return
            md, spec = d["metadata"], d.get("spec") or {}
            uid = md.get("uid")
            desired = _int(spec.get("replicas"), 1)
            template = spec.get("template") or {}
            h = _template_hash(template)
            rss = self._owned(RS, ns, uid)
            new = next((r for r in rss if ((r["metadata"].get("labels") or {}).get("pod-template-hash")) == h), None)
            olds = [r for r in rss if r is not new]
            maxrev = max([_revision(r) for r in rss] or [0])
            mem = self._mem.setdefault(("deploy", uid), {"progress": time.monotonic(), "sig": None})
            now = _now()
            status = copy.deepcopy(d.get("status") or {})
            conds = status.setdefault("conditions", [])
            if spec.get("paused"):
                _set_cond(conds, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now,
                          update_time=True)
                mem["paused"] = True
                self._deployment_status(d, status, new, rss, desired, cfg, mem, scaled=False)
                return
            if mem.pop("paused", False):
                _set_cond(conds, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now,
                          update_time=True)
            scaled = False
            surge, unavail = self._surge_unavailable(spec, desired)
            recreate = ((spec.get("strategy") or {}).get("type") == "Recreate")
            if new is None:
                initial = desired
                if olds and not recreate:
                    total = sum(_int((r.get("spec") or {}).get("replicas"), 0) for r in olds)
                    initial = max(0, min(desired, desired + surge - total))
                elif olds and recreate:
                    initial = 0
                new = self._create(RS, ns, _new_replicaset(d, h, initial, maxrev + 1))
                new = copy.deepcopy(new)
                rss.append(new)
                scaled = True
                _set_cond(conds, "Progressing", "True", "NewReplicaSetCreated",
                          'Created new replica set "%s"' % _name(new), now, update_time=True)
                if initial:
                    self._event(d, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d" % (_name(new), initial))
            else:
                if _revision(new) < maxrev:  # rollback to an older template
                    new = self._set_rs_annotations(new, maxrev + 1, desired, surge)
                if not _cond(d, "Progressing") and not conds:
                    _set_cond(conds, "Progressing", "True", "FoundNewReplicaSet",
                              'Found new replica set "%s"' % _name(new), now, update_time=True)
                olds_live = [r for r in olds if _int((r.get("spec") or {}).get("replicas"), 0) > 0]
                new_replicas = _int((new.get("spec") or {}).get("replicas"), 0)
                if recreate:
                    if olds_live:
                        for r in olds_live:
                            scaled |= self._scale(d, r, 0)
                    elif any(self._owned(PODS, ns, _uid(r)) for r in olds):
                        pass  # wait for the old pods to go
                    elif new_replicas != desired:
                        scaled |= self._scale(d, new, desired)
                elif not olds_live:
                    if new_replicas != desired:
                        scaled |= self._scale(d, new, desired)
                else:
                    total = sum(_int((r.get("spec") or {}).get("replicas"), 0) for r in rss)
                    if new_replicas < desired and total < desired + surge:
                        scaled |= self._scale(d, new, min(desired, new_replicas + desired + surge - total))
                    elif new_replicas > desired:
                        scaled |= self._scale(d, new, desired)
                    else:
                        min_avail = desired - unavail
                        new_unavail = new_replicas - _int((new.get("status") or {}).get("availableReplicas"), 0)
                        budget = total - min_avail - new_unavail
                        down = 0
                        for r in sorted(olds_live, key=_revision):  # unhealthy old replicas first
                            reps = _int(r["spec"].get("replicas"), 0)
                            bad = reps - _int((r.get("status") or {}).get("availableReplicas"), 0)
                            k = min(max(budget - down, 0), max(bad, 0))
                            if k:
                                scaled |= self._scale(d, r, reps - k)
                                r["spec"]["replicas"] = reps - k
                                down += k
                        if not down:
                            avail = sum(_int((r.get("status") or {}).get("availableReplicas"), 0) for r in rss)
                            can = avail - min_avail
                            for r in sorted(olds_live, key=_revision):
                                reps = _int(r["spec"].get("replicas"), 0)
                                k = min(reps, max(can, 0))
                                if k:
                                    scaled |= self._scale(d, r, reps - k)
                                    can -= k
            rev = str(_revision(new))
            if (md.get("annotations") or {}).get("deployment.kubernetes.io/revision") != rev:
                upd = copy.deepcopy(d)
                upd["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = rev
                d = copy.deepcopy(self._update(DEPLOY, upd))
            self._cleanup_history(d, ns, rss, new)
            rss = self._owned(RS, ns, uid)
            new = next((r for r in rss if _uid(r) == _uid(new)), new)
            self._deployment_status(d, status, new, rss, desired, cfg, mem, scaled)
            if scaled:
                self._enqueue(key, cfg["rollout_step_delay"])

    def _surge_unavailable(self, spec, desired):
        ru = ((spec.get("strategy") or {}).get("rollingUpdate") or {})
        surge = _scaled(ru.get("maxSurge"), desired, True)
        unavail = _scaled(ru.get("maxUnavailable"), desired, False)
        if surge == 0 and unavail == 0:
            unavail = 1
        return surge, unavail

    def _scale(self, d, rs, replicas):
        cur = _int((rs.get("spec") or {}).get("replicas"), 0)
        if cur == replicas:
            return False
        upd = copy.deepcopy(self._get(RS, _ns(rs), _name(rs)) or rs)
        upd["spec"]["replicas"] = replicas
        ann = upd["metadata"].setdefault("annotations", {})
        ann["deployment.kubernetes.io/desired-replicas"] = str(_int((d.get("spec") or {}).get("replicas"), 1))
        self._update(RS, upd)
        self._event(d, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d"
                    % ("up" if replicas > cur else "down", _name(rs), cur, replicas))
        return True

    def _set_rs_annotations(self, rs, revision, desired, surge):
        upd = copy.deepcopy(rs)
        ann = upd["metadata"].setdefault("annotations", {})
        ann["deployment.kubernetes.io/revision"] = str(revision)
        return copy.deepcopy(self._update(RS, upd))

    def _cleanup_history(self, d, ns, rss, new):
        limit = _int((d.get("spec") or {}).get("revisionHistoryLimit"), 10)
        dead = [r for r in rss if r is not new and _uid(r) != _uid(new)
                and not _int((r.get("spec") or {}).get("replicas"), 0)
                and not _int((r.get("status") or {}).get("replicas"), 0)]
        dead.sort(key=_revision)
        for r in dead[:max(len(dead) - limit, 0)]:
            self._delete(RS, ns, _name(r))

    def _deployment_status(self, d, status, new, rss, desired, cfg, mem, scaled):
        """kube-controller-manager's calculateStatus + syncRolloutStatus."""
        now = _now()
        spec = d.get("spec") or {}
        _, unavail = self._surge_unavailable(spec, desired)
        rs_st = [(r.get("status") or {}) for r in rss]
        available = sum(_int(s.get("availableReplicas"), 0) for s in rs_st)
        total = sum(_int((r.get("spec") or {}).get("replicas"), 0) for r in rss)
        status.update({
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(_int(s.get("replicas"), 0) for s in rs_st),
            "updatedReplicas": _int(((new or {}).get("status") or {}).get("replicas"), 0) if new else 0,
            "readyReplicas": sum(_int(s.get("readyReplicas"), 0) for s in rs_st),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
        })
        _omit_zero(status, ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                            "unavailableReplicas"))
        conds = status.setdefault("conditions", [])
        if available >= desired - unavail:
            _set_cond(conds, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.",
                      now, update_time=True)
        else:
            _set_cond(conds, "Available", "False", "MinimumReplicasUnavailable",
                      "Deployment does not have minimum availability.", now, update_time=True)
        conds.sort(key=lambda c: {"Available": 0, "Progressing": 1}.get(c.get("type"), 2))
        if spec.get("paused"):
            self._write_status(DEPLOY, d, status)
            return
        sig = (status.get("updatedReplicas"), status.get("readyReplicas"), status.get("availableReplicas"),
               status.get("replicas"), _name(new) if new else None)
        progressed = scaled or sig != mem.get("sig")
        if progressed:
            mem["sig"] = sig
            mem["progress"] = time.monotonic()
        prog = next((c for c in conds if c.get("type") == "Progressing"), None)
        g = _int(status.get("updatedReplicas"), 0)
        reps = _int(status.get("replicas"), 0)
        complete_before = prog is not None and prog.get("reason") == "NewReplicaSetAvailable" and reps == g
        if not complete_before:
            rs_name = _name(new) if new else ""
            if (g == desired and reps == desired and available == desired
                    and status["observedGeneration"] >= d["metadata"].get("generation", 1)):
                _set_cond(conds, "Progressing", "True", "NewReplicaSetAvailable",
                          'ReplicaSet "%s" has successfully progressed.' % rs_name, now, update_time=True)
            elif progressed:
                if not (prog and prog.get("reason") == "NewReplicaSetCreated" and scaled and prog.get(
                        "message") == 'Created new replica set "%s"' % rs_name):
                    _set_cond(conds, "Progressing", "True", "ReplicaSetUpdated",
                              'ReplicaSet "%s" is progressing.' % rs_name, now, update_time=True)
            else:
                deadline = (cfg["progress_deadline_delay"] if self._inject(cfg, "progress_deadline", d) is not None
                            else float(_int(spec.get("progressDeadlineSeconds"), 600)))
                idle = time.monotonic() - mem["progress"]
                if idle >= deadline:
                    _set_cond(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                              'ReplicaSet "%s" has timed out progressing.' % rs_name, now, update_time=True)
                elif deadline < MAX_DELAY:
                    self._enqueue((DEPLOY, _ns(d), _name(d)), deadline - idle + 0.001)
        conds.sort(key=lambda c: {"Available": 0, "Progressing": 1}.get(c.get("type"), 2))
        self._write_status(DEPLOY, d, status)

    # -- statefulsets ---------------------------------------------------------------------

    def _statefulset(self, ns, name):
        cfg = self._cfg()
        with self.store.lock:
            sts = self._get(STS, ns, name)
            if sts is None or sts["metadata"].get("deletionTimestamp"):
                return
            spec = sts.get("spec") or {}
            uid = _uid(sts)
            desired = _int(spec.get("replicas"), 1)
            revision = "%s-%s" % (name, _template_hash(spec.get("template") or {}))
            status = copy.deepcopy(sts.get("status") or {})
            current_rev = status.get("currentRevision") or revision
            parallel = spec.get("podManagementPolicy") == "Parallel"
            strategy = spec.get("updateStrategy") or {"type": "RollingUpdate"}
            partition = _int((strategy.get("rollingUpdate") or {}).get("partition"), 0)
            pods = {}
            for p in self._owned(PODS, ns, uid):
                m = re.fullmatch(re.escape(name) + r"-(\d+)", _name(p))
                if m:
                    pods[int(m.group(1))] = p
            acted = False
            # create missing ordinals (with their claims first)
            for i in range(desired):
                if i in pods:
                    continue
                if not parallel and any((j not in pods or not _pod_ready(pods[j])
                                         or pods[j]["metadata"].get("deletionTimestamp")) for j in range(i)):
                    break
                self._ensure_claims(sts, i)
                rev = revision if (strategy.get("type") != "OnDelete" and i >= partition) or current_rev == revision \
                    else current_rev
                tmpl_sts = sts
                if rev != revision:
                    tmpl_sts = copy.deepcopy(sts)
                    old = self._mem.get(("sts-template", uid, rev))
                    if old is not None:
                        tmpl_sts["spec"]["template"] = old
                    else:
                        rev = revision
                pods[i] = copy.deepcopy(self._create(PODS, ns, _sts_pod(tmpl_sts, i, rev)))
                self._event(sts, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful" % (_name(pods[i]), name))
                acted = True
                if not parallel:
                    break
            self._mem[("sts-template", uid, revision)] = copy.deepcopy(spec.get("template") or {})
            # scale down: highest ordinal first
            if not acted:
                extra = sorted((i for i in pods if i >= desired), reverse=True)
                for i in extra[:len(extra) if parallel else 1]:
                    if not pods[i]["metadata"].get("deletionTimestamp"):
                        self._delete(PODS, ns, _name(pods[i]))
                        self._event(sts, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful"
                                    % (_name(pods[i]), name))
                        acted = True
            # rolling update: replace the highest stale ordinal >= partition once all are ready
            if not acted and strategy.get("type", "RollingUpdate") == "RollingUpdate":
                live = [pods[i] for i in range(desired) if i in pods]
                if len(live) == desired and all(_pod_ready(p) and not p["metadata"].get("deletionTimestamp")
                                                for p in live):
                    for i in sorted(range(partition, desired), reverse=True):
                        if _pod_rev(pods[i]) != revision:
                            self._delete(PODS, ns, _name(pods[i]))
                            self._event(sts, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful"
                                        % (_name(pods[i]), name))
                            acted = True
                            break
            active = [p for i, p in pods.items() if not p["metadata"].get("deletionTimestamp")]
            ready = sum(1 for p in active if _pod_ready(p))
            updated = sum(1 for p in active if _pod_rev(p) == revision)
            current = sum(1 for p in active if _pod_rev(p) == current_rev)
            if updated == desired and ready == desired and len(active) == desired:
                current_rev, current = revision, updated
            status.update({"observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(active),
                           "readyReplicas": ready, "currentReplicas": current, "updatedReplicas": updated,
                           "availableReplicas": ready, "currentRevision": current_rev, "updateRevision": revision,
                           "collisionCount": status.get("collisionCount", 0)})
            _omit_zero(status, ("readyReplicas", "currentReplicas", "updatedReplicas"))
            self._write_status(STS, sts, status)
            if acted:
                self._enqueue((STS, ns, name), cfg["rollout_step_delay"])

    def _ensure_claims(self, sts, i):
        ns, name = _ns(sts), _name(sts)
        spec = sts.get("spec") or {}
        retention = ((spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted") or "Retain")
        for tmpl in spec.get("volumeClaimTemplates") or []:
            claim = "%s-%s-%d" % (_name(tmpl), name, i)
            if self._get(PVC, ns, claim) is not None:
                continue
            md = copy.deepcopy(tmpl.get("metadata") or {})
            labels = dict(md.get("labels") or {})
            labels.update(((spec.get("selector") or {}).get("matchLabels") or {}))
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": claim, "namespace": ns, "labels": labels,
                                "annotations": md.get("annotations") or {}},
                   "spec": copy.deepcopy(tmpl.get("spec") or {})}
            if not pvc["metadata"]["annotations"]:
                del pvc["metadata"]["annotations"]
            pvc["spec"].setdefault("volumeMode", "Filesystem")
            if retention == "Delete":
                pvc["metadata"]["ownerReferences"] = [_owner_ref(sts, "apps/v1", "StatefulSet")]
            self._create(PVC, ns, pvc)
            self._event(sts, "SuccessfulCreate", "create Claim %s Pod %s-%d in StatefulSet %s success"
                        % (claim, name, i, name))

    # -- daemonsets -----------------------------------------------------------------------

    def _daemonset(self, ns, name):
        """One pod per node; RollingUpdate replaces one stale pod at a time (maxUnavailable 1)."""
        cfg = self._cfg()
        with self.store.lock:
            ds = self._get(DS, ns, name)
            if ds is None or ds["metadata"].get("deletionTimestamp"):
                return
            spec = ds.get("spec") or {}
            uid, gen = _uid(ds), ds["metadata"].get("generation", 1)
            h = _template_hash(spec.get("template") or {})
            nodes = [_name(n) for n in self._list("nodes")] or [cfg["node_name"]]
            pods = [p for p in self._owned(PODS, ns, uid) if _pod_active(p)]
            by_node = {}
            for p in pods:
                by_node.setdefault(p["spec"].get("nodeName"), []).append(p)
            acted = False
            for node in nodes:
                if node not in by_node:
                    pod = _pod_from_template(ds, "apps/v1", "DaemonSet", name + "-" + _suffix())
                    pod["metadata"]["labels"].update({"controller-revision-hash": h,
                                                      "pod-template-generation": str(gen)})
                    pod["spec"]["nodeName"] = node
                    p = copy.deepcopy(self._create(PODS, ns, pod))
                    by_node[node] = [p]
                    pods.append(p)
                    self._event(ds, "SuccessfulCreate", "Created pod: %s" % _name(p))
                    acted = True
            if not acted and (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
                stale = [p for p in pods if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != h]
                if stale and all(_pod_ready(p) for p in pods):
                    self._delete(PODS, ns, _name(stale[0]))
                    self._event(ds, "SuccessfulDelete", "Deleted pod: %s" % _name(stale[0]))
                    pods.remove(stale[0])
                    acted = True
            on_nodes = [p for p in pods if p["spec"].get("nodeName") in nodes]
            ready = sum(1 for p in on_nodes if _pod_ready(p))
            status = copy.deepcopy(ds.get("status") or {})
            status.update({"currentNumberScheduled": len(on_nodes), "desiredNumberScheduled": len(nodes),
                           "numberMisscheduled": len(pods) - len(on_nodes), "numberReady": ready,
                           "numberAvailable": ready, "numberUnavailable": max(len(nodes) - ready, 0),
                           "updatedNumberScheduled": sum(1 for p in on_nodes if (p["metadata"].get("labels") or {})
                                                         .get("controller-revision-hash") == h),
                           "observedGeneration": gen})
            _omit_zero(status, ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"))
            self._write_status(DS, ds, status)
            if acted:
                self._enqueue((DS, ns, name), cfg["rollout_step_delay"])

    # -- jobs -----------------------------------------------------------------------------

    def _job(self, ns, name):
        cfg = self._cfg()
        key = (JOBS, ns, name)
        with self.store.lock:
            job = self._get(JOBS, ns, name)
            if job is None or job["metadata"].get("deletionTimestamp"):
                return
            spec = job.get("spec") or {}
            status = copy.deepcopy(job.get("status") or {})
            if _is_true(job, "Complete") or _is_true(job, "Failed"):
                return
            now = _now()
            uid = _uid(job)
            completions = _int(spec.get("completions"), 1)
            parallelism = _int(spec.get("parallelism"), 1)
            backoff = _int(spec.get("backoffLimit"), 6)
            pods = self._owned(PODS, ns, uid)
            active = [p for p in pods if _pod_active(p)]
            succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
            failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
            status.setdefault("startTime", now)
            conds = status.setdefault("conditions", [])
            mem = self._mem.setdefault(("job", uid), {"start": time.monotonic(), "failed": 0, "t_fail": 0.0})
            if failed > mem["failed"]:
                mem["failed"], mem["t_fail"] = failed, time.monotonic()
            deadline = spec.get("activeDeadlineSeconds")
            finished = None
            if failed > backoff:
                finished = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif deadline is not None and time.monotonic() - mem["start"] >= float(deadline):
                finished = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            elif succeeded >= completions:
                finished = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
            if spec.get("suspend"):
                _set_cond(conds, "Suspended", "True", "JobSuspended", "Job suspended", now, probe=True)
                for p in active:
                    self._delete(PODS, ns, _name(p))
                active = []
            elif finished:
                if finished[0] == "Failed":
                    for p in active:
                        self._delete(PODS, ns, _name(p))
                    active = []
                    _set_cond(conds, "FailureTarget", "True", finished[1], finished[2], now, probe=True)
                    _set_cond(conds, "Failed", "True", finished[1], finished[2], now, probe=True)
                    self._event(job, finished[1], finished[2], "Warning")
                else:
                    _set_cond(conds, "SuccessCriteriaMet", "True", finished[1], finished[2], now, probe=True)
                    _set_cond(conds, "Complete", "True", finished[1], finished[2], now, probe=True)
                    status["completionTime"] = now
                    self._event(job, "Completed", "Job completed")
            else:
                want = min(parallelism, completions - succeeded) - len(active)
                if want > 0:
                    wait = mem["t_fail"] + cfg["job_backoff_delay"] * min(2 ** max(failed - 1, 0), 2) \
                        - time.monotonic() if failed else 0
                    if wait > 0:
                        self._enqueue(key, wait)
                    else:
                        for _ in range(want):
                            p = self._create(PODS, ns, _job_pod(job, name + "-" + _suffix()))
                            active.append(p)
                            self._event(job, "SuccessfulCreate", "Created pod: %s" % _name(p))
                if deadline is not None:
                    self._enqueue(key, max(float(deadline) - (time.monotonic() - mem["start"]), 0) + 0.001)
            status.update({"active": len(active), "succeeded": succeeded, "failed": failed,
                           "ready": sum(1 for p in active if _pod_ready(p)), "terminating": 0,
                           "uncountedTerminatedPods": {}})
            _omit_zero(status, ("active", "succeeded", "failed"))
            if not conds:
                del status["conditions"]
            self._write_status(JOBS, job, status)

    # -- volumes --------------------------------------------------------------------------

    def _storage_class(self, pvc):
        """(name, StorageClass or None, problem or None) for a claim."""
        spec = pvc.get("spec") or {}
        name = spec.get("storageClassName")
        if name is None:
            defaults = [s for s in self._list(SC) if ((s.get("metadata") or {}).get("annotations") or {}).get(
                "storageclass.kubernetes.io/is-default-class") == "true"
                or ((s.get("metadata") or {}).get("annotations") or {}).get(
                "storageclass.beta.kubernetes.io/is-default-class") == "true"]
            if not defaults:
                return None, None, None
            defaults.sort(key=lambda s: (s["metadata"].get("creationTimestamp") or "", _name(s)))
            sc = defaults[-1]
            return _name(sc), sc, None
        if name == "":
            return "", None, None
        sc = self._get(SC, None, name)
        if sc is None:
            return name, None, 'storageclass.storage.k8s.io "%s" not found' % name
        return name, sc, None

    def _pvc_consumers(self, ns, name):
        with self.store.lock:
            for p in self._list(PODS, ns):
                if name in _pod_claims(p) and not p["spec"].get("nodeName"):
                    self._enqueue((PODS, ns, _name(p)))

    def _pvc(self, ns, name):
        cfg = self._cfg()
        key = (PVC, ns, name)
        with self.store.lock:
            pvc = self._get(PVC, ns, name)
            if pvc is None:
                return
            md, spec = pvc["metadata"], pvc.get("spec") or {}
            status = copy.deepcopy(pvc.get("status") or {})
            phase = status.get("phase")
            if md.get("deletionTimestamp"):
                fins = md.get("finalizers") or []
                if "kubernetes.io/pvc-protection" in fins and not any(
                        name in _pod_claims(p) and _pod_active(p) for p in self._list(PODS, ns)):
                    self._remove_finalizer(PVC, ns, name, "kubernetes.io/pvc-protection")
                return
            if phase == "Lost":
                return
            if phase == "Bound":
                if self._inject(cfg, "pvc_lost", pvc) is not None and not self._wait(key, pvc, "bound",
                                                                                     cfg["pvc_bind_delay"]):
                    self._lose_claim(pvc, status)
                return
            if not phase:
                status["phase"] = "Pending"
                pvc = copy.deepcopy(self._write_status(PVC, pvc, status))
                status = copy.deepcopy(pvc.get("status") or {})
            sc_name, sc, problem = self._storage_class(pvc)
            wffc = bool(sc) and sc.get("volumeBindingMode") == "WaitForFirstConsumer"
            pending = self._inject(cfg, "pvc_pending", pvc)
            if pending is not None:
                if wffc:
                    ev = ("WaitForFirstConsumer", "waiting for first consumer to be created before binding", "Normal")
                elif not sc_name:
                    ev = ("FailedBinding", "no persistent volumes available for this claim and no storage class is set",
                          "Warning")
                else:
                    ev = ("ProvisioningFailed", 'failed to provision volume with StorageClass "%s": rpc error: code = '
                          'Internal desc = Failed to create volume: no storage nodes available' % sc_name, "Warning")
                ev = (pending.get("reason") or ev[0], pending.get("message") or ev[1], pending.get("type") or ev[2])
                if self._once(pvc, "pending:%s:%s" % ev[:2]):
                    self._event(pvc, ev[0], ev[1], ev[2])
                return
            if problem:
                if self._once(pvc, "problem:" + problem):
                    self._event(pvc, "ProvisioningFailed", problem, "Warning")
                self._enqueue(key, 1.0)
                return
            # static binding: spec.volumeName, or an Available PV of the class
            pv = None
            if spec.get("volumeName"):
                pv = self._get(PV, None, spec["volumeName"])
                if pv is None:
                    return  # waits for the named PV (its creation queues this claim)
            elif not sc or sc_name == "":
                pv = self._find_static_pv(pvc, sc_name)
                if pv is None:
                    if self._once(pvc, "nopv"):
                        self._event(pvc, "FailedBinding", "no persistent volumes available for this claim and no "
                                    "storage class is set" if not sc_name else
                                    'storageclass.storage.k8s.io "%s" not found' % sc_name, "Warning")
                    return
            if pv is None and wffc and not any(name in _pod_claims(p) and _pod_active(p)
                                               for p in self._list(PODS, ns)):
                if self._once(pvc, "wffc"):
                    self._event(pvc, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
                return
            if self._wait(key, pvc, "binding", cfg["pvc_bind_delay"]):
                return
            if pv is None:
                pv = self._provision(pvc, sc_name, sc)
                if pv is None:
                    return
            self._bind(pvc, pv)

    def _find_static_pv(self, pvc, sc_name):
        want = quantity_bytes(((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")) or 0
        modes = set((pvc.get("spec") or {}).get("accessModes") or [])
        best = None
        for pv in self._list(PV):
            ps = pv.get("spec") or {}
            ref = ps.get("claimRef")
            if ref and not (ref.get("name") == _name(pvc) and ref.get("namespace") == _ns(pvc)):
                continue
            if (pv.get("status") or {}).get("phase") not in (None, "Available") and not ref:
                continue
            if (ps.get("storageClassName") or "") != (sc_name or ""):
                continue
            size = quantity_bytes((ps.get("capacity") or {}).get("storage")) or 0
            if size < want or not modes <= set(ps.get("accessModes") or []):
                continue
            if best is None or size < quantity_bytes(best["spec"]["capacity"]["storage"]):
                best = pv
        return best

    def _provision(self, pvc, sc_name, sc):
        ns, name = _ns(pvc), _name(pvc)
        spec = pvc.get("spec") or {}
        driver = (sc or {}).get("provisioner") or PX_DRIVER
        if driver in ("kubernetes.io/portworx-volume",):
            driver = PX_DRIVER
        size = (spec.get("resources") or {}).get("requests", {}).get("storage") or "1Gi"
        source = None
        ds = spec.get("dataSourceRef") or spec.get("dataSource")
        if ds:
            source, problem = self._claim_source(ns, ds)
            if problem:
                if self._once(pvc, "source:" + problem):
                    self._event(pvc, "ProvisioningFailed", 'failed to provision volume with StorageClass "%s": %s'
                                % (sc_name, problem), "Warning")
                self._enqueue((PVC, ns, name), max(self._cfg()["pvc_bind_delay"], 0.2))
                return None
        handle = str(int(hashlib.sha256((_uid(pvc) or name).encode()).hexdigest()[:15], 16))
        attrs = dict((sc or {}).get("parameters") or {})
        hook = self._hook("on_provision")
        if hook is not None:
            try:
                got = hook(copy.deepcopy(pvc), copy.deepcopy(sc), source) or {}
            except Exception as e:  # noqa: BLE001
                if self._once(pvc, "hook:%s" % e):
                    self._event(pvc, "ProvisioningFailed", 'failed to provision volume with StorageClass "%s": %s'
                                % (sc_name, e), "Warning")
                self._enqueue((PVC, ns, name), 0.5)
                return None
            handle = str(got.get("volume_handle") or handle)
            attrs.update(got.get("volume_attributes") or {})
        self._event(pvc, "Provisioning", 'External provisioner is provisioning volume for claim "%s/%s"' % (ns, name))
        pv = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pvc-%s" % _uid(pvc),
                         "annotations": {"pv.kubernetes.io/provisioned-by": driver,
                                         "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                                         "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""},
                         "finalizers": ["kubernetes.io/pv-protection"]},
            "spec": {
                "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                "capacity": {"storage": size},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                             "uid": _uid(pvc), "resourceVersion": pvc["metadata"].get("resourceVersion")},
                "csi": {"driver": driver, "volumeHandle": handle, "fsType": attrs.get("fs", "ext4"),
                        "volumeAttributes": dict(attrs,
                                                 **{"storage.kubernetes.io/csiProvisionerIdentity": "ferry-" + driver})},
                "persistentVolumeReclaimPolicy": (sc or {}).get("reclaimPolicy") or "Delete",
                "storageClassName": sc_name or "",
                "volumeMode": spec.get("volumeMode") or "Filesystem",
            },
        }
        if (sc or {}).get("mountOptions"):
            pv["spec"]["mountOptions"] = list(sc["mountOptions"])
        hook = self._hook("on_pv")
        if hook is not None:
            pv = hook(copy.deepcopy(pv)) or pv
        created = copy.deepcopy(self._create(PV, None, pv))
        self._event(pvc, "ProvisioningSucceeded", "Successfully provisioned volume %s" % _name(created))
        return created

    def _claim_source(self, ns, ds):
        kind, nm = ds.get("kind"), ds.get("name")
        group = ds.get("apiGroup") or ""
        if kind == "VolumeSnapshot" and group in ("snapshot.storage.k8s.io", ""):
            vs = self._get(CSI_VS, ns, nm)
            if vs is None:
                return None, ('error getting handle for DataSource Type VolumeSnapshot by Name %s: error getting '
                              'snapshot %s from api server: volumesnapshots.snapshot.storage.k8s.io "%s" not found'
                              % (nm, nm, nm))
            if not (vs.get("status") or {}).get("readyToUse"):
                return None, ("error getting handle for DataSource Type VolumeSnapshot by Name %s: snapshot %s is "
                              "not Ready" % (nm, nm))
            content = self._get(CSI_VSC, None, (vs.get("status") or {}).get("boundVolumeSnapshotContentName") or "")
            return {"kind": "VolumeSnapshot", "name": nm, "namespace": ns,
                    "snapshot_handle": ((content or {}).get("status") or {}).get("snapshotHandle")}, None
        if kind == "PersistentVolumeClaim":
            src = self._get(PVC, ns, nm)
            if src is None or (src.get("status") or {}).get("phase") != "Bound":
                return None, 'error getting handle for DataSource Type PersistentVolumeClaim by Name %s: ' \
                             'persistentvolumeclaims "%s" not found' % (nm, nm) if src is None else \
                    "error getting handle for DataSource Type PersistentVolumeClaim by Name %s: the source PVC is " \
                    "not bound" % nm
            pv = self._get(PV, None, src["spec"].get("volumeName") or "")
            return {"kind": "PersistentVolumeClaim", "name": nm, "namespace": ns,
                    "volume_handle": (((pv or {}).get("spec") or {}).get("csi") or {}).get("volumeHandle")}, None
        return None, "unsupported data source %s %s" % (group, kind)

    def _bind(self, pvc, pv):
        ns, name = _ns(pvc), _name(pvc)
        now = _now()
        ps = copy.deepcopy(pv)
        ps["spec"]["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                                  "name": name, "uid": _uid(pvc),
                                  "resourceVersion": pvc["metadata"].get("resourceVersion")}
        if ps["spec"] != pv["spec"]:
            pv = copy.deepcopy(self._update(PV, ps))
        self._write_status(PV, pv, {"phase": "Bound", "lastPhaseTransitionTime": now})
        upd = copy.deepcopy(pvc)
        ann = upd["metadata"].setdefault("annotations", {})
        ann.setdefault("pv.kubernetes.io/bind-completed", "yes")
        ann.setdefault("pv.kubernetes.io/bound-by-controller", "yes")
        drv = (((pv.get("spec") or {}).get("csi") or {}).get("driver"))
        if drv:
            ann.setdefault("volume.beta.kubernetes.io/storage-provisioner", drv)
            ann.setdefault("volume.kubernetes.io/storage-provisioner", drv)
        upd["spec"]["volumeName"] = _name(pv)
        if upd != pvc:
            pvc = copy.deepcopy(self._update(PVC, upd))
        self._write_status(PVC, pvc, {
            "phase": "Bound", "accessModes": list((pv.get("spec") or {}).get("accessModes") or []),
            "capacity": dict((pv.get("spec") or {}).get("capacity") or {})})
        self._since(pvc, "bound", restart=True)
        cfg = self._cfg()
        if self._inject(cfg, "pvc_lost", pvc) is not None:
            self._enqueue((PVC, ns, name), cfg["pvc_bind_delay"])

    def _lose_claim(self, pvc, status):
        status = dict(status)
        status["phase"] = "Lost"
        self._write_status(PVC, pvc, status)
        self._event(pvc, "ClaimLost", "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
                    "Warning")
        pv = self._get(PV, None, (pvc.get("spec") or {}).get("volumeName") or "")
        if pv is not None:
            self._write_status(PV, pv, {"phase": "Failed", "message": "the claim's volume was lost",
                                        "lastPhaseTransitionTime": _now()})

    def _pv(self, ns, name):
        with self.store.lock:
            pv = self._get(PV, None, name)
            if pv is None or pv["metadata"].get("deletionTimestamp"):
                if pv is not None and pv["metadata"].get("finalizers") == ["kubernetes.io/pv-protection"]:
                    self._remove_finalizer(PV, None, name, "kubernetes.io/pv-protection")
                return
            if not (pv.get("status") or {}).get("phase"):
                ref = (pv.get("spec") or {}).get("claimRef")
                self._write_status(PV, pv, {"phase": "Available" if not ref else "Pending",
                                            "lastPhaseTransitionTime": _now()})
                for c in self._list(PVC):
                    if (c.get("status") or {}).get("phase") in (None, "Pending"):
                        self._enqueue((PVC, _ns(c), _name(c)))

    # -- snapshots ------------------------------------------------------------------------

    def _snapshot_source(self, ns, claim):
        """(pvc, pv, problem) for a snapshot of claim `claim`."""
        pvc = self._get(PVC, ns, claim)
        if pvc is None:
            return None, None, 'failed to get input parameters to create snapshot: persistentvolumeclaims "%s" not ' \
                               'found' % claim
        if (pvc.get("status") or {}).get("phase") != "Bound":
            return pvc, None, "the PVC %s is not yet bound to a PV, will not attempt to take a snapshot" % claim
        pv = self._get(PV, None, pvc["spec"].get("volumeName") or "")
        if pv is None:
            return pvc, None, 'failed to get PV %s from API server' % pvc["spec"].get("volumeName")
        return pvc, pv, None

    def _call_snapshot_hook(self, res, vs, pvc, pv):
        hook = self._hook("on_snapshot")
        if hook is None:
            return {}
        obj = copy.deepcopy(vs)
        obj["_ferry"] = {"pvc": copy.deepcopy(pvc), "pv": copy.deepcopy(pv),
                         "volume_handle": (((pv or {}).get("spec") or {}).get("csi") or {}).get("volumeHandle")}
        try:
            return hook(res, obj) or {}
        except Exception as e:  # noqa: BLE001
            return {"error": str(e) or e.__class__.__name__}

    def _csi_snapshot(self, ns, name):
        cfg = self._cfg()
        key = (CSI_VS, ns, name)
        with self.store.lock:
            vs = self._get(CSI_VS, ns, name)
            if vs is None or vs["metadata"].get("deletionTimestamp"):
                return
            spec, status = vs.get("spec") or {}, copy.deepcopy(vs.get("status") or {})
            if status.get("readyToUse"):
                return
            now = _now()
            err = self._inject(cfg, "snapshot_error", vs, [(spec.get("source") or {}).get("persistentVolumeClaimName")])
            if err is not None:
                msg = err.get("message") or ('Failed to check and update snapshot content: failed to take snapshot of '
                                             'the volume: "rpc error: code = Internal desc = Failed to create '
                                             'snapshot: injected failure"')
                if (status.get("error") or {}).get("message") != msg:
                    status.update({"readyToUse": False, "error": {"message": msg, "time": now}})
                    self._write_status(CSI_VS, vs, status)
                    self._event(vs, "SnapshotCreationFailed", msg, "Warning")
                return
            src = spec.get("source") or {}
            content_name = src.get("volumeSnapshotContentName")
            pvc = pv = None
            if not content_name:
                pvc, pv, problem = self._snapshot_source(ns, src.get("persistentVolumeClaimName") or "")
                if problem:
                    if (status.get("error") or {}).get("message") != problem:
                        status.update({"readyToUse": False, "error": {"message": problem, "time": now}})
                        self._write_status(CSI_VS, vs, status)
                    self._enqueue(key, max(cfg["snapshot_ready_delay"], 0.1))
                    return
                cls_name, cls, problem = self._snapshot_class(spec.get("volumeSnapshotClassName"))
                if problem:
                    if (status.get("error") or {}).get("message") != problem:
                        status.update({"readyToUse": False, "error": {"message": problem, "time": now}})
                        self._write_status(CSI_VS, vs, status)
                    self._enqueue(key, 1.0)
                    return
                content_name = "snapcontent-%s" % _uid(vs)
                if self._get(CSI_VSC, None, content_name) is None:
                    driver = (cls or {}).get("driver") or (((pv.get("spec") or {}).get("csi") or {}).get("driver")) \
                        or PX_DRIVER
                    self._create(CSI_VSC, None, {
                        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                        "metadata": {"name": content_name,
                                     "finalizers": ["snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"]},
                        "spec": {"deletionPolicy": (cls or {}).get("deletionPolicy") or "Delete", "driver": driver,
                                 "source": {"volumeHandle": ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle")},
                                 "volumeSnapshotClassName": cls_name,
                                 "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1",
                                                       "kind": "VolumeSnapshot", "name": name, "namespace": ns,
                                                       "uid": _uid(vs),
                                                       "resourceVersion": vs["metadata"].get("resourceVersion")}}})
                    self._event(vs, "CreatingSnapshot", "Waiting for a snapshot %s/%s to be created by the CSI driver."
                                % (ns, name))
                    self._since(vs, "creating", restart=True)
            else:
                if self._get(CSI_VSC, None, content_name) is None:
                    problem = 'volumesnapshotcontents.snapshot.storage.k8s.io "%s" not found' % content_name
                    if (status.get("error") or {}).get("message") != problem:
                        status.update({"readyToUse": False, "error": {"message": problem, "time": now}})
                        self._write_status(CSI_VS, vs, status)
                    self._enqueue(key, 0.5)
                    return
            if status.get("boundVolumeSnapshotContentName") != content_name:
                status["boundVolumeSnapshotContentName"] = content_name
                status["readyToUse"] = False
                status.pop("error", None)
                vs = copy.deepcopy(self._write_status(CSI_VS, vs, status))
                status = copy.deepcopy(vs.get("status") or {})
            if self._wait(key, vs, "creating", cfg["snapshot_ready_delay"]):
                return
            content = self._get(CSI_VSC, None, content_name)
            cst = copy.deepcopy((content or {}).get("status") or {})
            if not cst.get("readyToUse"):
                retry_at = self._mem.get(("retry", _uid(vs)), 0.0)
                if time.monotonic() < retry_at:  # woken by our own write: wait for the retry
                    self._enqueue(key, retry_at - time.monotonic())
                    return
                got = self._call_snapshot_hook(CSI_VS, vs, pvc, pv)
                if got.get("error"):
                    msg = "Failed to check and update snapshot content: %s" % got["error"]
                    retry = max(cfg["snapshot_ready_delay"], 0.5)  # the snapshotter retries
                    self._mem[("retry", _uid(vs))] = time.monotonic() + retry
                    if (status.get("error") or {}).get("message") != msg:
                        status.update({"readyToUse": False, "error": {"message": msg, "time": now}})
                        self._write_status(CSI_VS, vs, status)
                        self._event(vs, "SnapshotCreationFailed", msg, "Warning")
                    self._enqueue(key, retry)
                    return
                if got.get("ready") is False:
                    self._enqueue(key, max(cfg["snapshot_ready_delay"], 0.05))
                    return
                size = got.get("restore_size")
                if size is None:
                    q = (((pvc or {}).get("status") or {}).get("capacity") or {}).get("storage")
                    size = quantity_bytes(q) if q else 0
                handle = got.get("snapshot_handle") or str(
                    int(hashlib.sha256(str(_uid(vs)).encode()).hexdigest()[:15], 16))
                cst = {"creationTime": time.time_ns(), "readyToUse": True, "restoreSize": int(size or 0),
                       "snapshotHandle": str(handle)}
                if content is not None:
                    self._write_status(CSI_VSC, content, cst)
            status.update({"boundVolumeSnapshotContentName": content_name, "readyToUse": True,
                           "creationTime": _ns_time(cst.get("creationTime")),
                           "restoreSize": _quantity(int(cst.get("restoreSize") or 0))})
            status.pop("error", None)
            self._write_status(CSI_VS, vs, status)
            self._event(vs, "SnapshotCreated", "Snapshot %s/%s was successfully created by the CSI driver." % (ns, name))
            self._event(vs, "SnapshotReady", "Snapshot %s/%s is ready to use." % (ns, name))

    def _snapshot_class(self, name):
        if name:
            cls = self._get(CSI_CLASS, None, name)
            if cls is None:
                return name, None, ('Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.'
                                    'k8s.io "%s" not found' % name)
            return name, cls, None
        defaults = [c for c in self._list(CSI_CLASS) if ((c.get("metadata") or {}).get("annotations") or {}).get(
            "snapshot.storage.kubernetes.io/is-default-class") == "true"]
        if defaults:
            return _name(defaults[0]), defaults[0], None
        return None, None, None  # lenient: no class at all -> the Portworx driver, Delete

    def _stork_snapshot(self, ns, name):
        cfg = self._cfg()
        key = (STORK_VS, ns, name)
        with self.store.lock:
            vs = self._get(STORK_VS, ns, name)
            if vs is None or vs["metadata"].get("deletionTimestamp"):
                return
            spec, status = vs.get("spec") or {}, copy.deepcopy(vs.get("status") or {})
            if _is_true(vs, "Ready"):
                return
            now = _now()
            err = self._inject(cfg, "snapshot_error", vs, [spec.get("persistentVolumeClaimName")])
            problem = None
            pvc = pv = None
            if err is not None:
                problem = err.get("message") or "failed to create snapshot: injected failure"
            else:
                pvc, pv, problem = self._snapshot_source(ns, spec.get("persistentVolumeClaimName") or "")
                if problem and pvc is not None:  # not bound yet: try again later, quietly
                    self._enqueue(key, max(cfg["snapshot_ready_delay"], 0.1))
                    return
            if problem:
                self._stork_error(vs, status, problem, now)
                return
            if self._wait(key, vs, "creating", cfg["snapshot_ready_delay"]):
                return
            got = self._call_snapshot_hook(STORK_VS, vs, pvc, pv)
            if got.get("error"):
                self._stork_error(vs, status, str(got["error"]), now)
                return
            if got.get("ready") is False:
                self._enqueue(key, max(cfg["snapshot_ready_delay"], 0.05))
                return
            snap_id = str(got.get("snapshot_handle") or int(hashlib.sha256(str(_uid(vs)).encode()).hexdigest()[:15], 16))
            data_name = spec.get("snapshotDataName") or "k8s-volume-snapshot-%s" % uuid.uuid4()
            if self._get(STORK_VSD, None, data_name) is None:
                try:
                    self._create(STORK_VSD, None, {
                        "apiVersion": "volumesnapshot.external-storage.k8s.io/v1", "kind": "VolumeSnapshotData",
                        "metadata": {"name": data_name},
                        "spec": {"portworxVolume": {"snapshotId": snap_id},
                                 "volumeSnapshotRef": {"kind": "VolumeSnapshot", "name": "%s/%s" % (ns, name),
                                                       "uid": _uid(vs)},
                                 "persistentVolumeRef": {"kind": "PersistentVolume", "name": _name(pv)}},
                        "status": {"creationTimestamp": now, "conditions": [
                            {"type": "Ready", "status": "True", "lastTransitionTime": now, "reason": "",
                             "message": "Snapshot created successfully and it is ready"}]}})
                except Exception as e:  # noqa: BLE001 - a store without the VolumeSnapshotData kind
                    if _api_status(e) not in (404, 405, None):
                        raise
            if spec.get("snapshotDataName") != data_name:
                upd = copy.deepcopy(vs)
                upd.setdefault("spec", {})["snapshotDataName"] = data_name
                vs = copy.deepcopy(self._update(STORK_VS, upd))
            status = {"creationTimestamp": now, "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now, "reason": "",
                 "message": "Snapshot created successfully and it is ready"}]}
            self._write_status(STORK_VS, vs, status)

    def _stork_error(self, vs, status, message, now):
        cur = _cond(vs, "Error")
        if cur and cur.get("status") == "True" and cur.get("message") == message:
            return
        status = dict(status)
        status["conditions"] = [{"type": "Error", "status": "True", "lastTransitionTime": now, "reason": "",
                                 "message": message}]
        self._write_status(STORK_VS, vs, status)
        self._event(vs, "Failed", message, "Warning")

    # -- deletions and garbage collection -------------------------------------------------

    def _on_deleted(self, res, obj):
        uid = _uid(obj)
        ns = _ns(obj)
        with self.store.lock:
            with self._cv:
                deps = self._owners.pop(uid, set())
            for dres, dns, dname in sorted(deps, key=lambda k: (str(k[0]), str(k[1]), str(k[2]))):
                d = self._get(dres, dns, dname)
                if d is None or not _owned_by(d, uid):
                    continue
                refs = d["metadata"].get("ownerReferences") or []
                rest = [r for r in refs if r.get("uid") != uid and self._owner_exists(r, dns)]
                if rest:
                    d["metadata"]["ownerReferences"] = rest
                    self._update(dres, d)
                else:
                    self._delete(dres, dns, dname, propagation="Background")
            self._mem = {k: v for k, v in self._mem.items() if not (len(k) > 1 and k[1] == uid)}
            if res == PVC:
                self._claim_deleted(obj)
            elif res == PV:
                self._volume_deleted(obj)
            elif res == CSI_VS:
                content = (obj.get("status") or {}).get("boundVolumeSnapshotContentName")
                c = self._get(CSI_VSC, None, content) if content else None
                if c is not None and (c.get("spec") or {}).get("deletionPolicy", "Delete") == "Delete":
                    hook = self._hook("on_snapshot_delete")
                    if hook is not None:
                        try:
                            hook(res, copy.deepcopy(obj), copy.deepcopy(c))
                        except Exception:  # noqa: BLE001
                            traceback.print_exc()
                    self._delete(CSI_VSC, None, content)
                    c2 = self._get(CSI_VSC, None, content)
                    if c2 is not None and c2["metadata"].get("finalizers"):
                        for f in list(c2["metadata"]["finalizers"]):
                            self._remove_finalizer(CSI_VSC, None, content, f)
            elif res == STORK_VS:
                data = (obj.get("spec") or {}).get("snapshotDataName")
                if data:
                    hook = self._hook("on_snapshot_delete")
                    if hook is not None:
                        try:
                            hook(res, copy.deepcopy(obj), self._get(STORK_VSD, None, data))
                        except Exception:  # noqa: BLE001
                            traceback.print_exc()
                    try:
                        self._delete(STORK_VSD, None, data)
                    except Exception as e:  # noqa: BLE001
                        if _api_status(e) not in (404, 405, None):
                            raise
            elif res == PODS:
                for claim in _pod_claims(obj):
                    self._enqueue((PVC, ns, claim))

    def _owner_exists(self, ref, ns):
        ores = KIND_RES.get((ref.get("kind"), _group(ref.get("apiVersion"))))
        if not ores:
            return True  # a kind we do not know: keep the reference, as the GC would until it can tell
        o = self._get(ores, None if ores in CLUSTER_SCOPED else ns, ref.get("name"))
        return o is not None and _uid(o) == ref.get("uid") and not (o["metadata"].get("deletionTimestamp") and
                                                                    "foregroundDeletion" not in
                                                                    (o["metadata"].get("finalizers") or []))

    def _gc_owner(self, res, ns, name):
        """An owner with deletionTimestamp and the foregroundDeletion or orphan finalizer."""
        with self.store.lock:
            o = self._get(res, ns, name)
            if o is None or not o["metadata"].get("deletionTimestamp"):
                return
            uid = _uid(o)
            fins = o["metadata"].get("finalizers") or []
            with self._cv:
                deps = set(self._owners.get(uid, set()))
            live = []
            for dres, dns, dname in deps:
                d = self._get(dres, dns, dname)
                if d is not None and _owned_by(d, uid):
                    live.append((dres, dns, dname, d))
            if "orphan" in fins:
                for dres, dns, dname, d in live:
                    d["metadata"]["ownerReferences"] = [r for r in d["metadata"].get("ownerReferences") or []
                                                        if r.get("uid") != uid]
                    if not d["metadata"]["ownerReferences"]:
                        del d["metadata"]["ownerReferences"]
                    self._update(dres, d)
                self._remove_finalizer(res, ns, name, "orphan")
                return
            if "foregroundDeletion" in fins:
                if live:
                    for dres, dns, dname, d in live:
                        if not d["metadata"].get("deletionTimestamp"):
                            self._delete(dres, dns, dname, propagation="Foreground")
                    self._enqueue((("_gc", res, ns, name)), 0.2)  # safety net; DELETED events queue it sooner
                    return
                self._remove_finalizer(res, ns, name, "foregroundDeletion")

    def _remove_finalizer(self, res, ns, name, fin):
        o = self._get(res, ns, name)
        if o is None or fin not in (o["metadata"].get("finalizers") or []):
            return
        o["metadata"]["finalizers"] = [f for f in o["metadata"]["finalizers"] if f != fin]
        self.store.update(res, None if res in CLUSTER_SCOPED else ns, o)
        cur = self._get(res, ns, name)
        if cur is not None and cur["metadata"].get("deletionTimestamp") and not cur["metadata"].get("finalizers"):
            self._delete(res, ns, name)  # for a store that does not finish the deletion itself

    def _claim_deleted(self, pvc):
        vol = (pvc.get("spec") or {}).get("volumeName")
        if not vol:
            return
        pv = self._get(PV, None, vol)
        if pv is None or ((pv.get("spec") or {}).get("claimRef") or {}).get("uid") not in (None, _uid(pvc)):
            return
        if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
            hook = self._hook("on_volume_delete")
            if hook is not None:
                try:
                    hook(copy.deepcopy(pv))
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
            self._delete(PV, None, vol)
            if self._get(PV, None, vol) is not None:
                self._remove_finalizer(PV, None, vol, "kubernetes.io/pv-protection")
        else:
            self._write_status(PV, pv, {"phase": "Released", "lastPhaseTransitionTime": _now()})

    def _volume_deleted(self, pv):
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if not ref.get("name"):
            return
        pvc = self._get(PVC, ref.get("namespace"), ref["name"])
        if pvc is None or _uid(pvc) != ref.get("uid") or (pvc.get("status") or {}).get("phase") != "Bound":
            return
        self._lose_claim(pvc, pvc.get("status") or {})


# -- object builders ----------------------------------------------------------------------


def _rv(obj):
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _revision(rs):
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision") or 0)
    except ValueError:
        return 0


def _pod_rev(pod):
    return ((pod.get("metadata") or {}).get("labels") or {}).get("controller-revision-hash")


def _pod_claims(pod):
    return [v["persistentVolumeClaim"]["claimName"] for v in (pod.get("spec") or {}).get("volumes") or []
            if isinstance(v, dict) and (v.get("persistentVolumeClaim") or {}).get("claimName")]


def _job_owner(pod):
    ref = _controller_ref(pod)
    return ref.get("name") if ref and ref.get("kind") == "Job" else None


def _cnames(pod):
    return [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]


def _image(pod):
    cs = (pod.get("spec") or {}).get("containers") or [{}]
    return cs[0].get("image")


def _container_id(pod, c, restarts=0):
    return "containerd://" + hashlib.sha256(("%s/%s/%d" % (_uid(pod), c.get("name"), restarts)).encode()).hexdigest()


def _image_id(c):
    img = c.get("image") or ""
    return "%s@sha256:%s" % (img.split(":")[0], hashlib.sha256(img.encode()).hexdigest())


def _waiting(c, reason, message=None):
    w = {"reason": reason}
    if message:
        w["message"] = message
    return {"name": c.get("name"), "image": c.get("image"), "imageID": "", "ready": False, "restartCount": 0,
            "started": False, "state": {"waiting": w}, "lastState": {}}


def _running(c, now, ready):
    return {"name": c.get("name"), "image": c.get("image"), "imageID": _image_id(c),
            "containerID": "containerd://" + hashlib.sha256((str(c.get("name")) + now).encode()).hexdigest(),
            "ready": ready, "restartCount": 0, "started": True, "state": {"running": {"startedAt": now}},
            "lastState": {}}


def _terminated(c, code, reason, now, ready=False):
    return {"name": c.get("name"), "image": c.get("image"), "imageID": _image_id(c),
            "containerID": "containerd://" + hashlib.sha256((str(c.get("name")) + "t" + now).encode()).hexdigest(),
            "ready": ready, "restartCount": 0, "started": False,
            "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": now, "finishedAt": now,
                                     "containerID": "containerd://" + hashlib.sha256(now.encode()).hexdigest()}},
            "lastState": {}}


def _crashing(c, restarts, now, pod):
    return {"name": c.get("name"), "image": c.get("image"), "imageID": _image_id(c),
            "containerID": _container_id(pod, c, restarts), "ready": False, "restartCount": restarts,
            "started": False,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                  "message": "back-off %ds restarting failed container=%s pod=%s_%s(%s)" % (
                                      min(10 * 2 ** max(restarts - 1, 0), 300), c.get("name"), _name(pod), _ns(pod),
                                      _uid(pod))}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now,
                                         "containerID": _container_id(pod, c, restarts)}}}


POD_SPEC_DEFAULTS = {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                     "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccountName": "default",
                     "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority", "priority": 0}


def _pod_spec(template_spec):
    spec = copy.deepcopy(template_spec or {})
    for k, v in POD_SPEC_DEFAULTS.items():
        spec.setdefault(k, copy.deepcopy(v))
    if spec.get("serviceAccountName"):
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for c in spec.get("containers") or []:
        c.setdefault("imagePullPolicy", "Always" if str(c.get("image", "")).endswith(":latest")
                     or ":" not in str(c.get("image", "")).rsplit("/", 1)[-1] else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
    return spec


def _pod_from_template(owner, api_version, kind, name):
    tmpl = (owner.get("spec") or {}).get("template") or {}
    tmd = tmpl.get("metadata") or {}
    md = {"name": name, "generateName": name[:-5], "namespace": _ns(owner),
          "labels": dict(tmd.get("labels") or {}), "ownerReferences": [_owner_ref(owner, api_version, kind)]}
    if tmd.get("annotations"):
        md["annotations"] = dict(tmd["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": _pod_spec(tmpl.get("spec"))}


def _new_replicaset(d, h, replicas, revision):
    spec = d.get("spec") or {}
    tmpl = copy.deepcopy(spec.get("template") or {})
    tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
    sel = copy.deepcopy(spec.get("selector") or {"matchLabels": dict((spec.get("template") or {}).get(
        "metadata", {}).get("labels") or {})})
    sel.setdefault("matchLabels", {})["pod-template-hash"] = h
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    desired = _int(spec.get("replicas"), 1)
    labels = dict(tmpl["metadata"]["labels"])
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "%s-%s" % (_name(d), h), "namespace": _ns(d), "labels": labels,
                       "annotations": {"deployment.kubernetes.io/desired-replicas": str(desired),
                                       "deployment.kubernetes.io/max-replicas": str(
                                           desired + _scaled(ru.get("maxSurge"), desired, True)),
                                       "deployment.kubernetes.io/revision": str(revision)},
                       "ownerReferences": [_owner_ref(d, "apps/v1", "Deployment")]},
          "spec": {"replicas": replicas, "selector": sel, "template": tmpl}}
    if spec.get("minReadySeconds"):
        rs["spec"]["minReadySeconds"] = spec["minReadySeconds"]
    return rs


def _sts_pod(sts, i, revision):
    name = "%s-%d" % (_name(sts), i)
    pod = _pod_from_template(sts, "apps/v1", "StatefulSet", name)
    pod["metadata"].pop("generateName", None)
    pod["metadata"]["generateName"] = _name(sts) + "-"
    pod["metadata"]["labels"].update({"controller-revision-hash": revision,
                                      "statefulset.kubernetes.io/pod-name": name,
                                      "apps.kubernetes.io/pod-index": str(i)})
    spec = pod["spec"]
    spec["hostname"] = name
    if (sts.get("spec") or {}).get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    vols = spec.setdefault("volumes", [])
    have = {v.get("name") for v in vols}
    for tmpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        vname = _name(tmpl)
        claim = {"name": vname, "persistentVolumeClaim": {"claimName": "%s-%s-%d" % (vname, _name(sts), i)}}
        if vname in have:
            vols[:] = [claim if v.get("name") == vname else v for v in vols]
        else:
            vols.append(claim)
    if not vols:
        del spec["volumes"]
    return pod


def _job_pod(job, name):
    pod = _pod_from_template(job, "batch/v1", "Job", name)
    uid = _uid(job)
    pod["metadata"]["labels"].update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name":
                                      _name(job), "controller-uid": uid, "job-name": _name(job)})
    pod["spec"]["restartPolicy"] = ((job.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "restartPolicy") or "Never"
    return pod


def _ns_time(ns_since_epoch):
    if not ns_since_epoch:
        return _now()
    return datetime.datetime.fromtimestamp(ns_since_epoch / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantity(n):
    """Bytes as the canonical quantity Kubernetes would print ("10Gi", "1500M", "123")."""
    if n <= 0:
        return "0"
    for suffix, mult in (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20),
                         ("Ki", 1 << 10)):
        if n % mult == 0:
            return "%d%s" % (n // mult, suffix)
    return str(n)
