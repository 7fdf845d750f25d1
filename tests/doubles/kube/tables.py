"""tables.py: server-side printing (meta.k8s.io/v1 Table), what `kubectl get` asks
for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

table(rt, items, list_meta, include) -> the Table for a list (or one object), with
the columns the API server prints for the kinds Ferry uses (a subset of kubectl's
familiar columns) and Name + Age for the rest. Rows carry the object as
PartialObjectMetadata (includeObject=Metadata, the default), the full object
(Object) or nothing (None). Pure; no I/O.
"""

import calendar
import time


def wants_table(accept):
    for part in (accept or "").split(","):
        params = dict(p.strip().partition("=")[::2] for p in part.split(";")[1:])
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return True
    return False


def age(stamp, now=None):
    """kubectl's HumanDuration of the time since an RFC 3339 timestamp."""
    if not stamp:
        return "<unknown>"
    try:
        then = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "<invalid>"
    s = max(0, int((now or time.time()) - then))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d"


def _st(o):
    return o.get("status") or {}


def _sp(o):
    return o.get("spec") or {}


def _pod_status(o):
    st = _st(o)
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    reason = st.get("reason")
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    return reason or st.get("phase") or "Unknown"


def _pod_ready(o):
    statuses = _st(o).get("containerStatuses") or []
    total = len(_sp(o).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _ports(o):
    ports = [f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}" for p in _sp(o).get("ports") or []]
    return ",".join(ports) or "<none>"


def _job_status(o):
    for c in _st(o).get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed", "Suspended"):
            return c["type"]
    return "Running"


S, I = "string", "integer"
COLUMNS = {
    "pods": [("Ready", S, _pod_ready), ("Status", S, _pod_status), ("Restarts", I, lambda o: sum(int(c.get("restartCount") or 0) for c in _st(o).get("containerStatuses") or [])), ("Age", S, None), ("IP", S, lambda o: _st(o).get("podIP") or "<none>", 1), ("Node", S, lambda o: _sp(o).get("nodeName") or "<none>", 1)],
    "deployments.apps": [("Ready", S, lambda o: f"{_st(o).get('readyReplicas', 0)}/{_sp(o).get('replicas', 1)}"), ("Up-to-date", I, lambda o: _st(o).get("updatedReplicas", 0)), ("Available", I, lambda o: _st(o).get("availableReplicas", 0)), ("Age", S, None)],
    "replicasets.apps": [("Desired", I, lambda o: _sp(o).get("replicas", 1)), ("Current", I, lambda o: _st(o).get("replicas", 0)), ("Ready", I, lambda o: _st(o).get("readyReplicas", 0)), ("Age", S, None)],
    "statefulsets.apps": [("Ready", S, lambda o: f"{_st(o).get('readyReplicas', 0)}/{_sp(o).get('replicas', 1)}"), ("Age", S, None)],
    "daemonsets.apps": [("Desired", I, lambda o: _st(o).get("desiredNumberScheduled", 0)), ("Current", I, lambda o: _st(o).get("currentNumberScheduled", 0)), ("Ready", I, lambda o: _st(o).get("numberReady", 0)), ("Up-to-date", I, lambda o: _st(o).get("updatedNumberScheduled", 0)), ("Available", I, lambda o: _st(o).get("numberAvailable", 0)), ("Age", S, None)],
    "jobs.batch": [("Status", S, _job_status), ("Completions", S, lambda o: f"{_st(o).get('succeeded', 0)}/{_sp(o).get('completions', 1)}"), ("Age", S, None)],
    "services": [("Type", S, lambda o: _sp(o).get("type", "ClusterIP")), ("Cluster-IP", S, lambda o: _sp(o).get("clusterIP") or "<none>"), ("External-IP", S, lambda o: ",".join(i.get("ip") or i.get("hostname", "") for i in (_st(o).get("loadBalancer") or {}).get("ingress") or []) or "<none>"), ("Port(s)", S, _ports), ("Age", S, None)],
    "persistentvolumeclaims": [("Status", S, lambda o: _st(o).get("phase", "")), ("Volume", S, lambda o: _sp(o).get("volumeName", "")), ("Capacity", S, lambda o: (_st(o).get("capacity") or {}).get("storage", "")), ("Access Modes", S, lambda o: ",".join(_short_modes(_st(o).get("accessModes")))), ("StorageClass", S, lambda o: _sp(o).get("storageClassName") or "<unset>"), ("Age", S, None)],
    "persistentvolumes": [("Capacity", S, lambda o: (_sp(o).get("capacity") or {}).get("storage", "")), ("Access Modes", S, lambda o: ",".join(_short_modes(_sp(o).get("accessModes")))), ("Reclaim Policy", S, lambda o: _sp(o).get("persistentVolumeReclaimPolicy", "")), ("Status", S, lambda o: _st(o).get("phase", "")), ("Claim", S, lambda o: "/".join(x for x in ((_sp(o).get("claimRef") or {}).get("namespace"), (_sp(o).get("claimRef") or {}).get("name")) if x)), ("StorageClass", S, lambda o: _sp(o).get("storageClassName", "")), ("Age", S, None)],
    "namespaces": [("Status", S, lambda o: _st(o).get("phase", "")), ("Age", S, None)],
    "configmaps": [("Data", I, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})), ("Age", S, None)],
    "secrets": [("Type", S, lambda o: o.get("type", "")), ("Data", I, lambda o: len(o.get("data") or {})), ("Age", S, None)],
    "nodes": [("Status", S, lambda o: "Ready" if any(c.get("type") == "Ready" and c.get("status") == "True" for c in _st(o).get("conditions") or []) else "NotReady"), ("Roles", S, lambda o: "<none>"), ("Age", S, None), ("Version", S, lambda o: (_st(o).get("nodeInfo") or {}).get("kubeletVersion", ""))],
    "storageclasses.storage.k8s.io": [("Provisioner", S, lambda o: o.get("provisioner", "")), ("ReclaimPolicy", S, lambda o: o.get("reclaimPolicy", "")), ("VolumeBindingMode", S, lambda o: o.get("volumeBindingMode", "")), ("AllowVolumeExpansion", S, lambda o: str(bool(o.get("allowVolumeExpansion"))).lower()), ("Age", S, None)],
    "volumesnapshots.snapshot.storage.k8s.io": [("ReadyToUse", S, lambda o: str(_st(o).get("readyToUse", "")).lower()), ("SourcePVC", S, lambda o: (_sp(o).get("source") or {}).get("persistentVolumeClaimName", "")), ("SnapshotClass", S, lambda o: _sp(o).get("volumeSnapshotClassName", "")), ("Age", S, None)],
}
EVENT_COLUMNS = [("Last Seen", S, lambda o: age(o.get("lastTimestamp") or o.get("eventTime"))), ("Type", S, lambda o: o.get("type", "")), ("Reason", S, lambda o: o.get("reason", "")), ("Object", S, lambda o: f"{(o.get('involvedObject') or {}).get('kind', '').lower()}/{(o.get('involvedObject') or {}).get('name', '')}"), ("Message", S, lambda o: o.get("message", ""))]


def _short_modes(modes):
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return [short.get(m, m) for m in modes or []]


def table(rt, items, list_meta, include="Metadata"):
    if rt.res == "events":
        cols = EVENT_COLUMNS
        defs = []
    else:
        cols = COLUMNS.get(rt.res, [("Age", S, None)])
        defs = [{"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}]
    for c in cols:
        defs.append({"name": c[0], "type": c[1], "format": "", "description": c[0], "priority": c[3] if len(c) > 3 else 0})
    now = time.time()
    rows = []
    for o in items:
        md = o.get("metadata") or {}
        cells = [] if rt.res == "events" else [md.get("name", "")]
        for c in cols:
            cells.append(age(md.get("creationTimestamp"), now) if c[2] is None else c[2](o))
        row = {"cells": cells}
        if include == "Object":
            row["object"] = dict(o, apiVersion=o.get("apiVersion", rt.api_version), kind=o.get("kind", rt.kind))
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": dict(list_meta or {}), "columnDefinitions": defs, "rows": rows}
