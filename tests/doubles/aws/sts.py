"""sts.py: AWS STS (Query protocol) for the AWS test double, notes §2.2, §5.3, §7.

Operations:
  GetCallerIdentity          the signing key's identity {UserId, Account, Arn}; by
                             signed POST, or by presigned GET (then eks_problems()
                             applies aws-iam-authenticator's checks first)
  AssumeRole                 signed; returns temporary credentials registered with
                             the keystore (DurationSeconds default 3600)
  AssumeRoleWithWebIdentity  unsigned; the token must be non-empty; a JWT's exp is
                             honoured (ExpiredTokenException) and its sub/aud/iss
                             are echoed; returns temporary credentials
Control (/_ferry/sts): POST {"deny_roles": [role ARN, ...]} makes AssumeRole and
AssumeRoleWithWebIdentity answer AccessDenied for those roles; GET shows the setting.
"""

import base64
import binascii
import hashlib
import json
import re

from base import AwsError, Service, not_implemented

ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)")
# aws-iam-authenticator pkg/token/token.go: the only query parameters a token may carry.
EKS_PARAMS = {
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
}
EKS_MAX_EXPIRES = 900  # seconds
EKS_WINDOW = 900  # STS honours a presigned GetCallerIdentity this long after X-Amz-Date


def _role_id(role_arn):
    digest = hashlib.sha1(role_arn.encode()).digest()
    return "AROA" + base64.b32encode(digest).decode()[:17]


def eks_problems(pairs, auth):
    """aws-iam-authenticator's objections to a presigned GetCallerIdentity (notes §7),
    as a message, or None. `pairs` are the decoded query parameters."""
    seen = set()
    for name, _ in pairs:
        low = name.lower()
        if low not in EKS_PARAMS:
            return f"input token was not properly formatted: non-whitelisted query parameter {name!r}"
        if low in seen:
            return f"input token was not properly formatted: query parameter {name!r} appears more than once"
        seen.add(low)
    action = next((v for n, v in pairs if n.lower() == "action"), None)
    if action != "GetCallerIdentity":
        return f"input token was not properly formatted: unexpected action parameter in pre-signed URL: {action!r}"
    if "x-k8s-aws-id" not in auth.signed_headers:
        return "input token was not properly formatted: client did not sign the x-k8s-aws-id header in the pre-signed URL"
    if not 0 <= auth.expires <= EKS_MAX_EXPIRES:
        return (
            "input token was not properly formatted: invalid X-Amz-Expires parameter in pre-signed URL: "
            f"{auth.expires} is not between 0 and {EKS_MAX_EXPIRES}"
        )
    return None


def _jwt_claims(token):
    """The payload of a JWT-shaped token as a dict, None if the token is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        raise AwsError("InvalidIdentityToken", "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)") from None
    if not isinstance(claims, dict):
        raise AwsError("InvalidIdentityToken", "The ID Token provided is not a valid JWT.")
    return claims


class StsService(Service):
    signing_name = "sts"
    protocol = "query"
    target_prefix = ""

    def reset(self):
        self.deny_roles = set()

    def call(self, op, params, ctx):
        if op == "GetCallerIdentity":
            key = self.core.keys.get(ctx.access_key_id)
            account = key.arn.split(":")[4] or ctx.account_id
            return {"UserId": key.user_id, "Account": account, "Arn": key.arn}
        if op == "AssumeRole":
            return self._assume(params, ctx, "AssumeRole")
        if op == "AssumeRoleWithWebIdentity":
            return self._assume_web(params, ctx)
        raise not_implemented(op)

    def _role(self, params, action, ctx):
        arn = params["RoleArn"]
        m = ROLE_ARN.fullmatch(arn)
        if m is None or arn in self.deny_roles:
            who = self.core.keys.get(ctx.access_key_id)
            user = who.arn if who else "anonymous"
            raise AwsError("AccessDenied", f"User: {user} is not authorized to perform: sts:{action} on resource: {arn}", 403)
        return arn, m.group(1), m.group(2)

    def _issue(self, params, ctx, arn, account, role_name):
        session = params["RoleSessionName"]
        duration = params.get("DurationSeconds", 3600)
        user_id = f"{_role_id(arn)}:{session}"
        assumed_arn = f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}"
        key = self.core.keys.issue(ctx.now, duration, assumed_arn, user_id)
        return {
            "Credentials": {
                "AccessKeyId": key.access_key_id,
                "SecretAccessKey": key.secret,
                "SessionToken": key.session_token,
                "Expiration": float(int(key.expiration)),
            },
            "AssumedRoleUser": {"AssumedRoleId": user_id, "Arn": assumed_arn},
        }

    def _assume(self, params, ctx, action):
        arn, account, role_name = self._role(params, action, ctx)
        return self._issue(params, ctx, arn, account, role_name)

    def _assume_web(self, params, ctx):
        token = params["WebIdentityToken"]
        if not token.strip():
            raise AwsError("InvalidIdentityToken", "The web identity token is empty")
        claims = _jwt_claims(token) or {}
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and ctx.now >= exp:
            raise AwsError(
                "ExpiredTokenException",
                f"Token expired: current date/time {int(ctx.now)} must be before the expiration date/time {int(exp)}",
            )
        arn, account, role_name = self._role(params, "AssumeRoleWithWebIdentity", ctx)
        result = self._issue(params, ctx, arn, account, role_name)
        aud = claims.get("aud", "sts.amazonaws.com")
        result["SubjectFromWebIdentityToken"] = str(claims.get("sub", "system:serviceaccount:ferry:ferry"))
        result["Audience"] = aud[0] if isinstance(aud, list) and aud else str(aud)
        result["Provider"] = str(claims.get("iss", f"arn:aws:iam::{account}:oidc-provider/oidc.ferry.test"))
        return result

    def control(self, method, path, body, ctx):
        if method == "POST":
            roles = (body or {}).get("deny_roles", [])
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise AwsError("BadRequest", "deny_roles must be a list of role ARNs")
            self.deny_roles = set(roles)
        return {"deny_roles": sorted(self.deny_roles)}


SERVICE = StsService()
