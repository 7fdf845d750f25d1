#!/usr/bin/python3
"""test_wsd.py: self-check of wsd.py with an independent client, websocket-client
(Debian's python3-websocket, which python3-kubernetes uses for exec).

Starts its own wsd.py instances (plain and TLS, on free ports, certificates from
certs.sh in a scratch directory), runs every check against them, and prints a
last line of the form "N passed, N failed"; exits non-zero if anything failed.

    /usr/bin/python3 tests/doubles/test_wsd.py
"""

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time

import testlib
import websocket  # websocket-client

HERE = os.path.dirname(os.path.abspath(__file__))
WSD = os.path.join(HERE, "wsd.py")
CERTS_SH = os.path.join(HERE, "certs.sh")
DEADLINE = 10.0  # seconds allowed for any condition we wait on
K8S = ["v5.channel.k8s.io", "v4.channel.k8s.io"]

TESTS = test = testlib.Tests()
check = testlib.check


def Wsd(workdir, name, *args):
    """One wsd.py subprocess on a free port."""
    return testlib.Server(WSD, workdir, f"wsd-{name}", *args, deadline=DEADLINE)


def connect(url, **kw):
    return websocket.create_connection(url, timeout=DEADLINE, **kw)


@test
def negotiates_the_first_offered_protocol_it_knows(env):
    ws = connect(env.ws + "/echo", subprotocols=K8S)
    check(ws.getsubprotocol() == "v5.channel.k8s.io", ws.getsubprotocol())
    ws.close()
    ws = connect(env.ws + "/echo?protocols=v4.channel.k8s.io", subprotocols=K8S)
    check(ws.getsubprotocol() == "v4.channel.k8s.io", ws.getsubprotocol())
    ws.close()


@test
def echoes_text_and_binary_with_their_opcode(env):
    ws = connect(env.ws + "/echo")
    ws.send("héllo")
    op, data = ws.recv_data()
    check((op, data) == (websocket.ABNF.OPCODE_TEXT, "héllo".encode()), (op, data))
    big = bytes(range(256)) * 8192  # 2 MiB
    ws.send_binary(big)
    op, data = ws.recv_data()
    check(op == websocket.ABNF.OPCODE_BINARY and data == big, "binary echo differs")
    ws.close()


@test
def sends_fragments_and_pings_that_a_client_reassembles_and_answers(env):
    ws = connect(env.ws + "/echo")
    ws.send("!fragments 4 split across four frames")
    check(ws.recv() == "split across four frames", "fragments")
    ws.send("!ping hello")
    check(ws.recv() == "pong hello", "pong")
    ws.close()


@test
def closes_with_the_code_and_reason_asked_for(env):
    ws = connect(env.ws + "/echo")
    ws.send("!close 4001 bye")
    op, frame = ws.recv_data_frame(control_frame=True)
    check(op == websocket.ABNF.OPCODE_CLOSE, f"opcode {op}")
    check(frame.data[:2] == (4001).to_bytes(2, "big") and frame.data[2:] == b"bye", frame.data)
    ws.close()


@test
def records_events_of_named_connections(env):
    ws = connect(env.ws + "/echo?id=selfcheck")
    ws.close(status=4000)
    probe = connect(env.ws + "/echo")
    end = time.monotonic() + DEADLINE
    while True:
        probe.send("!events selfcheck")
        events = json.loads(probe.recv())
        if "close 4000" in events or time.monotonic() > end:
            break
        time.sleep(0.02)
    check(events[0] == "open -" and "close 4000" in events, events)
    probe.close()


@test
def refuses_with_a_status_json(env):
    try:
        connect(env.ws + "/status?code=403")
    except websocket.WebSocketBadStatusException as e:
        check(e.status_code == 403, e.status_code)
    else:
        raise AssertionError("no refusal")


@test
def sends_a_bad_accept_key_when_asked(env):
    try:
        connect(env.ws + "/badaccept")
    except websocket.WebSocketException as e:
        check("Invalid WebSocket Header" in str(e) or "accept" in str(e).lower(), str(e))
    else:
        raise AssertionError("a bad accept key was taken")


@test
def runs_exec_like_the_kubelet(env):
    ws = connect(env.ws + "/exec?command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3",
                 subprotocols=["v4.channel.k8s.io"])
    frames = []
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        frames.append(data)
    check(frames[:3] == [b"\x01", b"\x01out\n", b"\x02err\n"], frames)
    status = json.loads(frames[3][1:])
    check(frames[3][0] == 3 and status["reason"] == "NonZeroExitCode", status)
    check(status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}], status)


@test
def echoes_stdin_and_ends_on_its_close_under_v5(env):
    ws = connect(env.ws + "/exec?command=cat&stdin=true", subprotocols=["v5.channel.k8s.io"])
    check(ws.recv() == b"\x01", "connected frame")
    ws.send_binary(b"\x00abc")
    check(ws.recv() == b"\x01abc", "stdout")
    ws.send_binary(b"\xff\x00")
    check(json.loads(ws.recv()[1:])["status"] == "Success", "status")
    ws.close()


@test
def serves_wss_and_tunnels_connect(env):
    ws = connect(env.wss + "/echo", sslopt={"ca_certs": env.ca, "cert_reqs": ssl.CERT_REQUIRED})
    ws.send("tls")
    check(ws.recv() == "tls", "wss echo")
    ws.close()
    ws = connect(f"ws://tunnel.ferry.invalid:{env.ws_port}/echo", http_proxy_host="127.0.0.1",
                 http_proxy_port=env.ws_port, proxy_type="http")
    ws.send("tunnelled")
    check(ws.recv() == "tunnelled", "tunnel echo")
    ws.close()


class Env:
    pass


def main():
    with tempfile.TemporaryDirectory() as workdir:
        certs = os.path.join(workdir, "certs")
        subprocess.run([CERTS_SH, certs], check=True)
        plain = Wsd(workdir, "ws")
        tls = Wsd(workdir, "wss", "--tls", os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
        env = Env()
        env.ws, env.ws_port = f"ws://127.0.0.1:{plain.port}", plain.port
        env.wss = f"wss://localhost:{tls.port}"
        env.ca = os.path.join(certs, "ca.pem")
        try:
            tally = testlib.run(TESTS, env, prefix="wsd.")
        finally:
            plain.stop(DEADLINE)
            tls.stop(DEADLINE)
        return testlib.summary(tally)


if __name__ == "__main__":
    sys.exit(main())
