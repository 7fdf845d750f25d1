#!/usr/bin/python3
"""wsd.py: loopback WebSocket server (RFC 6455) for Ferry's tests, optionally over TLS.

Standard library only; built on serving.py (one thread per connection). The
WebSocket class and exec_session() are importable, so another double (the
Kubernetes one) can speak the same protocol.

Usage:
    wsd.py [--host 127.0.0.1] [--port 0] [--port-file PATH] [--tls CERT KEY] [--verbose]

Handshake: a GET with Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Key and
Sec-WebSocket-Version: 13, else 400 (426 for another version). Of the subprotocols
the client offers (Sec-WebSocket-Protocol), the server picks the first it knows:
by default v5.channel.k8s.io, v4.channel.k8s.io and chat, or those listed in
`?protocols=a,b` (`?protocols=` for none). Offering none is fine; offering only
unknown ones gets 400.

Endpoints (any query may add `id=NAME`: the connection's events are then kept
under NAME, see !events):
    /echo          every text or binary message comes back as the same kind, except
                   text messages starting with "!", which are commands:
        !ping P            send a ping with payload P; on its pong, send text "pong P"
        !close CODE REASON send a close frame, wait for the client's, hang up
        !fragments N TEXT  send TEXT as one text message in N frames, with a ping
                           between the first two
        !big N [F]         send a binary message of N bytes (byte i is i % 256) in
                           frames of F bytes (default: one frame)
        !headers           send the handshake's request headers as JSON text
                           (lower-case names)
        !barrier KEY N     answer "released KEY" once N connections have sent the same
                           (or "timeout KEY" after 10 s): only a client that runs its
                           connections concurrently gets through
        !events NAME       send the events of connection NAME as a JSON list, e.g.
                           ["open v5.channel.k8s.io", "ping", "close 1000 bye"]
        !badtext           send a text frame that is not UTF-8 (a client must close 1007)
        !drop              hang up without a close frame
    /exec?command=ARG&command=ARG...[&stdin=true]
                   the Kubernetes exec channel protocol (v5.channel.k8s.io or
                   v4.channel.k8s.io, as chosen): binary frames whose byte 0 is the
                   channel (0 stdin, 1 stdout, 2 stderr, 3 status, 255 close under
                   v5); first an empty stdout frame, as the kubelet sends, then the
                   command's output, then its Status JSON on channel 3, then close
                   1000. Commands are scripted (see COMMANDS): echo ARGS..., cat
                   (stdin to stdout until stdin ends: [255, 0] under v5), sh -c
                   SCRIPT for the scripts in SH_SCRIPTS, bytes N (N bytes on
                   stdout), exit N; anything else fails as "executable file not
                   found" with no exit code.
    /status?code=C[&chunked=1]
                   refuse the upgrade with HTTP C and a Kubernetes Status JSON body
                   (chunked transfer encoding when asked)
    /badaccept     answer 101 with a wrong Sec-WebSocket-Accept
    /badprotocol   answer 101 choosing a subprotocol the client did not offer
    CONNECT HOST:PORT
                   a proxy tunnel (http_proxy style) to 127.0.0.1:PORT, for HOST
                   localhost, 127.0.0.1 or any name under .ferry.invalid (which
                   only this proxy resolves); 403 for other hosts

Invariants: frames from the client must be masked (else close 1002); messages and
frames are capped at MAX_MESSAGE (close 1009); kept events and barriers have caps.
"""

import argparse
import base64
import select
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
import serving  # noqa: E402

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFAULT_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "chat"]
MAX_MESSAGE = 128 * 1024 * 1024  # largest message (and frame) accepted from a client
MAX_EVENT_IDS = 1_000  # connection ids whose events are kept
MAX_EVENTS = 100  # events kept per id
MAX_BARRIERS = 1_000
BARRIER_WAIT = 10.0  # seconds

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

STDIN, STDOUT, STDERR, STATUS, RESIZE, CHANNEL_CLOSE = 0, 1, 2, 3, 4, 255


class ProtocolError(Exception):
    """The client broke the protocol: close with `code`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Closed(Exception):
    """The client sent a close frame (code, reason) or hung up (code None)."""

    def __init__(self, code=None, reason=""):
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def unmask(data, mask):
    """XOR data with the 4-byte mask, fast for large payloads."""
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class WebSocket:
    """The server side of one connection, over a buffered reader and writer."""

    def __init__(self, rfile, wfile, on_event=None):
        self.rfile = rfile
        self.wfile = wfile
        self.lock = threading.Lock()  # one writer at a time
        self.on_event = on_event or (lambda text: None)
        self.pongs = []  # payloads of pongs received
        self.close_sent = False

    # -- writing --

    def send_frame(self, opcode, payload=b"", fin=True):
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        with self.lock:
            self.wfile.write(head)
            self.wfile.write(payload)
            self.wfile.flush()

    def send(self, data, text=False):
        if isinstance(data, str):
            data = data.encode()
        self.send_frame(TEXT if text else BINARY, data)

    def send_fragments(self, data, opcode, size, ping_after_first=False):
        """One message in frames of `size` bytes (at least one frame)."""
        pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        for i, piece in enumerate(pieces):
            self.send_frame(opcode if i == 0 else CONT, piece, fin=i == len(pieces) - 1)
            if i == 0 and ping_after_first:
                self.send_frame(PING, b"between")

    def close(self, code=1000, reason=""):
        if self.close_sent:
            return
        self.close_sent = True
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        try:
            self.send_frame(CLOSE, payload)
        except OSError:
            pass

    # -- reading --

    def _read(self, n):
        data = self.rfile.read(n)
        if data is None or len(data) < n:
            raise Closed()
        return data

    def read_frame(self):
        b0, b1 = self._read(2)
        fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
        masked, n = b1 & 0x80, b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8))
        if rsv:
            raise ProtocolError(1002, "reserved bits set")
        if not masked:
            raise ProtocolError(1002, "client frames must be masked")
        if opcode >= 0x8 and (n > 125 or not fin):
            raise ProtocolError(1002, "bad control frame")
        if n > MAX_MESSAGE:
            raise ProtocolError(1009, "frame too large")
        mask = self._read(4)
        return bool(fin), opcode, unmask(self._read(n), mask)

    def receive(self):
        """The next message as (opcode, payload), answering pings on the way.
        Raises Closed when the client closes (after answering its close)."""
        opcode, parts, size = None, [], 0
        while True:
            fin, op, payload = self.read_frame()
            if op == PING:
                self.send_frame(PONG, payload)
                self.on_event(f"ping {payload.decode(errors='replace')}".rstrip())
                continue
            if op == PONG:
                self.pongs.append(payload)
                self.on_event(f"pong {payload.decode(errors='replace')}")
                if opcode is None:
                    return PONG, payload
                continue
            if op == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode(errors="replace")
                self.on_event(f"close {code} {reason}".rstrip())
                self.close(code if code is not None else None)
                raise Closed(code, reason)
            if op == CONT:
                if opcode is None:
                    raise ProtocolError(1002, "continuation without a message")
            elif op in (TEXT, BINARY):
                if opcode is not None:
                    raise ProtocolError(1002, "new message inside a fragmented one")
                opcode = op
            else:
                raise ProtocolError(1002, f"unknown opcode {op}")
            size += len(payload)
            if size > MAX_MESSAGE:
                raise ProtocolError(1009, "message too large")
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if opcode == TEXT:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError(1007, "text is not UTF-8")
                return opcode, data

    def wait_close(self, seconds=5.0):
        """After sending close: read (discarding) until the client's close or hang-up."""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                self.receive()
        except (Closed, ProtocolError, OSError):
            pass


def choose_protocol(offered, known):
    for p in offered:
        if p in known:
            return p
    return None


def offered_protocols(headers):
    out = []
    for value in headers.get_all("Sec-WebSocket-Protocol") or []:
        out += [p.strip() for p in value.split(",") if p.strip()]
    return out


def handshake(handler, known, accept=None, protocol=None):
    """Checks the upgrade request on a BaseHTTPRequestHandler and answers 101.
    Returns (WebSocket, chosen protocol or None), or (None, None) after refusing.
    accept/protocol override what is sent (to test a client's checks)."""
    h = handler.headers
    key = h.get("Sec-WebSocket-Key", "")
    upgrade = (h.get("Upgrade") or "").lower() == "websocket"
    connection = "upgrade" in [t.strip().lower() for t in (h.get("Connection") or "").split(",")]
    if handler.command != "GET" or not upgrade or not connection or len(base64.b64decode(key + "==")) < 16:
        refuse(handler, 400, "BadRequest", "not a WebSocket upgrade request")
        return None, None
    if h.get("Sec-WebSocket-Version") != "13":
        refuse(handler, 426, "BadRequest", "unsupported WebSocket version", {"Sec-WebSocket-Version": "13"})
        return None, None
    offered = offered_protocols(h)
    chosen = choose_protocol(offered, known)
    if offered and chosen is None and protocol is None:
        refuse(handler, 400, "BadRequest", f"none of the subprotocols {offered} is supported")
        return None, None
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept or accept_key(key))
    if protocol or chosen:
        handler.send_header("Sec-WebSocket-Protocol", protocol or chosen)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    return WebSocket(handler.rfile, handler.wfile), chosen


def refuse(handler, code, reason, message, extra_headers=None, chunked=False):
    """Answer a Kubernetes-style Status JSON with status `code`."""
    body = json.dumps({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    }).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    for k, v in (extra_headers or {}).items():
        handler.send_header(k, v)
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for i in range(0, len(body), 16):
            piece = body[i : i + 16]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        handler.wfile.write(b"0\r\n\r\n")
    else:
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    handler.wfile.flush()
    handler.close_connection = True


# ---- Kubernetes exec ----

SH_SCRIPTS = {
    "echo out; echo err >&2; exit 3": ("out\n", "err\n", 3),
    "echo hi": ("hi\n", "", 0),
    "exit 0": ("", "", 0),
}


def exec_status(argv, code):
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    if code is None:
        return {
            "metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": (f"failed to create exec: OCI runtime exec failed: exec failed: unable to start container "
                        f"process: exec: \"{argv[0]}\": executable file not found in $PATH: unknown"),
            "details": {"causes": [{"message": f"exec: \"{argv[0]}\": executable file not found in $PATH"}]},
        }
    return {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": (f"command terminated with non-zero exit code: error executing command "
                    f"[{' '.join(argv)}], exit code {code}"),
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def exec_session(ws, protocol, argv, stdin):
    """Runs the scripted command argv on an open connection, as the kubelet would."""
    v5 = protocol == "v5.channel.k8s.io"

    def out(channel, data):
        if isinstance(data, str):
            data = data.encode()
        for i in range(0, len(data), 32 * 1024):
            ws.send(bytes([channel]) + data[i : i + 32 * 1024])

    ws.send(bytes([STDOUT]))  # the kubelet's "connected" signal: an empty stdout frame
    code = None
    if argv[:1] == ["echo"]:
        out(STDOUT, " ".join(argv[1:]) + "\n")
        code = 0
    elif argv == ["cat"] and stdin:
        while True:
            try:
                op, data = ws.receive()
            except Closed:
                return
            if op != BINARY or not data:
                continue
            if data[0] == STDIN and len(data) > 1:
                out(STDOUT, data[1:])
            elif v5 and data == bytes([CHANNEL_CLOSE, STDIN]):
                break
        code = 0
    elif len(argv) == 3 and argv[:2] == ["sh", "-c"] and argv[2] in SH_SCRIPTS:
        stdout, stderr, code = SH_SCRIPTS[argv[2]]
        if stdout:
            out(STDOUT, stdout)
        if stderr:
            out(STDERR, stderr)
    elif len(argv) == 2 and argv[0] == "bytes" and argv[1].isdigit():
        n = min(int(argv[1]), MAX_MESSAGE)
        out(STDOUT, (bytes(range(256)) * (n // 256 + 1))[:n])
        code = 0
    elif len(argv) == 2 and argv[0] == "exit" and argv[1].isdigit():
        code = int(argv[1])
    ws.send(bytes([STATUS]) + json.dumps(exec_status(argv, code), separators=(",", ":")).encode())
    ws.close(1000)
    ws.wait_close()


# ---- the server ----


class Events:
    """What happened on named connections (?id=NAME), for !events; capped."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_id = {}

    def add(self, name, text):
        if not name:
            return
        with self._lock:
            log = self._by_id.get(name)
            if log is None:
                if len(self._by_id) >= MAX_EVENT_IDS:
                    return
                log = self._by_id[name] = []
            if len(log) < MAX_EVENTS:
                log.append(text)

    def get(self, name):
        with self._lock:
            return list(self._by_id.get(name, []))


class Barriers:
    """!barrier KEY N: wait until N connections arrived at KEY (capped)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._counts = {}

    def wait(self, key, n):
        with self._cond:
            if key not in self._counts and len(self._counts) >= MAX_BARRIERS:
                return False
            self._counts[key] = self._counts.get(key, 0) + 1
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._counts[key] >= n, timeout=BARRIER_WAIT)


class Handler(serving.Handler):
    server_version = "wsd"

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        if not port.isdigit() or not (host in ("localhost", "127.0.0.1") or host.endswith(".ferry.invalid")):
            refuse(self, 403, "Forbidden", f"no tunnel to {self.path}")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        except OSError as e:
            refuse(self, 502, "BadGateway", f"cannot reach {self.path}: {e}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self.relay(upstream)

    def relay(self, upstream):
        """Copies bytes both ways until either side hangs up."""
        client = self.connection  # the client sends nothing before our 200: rfile holds no bytes
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], serving.IDLE_TIMEOUT)
                if not ready:
                    return
                for src, dst in ((client, upstream), (upstream, client)):
                    if src in ready:
                        data = src.recv(64 * 1024)
                        if not data:
                            return
                        dst.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()

    def _dispatch(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        known = DEFAULT_PROTOCOLS
        if "protocols" in query:
            known = [p for p in query["protocols"][0].split(",") if p]
        name = (query.get("id") or [""])[0]
        events = self.server.events
        if url.path == "/status":
            code = int((query.get("code") or ["403"])[0])
            refuse(self, code, "Forbidden" if code == 403 else "BadRequest",
                   f"pods \"x\" is forbidden: User \"test\" cannot create resource \"pods/exec\" (status {code})",
                   chunked=(query.get("chunked") or [""])[0] == "1")
            return
        if url.path == "/badaccept":
            self.upgrade_and_hold(known, accept=base64.b64encode(b"x" * 20).decode())
            return
        if url.path == "/badprotocol":
            self.upgrade_and_hold(known, protocol="not-offered.example")
            return
        if url.path not in ("/echo", "/exec"):
            refuse(self, 404, "NotFound", f"no endpoint {url.path}")
            return
        ws, protocol = handshake(self, known)
        if ws is None:
            return
        ws.on_event = lambda text: events.add(name, text)
        events.add(name, f"open {protocol or '-'}")
        try:
            if url.path == "/exec":
                stdin = (query.get("stdin") or ["false"])[0] == "true"
                exec_session(ws, protocol, query.get("command") or [], stdin)
            else:
                self.echo(ws)
        except ProtocolError as e:
            events.add(name, f"protocol error {e.code}")
            ws.close(e.code, str(e))
        except (Closed, OSError):
            pass

    def upgrade_and_hold(self, known, **overrides):
        ws, _ = handshake(self, known, **overrides)
        if ws is not None:
            ws.wait_close(2.0)

    def echo(self, ws):
        self.pings = []  # payloads of !ping pings not answered yet
        while True:
            op, data = ws.receive()
            if op == PONG:
                if data in self.pings:  # answers a !ping (not the ping !fragments sends)
                    self.pings.remove(data)
                    ws.send(b"pong " + data, text=True)
                continue
            if op == TEXT and data.startswith(b"!"):
                if self.command_message(ws, data.decode().split(" ")):
                    return
                continue
            ws.send(data, text=op == TEXT)

    def command_message(self, ws, words):
        """Runs one !command; True when the connection is over."""
        cmd, args = words[0], words[1:]
        if cmd == "!ping":
            payload = " ".join(args).encode()[:125]
            self.pings = self.pings[-99:] + [payload]
            ws.send_frame(PING, payload)
        elif cmd == "!close":
            ws.close(int(args[0]), " ".join(args[1:]))
            ws.wait_close()
            return True
        elif cmd == "!fragments":
            text = " ".join(args[1:]).encode()
            n = max(1, int(args[0]))
            ws.send_fragments(text, TEXT, max(1, -(-len(text) // n)), ping_after_first=True)
        elif cmd == "!big":
            n = min(int(args[0]), MAX_MESSAGE)
            data = (bytes(range(256)) * (n // 256 + 1))[:n]
            ws.send_fragments(data, BINARY, int(args[1]) if len(args) > 1 else max(n, 1))
        elif cmd == "!headers":
            ws.send(json.dumps({k.lower(): v for k, v in self.headers.items()}), text=True)
        elif cmd == "!barrier":
            ok = self.server.barriers.wait(args[0], int(args[1]))
            ws.send(f"{'released' if ok else 'timeout'} {args[0]}", text=True)
        elif cmd == "!events":
            ws.send(json.dumps(self.server.events.get(args[0])), text=True)
        elif cmd == "!badtext":
            ws.send_frame(TEXT, b"\xff\xfe not UTF-8")
        elif cmd == "!drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        else:
            ws.send(f"unknown command {cmd}", text=True)
        return False


class Server(serving.Server):
    """Threaded server with the event log and barriers the commands use; TLS as
    serving.Server does it, but a TLS connection is closed without shutdown()."""

    name = "wsd"
    tls_shutdown_write = False

    def __init__(self, address, tls_context=None, verbose=False):
        self.events = Events()
        self.barriers = Barriers()
        super().__init__(address, Handler, verbose, tls_context)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Loopback WebSocket test server for Ferry.")
    serving.add_listen_args(p)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve wss with this PEM pair")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tls_context = serving.tls_context(*args.tls) if args.tls else None
    serving.stop_on_signals()
    server = Server((args.host, args.port), tls_context, args.verbose)
    scheme = "wss" if tls_context else "ws"
    host = serving.url_host(args.host)
    return serving.serve(server, args.port_file, lambda port: f"wsd: listening on {scheme}://{host}:{port}")


if __name__ == "__main__":
    sys.exit(main())
