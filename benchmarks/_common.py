"""Helpers shared by the benchmark worker and its client adapters (stdlib only).

This module runs under every benchmark interpreter, including the slackclient 1.x venv,
so it imports nothing outside the standard library.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
import urllib.request
from array import array
from typing import Any, Dict, Optional

CHANNEL = "C024BE91L"


class Control:
    """Commands to the flood server for this worker's connections (selected by tag)."""

    def __init__(self, api_url: str, tag: str) -> None:
        self.base = api_url.rsplit("/api/", 1)[0] + "/control/"
        self.tag = tag

    def __call__(self, command: str, **args: Any) -> Dict[str, Any]:
        query = "&".join(f"{k}={v}" for k, v in {"tag": self.tag, **args}.items())
        req = urllib.request.Request(f"{self.base}{command}?{query}", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            result: Dict[str, Any] = json.loads(resp.read())
            return result


class Counter:
    """The benchmark's one trivial handler: count message events by sequence number.

    Counts unique events, duplicates and order violations (an event whose sequence
    number is lower than one already seen), and records when the sentinel arrived.
    ``lock`` is for clients that call handlers from several threads at once.
    """

    def __init__(self, n: int, lock: bool = False) -> None:
        self.n = n
        self.seen = bytearray(n)
        self.dups = 0
        self.order = 0
        self.highest = -1
        self.other = 0
        self.sentinel: Optional[Dict[str, Any]] = None
        self.t_end = 0.0
        self.done = threading.Event()
        self.calls = 0
        self._lock: Optional[threading.Lock] = threading.Lock() if lock else None

    def feed(self, event: Dict[str, Any]) -> None:
        if self._lock is not None:
            with self._lock:
                self._feed(event)
        else:
            self._feed(event)

    def _feed(self, event: Dict[str, Any]) -> None:
        self.calls += 1
        kind = event.get("type")
        if kind == "message":
            seq = event.get("seq")
            if isinstance(seq, int) and 0 <= seq < self.n:
                if self.seen[seq]:
                    self.dups += 1
                else:
                    self.seen[seq] = 1
                if seq < self.highest:
                    self.order += 1
                else:
                    self.highest = seq
                return
        if kind == "bench_done":
            self.t_end = time.time()
            self.sentinel = event
            self.done.set()
        else:
            self.other += 1

    def wait(self, timeout: float, stall: float = 5.0) -> None:
        """Wait for the sentinel; raise TimeoutError at ``timeout`` or after ``stall`` seconds
        without a single event (a client that stopped delivering)."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while not self.done.wait(0.25):
            now = time.monotonic()
            if self.calls != last:
                last, last_change = self.calls, now
            elif now - last_change > stall:
                raise TimeoutError(f"stalled: no event for {stall:g} s")
            if now > deadline:
                raise TimeoutError(f"no sentinel within {timeout:g} s")

    def result(self) -> Dict[str, Any]:
        unique = self.n - self.seen.count(0)
        out: Dict[str, Any] = {"events": self.n, "unique": unique, "lost": self.n - unique,
                               "dups": self.dups, "order": self.order, "other": self.other,
                               "sentinel": self.sentinel is not None}
        if self.sentinel is not None:
            elapsed = self.t_end - float(self.sentinel["flood_start"])
            out["seconds"] = elapsed
            out["eps"] = self.n / elapsed if elapsed > 0 else 0.0
            out["server_seconds"] = float(self.sentinel["flood_end"]) - \
                float(self.sentinel["flood_start"])
        return out


class TimedCounter(Counter):
    """A Counter that also notes, per sequence number, when the event was handled
    (``handled``) and when the server's schedule sent it (``stamp``, the event's "t")."""

    def __init__(self, n: int, lock: bool = False) -> None:
        super().__init__(n, lock)
        self.handled = array("d", bytes(8 * n))
        self.stamp = array("d", bytes(8 * n))

    def _feed(self, event: Dict[str, Any]) -> None:
        seq = event.get("seq")
        if type(seq) is int and 0 <= seq < self.n and not self.seen[seq] \
                and event.get("type") == "message":
            self.handled[seq] = time.time()
            self.stamp[seq] = float(event.get("t", 0.0))
        super()._feed(event)


def rss_mb() -> float:
    """This process's resident set size now, in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def thread_cpu() -> Dict[str, float]:
    """CPU seconds per live thread of this process, by thread name (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: Dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[thread.name] = out.get(thread.name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank on the sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[k]
