"""sigv4.py: an independent AWS Signature Version 4 verifier for the AWS test double.

Standard library only (hashlib, hmac). Written from shared/ref/notes/aws.md §1 and
checked against the aws-c-auth v4 suite (test_conformance.py), never derived from
Ferry's C signer, so a test of that signer against the double is not circular.

    auth = parse(method, target, headers)      # None when the request carries no auth
    result = verify(auth, secret, method, target, headers, body, s3=False)
    result.ok, result.canonical_request, result.string_to_sign

`target` is the request target exactly as received (path and query, still
percent-encoded); `headers` is a list of (name, value) pairs in arrival order.
parse() raises SigError(kind, message) for malformed auth; kind is "incomplete"
(a required part is missing or garbled) or "mismatch" (well-formed but
inconsistent, e.g. the scope date differs from X-Amz-Date).

Rules implemented (notes §1.1-§1.4):
  - CanonicalURI: non-S3 services normalize the path (drop "." and empty segments,
    resolve "..", keep a trailing "/") and percent-encode the wire path again
    (double encoding); S3 keeps the path as is, each segment encoded once (a
    segment is decoded and re-encoded, so "%7E" and "~" sign alike). Empty path is "/".
  - CanonicalQuery: every name and value decoded and re-encoded with the unreserved
    set A-Z a-z 0-9 - . _ ~, sorted by name then value; X-Amz-Signature excluded.
  - CanonicalHeaders: the signed names, lowercased; each value trimmed with inner
    whitespace runs collapsed; repeated headers joined with "," in arrival order.
  - Payload hash: the X-Amz-Content-Sha256 header when present, else
    UNSIGNED-PAYLOAD for presigned S3, else SHA-256 of the body.
"""

import calendar
import hashlib
import hmac
import re
import time
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
SIGNATURE = re.compile(r"[0-9a-f]{64}")
MAX_PRESIGN_EXPIRES = 604800  # seven days, SigV4's limit
PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
)


class SigError(Exception):
    """Malformed or inconsistent authentication; kind is "incomplete" or "mismatch"."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Auth:
    """The parts of a request's SigV4 authentication, from the header or the query."""

    def __init__(self, mode):
        self.mode = mode  # "header" or "query"
        self.access_key_id = ""
        self.scope_date = ""  # YYYYMMDD
        self.region = ""
        self.service = ""
        self.signed_headers = []  # lowercase names, as listed
        self.signature = ""
        self.amz_date = ""  # YYYYMMDDTHHMMSSZ
        self.expires = None  # seconds, query mode only
        self.security_token = None

    @property
    def scope(self):
        return f"{self.scope_date}/{self.region}/{self.service}/aws4_request"

    @property
    def epoch(self):
        """X-Amz-Date as epoch seconds."""
        return calendar.timegm(time.strptime(self.amz_date, "%Y%m%dT%H%M%SZ"))


class Result:
    def __init__(self, ok, canonical_request, string_to_sign, expected):
        self.ok = ok
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign
        self.expected = expected  # the signature we computed


# -- encoding -----------------------------------------------------------------


def uri_encode(data, safe=""):
    """RFC 3986 percent-encoding of str or bytes, uppercase hex, unreserved kept."""
    return quote(data, safe=safe + "-_.~")


def normalize_path(path):
    """Remove "." and empty segments and resolve ".." (notes §1.1); keeps a trailing "/"."""
    if not path:
        return "/"
    out = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
        else:
            out.append(seg)
    trailing = "/" if path.endswith("/") and out else ""
    return "/" + "/".join(out) + trailing


def canonical_uri(wire_path, normalize=True):
    """The CanonicalURI of a wire path (still percent-encoded, as sent); S3 does
    not normalize."""
    if not normalize:  # each segment once, in the canonical encoding of its bytes
        segments = wire_path.split("/") if wire_path else ["", ""]
        return "/".join(uri_encode(unquote_to_bytes(seg)) for seg in segments)
    return quote(normalize_path(wire_path), safe="/~")


def query_pairs(raw_query):
    """Decoded (name, value) pairs of a raw query string, in order; "+" is literal."""
    pairs = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        pairs.append(
            (
                unquote_to_bytes(name).decode("utf-8", "surrogateescape"),
                unquote_to_bytes(value).decode("utf-8", "surrogateescape"),
            )
        )
    return pairs


def _enc(text):
    return uri_encode(text.encode("utf-8", "surrogateescape"))


def canonical_query(raw_query, exclude=("X-Amz-Signature",)):
    pairs = sorted((_enc(n), _enc(v)) for n, v in query_pairs(raw_query) if n not in exclude)
    return "&".join(f"{n}={v}" for n, v in pairs)


def canonical_headers(headers, signed):
    """The CanonicalHeaders block (each line ends in "\\n") for the signed names."""
    values = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(" ".join(value.split()))
    return "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in signed)


def canonical_request(method, wire_path, raw_query, headers, signed, payload_hash, normalize=True):
    return "\n".join(
        [
            method.upper(),
            canonical_uri(wire_path, normalize),
            canonical_query(raw_query),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        ]
    )


def string_to_sign(amz_date, scope, creq):
    digest = hashlib.sha256(creq.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret, date, region, service):
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(secret, date, region, service, sts):
    return hmac.new(signing_key(secret, date, region, service), sts.encode(), hashlib.sha256).hexdigest()


# -- parsing ------------------------------------------------------------------


def split_target(target):
    """(wire path, raw query) of a request target."""
    path, _, query = target.partition("?")
    return path, query


def header(headers, name):
    """The first value of header `name` (case-insensitive), or None."""
    name = name.lower()
    for n, v in headers:
        if n.lower() == name:
            return v
    return None


def _credential(auth, text, where):
    parts = text.split("/")
    if len(parts) != 5 or not all(parts):
        raise SigError(
            "incomplete",
            f"Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{text}'",
        )
    auth.access_key_id, auth.scope_date, auth.region, auth.service, term = parts
    if term != "aws4_request":
        raise SigError("mismatch", f"Credential should be scoped with a valid terminator: 'aws4_request', not '{term}'.")
    if not re.fullmatch(r"[0-9]{8}", auth.scope_date):
        raise SigError("incomplete", f"Invalid date in Credential scope: '{auth.scope_date}' ({where})")


def _signed_headers(auth, text):
    names = text.split(";")
    if not all(names) or any(n != n.lower() for n in names):
        raise SigError("incomplete", f"SignedHeaders must be lowercase names separated by ';', got '{text}'")
    if "host" not in names:
        raise SigError("mismatch", "'Host' must be a signed header.")
    auth.signed_headers = names


def _parse_header_auth(value, headers):
    auth = Auth("header")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SigError("incomplete", f"Unsupported AWS 'algorithm': '{algorithm}'")
    fields = {}
    for item in rest.split(","):
        name, eq, val = item.strip().partition("=")
        if eq:
            fields[name] = val
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing:
        raise SigError(
            "incomplete",
            " ".join(f"Authorization header requires '{n}' parameter." for n in missing)
            + f" Authorization={value}",
        )
    _credential(auth, fields["Credential"], "Authorization")
    _signed_headers(auth, fields["SignedHeaders"])
    auth.signature = fields["Signature"]
    date = header(headers, "X-Amz-Date")
    if date is None:
        raise SigError(
            "incomplete",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
            f"Authorization={value}",
        )
    auth.amz_date = date.strip()
    if "x-amz-date" not in auth.signed_headers:
        raise SigError("mismatch", "'X-Amz-Date' must be a signed header.")
    auth.security_token = header(headers, "X-Amz-Security-Token")
    if auth.security_token is not None and "x-amz-security-token" not in auth.signed_headers:
        raise SigError("mismatch", "'X-Amz-Security-Token' must be a signed header.")
    return auth


def _parse_query_auth(pairs):
    auth = Auth("query")
    found = {}
    for name, value in pairs:
        if name in PRESIGN_PARAMS:
            if name in found:
                raise SigError("incomplete", f"Query parameter {name} appears more than once.")
            found[name] = value
    missing = [n for n in PRESIGN_PARAMS[:6] if n not in found]
    if missing:
        raise SigError(
            "incomplete", " ".join(f"AWS query-string parameters must include '{n}'." for n in missing)
        )
    if found["X-Amz-Algorithm"] != ALGORITHM:
        raise SigError("incomplete", f"Unsupported AWS 'algorithm': '{found['X-Amz-Algorithm']}'")
    _credential(auth, found["X-Amz-Credential"], "X-Amz-Credential")
    _signed_headers(auth, found["X-Amz-SignedHeaders"])
    auth.signature = found["X-Amz-Signature"]
    auth.amz_date = found["X-Amz-Date"]
    try:
        auth.expires = int(found["X-Amz-Expires"])
    except ValueError:
        raise SigError("incomplete", "X-Amz-Expires should be a number") from None
    if not 0 <= auth.expires <= MAX_PRESIGN_EXPIRES:
        raise SigError("incomplete", f"X-Amz-Expires must be between 0 and {MAX_PRESIGN_EXPIRES} seconds")
    auth.security_token = found.get("X-Amz-Security-Token")
    return auth


def parse(method, target, headers):
    """The request's Auth, or None when it carries neither an Authorization header
    nor presign parameters. Raises SigError when they are malformed."""
    _, raw_query = split_target(target)
    pairs = query_pairs(raw_query)
    value = header(headers, "Authorization")
    presigned = any(n in ("X-Amz-Signature", "X-Amz-Credential") for n, _ in pairs)
    if value is not None and presigned:
        raise SigError("incomplete", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header may be given")
    if value is not None:
        auth = _parse_header_auth(value, headers)
    elif presigned:
        auth = _parse_query_auth(pairs)
    else:
        return None
    if not AMZ_DATE.fullmatch(auth.amz_date):
        raise SigError("incomplete", f"X-Amz-Date must be in the ISO8601 basic format, got '{auth.amz_date}'")
    if auth.amz_date[:8] != auth.scope_date:
        where = "X-Amz-Date" if auth.mode == "query" else "'X-Amz-Date'"
        raise SigError(
            "mismatch",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.scope_date}' != '{auth.amz_date[:8]}', from {where}.",
        )
    return auth


# -- verification -------------------------------------------------------------


def payload_hash(auth, headers, body, s3):
    declared = header(headers, "X-Amz-Content-Sha256")
    if declared is not None:
        return declared.strip()
    if auth.mode == "query" and s3:
        return UNSIGNED_PAYLOAD
    return hashlib.sha256(body or b"").hexdigest()


def verify(auth, secret, method, target, headers, body, s3=False, normalize=None):
    """Recompute the signature of the request with `secret`; Result.ok when it matches.
    `s3` selects S3's rules (no path normalization, unsigned presigned payload);
    `normalize` overrides the path rule alone (the test suite's "normalize": false)."""
    wire_path, raw_query = split_target(target)
    if normalize is None:
        normalize = not s3
    phash = payload_hash(auth, headers, body, s3)
    creq = canonical_request(method, wire_path, raw_query, headers, auth.signed_headers, phash, normalize)
    sts = string_to_sign(auth.amz_date, auth.scope, creq)
    expected = sign(secret, auth.scope_date, auth.region, auth.service, sts)
    ok = SIGNATURE.fullmatch(auth.signature) is not None and hmac.compare_digest(expected, auth.signature)
    return Result(ok, creq, sts, expected)


def body_hash_matches(headers, body):
    """False when X-Amz-Content-Sha256 names a hex digest the body does not have."""
    declared = header(headers, "X-Amz-Content-Sha256")
    if declared is None or not re.fullmatch(r"[0-9a-fA-F]{64}", declared.strip()):
        return True
    return declared.strip().lower() == hashlib.sha256(body or b"").hexdigest()


def amz(epoch):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def skew_error(signed_at, now, window=300):
    """The AWS "Signature expired/not yet current" message when `signed_at` (epoch)
    is more than `window` seconds from `now`, else None (notes §1.5)."""
    minutes = window // 60
    if signed_at < now - window:
        return (
            f"Signature expired: {amz(signed_at)} is now earlier than {amz(now - window)} "
            f"({amz(now)} - {minutes} min.)"
        )
    if signed_at > now + window:
        return (
            f"Signature not yet current: {amz(signed_at)} is still later than {amz(now + window)} "
            f"({amz(now)} + {minutes} min.)"
        )
    return None
