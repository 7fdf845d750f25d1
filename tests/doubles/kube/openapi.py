"""openapi.py: the OpenAPI v3 documents of the Kubernetes double, a stub good enough
for unmodified `kubectl apply` / `kubectl create` (ref/notes/kubernetes.md §7.2).

kubectl reads /openapi/v3 (an index of group-version documents) and, per group
version it writes, the document's PATCH operations: one whose
x-kubernetes-group-version-kind names the kind and that lists a fieldValidation
parameter tells kubectl the server validates fields, so it sends
fieldValidation=Strict (the double then rejects unknown fields with 400). The
documents carry no schemas (components.schemas is empty) and PATCH operations no
requestBody, so kubectl computes strategic merge patches from its compiled-in
types, as it does for any server whose OpenAPI lacks a kind.

Pure functions of the Registry; the caller holds the store lock.
"""

import hashlib
import json

QUERY = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
    "force": "Force is going to \"force\" Apply requests.",
    "pretty": "If 'true', then the output is pretty printed.",
}


def _param(name, where="query"):
    p = {"name": name, "in": where, "schema": {"type": "boolean" if name == "force" else "string", "uniqueItems": True}}
    if where == "path":
        p["required"] = True
        p["description"] = f"{name} of the object"
    else:
        p["description"] = QUERY[name]
    return p


def _op(rt, action, params):
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    verb = {"get": "read", "list": "list", "post": "create", "put": "replace", "patch": "patch", "delete": "delete"}[action]
    scope = "Namespaced" if rt.namespaced else ""
    return {
        "operationId": f"{verb}{scope}{rt.kind}",
        "parameters": [_param(p) for p in params],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": {"get": "get", "list": "list", "post": "post", "put": "put", "patch": "patch", "delete": "delete"}[action],
        "x-kubernetes-group-version-kind": gvk,
    }


def gv_document(registry, group, version, server_version):
    types = registry.types(group, version)
    if not types:
        return None
    paths = {}
    for rt in types:
        base = rt.prefix + ("/namespaces/{namespace}" if rt.namespaced else "") + f"/{rt.plural}"
        path_params = [_param("namespace", "path")] if rt.namespaced else []
        paths[base] = {
            "get": _op(rt, "list", ["pretty"]),
            "post": _op(rt, "post", ["dryRun", "fieldManager", "fieldValidation", "pretty"]),
            "parameters": path_params,
        }
        paths[base + "/{name}"] = {
            "get": _op(rt, "get", ["pretty"]),
            "put": _op(rt, "put", ["dryRun", "fieldManager", "fieldValidation", "pretty"]),
            "patch": _op(rt, "patch", ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]),
            "delete": _op(rt, "delete", ["dryRun", "pretty"]),
            "parameters": [_param("name", "path")] + path_params,
        }
        if rt.has_status:
            paths[base + "/{name}/status"] = {
                "get": _op(rt, "get", ["pretty"]),
                "put": _op(rt, "put", ["dryRun", "fieldManager", "fieldValidation", "pretty"]),
                "patch": _op(rt, "patch", ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]),
                "parameters": [_param("name", "path")] + path_params,
            }
        if rt.namespaced:
            paths[rt.prefix + f"/{rt.plural}"] = {"get": _op(rt, "list", ["pretty"])}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server_version},
        "paths": paths,
        "components": {"schemas": {}},
    }


def gv_key(group, version):
    return f"apis/{group}/{version}" if group else f"api/{version}"


def index(registry, server_version):
    """(the /openapi/v3 index, {gv_key: (hash, document bytes)})."""
    docs = {}
    for g, versions in registry.groups():
        for v in versions:
            doc = gv_document(registry, g, v, server_version)
            if doc is None:
                continue
            body = json.dumps(doc, separators=(",", ":")).encode()
            docs[gv_key(g, v)] = (hashlib.sha512(body).hexdigest().upper()[:64], body)
    paths = {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={h}"} for key, (h, _) in docs.items()}
    return {"paths": paths}, docs
