---@meta portworx
-- Portworx for workflows: the volume behind a PVC, snapshots (application-
-- consistent with freeze/thaw), clones, PVCs restored from snapshots, group
-- and cloud snapshots — one API over three backends:
--
--   "sdk"   the OpenStorage SDK REST gateway (port 9021): endpoint from
--           opts.endpoint, PORTWORX_SDK_ENDPOINT, or the portworx-api Service
--           (label name=portworx-api, in kube-system or portworx): its cluster
--           IP inside a pod, the API server's service proxy outside (the
--           proxy strips Authorization, so only with PX-Security off).
--           Token: opts.token, PORTWORX_AUTH_TOKEN, or the px-admin-token
--           Secret (key auth-token) read through kube; re-read once on 401.
--   "kube"  CSI snapshot.storage.k8s.io/v1 VolumeSnapshots with a
--           pxd.portworx.com VolumeSnapshotClass, restored with dataSource
--           (same namespace), or STORK volumesnapshot.external-storage.k8s.io/v1
--           VolumeSnapshots restored with the snapshot.alpha.kubernetes.io/snapshot
--           annotation and stork-snapshot-sc (across namespaces).
--   "pxctl" `pxctl -j ...` through kube exec in the pod labelled name=portworx,
--           container portworx.
--
-- Errors are error objects. SDK answers keep the gRPC status: `code` is the
-- gRPC code's name as grpc-go spells it ("NotFound", "AlreadyExists",
-- "InvalidArgument", "FailedPrecondition", "PermissionDenied",
-- "Unauthenticated", "ResourceExhausted", "Internal", "Unavailable", ...),
-- `grpc_code` its number, `status` the HTTP status, `sdk_message` the SDK's
-- text, `message` "portworx: METHOD PATH: text", `op`. Conditions the module
-- detects have lower-case codes: "snapshot_limit" (64 snapshots per volume;
-- fields volume, count, limit, cause), "attached" (in-place restore of an
-- attached volume), "not_portworx" (a PVC on another driver, named),
-- "not_bound", "unsupported" (not on this backend), "freeze_failed",
-- "thaw_failed" (err.snapshot holds the snapshot taken), "failed" (a wait
-- that cannot succeed), "timeout", "no_endpoint", "no_snapshot_class",
-- "no_portworx_pod", "pxctl_failed", "decode"; kube errors and http
-- transport codes ("connect", "timeout", "tls") pass through. Bad arguments
-- raise "portworx.<fn>: ..." strings.
--
-- Deadlines: every SDK call has one (30 s an attempt, 120 s with retries);
-- waits default to client.timeout (300 s). Idempotent SDK calls (inspect,
-- enumerate, status, delete) are retried on connection errors, 429 and 5xx;
-- creates only when they never left or on 429 — snapshot and clone then
-- resolve an ambiguous failure by looking the name up.

-- luacheck: no unused args

---A volume, whatever the backend (sizes in bytes; absent values nil).
---@class portworx.Volume
---@field id string Portworx volume id (kube backend: the PV's volumeHandle)
---@field name string Portworx volume name (the PV name for CSI volumes)
---@field size? integer bytes
---@field ha_level? integer replicas
---@field state string "attached", "detached", "pending", "none", ... (lower case)
---@field status string "up", "down", "degraded", "none"
---@field attached_on? string node the volume is attached on
---@field labels table<string, string> (PVC-provisioned volumes carry pvc and namespace)
---@field parent? string the volume a snapshot or clone was taken from
---@field readonly boolean
---@field snapshot boolean read-only with a parent
---@field clone boolean writable with a parent
---@field ctime? string RFC 3339 creation time
---@field usage? integer bytes used
---@field format? string "ext4", "xfs", ...
---@field shared? boolean
---@field sharedv4? boolean
---@field encrypted? boolean
---@field pvc? {namespace: string, name: string} kube backend: the claim
---@field pv? string kube backend: the PV name

---A snapshot: a portworx.Volume (sdk, pxctl) or, on the kube backend, the
---VolumeSnapshot behind it.
---@class portworx.Snapshot: portworx.Volume
---@field namespace? string kube backend: the VolumeSnapshot's namespace
---@field ready? boolean kube backend: ready to use
---@field api? "csi"|"stork" kube backend
---@field object? {api_version: string, kind: string, namespace: string, name: string} kube backend: the VolumeSnapshot

---A PVC restored from a snapshot (Bound).
---@class portworx.Restore
---@field namespace string
---@field name string the PVC
---@field pv string the PersistentVolume it is bound to
---@field volume string the Portworx volume id behind it
---@field object table the PVC as last seen (Bound)
---@field pvc {namespace: string, name: string}
---@field restored true delete() deletes the PVC and then its volume

---A command run through kube exec: {pod, argv, namespace?, container?, timeout?}.
---@class portworx.Exec
---@field pod string|table pod name, {name, namespace} or a Pod object
---@field argv string[] never through a shell unless argv starts one
---@field namespace? string default: the volume's PVC namespace, else the kube client's
---@field container? string default as for kube exec
---@field timeout? number seconds (default 60)

---@class portworx.ConnectOpts
---@field backend? "sdk"|"kube"|"pxctl" default "sdk" when an endpoint is known or no kube is given, else "kube"
---@field kube? kube.Client needed by kube and pxctl, and for PVC lookups, restore_pvc, freeze/thaw, group snapshots and the token Secret
---@field endpoint? string SDK gateway "http://host:9021" (default PORTWORX_SDK_ENDPOINT, then the portworx-api Service)
---@field token? string bearer token (default PORTWORX_AUTH_TOKEN, then the px-admin-token Secret)
---@field token_secret? {name: string, key: string, namespace?: string} default {name = "px-admin-token", key = "auth-token"} in Portworx's namespace
---@field namespace? string Portworx's namespace (its Service, Secrets and pods); default: found by label, else kube-system then portworx
---@field snapshot_api? "csi"|"stork" kube backend (default "csi")
---@field snapshot_class? string kube backend, CSI: the VolumeSnapshotClass (default: the pxd.portworx.com default class, else any)
---@field pxctl? string pxctl backend: the binary in the pod (default /opt/pwx/bin/pxctl)
---@field timeout? number seconds waits take by default (300)
---@field request_timeout? number seconds one SDK request attempt may take (30)
---@field ca_file? string PEM bundle for an https endpoint
---@field insecure? boolean skip TLS verification of an https endpoint

---@class portworx.SnapshotArgs
---@field volume string|portworx.Volume|{namespace: string, pvc: string} id, name, volume table or PVC
---@field name string idempotent by name and parent: a rerun returns the existing snapshot
---@field labels? table<string, string> (kube backend: the VolumeSnapshot's labels)
---@field freeze? portworx.Exec run before the snapshot; a non-zero exit raises "freeze_failed"
---@field thaw? portworx.Exec run after, always — also when the freeze or snapshot fails or times out
---@field timeout? number seconds for the snapshot (default client.timeout)
---@field restore_namespaces? string[] kube backend, STORK: namespaces allowed to restore it

---@class portworx.RestorePvcArgs
---@field snapshot string|portworx.Snapshot
---@field namespace string of the new PVC (CSI: the snapshot's own)
---@field name string of the new PVC; idempotent: an existing PVC from the same snapshot is waited for
---@field storage_class? string default: CSI the source PVC's, STORK stork-snapshot-sc, sdk/pxctl "" (static PV)
---@field size? integer|string bytes or "10Gi" (default: the snapshot's size, at least the source PVC's)
---@field labels? table<string, string> on the PVC
---@field timeout? number seconds to wait for Bound

---@class portworx.CloudStatus
---@field task string
---@field status string "not_started", "queued", "active", "done", "failed", "aborted", "stopped", ...
---@field optype? "backup"|"restore"
---@field backup_id? string the cloud backup's id (restore it with cloudsnap_restore)
---@field volume? string source volume (restore: the new volume)
---@field bytes_done integer
---@field bytes_total integer
---@field eta_seconds? integer
---@field start_time? string
---@field completed_time? string
---@field info string[]

---A connection to Portworx through one backend.
---@class portworx.Client
---@field backend "sdk"|"kube"|"pxctl"
---@field snapshot_api "csi"|"stork"
---@field kube? kube.Client
---@field timeout number seconds waits take by default
---@field poll_interval number seconds between cloud snapshot polls
local Client = {}

local portworx = {}

---The client class.
portworx.Client = Client
---Portworx's implementation limit of snapshots per volume.
portworx.SNAPSHOT_LIMIT = 64

---A client. Makes no request until the first call.
---@param opts? portworx.ConnectOpts
---@return portworx.Client
function portworx.connect(opts) end

---The Portworx volume behind a PVC: the bound PV's CSI volumeHandle
---(pxd.portworx.com), in-tree portworxVolume.volumeID, or the PV name as the
---volume name. Raises "not_portworx" naming the PV's driver or source,
---"not_bound" for a claim without a volume, kube NotFound for no PVC.
---@param namespace string
---@param pvc string
---@return portworx.Volume
function Client:volume_for_pvc(namespace, pvc) end

---Volumes with this exact name and/or carrying these labels (all when
---neither); snapshots and clones included (kube backend: Portworx PVs).
---@param args? {name?: string, labels?: table<string, string>}
---@return portworx.Volume[]
function Client:volumes(args) end

---A volume by id or name (deep inspect), or nil and a NotFound error.
---@param id_or_name string|portworx.Volume
---@return portworx.Volume?
---@return table? err
function Client:volume(id_or_name) end

---Takes a snapshot, idempotent by name and parent (SDK: the duplicate-name
---failure becomes the existing snapshot; another parent is AlreadyExists).
---Waits until it is ready. With freeze/thaw: freeze, snapshot, then thaw
---always. The 64th-snapshot refusal raises "snapshot_limit", suggesting prune.
---@param args portworx.SnapshotArgs
---@return portworx.Snapshot
function Client:snapshot(args) end

---True snapshots (not clones), of one volume or all, carrying labels, oldest first.
---@param args? {volume?: string|portworx.Volume|{namespace: string, pvc: string}, labels?: table<string, string>}
---@return portworx.Snapshot[]
function Client:snapshots(args) end

---Deletes a snapshot, a clone or a restored PVC (its claim, then its
---volume); not found is success. Returns whether something was deleted. A
---volume that is neither a snapshot nor a clone is refused
---(FailedPrecondition) unless opts.force.
---@param ref string|portworx.Snapshot|portworx.Volume|portworx.Restore
---@param opts? {force?: boolean, timeout?: number}
---@return boolean
function Client:delete(ref, opts) end

---Deletes the oldest snapshots carrying labels beyond the newest `keep` of
---each volume (of args.volume only, when given).
---@param args {labels: table<string, string>, keep: integer, volume?: string|portworx.Volume}
---@return {deleted: portworx.Snapshot[], kept: portworx.Snapshot[]}
function Client:prune(args) end

---A writable volume from a snapshot, idempotent by name (SDK Clone; kube
---backend: a PVC restored from the snapshot in args.namespace or the
---snapshot's namespace).
---@param args {from: string|portworx.Snapshot, name: string, labels?: table<string, string>, namespace?: string, timeout?: number}
---@return portworx.Volume
function Client:clone(args) end

---Restores a volume in place from one of its snapshots. Refuses an attached
---volume ("attached") and a snapshot of another volume (InvalidArgument).
---kube backend: STORK VolumeSnapshotRestore only. Returns the volume.
---@param args {volume: string|portworx.Volume, snapshot: string|portworx.Snapshot, timeout?: number}
---@return portworx.Volume
function Client:restore(args) end

---A PVC whose data is the snapshot, Bound: CSI dataSource, STORK annotation,
---or (sdk, pxctl) a clone named ferry-NAMESPACE-NAME bound through a static
---PV of the same name with reclaim policy Delete.
---@param args portworx.RestorePvcArgs
---@return portworx.Restore
function Client:restore_pvc(args) end

---A STORK GroupVolumeSnapshot of the PVCs matching selector, waited until
---stage Final / status Successful (Failed raises "failed"). pre_rule and
---post_rule: a Rule name, or {selector, command | commands, container?,
---background?} to create Rule NAME-pre / NAME-post. Idempotent by name.
---@param args {namespace: string, selector: table<string, string>, name?: string, pre_rule?: string|table, post_rule?: string|table, restore_namespaces?: string[], options?: table<string, string>, labels?: table<string, string>, timeout?: number}
---@return {name: string, namespace: string, snapshots: portworx.Snapshot[], object: table}
function Client:group_snapshot(args) end

---Starts a cloud snapshot (sdk backend); returns its task id, or with
---wait = true the final status. task: an idempotency key (a rerun with the
---same task id returns it).
---@param args {volume: string|portworx.Volume|{namespace: string, pvc: string}, credential?: string, full?: boolean, labels?: table<string, string>, task?: string, wait?: boolean, timeout?: number}
---@return string|portworx.CloudStatus
function Client:cloudsnap(args) end

---The status of a cloud backup or restore task (NotFound for an unknown task).
---@param task string
---@return portworx.CloudStatus
function Client:cloudsnap_status(task) end

---Polls a cloud task until done; raises "failed" (failed, aborted, stopped)
---or "timeout".
---@param task string
---@param opts? {timeout?: number, interval?: number}
---@return portworx.CloudStatus
function Client:cloudsnap_wait(task, opts) end

---Restores a cloud backup as a new volume named name; returns {volume,
---task}, or with wait = true the new volume once the restore is done.
---@param args {backup: string, name?: string, credential?: string, task?: string, wait?: boolean, timeout?: number}
---@return {volume: string, task: string}|portworx.Volume
function Client:cloudsnap_restore(args) end

---Creates an empty volume (sdk backend); an existing volume of that name is
---returned as it is.
---@param args {name: string, size: integer|string, ha_level?: integer, labels?: table<string, string>}
---@return portworx.Volume
function Client:create_volume(args) end

return portworx
