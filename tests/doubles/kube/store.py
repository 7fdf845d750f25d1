"""store.py: the Kubernetes double's object store, shared by the API server, the
controllers (controllers.py) and the stream handlers (streams.py).

Resources are named by `res`, "plural" for the core group and "plural.group"
otherwise: "pods", "namespaces", "deployments.apps", "jobs.batch",
"volumesnapshots.snapshot.storage.k8s.io",
"volumesnapshots.volumesnapshot.external-storage.k8s.io",
"groupvolumesnapshots.stork.libopenstorage.org". `namespace` is None (or ignored)
for cluster-scoped resources. Objects are plain JSON-shaped dicts.

    Store.lock : threading.RLock
        Guards everything. Every method takes it, so single calls are atomic; hold
        it yourself (`with store.lock:`) around a get -> modify -> update sequence
        that must not interleave with other writers. Re-entrant.

    get(res, namespace, name) -> dict | None
        A deep copy of the object, or None. Objects being deleted (with
        metadata.deletionTimestamp) are still returned.
    list(res, namespace=None, label_selector=None, field_selector=None) -> [dict]
        Deep copies sorted by (namespace, name). namespace None = all namespaces.
        Selectors are strings in the API's syntax ("app=web,tier in (a,b)",
        "metadata.name=x,status.phase!=Running") or a dict of labels.
    create(res, namespace, obj, *, dry_run=False) -> dict
        Stores a copy and returns it. Sets uid, resourceVersion, creationTimestamp,
        metadata.generation=1 (types with a spec), namespace, apiVersion/kind, a name
        from generateName, and the API server's defaults (Deployment strategy,
        StatefulSet updateStrategy partition 0, Pod phase Pending, Service clusterIP,
        Namespace finalizer and phase, PVC default StorageClass, Job selector...).
        Whatever status the caller gives is kept (the HTTP layer strips status from
        client creates of types that have a status subresource). Raises ApiError:
        409 AlreadyExists, 404 namespace missing, 403 namespace terminating,
        422 Invalid, 400 BadRequest.
    update(res, namespace, obj, subresource=None, *, dry_run=False) -> dict
        Replaces the object named by obj["metadata"]["name"]. If obj carries
        metadata.resourceVersion it must be current (else 409 Conflict); without one
        the update is unconditional. subresource=None stores spec, status and
        metadata as given (uid, creationTimestamp, deletionTimestamp, name and
        namespace are kept from the stored object); subresource="status" takes only
        obj["status"] and keeps everything else. The RV is bumped and a MODIFIED
        event sent, unless nothing changed (then the stored object is returned and
        no event is sent). metadata.generation is bumped when anything outside
        metadata and status changes. An update that leaves an object with a
        deletionTimestamp and no finalizers removes it (DELETED).
    delete(res, namespace, name, propagation="Background", *, grace_period=None,
           preconditions=None, dry_run=False, missing_ok=False) -> dict | None
        Deletes, or starts deleting, and returns the object: removed now (DELETED
        sent; it carries the deletion's resourceVersion), or still present with
        metadata.deletionTimestamp set (MODIFIED sent) when it has finalizers, when
        propagation is "Foreground" (finalizer foregroundDeletion) or "Orphan"
        (finalizer orphan), for a namespace (phase Terminating; the store's own
        namespace reaper deletes its content, then the namespace), or for a pod
        when `store.graceful_pods` is True and the grace period is not 0. Missing:
        ApiError 404, or None with missing_ok=True. There is NO garbage collector
        here: ownerReferences, foregroundDeletion and orphan are controllers.py's.
        A finalizer is cleared by update()-ing the object without it.
    subscribe(fn) / unsubscribe(fn)
        fn(event_type, res, obj) with event_type "ADDED"|"MODIFIED"|"DELETED", for
        every committed change from then on, in resourceVersion order. Called from
        the store's single dispatcher thread, NOT under the lock, after the change
        is committed; obj is the stored object itself: treat it as read-only (copy
        before changing). fn may call any store method (the events it causes are
        delivered after it returns). Exceptions are printed and ignored.
        wait_idle(timeout) blocks until every queued event has been delivered.
    add_event(involved, reason, message, type="Normal") -> dict
        Records a core/v1 Event about `involved` (an object dict) in its namespace
        ("default" for cluster-scoped objects); a repeat of the same reason and
        message for the same object bumps count and lastTimestamp. Never raises.

    ApiError(status, reason, message, details=None)
        .status (HTTP code), .reason ("NotFound", "Conflict", ...), .message,
        .details (dict or None); .to_status() is the metav1.Status body.

Settings the controllers may change (plain attributes, under the lock):
    graceful_pods = False     True: pod deletes with a grace period keep the pod,
                              Terminating, until delete(..., grace_period=0)
    namespace_delay = 0.3     seconds a Terminating namespace waits before its
                              content is deleted (a real namespace controller
                              takes a moment too: `kubectl delete -f` of a
                              namespace and its content then finds the content)

Internals for the API server: watch(), list_rv(), rv_now(), compact(), reset(),
types (resources.Registry). Watches and subscribers see the same event sequence.
"""

import calendar
import collections
import copy
import json
import queue
import random
import sys
import threading
import time
import traceback
import uuid

import resources
import selector as sel
import validation

HISTORY = 10_000  # watch events kept for exact-RV resume
WATCH_QUEUE = 50_000  # events buffered for one slow watcher before it is cut off
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


# -- errors ----------------------------------------------------------------------


class ApiError(Exception):
    """An API error answered as a metav1.Status."""

    def __init__(self, status, reason, message, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = list(headers or [])  # extra response headers, e.g. Retry-After

    def to_status(self):
        out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message, "reason": self.reason}
        if self.details:
            out["details"] = self.details
        out["code"] = self.status
        return out

    def __repr__(self):
        return f"ApiError({self.status}, {self.reason!r}, {self.message!r})"


def _details(res, name=None, causes=None, uid=None):
    plural, _, group = res.partition(".")
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = plural
    if uid:
        d["uid"] = uid
    if causes:
        d["causes"] = causes
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res} "{name}" not found', _details(res, name))


def unknown_resource():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", f'{res} "{name}" already exists', _details(res, name))


def conflict(res, name, why="the object has been modified; please apply your changes to the latest version and try again"):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res} "{name}": {why}', _details(res, name))


def bad_request(message, details=None):
    return ApiError(400, "BadRequest", message, details)


def forbidden(res, name, why, causes=None):
    what = f'{res} "{name}"' if name else res
    return ApiError(403, "Forbidden", f"{what} is forbidden: {why}", _details(res, name, causes))


def method_not_allowed(verb, res):
    return ApiError(405, "MethodNotAllowed", f'{verb} is not supported on resources of kind "{res}"', _details(res))


def expired(message):
    return ApiError(410, "Expired", message, {})


def invalid(rt, name, causes):
    """422 Invalid from [(cause_type, field, body)], e.g. ("FieldValueRequired",
    "spec.selector", "Required value")."""
    kind = rt.kind if not rt.group else f"{rt.kind}.{rt.group}"
    parts = [f"{f}: {b}" if f else b for _, f, b in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = [{"reason": t, "message": b, "field": f} for t, f, b in causes]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}', details)


# -- watchers --------------------------------------------------------------------


class Watcher:
    """One watch stream's queue. The store offers events under its lock; the
    server's streaming thread takes them with next()."""

    def __init__(self, rt, namespace, labels, fields):
        self.rt = rt
        self.res = rt.res
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self._cond = threading.Condition(threading.Lock())
        self._events = collections.deque()
        self.closed = False  # store reset or queue overflow: the stream must end
        self.overflowed = False

    def matches(self, obj):
        if obj is None:
            return False
        if self.namespace and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)

    def translate(self, etype, obj, old):
        """The event this watcher sees for a store event (selector transitions
        become ADDED/DELETED, as the API server does), or None."""
        now, before = self.matches(obj), self.matches(old) if old is not None else False
        if etype == "ADDED":
            return ("ADDED", obj) if now else None
        if etype == "DELETED":
            return ("DELETED", obj) if now or before else None
        if now and before:
            return ("MODIFIED", obj)
        if now:
            return ("ADDED", obj)
        if before:
            return ("DELETED", obj)
        return None

    def offer(self, event):
        with self._cond:
            if self.closed:
                return
            if len(self._events) >= WATCH_QUEUE:
                self.overflowed = self.closed = True
            else:
                self._events.append(event)
            self._cond.notify_all()

    def close(self):
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def next(self, timeout):
        """(type, obj) or None after `timeout` seconds; ("CLOSED", None) once closed
        and drained."""
        with self._cond:
            if not self._events and not self.closed:
                self._cond.wait(timeout)
            if self._events:
                return self._events.popleft()
            if self.closed:
                return ("CLOSED", None)
            return None


# -- the store -------------------------------------------------------------------


class Store:
    def __init__(self, registry=None):
        self.lock = threading.RLock()
        self.types = registry or resources.Registry()
        self.graceful_pods = False
        self.namespace_delay = 0.3
        self.history_size = HISTORY
        self._objects = {}  # res -> {(namespace or "", name): obj}
        self._rv = 0
        self._history = collections.deque()  # (rv, type, res, obj, old)
        self._compacted = 0  # events with rv <= this are no longer in history
        self._watchers = set()
        self._subscribers = []
        self._dispatch = queue.Queue()
        self._dispatcher = None
        self._pending = 0  # events queued for subscribers, not yet delivered
        self._idle = threading.Condition(self.lock)
        self._reaper_wake = threading.Event()
        self._reaper = None
        self._ip = 10
        self._ns_started = {}  # namespace -> when its deletion started (time.time())
        with self.lock:
            self._seed_defaults()

    # -- public API ----------------------------------------------------------------

    def get(self, res, namespace, name):
        with self.lock:
            rt = self._type(res)
            obj = self._objects.get(rt.res, {}).get(self._key(rt, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, res, namespace=None, label_selector=None, field_selector=None):
        return self.list_rv(res, namespace, label_selector, field_selector)[0]

    def create(self, res, namespace, obj, *, dry_run=False):
        with self.lock:
            rt = self._type(res)
            return copy.deepcopy(self._create(rt, namespace, obj, dry_run))

    def update(self, res, namespace, obj, subresource=None, *, dry_run=False):
        with self.lock:
            rt = self._type(res)
            return copy.deepcopy(self._update(rt, namespace, obj, subresource, dry_run))

    def delete(self, res, namespace, name, propagation="Background", *, grace_period=None, preconditions=None, dry_run=False, missing_ok=False):
        with self.lock:
            rt = self._type(res)
            try:
                out = self._delete(rt, namespace, name, propagation, grace_period, preconditions, dry_run)
            except ApiError as e:
                if missing_ok and e.status == 404:
                    return None
                raise
            return copy.deepcopy(out)

    def subscribe(self, fn):
        with self.lock:
            if fn not in self._subscribers:
                self._subscribers.append(fn)
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._dispatch_loop, name="store-dispatch", daemon=True)
                self._dispatcher.start()

    def unsubscribe(self, fn):
        with self.lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

    def wait_idle(self, timeout=5.0):
        """True once every event so far has been delivered to the subscribers."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def add_event(self, involved, reason, message, type="Normal"):
        try:
            with self.lock:
                md = involved.get("metadata") or {}
                ns = md.get("namespace") or "default"
                ns_obj = self._objects.get("namespaces", {}).get(("", ns))
                if ns_obj is None or (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
                    return None
                stamp = now_rfc3339()
                for ev in self._objects.get("events", {}).values():
                    io = ev.get("involvedObject") or {}
                    if (ev["metadata"].get("namespace") == ns and io.get("uid") == md.get("uid") and io.get("name") == md.get("name")
                            and ev.get("reason") == reason and ev.get("message") == message and ev.get("type") == type):
                        again = copy.deepcopy(ev)
                        again["count"] = int(again.get("count") or 1) + 1
                        again["lastTimestamp"] = stamp
                        return copy.deepcopy(self._update(self.types.by_res("events"), ns, again, None, False))
                event = {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": f"{md.get('name', 'unknown')}.{uuid.uuid4().hex[:16]}", "namespace": ns},
                    "involvedObject": {
                        k: v
                        for k, v in (
                            ("apiVersion", involved.get("apiVersion")),
                            ("kind", involved.get("kind")),
                            ("name", md.get("name")),
                            ("namespace", md.get("namespace")),
                            ("uid", md.get("uid")),
                            ("resourceVersion", md.get("resourceVersion")),
                        )
                        if v
                    },
                    "reason": reason,
                    "message": message,
                    "type": type,
                    "count": 1,
                    "firstTimestamp": stamp,
                    "lastTimestamp": stamp,
                    "source": {"component": "ferry-double"},
                    "reportingComponent": "ferry-double",
                    "reportingInstance": "",
                }
                return copy.deepcopy(self._create(self.types.by_res("events"), ns, event, False))
        except Exception:
            traceback.print_exc()
            return None

    # -- for the API server --------------------------------------------------------

    def rv_now(self):
        with self.lock:
            return str(self._rv)

    def list_rv(self, res, namespace=None, label_selector=None, field_selector=None):
        """(deep-copied items sorted by namespace/name, list resourceVersion)."""
        labels = label_selector if isinstance(label_selector, sel.LabelSelector) else sel.parse_labels(label_selector)
        fields = field_selector if isinstance(field_selector, sel.FieldSelector) else sel.parse_fields(field_selector)
        with self.lock:
            rt = self._type(res)
            bucket = self._objects.get(rt.res, {})
            items = [
                o
                for k, o in sorted(bucket.items())
                if (not namespace or not rt.namespaced or k[0] == namespace) and labels.matches(o) and fields.matches(o)
            ]
            return copy.deepcopy(items), str(self._rv)

    def watch(self, rt, namespace, labels, fields, rv, initial=False):
        """Register a Watcher; returns (watcher, [initial events], start_rv).
        rv None/""/"0": synthetic ADDED for every match, then changes. rv "N": the
        changes after N (410 Expired once N has left the history). initial=True
        (sendInitialEvents): ADDED for every match whatever rv says."""
        with self.lock:
            w = Watcher(rt, namespace, labels, fields)
            events = []
            if rv in (None, "", "0") or initial:
                for o in self._matching(rt, w):
                    events.append(("ADDED", o))
                if rv not in (None, "", "0"):
                    self._check_rv(rv)
            else:
                n = self._check_rv(rv)
                for erv, etype, res, obj, old in self._history:
                    if erv > n and res == rt.res:
                        ev = w.translate(etype, obj, old)
                        if ev:
                            events.append(ev)
            self._watchers.add(w)
            return w, events, str(self._rv)

    def unwatch(self, w):
        with self.lock:
            self._watchers.discard(w)

    def _check_rv(self, rv):
        try:
            n = int(rv)
        except (TypeError, ValueError):
            raise bad_request(f'resourceVersion: Invalid value: "{rv}": must be an unsigned integer') from None
        if n < self._compacted:
            raise expired(f"too old resource version: {n} ({self._compacted + 1})")
        if n > self._rv:
            raise ApiError(
                504,
                "Timeout",
                f"Too large resource version: {n}, current: {self._rv}",
                {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1},
            )
        return n

    def _matching(self, rt, w):
        return [o for _, o in sorted(self._objects.get(rt.res, {}).items()) if w.matches(o)]

    def compact(self):
        """Forget the watch history: every RV before now is too old (410)."""
        with self.lock:
            self._history.clear()
            self._compacted = self._rv

    def reset(self):
        """Back to the default objects. RVs keep increasing; every watch ends."""
        with self.lock:
            for w in list(self._watchers):
                w.close()
            self._watchers.clear()
            self._objects = {}
            self._history.clear()
            self._compacted = self._rv
            self.types.reset()
            self.graceful_pods = False
            self.namespace_delay = 0.3
            self._seed_defaults()

    def seed(self, obj):
        """Create (or replace) an object as given, status included; for control."""
        with self.lock:
            api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
            rt = self.types.by_kind(api_version, kind)
            if rt is None:
                raise bad_request(f'no matches for kind "{kind}" in version "{api_version}"')
            md = obj.get("metadata") or {}
            ns = md.get("namespace") or ("default" if rt.namespaced else None)
            cur = self._objects.get(rt.res, {}).get(self._key(rt, ns, md.get("name", "")))
            if cur is not None:
                obj = copy.deepcopy(obj)
                obj["metadata"].pop("resourceVersion", None)
                return copy.deepcopy(self._update(rt, ns, obj, None, False))
            return copy.deepcopy(self._create(rt, ns, obj, False))

    # -- internals -----------------------------------------------------------------

    def _type(self, res):
        rt = self.types.by_res(res)
        if rt is None:
            raise unknown_resource()
        return rt

    @staticmethod
    def _key(rt, namespace, name):
        return ((namespace or "") if rt.namespaced else "", name)

    def _commit(self, etype, rt, obj, old):
        """Record a change made under the lock: history, watchers, subscribers."""
        rv = int(obj["metadata"]["resourceVersion"])
        self._history.append((rv, etype, rt.res, obj, old))
        while len(self._history) > self.history_size:
            self._compacted = self._history.popleft()[0]
        for w in list(self._watchers):
            if w.res == rt.res:
                ev = w.translate(etype, obj, old)
                if ev:
                    w.offer(ev)
            if w.closed:
                self._watchers.discard(w)
        if self._subscribers:
            self._pending += 1
            self._dispatch.put((etype, rt.res, obj))
        if rt.res == "namespaces" or (obj.get("metadata") or {}).get("namespace"):
            self._reaper_wake.set()

    def _next_rv(self):
        self._rv += 1
        return str(self._rv)

    def _dispatch_loop(self):
        while True:
            etype, res, obj = self._dispatch.get()
            with self.lock:
                subs = list(self._subscribers)
            for fn in subs:
                try:
                    fn(etype, res, obj)
                except Exception:
                    sys.stderr.write(f"kube store: subscriber {getattr(fn, '__name__', fn)} failed on {etype} {res}:\n")
                    traceback.print_exc()
            with self._idle:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()

    def _namespace_state(self, rt, namespace, name):
        """Raise unless objects of rt may be created in `namespace`."""
        if not rt.namespaced:
            return
        ns = self._objects.get("namespaces", {}).get(("", namespace))
        if ns is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})
        if ns["metadata"].get("deletionTimestamp"):
            raise forbidden(
                rt.res,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                [{"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated", "field": "metadata.namespace"}],
            )

    def _create(self, rt, namespace, obj, dry_run):
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(obj)
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            body_ns = md.get("namespace")
            namespace = namespace or body_ns or "default"
            if body_ns and body_ns != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = namespace
        else:
            md.pop("namespace", None)
            namespace = None
        if not md.get("name") and md.get("generateName"):
            for _ in range(20):
                candidate = md["generateName"] + "".join(random.choice(NAME_CHARS) for _ in range(5))
                if self._key(rt, namespace, candidate) not in self._objects.get(rt.res, {}):
                    md["name"] = candidate
                    break
        name = md.get("name") or ""
        obj = {"apiVersion": rt.api_version, "kind": rt.kind, **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}}
        md = obj["metadata"]
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        if rt.generation:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        if not rt.crd:
            validation.default(rt, obj, self, create=True)
        causes = validation.validate(rt, obj, None)
        if causes:
            raise invalid(rt, name, causes)
        self._namespace_state(rt, namespace, name)
        if self._key(rt, namespace, name) in self._objects.get(rt.res, {}):
            raise already_exists(rt.res, name)
        if rt.res == "customresourcedefinitions.apiextensions.k8s.io":
            self._check_crd(obj)
        if dry_run:
            return obj
        md["resourceVersion"] = self._next_rv()
        self._objects.setdefault(rt.res, {})[self._key(rt, namespace, name)] = obj
        self._commit("ADDED", rt, obj, None)
        if rt.res == "customresourcedefinitions.apiextensions.k8s.io":
            self._crd_established(obj)
        return obj

    def _check_crd(self, obj):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        expected = f"{names.get('plural', '')}.{spec.get('group', '')}"
        rt = self.types.by_res("customresourcedefinitions.apiextensions.k8s.io")
        causes = []
        if obj["metadata"].get("name") != expected:
            causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{obj["metadata"].get("name")}": must be spec.names.plural+"."+spec.group'))
        if not spec.get("versions"):
            causes.append(("FieldValueRequired", "spec.versions", "Required value: must have exactly one version marked as storage version"))
        if not names.get("kind"):
            causes.append(("FieldValueRequired", "spec.names.kind", "Required value"))
        if causes:
            raise invalid(rt, obj["metadata"].get("name", ""), causes)

    def _crd_established(self, obj):
        """Serve a newly created CRD's types and mark it Established."""
        self.types.add_crd(obj)
        names = (obj.get("spec") or {}).get("names") or {}
        stamp = now_rfc3339()
        status = {
            "acceptedNames": copy.deepcopy(names),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": stamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": stamp},
            ],
            "storedVersions": [v["name"] for v in (obj.get("spec") or {}).get("versions") or [] if v.get("storage")],
        }
        new = copy.deepcopy(obj)
        new["status"] = status
        self._update(self.types.by_res("customresourcedefinitions.apiextensions.k8s.io"), None, new, "status", False)

    def _update(self, rt, namespace, obj, subresource, dry_run):
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        md_in = obj.get("metadata") or {}
        name = md_in.get("name") or ""
        if rt.namespaced:
            namespace = namespace or md_in.get("namespace") or "default"
        key = self._key(rt, namespace, name)
        cur = self._objects.get(rt.res, {}).get(key)
        if cur is None:
            raise not_found(rt.res, name)
        want_rv = md_in.get("resourceVersion")
        if want_rv not in (None, "") and str(want_rv) != cur["metadata"]["resourceVersion"]:
            raise conflict(rt.res, name)
        cmd = cur["metadata"]
        if subresource == "status":
            new = copy.deepcopy(cur)
            if "status" in obj:
                new["status"] = copy.deepcopy(obj["status"])
            else:
                new.pop("status", None)
        elif subresource == "finalize":
            new = copy.deepcopy(cur)
            new.setdefault("spec", {})["finalizers"] = list(((obj.get("spec") or {}).get("finalizers")) or [])
        else:
            new = copy.deepcopy(obj)
            md = new.setdefault("metadata", {})
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "name", "namespace", "generation"):
                if k in cmd:
                    md[k] = cmd[k]
                else:
                    md.pop(k, None)
            new = {"apiVersion": rt.api_version, "kind": rt.kind, **{k: v for k, v in new.items() if k not in ("apiVersion", "kind")}}
            md = new["metadata"]
            if rt.res == "namespaces":  # spec.finalizers change only through /finalize
                new.setdefault("spec", {})["finalizers"] = list((cur.get("spec") or {}).get("finalizers") or [])
            if cmd.get("deletionTimestamp"):
                added = [f for f in md.get("finalizers") or [] if f not in (cmd.get("finalizers") or [])]
                if added:
                    raise invalid(rt, name, [("FieldValueForbidden", "metadata.finalizers", f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {json.dumps(added)}")])
            if not rt.crd:
                validation.default(rt, new, self, create=False)
            causes = validation.validate(rt, new, cur)
            if causes:
                raise invalid(rt, name, causes)
        md = new["metadata"]
        if rt.generation:
            gen = int(cmd.get("generation") or 1)
            if _spec_part(new) != _spec_part(cur):
                gen += 1
            md["generation"] = gen
        md["resourceVersion"] = cmd["resourceVersion"]
        if _same(new, cur):
            return cur
        if dry_run:
            return new
        if md.get("deletionTimestamp") and not md.get("finalizers") and not (rt.res == "namespaces" and (new.get("spec") or {}).get("finalizers")):
            return self._remove(rt, key, new)
        md["resourceVersion"] = self._next_rv()
        self._objects[rt.res][key] = new
        self._commit("MODIFIED", rt, new, cur)
        return new

    def _remove(self, rt, key, last):
        """Drop the object at key; `last` is its final state. Sends DELETED."""
        obj = copy.deepcopy(last)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        old = self._objects[rt.res].pop(key)
        self._commit("DELETED", rt, obj, old)
        if rt.res == "customresourcedefinitions.apiextensions.k8s.io":
            self._drop_crd(obj)
        return obj

    def _drop_crd(self, crd):
        spec = crd.get("spec") or {}
        res = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
        rt = self.types.by_res(res)
        if rt is not None:
            for key in sorted(self._objects.get(res, {})):
                self._remove(rt, key, self._objects[res][key])
            self._objects.pop(res, None)
        self.types.remove_crd(crd["metadata"]["name"])

    def _delete(self, rt, namespace, name, propagation, grace_period, preconditions, dry_run):
        key = self._key(rt, namespace, name)
        cur = self._objects.get(rt.res, {}).get(key)
        if cur is None:
            raise not_found(rt.res, name)
        cmd = cur["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != cmd.get("uid"):
            raise conflict(rt.res, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {cmd.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != cmd.get("resourceVersion"):
            raise conflict(
                rt.res, name, f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in object meta: {cmd.get('resourceVersion')}"
            )
        propagation = propagation or "Background"
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise bad_request(f'propagationPolicy: Unsupported value: "{propagation}": supported values: "Foreground", "Background", "Orphan"')
        if rt.res == "pods" and grace_period is None:
            grace_period = int((cur.get("spec") or {}).get("terminationGracePeriodSeconds", 30) or 0)
        if cmd.get("deletionTimestamp"):
            # Already being deleted: a pod may have its grace period shortened to 0.
            if rt.res == "pods" and grace_period == 0 and not cmd.get("finalizers"):
                return cur if dry_run else self._remove(rt, key, cur)
            return cur
        new = copy.deepcopy(cur)
        md = new["metadata"]
        finalizers = list(md.get("finalizers") or [])
        extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation)
        if extra and extra not in finalizers and rt.res != "namespaces":
            finalizers.append(extra)
        pending = bool(finalizers)
        if rt.res == "namespaces":
            pending = True
            new.setdefault("status", {})["phase"] = "Terminating"
        if rt.res == "pods" and self.graceful_pods and grace_period:
            pending = True
        if not pending:
            return new if dry_run else self._remove(rt, key, cur)
        md["finalizers"] = finalizers
        if not finalizers:
            md.pop("finalizers")
        grace = grace_period if (rt.res == "pods" and grace_period) else 0
        md["deletionTimestamp"] = now_rfc3339(time.time() + grace)
        md["deletionGracePeriodSeconds"] = grace
        if rt.generation and md.get("generation"):
            md["generation"] = int(md["generation"]) + 1
        if dry_run:
            return new
        md["resourceVersion"] = self._next_rv()
        self._objects[rt.res][key] = new
        self._commit("MODIFIED", rt, new, cur)
        if rt.res == "namespaces":
            self._ns_started[name] = time.time()
            self._start_reaper()
        return new

    # -- namespace deletion --------------------------------------------------------

    def _start_reaper(self):
        self._reaper_wake.set()
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap_loop, name="namespace-reaper", daemon=True)
            self._reaper.start()

    def _reap_loop(self):
        while True:
            self._reaper_wake.wait(0.5)
            self._reaper_wake.clear()
            try:
                with self.lock:
                    self._reap()
            except Exception:
                traceback.print_exc()

    def _reap(self):
        """One pass of the namespace controller over Terminating namespaces."""
        for (_, ns), obj in sorted(self._objects.get("namespaces", {}).items()):
            md = obj["metadata"]
            if not md.get("deletionTimestamp"):
                continue
            started = self._ns_started.setdefault(ns, calendar.timegm(time.strptime(md["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ")))
            if time.time() < started + self.namespace_delay:
                timer = threading.Timer(max(0.05, started + self.namespace_delay - time.time()), self._reaper_wake.set)
                timer.daemon = True
                timer.start()
                continue
            remaining = {}
            blocked = {}
            for res, bucket in list(self._objects.items()):
                rt = self.types.by_res(res)
                if rt is None or not rt.namespaced:
                    continue
                for key in [k for k in bucket if k[0] == ns]:
                    o = bucket.get(key)
                    if o is None:
                        continue
                    if not o["metadata"].get("deletionTimestamp"):
                        self._delete(rt, ns, key[1], "Background", None, None, False)
                    o = bucket.get(key)
                    if o is not None:
                        remaining[res] = remaining.get(res, 0) + 1
                        for f in o["metadata"].get("finalizers") or []:
                            blocked[f] = blocked.get(f, 0) + 1
            if remaining:
                stamp = now_rfc3339()
                conds = [
                    {
                        "type": "NamespaceContentRemaining",
                        "status": "True",
                        "reason": "SomeResourcesRemain",
                        "message": "Some resources are remaining: " + ", ".join(f"{r} has {n} resource instances" for r, n in sorted(remaining.items())),
                        "lastTransitionTime": stamp,
                    },
                    {
                        "type": "NamespaceFinalizersRemaining",
                        "status": "True" if blocked else "False",
                        "reason": "SomeFinalizersRemain" if blocked else "ContentHasNoFinalizers",
                        "message": ("Some content in the namespace has finalizers remaining: " + ", ".join(f"{f} in {n} resource instances" for f, n in sorted(blocked.items())))
                        if blocked
                        else "All content-preserving finalizers finished",
                        "lastTransitionTime": stamp,
                    },
                ]
                old = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in (obj.get("status") or {}).get("conditions") or []]
                if old != [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds]:
                    new = copy.deepcopy(obj)
                    new["status"]["conditions"] = conds
                    self._update(self.types.by_res("namespaces"), None, new, "status", False)
                continue
            # Empty: the namespace controller's /finalize, then it is gone.
            new = copy.deepcopy(obj)
            new.setdefault("spec", {})["finalizers"] = []
            if md.get("finalizers"):
                self._update(self.types.by_res("namespaces"), None, new, "finalize", False)
            else:
                self._remove(self.types.by_res("namespaces"), ("", ns), new)
                self._ns_started.pop(ns, None)

    # -- defaults ------------------------------------------------------------------

    def next_cluster_ip(self):
        with self.lock:
            self._ip += 1
            return f"10.96.{self._ip // 250}.{self._ip % 250 + 1}"

    def _seed_defaults(self):
        for crd in resources.default_crds():
            self._create(self.types.by_res("customresourcedefinitions.apiextensions.k8s.io"), None, crd, False)
        for name in ("default", "kube-system"):
            self._create(self.types.by_res("namespaces"), None, {"metadata": {"name": name}}, False)
        self._create(
            self.types.by_res("nodes"),
            None,
            {
                "metadata": {"name": "ferry-node-1", "labels": {"kubernetes.io/hostname": "ferry-node-1", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
                "spec": {},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.10"}, {"type": "Hostname", "address": "ferry-node-1"}],
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "nodeInfo": {"kubeletVersion": "v1.36.0", "osImage": "Ferry test double", "containerRuntimeVersion": "containerd://2.0.0", "architecture": "amd64", "operatingSystem": "linux"},
                },
            },
            False,
        )
        self._create(
            self.types.by_res("storageclasses.storage.k8s.io"),
            None,
            {
                "metadata": {"name": "px-csi-db", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "pxd.portworx.com",
                "parameters": {"repl": "3", "io_profile": "db_remote"},
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": True,
            },
            False,
        )
        self._create(
            self.types.by_res("volumesnapshotclasses.snapshot.storage.k8s.io"),
            None,
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotClass",
                "metadata": {"name": "px-csi-snapclass", "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
                "driver": "pxd.portworx.com",
                "deletionPolicy": "Delete",
            },
            False,
        )


_VOLATILE_MD = ("resourceVersion", "managedFields", "generation")


def _spec_part(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _same(a, b):
    """Equal apart from resourceVersion and managedFields (a no-op update)."""
    ma = {k: v for k, v in (a.get("metadata") or {}).items() if k not in _VOLATILE_MD}
    mb = {k: v for k, v in (b.get("metadata") or {}).items() if k not in _VOLATILE_MD}
    if ma != mb:
        return False
    ra = {k: v for k, v in a.items() if k != "metadata"}
    rb = {k: v for k, v in b.items() if k != "metadata"}
    if ra != rb:
        return False
    # managedFields: a change of owners (not only of timestamps) is a real change.
    return _owners(a) == _owners(b)


def _owners(obj):
    return [(m.get("manager"), m.get("operation"), m.get("subresource"), json.dumps(m.get("fieldsV1"), sort_keys=True)) for m in (obj.get("metadata") or {}).get("managedFields") or []]
