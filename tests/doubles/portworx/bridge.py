"""bridge.py: the Portworx double's side of the Kubernetes double (shared state).

Runs inside the Kubernetes double's process, on its Store (same lock) and through
controllers.py's hooks (controllers.register_hook):

    on_provision        a PVC of a Portworx StorageClass (provisioner pxd.portworx.com,
                        kubernetes.io/portworx-volume, com.openstorage.pxd) gets a PX
                        volume named after its PV (pvc-<PVC uid>) with labels pvc,
                        namespace (+ the PVC's labels); volumeHandle = the PX id.
                        With a CSI dataSource (VolumeSnapshot or PVC) the volume is a
                        PX clone of the snapshot/volume. A PVC of class
                        stork-snapshot-sc with annotation
                        snapshot.alpha.kubernetes.io/snapshot is a clone of that STORK
                        snapshot (cross-namespace only when the snapshot lists the
                        namespace in stork.libopenstorage.org/snapshot-restore-namespaces);
    on_pv               its PV is an in-tree portworxVolume (volumeID = the clone's
                        id), as STORK's snapshot provisioner makes it.
    on_snapshot         CSI VolumeSnapshot -> PX snapshot "snapshot-<VS uid>"; STORK
                        VolumeSnapshot -> "snapshot-<VS uid>" with labels stork-snap,
                        namespace (pre/post Rules run, see below), or a cloud backup
                        for annotation portworx/snapshot-type: cloud.
    on_volume_delete    a reclaim-Delete PV going away deletes its PX volume
    on_snapshot_delete  a deleted VolumeSnapshotContent / VolumeSnapshotData deletes
                        its PX snapshot

Store subscription: pods mounting a PX volume (PVC or in-tree portworxVolume) mark it
attached on their node, detached once no pod uses it; STORK GroupVolumeSnapshots
(stork.libopenstorage.org/v1alpha1) are carried out: pre rule, one snapshot per
selected PVC (all or none), post rule, child VolumeSnapshots
<gvs>-<pvc>-<gvs uid> (Ready, with VolumeSnapshotData), then status stage Final /
Successful; deleting the group deletes its children.

Rules (stork.libopenstorage.org/v1alpha1 Rule, `rules[].{podSelector, container,
actions[].value}`) are not executed: each action is recorded in the call log
(method "RULE", op "rule") with its pod, container and command.

Seeded in the Portworx namespace (kube-system unless configured): pod
portworx-ferry-node-1 (label name=portworx, container portworx, Running), Service
portworx-api (label name=portworx-api, ports 9001/9020/9021), and when secured the
Secrets px-admin-token / px-user-token (key auth-token) and px-shared-secret (key
shared-secret); cluster-wide the StorageClass stork-snapshot-sc (provisioner
stork-snapshot).
"""

import base64
import copy
import re
import sys
import time
import traceback
import uuid

from . import model
from .model import SdkError

PODS, PVC, PV, SC, SECRETS, SERVICES = "pods", "persistentvolumeclaims", "persistentvolumes", "storageclasses.storage.k8s.io", "secrets", "services"
CSI_VS = "volumesnapshots.snapshot.storage.k8s.io"
STORK_VS = "volumesnapshots.volumesnapshot.external-storage.k8s.io"
STORK_VSD = "volumesnapshotdatas.volumesnapshot.external-storage.k8s.io"
GVS = "groupvolumesnapshots.stork.libopenstorage.org"
RULES = "rules.stork.libopenstorage.org"
PX_PROVISIONERS = ("pxd.portworx.com", "kubernetes.io/portworx-volume", "com.openstorage.pxd")
STORK_PROVISIONER = "stork-snapshot"
STORK_SC = "stork-snapshot-sc"
SNAP_ANNOTATION = "snapshot.alpha.kubernetes.io/snapshot"
SOURCE_NS_KEYS = ("stork.libopenstorage.org/snapshot-source-namespace", "stork/snapshot-source-namespace")
RESTORE_NS_KEYS = ("stork.libopenstorage.org/snapshot-restore-namespaces", "stork/snapshot-restore-namespaces")
PRE_RULE_KEYS = ("stork.libopenstorage.org/pre-snapshot-rule", "stork.rule/pre-snapshot")
POST_RULE_KEYS = ("stork.libopenstorage.org/post-snapshot-rule", "stork.rule/post-snapshot")
READY_MESSAGE = "Snapshot created successfully and it is ready"
QUANTITY = re.compile(r"^([0-9.]+)([eE][0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
MULT = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Ki": 1 << 10,
        "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}


def quantity_bytes(q, default=0):
    m = QUANTITY.match(str(q or "").strip())
    if not m:
        return default
    v = float(m.group(1)) * (10 ** int(m.group(2)[1:]) if m.group(2) else 1)
    return int(-(-v * MULT[m.group(3)] // 1))


def _md(obj):
    return (obj or {}).get("metadata") or {}


def _ann(obj, keys):
    a = _md(obj).get("annotations") or {}
    for k in keys:
        if a.get(k):
            return a[k]
    return None


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _rpc(e):
    """An SdkError as a CSI driver reports it through the snapshotter."""
    return f"rpc error: code = {model.CODE_NAMES.get(e.code, e.code)} desc = {e.message}"


def _selector(sel):
    """A label selector string from a LabelSelector (matchLabels, matchExpressions)."""
    parts = [f"{k}={v}" for k, v in sorted(((sel or {}).get("matchLabels") or {}).items())]
    for e in (sel or {}).get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), e.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(vals)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(vals)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append("!" + key)
    return ",".join(parts)


class Bridge:
    def __init__(self, px):
        self.px = px
        self.store = px.store
        self.state = px.state
        self.namespace = "kube-system"
        self.seeded = []  # (res, namespace, name) of objects we created
        self._pod_vols = {}  # (ns, pod) -> {volume id: consumer}
        self._waiting = {}  # (ns, claim) -> {pod names} whose claim was not resolvable yet
        self.hooks = {
            "on_provision": self.on_provision,
            "on_snapshot": self.on_snapshot,
            "on_volume_delete": self.on_volume_delete,
            "on_snapshot_delete": self.on_snapshot_delete,
            "on_pv": self.on_pv,
        }
        self.pv_hook = False  # controllers.py takes on_pv (else STORK PVs are rewritten after the fact)

    # -- life cycle ------------------------------------------------------------------------

    def install(self, controllers):
        if controllers is not None:
            for name, fn in self.hooks.items():
                try:
                    controllers.register_hook(name, fn)
                except ValueError:  # an older controllers.py without this hook
                    continue
                self.pv_hook = self.pv_hook or name == "on_pv"
        self.store.subscribe(self.on_event)

    def uninstall(self, controllers):
        if controllers is not None:
            for name in self.hooks:
                try:
                    controllers.register_hook(name, None)
                except Exception:  # noqa: BLE001
                    pass
        self.store.unsubscribe(self.on_event)

    def nodes(self):
        """PX nodes: one per Kubernetes node (id = a UUID derived from its name)."""
        try:
            kube_nodes = self.store.list("nodes")
        except Exception:  # noqa: BLE001
            kube_nodes = []
        out = []
        for n in kube_nodes:
            name = _md(n).get("name")
            ip = next((a.get("address") for a in (n.get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"), None) or "10.0.0.10"
            labels = _md(n).get("labels") or {}
            topo = {k: v for k, v in labels.items() if k.startswith("topology.kubernetes.io/")}
            out.append({"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.px")), "name": name, "ip": ip, "topology": topo})
        return out

    # -- seeding -------------------------------------------------------------------------------

    def seed(self):
        """(Re)create what a Portworx install leaves in the cluster."""
        with self.store.lock:
            self._unseed()
            ns = self.namespace
            if self.store.get("namespaces", None, ns) is None:
                self._create("namespaces", None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, track=ns not in ("default", "kube-system"))
            node = (self.nodes() or [{"name": "ferry-node-1", "ip": "10.0.0.10"}])[0]
            now = _now()
            image = "portworx/oci-monitor:3.1.0"
            self._create(PODS, ns, {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"portworx-{node['name']}", "namespace": ns, "labels": {"name": "portworx", "app": "portworx"}},
                "spec": {"nodeName": node["name"], "hostNetwork": True, "serviceAccountName": "portworx",
                         "containers": [{"name": "portworx", "image": image, "args": ["-c", model.CLUSTER_NAME]},
                                        {"name": "csi-node-driver-registrar", "image": "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.9.0"}]},
                "status": {
                    "phase": "Running", "hostIP": node["ip"], "podIP": node["ip"], "startTime": now, "qosClass": "Burstable",
                    "conditions": [{"type": t, "status": "True", "lastTransitionTime": now} for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
                    "containerStatuses": [
                        {"name": c, "ready": True, "restartCount": 0, "started": True, "image": img, "imageID": img,
                         "containerID": f"containerd://{uuid.uuid5(uuid.NAMESPACE_DNS, c).hex}", "state": {"running": {"startedAt": now}}}
                        for c, img in (("portworx", image), ("csi-node-driver-registrar", "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.9.0"))],
                },
            })
            self._create(SERVICES, ns, {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "portworx-api", "namespace": ns, "labels": {"name": "portworx-api"}},
                "spec": {"type": "ClusterIP", "selector": {"name": "portworx-api"},
                         "ports": [{"name": "px-api", "port": 9001, "protocol": "TCP", "targetPort": 9001},
                                   {"name": "px-sdk", "port": 9020, "protocol": "TCP", "targetPort": 9020},
                                   {"name": "px-rest-gateway", "port": 9021, "protocol": "TCP", "targetPort": 9021}]},
            })
            if self.store.get(SC, None, STORK_SC) is None:
                self._create(SC, None, {
                    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": STORK_SC},
                    "provisioner": STORK_PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
                })
            self.seed_secrets()

    def seed_secrets(self):
        """The operator's security Secrets, present only while the double is secured."""
        with self.store.lock:
            ns = self.namespace
            gw = self.px.gateway
            for name, key, value in (("px-admin-token", "auth-token", gw.admin_token), ("px-user-token", "auth-token", gw.user_token),
                                     ("px-shared-secret", "shared-secret", gw.issuers.get("operator.portworx.io", ""))):
                cur = self.store.get(SECRETS, ns, name)
                if not gw.secured:
                    if cur is not None and (SECRETS, ns, name) in self.seeded:
                        self.store.delete(SECRETS, ns, name, missing_ok=True)
                        self.seeded.remove((SECRETS, ns, name))
                    continue
                data = {key: base64.b64encode(value.encode()).decode()}
                if cur is None:
                    self._create(SECRETS, ns, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                               "metadata": {"name": name, "namespace": ns, "labels": {"app": "portworx"}}, "data": data})
                elif cur.get("data") != data:
                    cur["data"] = data
                    cur["metadata"].pop("resourceVersion", None)
                    self.store.update(SECRETS, ns, cur)

    def _create(self, res, ns, obj, track=True):
        try:
            self.store.create(res, ns, obj)
        except Exception as e:  # noqa: BLE001 - already there (a seed of the user's own)
            if getattr(e, "status", None) != 409:
                raise
        if track:
            self.seeded.append((res, ns, obj["metadata"]["name"]))

    def _unseed(self):
        for res, ns, name in reversed(self.seeded):
            if res == SC:
                continue
            try:
                self.store.delete(res, ns, name, missing_ok=True, grace_period=0) if res == PODS else self.store.delete(res, ns, name, missing_ok=True)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        self.seeded = [s for s in self.seeded if s[0] == SC]

    def forget_seeds(self):
        """After the Kubernetes store was reset: nothing of ours is left there."""
        self.seeded = []

    # -- helpers ---------------------------------------------------------------------------------

    def volume_id_of_pv(self, pv):
        """The PX volume id behind a PV: CSI volumeHandle, in-tree portworxVolume.volumeID
        (an id or a name), or the PV name as the PX volume name."""
        spec = (pv or {}).get("spec") or {}
        csi = spec.get("csi") or {}
        if csi.get("volumeHandle") and (csi.get("driver") in PX_PROVISIONERS or csi.get("driver") == STORK_PROVISIONER):
            v = self.state.resolve(csi["volumeHandle"])
            return v["id"] if v else csi["volumeHandle"]
        ref = (spec.get("portworxVolume") or {}).get("volumeID")
        if ref:
            v = self.state.resolve(ref)
            return v["id"] if v else ref
        v = self.state.by_name(_md(pv).get("name"))
        return v["id"] if v else None

    def log(self, **entry):
        self.px.gateway.calls.add(entry)

    # -- hooks -----------------------------------------------------------------------------------

    def on_provision(self, pvc, sc, source):
        prov = (sc or {}).get("provisioner")
        if prov not in PX_PROVISIONERS and prov != STORK_PROVISIONER:
            return None
        md = _md(pvc)
        ns, claim = md.get("namespace"), md.get("name")
        name = f"pvc-{md.get('uid')}"
        size = quantity_bytes((((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage"), 0)
        labels = dict(md.get("labels") or {})
        labels.update({"pvc": claim, "namespace": ns})
        with self.state.lock:
            existing = self.state.by_name(name)
            if existing is not None:
                return {"volume_handle": existing["id"]}
            try:
                if prov == STORK_PROVISIONER:
                    v = self._stork_restore(pvc, name, labels)
                elif source:
                    handle = source.get("snapshot_handle") or source.get("volume_handle")
                    if not handle or self.state.get(handle) is None:
                        raise SdkError(5, f"Volume id {handle} not found")
                    v = self.state.clone_for(handle, name, labels)
                else:
                    spec = model.spec_from_parameters((sc or {}).get("parameters"), size or model.GiB)
                    v = self.state.create(name, spec, labels)
                if size and size > v["spec"]["size"]:
                    v["spec"]["size"] = size  # a restore into a bigger claim is expanded
            except SdkError as e:
                self.log(method="HOOK", op="on_provision", pvc=f"{ns}/{claim}", error=e.message)
                raise RuntimeError(_rpc(e)) from None
            self.log(method="HOOK", op="on_provision", pvc=f"{ns}/{claim}", volume_id=v["id"], parent=v["parent"])
            return {"volume_handle": v["id"]}

    def _stork_restore(self, pvc, name, labels):
        md = _md(pvc)
        ns = md.get("namespace")
        snap = _ann(pvc, (SNAP_ANNOTATION,))
        if not snap:
            raise SdkError(3, f"claim {ns}/{md.get('name')} has no {SNAP_ANNOTATION} annotation; stork-snapshot-sc restores snapshots only")
        src_ns = _ann(pvc, SOURCE_NS_KEYS) or ns
        vs = self.store.get(STORK_VS, src_ns, snap)
        if vs is None:
            raise SdkError(5, f'failed to get snapshot {src_ns}/{snap}: volumesnapshots.volumesnapshot.external-storage.k8s.io "{snap}" not found')
        if src_ns != ns:
            allowed = [p.strip() for p in (_ann(vs, RESTORE_NS_KEYS) or "").split(",") if p.strip()]
            if not any(re.fullmatch(p, ns) for p in allowed):
                raise SdkError(7, f"snapshot {src_ns}/{snap} cannot be restored into namespace {ns}: the namespace is not in its "
                                  f"{RESTORE_NS_KEYS[0]} annotation")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in (vs.get("status") or {}).get("conditions") or [])
        data_name = (vs.get("spec") or {}).get("snapshotDataName")
        vsd = self.store.get(STORK_VSD, None, data_name) if data_name else None
        snap_id = (((vsd or {}).get("spec") or {}).get("portworxVolume") or {}).get("snapshotId")
        if not ready or not snap_id:
            raise SdkError(9, f"snapshot {src_ns}/{snap} is not ready yet")
        if snap_id in self.state.backups:  # a cloud snapshot: restore from the cloud
            vid, _ = self.state.backup_restore(snap_id, name)
            v = self.state.get(vid)
            v["labels"].update(labels)
            return v
        if self.state.get(snap_id) is None:
            raise SdkError(5, f"Volume id {snap_id} not found")
        return self.state.clone_for(snap_id, name, labels)

    def on_snapshot(self, res, obj):
        f = obj.get("_ferry") or {}
        md = _md(obj)
        ns, name, uid = md.get("namespace"), md.get("name"), md.get("uid")
        with self.state.lock:
            vid = self.volume_id_of_pv(f.get("pv"))
            parent = self.state.get(vid) if vid else None
            if parent is None:
                claim = _md(f.get("pvc")).get("name")
                msg = f"volume for PVC {ns}/{claim} is not a Portworx volume (or it was deleted)"
                return {"error": msg if res == CSI_VS else f"snapshot failed due to err: {msg}"}
            snap_name = f"snapshot-{uid}"
            if res == CSI_VS:
                labels = {"csi.storage.k8s.io/volumesnapshot/name": name, "csi.storage.k8s.io/volumesnapshot/namespace": ns,
                          "csi.storage.k8s.io/volumesnapshotcontent/name": f"snapcontent-{uid}"}
                try:
                    s = self.state.snapshot_for(parent["id"], snap_name, labels)
                except SdkError as e:
                    self.log(method="HOOK", op="on_snapshot", snapshot=f"{ns}/{name}", error=e.message)
                    return {"error": f'failed to take snapshot of the volume {parent["id"]}: "{_rpc(e)}"'}
                self.log(method="HOOK", op="on_snapshot", snapshot=f"{ns}/{name}", snapshot_id=s["id"], volume_id=parent["id"])
                return {"snapshot_handle": s["id"], "restore_size": s["spec"]["size"]}
            # STORK
            cloud = (_md(obj).get("annotations") or {}).get("portworx/snapshot-type") == "cloud"
            existing = self.state.by_name(snap_name)
            task = self.state.tasks.get(uid)
            if existing is None and task is None:
                problem = self._run_rules(obj, PRE_RULE_KEYS, "pre")
                if problem:
                    return {"error": f"snapshot failed due to err: {problem}"}
            try:
                if cloud:
                    if task is None:
                        cred = (_md(obj).get("annotations") or {}).get("portworx/cloud-cred-id") or ""
                        self.state.backup_create(parent["id"], cred, uid, {"cloudBackupOwnerLabel": "stork", "stork-snap": name, "namespace": ns})
                        task = self.state.tasks[uid]
                        self._run_rules(obj, POST_RULE_KEYS, "post")
                    status, _ = self.state.advance(task)
                    if status == model.BACKUP_STATUS + "Failed":
                        return {"error": f"snapshot failed due to err: cloudsnap backup failed: {task['fail'] or 'failed'}"}
                    if status != model.BACKUP_STATUS + "Done":
                        return {"ready": False}
                    self.log(method="HOOK", op="on_snapshot", snapshot=f"{ns}/{name}", backup_id=task["backup_id"], volume_id=parent["id"])
                    return {"snapshot_handle": task["backup_id"], "restore_size": parent["spec"]["size"]}
                s = self.state.snapshot_for(parent["id"], snap_name, {"stork-snap": name, "namespace": ns})
            except SdkError as e:
                self.log(method="HOOK", op="on_snapshot", snapshot=f"{ns}/{name}", error=e.message)
                self._run_rules(obj, POST_RULE_KEYS, "post")
                return {"error": f"snapshot failed due to err: {e.message}"}
            if existing is None:
                self._run_rules(obj, POST_RULE_KEYS, "post")
            self.log(method="HOOK", op="on_snapshot", snapshot=f"{ns}/{name}", snapshot_id=s["id"], volume_id=parent["id"])
            return {"snapshot_handle": s["id"], "restore_size": s["spec"]["size"]}

    def on_pv(self, pv):
        """STORK's snapshot provisioner makes in-tree portworxVolume PVs."""
        md = _md(pv)
        if (md.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") != STORK_PROVISIONER or not (pv.get("spec") or {}).get("csi"):
            return None
        csi = pv["spec"].pop("csi")
        pv["spec"]["portworxVolume"] = {"volumeID": csi.get("volumeHandle"), "fsType": csi.get("fsType") or "ext4"}
        return pv

    def on_volume_delete(self, pv):
        with self.state.lock:
            vid = self.volume_id_of_pv(pv)
            if vid is None:
                return
            try:
                gone = self.state.delete(vid)
            except SdkError as e:
                self.log(method="HOOK", op="on_volume_delete", pv=_md(pv).get("name"), volume_id=vid, error=e.message)
                raise RuntimeError(e.message) from None
            self.log(method="HOOK", op="on_volume_delete", pv=_md(pv).get("name"), volume_id=vid, deleted=gone)

    def on_snapshot_delete(self, res, obj, content):
        with self.state.lock:
            if res == CSI_VS:
                sid = ((content or {}).get("status") or {}).get("snapshotHandle")
            else:
                sid = ((((content or {}).get("spec") or {}).get("portworxVolume")) or {}).get("snapshotId")
            if not sid:
                return
            if sid in self.state.backups:
                self.state.backups.pop(sid, None)
                gone = True
            else:
                try:
                    gone = self.state.delete(sid)
                except SdkError as e:
                    raise RuntimeError(e.message) from None
            self.log(method="HOOK", op="on_snapshot_delete", snapshot=f"{_md(obj).get('namespace')}/{_md(obj).get('name')}", snapshot_id=sid, deleted=gone)

    # -- rules -----------------------------------------------------------------------------------

    def _run_rules(self, obj, keys, phase, rule_name=None):
        """Record the actions of the pre/post Rule named on `obj` (None when fine,
        else why not)."""
        ns = _md(obj).get("namespace")
        rule_name = rule_name or _ann(obj, keys)
        if not rule_name:
            return None
        rule = self.store.get(RULES, ns, rule_name)
        if rule is None:
            msg = f'failed to get {phase}-snapshot rule {rule_name}: rules.stork.libopenstorage.org "{rule_name}" not found'
            self.log(method="RULE", op="rule", rule=rule_name, phase=phase, namespace=ns, error=msg)
            return msg
        for item in rule.get("rules") or []:
            pods = self.store.list(PODS, ns, label_selector=dict(item.get("podSelector") or {}))
            pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            if not pods:
                msg = f"no pods found for rule {rule_name} with selector {item.get('podSelector')}"
                self.log(method="RULE", op="rule", rule=rule_name, phase=phase, namespace=ns, error=msg)
                continue
            for action in item.get("actions") or []:
                targets = pods[:1] if action.get("runInSinglePod") else pods
                for p in targets:
                    container = item.get("container") or ((p.get("spec") or {}).get("containers") or [{}])[0].get("name")
                    self.log(method="RULE", op="rule", rule=rule_name, phase=phase, namespace=ns, pod=_md(p).get("name"),
                             container=container, command=action.get("value"), background=bool(action.get("background")))
        return None

    # -- store events: attachments and group snapshots ----------------------------------------------------

    def on_event(self, etype, res, obj):
        try:
            if res == PODS:
                self.sync_pod(obj, deleted=etype == "DELETED")
            elif res in (PVC, PV):
                if res == PV and etype == "ADDED" and not self.pv_hook:
                    self._fix_stork_pv(obj)
                ref = (obj.get("spec") or {}).get("claimRef") or {} if res == PV else {"namespace": _md(obj).get("namespace"), "name": _md(obj).get("name")}
                self._resync_claim(ref.get("namespace"), ref.get("name"))
                if res == PVC:
                    self._pending_groups()
            elif res == GVS:
                if etype == "DELETED":
                    self._group_deleted(obj)
                else:
                    self._group(_md(obj).get("namespace"), _md(obj).get("name"))
        except Exception:  # noqa: BLE001 - never break the store's dispatcher
            sys.stderr.write(f"portworx: handling {etype} {res} failed:\n")
            traceback.print_exc()

    # -- attachments: a scheduled pod mounting a PX volume attaches it ----------------------------

    def reset_attachments(self):
        """Forget what pods held, then attach for every pod there is (after a reset)."""
        with self.store.lock:
            self._pod_vols = {}  # (ns, pod) -> {volume id: consumer}
            self._waiting = {}  # (ns, claim) -> {pod names} whose claim was not resolvable yet
            for p in self.store.list(PODS):
                self.sync_pod(p)

    def _pod_volumes(self, pod):
        """{volume id: consumer} a pod holds now."""
        md, spec, st = _md(pod), pod.get("spec") or {}, pod.get("status") or {}
        ns = md.get("namespace")
        if not spec.get("nodeName") or st.get("phase") in ("Succeeded", "Failed"):
            return {}
        node = self.state.node(spec["nodeName"]) or self.state.node(None)
        owner = next(iter(md.get("ownerReferences") or []), {})
        out = {}
        for vol in spec.get("volumes") or []:
            vid, pv_name = None, vol.get("name")
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                pvc = self.store.get(PVC, ns, claim)
                pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
                pv = self.store.get(PV, None, pv_name) if pv_name and ((pvc or {}).get("status") or {}).get("phase") == "Bound" else None
                if pv is None:
                    self._waiting.setdefault((ns, claim), set()).add(md.get("name"))
                    continue
                vid = self.volume_id_of_pv(pv)
            elif (vol.get("portworxVolume") or {}).get("volumeID"):
                v = self.state.resolve(vol["portworxVolume"]["volumeID"])
                vid = v["id"] if v else None
            if vid is None or self.state.get(vid) is None:
                continue
            out[vid] = {
                "name": md.get("name"), "namespace": ns, "node_id": node["id"] if node else "", "node": spec["nodeName"],
                "owner_name": owner.get("name", ""), "owner_type": owner.get("kind", ""),
                "path": f"/var/lib/kubelet/pods/{md.get('uid')}/volumes/kubernetes.io~csi/{pv_name}/mount",
            }
        return out

    def sync_pod(self, pod, deleted=False):
        with self.store.lock:
            key = (_md(pod).get("namespace"), _md(pod).get("name"))
            want = {} if deleted else self._pod_volumes(pod)
            have = self._pod_vols.get(key, {})
            for vid, c in have.items():
                if vid not in want:
                    self.state.detach(vid, c)
            for vid, c in want.items():
                if vid not in have and self.state.get(vid) is not None:
                    self.state.attach(vid, c["node"], c)
            if want:
                self._pod_vols[key] = want
            else:
                self._pod_vols.pop(key, None)

    def _resync_claim(self, ns, claim):
        if not claim:
            return
        with self.store.lock:
            for name in sorted(self._waiting.pop((ns, claim), set())):
                p = self.store.get(PODS, ns, name)
                if p is not None:
                    self.sync_pod(p)

    def _fix_stork_pv(self, pv):
        """on_pv after the fact, for a controllers.py without that hook."""
        md = _md(pv)
        if (md.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") != STORK_PROVISIONER:
            return
        with self.store.lock:
            cur = self.store.get(PV, None, md.get("name"))
            if cur is None or not (cur.get("spec") or {}).get("csi"):
                return
            csi = cur["spec"].pop("csi")
            cur["spec"]["portworxVolume"] = {"volumeID": csi.get("volumeHandle"), "fsType": csi.get("fsType") or "ext4"}
            cur["metadata"].pop("resourceVersion", None)
            self.store.update(PV, None, cur)

    # -- GroupVolumeSnapshot ------------------------------------------------------------------------

    def _pending_groups(self):
        for g in self.store.list(GVS):
            if ((g.get("status") or {}).get("stage") or "") != "Final" and (g.get("status") or {}).get("status") != "Failed":
                self._group(_md(g).get("namespace"), _md(g).get("name"))

    def _set_group_status(self, g, status, event=None):
        if g.get("status") == status:
            return g
        g = copy.deepcopy(g)
        g["status"] = status
        g["metadata"].pop("resourceVersion", None)
        out = self.store.update(GVS, _md(g).get("namespace"), g)
        if event:
            self.store.add_event(out, event[0], event[1], event[2] if len(event) > 2 else "Normal")
        return out

    def _group(self, ns, name):
        with self.store.lock:
            g = self.store.get(GVS, ns, name)
            if g is None or _md(g).get("deletionTimestamp"):
                return
            st = g.get("status") or {}
            if st.get("stage") == "Final" or st.get("status") == "Failed":
                return
            spec = g.get("spec") or {}
            pvcs = self.store.list(PVC, ns, label_selector=_selector(spec.get("pvcSelector")))
            if not pvcs or any((p.get("status") or {}).get("phase") != "Bound" for p in pvcs):
                why = "no PVCs match the selector" if not pvcs else "waiting for PVCs to be bound"
                self._set_group_status(g, {"stage": "PreChecks", "status": "Pending", "numRetries": 0}, ("Pending", why))
                return
            vols = []
            for p in pvcs:
                pv = self.store.get(PV, None, (p.get("spec") or {}).get("volumeName") or "")
                vid = self.volume_id_of_pv(pv)
                if vid is None or self.state.get(vid) is None:
                    self._set_group_status(g, {"stage": "PreChecks", "status": "Failed"},
                                           ("Failed", f"PVC {ns}/{_md(p).get('name')} is not a Portworx volume", "Warning"))
                    return
                vols.append((p, vid))
            problem = self._run_rules(g, (), "pre", spec.get("preExecRule"))
            if problem:
                self._set_group_status(g, {"stage": "PreSnapshot", "status": "Failed"}, ("Failed", problem, "Warning"))
                return
            uid = _md(g).get("uid")
            made = []
            try:
                for p, vid in vols:
                    child = f"{name}-{_md(p).get('name')}-{uid}"
                    made.append((p, vid, child, self.state.snapshot_for(vid, child, {"stork-snap": child, "namespace": ns, "group-snapshot": name})))
            except SdkError as e:
                for _, _, _, s in made:
                    self.state.delete(s["id"])
                self._run_rules(g, (), "post", spec.get("postExecRule"))
                self._set_group_status(g, {"stage": "Snapshot", "status": "Failed"}, ("Failed", f"snapshot failed due to err: {e.message}", "Warning"))
                return
            self._run_rules(g, (), "post", spec.get("postExecRule"))
            now = _now()
            ready = [{"type": "Ready", "status": "True", "lastTransitionTime": now, "reason": "", "message": READY_MESSAGE}]
            entries = []
            restore_ns = ",".join(spec.get("restoreNamespaces") or [])
            for p, vid, child, s in made:
                data_name = f"k8s-volume-snapshot-{uuid.uuid4()}"
                if self.store.get(STORK_VSD, None, data_name) is None:
                    self.store.create(STORK_VSD, None, {
                        "apiVersion": "volumesnapshot.external-storage.k8s.io/v1", "kind": "VolumeSnapshotData",
                        "metadata": {"name": data_name},
                        "spec": {"portworxVolume": {"snapshotId": s["id"], "snapshotType": "local"},
                                 "volumeSnapshotRef": {"kind": "VolumeSnapshot", "name": f"{ns}/{child}"},
                                 "persistentVolumeRef": {"kind": "PersistentVolume", "name": (p.get("spec") or {}).get("volumeName")}},
                        "status": {"creationTimestamp": now, "conditions": copy.deepcopy(ready)}})
                ann = {"stork.libopenstorage.org/groupSnapshotName": name}
                if restore_ns:
                    ann[RESTORE_NS_KEYS[0]] = restore_ns
                if self.store.get(STORK_VS, ns, child) is None:
                    self.store.create(STORK_VS, ns, {
                        "apiVersion": "volumesnapshot.external-storage.k8s.io/v1", "kind": "VolumeSnapshot",
                        "metadata": {"name": child, "namespace": ns, "annotations": ann, "labels": dict(_md(g).get("labels") or {}),
                                     "ownerReferences": [{"apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "GroupVolumeSnapshot",
                                                          "name": name, "uid": uid, "controller": True}]},
                        "spec": {"persistentVolumeClaimName": _md(p).get("name"), "snapshotDataName": data_name},
                        "status": {"creationTimestamp": now, "conditions": copy.deepcopy(ready)}})
                entries.append({"VolumeSnapshotName": child, "TaskID": "", "ParentVolumeID": vid,
                                "DataSource": {"portworxVolume": {"snapshotId": s["id"], "snapshotType": "local"}},
                                "Conditions": copy.deepcopy(ready)})
            self.log(method="HOOK", op="group_snapshot", group=f"{ns}/{name}", snapshot_ids=[s["id"] for *_, s in made])
            self._set_group_status(g, {"stage": "Final", "status": "Successful", "numRetries": 0, "volumeSnapshots": entries},
                                   ("Successful", f"Created {len(entries)} snapshots"))

    def _group_deleted(self, g):
        ns = _md(g).get("namespace")
        with self.store.lock:
            for e in (g.get("status") or {}).get("volumeSnapshots") or []:
                try:
                    self.store.delete(STORK_VS, ns, e.get("VolumeSnapshotName"), missing_ok=True)
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
