"""auth.py: who signed a request, and AWS's answer when nobody validly did.

authenticate() runs, in order: parse the SigV4 parts (header or presigned query),
check the credential scope (signing name of the service routed to, a valid region,
the region in an AWS-style Host), look the key up (unknown, wrong or missing
session token, expired), check the clock (header mode: X-Amz-Date within 5 minutes
of the double's clock; presigned: not after X-Amz-Date + X-Amz-Expires, or for STS
+15 minutes whatever Expires says, notes §7), recompute the signature with
sigv4.py, and check a declared X-Amz-Content-Sha256 against the body (UNSIGNED-PAYLOAD
only for S3). Failures raise AuthFailure(kind, message); failure() turns a kind
into the protocol's code and status:

  kind        JSON 1.1 (400)                         Query (STS)                    S3
  missing     MissingAuthenticationTokenException    MissingAuthenticationToken 403 AccessDenied 403
  incomplete  IncompleteSignatureException           IncompleteSignature 400        AuthorizationHeaderMalformed 400
  mismatch    InvalidSignatureException              SignatureDoesNotMatch 403      SignatureDoesNotMatch 403
  unknown     UnrecognizedClientException            InvalidClientTokenId 403       InvalidAccessKeyId 403
  token       UnrecognizedClientException            InvalidClientTokenId 403       InvalidToken 400
  expired     ExpiredTokenException                  ExpiredToken 403               ExpiredToken 400
  skew        InvalidSignatureException              SignatureDoesNotMatch 403      RequestTimeTooSkewed 403
  presign     InvalidSignatureException              SignatureDoesNotMatch 403      AccessDenied 403
  eks         AccessDeniedException                  AccessDenied 403               AccessDenied 403
"""

import re

from credentials import KeyProblem
import sigv4

REGION = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]+")
AWS_HOST_REGION = re.compile(r"(?:[a-z0-9-]+\.)+?(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]+)\.amazonaws\.com(?:\.cn)?(?::[0-9]+)?")
SKEW_WINDOW = 300  # seconds, notes §1.5
STS_PRESIGN_WINDOW = 900  # notes §7

MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"

_CODES = {  # kind -> {protocol: (code, status)}
    "missing": {"json": ("MissingAuthenticationTokenException", 400), "query": ("MissingAuthenticationToken", 403), "s3": ("AccessDenied", 403)},
    "incomplete": {"json": ("IncompleteSignatureException", 400), "query": ("IncompleteSignature", 400), "s3": ("AuthorizationHeaderMalformed", 400)},
    "mismatch": {"json": ("InvalidSignatureException", 400), "query": ("SignatureDoesNotMatch", 403), "s3": ("SignatureDoesNotMatch", 403)},
    "unknown": {"json": ("UnrecognizedClientException", 400), "query": ("InvalidClientTokenId", 403), "s3": ("InvalidAccessKeyId", 403)},
    "token": {"json": ("UnrecognizedClientException", 400), "query": ("InvalidClientTokenId", 403), "s3": ("InvalidToken", 400)},
    "expired": {"json": ("ExpiredTokenException", 400), "query": ("ExpiredToken", 403), "s3": ("ExpiredToken", 400)},
    "skew": {"json": ("InvalidSignatureException", 400), "query": ("SignatureDoesNotMatch", 403), "s3": ("RequestTimeTooSkewed", 403)},
    "presign": {"json": ("InvalidSignatureException", 400), "query": ("SignatureDoesNotMatch", 403), "s3": ("AccessDenied", 403)},
    "eks": {"json": ("AccessDeniedException", 400), "query": ("AccessDenied", 403), "s3": ("AccessDenied", 403)},
}
_MESSAGES = {  # kind -> {protocol: message}, when the protocol words it its own way
    "missing": {"json": "Missing Authentication Token", "query": "Request is missing Authentication Token", "s3": "Access Denied"},
    "unknown": {"s3": "The AWS Access Key Id you provided does not exist in our records."},
    "token": {"s3": "The provided token is malformed or otherwise invalid."},
    "expired": {"s3": "The provided token has expired."},
    "skew": {"s3": "The difference between the request time and the current time is too large."},
    "presign": {"s3": "Request has expired"},
}


class AuthFailure(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def failure(kind, protocol, message):
    """(code, message, status) of an auth failure in `protocol` ("json", "query", "s3")."""
    code, status = _CODES[kind][protocol]
    return code, _MESSAGES.get(kind, {}).get(protocol, message), status


def expired_token(protocol):
    """(code, message, status) for credentials that have just expired."""
    return failure("expired", protocol, EXPIRED_TOKEN)


def authenticate(keys, now, signing_name, method, target, headers, body, s3=False):
    """(Auth, Key) of a validly signed request, or AuthFailure. `headers` is a list of
    (name, value) pairs in arrival order; `now` is the double's clock."""
    try:
        auth = sigv4.parse(method, target, headers)
    except sigv4.SigError as e:
        raise AuthFailure(e.kind, e.message) from None
    if auth is None:
        raise AuthFailure("missing", "Missing Authentication Token")
    if auth.service != signing_name:
        raise AuthFailure("mismatch", f"Credential should be scoped to correct service: '{signing_name}'. ")
    host = sigv4.header(headers, "Host") or ""
    m = AWS_HOST_REGION.fullmatch(host.lower())
    if not REGION.fullmatch(auth.region) or (m and m.group("region") != auth.region and not s3):
        raise AuthFailure("mismatch", "Credential should be scoped to a valid region. ")
    try:
        key = keys.check(auth.access_key_id, auth.security_token, now)
    except KeyProblem as e:
        raise AuthFailure(e.kind, EXPIRED_TOKEN if e.kind == "expired" else INVALID_TOKEN) from None
    signed_at = auth.epoch
    if auth.mode == "header":
        problem = sigv4.skew_error(signed_at, now, SKEW_WINDOW)
        if problem:
            raise AuthFailure("skew", problem)
    else:
        lifetime = STS_PRESIGN_WINDOW if signing_name == "sts" else auth.expires
        if now > signed_at + lifetime:
            raise AuthFailure(
                "presign",
                f"Signature expired: {sigv4.amz(signed_at)} is now earlier than {sigv4.amz(now - lifetime)} "
                f"({sigv4.amz(now)} - {lifetime // 60} min.)",
            )
        if signed_at > now + SKEW_WINDOW:
            raise AuthFailure("skew", sigv4.skew_error(signed_at, now, SKEW_WINDOW))
    result = sigv4.verify(auth, key.secret, method, target, headers, body, s3=s3)
    if not result.ok:
        raise AuthFailure(
            "mismatch",
            f"{MISMATCH}\n\nThe Canonical String for this request should have been\n'{result.canonical_request}'\n\n"
            f"The String-to-Sign should have been\n'{result.string_to_sign}'\n",
        )
    declared = (sigv4.header(headers, "X-Amz-Content-Sha256") or "").strip()
    if not sigv4.body_hash_matches(headers, body) or (declared == sigv4.UNSIGNED_PAYLOAD and not s3):
        raise AuthFailure("mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
    return auth, key
