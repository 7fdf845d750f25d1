#!/usr/bin/python3
"""httpd.py: loopback HTTP/1.1 (optionally HTTPS) server for Ferry's tests and benchmarks.

Standard library only. One thread per connection, keep-alive by default.

Usage:
    httpd.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
             [--tls CERT KEY [--client-ca CA]] [--verbose]

With --client-ca, TLS clients must present a certificate signed by CA.

Test endpoints (any method unless noted; counted in the statistics):
    /echo                         200 {"method","path","query","headers","body"}
    /delay?ms=N                   sleep N ms (0..60000, default 0), then 200 {"ok":true}
    /status?code=C[&retry_after=S][&body=TEXT]
                                  status C (200..599); Retry-After: S when given;
                                  body TEXT as text/plain, else {"status":C}
    /flaky?key=K&fail=N&code=C[&retry_after=S]
                                  the first N attempts for key K get C, later ones
                                  200 {"attempt":n}; every attempt is logged under K
    /bytes?n=N                    200 with exactly N bytes (0..512 MiB), streamed;
                                  byte i of the body is i % 256
    /drop                         close the connection without any response
    /headers?Name=value&...       200 "ok" with those response headers (names may repeat)
    /json          (POST only)    200 {"received": <request body parsed as JSON>},
                                  400 {"error": ...} when the body is not JSON
    /stream?chunks=N&size=S[&key=K][&interval_ms=M][&hold=1][&abort_after=A]
                                  200 with a chunked body sent as N chunks of S bytes
                                  (defaults 1 and 1024; N*S up to 512 MiB), each
                                  flushed after waiting M ms; byte i of the body is
                                  i % 256. hold=1 sends the headers, then waits for
                                  POST /_release?key=K before the body (giving up
                                  after the idle timeout, 120 s). abort_after=A
                                  drops the connection after A chunks, with no end
                                  chunk. Progress is logged under K (see /_streams).
    /stream?lines=N[&split=1][...]
                                  the same, with N lines of JSON as the body, one
                                  per chunk: {"type":"ADDED","object":{"n":i}} for
                                  i = 1..N, each ending in "\n"; split=1 sends every
                                  line as two chunks, cut in its middle
    anything else                 404 {"error": ...}

Control endpoints (paths starting with "/_"; never counted):
    GET  /_stats                  {"connections","requests","inflight","peak_inflight"}
    POST /_reset                  zero the counters and forget every /flaky key
    GET  /_attempts?key=K         {"count": N, "times": [monotonic seconds, ...]}
    GET  /_streams?key=K          the last /stream under K: {"state", "sent",
                                  "chunks", "blocked_for"}: state is "none",
                                  "holding", "sending", "done", "aborted" or "closed"
                                  (the client went away mid-body); sent counts body
                                  bytes the socket accepted; blocked_for is how long
                                  the current write has waited for the client (0
                                  when none is waiting): the client's backpressure
    POST /_release?key=K          let the /stream held under K send its body

Invariants:
  - Every response carries Content-Length (except 204 and 304, which have no body,
    /drop, which sends nothing, and /stream, which is chunked), so clients can
    always keep the connection.
  - A request body is read to its end before the response is sent; when the
    framing cannot be trusted (bad Content-Length, bad chunking, body too large)
    the response says "Connection: close" and the connection is closed.
  - A /stream notices a client that closes the connection while it waits
    (interval, hold) on plain HTTP, and at its next write on TLS.
  - Memory is bounded: kept request bodies, /flaky keys and attempt logs, /stream
    keys, and
    concurrent connections all have caps (the constants below, serving.py); large
    bodies are streamed in fixed-size chunks in both directions.
  - Nothing is logged per request unless --verbose.
"""

import argparse
import json
import re
import select
import socket
import ssl
import sys
import threading
import time
import traceback
from urllib.parse import parse_qsl, urlsplit

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
import serving  # noqa: E402

MAX_BYTES = 512 * 1024 * 1024  # largest /bytes?n=
MAX_DELAY_MS = 60_000  # largest /delay?ms=
MAX_KEPT_BODY = 16 * 1024 * 1024  # largest request body held in memory (/echo, /json)
MAX_FLAKY_KEYS = 10_000  # distinct /flaky keys between resets
MAX_ATTEMPT_TIMES = 10_000  # timestamps kept per key; the count stays exact
MAX_FLAKY_FAIL = 1_000_000  # largest /flaky?fail=
MAX_LINE = 8192  # longest chunk-size or trailer line in a chunked body
MAX_TRAILERS = 100  # most trailer lines after a chunked body
CHUNK = serving.WBUFSIZE  # I/O unit for streaming bodies
MAX_STREAM_KEYS = 10_000  # distinct /stream keys between resets
MAX_STREAM_CHUNK = 1024 * 1024  # largest /stream?size=
MAX_STREAM_CHUNKS = 1_000_000  # largest /stream?chunks= and ?lines=
STREAM_SNDBUF = 64 * 1024  # a /stream socket's send buffer: backpressure shows soon
STREAM_BLOCKED = 0.05  # seconds a write must wait before blocked_for reports it

# /bytes payload: byte i of the body is i % 256, so a client can check ordering.
PATTERN = memoryview(bytes(range(256)) * (CHUNK // 256))

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 header field name
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
# Response headers /headers may not set: they decide message framing.
FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection"}


class HttpError(Exception):
    """A request the server refuses: answered with `status` and {"error": message}."""

    def __init__(self, status, message, close=False):
        super().__init__(message)
        self.status = status
        self.close = close  # True when the connection's framing can no longer be trusted


class Stats:
    """Counters shared by every connection thread; all access holds one lock.

    A reset starts a new generation: a keep-alive connection opened before the
    reset is counted again when it serves its next request, so `connections`
    always means "connections that served a request since the last reset".
    `inflight` is a gauge of live requests and is never zeroed, only observed.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._generation = 0
        self._connections = 0
        self._requests = 0
        self._inflight = 0
        self._peak_inflight = 0
        self._attempts = {}  # key -> [count, [monotonic times...]]

    def begin(self, conn_generation):
        """Record a request starting on a connection last counted in `conn_generation`
        (None if never); returns the generation the connection is now counted in."""
        with self._lock:
            if conn_generation != self._generation:
                self._connections += 1
            self._requests += 1
            self._inflight += 1
            self._peak_inflight = max(self._peak_inflight, self._inflight)
            return self._generation

    def end(self):
        """Record a request finishing (every begin() is paired with one end())."""
        with self._lock:
            self._inflight -= 1

    def snapshot(self):
        with self._lock:
            return {
                "connections": self._connections,
                "requests": self._requests,
                "inflight": self._inflight,
                "peak_inflight": self._peak_inflight,
            }

    def reset(self):
        with self._lock:
            self._generation += 1
            self._connections = 0
            self._requests = 0
            self._peak_inflight = self._inflight  # 0 unless requests are in flight
            self._attempts.clear()

    def attempt(self, key):
        """Log one /flaky attempt for `key`; returns its 1-based number, or None
        when the key table is full."""
        now = time.monotonic()
        with self._lock:
            log = self._attempts.get(key)
            if log is None:
                if len(self._attempts) >= MAX_FLAKY_KEYS:
                    return None
                log = self._attempts[key] = [0, []]
            log[0] += 1
            if len(log[1]) < MAX_ATTEMPT_TIMES:
                log[1].append(now)
            return log[0]

    def attempts(self, key):
        with self._lock:
            count, times = self._attempts.get(key, (0, []))
            return {"count": count, "times": list(times)}


class StreamLog:
    """Progress of /stream responses by key (the client's backpressure and closes
    seen from the server); all access holds one lock. A record's "release" event
    lets a held stream send its body; a release may come before the stream."""

    def __init__(self):
        self._lock = threading.Lock()
        self._records = {}  # key -> dict(state, sent, chunks, writing_since, release)

    def start(self, key, state):
        """A fresh record for a stream under `key` (keeping an early release), or
        None when the key table is full."""
        with self._lock:
            old = self._records.get(key)
            if old is None and len(self._records) >= MAX_STREAM_KEYS:
                return None
            release = old["release"] if old and old["state"] == "none" else threading.Event()
            rec = {"state": state, "sent": 0, "chunks": 0, "writing_since": None, "release": release}
            self._records[key] = rec
            return rec

    def update(self, rec, **fields):
        with self._lock:
            rec.update(fields)

    def wrote(self, rec, n):
        with self._lock:
            rec["sent"] += n
            rec["chunks"] += 1
            rec["writing_since"] = None

    def release(self, key):
        """Returns False when the key table is full."""
        with self._lock:
            rec = self._records.get(key)
            if rec is None:
                if len(self._records) >= MAX_STREAM_KEYS:
                    return False
                rec = self._records[key] = {"state": "none", "sent": 0, "chunks": 0,
                                            "writing_since": None, "release": threading.Event()}
            rec["release"].set()
            return True

    def snapshot(self, key):
        with self._lock:
            rec = self._records.get(key)
            if rec is None:
                return {"state": "none", "sent": 0, "chunks": 0, "blocked_for": 0}
            since = rec["writing_since"]
            waited = time.monotonic() - since if since is not None else 0
            return {"state": rec["state"], "sent": rec["sent"], "chunks": rec["chunks"],
                    "blocked_for": waited if waited >= STREAM_BLOCKED else 0}

    def reset(self):
        with self._lock:
            self._records.clear()


def _pattern(offset, size):
    """`size` bytes of the /bytes pattern (byte i is i % 256) from body offset `offset`."""
    start = offset % 256
    return (bytes(range(256)) * ((start + size + 255) // 256))[start : start + size]


def _line_pieces(count, split):
    """The chunks of a /stream?lines= body: one JSON line each, or its two halves."""
    for i in range(1, count + 1):
        line = json.dumps({"type": "ADDED", "object": {"n": i}}, separators=(",", ":")).encode() + b"\n"
        if split:
            yield line[: len(line) // 2]
            yield line[len(line) // 2 :]
        else:
            yield line


def _param(query, name, default=None):
    """The last value of `name` in the parsed query, or `default`."""
    value = default
    for k, v in query:
        if k == name:
            value = v
    return value


def _int_param(query, name, default, lo, hi):
    """An integer query parameter within [lo, hi]; raises HttpError(400) otherwise."""
    text = _param(query, name)
    if text is None:
        if default is None:
            raise HttpError(400, f"missing parameter: {name}")
        return default
    try:
        value = int(text)
    except ValueError:
        raise HttpError(400, f"{name} must be an integer, got {text!r}") from None
    if not lo <= value <= hi:
        raise HttpError(400, f"{name} must be in {lo}..{hi}, got {value}")
    return value


def _header_value(query, name):
    """An optional query parameter that becomes a header value (no CR, LF or NUL)."""
    value = _param(query, name)
    if value is not None and any(c in value for c in "\r\n\0"):
        raise HttpError(400, f"{name} may not contain CR, LF or NUL")
    return value


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


class Handler(serving.Handler):
    """One instance per connection; every method goes to _dispatch, and routes
    check methods themselves."""

    server_version = "ferry-httpd/1"

    def setup(self):
        super().setup()
        self._conn_generation = None  # Stats generation this connection was counted in

    # -- dispatch -----------------------------------------------------------

    def _dispatch(self):
        url = urlsplit(self.path)
        self._path = url.path
        self._responded = False
        query = parse_qsl(url.query, keep_blank_values=True)
        if self._path.startswith("/_"):
            self._run(CONTROL_ROUTES, query)
            return
        stats = self.server.stats
        self._conn_generation = stats.begin(self._conn_generation)
        try:
            self._run(TEST_ROUTES, query)
        finally:
            stats.end()

    def _run(self, routes, query):
        """Read the body, call the route, and turn failures into responses."""
        route, keep_body = routes.get(self._path, (Handler._not_found, False))
        try:
            body = self._read_body(keep_body)
            route(self, query, body)
        except HttpError as e:
            if e.close:
                self.close_connection = True
            if not self._responded:
                self._json(e.status, {"error": str(e)})
        except OSError:
            # The client went away or stalled (reset, broken pipe, TLS error,
            # timeout): nothing useful can be sent any more.
            self.close_connection = True
        except Exception:
            # A bug in this server: report it loudly, answer 500 if still possible.
            self.close_connection = True
            sys.stderr.write(f"httpd: error handling {self.command} {self.path}\n")
            traceback.print_exc()
            if not self._responded:
                self._json(500, {"error": "internal server error"})

    # -- request bodies -----------------------------------------------------

    def _read_body(self, keep):
        """Consume the request body. Returns it as bytes when `keep`, else None
        (read and discarded in fixed-size chunks, whatever its size)."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise HttpError(501, f"unsupported Transfer-Encoding: {te}", close=True)
            return self._read_chunked(keep)
        lengths = set(v.strip() for v in self.headers.get_all("Content-Length", []))
        if not lengths:
            return b"" if keep else None
        if len(lengths) > 1 or not CONTENT_LENGTH.fullmatch(next(iter(lengths))):
            raise HttpError(400, "bad Content-Length", close=True)
        size = int(lengths.pop())
        if keep and size > MAX_KEPT_BODY:
            raise HttpError(413, f"body over {MAX_KEPT_BODY} bytes", close=True)
        return self._read_exact(size, keep)

    def _read_exact(self, size, keep):
        parts = []
        while size > 0:
            data = self.rfile.read(min(size, CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            size -= len(data)
            if keep:
                parts.append(data)
        return b"".join(parts) if keep else None

    def _read_line(self):
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            raise ConnectionError("client closed the connection mid-body")
        if not line.endswith(b"\n"):
            raise HttpError(400, "line too long in chunked body", close=True)
        return line.rstrip(b"\r\n")

    def _read_chunked(self, keep):
        """Decode a chunked body (RFC 9112 §7.1); extensions and trailers are ignored."""
        parts, total = [], 0
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            if not CHUNK_SIZE.fullmatch(size_text):
                raise HttpError(400, "bad chunk size", close=True)
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if keep and total > MAX_KEPT_BODY:
                raise HttpError(413, f"body over {MAX_KEPT_BODY} bytes", close=True)
            data = self._read_exact(size, keep)
            if keep:
                parts.append(data)
            if self._read_line() != b"":
                raise HttpError(400, "chunk not followed by CRLF", close=True)
        for _ in range(MAX_TRAILERS):
            if self._read_line() == b"":
                return b"".join(parts) if keep else None
        raise HttpError(400, "too many trailer lines", close=True)

    # -- responses ----------------------------------------------------------

    def _reply(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=()):
        """Send a complete response. HEAD gets the headers only."""
        self.send_response(status)
        has_ctype = False
        for name, value in headers:
            self.send_header(name, value)
            has_ctype = has_ctype or name.lower() == "content-type"
        if status not in (204, 304):  # these never have a body or a Content-Length
            if not has_ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._responded = True
        if body and self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _json(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self._reply(status, body, "application/json", headers)

    def _require_method(self, *methods):
        if self.command not in methods:
            raise HttpError(405, f"{self._path} accepts {', '.join(methods)} only")

    # -- test endpoints -----------------------------------------------------

    def _echo(self, query, body):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._json(
            200,
            {
                "method": self.command,
                "path": self._path,
                "query": dict(query),  # a repeated name keeps its last value
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
            },
        )

    def _delay(self, query, body):
        ms = _int_param(query, "ms", 0, 0, MAX_DELAY_MS)
        time.sleep(ms / 1000)
        self._json(200, {"ok": True})

    def _status(self, query, body):
        code = _int_param(query, "code", 200, 200, 599)
        retry_after = _header_value(query, "retry_after")
        text = _param(query, "body")
        headers = [("Retry-After", retry_after)] if retry_after is not None else []
        if text is None:
            self._json(code, {"status": code}, headers)
        else:
            self._reply(code, text.encode(), headers=headers)

    def _flaky(self, query, body):
        key = _param(query, "key", "default")
        fail = _int_param(query, "fail", 1, 0, MAX_FLAKY_FAIL)
        code = _int_param(query, "code", 503, 200, 599)
        retry_after = _header_value(query, "retry_after")
        attempt = self.server.stats.attempt(key)
        if attempt is None:
            raise HttpError(507, f"over {MAX_FLAKY_KEYS} flaky keys; POST /_reset")
        if attempt <= fail:
            headers = [("Retry-After", retry_after)] if retry_after is not None else []
            self._json(code, {"attempt": attempt, "error": "injected failure"}, headers)
        else:
            self._json(200, {"attempt": attempt})

    def _bytes(self, query, body):
        n = _int_param(query, "n", 0, 0, MAX_BYTES)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        self._responded = True
        if self.command == "HEAD":
            return
        while n > 0:
            step = min(n, CHUNK)
            self.wfile.write(PATTERN[:step])
            n -= step

    def _drop(self, query, body):
        # Send nothing; the server closes the socket once this handler returns.
        self.close_connection = True
        self._responded = True

    def _headers(self, query, body):
        for name, value in query:
            if not TOKEN.fullmatch(name):
                raise HttpError(400, f"bad header name: {name!r}")
            if name.lower() in FRAMING_HEADERS:
                raise HttpError(400, f"{name} cannot be set through /headers")
            if any(c in value for c in "\r\n\0"):
                raise HttpError(400, f"header {name} may not contain CR, LF or NUL")
        self._reply(200, b"ok", headers=query)

    def _json_echo(self, query, body):
        self._require_method("POST")
        try:
            parsed = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise HttpError(400, f"bad JSON: {e}") from None
        self._json(200, {"received": parsed})

    def _stream(self, query, body):
        key = _param(query, "key", "default")
        lines = _int_param(query, "lines", 0, 0, MAX_STREAM_CHUNKS) if _param(query, "lines") is not None else None
        count = _int_param(query, "chunks", 1, 0, MAX_STREAM_CHUNKS)
        size = _int_param(query, "size", 1024, 1, MAX_STREAM_CHUNK)
        if lines is None and count * size > MAX_BYTES:
            raise HttpError(400, f"chunks*size must be at most {MAX_BYTES}")
        interval = _int_param(query, "interval_ms", 0, 0, MAX_DELAY_MS) / 1000
        hold = _param(query, "hold") == "1"
        split = _param(query, "split") == "1"
        abort_after = _int_param(query, "abort_after", MAX_STREAM_CHUNKS + 1, 0, MAX_STREAM_CHUNKS)
        log = self.server.streams
        rec = log.start(key, "holding" if hold else "sending")
        if rec is None:
            raise HttpError(507, f"over {MAX_STREAM_KEYS} stream keys; POST /_reset")

        if lines is None:
            pieces = (_pattern(i * size, size) for i in range(count))
        else:
            pieces = _line_pieces(lines, split)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if lines is not None else "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        self._responded = True
        if self.command == "HEAD":
            log.update(rec, state="done")
            return
        try:
            if hold:
                if not self._stream_wait(serving.IDLE_TIMEOUT, rec["release"]):
                    raise ConnectionError("client went away while held")
                log.update(rec, state="sending")
            for n, piece in enumerate(pieces):
                if n == abort_after:
                    log.update(rec, state="aborted")
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if interval and not self._stream_wait(interval):
                    raise ConnectionError("client went away between chunks")
                log.update(rec, writing_since=time.monotonic())
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                log.wrote(rec, len(piece))
            log.update(rec, state="done")  # before the client can see the end
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            log.update(rec, state="closed", writing_since=None)
            raise

    def _stream_wait(self, seconds, release=None):
        """Wait `seconds`, or until `release` is set when given, watching for the
        client closing the connection (plain HTTP only). False when it did, or when
        the release never came."""
        end = time.monotonic() + seconds
        sock = self.connection
        plain = not isinstance(sock, ssl.SSLSocket)
        while release is None or not release.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return release is None
            step = min(left, 0.05)
            if plain and select.select([sock], [], [], step)[0]:
                if not sock.recv(1, socket.MSG_PEEK):
                    return False  # end of file: the client closed
                time.sleep(step)  # unexpected bytes (a pipelined request): leave them
            elif not plain:
                time.sleep(step)
        return True

    def _not_found(self, query, body):
        raise HttpError(404, f"no such endpoint: {self._path}")

    # -- control endpoints --------------------------------------------------

    def _stats(self, query, body):
        self._require_method("GET", "HEAD")
        self._json(200, self.server.stats.snapshot())

    def _reset(self, query, body):
        self._require_method("POST")
        self.server.stats.reset()
        self.server.streams.reset()
        self._json(200, {"ok": True})

    def _attempts(self, query, body):
        self._require_method("GET", "HEAD")
        self._json(200, self.server.stats.attempts(_param(query, "key", "default")))

    def _streams(self, query, body):
        self._require_method("GET", "HEAD")
        self._json(200, self.server.streams.snapshot(_param(query, "key", "default")))

    def _release(self, query, body):
        self._require_method("POST")
        if not self.server.streams.release(_param(query, "key", "default")):
            raise HttpError(507, f"over {MAX_STREAM_KEYS} stream keys; POST /_reset")
        self._json(200, {"ok": True})


# path -> (method, keep the request body in memory?)
TEST_ROUTES = {
    "/echo": (Handler._echo, True),
    "/delay": (Handler._delay, False),
    "/status": (Handler._status, False),
    "/flaky": (Handler._flaky, False),
    "/bytes": (Handler._bytes, False),
    "/drop": (Handler._drop, False),
    "/headers": (Handler._headers, False),
    "/json": (Handler._json_echo, True),
    "/stream": (Handler._stream, False),
}
CONTROL_ROUTES = {
    "/_stats": (Handler._stats, False),
    "/_reset": (Handler._reset, False),
    "/_attempts": (Handler._attempts, False),
    "/_streams": (Handler._streams, False),
    "/_release": (Handler._release, False),
}


class Server(serving.Server):
    """Threaded server with the request counters and stream logs the control
    endpoints read; TLS as serving.Server does it."""

    name = "httpd"

    def __init__(self, address, tls_context=None, verbose=False):
        self.stats = Stats()
        self.streams = StreamLog()
        super().__init__(address, Handler, verbose, tls_context)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Loopback HTTP/HTTPS test server for Ferry.")
    serving.add_listen_args(p)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this PEM pair")
    p.add_argument("--client-ca", metavar="CA", help="with --tls: require client certificates signed by CA")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tls_context = serving.tls_context(*args.tls, args.client_ca) if args.tls else None
    serving.stop_on_signals()
    server = Server((args.host, args.port), tls_context, args.verbose)
    scheme = "https" if tls_context else "http"
    host = serving.url_host(args.host)
    return serving.serve(server, args.port_file, lambda port: f"httpd: listening on {scheme}://{host}:{port}")


if __name__ == "__main__":
    sys.exit(main())
