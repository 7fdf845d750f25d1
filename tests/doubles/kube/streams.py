"""streams.py: the Kubernetes double's streaming endpoints: pod exec over WebSocket,
pod logs, and the service proxy, each answering from scripts set per test.

Standard library only. The API server core routes to these entry points; each one
owns the HTTP exchange from there on (status line, headers, body, closing):

    handle_exec(handler, store, ns, pod, query)        GET  .../pods/{pod}/exec
    handle_log(handler, store, ns, pod, query)         GET  .../pods/{pod}/log
    handle_proxy(handler, store, ns, service, port, path)   any .../services/{svc}/proxy/...
    configure_exec(dict) -> dict                       POST /_ferry/exec
    configure_proxy(dict) -> dict                      POST /_ferry/proxy
    reset()                                            forget every script, log and call
    register_command(name, fn)                         a programmatic command (e.g. the
                                                       Portworx double's pxctl), see below
    exec_calls() / connect(...)                        for tests: the exec calls seen; a
                                                       masking WebSocket client

(The RFC 6455 framing lives here rather than in a websocket.py: a module of that
name next to the server would shadow the websocket-client package that
python3-kubernetes imports.)

`handler` is the http.server.BaseHTTPRequestHandler of the request; `query` may be
the raw query string, a dict (values str or list) or a list of (key, value) pairs.
A body the core has read already is taken from handler.request_body. configure_*
raise ValueError for a bad body (the core answers 400 with its text) and answer
what is configured plus the last 100 calls seen ({"pods": {key: rules}, "logs":
[...], "calls": [{"namespace", "pod", "container", "command", "protocol", "stdin",
"stdin_bytes", "stdin_closed", "tty", "resize", "pings", "exit", "error", "rule",
"time"}]}; for the proxy {"services": [...], "calls": [{"method", "path", "query",
"body", ...}]}), so a test can check what a client sent. An empty body ({}) just
reads them.

Exec (kubernetes notes §6.1-6.2): checks happen before the upgrade and fail with a
JSON Status (404 pod not found, 400 container missing/ambiguous/unknown, no
command, no stream, completed pod, container not running, not a WebSocket
upgrade, no acceptable subprotocol). Then RFC 6455 (framing below): the protocol is
the client's first offer among v5.channel.k8s.io, v4.channel.k8s.io,
v4.base64.channel.k8s.io, base64.channel.k8s.io, channel.k8s.io (no offer at all:
channel.k8s.io, nothing echoed); the kubelet's empty "connected" frame on the
first writable channel; stdin (channel 0) is read until the v5 [255, 0] close, a
close frame or EOF (v4 has no stdin close: until `stdin_idle` seconds pass without
stdin once some arrived, or `stdin_idle` x 5 with none); resize (channel 4) is
recorded; then stdout (1) and stderr (2), the Status on channel 3 and close 1000.
v4/v5 Status JSON: {"metadata":{},"status":"Success"}; NonZeroExitCode with cause
ExitCode; InternalError with code 500. The older protocols send the message text on
channel 3 for a failure and nothing for success. Pings get pongs throughout.

Scripts (configure_exec), first match wins, pod keys tried in the order
"ns/name", "name", "*":
    {"pods": {"ns/mongo-0": [{"match": ["mongosh", "--eval"], "stdout": "...",
              "stderr": "...", "exit": 0}], ...},
     "logs": [...], "unknown_exit": null, "stdin_idle": 0.3, "reset": false}
Rule keys (all optional):
    match        list: an argv prefix; an element "re:REGEX" must fullmatch that argv
                 element. string: a regex searched in " ".join(argv). absent: any.
    container    only for this container
    stdout, stderr   text sent on channels 1 and 2 (a list: one frame per item)
    stdout_bytes N   then N more bytes of 64-byte lines "0123456789abcdef...\\n"
    echo_stdin   the stdin received is sent back on stdout (after `stdout`)
    exit         exit code (default 0)
    error        a message: Failure/InternalError instead of an exit code
    status       a raw Status object sent on channel 3 as is
    delay        seconds to wait (answering pings) before any output
    no_status    close 1000 without a Status;   drop: close TCP without anything
    times        the rule matches only that many calls, then falls through
Attach (.../pods/{pod}/attach, routed here too) runs as argv ["<attach>"]: rules may
match it; otherwise it prints the container's log lines and echoes stdin, exit 0.
Registered commands (register_command(name, fn); fn None removes it; kept across
reset()): when no rule matches, an exec whose command is `name` (argv[0]'s basename,
after an optional `env VAR=value...` prefix, or the only command of an `sh -c`
script without shell operators) runs fn(store, ns, pod, container, argv, stdin) ->
(stdout, stderr, exit) (str or bytes), with argv as the command line (env prefix
kept); fn returns None to decline (then the builtins run); an exception becomes
an InternalError.
No rule: builtins echo, cat, true, false, sleep N, hostname (the pod name), env,
and sh/bash -c SCRIPT with those commands, exit N, ">&2" and ';', '&&', '||'
(unknown in a script: stderr "sh: 1: X: not found", exit 127). An unknown argv[0]
gives the containerd InternalError (kubectl: "error: Internal error occurred: ...",
exit 1), or exit `unknown_exit` with "... executable file not found" on stderr
when that is set.

Logs (handle_log): records set through configure_exec {"logs": ...} as a list
    [{"pod": "ns/name"|"name"|"*", "container": "c" (absent: every container),
      "lines": [...] | "text", "previous": [...], "append": false, "end": false}]
or a mapping {"ns/name": lines | {"container": lines}}. `append` adds to what the
record holds (and wakes followers); `end` ends follow streams once they have sent
everything. Query: container, tailLines, sinceSeconds, sinceTime, timestamps
(RFC3339Nano prefix), previous, limitBytes, follow (chunked until `end`, the pod's
deletion, the client leaving or `follow_timeout`).

Proxy (handle_proxy): configure_proxy {"services": {"ns/name"|"name"|"*": RESPONSE
or [RESPONSE...]}, "require_endpoints": false, "reset": false}; for brevity the
service keys may also sit at the top level. RESPONSE: {"status": 200, "body": text
or JSON value, "headers": {...}, "path": "/x" | "re:REGEX", "method": "GET",
"delay": s, "drop": true, "echo": true}. Nothing matching: 200 JSON echo
{"namespace","service","port","scheme","method","path","query","headers","body"}
(Authorization is not forwarded, as the real proxy strips it).
"""

import base64
import copy
import datetime
import hashlib
import json
import os
import re
import select
import shlex
import socket
import ssl
import struct
import threading
import time
from urllib.parse import parse_qsl, urlsplit


PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io",
             "base64.channel.k8s.io", "channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
ATTACH = "<attach>"  # the argv rules see for pods/attach (no command of its own)
FRAME_CHUNK = 32 * 1024  # stdout/stderr bytes per frame, like the kubelet's copy buffer
MAX_STDIN = 64 * 1024 * 1024
STDIN_TIMEOUT = 120.0  # longest wait for the stdin close
MAX_CALLS = 1000
MAX_DELAY = 600.0
FOLLOW_TIMEOUT = 300.0
PATTERN = b"0123456789abcdef" * 3 + b"0123456789abcde\n"  # 64 bytes per stdout_bytes line

_lock = threading.RLock()
_log_cond = threading.Condition(_lock)
_state = {}


def reset():
    """Forget every exec rule, log record, proxy response and recorded call."""
    with _lock:
        _state.clear()
        _state.update({
            "rules": {},  # pod key -> [rule]
            "used": {},  # id(rule) -> calls matched, for `times`
            "unknown_exit": None,
            "stdin_idle": 0.3,
            "logs": {},  # (pod key, container or "*") -> {"lines", "previous", "end"}
            "log_gen": 0,
            "follow_timeout": FOLLOW_TIMEOUT,
            "calls": [],
            "proxy": {},  # service key -> [response]
            "require_endpoints": False,
            "proxy_calls": [],
        })
        _log_cond.notify_all()


reset()

_commands = {}  # command name -> fn (register_command); survives reset()


def register_command(name, fn):
    """Install (fn) or remove (None) a programmatic exec command; see the module
    comment ("Registered commands")."""
    with _lock:
        if fn is None:
            _commands.pop(name, None)
        else:
            _commands[name] = fn


def _command_words(argv):
    """(registered fn, argv it sees) for an exec command line, or (None, None)."""
    with _lock:
        if not _commands:
            return None, None
        commands = dict(_commands)
    words = list(argv)
    if words and words[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash", "dash") and len(words) == 3 and words[1] == "-c":
        if re.search(r"[;&|<>`$(){}\n]", words[2]):
            return None, None
        try:
            words = shlex.split(words[2])
        except ValueError:
            return None, None
    i = 1 if words and words[0].rsplit("/", 1)[-1] == "env" else 0
    while i < len(words) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[i]):
        i += 1
    if i >= len(words):
        return None, None
    fn = commands.get(words[i].rsplit("/", 1)[-1])
    return (fn, words) if fn else (None, None)


def _run_command(store, pod, container, argv, stdin):
    """A _Result from a registered command, or None when there is none (or it declines)."""
    fn, words = _command_words(argv)
    if fn is None:
        return None
    try:
        out = fn(store, _ns_of(pod), pod, container, words, bytes(stdin))
    except Exception as e:  # noqa: BLE001
        r = _Result()
        r.error = "command %s failed in the double: %s" % (words[0], e)
        return r
    if out is None:
        return None
    r = _Result()
    stdout, stderr, code = out
    if stdout:
        r.stdout.append(stdout.encode("utf-8") if isinstance(stdout, str) else bytes(stdout))
    if stderr:
        r.stderr.append(stderr.encode("utf-8") if isinstance(stderr, str) else bytes(stderr))
    r.exit = int(code or 0)
    return r


# -- WebSocket (RFC 6455) framing ------------------------------------------------------
#
# One thread owns a connection and does every read and write itself (no reader
# thread), because an ssl.SSLSocket must not be read and written from two threads at
# once. Reads wait with a timeout (poll), so the owner can answer pings while it
# waits for stdin or between output frames. Strict, so that client bugs show:
# client frames must be masked, RSV bits zero, control frames unfragmented and at
# most 125 bytes (else close 1002); text must be UTF-8 (1007); a message over
# MAX_MESSAGE closes with 1009. Pings are always answered with the same payload.

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024 * 1024  # largest message accepted from a peer
RECV_CHUNK = 64 * 1024
WRITE_TIMEOUT = 60.0  # seconds a single frame write may take before the peer counts as gone


class ProtocolError(Exception):
    """The peer broke RFC 6455; `code` is the close code to send."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class ConnectionClosed(Exception):
    """The TCP connection ended (EOF or reset)."""


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode("ascii")).digest()).decode("ascii")


def offered_protocols(headers):
    """The Sec-WebSocket-Protocol values a client offered, in its order (all header
    lines, comma-separated lists, whitespace trimmed, empties dropped)."""
    out = []
    for line in headers.get_all("Sec-WebSocket-Protocol") or []:
        out.extend(p.strip() for p in line.split(",") if p.strip())
    return out


def upgrade_problem(handler):
    """None when the request is a valid WebSocket upgrade (RFC 6455 §4.2.1), else a
    short description of what is missing."""
    h = handler.headers
    if handler.command != "GET":
        return "a WebSocket upgrade must be a GET"
    if "websocket" not in [t.strip().lower() for t in (h.get("Upgrade") or "").split(",")]:
        return "Upgrade request required"
    if "upgrade" not in [t.strip().lower() for t in (h.get("Connection") or "").split(",")]:
        return "Connection: Upgrade required"
    if (h.get("Sec-WebSocket-Version") or "").strip() != "13":
        return "Sec-WebSocket-Version must be 13"
    key = (h.get("Sec-WebSocket-Key") or "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        return "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


def server_handshake(handler, protocol):
    """Answer 101 on `handler` (a BaseHTTPRequestHandler whose request passed
    upgrade_problem) with `protocol` echoed when not None, and return a
    WebSocket on its connection. Bytes the HTTP reader had already buffered past the
    request head become the start of the frame stream."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + accept_key(handler.headers["Sec-WebSocket-Key"]),
    ]
    if protocol:
        lines.append("Sec-WebSocket-Protocol: " + protocol)
    handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    handler.wfile.flush()
    handler.close_connection = True  # the HTTP connection is ours from now on
    return WebSocket(handler.connection, prefix=_buffered(handler.rfile, handler.connection), server=True)


def _buffered(rfile, sock):
    """Whatever the buffered reader `rfile` holds already, without blocking."""
    old = sock.gettimeout()
    try:
        sock.settimeout(0.0)
        try:
            data = rfile.peek(1)
        except (BlockingIOError, ssl.SSLWantReadError, socket.timeout, ValueError, OSError):
            return b""
        return rfile.read(len(data)) if data else b""
    finally:
        try:
            sock.settimeout(old)
        except OSError:
            pass


class WebSocket:
    """One WebSocket connection on `sock`. server=True: expect masked frames and send
    unmasked ones; server=False (client): the reverse."""

    def __init__(self, sock, prefix=b"", server=True):
        self.sock = sock
        self.server = server
        self._buf = bytearray(prefix)
        self._eof = False
        self._frag_op = None
        self._frag = bytearray()
        self.close_sent = False
        self.close_received = None  # (code, reason) once the peer's close frame arrived
        self.pings = 0  # pings answered
        self.pongs = 0  # pongs received

    # -- reading ---------------------------------------------------------------------

    def _fill(self, timeout):
        """Read more bytes into the buffer; False on timeout. Raises ConnectionClosed."""
        if self._eof:
            raise ConnectionClosed("connection closed")
        try:
            self.sock.settimeout(max(timeout, 0.0) if timeout is not None else None)
            data = self.sock.recv(RECV_CHUNK)
        except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
            return False
        except (ConnectionError, ssl.SSLError, OSError) as e:
            self._eof = True
            raise ConnectionClosed(str(e)) from e
        if not data:
            self._eof = True
            raise ConnectionClosed("connection closed by peer")
        self._buf += data
        return True

    def _frame(self):
        """Parse one frame from the buffer: (fin, opcode, payload), or None if incomplete."""
        b = self._buf
        if len(b) < 2:
            return None
        fin, rsv, op = b[0] & 0x80, b[0] & 0x70, b[0] & 0x0F
        masked, n = b[1] & 0x80, b[1] & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack("!H", b[2:4])[0]
            pos = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack("!Q", b[2:10])[0]
            pos = 10
        if rsv:
            raise ProtocolError(1002, "reserved bits set without an extension")
        if op not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise ProtocolError(1002, "unknown opcode %d" % op)
        if op >= 0x8 and (not fin or n > 125):
            raise ProtocolError(1002, "control frames must be final and at most 125 bytes")
        if self.server and not masked:
            raise ProtocolError(1002, "client frames must be masked")
        if not self.server and masked:
            raise ProtocolError(1002, "server frames must not be masked")
        if n > MAX_MESSAGE:
            raise ProtocolError(1009, "frame too large")
        key = None
        if masked:
            if len(b) < pos + 4:
                return None
            key = bytes(b[pos:pos + 4])
            pos += 4
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        if key:
            payload = _mask(payload, key)
        return bool(fin), op, payload

    def poll(self, timeout):
        """Wait up to `timeout` seconds for the next data message or close.

        Returns (OP_TEXT|OP_BINARY, payload), (OP_CLOSE, (code, reason)) or None on
        timeout. Pings are answered and pongs counted on the way. Raises
        ConnectionClosed on EOF and ProtocolError (after sending the close frame)
        when the peer breaks the protocol."""
        deadline = time.monotonic() + (timeout or 0.0)
        while True:
            try:
                fr = self._frame()
            except ProtocolError as e:
                self._fail(e)
                raise
            if fr is None:
                left = deadline - time.monotonic()
                if left <= 0 and timeout is not None:
                    return None
                self._fill(left if timeout is not None else None)
                continue
            fin, op, payload = fr
            if op == OP_PING:
                self.pings += 1
                if not self.close_sent:
                    self.send(OP_PONG, payload)
                continue
            if op == OP_PONG:
                self.pongs += 1
                continue
            if op == OP_CLOSE:
                code, reason = 1005, ""
                if len(payload) == 1:
                    self._fail(ProtocolError(1002, "close payload of one byte"))
                    raise ProtocolError(1002, "close payload of one byte")
                if len(payload) >= 2:
                    code = struct.unpack("!H", payload[:2])[0]
                    reason = payload[2:].decode("utf-8", "replace")
                self.close_received = (code, reason)
                if not self.close_sent:
                    self.close(1000 if code == 1005 else code)
                return OP_CLOSE, (code, reason)
            # data frames, possibly fragmented
            if op == OP_CONT:
                if self._frag_op is None:
                    self._fail(ProtocolError(1002, "continuation without a message"))
                    raise ProtocolError(1002, "continuation without a message")
                self._frag += payload
                if len(self._frag) > MAX_MESSAGE:
                    self._fail(ProtocolError(1009, "message too large"))
                    raise ProtocolError(1009, "message too large")
                if not fin:
                    continue
                op, payload = self._frag_op, bytes(self._frag)
                self._frag_op, self._frag = None, bytearray()
            else:
                if self._frag_op is not None:
                    self._fail(ProtocolError(1002, "new message inside a fragmented one"))
                    raise ProtocolError(1002, "new message inside a fragmented one")
                if not fin:
                    self._frag_op, self._frag = op, bytearray(payload)
                    continue
            if op == OP_TEXT:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    self._fail(ProtocolError(1007, "text message is not UTF-8"))
                    raise ProtocolError(1007, "text message is not UTF-8")
            return op, payload

    def _fail(self, err):
        try:
            self.close(err.code, str(err)[:100])
        except (ConnectionClosed, OSError):
            pass

    # -- writing ---------------------------------------------------------------------

    def send(self, op, payload=b""):
        """Send one final frame. Raises ConnectionClosed if the peer is gone."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        n = len(payload)
        head = bytearray([0x80 | op])
        mbit = 0 if self.server else 0x80
        if n < 126:
            head.append(mbit | n)
        elif n < 65536:
            head.append(mbit | 126)
            head += struct.pack("!H", n)
        else:
            head.append(mbit | 127)
            head += struct.pack("!Q", n)
        if not self.server:
            key = os.urandom(4)
            head += key
            payload = _mask(payload, key)
        try:
            self.sock.settimeout(WRITE_TIMEOUT)
            self.sock.sendall(bytes(head) + payload)
        except (OSError, ssl.SSLError) as e:
            self._eof = True
            raise ConnectionClosed(str(e)) from e
        if op == OP_CLOSE:
            self.close_sent = True

    def close(self, code=1000, reason=""):
        """Send a close frame (once)."""
        if self.close_sent:
            return
        self.send(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])

    def finish(self, code=1000, reason="", wait=1.0):
        """Close politely: send our close frame, wait up to `wait` seconds for the
        peer's (answering pings meanwhile), then shut the TCP connection down."""
        try:
            self.close(code, reason)
            deadline = time.monotonic() + wait
            while self.close_received is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                msg = self.poll(left)
                if msg is None:
                    break
        except (ConnectionClosed, ProtocolError, OSError):
            pass
        self.shutdown()

    def shutdown(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _mask(data, key):
    """XOR `data` with the 4-byte `key` repeated (fast for large payloads)."""
    n = len(data)
    if not n:
        return b""
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ k).to_bytes(n, "big")


# -- client side (for tests) -----------------------------------------------------------


class HandshakeError(Exception):
    """The server did not answer 101; `status`, `headers` and `body` say what it did."""

    def __init__(self, status, headers, body):
        super().__init__("handshake answered %s: %s" % (status, body[:200]))
        self.status, self.headers, self.body = status, headers, body


def connect(host, port, path, protocols=(), headers=None, ssl_context=None, timeout=10.0):
    """Open a client WebSocket to http(s)://host:port/path offering `protocols`.
    Returns (WebSocket, chosen protocol or None). Raises HandshakeError when the
    server answers anything but 101 (the body is read by Content-Length)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    if ssl_context is not None:
        sock = ssl_context.wrap_socket(sock, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    req = [
        "GET %s HTTP/1.1" % path,
        "Host: %s:%d" % (host, port),
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: " + key,
        "Sec-WebSocket-Version: 13",
    ]
    if protocols:
        req.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
    for k, v in (headers or {}).items():
        req.append("%s: %s" % (k, v))
    sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode("ascii"))
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            raise HandshakeError(0, {}, "connection closed during handshake")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if status != 101:
        n = int(hdrs.get("content-length", "0"))
        body = bytearray(rest)
        while len(body) < n:
            data = sock.recv(4096)
            if not data:
                break
            body += data
        sock.close()
        raise HandshakeError(status, hdrs, bytes(body).decode("utf-8", "replace"))
    if hdrs.get("sec-websocket-accept") != accept_key(key):
        sock.close()
        raise HandshakeError(status, hdrs, "bad Sec-WebSocket-Accept")
    return WebSocket(sock, prefix=rest, server=False), hdrs.get("sec-websocket-protocol")


# -- shared helpers -----------------------------------------------------------------------


def _pairs(query):
    if query is None:
        return []
    if isinstance(query, (bytes, bytearray)):
        query = query.decode("utf-8", "replace")
    if isinstance(query, str):
        return parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if isinstance(query, dict):
        out = []
        for k, v in query.items():
            for item in (v if isinstance(v, (list, tuple)) else [v]):
                out.append((k, "" if item is None else str(item)))
        return out
    return [(str(k), str(v)) for k, v in query]


def _first(pairs, name, default=None):
    for k, v in pairs:
        if k == name:
            return v
    return default


def _bool(v, default=False):
    """Go strconv.ParseBool, which the apiserver's query decoding uses."""
    if v is None:
        return default
    if v in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if v in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise ValueError("invalid boolean %r" % v)


def _status(code, reason, message, details=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
          "message": message, "reason": reason, "code": code}
    if details:
        st["details"] = details
    return st


def _send_json(handler, code, obj, extra_headers=None):
    body = json.dumps(obj).encode("utf-8")
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for k, v in (extra_headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
    handler.wfile.flush()


def _send_status(handler, code, reason, message, details=None):
    _send_json(handler, code, _status(code, reason, message, details))


def _not_found(handler, res, name):
    _send_status(handler, 404, "NotFound", '%s "%s" not found' % (res, name), {"name": name, "kind": res})


def _bad_request(handler, message):
    _send_status(handler, 400, "BadRequest", message)


def _keys(ns, name):
    return ["%s/%s" % (ns, name), name, "*"]


def _containers(pod):
    spec = pod.get("spec") or {}
    return [c.get("name") for c in spec.get("containers") or []], [c.get("name") for c in spec.get("initContainers") or []]


def _pick_container(handler, pod, container):
    """The container a request means, or None after answering 400."""
    name = pod["metadata"]["name"]
    names, inits = _containers(pod)
    if not container:
        if len(names) == 1:
            return names[0]
        if not names:
            _bad_request(handler, "pod %s has no containers" % name)
            return None
        msg = "a container name must be specified for pod %s, choose one of: [%s]" % (name, " ".join(names))
        if inits:
            msg += " or one of the init containers: [%s]" % " ".join(inits)
        _bad_request(handler, msg)
        return None
    if container not in names and container not in inits:
        _bad_request(handler, "container %s is not valid for pod %s" % (container, name))
        return None
    return container


def _container_status(pod, container):
    st = pod.get("status") or {}
    for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return cs
    return None


def _waiting_reason(pod, container):
    cs = _container_status(pod, container)
    if cs and "waiting" in (cs.get("state") or {}):
        return (cs["state"]["waiting"] or {}).get("reason") or "ContainerCreating"
    return None


def _ns_of(obj):
    return (obj.get("metadata") or {}).get("namespace")


def _get(store, res, ns, name):
    with store.lock:
        obj = store.get(res, ns, name)
        return copy.deepcopy(obj) if obj is not None else None


# -- exec: configuration ------------------------------------------------------------------

RULE_KEYS = {"match", "container", "stdout", "stderr", "stdout_bytes", "echo_stdin", "exit", "error",
             "status", "delay", "no_status", "drop", "times"}


def _check_rule(rule):
    if not isinstance(rule, dict):
        raise ValueError("an exec rule is a JSON object")
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise ValueError("unknown exec rule fields: %s" % ", ".join(sorted(unknown)))
    m = rule.get("match")
    if m is not None:
        if isinstance(m, str):
            re.compile(m)
        elif isinstance(m, list) and all(isinstance(x, str) for x in m):
            for x in m:
                if x.startswith("re:"):
                    re.compile(x[3:])
        else:
            raise ValueError("match is a list of strings or a regex string")
    for k in ("stdout", "stderr"):
        v = rule.get(k)
        if v is not None and not isinstance(v, str) and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise ValueError("%s is a string or a list of strings" % k)
    for k, hi in (("exit", 255), ("stdout_bytes", 1 << 31), ("times", 1 << 31)):
        v = rule.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi):
            raise ValueError("%s must be an integer in 0..%d" % (k, hi))
    d = rule.get("delay")
    if d is not None and (not isinstance(d, (int, float)) or isinstance(d, bool) or not 0 <= d <= MAX_DELAY):
        raise ValueError("delay must be 0..%d seconds" % MAX_DELAY)
    if rule.get("error") is not None and not isinstance(rule["error"], str):
        raise ValueError("error is a message string")
    if rule.get("status") is not None and not isinstance(rule["status"], dict):
        raise ValueError("status is a Status object")
    return dict(rule)


def _check_lines(v, what):
    if isinstance(v, str):
        return v.splitlines()
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise ValueError("%s is a string or a list of strings" % what)


def _log_records(v):
    if isinstance(v, dict):
        recs = []
        for pod, entry in v.items():
            if isinstance(entry, dict):
                for c, lines in entry.items():
                    recs.append({"pod": pod, "container": c, "lines": lines})
            else:
                recs.append({"pod": pod, "lines": entry})
        return recs
    if isinstance(v, list):
        return v
    raise ValueError("logs is a list of records or a mapping of pod to lines")


def configure_exec(body):
    """POST /_ferry/exec: set exec scripts and log records (see the module comment).
    Returns {"pods": {key: rule count}, "logs": [keys], "calls": [recent exec calls]}."""
    if not isinstance(body, dict):
        raise ValueError("the body is a JSON object")
    unknown = set(body) - {"pods", "logs", "unknown_exit", "stdin_idle", "follow_timeout", "reset"}
    if unknown:
        raise ValueError("unknown fields: %s" % ", ".join(sorted(unknown)))
    pods = body.get("pods") or {}
    if not isinstance(pods, dict):
        raise ValueError("pods maps a pod key (ns/name, name or *) to a list of rules")
    rules = {}
    for key, lst in pods.items():
        if isinstance(lst, dict):
            lst = [lst]
        if not isinstance(lst, list):
            raise ValueError("pods[%s] is a list of rules" % key)
        rules[key] = [_check_rule(r) for r in lst]
    recs = []
    for r in _log_records(body.get("logs") or []):
        if not isinstance(r, dict) or not isinstance(r.get("pod", "*"), str):
            raise ValueError("a log record is an object with a pod key")
        bad = set(r) - {"pod", "container", "lines", "previous", "append", "end"}
        if bad:
            raise ValueError("unknown log record fields: %s" % ", ".join(sorted(bad)))
        recs.append({
            "key": (r.get("pod", "*"), r.get("container") or "*"),
            "lines": _check_lines(r["lines"], "lines") if "lines" in r else None,
            "previous": _check_lines(r["previous"], "previous") if "previous" in r else None,
            "append": bool(r.get("append")), "end": bool(r.get("end")),
        })
    ue = body.get("unknown_exit")
    if ue is not None and (not isinstance(ue, int) or not 1 <= ue <= 255):
        raise ValueError("unknown_exit is null or an exit code 1..255")
    for k in ("stdin_idle", "follow_timeout"):
        v = body.get(k)
        if v is not None and (not isinstance(v, (int, float)) or not 0 < v <= 3600):
            raise ValueError("%s is seconds in (0, 3600]" % k)
    with _lock:
        if body.get("reset"):
            proxy = (_state["proxy"], _state["require_endpoints"])
            reset()
            _state["proxy"], _state["require_endpoints"] = proxy
        for key, lst in rules.items():
            _state["rules"][key] = lst
        if "unknown_exit" in body:
            _state["unknown_exit"] = ue
        for k in ("stdin_idle", "follow_timeout"):
            if body.get(k) is not None:
                _state[k] = float(body[k])
        now = time.time()
        for r in recs:
            cur = _state["logs"].setdefault(r["key"], {"lines": [], "previous": None, "end": False})
            if r["lines"] is not None:
                stamped = [(now + i * 1e-6, line) for i, line in enumerate(r["lines"])]
                cur["lines"] = (cur["lines"] + stamped) if r["append"] else stamped
            if r["previous"] is not None:
                cur["previous"] = [(now - 60 + i * 1e-6, line) for i, line in enumerate(r["previous"])]
            if r["end"]:
                cur["end"] = True
            elif r["lines"] is not None and not r["append"]:
                cur["end"] = False  # a fresh set of lines starts a fresh stream
        if recs:
            _state["log_gen"] += 1
            _log_cond.notify_all()
        return {
            "pods": {k: len(v) for k, v in _state["rules"].items()},
            "logs": ["%s:%s" % k for k in _state["logs"]],
            "calls": [{k: v for k, v in c.items() if not k.startswith("_")} for c in copy.deepcopy(_state["calls"][-100:])],
        }


def exec_calls():
    """Every exec call recorded since the last reset (a copy)."""
    with _lock:
        return [{k: v for k, v in c.items() if not k.startswith("_")} for c in copy.deepcopy(_state["calls"])]


def _match(rule, argv, container):
    if rule.get("container") and rule["container"] != container:
        return False
    m = rule.get("match")
    if m is None:
        return True
    if isinstance(m, str):
        return re.search(m, " ".join(argv)) is not None
    if len(argv) < len(m):
        return False
    for want, got in zip(m, argv):
        if want.startswith("re:"):
            if not re.fullmatch(want[3:], got):
                return False
        elif want != got:
            return False
    return True


def _find_rule(ns, pod, argv, container):
    with _lock:
        for key in _keys(ns, pod):
            for rule in _state["rules"].get(key, []):
                if not _match(rule, argv, container):
                    continue
                used = _state["used"].get(id(rule), 0)
                if rule.get("times") is not None and used >= rule["times"]:
                    continue
                _state["used"][id(rule)] = used + 1
                return rule
    return None


# -- exec: builtins -----------------------------------------------------------------------


class _Result:
    def __init__(self):
        self.stdout = []  # list of bytes chunks, one frame each (split further by size)
        self.stderr = []
        self.exit = 0
        self.error = None  # InternalError message
        self.status = None  # raw Status
        self.delay = 0.0
        self.no_status = False
        self.drop = False
        self.stdout_bytes = 0


def _run_rule(rule, stdin):
    r = _Result()
    out = rule.get("stdout")
    if isinstance(out, list):
        r.stdout.extend(x.encode("utf-8") for x in out)
    elif out:
        r.stdout.append(out.encode("utf-8"))
    if rule.get("echo_stdin") and stdin:
        r.stdout.append(bytes(stdin))
    r.stdout_bytes = rule.get("stdout_bytes") or 0
    err = rule.get("stderr")
    if isinstance(err, list):
        r.stderr.extend(x.encode("utf-8") for x in err)
    elif err:
        r.stderr.append(err.encode("utf-8"))
    r.exit = rule.get("exit") or 0
    r.error = rule.get("error")
    r.status = rule.get("status")
    r.delay = float(rule.get("delay") or 0)
    r.no_status = bool(rule.get("no_status"))
    r.drop = bool(rule.get("drop"))
    return r


def _builtin(argv, stdin, pod_name, env, out, err):
    """Run one builtin command; returns its exit code, or None if unknown."""
    cmd, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if cmd == "echo":
        nl = True
        if args and args[0] == "-n":
            nl, args = False, args[1:]
        out.append((" ".join(args) + ("\n" if nl else "")).encode("utf-8"))
        return 0
    if cmd == "cat" and not args:
        if stdin:
            out.append(bytes(stdin))
        return 0
    if cmd == "true":
        return 0
    if cmd == "false":
        return 1
    if cmd == "hostname":
        out.append((pod_name + "\n").encode("utf-8"))
        return 0
    if cmd == "env":
        out.append("".join("%s=%s\n" % kv for kv in sorted(env.items())).encode("utf-8"))
        return 0
    if cmd == "sleep" and len(args) == 1:
        try:
            secs = float(args[0])
        except ValueError:
            err.append(("sleep: invalid time interval '%s'\n" % args[0]).encode("utf-8"))
            return 1
        return ("sleep", min(max(secs, 0.0), MAX_DELAY))
    return None


def _sh(script, stdin, pod_name, env):
    """A tiny POSIX-shell subset for `sh -c SCRIPT`; returns a _Result."""
    r = _Result()
    out, err = r.stdout, r.stderr
    try:
        lex = shlex.shlex(script, posix=True, punctuation_chars=";&|>")
        lex.whitespace_split = True
        tokens = list(lex)
    except ValueError as e:
        err.append(("sh: 1: Syntax error: %s\n" % e).encode("utf-8"))
        r.exit = 2
        return r
    cmds, cur = [], []
    for t in tokens:
        if t in (";", "&&", "||"):
            cmds.append((cur, t))
            cur = []
        else:
            cur.append(t)
    cmds.append((cur, None))
    status, skip = 0, False
    for words, sep in cmds:
        if not skip and words:
            to_err = False
            if words[:2] == [">&", "2"]:
                to_err, words = True, words[2:]
            elif words[-3:] == ["1", ">&", "2"]:
                to_err, words = True, words[:-3]
            elif words[-2:] == [">&", "2"]:
                to_err, words = True, words[:-2]
            target = err if to_err else out
            if not words:
                continue
            if words[0] == "exit":
                try:
                    r.exit = int(words[1]) & 0xFF if len(words) > 1 else status
                except ValueError:
                    err.append(("sh: 1: exit: Illegal number: %s\n" % words[1]).encode("utf-8"))
                    r.exit = 2
                return r
            res = _builtin(words, stdin, pod_name, env, target, err)
            if isinstance(res, tuple):
                r.delay += res[1]
                res = 0
            if res is None:
                err.append(("sh: 1: %s: not found\n" % words[0]).encode("utf-8"))
                res = 127
            status = res
        skip = (sep == "&&" and status != 0) or (sep == "||" and status == 0)
    r.exit = status
    return r


def _run_builtin(argv, stdin, pod, container):
    name = pod["metadata"]["name"]
    env = {"HOSTNAME": name, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            for e in c.get("env") or []:
                if "value" in e:
                    env[e["name"]] = str(e["value"])
    if argv == [ATTACH]:
        r = _Result()
        with _lock:
            rec = _log_record(_ns_of(pod), name, container)
            lines = list(rec["lines"]) if rec else []
        if lines:
            r.stdout.append(_format(lines, False))
        if stdin:
            r.stdout.append(bytes(stdin))
        return r
    prog = argv[0].rsplit("/", 1)[-1]
    if prog in ("sh", "bash", "ash", "dash") and len(argv) >= 3 and argv[1] == "-c":
        return _sh(argv[2], stdin, name, env)
    r = _Result()
    res = _builtin(argv, stdin, name, env, r.stdout, r.stderr)
    if isinstance(res, tuple):
        r.delay = res[1]
        return r
    if res is not None:
        r.exit = res
        return r
    with _lock:
        ue = _state["unknown_exit"]
    msg = ('failed to exec in container: failed to start exec "%s": OCI runtime exec failed: exec failed: '
           'unable to start container process: exec: "%s": executable file not found in $PATH: unknown'
           % ("%032x" % (abs(hash((name, tuple(argv), time.time()))) % (1 << 128)), argv[0]))
    if ue is not None:
        r.stderr.append((msg + "\n").encode("utf-8"))
        r.exit = ue
    else:
        r.error = "error executing command in container: " + msg
    return r


def _exit_status(argv, r, protocol):
    """The channel-3 payload for a result (bytes), or None for nothing."""
    v4 = protocol in ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io")
    if r.status is not None:
        return json.dumps(r.status).encode("utf-8")
    if r.error is not None:
        message = "Internal error occurred: " + r.error
        if not v4:
            return message.encode("utf-8")
        return json.dumps({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                           "details": {"causes": [{"message": r.error}]}, "code": 500}).encode("utf-8")
    if r.exit == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode("utf-8") if v4 else None
    message = "command terminated with non-zero exit code: error executing command [%s], exit code %d" % (
        " ".join(argv), r.exit)
    if not v4:
        return message.encode("utf-8")
    return json.dumps({"metadata": {}, "status": "Failure", "message": message, "reason": "NonZeroExitCode",
                       "details": {"causes": [{"reason": "ExitCode", "message": str(r.exit)}]}}).encode("utf-8")


# -- exec: the endpoint -------------------------------------------------------------------


class _Channels:
    """Channel framing for the negotiated protocol over a server WebSocket."""

    def __init__(self, sock, protocol):
        self.ws = sock
        self.protocol = protocol
        self.b64 = protocol is not None and "base64" in protocol
        self.v5 = protocol == "v5.channel.k8s.io"

    def send(self, channel, data=b""):
        if self.b64:
            self.ws.send(OP_TEXT, chr(ord("0") + channel) + base64.b64encode(data).decode("ascii"))
        else:
            self.ws.send(OP_BINARY, bytes([channel]) + data)

    def decode(self, op, payload):
        """(channel, data) of a client message, or None if it carries nothing."""
        if not payload:
            return None
        if self.b64:
            if op != OP_TEXT:
                return None
            ch = ord(payload[:1]) - ord("0")
            try:
                return ch, base64.b64decode(payload[1:], validate=False)
            except ValueError:
                return None
        return payload[0], payload[1:]


def handle_exec(handler, store, ns, pod_name, query):
    """GET /api/v1/namespaces/{ns}/pods/{pod}/exec: see the module comment."""
    try:
        pairs = _pairs(query)
        argv = [v for k, v in pairs if k == "command"]
        want_stdin = _bool(_first(pairs, "stdin"))
        want_stdout = _bool(_first(pairs, "stdout"))
        want_stderr = _bool(_first(pairs, "stderr"))
        tty = _bool(_first(pairs, "tty"))
    except ValueError as e:
        return _bad_request(handler, str(e))
    attach = urlsplit(handler.path).path.rstrip("/").endswith("/attach")
    if attach:
        argv = [ATTACH]
    pod = _get(store, "pods", ns, pod_name)
    if pod is None:
        return _not_found(handler, "pods", pod_name)
    container = _pick_container(handler, pod, _first(pairs, "container"))
    if container is None:
        return None
    if not argv:
        return _bad_request(handler, "you must specify at least one command for the container")
    if not (want_stdin or want_stdout or want_stderr):
        return _bad_request(handler, "you must specify at least 1 of stdin, stdout, stderr")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return _bad_request(handler, "cannot exec into a container in a completed pod; current phase is %s" % phase)
    waiting = _waiting_reason(pod, container)
    if waiting:
        return _bad_request(handler, 'unable to upgrade connection: container not found ("%s")' % container)
    problem = upgrade_problem(handler)
    if problem:
        return _bad_request(handler, problem)
    offered = offered_protocols(handler.headers)
    protocol = next((p for p in offered if p in PROTOCOLS), None)
    if offered and protocol is None:
        return _bad_request(handler, "requested protocol(s) are not supported: [%s]; supports [%s]"
                            % (" ".join(offered), " ".join(PROTOCOLS)))
    sock = server_handshake(handler, protocol)
    ch = _Channels(sock, protocol)
    call = {"namespace": ns, "pod": pod_name, "container": container, "command": argv, "protocol": protocol or "",
            "stdin": "", "stdin_bytes": 0, "stdin_closed": False, "tty": tty, "resize": [], "pings": 0,
            "exit": None, "error": None, "time": time.time()}
    try:
        _exec_session(ch, sock, pod, container, argv, want_stdin, want_stdout, want_stderr, tty, call, store)
    except (ConnectionClosed, ProtocolError, OSError) as e:
        call["error"] = call["error"] or "connection: %s" % e
        sock.shutdown()
    finally:
        _record_call(call, sock)
    return None


def _record_call(call, sock):
    """Add the call to the log once; done before the Status goes out, so a client
    that has seen the end of its session finds its call recorded."""
    call["pings"] = sock.pings
    if call.get("_recorded"):
        return
    call["_recorded"] = True
    with _lock:
        _state["calls"].append(call)
        del _state["calls"][:-MAX_CALLS]


def _exec_session(ch, sock, pod, container, argv, want_stdin, want_stdout, want_stderr, tty, call, store=None):
    ns, pod_name = pod["metadata"].get("namespace"), pod["metadata"]["name"]
    # The kubelet's "connected" signal: an empty frame on the first writable channel.
    ch.send(STDOUT if want_stdout else STDERR if want_stderr and not tty else ERROR)
    stdin = bytearray()
    closed = False  # the client closed the WebSocket
    if want_stdin:
        with _lock:
            idle = _state["stdin_idle"]
        start = last = time.monotonic()
        while True:
            now = time.monotonic()
            if now - start > STDIN_TIMEOUT:
                break
            if not ch.v5:
                # v4 and older cannot half-close stdin: end it after a quiet spell
                limit = (last + idle) if stdin else (start + idle * 5)
                if now >= limit:
                    break
                wait = limit - now
            else:
                wait = 1.0
            msg = sock.poll(min(wait, 1.0))
            if msg is None:
                continue
            op, payload = msg
            if op == OP_CLOSE:
                closed = True
                break
            d = ch.decode(op, payload)
            if d is None:
                continue
            channel, data = d
            if channel == STDIN:
                if len(stdin) + len(data) > MAX_STDIN:
                    sock.close(1009, "stdin too large")
                    closed = True
                    break
                stdin += data
                last = time.monotonic()
            elif channel == RESIZE:
                _record_resize(call, data)
            elif channel == CLOSE and ch.v5 and data[:1] == bytes([STDIN]):
                call["stdin_closed"] = True
                break
    call["stdin_bytes"] = len(stdin)
    call["stdin"] = bytes(stdin[:65536]).decode("utf-8", "replace")
    if closed:
        call["error"] = "client closed before the command ran"
        sock.shutdown()
        return
    rule = _find_rule(ns, pod_name, argv, container)
    result = _run_rule(rule, stdin) if rule is not None else _run_command(store, pod, container, argv, stdin)
    if result is None:
        result = _run_builtin(argv, stdin, pod, container)
    call["rule"] = rule is not None
    if result.delay:
        _wait(sock, ch, result.delay, call)
    if result.drop:
        call["error"] = "dropped (scripted)"
        _record_call(call, sock)
        sock.shutdown()
        return
    out_ch = STDOUT
    err_ch = STDOUT if tty else STDERR
    if want_stdout:
        for chunk in result.stdout:
            _send_chunks(ch, out_ch, chunk)
        if result.stdout_bytes:
            _send_pattern(ch, out_ch, result.stdout_bytes)
    if (want_stderr or tty) and (want_stdout or not tty):
        for chunk in result.stderr:
            _send_chunks(ch, err_ch, chunk)
    call["exit"] = result.exit if result.error is None and result.status is None else None
    call["error"] = result.error
    _record_call(call, sock)
    if not result.no_status:
        payload = _exit_status(argv, result, ch.protocol)
        if payload is not None:
            ch.send(ERROR, payload)
    sock.finish(1000)


def _record_resize(call, data):
    try:
        size = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        size = {"invalid": data.decode("latin-1")}
    if len(call["resize"]) < 100:
        call["resize"].append(size)


def _wait(sock, ch, seconds, call):
    """Sleep `seconds`, answering pings and taking note of resizes and stdin."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        msg = sock.poll(min(left, 0.5))
        if msg is None:
            continue
        if msg[0] == OP_CLOSE:
            raise ConnectionClosed("client closed the exec stream")
        d = ch.decode(*msg)
        if d and d[0] == RESIZE:
            _record_resize(call, d[1])


def _send_chunks(ch, channel, data):
    for i in range(0, len(data), FRAME_CHUNK):
        ch.send(channel, data[i:i + FRAME_CHUNK])
        _drain(ch)


def _send_pattern(ch, channel, n):
    block = PATTERN * (FRAME_CHUNK // len(PATTERN))
    sent = 0
    while sent < n:
        k = min(len(block), n - sent)
        ch.send(channel, block[:k])
        sent += k
        _drain(ch)


def _drain(ch):
    """Answer whatever control frames have already arrived, without waiting."""
    msg = ch.ws.poll(0)
    if msg is not None and msg[0] == OP_CLOSE:
        raise ConnectionClosed("client closed the exec stream")


# -- logs ---------------------------------------------------------------------------------


def _rfc3339nano(t):
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    frac = ("%06d000" % dt.microsecond).rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"


def _parse_time(s):
    s = s.strip()
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", s)
    if not m:
        raise ValueError(s)
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = datetime.timezone.utc if m.group(3) == "Z" else datetime.timezone(
        datetime.timedelta(hours=int(m.group(3)[1:3]), minutes=int(m.group(3)[4:6]))
        * (1 if m.group(3)[0] == "+" else -1))
    t = base.replace(tzinfo=tz).timestamp()
    if m.group(2):
        t += float("0" + m.group(2))
    return t


def _log_record(ns, pod, container):
    for key in _keys(ns, pod):
        for c in (container, "*"):
            rec = _state["logs"].get((key, c))
            if rec is not None:
                return rec
    return None


def _format(lines, timestamps):
    return b"".join(((_rfc3339nano(t) + " ") if timestamps else "").encode("utf-8") + text.encode("utf-8") + b"\n"
                    for t, text in lines)


def handle_log(handler, store, ns, pod_name, query):
    """GET /api/v1/namespaces/{ns}/pods/{pod}/log: see the module comment."""
    pairs = _pairs(query)
    try:
        follow = _bool(_first(pairs, "follow"))
        previous = _bool(_first(pairs, "previous"))
        timestamps = _bool(_first(pairs, "timestamps"))
    except ValueError as e:
        return _bad_request(handler, str(e))
    pod = _get(store, "pods", ns, pod_name)
    if pod is None:
        return _not_found(handler, "pods", pod_name)
    container = _pick_container(handler, pod, _first(pairs, "container"))
    if container is None:
        return None
    tail = since = limit = None
    causes = []
    try:
        if _first(pairs, "tailLines") is not None:
            tail = int(_first(pairs, "tailLines"))
            if tail < 0:
                causes.append(("tailLines", tail, "must be greater than or equal to 0"))
        if _first(pairs, "sinceSeconds") is not None:
            secs = int(_first(pairs, "sinceSeconds"))
            if secs < 1:
                causes.append(("sinceSeconds", secs, "must be greater than 0"))
            since = time.time() - secs
        if _first(pairs, "sinceTime") is not None:
            if since is not None:
                causes.append(("sinceSeconds", "", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
            since = _parse_time(_first(pairs, "sinceTime"))
        if _first(pairs, "limitBytes") is not None:
            limit = int(_first(pairs, "limitBytes"))
            if limit < 1:
                causes.append(("limitBytes", limit, "must be greater than 0"))
    except ValueError as e:
        return _bad_request(handler, "invalid log options: %s" % e)
    if causes:
        msg = 'PodLogOptions "%s" is invalid: %s' % (pod_name, ", ".join(
            "%s: Invalid value: %s: %s" % (f, json.dumps(v), d) for f, v, d in causes))
        return _send_status(handler, 422, "Invalid", msg, {"name": pod_name, "kind": "PodLogOptions", "causes": [
            {"reason": "FieldValueInvalid", "message": "Invalid value: %s: %s" % (json.dumps(v), d), "field": f}
            for f, v, d in causes]})
    waiting = _waiting_reason(pod, container)
    if waiting and waiting not in ("CrashLoopBackOff",) and not previous:
        return _bad_request(handler, 'container "%s" in pod "%s" is waiting to start: %s' % (container, pod_name, waiting))
    with _lock:
        rec = _log_record(ns, pod_name, container)
        if previous:
            if rec is None or rec["previous"] is None:
                return _bad_request(handler, 'previous terminated container "%s" in pod "%s" not found'
                                    % (container, pod_name))
            lines = list(rec["previous"])
        else:
            lines = list(rec["lines"]) if rec else []
        gen = _state["log_gen"]
        follow_timeout = _state["follow_timeout"]
    if since is not None:
        lines = [x for x in lines if x[0] >= since]
    if tail is not None:
        lines = lines[-tail:] if tail else []
    body = _format(lines, timestamps)
    if limit is not None:
        body = body[:limit]
    chunked = follow and not previous and handler.request_version == "HTTP/1.1"
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    elif follow and not previous:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    else:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command == "HEAD":
        handler.wfile.flush()
        return None
    if not (follow and not previous):
        handler.wfile.write(body)
        handler.wfile.flush()
        return None
    _follow(handler, store, ns, pod_name, container, body, len(rec["lines"]) if rec else 0, chunked, timestamps,
            limit, gen, follow_timeout, pod["metadata"].get("uid"))
    return None


def _follow(handler, store, ns, pod_name, container, first, sent_lines, chunked, timestamps, limit, gen,
            follow_timeout, uid):
    budget = limit

    def write(data):
        nonlocal budget
        if budget is not None:
            data = data[:budget]
            budget -= len(data)
        if not data:
            return
        if chunked:
            handler.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            handler.wfile.write(data)
        handler.wfile.flush()

    try:
        write(first)
        deadline = time.monotonic() + follow_timeout
        while (budget is None or budget > 0) and time.monotonic() < deadline:
            with _lock:
                if _state["log_gen"] == gen:
                    _log_cond.wait(0.25)
                gen = _state["log_gen"]
                rec = _log_record(ns, pod_name, container)
                new = rec["lines"][sent_lines:] if rec else []
                sent_lines = len(rec["lines"]) if rec else 0
                ended = bool(rec and rec["end"])
            if new:
                write(_format(new, timestamps))
            if ended:
                break
            cur = _get(store, "pods", ns, pod_name)
            if cur is None or cur["metadata"].get("uid") != uid or _client_gone(handler.connection):
                break
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        else:
            handler.close_connection = True
    except (OSError, ssl.SSLError):
        handler.close_connection = True


def _client_gone(sock):
    """True when the peer has closed its end. A following client sends nothing, so
    a readable socket means EOF (plain: peek; TLS: a non-blocking read, which also
    sees the close_notify)."""
    old = sock.gettimeout()
    try:
        if not select.select([sock], [], [], 0)[0] and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            return False
        sock.settimeout(0.0)
        if isinstance(sock, ssl.SSLSocket):
            return sock.recv(1) == b""
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, ssl.SSLWantReadError, socket.timeout):
        return False
    except (OSError, ValueError):
        return True
    finally:
        try:
            sock.settimeout(old)
        except OSError:
            pass


# -- service proxy ------------------------------------------------------------------------

RESPONSE_KEYS = {"status", "body", "headers", "path", "method", "delay", "drop", "echo"}


def _check_response(r):
    if not isinstance(r, dict):
        raise ValueError("a proxy response is a JSON object")
    bad = set(r) - RESPONSE_KEYS
    if bad:
        raise ValueError("unknown proxy response fields: %s" % ", ".join(sorted(bad)))
    st = r.get("status", 200)
    if not isinstance(st, int) or not 100 <= st <= 599:
        raise ValueError("status must be 100..599")
    if not isinstance(r.get("headers", {}), dict):
        raise ValueError("headers is an object")
    p = r.get("path")
    if p is not None:
        if not isinstance(p, str):
            raise ValueError("path is a string")
        if p.startswith("re:"):
            re.compile(p[3:])
    d = r.get("delay", 0)
    if not isinstance(d, (int, float)) or not 0 <= d <= MAX_DELAY:
        raise ValueError("delay must be 0..%d seconds" % MAX_DELAY)
    return dict(r)


def configure_proxy(body):
    """POST /_ferry/proxy: per-service responses (see the module comment). Returns
    {"services": [keys], "calls": [recent proxied requests]}."""
    if not isinstance(body, dict):
        raise ValueError("the body is a JSON object")
    services = dict(body.get("services") or {})
    if not isinstance(services, dict):
        raise ValueError("services maps a service key to a response or a list of responses")
    for k, v in body.items():
        if k not in ("services", "reset", "require_endpoints"):
            services[k] = v
    parsed = {}
    for key, v in services.items():
        lst = v if isinstance(v, list) else [v]
        parsed[key] = [_check_response(r) for r in lst]
    with _lock:
        if body.get("reset"):
            _state["proxy"] = {}
            _state["require_endpoints"] = False
            _state["proxy_calls"] = []
        _state["proxy"].update(parsed)
        if "require_endpoints" in body:
            _state["require_endpoints"] = bool(body["require_endpoints"])
        return {"services": sorted(_state["proxy"]), "calls": copy.deepcopy(_state["proxy_calls"][-100:])}


def _read_body(handler):
    """The request body: the one the API server core read already (its handler keeps
    it as `request_body`), else read here (Content-Length or chunked)."""
    pre = getattr(handler, "request_body", None)
    if isinstance(pre, (bytes, bytearray)):
        return bytes(pre)
    te = (handler.headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        out = bytearray()
        while True:
            line = handler.rfile.readline(1024)
            n = int(line.split(b";")[0].strip() or b"0", 16)
            if n == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += handler.rfile.read(n)
            handler.rfile.readline(1024)
            if len(out) > MAX_STDIN:
                raise ValueError("body too large")
    n = int(handler.headers.get("Content-Length") or 0)
    if n > MAX_STDIN:
        raise ValueError("body too large")
    return handler.rfile.read(n) if n else b""


def _ready_endpoint(store, ns, svc):
    sel = (svc.get("spec") or {}).get("selector")
    if not sel:
        return True  # selectorless services have manual endpoints; assume some
    with store.lock:
        pods = store.list("pods", ns)
    for p in pods:
        labels = (p.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in sel.items()) and not p["metadata"].get("deletionTimestamp"):
            for c in (p.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Ready" and c.get("status") == "True":
                    return True
    return False


def handle_proxy(handler, store, ns, service, port, path):
    """{any verb} /api/v1/namespaces/{ns}/services/[scheme:]{name}[:port]/proxy/{path}."""
    scheme = "http"
    if service.startswith(("https:", "http:")):
        scheme, service = service.split(":", 1)
    if port is None and ":" in service:
        service, port = service.split(":", 1)
    port = "" if port is None else str(port)
    split = urlsplit(path or "/")
    path = split.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    raw_query = split.query or urlsplit(handler.path).query
    try:
        body = _read_body(handler)
    except ValueError as e:
        handler.close_connection = True
        return _bad_request(handler, str(e))
    svc = _get(store, "services", ns, service)
    if svc is None:
        return _not_found(handler, "services", service)
    ports = (svc.get("spec") or {}).get("ports") or []
    if port and not any(port in (str(p.get("port")), p.get("name")) for p in ports):
        return _send_status(handler, 503, "ServiceUnavailable",
                            'no endpoints available for service "%s:%s"' % (service, port))
    with _lock:
        responses = [r for key in _keys(ns, service) for r in _state["proxy"].get(key, [])]
        require = _state["require_endpoints"]
        call = {"namespace": ns, "service": service, "port": port, "method": handler.command, "path": path,
                "query": raw_query, "body": body[:65536].decode("utf-8", "replace"), "time": time.time()}
        _state["proxy_calls"].append(call)
        del _state["proxy_calls"][:-MAX_CALLS]
    if require and not _ready_endpoint(store, ns, svc):
        return _send_status(handler, 503, "ServiceUnavailable", 'no endpoints available for service "%s"' % service)
    resp = None
    for r in responses:
        if r.get("method") and r["method"].upper() != handler.command:
            continue
        p = r.get("path")
        if p is not None and not (re.fullmatch(p[3:], path) if p.startswith("re:") else p == path):
            continue
        resp = r
        break
    if resp is None:
        resp = {"echo": True}
    if resp.get("delay"):
        time.sleep(resp["delay"])
    if resp.get("drop"):
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return None
    headers = dict(resp.get("headers") or {})
    if resp.get("echo") or "body" not in resp:
        echo = {"namespace": ns, "service": service, "port": port, "scheme": scheme, "method": handler.command,
                "path": path, "query": raw_query,
                "headers": {k.lower(): v for k, v in handler.headers.items() if k.lower() != "authorization"},
                "body": body.decode("utf-8", "replace")}
        out = json.dumps(echo).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(resp["body"], str):
        out = resp["body"].encode("utf-8")
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    else:
        out = json.dumps(resp["body"]).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    handler.send_response(resp.get("status", 200))
    for k, v in headers.items():
        if k.lower() != "content-length":
            handler.send_header(k, str(v))
    handler.send_header("Content-Length", str(len(out)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(out)
    handler.wfile.flush()
    return None
