"""models.py: botocore service models for the AWS test double: load, validate, convert.

Standard library only. Reads <repo>/../shared/ref/aws/models/<name>/service-2.json
(override with --models DIR or $FERRY_AWS_MODELS), the upstream botocore models;
load() raises MissingModel, naming the path it looked for, when one is not there.

  - validate(model, shape, value, path) checks a request against the input shape as
    AWS's front end does: required members present, no unknown members, basic types
    (string, integer/long, float/double, boolean, timestamp = epoch number, blob =
    base64 text, list, map, structure, union), string and list lengths, patterns
    (when Python's re can compile them), enums and number ranges. Messages follow
    AWS: "Value null at 'repositoryName' failed to satisfy constraint: Member must
    not be null"; members are named lowerCamel, list items as 'imageIds.1.member'.
  - check_output(model, shape, value) checks what a service returns: no unknown
    members and the right types, so a bug in the double is loud.
  - from_query(model, shape, pairs) rebuilds nested params from Query protocol form
    fields (Name, Name.Member, Name.member.N, Name.entry.N.key/value).
"""

import base64
import calendar
import json
import math
import os
import re
import time

_PATTERNS = {}  # pattern text -> compiled regex, or None when Python cannot compile it


def default_root():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    return os.environ.get("FERRY_AWS_MODELS") or os.path.join(repo, "..", "shared", "ref", "aws", "models")


class MissingModel(FileNotFoundError):
    """A botocore model is not where load() looked for it; the message names the path."""


class Model:
    """One service-2.json."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        self.path = path
        self.metadata = data["metadata"]
        self.operations = data["operations"]
        self.shapes = data["shapes"]

    def input_shape(self, op):
        ref = self.operations[op].get("input")
        return ref["shape"] if ref else None

    def output_shape(self, op):
        ref = self.operations[op].get("output")
        return ref["shape"] if ref else None

    def result_wrapper(self, op):
        ref = self.operations[op].get("output") or {}
        return ref.get("resultWrapper")

    def is_unsigned(self, op):
        o = self.operations[op]
        return o.get("authtype") == "none" or "smithy.api#noAuth" in o.get("auth", [])

    def errors(self, op):
        return [e["shape"] for e in self.operations[op].get("errors", [])]

    def validation_code(self, op):
        """The code a bad request gets: Query services say ValidationError; JSON ones
        ValidationException unless the operation only lists InvalidParameterException (ECR)."""
        if self.metadata.get("protocol") == "query":
            return "ValidationError"
        errors = self.errors(op)
        if "ValidationException" not in errors and "InvalidParameterException" in errors:
            return "InvalidParameterException"
        return "ValidationException"

    def server_error_code(self, op):
        """The operation's modeled server-fault exception (ECR ServerException, SSM
        InternalServerError), else InternalFailure."""
        for name in self.errors(op):
            if self.shapes.get(name, {}).get("fault"):
                return name
        return "InternalFailure"


def load(root, name):
    """The model of service `name` under `root`; MissingModel when it is not there."""
    path = os.path.join(root, name, "service-2.json")
    if not os.path.isfile(path):
        missing = path if os.path.isdir(root) else os.path.normpath(root)
        raise MissingModel(
            f"no botocore model: {missing} does not exist (the AWS double reads the models in "
            "<repo>/../shared/ref/aws/models; --models DIR or FERRY_AWS_MODELS names another folder)"
        )
    return Model(path)


def _lower_camel(name):
    return name[:1].lower() + name[1:]


def _join(path, member):
    return f"{path}.{member}" if path else member


def _quote(value, shape):
    if shape.get("sensitive"):
        return "Value"
    if isinstance(value, str) and len(value) > 100:
        value = value[:100] + "..."
    return f"Value '{value}'"


def _pattern(text):
    if text not in _PATTERNS:
        try:
            _PATTERNS[text] = re.compile(text)
        except re.error:
            _PATTERNS[text] = None
    return _PATTERNS[text]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _type_ok(kind, value):
    if kind in ("structure", "map"):
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind in ("integer", "long"):
        return _is_int(value)
    if kind in ("float", "double", "timestamp"):
        return _is_number(value)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "blob":
        if not isinstance(value, str):
            return False
        try:
            base64.b64decode(value, validate=True)
            return True
        except ValueError:
            return False
    return True


def validate(model, shape_name, value, path=""):
    """Validation messages for `value` against shape `shape_name` (empty when valid)."""
    errors = []
    _validate(model, shape_name, value, path, errors)
    return errors


def _validate(model, shape_name, value, path, errors):
    shape = model.shapes[shape_name]
    kind = shape["type"]
    where = path or shape_name
    if not _type_ok(kind, value):
        errors.append(f"{_quote(value, shape)} at '{where}' failed to satisfy constraint: Member must be of type {kind}")
        return
    fail = lambda text: errors.append(f"{_quote(value, shape)} at '{where}' failed to satisfy constraint: {text}")
    if kind == "structure":
        members = shape.get("members", {})
        for name in shape.get("required", []):
            if value.get(name) is None:
                errors.append(f"Value null at '{_join(path, _lower_camel(name))}' failed to satisfy constraint: Member must not be null")
        for name, item in value.items():
            if name not in members:
                errors.append(f"Value at '{_join(path, name)}' failed to satisfy constraint: Member is not part of {shape_name}")
            elif item is not None:
                _validate(model, members[name]["shape"], item, _join(path, _lower_camel(name)), errors)
        if shape.get("union") and sum(v is not None for v in value.values()) != 1:
            errors.append(f"Value at '{where}' failed to satisfy constraint: exactly one member of the union must be set")
        return
    if kind in ("string", "list", "map", "blob"):
        size = len(value)
        if "min" in shape and size < shape["min"]:
            fail(f"Member must have length greater than or equal to {shape['min']}")
        if "max" in shape and size > shape["max"]:
            fail(f"Member must have length less than or equal to {shape['max']}")
    if kind == "string":
        if "enum" in shape and value not in shape["enum"]:
            fail(f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]")
        regex = _pattern(shape["pattern"]) if "pattern" in shape else None
        if regex is not None and not regex.fullmatch(value):
            fail(f"Member must satisfy regular expression pattern: {shape['pattern']}")
    elif kind in ("integer", "long", "float", "double"):
        if "min" in shape and value < shape["min"]:
            fail(f"Member must have value greater than or equal to {shape['min']}")
        if "max" in shape and value > shape["max"]:
            fail(f"Member must have value less than or equal to {shape['max']}")
    elif kind == "list":
        for i, item in enumerate(value, 1):
            if item is None:
                errors.append(f"Value null at '{where}.{i}.member' failed to satisfy constraint: Member must not be null")
            else:
                _validate(model, shape["member"]["shape"], item, f"{where}.{i}.member", errors)
    elif kind == "map":
        for key, item in value.items():
            key_errors = []
            _validate(model, shape["key"]["shape"], key, where, key_errors)
            for e in key_errors:
                errors.append(f"Map keys must satisfy constraint: {e}")
            if item is not None:
                _validate(model, shape["value"]["shape"], item, f"{where}.{key}", errors)


def message(errors):
    """AWS's summary of validation messages."""
    n = len(errors)
    return f"{n} validation error{'s' if n != 1 else ''} detected: " + "; ".join(errors)


def check_output(model, shape_name, value, path=""):
    """Problems with a service's result: unknown members or wrong types."""
    problems = []
    _check_output(model, shape_name, value, path, problems)
    return problems


def _check_output(model, shape_name, value, path, problems):
    shape = model.shapes[shape_name]
    kind = shape["type"]
    if value is None:
        return
    if not _type_ok(kind, value):
        problems.append(f"{path or shape_name}: expected {kind}, got {type(value).__name__} {value!r:.80}")
        return
    if kind == "structure":
        members = shape.get("members", {})
        for name, item in value.items():
            if name not in members:
                problems.append(f"{_join(path, name)}: not a member of {shape_name}")
            else:
                _check_output(model, members[name]["shape"], item, _join(path, name), problems)
    elif kind == "list":
        for i, item in enumerate(value):
            _check_output(model, shape["member"]["shape"], item, f"{path}[{i}]", problems)
    elif kind == "map":
        for key, item in value.items():
            _check_output(model, shape["value"]["shape"], item, f"{path}[{key!r}]", problems)


# -- Query protocol input -------------------------------------------------------


class QueryInputError(Exception):
    pass


def from_query(model, shape_name, pairs):
    """(params, unknown field names) from Query form fields (name -> text)."""
    flat = dict(pairs)
    used = set()
    params = _q_value(model, shape_name, "", flat, used) if shape_name else {}
    unknown = [k for k in flat if k not in used]
    return params or {}, unknown


def _present(flat, key):
    return key in flat or any(k.startswith(key + ".") for k in flat)


def _q_value(model, shape_name, key, flat, used):
    shape = model.shapes[shape_name]
    kind = shape["type"]
    if kind == "structure":
        out = {}
        for name, ref in shape.get("members", {}).items():
            sub = _join(key, ref.get("locationName", name))
            if _present(flat, sub):
                out[name] = _q_value(model, ref["shape"], sub, flat, used)
        return out
    if kind == "list":
        if flat.get(key) == "":  # botocore sends "Name=" for an empty list
            used.add(key)
            return []
        member = shape["member"]
        prefix = key if shape.get("flattened") else f"{key}.{member.get('locationName', 'member')}"
        items, i = [], 1
        while _present(flat, f"{prefix}.{i}"):
            items.append(_q_value(model, member["shape"], f"{prefix}.{i}", flat, used))
            i += 1
        return items
    if kind == "map":
        prefix = key if shape.get("flattened") else f"{key}.entry"
        out, i = {}, 1
        while _present(flat, f"{prefix}.{i}"):
            k = _q_value(model, shape["key"]["shape"], f"{prefix}.{i}.key", flat, used)
            out[k] = _q_value(model, shape["value"]["shape"], f"{prefix}.{i}.value", flat, used)
            i += 1
        return out
    if key not in flat:
        return None
    used.add(key)
    return _q_scalar(kind, flat[key], key)


def _q_scalar(kind, text, key):
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "boolean":
            if text not in ("true", "false"):
                raise ValueError
            return text == "true"
        if kind == "timestamp":
            return parse_timestamp(text)
    except ValueError:
        raise QueryInputError(f"Value '{text}' at '{key}' failed to satisfy constraint: Member must be of type {kind}") from None
    return text


def parse_timestamp(text):
    """Epoch seconds from ISO 8601 (with or without fraction) or an epoch number."""
    try:
        return float(text)
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]00:?00)?", text)
    if not m:
        raise ValueError(text)
    return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + float(m.group(2) or 0)
