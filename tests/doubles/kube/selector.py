"""selector.py: label selectors (equality and set-based) and field selectors.

parse_labels("app=web,tier in (a,b),!canary") and parse_fields("metadata.name=x")
return matcher objects with .matches(obj); a malformed selector raises ValueError
with the API server's wording (the caller turns it into a 400 BadRequest).

Label grammar (apimachinery pkg/labels/selector.go): requirements separated by
commas outside parentheses; each is `k`, `!k`, `k=v`, `k==v`, `k!=v`,
`k in (a,b)`, `k notin (a,b)`, `k>N`, `k<N`. Field grammar (pkg/fields): `f=v`,
`f==v`, `f!=v`, comma means AND; backslash escapes `,` `=` `!` `\\`.
"""

import re

KEY = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
VALUE = re.compile(r"^(([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?)$")


def _split_top(text):
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _check_key(key, whole):
    if not KEY.match(key) or len(key.rpartition("/")[2]) > 63:
        raise ValueError(f'unable to parse requirement: invalid label key "{key}": name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character')


def _check_value(value):
    if not VALUE.match(value) or len(value) > 63:
        raise ValueError(f'unable to parse requirement: invalid label value: "{value}": at key: must be no more than 63 characters and consist of alphanumerics, \'-\', \'_\' or \'.\'')


class LabelSelector:
    def __init__(self, requirements):
        self.requirements = requirements  # [(key, op, [values])]

    def matches(self, obj):
        labels = ((obj.get("metadata") or {}).get("labels")) or {}
        for key, op, values in self.requirements:
            present = key in labels
            value = labels.get(key)
            if op in ("=", "==", "in"):
                if not present or value not in values:
                    return False
            elif op in ("!=", "notin"):
                if present and value in values:
                    return False
            elif op == "exists":
                if not present:
                    return False
            elif op == "!":
                if present:
                    return False
            elif op in (">", "<"):
                try:
                    n = int(value)
                except (TypeError, ValueError):
                    return False
                if (op == ">" and not n > int(values[0])) or (op == "<" and not n < int(values[0])):
                    return False
        return True

    @property
    def empty(self):
        return not self.requirements


SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
CMP_RE = re.compile(r"^\s*([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*?)\s*$")


def parse_labels(text):
    """A LabelSelector from a selector string ("" selects everything); dicts are
    matchLabels maps."""
    if isinstance(text, dict):
        return LabelSelector([(k, "=", [str(v)]) for k, v in text.items()])
    reqs = []
    if text is None or not text.strip():
        return LabelSelector(reqs)
    for part in _split_top(text):
        part = part.strip()
        if not part:
            raise ValueError(f'unable to parse requirement: found \'\', expected: identifier in "{text}"')
        m = SET_RE.match(part)
        if m:
            key, op, inner = m.group(1), m.group(2), m.group(3)
            _check_key(key, text)
            values = [v.strip() for v in inner.split(",")] if inner.strip() else []
            if op == "in" and not values:
                raise ValueError("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty")
            for v in values:
                _check_value(v)
            reqs.append((key, op, values))
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, text)
            reqs.append((key, "!", []))
            continue
        m = CMP_RE.match(part)
        if m:
            key, op, value = m.group(1), m.group(2), m.group(3)
            _check_key(key, text)
            if op in (">", "<"):
                if not re.fullmatch(r"-?[0-9]+", value):
                    raise ValueError("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")
            else:
                _check_value(value)
            reqs.append((key, op, [value]))
            continue
        key = part
        if re.search(r"[\s()=!<>]", key):
            raise ValueError(f'unable to parse requirement: found \'{key}\', expected: \'=\', \'!=\', \'==\', \'in\', notin\'')
        _check_key(key, text)
        reqs.append((key, "exists", []))
    return LabelSelector(reqs)


def selector_from_label_selector(sel):
    """A LabelSelector from a metav1.LabelSelector dict ({matchLabels, matchExpressions})."""
    reqs = []
    for k, v in ((sel or {}).get("matchLabels") or {}).items():
        reqs.append((k, "=", [str(v)]))
    for e in (sel or {}).get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(e.get("operator"))
        if op is None:
            raise ValueError(f"{e.get('operator')!r} is not a valid label selector operator")
        reqs.append((e.get("key", ""), op, [str(x) for x in e.get("values") or []]))
    return LabelSelector(reqs)


class FieldSelector:
    def __init__(self, requirements):
        self.requirements = requirements  # [(field, op, value)]

    def fields(self):
        return [f for f, _, _ in self.requirements]

    def matches(self, obj):
        for field, op, value in self.requirements:
            actual = field_value(obj, field)
            if op == "!=":
                if actual == value:
                    return False
            elif actual != value:
                return False
        return True

    @property
    def empty(self):
        return not self.requirements

    def single_name(self):
        """The name in `metadata.name=N` when that is the only requirement."""
        if len(self.requirements) == 1 and self.requirements[0][0] == "metadata.name" and self.requirements[0][1] != "!=":
            return self.requirements[0][2]
        return None


def parse_fields(text):
    reqs = []
    if text is None or not text.strip():
        return FieldSelector(reqs)
    for part in _split_comma(text):
        if not part:
            continue
        for op in ("!=", "==", "="):
            idx = _find_unescaped(part, op)
            if idx >= 0:
                field = part[:idx].strip()
                value = _unescape(part[idx + len(op) :])
                reqs.append((field, "!=" if op == "!=" else "=", value))
                break
        else:
            raise ValueError(f"invalid selector: '{text}'; can't understand '{part}'")
    return FieldSelector(reqs)


def _split_comma(text):
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _find_unescaped(text, op):
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(op, i):
            # "=" must not be the tail of "!=" or the first half of "=="
            if op == "=" and (i > 0 and text[i - 1] == "!"):
                i += 1
                continue
            return i
        i += 1
    return -1


def _unescape(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def field_value(obj, field):
    """The string value of a dotted field path as the API server compares it."""
    if field == "source" and obj.get("kind") == "Event":
        return ((obj.get("source") or {}).get("component")) or ""
    cur = obj
    for part in field.split("."):
        if not isinstance(cur, dict):
            cur = None
            break
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, list):
        if field == "status.podIPs":
            return ",".join(str((x or {}).get("ip", "")) for x in cur)
        return ",".join(str(x) for x in cur)
    return str(cur)
