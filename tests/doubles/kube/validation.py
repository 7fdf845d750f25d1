"""validation.py: the API server's defaulting and the validation rules the double
enforces for built-in types (a subset, chosen for what clients notice).

default(rt, obj, store, create) fills defaults in place, as the API server does on
every decode (create and update); a few only on create (Service clusterIP, PVC
StorageClass, Job selector). validate(rt, obj, old) returns a list of causes
(cause_type, field, body) for a 422 Invalid; empty when valid. `old` is the stored
object on update (immutability checks), None on create.

Only called by store.py, under its lock. No I/O.
"""

import copy
import json
import re

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)

WORKLOADS = ("deployments.apps", "replicasets.apps", "statefulsets.apps", "daemonsets.apps", "jobs.batch")


def _q(value):
    return json.dumps(value)


def _go_map(m):
    """Go's %#v of a map[string]string, as validation messages print it."""
    return "map[string]string{" + ", ".join(f"{_q(k)}:{_q(v)}" for k, v in sorted((m or {}).items())) + "}"


# -- defaults --------------------------------------------------------------------


def _default_container(c):
    if not isinstance(c, dict):
        return
    image = c.get("image") or ""
    if "imagePullPolicy" not in c:
        tag = image.rpartition("/")[2]
        c["imagePullPolicy"] = "Always" if ("@" not in image and (":" not in tag or tag.endswith(":latest"))) else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")


def _default_pod_spec(spec):
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _default_container(c)


def _default_template(spec):
    tpl = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(tpl, dict):
        tpl.setdefault("metadata", {})
        if isinstance(tpl.get("spec"), dict):
            _default_pod_spec(tpl["spec"])


def default(rt, obj, store, create):
    res = rt.res
    spec = obj.get("spec")
    if res == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        st = obj.setdefault("status", {})
        st.setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
    elif res == "pods":
        _default_pod_spec(obj.setdefault("spec", {}))
        if create:
            spec = obj["spec"]
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("serviceAccount", spec["serviceAccountName"])
            spec.setdefault("enableServiceLinks", True)
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
            spec.setdefault("priority", 0)
            obj.setdefault("status", {}).setdefault("phase", "Pending")
            obj["status"].setdefault("qosClass", "BestEffort")
    elif res == "deployments.apps" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        _default_template(spec)
    elif res == "replicasets.apps" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        _default_template(spec)
    elif res == "statefulsets.apps" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
        for t in spec.get("volumeClaimTemplates") or []:
            if isinstance(t, dict):
                t.setdefault("apiVersion", "v1")
                t.setdefault("kind", "PersistentVolumeClaim")
                if isinstance(t.get("spec"), dict):
                    t["spec"].setdefault("volumeMode", "Filesystem")
        _default_template(spec)
    elif res == "daemonsets.apps" and isinstance(spec, dict):
        spec.setdefault("revisionHistoryLimit", 10)
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        _default_template(spec)
    elif res == "jobs.batch" and isinstance(spec, dict):
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        if create and not spec.get("manualSelector"):
            uid = obj["metadata"]["uid"]
            name = obj["metadata"].get("name", "")
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tpl = spec.setdefault("template", {})
            labels = tpl.setdefault("metadata", {}).setdefault("labels", {})
            labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name, "controller-uid": uid, "job-name": name})
            obj["metadata"].setdefault("labels", {}).update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name, "controller-uid": uid, "job-name": name})
        tpl = spec.get("template")
        if isinstance(tpl, dict) and isinstance(tpl.get("spec"), dict):
            tpl["spec"].setdefault("restartPolicy", "Always")  # then rejected by validation, as upstream
        _default_template(spec)
    elif res == "services" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            if create and not spec.get("clusterIP"):
                spec["clusterIP"] = store.next_cluster_ip()
            if spec.get("clusterIP"):
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
    elif res == "persistentvolumeclaims" and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
        if create and "storageClassName" not in spec:
            default_class = _default_storage_class(store)
            if default_class:
                spec["storageClassName"] = default_class
        if create:
            obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif res == "persistentvolumes" and isinstance(spec, dict):
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        if create:
            obj.setdefault("status", {}).setdefault("phase", "Available")
    elif res == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            import base64

            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif res == "storageclasses.storage.k8s.io":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")


def _default_storage_class(store):
    for sc in store._objects.get("storageclasses.storage.k8s.io", {}).values():
        if ((sc.get("metadata") or {}).get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
            return sc["metadata"]["name"]
    return None


# -- validation ------------------------------------------------------------------


def _required(field, detail=None):
    return ("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))


class Raw(str):
    """A value printed as is in a message (Go's %#v of a struct or map)."""


def _invalid(field, value, detail):
    shown = _q(value) if isinstance(value, str) and not isinstance(value, Raw) else value
    return ("FieldValueInvalid", field, f"Invalid value: {shown}: {detail}")


def _check_labels(causes, field, labels):
    if labels is None:
        return
    if not isinstance(labels, dict):
        causes.append(_invalid(field, str(labels), "must be a map of strings"))
        return
    for k, v in labels.items():
        name = k.rpartition("/")[2]
        if not QUALIFIED_NAME.match(name) or len(name) > 63:
            causes.append(
                _invalid(
                    field,
                    k,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
                    "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                )
            )
        if field.endswith("labels") and (not isinstance(v, str) or not LABEL_VALUE.match(v) or len(v) > 63):
            causes.append(
                _invalid(
                    field,
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
                    "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                )
            )
        if field.endswith("annotations") and not isinstance(v, str):
            causes.append(_invalid(field, str(v), "annotation values must be strings"))


def _check_containers(causes, field, spec):
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not containers:
        causes.append(_required(f"{field}.containers"))
        return
    seen = set()
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            causes.append(_invalid(f"{field}.containers[{i}]", str(c), "must be an object"))
            continue
        name = c.get("name")
        if not name:
            causes.append(_required(f"{field}.containers[{i}].name"))
        elif not DNS1123_LABEL.match(str(name)):
            causes.append(_invalid(f"{field}.containers[{i}].name", name, LABEL_MSG))
        elif name in seen:
            causes.append(("FieldValueDuplicate", f"{field}.containers[{i}].name", f"Duplicate value: {_q(name)}"))
        seen.add(name)
        if not c.get("image"):
            causes.append(_required(f"{field}.containers[{i}].image"))


def _selector_matches(selector, labels):
    for k, v in ((selector or {}).get("matchLabels") or {}).items():
        if (labels or {}).get(k) != v:
            return False
    for e in (selector or {}).get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        have = key in (labels or {})
        if op == "In" and not (have and labels[key] in values):
            return False
        if op == "NotIn" and have and labels[key] in values:
            return False
        if op == "Exists" and not have:
            return False
        if op == "DoesNotExist" and have:
            return False
    return True


def validate(rt, obj, old):
    causes = []
    md = obj.get("metadata") or {}
    name = md.get("name")
    if not name:
        causes.append(_required("metadata.name", "name or generateName is required"))
    elif rt.res in ("namespaces",):
        if not DNS1123_LABEL.match(name) or len(name) > 63:
            causes.append(_invalid("metadata.name", name, LABEL_MSG))
    elif rt.res == "services":
        if not DNS1035_LABEL.match(name) or len(name) > 63:
            causes.append(_invalid("metadata.name", name, DNS1035_MSG))
    elif not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        causes.append(_invalid("metadata.name", name, SUBDOMAIN_MSG))
    _check_labels(causes, "metadata.labels", md.get("labels"))
    _check_labels(causes, "metadata.annotations", md.get("annotations"))
    if rt.crd:
        return causes
    spec = obj.get("spec")
    if rt.res == "pods":
        _check_containers(causes, "spec", spec)
        if old is not None:
            oc = [(c.get("name"), c.get("image")) for c in (old.get("spec") or {}).get("containers") or []]
            nc = [c.get("name") for c in (spec or {}).get("containers") or [] if isinstance(c, dict)]
            if [n for n, _ in oc] != nc:
                causes.append(("FieldValueForbidden", "spec", "Forbidden: pod updates may not add or remove containers"))
    elif rt.res in WORKLOADS:
        tpl = (spec or {}).get("template") if isinstance(spec, dict) else None
        if not isinstance(spec, dict):
            causes.append(_required("spec"))
            return causes
        selector = spec.get("selector")
        if rt.res != "jobs.batch" and not selector:
            causes.append(_required("spec.selector"))
        if not isinstance(tpl, dict):
            causes.append(_required("spec.template"))
        else:
            labels = (tpl.get("metadata") or {}).get("labels") or {}
            if selector and not _selector_matches(selector, labels):
                causes.append(_invalid("spec.template.metadata.labels", Raw(_go_map(labels)), "`selector` does not match template `labels`"))
            if selector and not (selector.get("matchLabels") or selector.get("matchExpressions")):
                causes.append(_invalid("spec.selector", Raw("v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"), "empty selector is invalid for deployment"))
            _check_containers(causes, "spec.template.spec", tpl.get("spec"))
            restart = (tpl.get("spec") or {}).get("restartPolicy")
            if rt.res == "jobs.batch" and restart not in ("OnFailure", "Never"):
                causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy", f'Unsupported value: {_q(restart)}: supported values: "OnFailure", "Never"'))
            if rt.res in ("deployments.apps", "replicasets.apps", "statefulsets.apps", "daemonsets.apps") and restart not in (None, "Always"):
                causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy", f'Unsupported value: {_q(restart)}: supported values: "Always"'))
        if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
            causes.append(_invalid("spec.replicas", spec["replicas"], "must be greater than or equal to 0"))
        if old is not None:
            ospec = old.get("spec") or {}
            if rt.res != "jobs.batch" and ospec.get("selector") != spec.get("selector"):
                causes.append(_invalid("spec.selector", Raw("v1.LabelSelector{MatchLabels:" + _go_map((spec.get("selector") or {}).get("matchLabels")) + ", MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"), "field is immutable"))
            if rt.res == "jobs.batch":
                if ospec.get("template") != spec.get("template"):
                    causes.append(_invalid("spec.template", Raw("core.PodTemplateSpec{...}"), "field is immutable"))
                if ospec.get("completions") != spec.get("completions"):
                    causes.append(_invalid("spec.completions", spec.get("completions"), "field is immutable"))
            if rt.res == "statefulsets.apps":
                allowed = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit", "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
                strip = lambda s: {k: v for k, v in s.items() if k not in allowed}  # noqa: E731
                if strip(ospec) != strip(spec):
                    causes.append(
                        (
                            "FieldValueForbidden",
                            "spec",
                            "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
                            "'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                        )
                    )
    elif rt.res == "services":
        if not isinstance(spec, dict):
            causes.append(_required("spec"))
            return causes
        if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None" and not spec.get("ports"):
            causes.append(_required("spec.ports"))
        for i, p in enumerate(spec.get("ports") or []):
            port = p.get("port") if isinstance(p, dict) else None
            if not isinstance(port, int) or not 1 <= port <= 65535:
                causes.append(_invalid(f"spec.ports[{i}].port", port if port is not None else 0, "must be between 1 and 65535, inclusive"))
            if len(spec.get("ports") or []) > 1 and isinstance(p, dict) and not p.get("name"):
                causes.append(_required(f"spec.ports[{i}].name"))
        if old is not None:
            ospec = old.get("spec") or {}
            if ospec.get("clusterIP") and spec.get("clusterIP") and ospec.get("clusterIP") != spec.get("clusterIP"):
                causes.append(_invalid("spec.clusterIPs[0]", spec.get("clusterIP"), "may not change once set"))
    elif rt.res == "persistentvolumeclaims":
        if not isinstance(spec, dict):
            causes.append(_required("spec"))
            return causes
        if not spec.get("accessModes"):
            causes.append(_required("spec.accessModes", "at least 1 access mode is required"))
        requests = ((spec.get("resources") or {}).get("requests") or {})
        if "storage" not in requests and not spec.get("dataSource") and not spec.get("volumeName"):
            causes.append(_required("spec.resources[storage]"))
        if old is not None:
            ospec = copy.deepcopy(old.get("spec") or {})
            nspec = copy.deepcopy(spec)
            for s in (ospec, nspec):
                s.pop("resources", None)
                s.pop("volumeAttributesClassName", None)
            if not ospec.get("volumeName"):
                nspec.pop("volumeName", None)
                ospec.pop("volumeName", None)
            if ospec != nspec:
                causes.append(("FieldValueForbidden", "spec", "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"))
    elif rt.res == "persistentvolumes":
        if not isinstance(spec, dict) or not (spec.get("capacity") or {}).get("storage"):
            causes.append(_required("spec.capacity"))
    elif rt.res == "configmaps":
        for field in ("data", "binaryData"):
            for k in (obj.get(field) or {}):
                if not re.match(r"^[-._a-zA-Z0-9]+$", k):
                    causes.append(_invalid(f"{field}[{k}]", k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
    return causes
