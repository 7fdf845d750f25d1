"""discovery.py: the discovery documents of the Kubernetes double.

Legacy (unaggregated) JSON: /api (APIVersions), /apis (APIGroupList), /apis/{g}
(APIGroup), /api/v1 and /apis/{g}/{v} (APIResourceList). Aggregated discovery v2
(apidiscovery.k8s.io/v2 APIGroupDiscoveryList) for /api and /apis when the Accept
header asks for it and config allows; the client recognises it only by the
response Content-Type, AGGREGATED_TYPE. Shapes: ref/notes/kubernetes.md §1.2.

Pure functions of the Registry; the caller holds the store lock.
"""

AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVER_ADDRESS = [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]


def wants_aggregated(accept):
    """True when an Accept header offers the v2 APIGroupDiscoveryList."""
    for part in (accept or "").split(","):
        params = {}
        for p in part.split(";")[1:]:
            k, _, v = p.strip().partition("=")
            params[k] = v
        if params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2" and params.get("as") == "APIGroupDiscoveryList":
            return True
    return False


def api_versions():
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": SERVER_ADDRESS}


def _group_doc(group, versions):
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(registry):
    groups = [_group_doc(g, vs) for g, vs in registry.groups() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry, group):
    for g, vs in registry.groups():
        if g == group and g:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(g, vs)}
    return None


def _resource_entry(rt):
    e = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind, "verbs": list(VERBS)}
    if rt.short_names:
        e["shortNames"] = rt.short_names
    if rt.categories:
        e["categories"] = rt.categories
    return e


def _sub_entry(rt, name, sub):
    e = {"name": f"{rt.plural}/{name}", "singularName": "", "namespaced": rt.namespaced, "kind": sub.get("kind") or rt.kind, "verbs": list(sub["verbs"])}
    if sub.get("group"):
        e["group"], e["version"] = sub["group"], sub["version"]
    return e


def api_resource_list(registry, group, version):
    types = registry.types(group, version)
    if not types:
        return None
    resources = []
    for rt in types:
        resources.append(_resource_entry(rt))
        for name, sub in sorted(rt.subresources.items()):
            resources.append(_sub_entry(rt, name, sub))
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _aggregated_resource(rt):
    e = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(VERBS),
    }
    if rt.short_names:
        e["shortNames"] = rt.short_names
    if rt.categories:
        e["categories"] = rt.categories
    subs = []
    for name, sub in sorted(rt.subresources.items()):
        s = {"subresource": name, "verbs": list(sub["verbs"])}
        if sub.get("kind"):
            s["responseKind"] = {"group": sub.get("group", rt.group), "version": sub.get("version", rt.version), "kind": sub["kind"]}
        else:
            s["responseKind"] = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        subs.append(s)
    if subs:
        e["subresources"] = subs
    return e


def aggregated(registry, core):
    """APIGroupDiscoveryList for /api (core=True) or /apis."""
    items = []
    for g, versions in registry.groups():
        if bool(g) == core:
            continue
        vs = []
        for v in versions:
            vs.append({"version": v, "resources": [_aggregated_resource(rt) for rt in registry.types(g, v)], "freshness": "Current"})
        items.append({"metadata": {"name": g} if g else {}, "versions": vs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
