"""patch.py: the four PATCH content types, and managedFields bookkeeping.

    json_patch(doc, ops)                    RFC 6902 (add, remove, replace, move, copy, test)
    merge_patch(doc, patch)                 RFC 7386 (null deletes, lists replaced whole)
    strategic_merge(doc, patch, cursor)     strategic merge patch, driven by the OpenAPI
                                            patch-merge-key/strategy of built-in types
                                            (schema.py); directives $patch (replace, delete,
                                            merge), $retainKeys, $setElementOrder/<f>,
                                            $deleteFromPrimitiveList/<f>
    apply(live, applied, manager, force, cursor, api_version)
                                            server-side apply: merge by the OpenAPI list
                                            types, field ownership in metadata.managedFields
                                            (FieldsV1), conflicts 409 unless force, fields
                                            the manager stopped applying removed when no
                                            other manager owns them
    record_update(old, new, manager, api_version, cursor, subresource)
                                            the managedFields entry a non-apply write makes
                                            (operation Update: the manager takes every field
                                            it changed)

Every function returns a new document; inputs are never modified. Patch errors
raise PatchError (the server answers 422, or 400 for a malformed body); apply
conflicts raise store.ApiError 409. "managedFields-light": ownership is tracked per
leaf field and per keyed list item, which is what clients see and what conflicts
need; it is not structured-merge-diff's full algebra (no "." ownership of maps, no
type conversion between versions).
"""

import copy
import json

from schema import Cursor, smp_list, ssa_list
from store import ApiError, now_rfc3339


class PatchError(Exception):
    pass


# -- RFC 6902 ----------------------------------------------------------------------


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'JSON pointer must start with "/": {path!r}')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts, op):
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict):
            if p not in cur:
                raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                i = int(p)
                cur = cur[i]
            except (ValueError, IndexError):
                raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}") from None
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
    return cur


def _get(doc, parts, op):
    cur = doc
    for p in parts:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
    return cur


def _add(doc, parts, value, op="add"):
    if not parts:
        return value
    parent = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                i = int(last)
            except ValueError:
                raise PatchError(f"{op} operation does not apply: invalid array index {last!r}") from None
            if not 0 <= i <= len(parent):
                raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
            parent.insert(i, value)
    else:
        raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
    return doc


def _remove(doc, parts, op="remove"):
    if not parts:
        raise PatchError("remove operation does not apply: cannot remove the whole document")
    parent = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("unexpected kind of operation: every operation needs an \"op\"")
        kind = op["op"]
        path = _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            if not path:
                doc = copy.deepcopy(op.get("value"))
                continue
            _get(doc, path, "replace")
            parent = _parent(doc, path, "replace")
            if isinstance(parent, dict):
                parent[path[-1]] = copy.deepcopy(op.get("value"))
            else:
                parent[int(path[-1])] = copy.deepcopy(op.get("value"))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = _remove(doc, src, kind) if kind == "move" else copy.deepcopy(_get(doc, src, kind))
            doc = _add(doc, path, value, kind)
        elif kind == "test":
            if _get(doc, path, "test") != op.get("value"):
                raise PatchError(f"testing value /{'/'.join(path)} failed: test operation does not apply")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


# -- RFC 7386 ----------------------------------------------------------------------


def merge_patch(doc, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = merge_patch(out.get(k), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# -- strategic merge ---------------------------------------------------------------


def strategic_merge(doc, patch, cursor):
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    out = _smp_map(doc if isinstance(doc, dict) else {}, patch, cursor)
    return out if out is not None else {}


def _smp_map(orig, patch, cursor):
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"})
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive}")
    out = copy.deepcopy(orig)
    orders = {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.partition("/")[2]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.partition("/")[2]
            if isinstance(out.get(field), list) and isinstance(v, list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
            continue
        raw, child = cursor.schemas.property(cursor, k) if cursor.schemas is not None else (None, Cursor(None, None, k))
        if isinstance(v, dict):
            merged = _smp_map(out.get(k) if isinstance(out.get(k), dict) else {}, v, child)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _smp_list(out.get(k) if isinstance(out.get(k), list) else [], v, raw, child, k)
        else:
            out[k] = copy.deepcopy(v)
    for field, order in orders.items():
        if isinstance(out.get(field), list) and isinstance(order, list):
            out[field] = _reorder(out[field], order, cursor, field)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _strip(value):
    """Drop $-directives from a value that replaces wholesale."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _smp_list(orig, patch, raw, child, field):
    how, key = smp_list(child.schemas, raw, field)
    if how != "merge":
        if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
            return _strip([x for x in patch if not (isinstance(x, dict) and "$patch" in x)])
        return _strip(copy.deepcopy(patch))
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return _strip([x for x in patch if not (isinstance(x, dict) and x.get("$patch") == "replace")])
    if key is None:  # a set of primitives
        out = copy.deepcopy(orig)
        for x in patch:
            if x not in out:
                out.append(copy.deepcopy(x))
        return out
    items = child.items()
    out = copy.deepcopy(orig)
    for x in patch:
        if not isinstance(x, dict):
            raise PatchError(f"unable to find api field in struct for merge key {key!r}: list items must be objects")
        if key not in x:
            raise PatchError(f"map: {x} does not contain declared merge key: {key}")
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == x[key]), None)
        if x.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip({k: v for k, v in x.items() if v is not None}))
        else:
            merged = _smp_map(out[idx], x, items)
            out[idx] = merged if merged is not None else out[idx]
    return out


def _reorder(values, order, cursor, field):
    raw, child = cursor.schemas.property(cursor, field) if cursor.schemas is not None else (None, None)
    how, key = smp_list(cursor.schemas, raw, field)

    def ident(x):
        return x.get(key) if (key and isinstance(x, dict)) else json.dumps(x, sort_keys=True)

    wanted = [ident(o) if not (key and isinstance(o, dict)) else o.get(key) for o in order]
    first = [v for w in wanted for v in values if ident(v) == w]
    rest = [v for v in values if ident(v) not in wanted]
    return first + rest


# -- managed fields ----------------------------------------------------------------

# Metadata fields that identify or are maintained by the server: never owned.
SERVER_MD = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName")


# Key fields of associative lists that the API server defaults: an applied item
# without them names the same item as a stored one that has the default.
KEY_DEFAULTS = {"protocol": "TCP"}


def _key_value(item, key):
    return item.get(key, KEY_DEFAULTS.get(key)) if isinstance(item, dict) else None


def _same_item(a, b, keys):
    return all(_key_value(a, k) == _key_value(b, k) for k in keys)


def _item_key(item, keys):
    return "k:" + json.dumps({k: _key_value(item, k) for k in keys if k in item or k in KEY_DEFAULTS}, separators=(",", ":"))


def fields_of(obj, cursor, top=True):
    """The set of owned paths (tuples of FieldsV1 keys) an object sets."""
    paths = set()
    _fields(obj, cursor, (), paths, top)
    return paths


def _fields(value, cursor, path, out, top):
    if isinstance(value, dict):
        if not value:
            if path:
                out.add(path)
            return
        for k, v in value.items():
            if top and k in ("apiVersion", "kind"):
                continue
            if top and k == "status":
                continue
            if path == ("f:metadata",) and k in SERVER_MD:
                continue
            raw, child = cursor.schemas.property(cursor, k) if cursor.schemas is not None else (None, Cursor(None, None, k))
            sub = path + ("f:" + k,)
            if isinstance(v, list):
                _list_fields(v, raw, child, sub, out, k)
            else:
                _fields(v, child, sub, out, False)
        return
    if path:
        out.add(path)


def _list_fields(values, raw, child, path, out, field):
    how, keys = ssa_list(child.schemas, raw, field)
    if how == "map" and all(isinstance(x, dict) and all(k in x for k in keys[:1]) for x in values) and values:
        items = child.items()
        for x in values:
            ipath = path + (_item_key(x, keys),)
            out.add(ipath + (".",))
            _fields(x, items, ipath, out, False)
    elif how == "set" and values and all(not isinstance(x, (dict, list)) for x in values):
        for x in values:
            out.add(path + ("v:" + json.dumps(x, separators=(",", ":")),))
    else:
        out.add(path)


def to_fields_v1(paths):
    root = {}
    for p in sorted(paths):
        node = root
        for part in p:
            node = node.setdefault(part, {})
    return root


def from_fields_v1(tree):
    out = set()

    def walk(node, path):
        if not isinstance(node, dict) or not node:
            if path:
                out.add(path)
            return
        for k, v in node.items():
            walk(v, path + (k,))

    walk(tree or {}, ())
    return out


def value_at(obj, path):
    """(found, value) at an owned path."""
    cur = obj
    for part in path:
        if part == ".":
            return True, None
        kind, _, rest = part.partition(":")
        if kind == "f":
            if not isinstance(cur, dict) or rest not in cur:
                return False, None
            cur = cur[rest]
        elif kind == "k":
            want = json.loads(rest)
            if not isinstance(cur, list):
                return False, None
            cur = next((x for x in cur if isinstance(x, dict) and all(_key_value(x, k) == v for k, v in want.items())), None)
            if cur is None:
                return False, None
        elif kind == "v":
            want = json.loads(rest)
            if not isinstance(cur, list) or want not in cur:
                return False, None
            return True, want
        else:
            return False, None
    return True, cur


def remove_at(obj, path):
    """Delete the field or list item at `path` from obj (in place) if present."""
    if not path:
        return
    if path[-1] == ".":
        path = path[:-1]
    parent = obj
    for part in path[:-1]:
        found, parent = value_at(parent, (part,))
        if not found:
            return
    last = path[-1]
    kind, _, rest = last.partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        want = json.loads(rest)
        parent[:] = [x for x in parent if not (isinstance(x, dict) and all(_key_value(x, k) == v for k, v in want.items()))]
    elif kind == "v" and isinstance(parent, list):
        want = json.loads(rest)
        parent[:] = [x for x in parent if x != want]


def _managers(obj):
    out = []
    for m in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if isinstance(m, dict):
            out.append(dict(m, _paths=from_fields_v1(m.get("fieldsV1"))))
    return out


def _store_managers(obj, managers):
    entries = []
    for m in managers:
        paths = m.pop("_paths")
        if not paths:
            continue
        m["fieldsType"] = "FieldsV1"
        m["fieldsV1"] = to_fields_v1(paths)
        entries.append({k: m[k] for k in ("manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource") if k in m})
    md = obj.setdefault("metadata", {})
    if entries:
        md["managedFields"] = entries
    else:
        md.pop("managedFields", None)


def _leaf(path):
    return path and path[-1] != "."


def _changed_paths(old, new, cursor, status=False):
    """Paths set in `new` whose value differs from `old` (or is new)."""
    target_new = {"status": new.get("status")} if status else new
    target_old = {"status": old.get("status")} if status else old
    paths = _status_fields(target_new, cursor) if status else fields_of(target_new, cursor)
    out = set()
    for p in paths:
        f_new, v_new = value_at(target_new, p)
        f_old, v_old = value_at(target_old, p)
        if not f_old or v_new != v_old:
            out.add(p)
    return out, paths


def _status_fields(obj, cursor):
    paths = set()
    raw, child = cursor.schemas.property(cursor, "status") if cursor.schemas is not None else (None, Cursor(None, None, "status"))
    if isinstance(obj.get("status"), dict):
        _fields(obj["status"], child, ("f:status",), paths, False)
    return paths


def record_update(old, new, manager, api_version, cursor, subresource=None):
    """Give `manager` (operation Update) every field this write set or changed,
    taking it from other managers, and forget fields the write removed. old None
    means a create. Sets new's metadata.managedFields; returns new."""
    status = subresource == "status"
    managers = _managers(old) if old is not None else []
    changed, present = _changed_paths(old or {}, new, cursor, status)
    mine = None
    for m in managers:
        if (m.get("subresource") == "status") != status:
            continue
        if m.get("manager") == manager and m.get("operation") == "Update":
            mine = m
            m["_paths"] &= present
        else:
            m["_paths"] = (m["_paths"] - changed) & present
    if mine is None:
        mine = {"manager": manager, "operation": "Update", "apiVersion": api_version, "time": now_rfc3339(), "_paths": set()}
        if status:
            mine["subresource"] = "status"
        managers.append(mine)
    if changed:
        mine["time"] = now_rfc3339()
        mine["apiVersion"] = api_version
    mine["_paths"] |= changed
    _store_managers(new, managers)
    return new


# -- server-side apply -------------------------------------------------------------


def _ssa_merge(live, applied, cursor, top=False):
    if not isinstance(applied, dict) or not isinstance(live, dict):
        return copy.deepcopy(applied)
    out = copy.deepcopy(live)
    for k, v in applied.items():
        if top and k == "status":
            continue
        raw, child = cursor.schemas.property(cursor, k) if cursor.schemas is not None else (None, Cursor(None, None, k))
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _ssa_merge(out[k], v, child)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            how, keys = ssa_list(child.schemas, raw, k)
            if how == "map":
                items = child.items()
                merged = copy.deepcopy(out[k])
                for x in v:
                    if not isinstance(x, dict):
                        merged = copy.deepcopy(v)
                        break
                    idx = next((i for i, o in enumerate(merged) if isinstance(o, dict) and _same_item(o, x, keys)), None)
                    if idx is None:
                        merged.append(copy.deepcopy(x))
                    else:
                        merged[idx] = _ssa_merge(merged[idx], x, items)
                out[k] = merged
            elif how == "set":
                merged = copy.deepcopy(v)
                for x in out[k]:
                    if x not in merged:
                        merged.append(x)
                out[k] = merged
            else:
                out[k] = copy.deepcopy(v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _path_text(path):
    parts = []
    for p in path:
        if p == ".":
            continue
        kind, _, rest = p.partition(":")
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            want = json.loads(rest)
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in want.items()) + "]")
        elif kind == "v":
            parts.append(f"[={rest}]")
    return "".join(parts)


def conflict_error(res, name, conflicts):
    """409 Conflict for [(manager, api_version, path)]."""
    group = res.partition(".")[2]
    causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {v}', "field": _path_text(p)} for m, v, p in conflicts]
    if len(conflicts) == 1:
        m, v, p = conflicts[0]
        message = f'Apply failed with 1 conflict: conflict with "{m}" using {v}: {_path_text(p)}'
    else:
        by = {}
        for m, v, p in conflicts:
            by.setdefault((m, v), []).append(_path_text(p))
        chunks = []
        for (m, v), fields in by.items():
            word = "conflicts" if len(fields) > 1 else "conflict"
            chunks.append(f'{word} with "{m}" using {v}:\n' + "\n".join(f"- {f}" for f in fields))
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(chunks)
    details = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = res.partition(".")[0]
    details["causes"] = causes
    return ApiError(409, "Conflict", message, details)


def apply(live, applied, manager, force, cursor, api_version, res, name, subresource=None):
    """The object after `manager` applies `applied` to `live` (None: create)."""
    status = subresource == "status"
    base = copy.deepcopy(live) if live is not None else {}
    managers = _managers(live) if live is not None else []
    if status:
        paths = _status_fields(applied, cursor)
    else:
        paths = fields_of(applied, cursor)
    conflicts = []
    for m in managers:
        if m.get("manager") == manager or (m.get("subresource") == "status") != status:
            continue
        for p in sorted(m["_paths"] & paths):
            if not _leaf(p):
                continue
            f_live, v_live = value_at(base, p)
            f_app, v_app = value_at(applied, p)
            if f_live and f_app and v_live != v_app:
                conflicts.append((m.get("manager"), m.get("apiVersion", api_version), p))
    if conflicts and not force:
        raise conflict_error(res, name, conflicts)
    lost = {p for _, _, p in conflicts}
    for m in managers:
        if m.get("manager") != manager:
            m["_paths"] -= lost
    mine = next((m for m in managers if m.get("manager") == manager and m.get("operation") == "Apply" and (m.get("subresource") == "status") == status), None)
    previously = set(mine["_paths"]) if mine else set()
    if status:
        new = copy.deepcopy(base)
        new["status"] = _ssa_merge(base.get("status") or {}, applied.get("status") or {}, cursor.schemas.property(cursor, "status")[1] if cursor.schemas else Cursor(None, None))
    else:
        new = _ssa_merge(base, applied, cursor, top=True)
    # Fields this manager applied before and no longer applies, and nobody else owns.
    others = set()
    for m in managers:
        if m is not mine:
            others |= m["_paths"]
    for p in sorted(previously - paths, key=len, reverse=True):
        if p not in others and not any(o[: len(p)] == p for o in others):
            remove_at(new, p)
    if mine is None:
        mine = {"manager": manager, "operation": "Apply", "apiVersion": api_version, "_paths": set()}
        if status:
            mine["subresource"] = "status"
        managers.append(mine)
    mine["_paths"] = paths
    mine["time"] = now_rfc3339()
    mine["apiVersion"] = api_version
    _store_managers(new, managers)
    return new
