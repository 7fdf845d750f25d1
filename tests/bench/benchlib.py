"""benchlib.py: what bench.py and kube_bench.py share: running a command and
measuring its wall time, CPU time and peak RSS; starting the test doubles; reading
the one JSON line a benchmark script prints. Python 3 standard library only.

Peak RSS: ru_maxrss from os.wait4 on a child of this Python is never less than
this Python's own RSS (~10 MiB), because Linux folds the high-water mark of the
address space the child had before exec into its own (vfork shares ours, fork
copies it). So peak RSS comes from GNU time (/usr/bin/time, Debian package
`time`), which forks from a ~1 MiB process. Without it the wait4 figure is
reported as an upper bound (exact = False).
"""

import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WARMUPS = 2
RSS_RUNS = 3  # runs under GNU time; peak RSS hardly varies
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
DEVNULL = subprocess.DEVNULL


class Failure(Exception):
    """A command the benchmark depends on did not run or did not succeed."""


def shown(cmd):
    """cmd as a shell line, with paths inside the repository made relative."""
    return shlex.join(cmd).replace(ROOT + "/", "")


def spawn(cmd):
    """Runs cmd once, output discarded; returns (wall seconds, ru_maxrss KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not
    if proc.returncode != 0:
        raise Failure(f"{shlex.join(cmd)} exited with status {proc.returncode}")
    return elapsed, usage.ru_maxrss


def gnu_time_rss(cmd):
    """Peak RSS in KiB of one run of cmd, as measured by GNU time."""
    with tempfile.NamedTemporaryFile("r") as report:
        done = subprocess.run([GNU_TIME, "-f", "%M", "-o", report.name, *cmd],
                              stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        if done.returncode != 0:
            raise Failure(f"{shlex.join(cmd)} exited with status {done.returncode} under {GNU_TIME}")
        return int(report.read().split()[-1])


def measure(cmd, runs):
    """Median wall ms, peak RSS MiB and whether that RSS is exact (else an upper bound)."""
    for _ in range(WARMUPS):
        spawn(cmd)
    samples = [spawn(cmd) for _ in range(runs)]
    ms = statistics.median(seconds for seconds, _ in samples) * 1000
    if GNU_TIME:
        return ms, max(gnu_time_rss(cmd) for _ in range(RSS_RUNS)) / 1024, True
    return ms, max(kib for _, kib in samples) / 1024, False


def timed(cmd, env=None):
    """One run of cmd (output discarded; stderr kept for the error) under GNU time
    when there is one: (wall s, CPU s = user + system, peak RSS KiB, exact)."""
    with tempfile.NamedTemporaryFile("r") as report, tempfile.TemporaryFile("w+") as err:
        argv = [GNU_TIME, "-f", "%U %S %M", "-o", report.name, *cmd] if GNU_TIME else cmd
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=DEVNULL, stdout=DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise Failure(f"{shlex.join(cmd)} exited with status {proc.returncode}:\n{err.read()[-2000:]}")
        if GNU_TIME:
            user, system, kib = report.read().split()[-3:]
            return wall, float(user) + float(system), int(kib), True
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, False


def env_file(path):
    """The variables an `export NAME=VALUE` file sets (values shell-quoted)."""
    env = {}
    with open(path) as f:
        for line in f:
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                name, value = words[1].split("=", 1)
                env[name] = value
    return env


@contextlib.contextmanager
def doubles(prefix):
    """Starts the test doubles (tests/doubles/start) in a fresh state directory and
    yields the environment to run clients in (ours plus STATE_DIR/env); stops them."""
    with tempfile.TemporaryDirectory(prefix=prefix) as state:
        started = subprocess.run(["tests/doubles/start", state], stdin=DEVNULL, capture_output=True, text=True)
        if started.returncode != 0:
            raise Failure(f"tests/doubles/start failed:\n{started.stdout}{started.stderr}")
        try:
            env = dict(os.environ, **env_file(os.path.join(state, "env")))
            env.pop("AWS_SESSION_TOKEN", None)
            yield env
        finally:
            subprocess.run(["tests/doubles/stop", state], stdin=DEVNULL, capture_output=True)


def run_json(cmd, env):
    """Runs cmd and returns the JSON object on the last line it printed."""
    done = subprocess.run(cmd, stdin=DEVNULL, capture_output=True, text=True, timeout=300, env=env)
    if done.returncode != 0:
        raise Failure(f"{shlex.join(cmd)} exited with status {done.returncode}:\n{done.stderr}")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise Failure(f"{shlex.join(cmd)} printed no JSON line:\n{done.stdout}{done.stderr}")


def python_has(module):
    """Whether this Python (the baseline's interpreter) can import module."""
    return subprocess.run([sys.executable, "-c", f"import {module}"],
                          stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL).returncode == 0
