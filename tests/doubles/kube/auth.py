"""auth.py: authentication and authorization for the Kubernetes double.

Authentication, in the API server's order (the first that applies wins):
  1. TLS client certificate signed by the double's CA: user = CN, groups = O.
  2. Authorization: Bearer <token>:
       ferry-admin-token     user "ferry-admin", groups system:masters
       ferry-limited-token   user "ferry-limited": may read everything and create,
                             update and patch, but is forbidden (403) to delete or
                             deletecollection anything, any verb on secrets, and
                             exec into pods (create on pods/exec)
       k8s-aws-v1.<...>      an EKS token, checked by the AWS double's
                             /_ferry/eks/verify (when --eks-verify is given);
                             user = the IAM ARN, groups system:masters
       tokens added with POST /_ferry/tokens (optionally expiring)
     An unknown, expired or revoked token is 401 Unauthorized.
  3. Authorization: Basic ferry-basic:ferry-password (user "ferry-basic").
  Nothing at all: user system:anonymous, who may only GET /version, /healthz,
  /livez and /readyz; anything else is 403, as with the API server's default
  --anonymous-auth=true and RBAC. Over plain HTTP (no --tls) anonymous may do
  everything, because kubectl sends no credentials over http.

Authorization: every authenticated user may do everything, except what a token's
"forbid" rules deny: [{"verbs": ["delete", "*"], "resources": ["pods",
"pods/exec", "deployments.apps", "*"], "namespaces": ["ci"]}] (namespaces
optional). 403 messages follow RBAC's wording.
"""

import base64
import json
import secrets
import threading
import time
import urllib.error
import urllib.request

from store import ApiError

ADMIN_TOKEN = "ferry-admin-token"
LIMITED_TOKEN = "ferry-limited-token"
BASIC_USER, BASIC_PASSWORD = "ferry-basic", "ferry-password"
ADMIN_GROUPS = ["system:masters", "system:authenticated"]
LIMITED_FORBID = [
    {"verbs": ["delete", "deletecollection"], "resources": ["*"]},
    {"verbs": ["*"], "resources": ["secrets"]},
    {"verbs": ["create", "get"], "resources": ["pods/exec", "pods/attach"]},
]
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
EKS_CACHE_SECONDS = 60


class User:
    def __init__(self, name, groups=(), forbid=(), via="token"):
        self.name = name
        self.groups = list(groups)
        self.forbid = list(forbid)
        self.via = via  # "cert", "token", "basic", "eks", "anonymous"

    @property
    def anonymous(self):
        return self.via == "anonymous"

    def public(self):
        return {"name": self.name, "groups": self.groups, "via": self.via}


ANONYMOUS = User("system:anonymous", ["system:unauthenticated"], via="anonymous")


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized", None)


def _check_rules(rules):
    if not isinstance(rules, list):
        raise ValueError("forbid must be a list of {verbs, resources, namespaces?} rules")
    for r in rules:
        if not isinstance(r, dict) or not isinstance(r.get("verbs"), list) or not isinstance(r.get("resources"), list):
            raise ValueError("each forbid rule needs lists verbs and resources")
        if "namespaces" in r and not isinstance(r["namespaces"], list):
            raise ValueError("forbid rule namespaces must be a list")
    return rules


class Auth:
    def __init__(self, eks_verify=None, eks_cluster="ferry-test", anonymous_admin=False):
        self.lock = threading.Lock()
        # Plain HTTP: kubectl sends no credentials at all there (§5.5), so the
        # double lets anonymous requests do everything instead of answering 403.
        self.anonymous_admin = anonymous_admin
        self.eks_verify = eks_verify
        self.eks_cluster = eks_cluster
        self.reset()

    def reset(self):
        with self.lock:
            self.tokens = {
                ADMIN_TOKEN: {"user": "ferry-admin", "groups": ADMIN_GROUPS, "forbid": [], "expires_at": None, "revoked": False},
                LIMITED_TOKEN: {"user": "ferry-limited", "groups": ["system:authenticated"], "forbid": LIMITED_FORBID, "expires_at": None, "revoked": False},
            }
            self.cert_rules = {}  # CN -> forbid rules
            self._eks = {}  # token -> (expires, arn)

    # -- authentication --------------------------------------------------------------

    def authenticate(self, headers, peercert):
        """The User for a request; raises ApiError 401 for bad credentials."""
        cn, orgs = _subject(peercert)
        if cn:
            with self.lock:
                rules = self.cert_rules.get(cn, [])
            return User(cn, orgs + ["system:authenticated"], rules, via="cert")
        header = headers.get("Authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            if value.startswith("k8s-aws-v1."):
                return self._eks_user(value)
            with self.lock:
                t = self.tokens.get(value)
                if t is None or t["revoked"] or (t["expires_at"] is not None and time.time() >= t["expires_at"]):
                    raise unauthorized()
                return User(t["user"], t["groups"], t["forbid"], via="token")
        if scheme.lower() == "basic" and value:
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise unauthorized() from None
            if (user, password) == (BASIC_USER, BASIC_PASSWORD):
                return User(BASIC_USER, ["system:authenticated"], via="basic")
            raise unauthorized()
        if header:
            raise unauthorized()
        return ANONYMOUS

    def _eks_user(self, token):
        now = time.time()
        with self.lock:
            hit = self._eks.get(token)
            if hit and hit[0] > now:
                return User(hit[1], ADMIN_GROUPS, via="eks")
        url = self._eks_url()
        if not url:
            raise unauthorized()
        body = json.dumps({"token": token, "cluster": self.eks_cluster}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                arn = json.load(r).get("arn")
        except (urllib.error.URLError, OSError, ValueError):
            raise unauthorized() from None
        if not arn:
            raise unauthorized()
        with self.lock:
            if len(self._eks) > 1000:
                self._eks.clear()
            self._eks[token] = (now + EKS_CACHE_SECONDS, arn)
        return User(arn, ADMIN_GROUPS, via="eks")

    def _eks_url(self):
        """--eks-verify is a URL, or @PORTFILE of the AWS double (read when needed,
        since the doubles start side by side)."""
        v = self.eks_verify
        if v and v.startswith("@"):
            try:
                with open(v[1:]) as f:
                    return f"http://127.0.0.1:{int(f.read().strip())}/_ferry/eks/verify"
            except (OSError, ValueError):
                return None
        return v

    def expire(self, token):
        """Make `token` fail with 401 from now on (a fault, or POST /_ferry/tokens)."""
        with self.lock:
            if token in self.tokens:
                self.tokens[token]["revoked"] = True
            self._eks.pop(token, None)

    # -- authorization ---------------------------------------------------------------

    def authorize(self, user, verb, res, subresource, namespace, name, path):
        """Raise ApiError 403 unless `user` may do `verb` on the resource."""
        if user.anonymous and not self.anonymous_admin:
            if path in PUBLIC_PATHS:
                return
            if res is None:
                raise ApiError(403, "Forbidden", f'forbidden: User "system:anonymous" cannot get path "{path}"', {})
            self._deny(user, verb, res, subresource, namespace, name)
        if res is None:
            return
        full = f"{res}/{subresource}" if subresource else res
        for rule in user.forbid:
            verbs, resources = rule.get("verbs") or [], rule.get("resources") or []
            if "*" not in verbs and verb not in verbs:
                continue
            if "*" not in resources and full not in resources and not (subresource is None and res in resources):
                continue
            if rule.get("namespaces") and namespace not in rule["namespaces"]:
                continue
            self._deny(user, verb, res, subresource, namespace, name)

    @staticmethod
    def _deny(user, verb, res, subresource, namespace, name):
        plural, _, group = res.partition(".")
        resource = f"{plural}/{subresource}" if subresource else plural
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        what = f'{res} "{name}"' if name else res
        details = {"name": name} if name else {}
        if group:
            details["group"] = group
        details["kind"] = resource
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" in API group "{group}" {where}',
            details,
        )

    # -- control ---------------------------------------------------------------------

    def control(self, method, body):
        """GET: the tokens; POST: {"token", "user", "groups"?, "expires_in"?, "forbid"?}
        adds or replaces one, {"issue": {...same without token}} mints one,
        {"expire": TOKEN} revokes one, {"cert": CN, "forbid": [...]} sets a client
        certificate user's rules."""
        out = {}
        if method == "POST":
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            if "expire" in body:
                self.expire(str(body["expire"]))
            if "cert" in body:
                with self.lock:
                    self.cert_rules[str(body["cert"])] = _check_rules(body.get("forbid") or [])
            spec = body.get("issue") if isinstance(body.get("issue"), dict) else (body if "token" in body else None)
            if spec is not None:
                token = spec.get("token") or ("ferry-" + secrets.token_hex(16))
                user = spec.get("user") or "ferry-issued"
                life = spec.get("expires_in")
                if life is not None and (isinstance(life, bool) or not isinstance(life, (int, float))):
                    raise ValueError("expires_in must be a number of seconds")
                groups = spec.get("groups")
                groups = list(groups) if isinstance(groups, list) else (ADMIN_GROUPS if spec.get("admin", True) else ["system:authenticated"])
                with self.lock:
                    self.tokens[token] = {
                        "user": user,
                        "groups": groups,
                        "forbid": _check_rules(spec.get("forbid") or []),
                        "expires_at": time.time() + life if life is not None else None,
                        "revoked": False,
                    }
                out["issued"] = {"token": token, "user": user}
        with self.lock:
            out["tokens"] = [
                {
                    "user": t["user"],
                    "token_prefix": tok[:12],
                    "groups": t["groups"],
                    "forbid": t["forbid"],
                    "expires_at": t["expires_at"],
                    "valid": not t["revoked"] and (t["expires_at"] is None or time.time() < t["expires_at"]),
                }
                for tok, t in self.tokens.items()
            ]
        return out


def _subject(peercert):
    """(CN, [O...]) of a verified client certificate, or (None, [])."""
    if not peercert:
        return None, []
    cn, orgs = None, []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return cn, orgs
