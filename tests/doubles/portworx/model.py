"""model.py: the Portworx double's state and the SDK's server-side semantics
(ref/notes/portworx.md §1.6), independent of HTTP.

Volumes, snapshots and clones are one kind of record (snapshots are volumes with a
parent and readonly=True; clones have a parent and are writable). Operations raise
SdkError(grpc_code, message) exactly where the SDK server answers an error; the
gateway turns that into the grpc-gateway error body and HTTP status.

Encodings:
    sdk_volume(v)    the SDK gateway's jsonpb (OrigName, defaults omitted, int64 as
                     strings, enum names)
    pxctl_volume(v)  `pxctl -j` (same keys, defaults emitted, short lowercase
                     status/state/format/cos, §3)

Callers hold `State.lock` around every call (the Kubernetes store's lock when
running inside the Kubernetes double, so hooks, pxctl and API calls never
interleave); reset() and configure() take it themselves.
"""

import copy
import itertools
import random
import threading
import time
import uuid

SNAPSHOT_LIMIT = 64  # "an implementation limit of 64 snapshots per volume"
SDK_VERSION = (0, 186, 0)
PX_VERSION = "3.1.0.0-ferry"
CLUSTER_NAME = "ferry-px-cluster"
GiB = 1 << 30

# grpc code -> HTTP status (grpc-gateway v1 HTTPStatusFromCode), §1.4
HTTP_STATUS = {0: 200, 1: 408, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}
CODE_NAMES = {
    0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded", 5: "NotFound", 6: "AlreadyExists",
    7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition", 10: "Aborted", 11: "OutOfRange",
    12: "Unimplemented", 13: "Internal", 14: "Unavailable", 15: "DataLoss", 16: "Unauthenticated",
}

# Enums in proto order (value 0 first: jsonpb omits it).
FS_TYPES = ["FS_TYPE_NONE", "FS_TYPE_BTRFS", "FS_TYPE_EXT4", "FS_TYPE_FUSE", "FS_TYPE_NFS", "FS_TYPE_VFS", "FS_TYPE_XFS", "FS_TYPE_ZFS", "FS_TYPE_XFSv2"]
COS_TYPES = ["NONE", "LOW", "MEDIUM", "HIGH"]
IO_PROFILES = ["IO_PROFILE_SEQUENTIAL", "IO_PROFILE_RANDOM", "IO_PROFILE_DB", "IO_PROFILE_DB_REMOTE", "IO_PROFILE_CMS", "IO_PROFILE_SYNC_SHARED",
               "IO_PROFILE_AUTO", "IO_PROFILE_NONE", "IO_PROFILE_JOURNAL", "IO_PROFILE_AUTO_JOURNAL"]
BACKUP_STATUS = "SdkCloudBackupStatusType"
DEFAULT_STEPS = [BACKUP_STATUS + "NotStarted", BACKUP_STATUS + "Active", BACKUP_STATUS + "Done"]
BACKUP_STATUSES = [BACKUP_STATUS + s for s in ("Unknown", "NotStarted", "Done", "Aborted", "Paused", "Stopped", "Active", "Failed", "Queued", "Invalid")]

DEFAULT_CONFIG = {
    "snapshot_limit": SNAPSHOT_LIMIT,  # readonly snapshots per parent volume
    "limit_counts_clones": False,  # undocumented upstream (§5.2); off by default
    "restore_attached": "refuse",  # in-place restore of an attached volume: refuse | allow
    "delete_attached": "allow",  # delete of an attached volume: allow | refuse (optional fault, §6)
    "cloudsnap_steps": list(DEFAULT_STEPS),  # status each poll reports, in order; the last one sticks
    "usage_bytes": 33964032,  # reported usage of a new volume (capped at its size)
}


class SdkError(Exception):
    """A gRPC status as the SDK server returns it."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return HTTP_STATUS.get(self.code, 500)


class Msg(dict):
    """A message-typed field: emitted even when empty (jsonpb writes a non-nil
    empty message as {}), unlike maps, lists and scalars."""


def clean(d):
    """Drop the fields jsonpb (EmitDefaults=false) leaves out: None, "", 0, False,
    empty lists and maps; Msg values stay (cleaned inside)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, Msg):
            out[k] = Msg(clean(v))
        elif isinstance(v, dict):
            if v:
                out[k] = {kk: (clean(vv) if isinstance(vv, dict) else vv) for kk, vv in v.items()}
        elif isinstance(v, list):
            if v:
                out[k] = [clean(x) if isinstance(x, dict) else x for x in v]
        elif v is None or v is False or v == "" or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0):
            continue
        else:
            out[k] = v
    return out


def timestamp(t):
    """google.protobuf.Timestamp in jsonpb: RFC 3339, UTC, 0/3/6/9 fraction digits."""
    if not t:
        return None
    secs = int(t)
    nanos = int(round((t - secs) * 1e9))
    if nanos >= 1_000_000_000:
        secs, nanos = secs + 1, nanos - 1_000_000_000
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if nanos == 0:
        return base + "Z"
    frac = "%09d" % nanos
    for _ in range(2):
        if frac.endswith("000"):
            frac = frac[:-3]
    return f"{base}.{frac}Z"


def enum_value(value, names, field):
    """An enum from JSON input (name or number) -> its name; SdkError(3) otherwise."""
    if value is None or value == "":
        return names[0]
    if isinstance(value, bool):
        raise SdkError(3, f"json: cannot unmarshal bool into Go value of type for field {field}")
    if isinstance(value, int):
        if 0 <= value < len(names):
            return names[value]
        return names[0]
    if isinstance(value, str) and value in names:
        return value
    raise SdkError(3, f"unknown value {value!r} for enum {field}")


def int64_value(value, field, default=0):
    """int64/uint64 from jsonpb input: a number or a decimal string."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise SdkError(3, f"json: cannot unmarshal bool into Go value of type int64 (field {field})")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise SdkError(3, f'json: invalid use of ,string struct tag, trying to unmarshal "{value}" into int64 (field {field})')


# -- storage class parameters -> spec -----------------------------------------------------

IO_PROFILE_PARAM = {p[len("IO_PROFILE_"):].lower(): p for p in IO_PROFILES}


def spec_from_parameters(params, size):
    """A volume spec from StorageClass parameters (repl, fs, io_profile,
    priority_io, shared, sharedv4, secure, sticky)."""
    p = {str(k): str(v) for k, v in (params or {}).items()}
    spec = new_spec(size)
    try:
        spec["ha_level"] = max(1, min(3, int(p.get("repl", "1"))))
    except ValueError:
        pass
    fs = p.get("fs") or p.get("csi.storage.k8s.io/fstype")
    if fs:
        spec["format"] = {"ext4": "FS_TYPE_EXT4", "xfs": "FS_TYPE_XFS", "none": "FS_TYPE_NONE"}.get(fs.lower(), "FS_TYPE_EXT4")
    if p.get("io_profile"):
        spec["io_profile"] = IO_PROFILE_PARAM.get(p["io_profile"].lower(), "IO_PROFILE_AUTO")
    if p.get("priority_io"):
        spec["cos"] = {"high": "HIGH", "medium": "MEDIUM", "low": "LOW"}.get(p["priority_io"].lower(), "LOW")
    for key, field in (("shared", "shared"), ("sharedv4", "sharedv4"), ("secure", "encrypted"), ("sticky", "sticky")):
        if p.get(key, "").lower() == "true":
            spec[field] = True
    return spec


def new_spec(size):
    return {
        "size": int(size),
        "ha_level": 1,
        "format": "FS_TYPE_EXT4",
        "block_size": 4096,
        "cos": "LOW",
        "io_profile": "IO_PROFILE_AUTO",
        "shared": False,
        "sharedv4": False,
        "encrypted": False,
        "sticky": False,
        "snapshot_schedule": "",
        "owner": "",
    }


def spec_from_request(req_spec):
    """A volume spec from an SDK VolumeSpec (jsonpb input, snake or camel keys)."""
    s = req_spec or {}
    g = lambda k: pick(s, k)  # noqa: E731
    spec = new_spec(int64_value(g("size"), "spec.size"))
    spec["ha_level"] = int64_value(g("ha_level"), "spec.ha_level", 1) or 1
    spec["format"] = enum_value(g("format"), FS_TYPES, "api.FSType") if g("format") not in (None, "") else "FS_TYPE_EXT4"
    spec["block_size"] = int64_value(g("block_size"), "spec.block_size", 4096) or 4096
    spec["cos"] = enum_value(g("cos"), COS_TYPES, "api.CosType") if g("cos") not in (None, "") else "LOW"
    spec["io_profile"] = enum_value(g("io_profile"), IO_PROFILES, "api.IoProfile") if g("io_profile") not in (None, "") else "IO_PROFILE_AUTO"
    for f in ("shared", "sharedv4", "encrypted", "sticky"):
        v = g(f)
        if v is not None and not isinstance(v, bool):
            raise SdkError(3, f"json: cannot unmarshal {type(v).__name__} into Go value of type bool (field spec.{f})")
        spec[f] = bool(v)
    sched = g("snapshot_schedule")
    spec["snapshot_schedule"] = sched if isinstance(sched, str) else ""
    return spec


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def pick(obj, name, default=None):
    """A request field by its proto name or its JSON (lowerCamel) name, as jsonpb
    accepts both."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    return obj.get(camel(name), default)


# -- the state -------------------------------------------------------------------------


class State:
    def __init__(self, lock=None, nodes=None):
        self.lock = lock or threading.RLock()
        self._nodes = nodes or (lambda: [{"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "ferry-node-1.px")), "name": "ferry-node-1", "ip": "10.0.0.10"}])
        self.cluster_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, "ferry-px-cluster"))
        self.reset()

    def reset(self):
        with self.lock:
            self.config = copy.deepcopy(DEFAULT_CONFIG)
            self.volumes = {}  # id -> record (insertion order = creation order)
            self.credentials = {}
            self.tasks = {}  # cloud backup/restore task id -> record
            self.backups = {}  # cloud backup id -> record (completed backups in the "cloud")
            self.forced = []  # one-shot failures queued by faults: ("snapshot_limit"|"cloudsnap_failed", message)
            self._seq = itertools.count(1)
            cred = str(uuid.uuid5(uuid.NAMESPACE_DNS, "ferry-px-credential"))
            self.credentials[cred] = {
                "credential_id": cred,
                "name": "ferry-s3",
                "bucket": "ferry-cloudsnaps",
                "aws_credential": {"access_key": "AKIDFERRYTEST", "endpoint": "s3.eu-west-1.amazonaws.com", "region": "eu-west-1"},
            }

    def configure(self, body):
        with self.lock:
            for k, v in body.items():
                if k not in DEFAULT_CONFIG:
                    raise ValueError(f"unknown config key {k!r}; keys: {', '.join(sorted(DEFAULT_CONFIG))}")
                want = type(DEFAULT_CONFIG[k])
                if want is int and (isinstance(v, bool) or not isinstance(v, int)):
                    raise ValueError(f"{k} must be an integer")
                if want is bool and not isinstance(v, bool):
                    raise ValueError(f"{k} must be true or false")
                if want is list:
                    if not isinstance(v, list) or not v or any(s not in BACKUP_STATUSES for s in v):
                        raise ValueError(f"{k} must be a non-empty list of {', '.join(BACKUP_STATUSES)}")
                if k == "restore_attached" and v not in ("refuse", "allow"):
                    raise ValueError("restore_attached must be refuse or allow")
                if k == "delete_attached" and v not in ("refuse", "allow"):
                    raise ValueError("delete_attached must be refuse or allow")
                self.config[k] = copy.deepcopy(v)
            return dict(self.config)

    # -- nodes ---------------------------------------------------------------------------

    def nodes(self):
        return self._nodes()

    def node(self, key):
        """A node by id, name or IP; the first node for None."""
        nodes = self.nodes()
        if key is None:
            return nodes[0] if nodes else None
        for n in nodes:
            if key in (n["id"], n["name"], n["ip"]):
                return n
        return None

    # -- lookup --------------------------------------------------------------------------

    def _new_id(self):
        while True:
            vid = str(random.randrange(10**17, 10**18))
            if vid not in self.volumes:
                return vid

    def get(self, vid):
        return self.volumes.get(str(vid)) if vid is not None else None

    def by_name(self, name):
        for v in self.volumes.values():
            if v["name"] == name:
                return v
        return None

    def resolve(self, key):
        """A volume by id, else by name (util.VolumeFromName)."""
        return self.get(key) or self.by_name(key)

    def matching(self, name=None, labels=None, owner=None):
        out = []
        for v in self.volumes.values():
            if name and v["name"] != name:
                continue
            if labels and any(v["labels"].get(k) != val for k, val in labels.items()):
                continue
            out.append(v)
        return out

    def snapshots_of(self, parent_id=None, labels=None):
        """Volumes with a parent (snapshots and clones, as SnapEnumerate does)."""
        return [v for v in self.volumes.values()
                if v["parent"] and (not parent_id or v["parent"] == parent_id)
                and (not labels or all(v["labels"].get(k) == val for k, val in labels.items()))]

    # -- create ----------------------------------------------------------------------------

    def _record(self, name, spec, labels, parent="", readonly=False, owner=""):
        node = self.node(None)
        v = {
            "id": self._new_id(),
            "name": name,
            "labels": dict(labels or {}),
            "spec": spec,
            "parent": parent,
            "readonly": readonly,
            "ctime": time.time(),
            "usage": min(self.config["usage_bytes"], spec["size"]) if spec["size"] else 0,
            "state": "DETACHED",
            "attached_on": "",
            "node_id": "",
            "attach_path": [],
            "device_path": "",
            "attach_time": None,
            "detach_time": None,
            "consumers": [],  # [{"name", "namespace", "node"}] pods using it
            "manual": False,  # attached through /_ferry/portworx/attach
            "replica_nodes": [node["id"]] if node else [],
            "restored_from": None,
            "seq": next(self._seq),
        }
        if owner:
            v["spec"]["owner"] = owner
        self.volumes[v["id"]] = v
        return v

    def create(self, name, spec, labels=None, owner="", parent=""):
        """SDK Create (volume_ops.go create): idempotent by name."""
        if not name:
            raise SdkError(3, "Must supply a unique name")
        if spec is None:
            raise SdkError(3, "Must supply spec object")
        existing = self.by_name(name)
        if existing is not None:
            if existing["spec"]["size"] != spec["size"]:
                raise SdkError(6, f"Existing volume has a size of {existing['spec']['size']} which differs from requested size of {spec['size']}")
            if existing["spec"]["shared"] != spec["shared"]:
                raise SdkError(6, f"Existing volume has shared={str(existing['spec']['shared']).lower()} while request is asking for shared={str(spec['shared']).lower()}")
            if existing["parent"] != parent:
                raise SdkError(6, "Existing volume has conflicting parent value")
            return existing
        return self._record(name, spec, labels, parent=parent, owner=owner)

    def clone(self, name, parent_id, additional_labels=None, owner=""):
        """SDK Clone: a writable snapshot of parent_id, idempotent by name."""
        if not name:
            raise SdkError(3, "Must supply a uniqe name")
        if not parent_id:
            raise SdkError(3, "Must parent volume id")
        parent = self.resolve(parent_id)
        if parent is None:
            raise SdkError(5, f"unable to get parent volume information: Volume with name or id {parent_id} not found")
        existing = self.by_name(name)
        if existing is not None:
            if existing["parent"] != parent["id"]:
                raise SdkError(6, "Existing volume has conflicting parent value")
            if existing["spec"]["size"] != parent["spec"]["size"]:
                raise SdkError(6, f"Existing volume has a size of {existing['spec']['size']} which differs from requested size of {parent['spec']['size']}")
            return existing
        if self.config["limit_counts_clones"]:
            self._check_limit(parent, "Failed to create volume")
        labels = {k: v for k, v in parent["labels"].items() if k not in ("pvc", "namespace")}
        labels.update(additional_labels or {})
        return self._derive(parent, name, labels, readonly=False, owner=owner, spec_owner=owner or "")

    def _derive(self, parent, name, labels, readonly, owner, spec_owner):
        """A new volume from `parent` (snapshot or clone): its spec, owned by
        spec_owner, and its usage."""
        spec = copy.deepcopy(parent["spec"])
        spec["owner"] = spec_owner
        v = self._record(name, spec, labels, parent=parent["id"], readonly=readonly, owner=owner)
        v["usage"] = parent["usage"]
        return v

    def _check_limit(self, parent, prefix):
        forced = self._take_forced("snapshot_limit")
        limit = self.config["snapshot_limit"]
        count = sum(1 for v in self.volumes.values() if v["parent"] == parent["id"] and (v["readonly"] or self.config["limit_counts_clones"]))
        if forced is not None or count >= limit:
            raise SdkError(13, f"{prefix}: volume {parent['id']} ({parent['name']}) has reached the maximum number of snapshots ({limit}); "
                               "delete old snapshots before creating new ones")

    def _take_forced(self, kind):
        for i, (k, msg) in enumerate(self.forced):
            if k == kind:
                del self.forced[i]
                return msg or ""
        return None

    def snapshot_create(self, volume_id, name, labels=None, owner=""):
        """SDK SnapshotCreate: readonly snapshot; NOT idempotent (duplicate name -> 500)."""
        if not volume_id:
            raise SdkError(3, "Must supply volume id")
        if not name:
            raise SdkError(3, "Must supply a name")
        parent = self.get(volume_id)
        if parent is None:
            raise SdkError(5, f"Id {volume_id} not found")
        if self.by_name(name) is not None:
            raise SdkError(13, f"Failed to create snapshot: Volume with name {name} already exists")
        self._check_limit(parent, "Failed to create snapshot")
        return self._derive(parent, name, labels, readonly=True, owner=owner, spec_owner=owner or parent["spec"].get("owner", ""))

    def snapshot_for(self, parent_id, name, labels):
        """Create, or reuse a same-named snapshot of the same parent (what STORK
        and the CSI driver do on a retry)."""
        existing = self.by_name(name)
        if existing is not None and existing["parent"] == parent_id and existing["readonly"]:
            return existing
        return self.snapshot_create(parent_id, name, labels)

    def clone_for(self, parent_id, name, labels):
        """A clone for a PVC restored from a snapshot: labels pvc/namespace of the new claim."""
        v = self.clone(name, parent_id)
        v["labels"].update(labels)
        return v

    # -- changes ---------------------------------------------------------------------------

    def delete(self, vid):
        v = self.get(vid)
        if v is None:
            return False  # not found -> 200 {} (idempotent)
        if v["state"] == "ATTACHED" and self.config["delete_attached"] == "refuse":
            raise SdkError(13, f"Failed to delete volume {vid}: volume is attached on {v['attached_on']}; detach it first")
        del self.volumes[v["id"]]
        return True

    def update(self, vid, labels=None, spec=None):
        v = self.get(vid)
        if v is None:
            raise SdkError(5, f"Volume id {vid} not found")
        if spec:
            size = pick(spec, "size")
            if size not in (None, ""):
                size = int64_value(size, "spec.size")
                if size < v["spec"]["size"]:
                    raise SdkError(13, f"Failed to update volume: volume size {size} is smaller than the current size {v['spec']['size']}; volumes cannot shrink")
                v["spec"]["size"] = size
            ha = pick(spec, "ha_level")
            if ha not in (None, "", 0, "0"):
                ha = int64_value(ha, "spec.ha_level")
                if not 1 <= ha <= 3:
                    raise SdkError(13, f"Failed to update volume: invalid ha_level {ha}: must be 1, 2 or 3")
                v["spec"]["ha_level"] = ha
            for f in ("shared", "sharedv4", "sticky"):
                val = pick(spec, f)
                if isinstance(val, bool):
                    v["spec"][f] = val
            sched = pick(spec, "snapshot_schedule")
            if isinstance(sched, str) and sched:
                v["spec"]["snapshot_schedule"] = sched
        for k, val in (labels or {}).items():
            if val == "":
                v["labels"].pop(k, None)
            else:
                v["labels"][k] = val
        return v

    def restore(self, volume_id, snapshot_id):
        """SDK SnapshotRestore (in place)."""
        if not volume_id:
            raise SdkError(3, "Must supply volume id")
        if not snapshot_id:
            raise SdkError(3, "Must supply snapshot id")
        v = self.get(volume_id)
        if v is None:
            raise SdkError(5, f"Volume id {volume_id} not found")
        s = self.get(snapshot_id)
        if s is None:
            raise SdkError(5, f"Volume id {snapshot_id} not found")
        if s["parent"] != v["id"]:
            raise SdkError(13, f"Failed to restore volume {volume_id} to snapshot {snapshot_id}: snapshot {snapshot_id} is not a snapshot of volume {volume_id}")
        if v["state"] == "ATTACHED" and self.config["restore_attached"] == "refuse":
            raise SdkError(13, f"Failed to restore volume {volume_id} to snapshot {snapshot_id}: volume {volume_id} is attached on {v['attached_on']}; "
                               "make sure the volume is detached in order to restore from the snapshot")
        v["restored_from"] = s["id"]
        v["usage"] = s["usage"]
        return v

    def attach(self, vid, node=None, consumer=None, manual=False):
        v = self.get(vid)
        if v is None:
            raise SdkError(5, f"Volume id {vid} not found")
        n = self.node(node) or self.node(None)
        if v["state"] != "ATTACHED":
            v["state"] = "ATTACHED"
            v["attach_time"] = time.time()
            v["device_path"] = f"/dev/pxd/pxd{v['id']}"
        v["attached_on"] = n["ip"] if n else ""
        v["node_id"] = n["id"] if n else ""
        v["manual"] = v["manual"] or manual
        if consumer and consumer not in v["consumers"]:
            v["consumers"].append(consumer)
        v["attach_path"] = sorted({c["path"] for c in v["consumers"] if c.get("path")}) or ([f"/var/lib/osd/mounts/{v['name']}"] if v["manual"] else [])
        return v

    def detach(self, vid, consumer=None, manual=False):
        v = self.get(vid)
        if v is None:
            return None
        if consumer is not None:
            v["consumers"] = [c for c in v["consumers"] if (c["namespace"], c["name"]) != (consumer["namespace"], consumer["name"])]
        else:
            v["consumers"] = []
        if manual:
            v["manual"] = False
        if not v["consumers"] and not v["manual"] and v["state"] == "ATTACHED":
            v["state"] = "DETACHED"
            v["attached_on"] = ""
            v["node_id"] = ""
            v["device_path"] = ""
            v["attach_path"] = []
            v["detach_time"] = time.time()
        elif v["consumers"]:
            v["attach_path"] = sorted({c["path"] for c in v["consumers"] if c.get("path")})
        return v

    # -- credentials -------------------------------------------------------------------------

    def credential(self, cid):
        if not cid:
            if not self.credentials:
                raise SdkError(9, "No credential provided and no default credential configured")
            return next(iter(self.credentials.values()))
        c = self.credentials.get(cid)
        if c is None:
            for c2 in self.credentials.values():
                if c2["name"] == cid:
                    return c2
            raise SdkError(5, f"Credential id {cid} not found")
        return c

    def credential_create(self, req):
        name = pick(req, "name") or ""
        if not name:
            raise SdkError(3, "Must supply a name")
        aws = pick(req, "aws_credential")
        if not isinstance(aws, dict) and not any(pick(req, k) for k in ("azure_credential", "google_credential", "nfs_credential")):
            raise SdkError(3, "Unknown credential type")
        for c in self.credentials.values():
            if c["name"] == name:
                raise SdkError(6, f"Credential with name {name} already exists")
        cid = str(uuid.uuid4())
        rec = {"credential_id": cid, "name": name, "bucket": pick(req, "bucket") or ""}
        if isinstance(aws, dict):
            rec["aws_credential"] = {k: pick(aws, k) for k in ("access_key", "endpoint", "region", "disable_ssl", "disable_path_style") if pick(aws, k) is not None}
        self.credentials[cid] = rec
        return rec

    # -- cloud backups -------------------------------------------------------------------------

    def backup_create(self, volume_id, credential_id="", task_id="", labels=None, full=False):
        if not volume_id:
            raise SdkError(3, "Must supply volume id")
        v = self.get(volume_id)
        if v is None:
            raise SdkError(5, f"Volume id {volume_id} not found")
        cred = self.credential(credential_id)
        task_id = task_id or str(uuid.uuid4())
        if task_id in self.tasks:
            raise SdkError(6, f"Backup with task id {task_id} already exists")
        fail = self._take_forced("cloudsnap_failed")
        backup_id = f"{self.cluster_id}/{v['id']}-{uuid.uuid4()}"
        self.tasks[task_id] = {
            "task_id": task_id, "op": "SdkCloudBackupOpTypeBackupOp", "volume_id": v["id"], "volume_name": v["name"],
            "backup_id": backup_id, "credential_id": cred["credential_id"], "polls": 0, "start": time.time(), "completed": None,
            "bytes_total": v["usage"], "labels": dict(labels or {}), "fail": fail, "spec": copy.deepcopy(v["spec"]),
            "volume_labels": dict(v["labels"]), "full": bool(full), "restore_volume": None,
        }
        return task_id

    def _task_status(self, t):
        steps = self.config["cloudsnap_steps"]
        status = steps[min(t["polls"], len(steps) - 1)]
        if t["fail"] is not None and status == BACKUP_STATUS + "Done":
            status = BACKUP_STATUS + "Failed"
        return status

    def advance(self, t):
        """Report a task's status and move it one step on (a status poll)."""
        status = self._task_status(t)
        t["polls"] += 1
        if status in (BACKUP_STATUS + "Done", BACKUP_STATUS + "Failed") and t["completed"] is None:
            t["completed"] = time.time()
            if status == BACKUP_STATUS + "Done" and t["op"] == "SdkCloudBackupOpTypeBackupOp":
                self.backups[t["backup_id"]] = {
                    "id": t["backup_id"], "src_volume_id": t["volume_id"], "src_volume_name": t["volume_name"],
                    "timestamp": t["completed"], "metadata": dict(t["labels"]), "credential_id": t["credential_id"],
                    "spec": t["spec"], "volume_labels": t["volume_labels"], "usage": t["bytes_total"],
                }
        return status, t

    def task_view(self, t, status):
        done = status == BACKUP_STATUS + "Done"
        active = status == BACKUP_STATUS + "Active"
        total = t["bytes_total"]
        out = {
            "backup_id": t["backup_id"],
            "optype": t["op"],
            "status": status,
            "bytes_done": str(total if done else total // 2 if active else 0),
            "bytes_total": str(total),
            "eta_seconds": "0" if done else "5",
            "start_time": timestamp(t["start"]),
            "completed_time": timestamp(t["completed"]) if t["completed"] else None,
            "node_id": (self.node(None) or {}).get("id", ""),
            "src_volume_id": t["restore_volume"] or t["volume_id"],
            "info": [t["fail"] or "cloud backup failed: injected failure"] if status == BACKUP_STATUS + "Failed" else [],
            "credential_id": t["credential_id"],
        }
        return clean(out)

    def backup_status(self, task_id="", volume_id=""):
        if task_id:
            t = self.tasks.get(task_id)
            if t is None:
                raise SdkError(14, "No Backup status found")
            tasks = [t]
        else:
            tasks = [t for t in self.tasks.values() if not volume_id or volume_id == (t["restore_volume"] or t["volume_id"])]
        out = {}
        for t in tasks:
            status, _ = self.advance(t)
            out[t["task_id"]] = self.task_view(t, status)
        return out

    def backup_restore(self, backup_id, name="", credential_id="", task_id=""):
        if not backup_id:
            raise SdkError(3, "Must supply a backup id")
        b = self.backups.get(backup_id)
        if b is None:
            raise SdkError(5, f"Backup {backup_id} not found")
        if credential_id:
            self.credential(credential_id)
        task_id = task_id or str(uuid.uuid4())
        if task_id in self.tasks:
            raise SdkError(6, f"Restore with task id {task_id} already exists")
        name = name or f"restore-{b['src_volume_id']}-{next(self._seq)}"
        if self.by_name(name) is not None:
            raise SdkError(6, f"Volume with name {name} already exists")
        spec = copy.deepcopy(b["spec"])
        spec["ha_level"] = 1  # "restore creates a volume with ha_level 1"
        v = self._record(name, spec, dict(b["volume_labels"]))
        v["usage"] = b["usage"]
        v["restored_from"] = backup_id
        self.tasks[task_id] = {
            "task_id": task_id, "op": "SdkCloudBackupOpTypeRestoreOp", "volume_id": b["src_volume_id"], "volume_name": b["src_volume_name"],
            "backup_id": backup_id, "credential_id": b["credential_id"], "polls": 0, "start": time.time(), "completed": None,
            "bytes_total": b["usage"], "labels": {}, "fail": None, "spec": spec, "volume_labels": {}, "full": True,
            "restore_volume": v["id"],
        }
        return v["id"], task_id

    def backup_enumerate(self, src_volume_id="", all_=False, cloud_backup_id=""):
        out = []
        for b in self.backups.values():
            if src_volume_id and b["src_volume_id"] != src_volume_id:
                continue
            if cloud_backup_id and b["id"] != cloud_backup_id:
                continue
            out.append(clean({
                "id": b["id"], "src_volume_id": b["src_volume_id"], "src_volume_name": b["src_volume_name"],
                "timestamp": timestamp(b["timestamp"]), "metadata": b["metadata"], "status": BACKUP_STATUS + "Done",
                "namespace": b["volume_labels"].get("namespace", ""), "cluster_type": "SdkCloudBackupClusterCurrent",
            }))
        return out

    # -- encodings -------------------------------------------------------------------------

    def sdk_volume(self, v):
        s = v["spec"]
        spec = {
            "ephemeral": False,
            "size": str(s["size"]),
            "format": s["format"] if s["format"] != FS_TYPES[0] else None,
            "block_size": str(s["block_size"]),
            "ha_level": str(s["ha_level"]),
            "cos": s["cos"] if s["cos"] != COS_TYPES[0] else None,
            "io_profile": s["io_profile"] if s["io_profile"] != IO_PROFILES[0] else None,
            "shared": s["shared"],
            "sharedv4": s["sharedv4"],
            "encrypted": s["encrypted"],
            "sticky": s["sticky"],
            "snapshot_schedule": s["snapshot_schedule"],
            "replica_set": Msg(nodes=list(v["replica_nodes"])),
        }
        if s.get("owner"):
            spec["ownership"] = Msg(owner=s["owner"])
        out = {
            "id": v["id"],
            "source": Msg(parent=v["parent"]),
            "readonly": v["readonly"],
            "locator": Msg(name=v["name"], volume_labels=dict(v["labels"])),
            "ctime": timestamp(v["ctime"]),
            "spec": Msg(spec),
            "usage": str(v["usage"]),
            "format": s["format"] if s["format"] != FS_TYPES[0] else None,
            "status": "VOLUME_STATUS_UP",
            "state": "VOLUME_STATE_" + v["state"],
            "attached_on": v["attached_on"],
            "device_path": v["device_path"],
            "attach_path": list(v["attach_path"]),
            "replica_sets": [Msg(nodes=list(v["replica_nodes"]))],
            "attach_time": timestamp(v["attach_time"]),
            "detach_time": timestamp(v["detach_time"]),
            "volume_consumers": [Msg(name=c["name"], namespace=c["namespace"], type="Pod", node_id=c.get("node_id", ""),
                                     owner_name=c.get("owner_name", ""), owner_type=c.get("owner_type", "")) for c in v["consumers"]],
        }
        return Msg(clean(out))

    def pxctl_volume(self, v):
        s = v["spec"]
        short = lambda name, prefix: name[len(prefix):].lower() if name.startswith(prefix) else name.lower()  # noqa: E731
        fmt = short(s["format"], "FS_TYPE_")
        return {
            "id": v["id"],
            "source": {"parent": v["parent"], "seed": ""},
            "readonly": v["readonly"],
            "locator": {"name": v["name"], "volume_labels": dict(v["labels"])},
            "ctime": timestamp(v["ctime"]),
            "spec": {
                "ephemeral": False,
                "size": str(s["size"]),
                "format": fmt,
                "block_size": str(s["block_size"]),
                "ha_level": str(s["ha_level"]),
                "cos": s["cos"].lower(),
                "io_profile": short(s["io_profile"], "IO_PROFILE_"),
                "dedupe": False,
                "snapshot_interval": 0,
                "volume_labels": dict(v["labels"]),
                "shared": s["shared"],
                "replica_set": {"nodes": list(v["replica_nodes"])},
                "aggregation_level": 1,
                "encrypted": s["encrypted"],
                "passphrase": "",
                "snapshot_schedule": s["snapshot_schedule"],
                "scale": 0,
                "sticky": s["sticky"],
                "group_enforced": False,
                "compressed": False,
                "cascaded": False,
                "journal": False,
                "sharedv4": s["sharedv4"],
                "queue_depth": 128,
                "nodiscard": False,
                "ownership": {"owner": s.get("owner") or ""},
            },
            "usage": str(v["usage"]),
            "last_scan": timestamp(v["ctime"]),
            "format": fmt,
            "status": "up",
            "state": v["state"].lower(),
            "attached_on": v["attached_on"],
            "attached_state": "ATTACH_STATE_INTERNAL_SWITCH" if v["state"] == "ATTACHED" else "ATTACH_STATE_EXTERNAL",
            "device_path": v["device_path"],
            "attach_path": list(v["attach_path"]) or None,
            "attach_info": None,
            "replica_sets": [{"nodes": list(v["replica_nodes"])}],
            "runtime_state": [{"runtime_state": {"ID": "0", "ReadHandle": "0x0", "RuntimeState": "clean"}}],
            "error": "",
            "volume_consumers": [{"name": c["name"], "namespace": c["namespace"], "type": "Pod", "node_id": c.get("node_id", ""),
                                  "owner_name": c.get("owner_name", ""), "owner_type": c.get("owner_type", "")} for c in v["consumers"]],
            "fs_resize_required": False,
        }

    def dump(self):
        """Everything, for GET /_ferry/portworx/state."""
        return {
            "volumes": [self.sdk_volume(v) for v in self.volumes.values()],
            "credentials": list(self.credentials.values()),
            "tasks": [{k: val for k, val in t.items() if k != "spec"} for t in self.tasks.values()],
            "backups": self.backup_enumerate(),
            "config": dict(self.config),
        }
