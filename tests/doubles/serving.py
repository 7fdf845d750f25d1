"""serving.py: what Ferry's loopback test servers share (httpd.py, wsd.py,
aws/server.py, kube/server.py, portworx/).

Standard library only. Server: threaded HTTP/1.1 that binds without a reverse DNS
lookup, serves at most MAX_CONNECTIONS connections at once (accept waits beyond
that), takes client resets and timeouts as routine and, given a TLS context, runs
each connection's handshake in that connection's own thread. Handler: keep-alive,
one dispatcher (the subclass's _dispatch) for every method, "100 Continue" sent at
once, nothing logged unless the server is verbose; read_body() for a whole request
body under a cap, send_whole() for a whole response, guarded() for a dispatcher's
last line of defence. tls_context(), add_listen_args(), stop_on_signals() and
serve(): the process around them; SIGTERM/SIGINT end serve() cleanly, and the bound
port goes to the --port-file atomically once the server listens.
"""

import http.server
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import traceback

MAX_CONNECTIONS = 1_000  # concurrent connections; accept waits beyond this
IDLE_TIMEOUT = 120.0  # seconds a connection may sit idle (or stall) before it is closed
WBUFSIZE = 64 * 1024  # the response writer's buffer


class HttpError(Exception):
    """A request the server refuses before dispatch (read_body): `status` and a message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(http.server.BaseHTTPRequestHandler):
    """One instance per connection; handle_one_request() runs once per request and
    sends every method to self._dispatch(), which the subclass defines."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True
    # A buffered writer coalesces headers and small bodies into one send; the
    # base class flushes it after every request.
    wbufsize = WBUFSIZE

    def version_string(self):
        return self.server_version  # no Python version in the Server header

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def handle_expect_100(self):
        # The base class only writes "100 Continue" into our buffered writer;
        # flush it so the client sends the body now instead of after a timeout.
        ok = super().handle_expect_100()
        self.wfile.flush()
        return ok

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    def read_body(self, limit):
        """The request body (Content-Length or chunked), at most `limit` bytes.
        Raises HttpError (400 malformed, 413 over `limit`, 501 another
        Transfer-Encoding) or ConnectionError when the client leaves mid-body."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise HttpError(501, f"unsupported Transfer-Encoding: {te}")
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1026)
                if not line.endswith(b"\n"):
                    raise HttpError(400, "bad chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise HttpError(400, "bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(1026) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > limit:
                    raise HttpError(413, f"body over {limit} bytes")
                parts.append(self._read_exact(size))
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise HttpError(400, "bad Content-Length")
        if int(length) > limit:
            raise HttpError(413, f"body over {limit} bytes")
        return self._read_exact(int(length))

    def _read_exact(self, size):
        data = self.rfile.read(size)
        if len(data) != size:
            raise ConnectionError("client closed the connection mid-body")
        return data

    def guarded(self, produce, internal):
        """produce()'s answer; if it raises, the traceback goes to stderr, the
        connection is marked for closing and internal() answers instead."""
        try:
            return produce()
        except Exception:
            sys.stderr.write(f"{self.server.name}: error handling {self.command} {self.path}\n")
            traceback.print_exc()
            self.close_connection = True
            return internal()

    def send_whole(self, status, headers, body):
        """One complete response: `headers` (name, value pairs), then Content-Length
        (and Connection: close when closing); no body to HEAD. Raises OSError when
        the client is gone."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Threaded server for `handler`; `name` prefixes its log lines. With a TLS
    context, each connection's handshake runs in its own thread (bounded by the
    handler's idle timeout), so a slow or failing client never blocks accept()."""

    daemon_threads = True  # connection threads never keep the process alive
    request_queue_size = 1024  # listen backlog, for benchmarks that open many at once
    name = "serving"
    tls_shutdown_write = True  # after a TLS connection: shutdown(SHUT_WR) before close()

    def __init__(self, address, handler, verbose=False, tls_context=None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.verbose = verbose
        self.tls_context = tls_context
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        self._slots.acquire()  # at most MAX_CONNECTIONS threads; backlog holds the rest
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request, client_address):
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.RequestHandlerClass.timeout)  # bounds the handshake too
        try:
            conn = self.tls_context.wrap_socket(request, server_side=True)
        except OSError as e:  # includes ssl.SSLError: bad client, unknown CA, ...
            if self.verbose:
                sys.stderr.write(f"{self.name}: TLS handshake with {client_address[0]}: {e}\n")
            return
        # wrap_socket took over the descriptor; `request` is now detached, so the
        # base class's shutdown_request() on it is a no-op and we close `conn`.
        try:
            super().finish_request(conn, client_address)
        finally:
            if self.tls_shutdown_write:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            conn.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client resets, timeouts, TLS errors: routine
            if self.verbose:
                sys.stderr.write(f"{self.name}: connection from {client_address[0]}: {exc}\n")
            return
        super().handle_error(request, client_address)


def tls_context(cert, key, client_ca=None, verify_mode=ssl.CERT_REQUIRED):
    """A server-side TLS context for the PEM pair, offering only http/1.1 (never let
    a client pick h2); with `client_ca`, client certificates signed by it are
    checked as `verify_mode` says."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    if client_ca:
        ctx.verify_mode = verify_mode
        ctx.load_verify_locations(client_ca)
    return ctx


def add_listen_args(parser):
    """--host, --port, --port-file and --verbose, as every double takes them."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--port-file", metavar="PATH", help="write the bound port here once listening")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")


def url_host(host):
    """`host` as it stands in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


class Terminated(Exception):
    """Raised in the main thread by SIGTERM/SIGINT to leave serve_forever()."""


def _terminate(signum, frame):
    raise Terminated()


def stop_on_signals():
    """From now on SIGTERM and SIGINT raise Terminated in the main thread."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)


def write_port_file(path, port):
    """Write `port` to `path` atomically, so a reader never sees a partial file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def serve(server, port_file, announce):
    """Serve until Terminated (see stop_on_signals), then close the socket; returns 0.
    Once listening: the bound port goes to `port_file` (when given) and the line
    `announce(port)` to stderr."""
    try:
        port = server.server_address[1]
        if port_file:
            write_port_file(port_file, port)
        sys.stderr.write(announce(port) + "\n")
        sys.stderr.flush()
        server.serve_forever()
    except Terminated:
        pass
    finally:
        server.server_close()
    return 0
