"""metadata.py: the container-credentials endpoint and IMDSv2, notes §5.3.

Standard library only. Every credentials answer mints a fresh temporary key
(keystore.issue), valid for `duration_seconds` (default 3600) on the double's clock.

Container credentials (unsigned GET):
  /creds/<anything>   relative-URI style, as CodeBuild's http://169.254.170.2$URI
                      answers: no Authorization needed
  /v1/credentials     full-URI style (EKS Pod Identity path): requires header
                      "Authorization: <token>" equal to the configured token
                      (default "ferry-container-token"); else 401
  200 {"AccessKeyId","SecretAccessKey","Token","Expiration":"…Z","RoleArn","AccountId"}

IMDSv2:
  PUT /latest/api/token, X-aws-ec2-metadata-token-ttl-seconds: 1..21600
      -> 200 text token (and the TTL header); missing/bad TTL -> 400
  GET /latest/meta-data/iam/security-credentials/        -> the role name
  GET /latest/meta-data/iam/security-credentials/<role>  -> {Code, LastUpdated,
      Type, AccessKeyId, SecretAccessKey, Token, Expiration}; other role -> 404
  GET /latest/meta-data/placement/region                 -> the region
  every GET needs X-aws-ec2-metadata-token with a live token, else 401.

Settings (POST /_ferry/credentials {"provider": {...}}): container_token,
duration_seconds, role_name, region.
"""

import base64
import os
import threading

from credentials import ACCOUNT_ID
import protocols

DEFAULT_CONTAINER_TOKEN = "ferry-container-token"
DEFAULT_ROLE = "ferry-test-role"
MAX_IMDS_TTL = 21600
MAX_IMDS_TOKENS = 10_000
CREDS_PREFIX = "/latest/meta-data/iam/security-credentials/"


class Providers:
    def __init__(self, keys, region):
        self.keys = keys
        self.default_region = region
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.container_token = DEFAULT_CONTAINER_TOKEN
            self.duration = 3600
            self.role = DEFAULT_ROLE
            self.region = self.default_region
            self.imds_tokens = {}  # token -> expiry (double's clock)

    def configure(self, spec):
        """Apply a settings dict; returns the settings. Raises ValueError."""
        with self._lock:
            for name, value in spec.items():
                if name == "container_token" and isinstance(value, str) and value:
                    self.container_token = value
                elif name == "duration_seconds" and isinstance(value, (int, float)) and value > 0:
                    self.duration = value
                elif name in ("role_name", "region") and isinstance(value, str) and value:
                    setattr(self, "role" if name == "role_name" else "region", value)
                else:
                    raise ValueError(f"bad provider setting {name}={value!r}")
            return self.settings()

    def settings(self):
        return {"container_token": self.container_token, "duration_seconds": self.duration, "role_name": self.role, "region": self.region}

    def _issue(self, now):
        arn = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{self.role}/ferry-session"
        return self.keys.issue(now, self.duration, arn, "AROAFERRYTESTROLE0001:ferry-session")

    # -- container credentials ------------------------------------------------

    @staticmethod
    def container_operation(path):
        if path.startswith("/creds/") or path == "/v1/credentials":
            return "GetCredentials"
        return None

    def container(self, method, path, headers, now):
        if method != "GET":
            return protocols.plain_json(405, {"message": "method not allowed"})
        if path == "/v1/credentials" and headers.get("Authorization") != self.container_token:
            return protocols.plain_json(401, {"code": "AccessDenied", "message": "missing or invalid Authorization token"})
        key = self._issue(now)
        return protocols.plain_json(
            200,
            {
                "AccessKeyId": key.access_key_id,
                "SecretAccessKey": key.secret,
                "Token": key.session_token,
                "Expiration": protocols.iso8601(int(key.expiration)),
                "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{self.role}",
                "AccountId": ACCOUNT_ID,
            },
        )

    # -- IMDSv2 -------------------------------------------------------------------

    @staticmethod
    def imds_operation(path):
        if path == "/latest/api/token":
            return "GetToken"
        if path == CREDS_PREFIX:
            return "GetRoleName"
        if path.startswith(CREDS_PREFIX):
            return "GetRoleCredentials"
        return "GetMetadata"

    def imds(self, method, path, headers, now):
        if path == "/latest/api/token":
            return self._token(method, headers, now)
        if method not in ("GET", "HEAD"):
            return protocols.plain_text(405, "Method Not Allowed")
        token = headers.get("X-aws-ec2-metadata-token")
        with self._lock:
            expiry = self.imds_tokens.get(token) if token else None
        if expiry is None or now >= expiry:
            return protocols.plain_text(401, "Unauthorized")
        if path == CREDS_PREFIX:
            return protocols.plain_text(200, self.role)
        if path == CREDS_PREFIX + self.role:
            key = self._issue(now)
            return protocols.plain_json(
                200,
                {
                    "Code": "Success",
                    "LastUpdated": protocols.iso8601(int(now)),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": key.access_key_id,
                    "SecretAccessKey": key.secret,
                    "Token": key.session_token,
                    "Expiration": protocols.iso8601(int(key.expiration)),
                },
            )
        if path == "/latest/meta-data/placement/region":
            return protocols.plain_text(200, self.region)
        return protocols.plain_text(404, "Not Found")

    def _token(self, method, headers, now):
        if method != "PUT":
            return protocols.plain_text(405, "Method Not Allowed")
        if headers.get("X-Forwarded-For") is not None:
            return protocols.plain_text(403, "Forbidden")
        text = headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if text is None or not text.strip().isdigit() or not 1 <= int(text) <= MAX_IMDS_TTL:
            return protocols.plain_text(400, "Bad Request")
        ttl = int(text)
        token = "AQAEA" + base64.urlsafe_b64encode(os.urandom(36)).decode()
        with self._lock:
            if len(self.imds_tokens) >= MAX_IMDS_TOKENS:
                self.imds_tokens = {t: e for t, e in self.imds_tokens.items() if e > now}
            self.imds_tokens[token] = now + ttl
        return protocols.plain_text(200, token, [("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])
