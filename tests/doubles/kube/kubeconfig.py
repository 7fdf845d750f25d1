#!/usr/bin/python3
"""kubeconfig.py: wait for the Kubernetes double, then write a kubeconfig for it.

    kubeconfig.py --url https://127.0.0.1:PORT --certs DIR --out FILE [--wait SECONDS]

Polls URL/_ferry/health with the admin token (verifying TLS with DIR/ca.pem) until it
answers; fails (exit 1, reason on stderr) if it does not within --wait seconds or if
controllers.py / streams.py failed to load. Then writes FILE (atomically, mode 600):

    cluster  ferry          server URL, certificate-authority-data = DIR/ca.pem
    user     ferry-test     client certificate DIR/client.pem + key (CN=ferry-test),
                            embedded as *-data; an admin
    user     ferry-admin    token ferry-admin-token (admin)
    user     ferry-limited  token ferry-limited-token (403 on delete, secrets, exec)
    context  ferry          ferry-test          (current-context)
    context  ferry-token    ferry-admin
    context  ferry-limited  ferry-limited

Used by tests/doubles/start; test_conformance.py uses write() directly.
"""

import argparse
import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
ADMIN_TOKEN = "ferry-admin-token"
LIMITED_TOKEN = "ferry-limited-token"


def _b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def render(url, certs):
    """The kubeconfig text (YAML) for the double at `url`."""
    return "\n".join(
        [
            "apiVersion: v1",
            "kind: Config",
            "preferences: {}",
            "current-context: ferry",
            "clusters:",
            "- name: ferry",
            "  cluster:",
            f"    server: {url}",
            f"    certificate-authority-data: {_b64(os.path.join(certs, 'ca.pem'))}",
            "users:",
            "- name: ferry-test",
            "  user:",
            f"    client-certificate-data: {_b64(os.path.join(certs, 'client.pem'))}",
            f"    client-key-data: {_b64(os.path.join(certs, 'client.key'))}",
            "- name: ferry-admin",
            "  user:",
            f"    token: {ADMIN_TOKEN}",
            "- name: ferry-limited",
            "  user:",
            f"    token: {LIMITED_TOKEN}",
            "contexts:",
            "- name: ferry",
            "  context:",
            "    cluster: ferry",
            "    user: ferry-test",
            "- name: ferry-token",
            "  context:",
            "    cluster: ferry",
            "    user: ferry-admin",
            "- name: ferry-limited",
            "  context:",
            "    cluster: ferry",
            "    user: ferry-limited",
            "",
        ]
    )


def write(path, url, certs):
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render(url, certs))
    os.replace(tmp, path)


def health(url, certs, deadline):
    """The double's /_ferry/health answer, polling until `deadline` (monotonic)."""
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    req = urllib.request.Request(url + "/_ferry/health", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    while True:
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                return json.load(r)
        except (OSError, urllib.error.URLError, ValueError) as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"no answer from {url}/_ferry/health: {e}") from None
            time.sleep(0.05)


def main(argv=None):
    p = argparse.ArgumentParser(description="Wait for the Kubernetes double and write a kubeconfig for it.")
    p.add_argument("--url", required=True)
    p.add_argument("--certs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--wait", type=float, default=10.0)
    args = p.parse_args(argv)
    answer = health(args.url, args.certs, time.monotonic() + args.wait)
    if answer.get("load_errors"):
        sys.exit(f"controllers.py/streams.py failed to load: {answer['load_errors']}")
    write(args.out, args.url, args.certs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
