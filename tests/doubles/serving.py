"""serving.py: what Ferry's loopback test servers share (httpd.py, aws/server.py).

Standard library only. Server: threaded HTTP/1.1 that binds without a reverse DNS
lookup, serves at most MAX_CONNECTIONS connections at once (accept waits beyond
that) and takes client resets and timeouts as routine. Handler: keep-alive, one
dispatcher (the subclass's _dispatch) for every method, "100 Continue" sent at once,
nothing logged unless the server is verbose. stop_on_signals() and serve(): the
process around them; SIGTERM/SIGINT end serve() cleanly, and the bound port goes to
the --port-file atomically once the server listens.
"""

import http.server
import os
import signal
import socket
import socketserver
import sys
import threading

MAX_CONNECTIONS = 1_000  # concurrent connections; accept waits beyond this
IDLE_TIMEOUT = 120.0  # seconds a connection may sit idle (or stall) before it is closed
WBUFSIZE = 64 * 1024  # the response writer's buffer


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


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Threaded server for `handler`; `name` prefixes its log lines."""

    daemon_threads = True  # connection threads never keep the process alive
    request_queue_size = 1024  # listen backlog, for benchmarks that open many at once
    name = "serving"

    def __init__(self, address, handler, verbose=False):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.verbose = verbose
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

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client resets, timeouts, TLS errors: routine
            if self.verbose:
                sys.stderr.write(f"{self.name}: connection from {client_address[0]}: {exc}\n")
            return
        super().handle_error(request, client_address)


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
