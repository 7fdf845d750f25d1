"""testlib.py: what the test doubles' self-checks and conformance tests share
(test_httpd.py, test_wsd.py, aws/, kube/, portworx/).

Standard library only. Assertions (check, eq) and wait_for, which polls a
condition against a deadline instead of sleeping; Server, one double as a
subprocess on a free port, its output in WORKDIR/NAME.log; run(), which runs the
tests one by one, prints "ok   name" / "FAIL name" (with the traceback) / "skip
name: why" for each, and summary(), the closing "N passed, N failed" line every
harness ends with. Tests register themselves with a Tests list used as a decorator.
"""

import os
import subprocess
import sys
import time
import traceback

DEADLINE = 10.0  # seconds, unless a harness says otherwise


class Skip(Exception):
    """Raised by a test that cannot run here (a client missing): counted apart."""


class Tests(list):
    """The tests of one harness, in the order they are defined: `@tests` on each."""

    def __call__(self, fn):
        self.append(fn)
        return fn


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def eq(a, b, what=""):
    check(a == b, f"{what}: {a!r} != {b!r}")


def wait_for(condition, what, deadline=DEADLINE):
    """Poll `condition` until it returns a true value, which is returned; fail after
    `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Server:
    """`script` (a double's server) run as `python3 script --port 0 --port-file
    WORKDIR/NAME.port ARGS...`, stdout and stderr to WORKDIR/NAME.log; .port once it
    listens. Fails (and kills it) if it exits or has no port within `deadline`."""

    def __init__(self, script, workdir, name, *args, deadline=DEADLINE):
        self.name = name
        self.port_file = os.path.join(workdir, f"{name}.port")
        self.log_file = os.path.join(workdir, f"{name}.log")
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, script, "--port", "0", "--port-file", self.port_file, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self.port = wait_for(self._port, f"{name}'s port file", deadline)
        except BaseException:
            self.kill()
            raise

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited ({self.proc.returncode}): {self.log()!r}")
        try:
            with open(self.port_file) as f:  # written atomically once listening
                return int(f.read())
        except FileNotFoundError:
            return None

    def log(self, tail=None):
        """The server's output so far (its last `tail` characters)."""
        with open(self.log_file, "rb") as f:
            text = f.read().decode(errors="replace")
        return text[-tail:] if tail else text

    def stop(self, deadline=5.0):
        """SIGTERM, then SIGKILL if it has not exited within `deadline`; its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Tally:
    def __init__(self):
        self.passed = self.failed = 0
        self.skipped = []


def run(tests, *args, only=None, tally=None, prefix="", timed=False, quiet=False, before=None):
    """Run each test fn(*args) whose name contains `only` (all when None), after
    before(fn) when given; print a line for each (none for a pass when `quiet`), a
    pass with its time when `timed`. Returns the Tally (`tally`, when given)."""
    tally = tally or Tally()
    for fn in tests:
        name = prefix + fn.__name__
        if only and only not in fn.__name__:
            continue
        t0 = time.monotonic()
        try:
            if before is not None:
                before(fn)
            fn(*args)
            tally.passed += 1
            if not quiet:
                print(f"ok   {name} ({time.monotonic() - t0:.2f}s)" if timed else f"ok   {name}")
        except Skip as e:
            tally.skipped.append(fn.__name__)
            print(f"skip {name}: {e}")
        except Exception as e:  # noqa: BLE001
            tally.failed += 1
            print(f"FAIL {name}: {e}")
            traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
    return tally


def summary(tally):
    """Print the closing line; the exit status (1 when anything failed)."""
    line = f"{tally.passed} passed, {tally.failed} failed"
    if tally.skipped:
        line += f", {len(tally.skipped)} skipped"
    print(line)
    return 1 if tally.failed else 0
