"""schema.py: the Kubernetes 1.36 OpenAPI v2 definitions (ref/kube/swagger.json),
used for three things the real API server does with its compiled-in types:

  - pruning unknown fields of built-in types, reported per fieldValidation
    (Strict: 400, Warn: Warning headers, Ignore: silently dropped);
  - strategic-merge-patch list semantics (x-kubernetes-patch-merge-key and
    x-kubernetes-patch-strategy);
  - server-side-apply list types (x-kubernetes-list-type, -list-map-keys).

A Cursor points at one schema node; Cursor(None) means "unknown schema" (custom
resources, free-form JSON): everything is kept, lists are atomic, maps merge.
Without swagger.json the double still works, with a small built-in table of
merge keys instead (FALLBACK_KEYS) and no pruning.

Read-only after load; safe to share between threads.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def default_path():
    repo = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
    return os.environ.get("FERRY_KUBE_SWAGGER") or os.path.join(repo, "..", "shared", "ref", "kube", "swagger.json")


# Used only when swagger.json is missing: field name -> merge key.
FALLBACK_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
}


class Cursor:
    """A position in the schema; all methods are safe on an unknown node."""

    __slots__ = ("schemas", "node", "field")

    def __init__(self, schemas, node, field=None):
        self.schemas = schemas
        self.node = node  # resolved schema dict, or None (unknown)
        self.field = field  # the property name that led here

    @property
    def known(self):
        return self.node is not None

    def _resolve(self, node):
        return self.schemas.resolve(node) if node is not None else None

    def child(self, key):
        n = self.node
        if n is None:
            return Cursor(self.schemas, None, key)
        props = n.get("properties")
        if props is not None and key in props:
            return Cursor(self.schemas, self._resolve(props[key]), key)
        addl = n.get("additionalProperties")
        if isinstance(addl, dict):
            return Cursor(self.schemas, self._resolve(addl), key)
        return Cursor(self.schemas, None, key)

    def items(self):
        n = self.node
        if n is None or not isinstance(n.get("items"), dict):
            return Cursor(self.schemas, None, self.field)
        return Cursor(self.schemas, self._resolve(n["items"]), self.field)

    def accepts(self, key):
        """False when `key` is an unknown field of a known object schema."""
        n = self.node
        if n is None:
            return True
        if n.get("x-kubernetes-preserve-unknown-fields"):
            return True
        props = n.get("properties")
        if props is None:
            return True  # a free-form object (RawExtension, FieldsV1, JSON, ...)
        if key in props:
            return True
        return isinstance(n.get("additionalProperties"), dict) or n.get("additionalProperties") is True

    def is_map(self):
        n = self.node
        return n is not None and n.get("properties") is None and isinstance(n.get("additionalProperties"), dict)


class Schemas:
    def __init__(self, path=None):
        self.path = path or default_path()
        self.definitions = {}
        self.by_gvk = {}
        self.loaded = False
        self.error = None
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            self.definitions = doc.get("definitions") or {}
            for name, d in self.definitions.items():
                for gvk in d.get("x-kubernetes-group-version-kind") or []:
                    self.by_gvk.setdefault((gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")), name)
            self.loaded = True
        except (OSError, ValueError) as e:
            self.error = f"{self.path}: {e}"

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 50:
            ref = node["$ref"]
            name = ref.rpartition("/")[2]
            node = self.definitions.get(name)
            seen += 1
        if isinstance(node, dict) and "allOf" in node and len(node["allOf"]) == 1:
            return self.resolve(node["allOf"][0])
        return node if isinstance(node, dict) else None

    def root(self, rt):
        """A Cursor at the top of rt's objects (unknown for custom resources)."""
        if rt is None or rt.crd or not self.loaded:
            return Cursor(self, None)
        name = rt.definition or self.by_gvk.get((rt.group, rt.version, rt.kind))
        return Cursor(self, self.definitions.get(name) if name else None)

    def property(self, cursor, key):
        """(raw property schema or None, child Cursor) for `key` under cursor."""
        n = cursor.node
        if n is not None:
            props = n.get("properties")
            if props is not None and key in props:
                raw = props[key]
                return raw, Cursor(self, self.resolve(raw), key)
            addl = n.get("additionalProperties")
            if isinstance(addl, dict):
                return addl, Cursor(self, self.resolve(addl), key)
        return None, Cursor(self, None, key)

    # -- pruning ---------------------------------------------------------------------

    def prune(self, rt, obj):
        """Drop unknown fields of a built-in object in place; returns their paths
        ("spec.foo", "spec.template.spec.containers[0].imagee") in order."""
        unknown = []
        if not isinstance(obj, dict):
            return unknown
        self._prune(self.root(rt), obj, "", unknown)
        return unknown

    def _prune(self, cursor, value, path, unknown):
        if cursor.node is None:
            return
        if isinstance(value, dict):
            if cursor.node.get("properties") is None and not isinstance(cursor.node.get("additionalProperties"), dict):
                return  # free-form
            for key in list(value):
                if not cursor.accepts(key):
                    unknown.append(f"{path}.{key}" if path else key)
                    del value[key]
                    continue
                _, child = self.property(cursor, key)
                if cursor.is_map():
                    self._prune(child, value[key], f"{path}[{key}]" if path else key, unknown)
                else:
                    self._prune(child, value[key], f"{path}.{key}" if path else key, unknown)
        elif isinstance(value, list):
            items = cursor.items()
            for i, v in enumerate(value):
                self._prune(items, v, f"{path}[{i}]", unknown)


def smp_list(schemas, raw, key):
    """How strategic merge treats list field `key` with property schema `raw`:
    ("merge", merge_key) for lists of objects merged by key, ("merge", None) for
    primitive lists merged as sets, ("replace", None) otherwise."""
    if raw is None:
        if schemas is None or not schemas.loaded:
            mk = FALLBACK_KEYS.get(key)
            return ("merge", mk) if mk else ("replace", None)
        return ("replace", None)
    if "merge" in (raw.get("x-kubernetes-patch-strategy") or "").split(","):
        return ("merge", raw.get("x-kubernetes-patch-merge-key"))
    return ("replace", None)


def ssa_list(schemas, raw, key):
    """How server-side apply treats list field `key`: ("map", [keys]), ("set", None)
    or ("atomic", None)."""
    if raw is None:
        if schemas is None or not schemas.loaded:
            mk = FALLBACK_KEYS.get(key)
            return ("map", [mk]) if mk else ("atomic", None)
        return ("atomic", None)
    lt = raw.get("x-kubernetes-list-type")
    if lt == "map" and raw.get("x-kubernetes-list-map-keys"):
        return ("map", list(raw["x-kubernetes-list-map-keys"]))
    if lt == "set":
        return ("set", None)
    if lt is None and raw.get("x-kubernetes-patch-merge-key"):
        return ("map", [raw["x-kubernetes-patch-merge-key"]])
    if lt is None and "merge" in (raw.get("x-kubernetes-patch-strategy") or ""):
        return ("set", None)
    return ("atomic", None)
