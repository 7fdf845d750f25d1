#!/usr/bin/python3
"""test_httpd.py: self-check of httpd.py and certs.sh, standard library only.

Starts its own httpd.py instances (plain and TLS, on free ports, certificates in a
scratch directory), runs every check against them, and prints a last line of the
form "N passed, N failed"; exits non-zero if anything failed.

    /usr/bin/python3 tests/doubles/test_httpd.py
"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

import testlib

HERE = os.path.dirname(os.path.abspath(__file__))
HTTPD = os.path.join(HERE, "httpd.py")
CERTS_SH = os.path.join(HERE, "certs.sh")
DEADLINE = 10.0  # seconds allowed for any condition we wait on

TESTS = test = testlib.Tests()
check, wait_for = testlib.check, testlib.wait_for


def Httpd(workdir, name, *args):
    """One httpd.py subprocess on a free port."""
    return testlib.Server(HTTPD, workdir, f"httpd-{name}", *args, deadline=DEADLINE)


# Filled in by main(): the servers and the certificate directory under test.
plain = tls = None
certs = None


def conn():
    return http.client.HTTPConnection("127.0.0.1", plain.port, timeout=DEADLINE)


def request(method, path, body=None, headers=None, connection=None):
    """One request; returns (status, headers, body bytes). Uses `connection` if given."""
    c = connection or conn()
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        if connection is None:
            c.close()


def get_json(path, method="GET", body=None, headers=None):
    status, _, data = request(method, path, body, headers)
    return status, json.loads(data)


def stats():
    return get_json("/_stats")[1]


def reset():
    status, _ = get_json("/_reset", method="POST")
    check(status == 200, f"/_reset answered {status}")


# -- tests ------------------------------------------------------------------


@test
def keep_alive_counts_one_connection():
    reset()
    c = conn()
    try:
        for _ in range(2):
            status, _, _ = request("GET", "/echo", connection=c)
            check(status == 200, f"/echo answered {status}")
    finally:
        c.close()
    s = stats()
    check(s["connections"] == 1, f"connections {s['connections']}, want 1")
    check(s["requests"] == 2, f"requests {s['requests']}, want 2")


@test
def control_endpoints_are_not_counted():
    reset()
    for _ in range(3):
        stats()
    get_json("/_attempts?key=x")
    s = stats()
    check(s == {"connections": 0, "requests": 0, "inflight": 0, "peak_inflight": 0}, f"{s}")


@test
def echo_reports_the_request():
    status, doc = get_json("/echo?a=1&b=two", "PUT", b"hello", {"X-Test": "yes"})
    check(status == 200, f"status {status}")
    check(doc["method"] == "PUT" and doc["path"] == "/echo", f"{doc}")
    check(doc["query"] == {"a": "1", "b": "two"}, f"query {doc['query']}")
    check(doc["headers"].get("x-test") == "yes", f"headers {doc['headers']}")
    check(doc["body"] == "hello", f"body {doc['body']!r}")


@test
def request_bodies_are_consumed_for_keep_alive():
    # A body sent to an endpoint that ignores it, then a chunked body, then a
    # plain request: all on one connection, so each body must be fully read.
    reset()
    c = conn()
    try:
        status, _, _ = request("POST", "/status?code=201", b"x" * 300_000, connection=c)
        check(status == 201, f"status {status}")
        c.putrequest("POST", "/echo")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        c.send(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.getresponse()
        doc = json.loads(r.read())
        check(doc["body"] == "hello world", f"chunked body {doc['body']!r}")
        status, _, _ = request("GET", "/echo", connection=c)
        check(status == 200, f"status {status}")
    finally:
        c.close()
    check(stats()["connections"] == 1, "expected one connection")


@test
def bad_content_length_closes_the_connection():
    with socket.create_connection(("127.0.0.1", plain.port), timeout=DEADLINE) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    check(data.startswith(b"HTTP/1.1 400"), f"got {data[:40]!r}")
    check(b"Connection: close" in data, "no Connection: close")


@test
def flaky_fails_then_succeeds_and_logs_attempts():
    reset()
    path = "/flaky?key=k1&fail=2&code=503&retry_after=1"
    got = [request("GET", path) for _ in range(3)]
    check([g[0] for g in got] == [503, 503, 200], f"statuses {[g[0] for g in got]}")
    check(got[0][1]["Retry-After"] == "1", "no Retry-After on failure")
    check(got[2][1]["Retry-After"] is None, "Retry-After on success")
    check(json.loads(got[2][2]) == {"attempt": 3}, f"body {got[2][2]!r}")
    _, doc = get_json("/_attempts?key=k1")
    check(doc["count"] == 3, f"count {doc['count']}")
    times = doc["times"]
    check(len(times) == 3 and times == sorted(times), f"times {times}")
    _, other = get_json("/_attempts?key=unknown")
    check(other == {"count": 0, "times": []}, f"unknown key {other}")
    reset()
    check(get_json("/_attempts?key=k1")[1]["count"] == 0, "reset kept flaky keys")


@test
def status_with_retry_after_and_body():
    status, headers, body = request("GET", "/status?code=503&retry_after=2&body=busy")
    check(status == 503, f"status {status}")
    check(headers["Retry-After"] == "2", f"Retry-After {headers['Retry-After']}")
    check(body == b"busy", f"body {body!r}")
    status, headers, body = request("GET", "/status?code=429")
    check(status == 429 and json.loads(body) == {"status": 429}, f"{status} {body!r}")
    check(headers["Retry-After"] is None, "unexpected Retry-After")
    status, headers, body = request("GET", "/status?code=204")
    check(status == 204 and body == b"", f"{status} {body!r}")


@test
def bytes_returns_exactly_n():
    for n in (0, 1, 65_536, 1_000_003):
        status, headers, body = request("GET", f"/bytes?n={n}")
        check(status == 200, f"status {status}")
        check(len(body) == n and headers["Content-Length"] == str(n), f"n={n}: got {len(body)}")
        check(body == bytes(i % 256 for i in range(n)), f"n={n}: wrong content")
    status, headers, body = request("HEAD", "/bytes?n=1000")
    check(status == 200 and headers["Content-Length"] == "1000" and body == b"", "HEAD")


@test
def limits_are_enforced():
    for path in ("/bytes?n=536870913", "/delay?ms=60001", "/delay?ms=-1", "/status?code=abc"):
        status, _, _ = request("GET", path)
        check(status == 400, f"{path} answered {status}")


@test
def drop_raises_on_the_client():
    try:
        request("GET", "/drop")
    except (http.client.HTTPException, ConnectionError):
        return
    raise AssertionError("/drop returned a response")


@test
def delay_counts_inflight():
    reset()
    n = 3
    threads = [
        threading.Thread(target=request, args=("GET", "/delay?ms=400")) for _ in range(n)
    ]
    for t in threads:
        t.start()
    wait_for(lambda: stats()["inflight"] == n, f"{n} requests in flight")
    for t in threads:
        t.join()
    s = stats()
    check(s["inflight"] == 0 and s["peak_inflight"] == n, f"{s}")
    check(s["requests"] == n and s["connections"] == n, f"{s}")


@test
def headers_adds_repeated_headers():
    status, headers, body = request("GET", "/headers?X-One=1&X-Rep=a&X-Rep=b")
    check(status == 200 and body == b"ok", f"{status} {body!r}")
    check(headers["X-One"] == "1", "X-One missing")
    check(headers.get_all("X-Rep") == ["a", "b"], f"X-Rep {headers.get_all('X-Rep')}")
    status, _, _ = request("GET", "/headers?Content-Length=5")
    check(status == 400, f"framing header allowed: {status}")


@test
def json_echoes_and_rejects_bad_json():
    status, doc = get_json("/json", "POST", b'{"a": [1, 2, null]}')
    check(status == 200 and doc == {"received": {"a": [1, 2, None]}}, f"{status} {doc}")
    status, doc = get_json("/json", "POST", b"{nope")
    check(status == 400 and "error" in doc, f"{status} {doc}")
    status, _ = get_json("/json", "GET")
    check(status == 405, f"GET /json answered {status}")


@test
def unknown_path_is_404_json():
    status, doc = get_json("/nowhere")
    check(status == 404 and "error" in doc, f"{status} {doc}")


def stream_log(key):
    return get_json(f"/_streams?key={key}")[1]


def raw_get(path):
    """A socket that has sent GET `path` and read the response head; returns
    (socket, head bytes, body bytes read past the head)."""
    s = socket.create_connection(("127.0.0.1", plain.port), timeout=DEADLINE)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        check(chunk, "connection closed before the response head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head, rest


@test
def stream_sends_chunks_and_logs_progress():
    reset()
    status, headers, body = request("GET", "/stream?key=s1&chunks=3&size=300")
    check(status == 200 and headers["Transfer-Encoding"] == "chunked", f"{status} {headers}")
    check(body == bytes(i % 256 for i in range(900)), "wrong body")
    log = stream_log("s1")
    check(log == {"state": "done", "sent": 900, "chunks": 3, "blocked_for": 0}, f"{log}")
    check(stream_log("unknown")["state"] == "none", "unknown key has a state")
    status, _, body = request("GET", "/stream?lines=3&split=1")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    check(lines == [{"type": "ADDED", "object": {"n": n}} for n in (1, 2, 3)], f"{lines}")
    reset()
    check(stream_log("s1")["state"] == "none", "reset kept stream logs")


@test
def stream_holds_its_body_until_released():
    reset()
    s, head, rest = raw_get("/stream?key=held&hold=1&chunks=1&size=5")
    try:
        check(head.startswith(b"HTTP/1.1 200") and rest == b"", f"{head!r} {rest!r}")
        check(stream_log("held")["state"] == "holding", "not holding")
        status, _ = get_json("/_release?key=held", method="POST")
        check(status == 200, f"/_release answered {status}")
        data = rest
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(4096)
            check(chunk, "connection closed mid-body")
            data += chunk
        check(data == b"5\r\n\x00\x01\x02\x03\x04\r\n0\r\n\r\n", f"{data!r}")
    finally:
        s.close()
    check(stream_log("held")["state"] == "done", "not done")


@test
def stream_notices_the_client_closing_and_backpressure():
    reset()
    s, _, _ = raw_get("/stream?key=gone&chunks=1000&size=10&interval_ms=20")
    s.close()
    wait_for(lambda: stream_log("gone")["state"] == "closed", "the close to be noticed")
    # A client that reads nothing: the server's write ends up waiting for it.
    s, _, _ = raw_get("/stream?key=full&chunks=1024&size=65536")
    try:
        def blocked():
            log = stream_log("full")
            return log if log["blocked_for"] > 0 else None

        log = wait_for(blocked, "a blocked write")
        check(log["state"] == "sending" and log["sent"] < 32 * 1024 * 1024, f"{log}")
    finally:
        s.close()
    wait_for(lambda: stream_log("full")["state"] == "closed", "the close to be noticed")


@test
def stream_abort_after_cuts_the_body():
    try:
        request("GET", "/stream?chunks=5&size=10&abort_after=2")
    except http.client.IncompleteRead as e:
        check(e.partial == bytes(range(20)), f"partial {e.partial!r}")
        return
    raise AssertionError("an aborted stream read to its end")


@test
def stream_limits_are_enforced():
    for path in ("/stream?chunks=1000&size=1048576", "/stream?size=0", "/stream?lines=-1"):
        status, _, _ = request("GET", path)
        check(status == 400, f"{path} answered {status}")


@test
def certificates_verify_against_the_test_ca():
    def verify(*args):
        return subprocess.run(
            ["openssl", "verify", "-x509_strict", *args], capture_output=True
        ).returncode

    ca = os.path.join(certs, "ca.pem")
    check(verify("-purpose", "sslserver", "-CAfile", ca, f"{certs}/server.pem") == 0, "server")
    check(verify("-purpose", "sslclient", "-CAfile", ca, f"{certs}/client.pem") == 0, "client")
    other = os.path.join(certs, "other-ca.pem")
    check(verify("-CAfile", other, f"{certs}/server.pem") != 0, "other CA verified server")


@test
def tls_verifies_with_the_test_ca():
    for host in ("localhost", "127.0.0.1"):
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        c = http.client.HTTPSConnection(host, tls.port, context=ctx, timeout=DEADLINE)
        try:
            status, _, body = request("GET", "/echo", connection=c)
            check(status == 200, f"{host}: status {status}")
        finally:
            c.close()


@test
def tls_fails_with_another_ca():
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "other-ca.pem"))
    c = http.client.HTTPSConnection("localhost", tls.port, context=ctx, timeout=DEADLINE)
    try:
        request("GET", "/echo", connection=c)
    except ssl.SSLCertVerificationError:
        return
    finally:
        c.close()
    raise AssertionError("handshake succeeded with the wrong CA")


@test
def sigterm_exits_cleanly():
    # Last: stops both servers and checks they exit 0 promptly.
    for server in (plain, tls):
        rc = server.stop(DEADLINE)
        check(rc == 0, f"exit status {rc}")


def main():
    global plain, tls, certs
    tally = testlib.Tally()
    with tempfile.TemporaryDirectory(prefix="ferry-httpd-test.") as work:
        certs = os.path.join(work, "certs")
        servers = []
        try:
            subprocess.run([CERTS_SH, certs], check=True)
            plain = Httpd(work, "plain")
            servers.append(plain)
            tls = Httpd(work, "tls", "--tls", os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
            servers.append(tls)
            testlib.run(TESTS, tally=tally)
        except Exception as e:
            tally.failed += 1
            print(f"FAIL setup: {e!r}")
        finally:
            for server in servers:
                server.kill()
    return testlib.summary(tally)


if __name__ == "__main__":
    sys.exit(main())
