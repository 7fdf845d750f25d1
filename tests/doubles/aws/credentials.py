"""credentials.py: the keys the AWS test double accepts, and temporary ones it issues.

Standard library only; thread-safe (one lock). Every key maps to a secret, an
optional session token with an expiry, and the identity it stands for (the ARN and
UserId that STS GetCallerIdentity reports). After reset() only the fixed test key
exists:

    AKIDFERRYTEST / ferry+TEST/secret0123456789EXAMPLEKEY000
    arn:aws:iam::123456789012:user/ferry-test

Temporary keys (ASIA…, with a session token) come from STS AssumeRole and
AssumeRoleWithWebIdentity, the container-credentials endpoint and IMDS, or from
POST /_ferry/credentials; they expire on the double's clock.
"""

import base64
import os
import secrets
import threading

ACCOUNT_ID = "123456789012"
DEFAULT_ACCESS_KEY_ID = "AKIDFERRYTEST"
DEFAULT_SECRET_ACCESS_KEY = "ferry+TEST/secret0123456789EXAMPLEKEY000"
DEFAULT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/ferry-test"
DEFAULT_USER_ID = "AIDAFERRYTESTUSER0001"
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class KeyProblem(Exception):
    """Why a key cannot sign: "unknown" key, wrong or missing "token", or "expired"."""

    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


class Key:
    def __init__(self, access_key_id, secret, session_token=None, expiration=None, arn=DEFAULT_ARN, user_id=DEFAULT_USER_ID):
        self.access_key_id = access_key_id
        self.secret = secret
        self.session_token = session_token
        self.expiration = expiration  # epoch seconds on the double's clock, or None
        self.arn = arn
        self.user_id = user_id
        self.revoked = False  # set by the expire_credentials fault

    def public(self):
        return {
            "access_key_id": self.access_key_id,
            "session_token": self.session_token is not None,
            "expiration": self.expiration,
            "arn": self.arn,
            "expired": self.revoked,
        }


class Keystore:
    def __init__(self):
        self._lock = threading.Lock()
        self._keys = {}
        self.reset()

    def reset(self):
        with self._lock:
            self._keys = {DEFAULT_ACCESS_KEY_ID: Key(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY)}

    def add(self, key):
        with self._lock:
            self._keys[key.access_key_id] = key
        return key

    def get(self, access_key_id):
        with self._lock:
            return self._keys.get(access_key_id)

    def issue(self, now, duration, arn, user_id):
        """A new temporary key valid for `duration` seconds from `now`."""
        key = Key(
            "ASIA" + "".join(secrets.choice(_B32) for _ in range(16)),
            base64.b64encode(os.urandom(30)).decode(),
            "IQoJb3JpZ2luX2VjE" + base64.b64encode(os.urandom(240)).decode(),
            now + duration,
            arn,
            user_id,
        )
        return self.add(key)

    def check(self, access_key_id, session_token, now):
        """The key if it may sign now with `session_token` (None = none sent);
        raises KeyProblem otherwise."""
        key = self.get(access_key_id)
        if key is None:
            raise KeyProblem("unknown")
        if key.session_token != session_token:
            raise KeyProblem("token")
        if key.revoked or (key.expiration is not None and now >= key.expiration):
            raise KeyProblem("expired")
        return key

    def revoke(self, access_key_id):
        """Expire a temporary key at once; the permanent test key cannot expire."""
        with self._lock:
            key = self._keys.get(access_key_id)
            if key is not None and key.session_token is not None:
                key.revoked = True

    def listing(self):
        with self._lock:
            return [k.public() for k in self._keys.values()]
