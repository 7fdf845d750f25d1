"""resources.py: the resource types the Kubernetes double serves, and their registry.

A ResourceType is one (group, version, plural) the server answers for. The store
keys objects by `res`, "plural" for the core group and "plural.group" otherwise
(the same spelling the API server uses in messages: `deployments.apps "web" not
found`), so one res may be served in several versions (a CRD with two served
versions); built-in types here have one version each.

Built-in types are listed in BUILTIN below. Custom resources come from
CustomResourceDefinition objects: the store registers a CRD's types when the CRD is
created and drops them when it is deleted (Registry.add_crd / remove_crd). The
snapshot and STORK CRDs are seeded as CRD objects (CRDS) at every reset, so they
behave exactly like CRDs a test applies itself.

Nothing here does I/O; the Registry is guarded by the store's lock.
"""

import copy

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]

# Pod and event field selectors the real API server supports (besides metadata.*).
POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
)
EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


class ResourceType:
    """One served (group, version, plural)."""

    def __init__(
        self,
        group,
        version,
        plural,
        kind,
        namespaced=True,
        short_names=(),
        categories=(),
        subresources=None,
        crd=False,
        generation=True,
        fields=(),
        definition=None,
        singular=None,
    ):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.singular = singular or kind.lower()
        self.namespaced = namespaced
        self.short_names = list(short_names)
        self.categories = list(categories)
        # subresource name -> {"kind": K, "verbs": [...], "group"?, "version"?}
        self.subresources = dict(subresources or {})
        self.crd = crd  # custom resource: no strategic merge, PUT needs resourceVersion
        self.generation = generation  # metadata.generation kept (types with a spec)
        self.fields = tuple(fields)  # extra field-selector labels besides metadata.*
        self.definition = definition  # swagger definition name (built-ins), for schema checks
        self.list_kind = kind + "List"

    @property
    def res(self):
        return self.plural if not self.group else f"{self.plural}.{self.group}"

    @property
    def api_version(self):
        return self.version if not self.group else f"{self.group}/{self.version}"

    @property
    def prefix(self):
        return f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"

    @property
    def has_status(self):
        return "status" in self.subresources

    def path(self, namespace=None, name=None):
        """The URL path of the collection (name None) or of one object."""
        p = self.prefix
        if self.namespaced and namespace:
            p += f"/namespaces/{namespace}"
        p += f"/{self.plural}"
        return p + f"/{name}" if name else p

    def __repr__(self):
        return f"<ResourceType {self.api_version} {self.plural}>"


def _status():
    return {"status": {"kind": None, "verbs": STATUS_VERBS}}


def _scale():
    return {"scale": {"kind": "Scale", "group": "autoscaling", "version": "v1", "verbs": STATUS_VERBS}}


def _builtin():
    core = lambda *a, **k: ResourceType("", "v1", *a, **k)  # noqa: E731
    apps = lambda *a, **k: ResourceType("apps", "v1", *a, **k)  # noqa: E731
    proxy_verbs = ["create", "delete", "get", "patch", "update"]
    return [
        core(
            "namespaces",
            "Namespace",
            namespaced=False,
            short_names=["ns"],
            subresources={**_status(), "finalize": {"kind": None, "verbs": ["update"]}},
            generation=False,
            fields=("status.phase",),
            definition="io.k8s.api.core.v1.Namespace",
        ),
        core(
            "pods",
            "Pod",
            short_names=["po"],
            categories=["all"],
            subresources={
                "attach": {"kind": "PodAttachOptions", "verbs": ["create", "get"]},
                "exec": {"kind": "PodExecOptions", "verbs": ["create", "get"]},
                "log": {"kind": None, "verbs": ["get"]},
                "proxy": {"kind": "PodProxyOptions", "verbs": proxy_verbs},
                **_status(),
            },
            fields=POD_FIELDS,
            definition="io.k8s.api.core.v1.Pod",
        ),
        core(
            "services",
            "Service",
            short_names=["svc"],
            categories=["all"],
            subresources={"proxy": {"kind": "ServiceProxyOptions", "verbs": proxy_verbs}, **_status()},
            definition="io.k8s.api.core.v1.Service",
        ),
        core(
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            short_names=["pvc"],
            subresources=_status(),
            definition="io.k8s.api.core.v1.PersistentVolumeClaim",
        ),
        core(
            "persistentvolumes",
            "PersistentVolume",
            namespaced=False,
            short_names=["pv"],
            subresources=_status(),
            definition="io.k8s.api.core.v1.PersistentVolume",
        ),
        core("configmaps", "ConfigMap", short_names=["cm"], generation=False, definition="io.k8s.api.core.v1.ConfigMap"),
        core("secrets", "Secret", generation=False, fields=("type",), definition="io.k8s.api.core.v1.Secret"),
        core("events", "Event", short_names=["ev"], generation=False, fields=EVENT_FIELDS, definition="io.k8s.api.core.v1.Event"),
        core(
            "nodes",
            "Node",
            namespaced=False,
            short_names=["no"],
            subresources={"proxy": {"kind": "NodeProxyOptions", "verbs": proxy_verbs}, **_status()},
            generation=False,
            fields=("spec.unschedulable",),
            definition="io.k8s.api.core.v1.Node",
        ),
        core("serviceaccounts", "ServiceAccount", short_names=["sa"], generation=False, definition="io.k8s.api.core.v1.ServiceAccount"),
        apps(
            "deployments",
            "Deployment",
            short_names=["deploy"],
            categories=["all"],
            subresources={**_scale(), **_status()},
            definition="io.k8s.api.apps.v1.Deployment",
        ),
        apps(
            "replicasets",
            "ReplicaSet",
            short_names=["rs"],
            categories=["all"],
            subresources={**_scale(), **_status()},
            fields=("status.replicas",),
            definition="io.k8s.api.apps.v1.ReplicaSet",
        ),
        apps(
            "statefulsets",
            "StatefulSet",
            short_names=["sts"],
            categories=["all"],
            subresources={**_scale(), **_status()},
            definition="io.k8s.api.apps.v1.StatefulSet",
        ),
        apps(
            "daemonsets",
            "DaemonSet",
            short_names=["ds"],
            categories=["all"],
            subresources=_status(),
            definition="io.k8s.api.apps.v1.DaemonSet",
        ),
        ResourceType(
            "batch",
            "v1",
            "jobs",
            "Job",
            categories=["all"],
            subresources=_status(),
            fields=("status.successful",),
            definition="io.k8s.api.batch.v1.Job",
        ),
        ResourceType(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "StorageClass",
            namespaced=False,
            short_names=["sc"],
            generation=False,
            definition="io.k8s.api.storage.v1.StorageClass",
        ),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=["crd", "crds"],
            categories=["api-extensions"],
            subresources=_status(),
            definition="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        ),
    ]


def crd(group, version, plural, kind, namespaced=True, short_names=(), status=True, categories=()):
    """A CustomResourceDefinition object (apiextensions.k8s.io/v1) for one version."""
    version_spec = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    if status:
        version_spec["subresources"] = {"status": {}}
    names = {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": kind + "List"}
    if short_names:
        names["shortNames"] = list(short_names)
    if categories:
        names["categories"] = list(categories)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [version_spec],
            "conversion": {"strategy": "None"},
        },
    }


# The CRDs every reset installs: CSI snapshots (kubernetes-csi/external-snapshotter
# client/config/crd), STORK's external-storage snapshots (no status subresource) and
# STORK's own group snapshots and rules (+genclient:noStatus).
CRDS = [
    crd("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot", short_names=["vs"]),
    crd("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "VolumeSnapshotClass", namespaced=False, short_names=["vsclass", "vsclasses"], status=False),
    crd("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", "VolumeSnapshotContent", namespaced=False, short_names=["vsc", "vscs"]),
    crd("volumesnapshot.external-storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot", status=False),
    crd("volumesnapshot.external-storage.k8s.io", "v1", "volumesnapshotdatas", "VolumeSnapshotData", namespaced=False, status=False),
    crd("stork.libopenstorage.org", "v1alpha1", "groupvolumesnapshots", "GroupVolumeSnapshot", status=False),
    crd("stork.libopenstorage.org", "v1alpha1", "rules", "Rule", status=False),
]

# Groups in discovery order (kubectl's RESTMapper prefers earlier groups on a tie,
# so CSI's VolumeSnapshot wins `kubectl get volumesnapshot` over STORK's).
GROUP_ORDER = ["", "apps", "batch", "storage.k8s.io", "apiextensions.k8s.io"]


class Registry:
    """Every served ResourceType: built-ins plus those of the CRDs in the store."""

    def __init__(self):
        self._builtin = _builtin()
        self._crd_types = {}  # CRD name -> [ResourceType, ...]
        self._crd_order = []  # CRD names in creation order
        self._rebuild()

    def reset(self):
        self._crd_types = {}
        self._crd_order = []
        self._rebuild()

    def _rebuild(self):
        types = list(self._builtin)
        for name in self._crd_order:
            types += self._crd_types[name]
        self._by_gvr = {(t.group, t.version, t.plural): t for t in types}
        self._by_res = {}
        for t in types:
            self._by_res.setdefault(t.res, t)  # first served version is the preferred one
        groups = []
        for t in types:
            if t.group not in groups:
                groups.append(t.group)
        self._groups = sorted(groups, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER)))
        self._types = types

    # -- lookups -------------------------------------------------------------------

    def lookup(self, group, version, plural):
        return self._by_gvr.get((group, version, plural))

    def by_res(self, res):
        """The preferred ResourceType for a store key ("pods", "deployments.apps")."""
        return self._by_res.get(res)

    def by_kind(self, api_version, kind):
        group, _, version = api_version.rpartition("/")
        for t in self._types:
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None

    def groups(self):
        """[(group, [versions...])] in discovery order; the first version is preferred."""
        out = []
        for g in self._groups:
            versions = []
            for t in self._types:
                if t.group == g and t.version not in versions:
                    versions.append(t.version)
            out.append((g, versions))
        return out

    def types(self, group=None, version=None):
        return [t for t in self._types if (group is None or t.group == group) and (version is None or t.version == version)]

    # -- CRDs ----------------------------------------------------------------------

    @staticmethod
    def crd_types(obj):
        """The ResourceTypes a CRD object defines (served versions only)."""
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        out = []
        for v in spec.get("versions") or []:
            if not v.get("served", True):
                continue
            subs = {}
            if "status" in (v.get("subresources") or {}):
                subs["status"] = {"kind": None, "verbs": STATUS_VERBS}
            if "scale" in (v.get("subresources") or {}):
                subs.update(_scale())
            t = ResourceType(
                spec.get("group", ""),
                v["name"],
                names.get("plural", ""),
                names.get("kind", ""),
                namespaced=spec.get("scope") != "Cluster",
                short_names=names.get("shortNames") or (),
                categories=names.get("categories") or (),
                subresources=subs,
                crd=True,
                singular=names.get("singular") or None,
            )
            t.list_kind = names.get("listKind") or t.kind + "List"
            t.selectable = [f.get("jsonPath", "").lstrip(".") for f in v.get("selectableFields") or []]
            t.fields = tuple(x for x in t.selectable if x)
            out.append(t)
        # The storage version first: it is the preferred one.
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        out.sort(key=lambda t: 0 if t.version in storage else 1)
        return out

    def add_crd(self, obj):
        name = obj["metadata"]["name"]
        self._crd_types[name] = self.crd_types(obj)
        if name not in self._crd_order:
            self._crd_order.append(name)
        self._rebuild()

    def remove_crd(self, name):
        if name in self._crd_types:
            del self._crd_types[name]
            self._crd_order.remove(name)
            self._rebuild()


def default_crds():
    return copy.deepcopy(CRDS)
