"""The Portworx double: the OpenStorage SDK REST gateway (what Portworx serves on
9021), running inside the Kubernetes double's process and sharing its Store.

The Kubernetes double (kube/server.py) imports this package when it is present and
builds one Portworx(store, controllers=..., streams=..., port=..., port_file=...,
secured=...): that binds a second listener (plain HTTP) in a daemon thread, installs
the controllers hooks and a store subscription (bridge.py), registers `pxctl` with
streams.py (pxctl.py) and seeds the Portworx pod, the portworx-api Service and the
stork-snapshot-sc StorageClass. It calls reset() after its own store reset and
stop() at exit. See README.md for the endpoints, control endpoints and conventions.

Files: model.py (state, SDK semantics, JSON encodings), gateway.py (HTTP API,
errors, security, faults, call log), tokens.py (JWT, roles), bridge.py (Kubernetes
side), pxctl.py (exec), test_portworx.py.
"""

import json
import sys
import threading
import traceback
from urllib.parse import parse_qsl, urlsplit

import serving  # tests/doubles/serving.py (the Kubernetes double puts it on sys.path)

from . import bridge as bridge_module
from . import gateway as gateway_module
from . import model
from . import pxctl as pxctl_module
from . import tokens

CONTROL = "/_ferry/portworx"
MAX_BODY = gateway_module.MAX_BODY


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(serving.Handler):
    server_version = "ferry-portworx/1"

    def _dispatch(self):
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(gateway_module.plain_reply(400, "Bad Request"))
            return
        reply = self.guarded(lambda: self._route(body), lambda: gateway_module.error_reply(13, "internal error in Ferry's Portworx double; see its log"))
        if reply is gateway_module.DROP:
            self.close_connection = True
            return
        self._send(reply)

    def _route(self, body):
        px = self.server.px
        if self.path.startswith(CONTROL + "/") or self.path == CONTROL:
            return px.control(self.command, self.path, body)
        return px.gateway.handle(self.command, self.path, self.headers, body)

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts, total = [], 0
            while True:
                size = int(self.rfile.readline(1026).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1026) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
        n = self.headers.get("Content-Length")
        if n is None:
            return b""
        n = int(n)
        if n > MAX_BODY:
            raise ValueError("body too large")
        data = self.rfile.read(n)
        if len(data) != n:
            raise OSError("client closed mid-body")
        return data

    def _send(self, reply):
        try:
            self.send_whole(reply.status, [("Content-Type", reply.ctype), *reply.headers], reply.body)
        except OSError:
            self.close_connection = True


class Server(serving.Server):
    name = "portworx"


class Portworx:
    def __init__(self, store, controllers=None, streams=None, host="127.0.0.1", port=0, port_file=None, secured=False, verbose=False):
        self.store = store
        self.controllers = controllers
        self.streams = streams
        self.state = model.State(lock=store.lock)
        self.gateway = gateway_module.Gateway(self.state, secured)
        self.bridge = bridge_module.Bridge(self)
        self.state._nodes = self.bridge.nodes
        self.pxctl = pxctl_module.Pxctl(self)
        self.server = Server((host, port), Handler, verbose)
        self.server.px = self
        self.host = host
        self.port = self.server.server_address[1]
        self.bridge.install(controllers)
        if streams is not None and hasattr(streams, "register_command"):
            streams.register_command("pxctl", self.pxctl)
        self.bridge.seed()
        self._thread = threading.Thread(target=self.server.serve_forever, name="portworx-gateway", daemon=True)
        self._thread.start()
        if port_file:
            serving.write_port_file(port_file, self.port)
        sys.stderr.write(f"portworx: SDK REST gateway on http://{host}:{self.port}{' (secured)' if self.gateway.secured else ''}\n")

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def reset(self, kube_reset=True):
        """Back to a fresh Portworx: no volumes, default config, faults and call log
        cleared, security as at start; the Kubernetes objects re-seeded (after the
        Kubernetes double's own reset, kube_reset=True: nothing of ours is left)."""
        with self.store.lock:
            self.state.reset()
            self.gateway.faults.clear()
            self.gateway.calls.clear()
            self.gateway.reset_security()
            self.pxctl.auth = "when_secured"
            if kube_reset:
                self.bridge.forget_seeds()
            self.bridge.namespace = "kube-system"
            self.bridge.seed()
            self.bridge.reset_attachments()

    def stop(self):
        try:
            self.bridge.uninstall(self.controllers)
            if self.streams is not None and hasattr(self.streams, "register_command"):
                self.streams.register_command("pxctl", None)
            self.server.shutdown()
            self.server.server_close()
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    def health(self):
        gw = self.gateway
        out = {"ok": True, "url": self.url, "port": self.port, "secured": gw.secured, "guest_access": gw.guest_access,
               "namespace": self.bridge.namespace, "volumes": len(self.state.volumes), "sdk_version": "%d.%d.%d" % model.SDK_VERSION}
        if gw.secured:
            out.update(admin_token=gw.admin_token, user_token=gw.user_token, issuer=tokens.DEFAULT_ISSUER,
                       shared_secret=gw.issuers.get(tokens.DEFAULT_ISSUER))
        return out

    # -- control endpoints ------------------------------------------------------------------------

    def config_view(self):
        gw = self.gateway
        return {"secured": gw.secured, "guest_access": gw.guest_access, "namespace": self.bridge.namespace,
                "pxctl_auth": self.pxctl.auth, **self.state.config}

    def configure(self, body):
        gw = self.gateway
        with self.store.lock:
            model_keys = {k: v for k, v in body.items() if k in model.DEFAULT_CONFIG}
            other = {k: v for k, v in body.items() if k not in model.DEFAULT_CONFIG}
            for k, v in other.items():
                if k in ("secured", "guest_access"):
                    if not isinstance(v, bool):
                        raise ControlError(400, f"{k} must be true or false")
                elif k == "namespace":
                    if not isinstance(v, str) or not v:
                        raise ControlError(400, "namespace must be a name")
                elif k == "pxctl_auth":
                    if v not in ("when_secured", "never"):
                        raise ControlError(400, "pxctl_auth must be when_secured or never")
                else:
                    raise ControlError(400, f"unknown config key {k!r}")
            try:
                self.state.configure(model_keys)
            except ValueError as e:
                raise ControlError(400, str(e)) from None
            if "guest_access" in other:
                gw.guest_access = other["guest_access"]
            if "pxctl_auth" in other:
                self.pxctl.auth = other["pxctl_auth"]
            if "namespace" in other and other["namespace"] != self.bridge.namespace:
                self.bridge.namespace = other["namespace"]
                self.bridge.seed()
            if "secured" in other and other["secured"] != gw.secured:
                gw.secured = other["secured"]
                self.bridge.seed_secrets()
        return self.config_view()

    def control(self, method, target, raw):
        split = urlsplit(target)
        what = split.path[len(CONTROL):].strip("/")
        query = dict(parse_qsl(split.query))
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            return self._control_reply(400, {"error": f"body is not JSON: {e}"})
        try:
            status, out = 200, self._control(method, what, query, body)
        except ControlError as e:
            status, out = e.status, {"error": str(e)}
        except model.SdkError as e:
            status, out = e.http_status, {"error": e.message, "code": e.code}
        except ValueError as e:
            status, out = 400, {"error": str(e)}
        return self._control_reply(status, out)

    @staticmethod
    def _control_reply(status, obj):
        return gateway_module.Reply(status, (json.dumps(obj, indent=1) + "\n").encode("utf-8"))

    def _control(self, method, what, query, body):
        gw = self.gateway
        if what == "health" and method == "GET":
            return self.health()
        if what == "reset" and method == "POST":
            self.reset(kube_reset=False)
            return {"ok": True}
        if what == "config":
            if method == "POST":
                if not isinstance(body, dict):
                    raise ControlError(400, "config is a JSON object")
                return {"config": self.configure(body)}
            return {"config": self.config_view()}
        if what == "faults":
            if method == "DELETE":
                gw.faults.clear()
                return {"faults": []}
            if method == "POST":
                specs = body.get("faults") if isinstance(body, dict) and "faults" in body else [body]
                added = []
                for spec in specs:
                    f = gw.faults.add(spec)
                    if f["kind"] in ("snapshot_limit", "cloudsnap_failed"):
                        with self.store.lock:
                            n = f["count"] if f["count"] > 0 else 1
                            self.state.forced.extend([(f["kind"], f["message"])] * n)
                    added.append(f)
                return {"faults": gw.faults.view(), "added": added}
            return {"faults": gw.faults.view(), "forced": [k for k, _ in self.state.forced]}
        if what == "calls":
            if method == "DELETE":
                gw.calls.clear()
                return {"calls": []}
            return {"calls": gw.calls.view(int(query.get("since", 0) or 0), query.get("op"), query.get("method"))}
        if what == "state" and method == "GET":
            with self.store.lock:
                return self.state.dump()
        if what == "volumes":
            with self.store.lock:
                if method == "POST":
                    return {"volume": self._seed_volume(body)}
                return {"volumes": [self.state.sdk_volume(v) for v in self.state.volumes.values()]}
        if what in ("attach", "detach") and method == "POST":
            with self.store.lock:
                ref = body.get("volume_id") or body.get("name") or ""
                v = self.state.resolve(ref)
                if v is None:
                    raise ControlError(404, f"volume {ref} not found")
                if what == "attach":
                    self.state.attach(v["id"], body.get("node"), manual=True)
                else:
                    self.state.detach(v["id"], manual=True)
                return {"volume": self.state.sdk_volume(v)}
        if what == "tokens" and method == "POST":
            return self._tokens(body)
        if what == "tokens" and method == "GET":
            return {"admin_token": gw.admin_token, "user_token": gw.user_token, "issuers": sorted(gw.issuers)}
        raise ControlError(404, f"unknown control endpoint {method} {CONTROL}/{what}")

    def _seed_volume(self, body):
        name = body.get("name")
        if not name:
            raise ControlError(400, "a volume needs a name")
        size = body.get("size", model.GiB)
        if isinstance(size, str):
            size = bridge_module.quantity_bytes(size, None)
            if size is None:
                raise ControlError(400, "size must be bytes or a quantity such as 10Gi")
        spec = model.new_spec(int(size))
        spec["ha_level"] = int(body.get("ha_level", 1))
        if body.get("parent"):
            parent = self.state.resolve(body["parent"])
            if parent is None:
                raise ControlError(404, f"parent {body['parent']} not found")
            if body.get("readonly", True):
                v = self.state.snapshot_create(parent["id"], name, body.get("labels") or {})
            else:
                v = self.state.clone(name, parent["id"], body.get("labels") or {})
        else:
            v = self.state.create(name, spec, body.get("labels") or {})
        if body.get("attached"):
            self.state.attach(v["id"], body.get("node"), manual=True)
        return self.state.sdk_volume(v)

    def _tokens(self, body):
        gw = self.gateway
        with self.store.lock:
            if body.get("rotate"):
                token = gw.rotate()
                self.bridge.seed_secrets()
                return {"token": token}
            if body.get("trust"):
                if not body.get("issuer") or not body.get("secret"):
                    raise ControlError(400, "trust needs issuer and secret")
                gw.issuers[body["issuer"]] = body["secret"]
                return {"issuers": sorted(gw.issuers)}
            if body.get("revoke"):
                gw.revoked.add(body["revoke"])
                return {"revoked": True}
            kw = {k: body[k] for k in ("sub", "roles", "groups", "issuer", "secret", "expires_in", "name", "email", "alg") if k in body}
            if "secret" not in kw:
                kw["secret"] = gw.issuers.get(kw.get("issuer", tokens.DEFAULT_ISSUER), tokens.DEFAULT_SECRET)
            try:
                return {"token": tokens.mint(**kw)}
            except (KeyError, TypeError, ValueError) as e:
                raise ControlError(400, f"cannot mint that token: {e}") from None
