"""faults.py: the pending-fault list and the sequence-numbered request log that
the AWS and Kubernetes doubles' control endpoints share (aws/control.py,
kube/control.py).

Standard library only; both classes are thread-safe. What a fault is and which
request it matches is each double's own: Faults only asks every pending fault
fault.matches(*key) and fault.public(), and honours its `skip` and `count`.
"""

import itertools
import threading


class Faults:
    """Pending faults, oldest first, at most `limit` of them."""

    def __init__(self, limit):
        self._lock = threading.Lock()
        self._faults = []
        self._limit = limit

    def add(self, fault):
        with self._lock:
            if len(self._faults) >= self._limit:
                raise ValueError(f"over {self._limit} pending faults; POST /_ferry/reset")
            self._faults.append(fault)

    def take(self, *key):
        """The fault the next request matching `key` gets (consuming one use), or None.
        A matching fault with skip > 0 lets this request through instead; one with
        count -1 stays until cleared."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(*key):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                return fault
            return None

    def listing(self):
        with self._lock:
            return [f.public() for f in self._faults]

    def clear(self):
        with self._lock:
            self._faults = []


class Log:
    """Entries (dicts) numbered 1, 2, ... in their "seq" key as added; the oldest
    dropped beyond `limit`."""

    def __init__(self, limit):
        self._lock = threading.Lock()
        self._entries = []
        self._seq = itertools.count(1)
        self._limit = limit

    def add(self, entry):
        with self._lock:
            entry["seq"] = next(self._seq)
            self._entries.append(entry)
            if len(self._entries) > self._limit:
                del self._entries[: len(self._entries) - self._limit]

    def select(self, keep):
        """The entries for which keep(entry) is true, oldest first (the log's own
        dicts: copy before changing them)."""
        with self._lock:
            return [e for e in self._entries if keep(e)]

    def clear(self):
        with self._lock:
            self._entries = []
