#!/usr/bin/python3
"""bench.py: Ferry's benchmarks, run by `make bench`. Python 3 standard library only.

Everything is measured in one run, and Ferry's figures are reported as ratios
against baselines measured in that same run (STYLE.md rule 28):

  start-up  `ferry version` and `ferry run tests/bench/noop.lua` against
            `kubectl version --client` and the reference Lambda's Python stack
            (`python3 -c 'import kubernetes, boto3, yaml'`); each is run --runs
            times after 2 warm-ups: median wall time and peak RSS.
  fan-out   `ferry lua tests/bench/fanout.lua URL` against tests/doubles/httpd.py:
            50 GETs of /delay?ms=100 one after another, then through task.map.
  aws       `ferry lua tests/bench/aws.lua` against tests/bench/aws_botocore.py,
            both with the AWS double (tests/doubles/start): SigV4 signatures
            per second, and the mean aws.call round trip (STS GetCallerIdentity).
  kube      tests/bench/kube_bench.py, with the Kubernetes double: decoding a
            5,000-pod list in Ferry vs kubectl vs python3-kubernetes, and how soon
            a rollout wait returns after the double marks the Deployment complete.

Targets (start-up at least 10x faster than kubectl and under 8 MiB peak RSS;
fan-out at least 10x faster than sequential) are printed as "meets"/"misses"
for information. Exit status: 0, or 1 when a command fails to run. Peak RSS is
GNU time's (see benchlib.py for why not os.wait4's).
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import kube_bench
from benchlib import DEVNULL, GNU_TIME, ROOT, WARMUPS, Failure, doubles, measure, run_json

PYTHON_STACK = "import kubernetes, boto3, yaml"
STARTUP_SPEEDUP, RSS_LIMIT_MIB, FANOUT_SPEEDUP = 10, 8, 10


def verdict(ok):
    return "meets" if ok else "misses"


def startup(ferry, runs):
    """Measures and prints the start-up table, ratios and targets."""
    subjects = [("ferry version", [ferry, "version"]),
                ("ferry run noop", [ferry, "run", "tests/bench/noop.lua"])]
    baselines, notes = [], []
    if shutil.which("kubectl"):
        baselines.append(("kubectl", ["kubectl", "version", "--client"]))
    else:
        notes.append("kubectl skipped: not on PATH")
    stack = [sys.executable, "-c", PYTHON_STACK]
    if subprocess.run(stack, stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL).returncode == 0:
        baselines.append(("python stack", stack))
    else:
        notes.append(f"python stack skipped: {sys.executable} -c '{PYTHON_STACK}' failed")

    rows = {name: measure(cmd, runs) for name, cmd in subjects + baselines}
    shown = {name: shlex.join(cmd).replace(ROOT + "/", "") for name, cmd in subjects + baselines}
    width = max(len(text) for text in shown.values())
    rss_how = "GNU time" if GNU_TIME else "os.wait4, an upper bound: install `time`"
    print(f"Start-up: median of {runs} runs after {WARMUPS} warm-ups; peak RSS by {rss_how}")
    print(f"  {'':16} {'command':{width}} {'median ms':>10} {'peak RSS MiB':>13}")
    for name, (ms, mib, exact) in rows.items():
        rss = f"{mib:.1f}" if exact else f"<={mib:.1f}"
        print(f"  {name:16} {shown[name]:{width}} {ms:10.2f} {rss:>13}")
    for note in notes:
        print(f"  note: {note}")

    if baselines:
        print(f"\n  {'time ratio (baseline / ferry)':32}" + "".join(f"{name:>16}" for name, _ in subjects))
        for base, _ in baselines:
            ratios = "".join(f"{rows[base][0] / rows[name][0]:15.1f}x" for name, _ in subjects)
            print(f"  {base:32}{ratios}")

    print("\n  targets (informational)")
    for name, _ in subjects:
        ms, mib, exact = rows[name]
        if "kubectl" in rows:
            speedup = rows["kubectl"][0] / ms
            print(f"  {name}: >= {STARTUP_SPEEDUP}x faster than kubectl: {speedup:.1f}x, "
                  f"{verdict(speedup >= STARTUP_SPEEDUP)}")
        else:
            print(f"  {name}: >= {STARTUP_SPEEDUP}x faster than kubectl: not measured")
        if exact or mib < RSS_LIMIT_MIB:
            rss_verdict = verdict(mib < RSS_LIMIT_MIB)
        else:
            rss_verdict = "unknown (upper bound only)"
        print(f"  {name}: peak RSS < {RSS_LIMIT_MIB} MiB: {mib:.1f} MiB, {rss_verdict}")


def await_port(server, port_file, log, deadline_s=10):
    """The port httpd.py wrote to port_file, waiting for it up to deadline_s."""
    deadline = time.monotonic() + deadline_s
    while not (os.path.exists(port_file) and os.path.getsize(port_file) > 0):
        if server.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            why = "exited" if server.returncode is not None else f"wrote no port in {deadline_s}s"
            raise Failure(f"httpd.py {why}:\n{log.read()}")
        time.sleep(0.02)
    with open(port_file) as f:
        return int(f.read())


def fanout(ferry):
    """Runs fanout.lua against a fresh httpd.py; returns {"sequential": s, "concurrent": s}."""
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp, \
            open(os.path.join(tmp, "httpd.log"), "w+") as log:
        port_file = os.path.join(tmp, "port")
        server = subprocess.Popen(
            [sys.executable, "tests/doubles/httpd.py", "--port", "0", "--port-file", port_file],
            stdin=DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{await_port(server, port_file, log)}"
            cmd = [ferry, "lua", "tests/bench/fanout.lua", url]
            done = subprocess.run(cmd, stdin=DEVNULL, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise Failure(f"{shlex.join(cmd)} exited with status {done.returncode}:\n{done.stderr}")
            lines = done.stdout.strip().splitlines()
            try:
                return json.loads(lines[-1])
            except (IndexError, ValueError):
                raise Failure(f"{shlex.join(cmd)} printed no JSON line:\n{done.stdout}{done.stderr}")
        finally:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def aws(ferry, signs=20000, calls=50):
    """Ferry's SigV4 and aws.call against botocore's, both on the AWS double."""
    with doubles("ferry-bench-aws-") as env:
        ours = run_json([ferry, "lua", "tests/bench/aws.lua", str(signs), str(calls)], env)
        base = run_json([sys.executable, "tests/bench/aws_botocore.py", str(signs), str(calls)], env)
    print(f"\nAWS: {signs} SigV4 signatures, then {calls} STS GetCallerIdentity calls against the double")
    print("                                   ferry     botocore     ratio")
    print(f"  signatures per second      {ours['signs_per_s']:10.0f}   {base['signs_per_s']:10.0f}   "
          f"{ours['signs_per_s'] / base['signs_per_s']:6.1f}x")
    print(f"  aws.call round trip, ms    {ours['call_ms']:10.2f}   {base['call_ms']:10.2f}   "
          f"{base['call_ms'] / ours['call_ms']:6.1f}x")


def portworx(ferry):
    """50 Portworx snapshots one by one, then through task.map (limit 16)."""
    with doubles("ferry-bench-px-") as env:
        times = run_json([ferry, "lua", "tests/bench/portworx.lua"], env)
    seq, conc = times["sequential"], times["concurrent"]
    print("\nPortworx: 50 volume snapshots through the SDK double (20 ms each, tests/bench/portworx.lua)")
    print(f"  one by one                  {seq:8.3f} s")
    print(f"  task.map, limit 16          {conc:8.3f} s")
    print(f"  speed-up                    {seq / conc:8.1f}x")


def main(argv=None):
    p = argparse.ArgumentParser(description="Ferry's benchmarks: start-up, fan-out, AWS, Kubernetes.")
    p.add_argument("--ferry", default="./ferry", help="the ferry binary (default ./ferry)")
    p.add_argument("--runs", type=int, default=20, help="timed runs per command (default 20)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    ferry = os.path.abspath(args.ferry)
    os.chdir(ROOT)  # the scripts and the server are named relative to the repository
    try:
        if not os.access(ferry, os.X_OK):
            raise Failure(f"{ferry} is not an executable (run `make ferry`)")
        startup(ferry, args.runs)
        times = fanout(ferry)
        seq, conc = times["sequential"], times["concurrent"]
        print("\nFan-out: 50 GETs of /delay?ms=100 (tests/bench/fanout.lua, tests/doubles/httpd.py)")
        print(f"  sequential                  {seq:8.3f} s")
        print(f"  task.map, limit 50          {conc:8.3f} s")
        print(f"  speed-up                    {seq / conc:8.1f}x   target >= {FANOUT_SPEEDUP}x: "
              f"{verdict(seq / conc >= FANOUT_SPEEDUP)}")
        aws(ferry)
        portworx(ferry)
        kube_bench.kube(ferry)
    except Failure as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
