"""tokens.py: PX-Security for the Portworx double: HS256/384/512 JWTs and the
default roles (ref/notes/portworx.md §1.3).

A token is trusted when its `iss` is a configured issuer and its signature checks
with that issuer's shared secret. Required claims: iss, sub, exp, iat, name, email
(pkg/auth/claims.go); custom claims `roles` and `groups`. Roles (pkg/role/
sdkserviceapi.go) are lists of {services, apis} rules with `*` globs:

    system.admin  everything
    system.view   *enumerate*, inspect*, stats, status, validate, capacityusage,
                  watch on every service; identity
    system.user   volume, cloudbackup, credentials, objectstore, schedulepolicy,
                  mountattach, migrate (all); cluster and node inspect*/enumerate*;
                  identity; policy enumerate/inspect
    system.guest  mountattach, volume, cloudbackup, migrate (all); identity.version;
                  cluster and node inspect*/enumerate*
Stdlib only.
"""

import base64
import fnmatch
import hashlib
import hmac
import json
import time

DEFAULT_ISSUER = "operator.portworx.io"  # the operator's self-signed issuer
DEFAULT_SECRET = "ferry-px-shared-secret"  # px-shared-secret/shared-secret in the double
ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
REQUIRED_CLAIMS = ("iss", "sub", "exp", "iat", "name", "email")

ROLES = {
    "system.admin": [{"services": ["*"], "apis": ["*"]}],
    "system.view": [
        {"services": ["*"], "apis": ["*enumerate*", "inspect*", "stats", "status", "validate", "capacityusage", "watch"]},
        {"services": ["identity"], "apis": ["*"]},
    ],
    "system.user": [
        {"services": ["volume", "cloudbackup", "credentials", "objectstore", "schedulepolicy", "mountattach", "migrate"], "apis": ["*"]},
        {"services": ["cluster", "node"], "apis": ["inspect*", "enumerate*"]},
        {"services": ["identity"], "apis": ["*"]},
        {"services": ["policy"], "apis": ["enumerate*", "inspect*"]},
    ],
    "system.guest": [
        {"services": ["mountattach", "volume", "cloudbackup", "migrate"], "apis": ["*"]},
        {"services": ["identity"], "apis": ["version"]},
        {"services": ["cluster", "node"], "apis": ["inspect*", "enumerate*"]},
    ],
}


class TokenError(Exception):
    """Why a token is refused: `status` 401 (Unauthenticated, gRPC 16) or 403
    (PermissionDenied, gRPC 7) and the message the SDK sends."""

    def __init__(self, grpc_code, message):
        super().__init__(message)
        self.grpc_code = grpc_code
        self.message = message


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims, secret, alg="HS256"):
    """A compact JWS of `claims` (a dict) with HMAC `alg`."""
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret.encode("utf-8"), f"{head}.{body}".encode("ascii"), ALGORITHMS[alg]).digest()
    return f"{head}.{body}.{_b64(mac)}"


def mint(sub="admin@ferry.test", roles=("system.admin",), groups=("*",), issuer=DEFAULT_ISSUER, secret=DEFAULT_SECRET,
         expires_in=24 * 3600, name=None, email=None, now=None, alg="HS256", extra=None):
    """A token as `pxctl auth token generate` or the operator would issue it."""
    now = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "sub": sub,
        "name": name or sub.split("@")[0],
        "email": email or (sub if "@" in sub else f"{sub}@ferry.test"),
        "iat": now,
        "exp": now + int(expires_in),
        "roles": list(roles),
        "groups": list(groups),
    }
    claims.update(extra or {})
    return sign(claims, secret, alg)


def unverified_claims(token):
    try:
        return json.loads(_unb64(token.split(".")[1]))
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def verify(token, issuers, revoked=(), now=None):
    """The claims of a valid token; TokenError otherwise. `issuers` maps an issuer
    to its shared secret."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError(16, "Unable to authenticate token: token contains an invalid number of segments")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        mac = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise TokenError(16, "Unable to authenticate token: token is malformed") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError(16, "Unable to authenticate token: token is malformed")
    iss = claims.get("iss")
    if not iss:
        raise TokenError(16, "Unable to obtain issuer from token: issuer not found in token")
    if iss not in issuers:
        raise TokenError(16, f"{iss} is not a trusted issuer")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenError(16, f"Unable to authenticate token: signing method {alg} is invalid")
    want = hmac.new(issuers[iss].encode("utf-8"), f"{parts[0]}.{parts[1]}".encode("ascii"), ALGORITHMS[alg]).digest()
    if not hmac.compare_digest(want, mac):
        raise TokenError(16, "Unable to authenticate token: signature is invalid")
    now = time.time() if now is None else now
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and now > exp:
        raise TokenError(16, "Unable to authenticate token: Token is expired")
    if token in revoked:
        raise TokenError(16, "Unable to authenticate token: Token is expired")
    missing = [c for c in REQUIRED_CLAIMS if not claims.get(c)]
    if missing:
        raise TokenError(7, f"Unable to authenticate token: token missing required claims: {', '.join(missing)}")
    return claims


def allowed(roles, service, api):
    """True if any of `roles` may call `service`.`api` (both lower case)."""
    for role in roles or ():
        for rule in ROLES.get(role, ()):
            if any(fnmatch.fnmatchcase(service, s) for s in rule["services"]) and any(fnmatch.fnmatchcase(api, a) for a in rule["apis"]):
                return True
    return False
