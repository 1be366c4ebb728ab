"""Socket Mode soak: one SocketModeClient for N minutes against FakeSlack, with sender
threads posting events throughout and random faults: refreshes (with and without the
``warning``), dropped connections (RST, FIN, close frame), half-open connections,
redeliveries of envelopes already handled (same id and new id), malformed envelopes and
junk frames, bursts, and ``apps.connections.open`` failing. Checked all along and at the
end:

- every event is handled exactly once (nothing lost, nothing duplicated), per sender in
  order while the connection holds;
- every envelope is acknowledged (FakeSlack, which redelivers what is not, has nothing
  pending at the end), malformed ones with a string ``envelope_id`` included;
- the client recovers to ready after each fault, and stays on its connection after faults
  that must not end it; at most 6 client threads;
- at the end: no client thread or descriptor left, memory flat after warm-up.

FakeSlack and the sender threads run in a child process (``sm_server.py``).
"""

from __future__ import annotations

import gc
import random
import re
import sys
import threading
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Tuple

from slackrtm import Backoff, LogLevel, SocketModeClient
from tests.soak.sm_server import RECOVERY_LIMIT, SM_FAULTS, SM_NO_RECONNECT
from tests.test_reliability_support import open_fds, slackrtm_threads

CLIENT_THREAD_LIMIT = 6


class Handled:
    """What the client's handlers saw: each (sender, i) once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: Dict[int, bytearray] = {}
        self.count = 0
        self.duplicates: List[Tuple[int, int]] = []
        self.bad: List[str] = []
        self.reordered = 0
        self.last: Dict[int, int] = {}

    def on_soak(self, event: Dict[str, Any]) -> None:
        k, i = event.get("k"), event.get("i")
        if not isinstance(k, int) or not isinstance(i, int):
            with self.lock:
                self.bad.append(repr(event)[:200])
            return
        with self.lock:
            seen = self.seen.setdefault(k, bytearray())
            if len(seen) <= i // 8:
                seen.extend(bytes(i // 8 + 1024 - len(seen)))
            if seen[i // 8] & (1 << (i % 8)):
                self.duplicates.append((k, i))
            seen[i // 8] |= 1 << (i % 8)
            self.count += 1
            if i < self.last.get(k, -1):
                self.reordered += 1  # (a redelivery after a drop: allowed)
            self.last[k] = i

    def on_bad(self, event: Any) -> None:
        with self.lock:
            self.bad.append(repr(event)[:200])

    def missing(self, sent: Dict[int, int]) -> List[Tuple[int, int]]:
        out = []
        with self.lock:
            for k, n in sent.items():
                seen = self.seen.get(k, bytearray())
                for i in range(n):
                    if i // 8 >= len(seen) or not seen[i // 8] & (1 << (i % 8)):
                        out.append((k, i))
        return out


def memory_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class SmSoak:
    def __init__(self, minutes: float, seed: int, senders: int, verbose: bool,
                 interval: float = 0.01) -> None:
        self.duration = minutes * 60.0
        self.seed = seed
        self.rng = random.Random(seed)
        self.n_senders = senders
        self.interval = interval
        self.verbose = verbose
        self.lock = threading.Lock()
        self.faults: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.logs: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()
        self.violations: List[str] = []
        self.samples: List[Tuple[float, int]] = []
        self.peak_client_threads = 0
        self.handled = Handled()

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(f"[{self.elapsed():7.1f}s] {text}")
        if self.verbose:
            print("VIOLATION", text, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def log(self, level: str, message: str) -> None:
        with self.lock:
            self.logs[level] += 1
            if level in ("warn", "error"):
                first = re.sub(r"[0-9a-f]{8,}|\d+", "N", message.splitlines()[0])
                self.warnings[first.split(":")[0][:70]] += 1

    def lifecycle(self, name: str) -> Callable[..., None]:
        def count(*args: Any) -> None:
            with self.lock:
                self.counts[f"lifecycle {name}"] += 1
        return count

    def recovered(self, fault: str, before: int) -> bool:
        deadline = time.monotonic() + RECOVERY_LIMIT
        while time.monotonic() < deadline:
            newest = self.server.healthy() if self.sm.state == "ready" else 0
            if newest:
                if fault in SM_NO_RECONNECT and newest != before:
                    with self.lock:
                        self.counts["keep-alive reconnects during load faults"] += 1
                return True
            time.sleep(0.01)
        return False

    def sample(self) -> None:
        client = len(slackrtm_threads())
        self.peak_client_threads = max(self.peak_client_threads, client)
        if client > CLIENT_THREAD_LIMIT:
            self.violation(f"{client} client threads: {slackrtm_threads()}")
        self.samples.append((self.elapsed(), memory_kib()))
        with self.handled.lock:
            dups = list(self.handled.duplicates)
        if dups:
            self.violation(f"handled twice: {dups[:10]}")
            with self.handled.lock:
                self.handled.duplicates.clear()
        if self.verbose:
            print(f"[{self.elapsed():7.1f}s] rss {self.samples[-1][1] / 1024:.1f} MiB, "
                  f"client threads {client}, fds {open_fds()}, handled {self.handled.count}, "
                  f"faults {sum(self.faults.values())}, connections "
                  f"{self.server.connect_count()}", flush=True)

    def run(self, server: Any) -> int:
        self.t0 = time.monotonic()
        self.server = server
        api_url, token = server.info()
        baseline_fds = open_fds()
        self.sm = sm = SocketModeClient(
            token, slack_api_url=api_url, client_ping_timeout=2.0, server_pong_timeout=1.0,
            hello_timeout=3.0, backoff=Backoff(initial=0.0, base=0.05, maximum=0.5),
            log_level=LogLevel.WARN, logger=self.log)
        sm.on("soak", self.handled.on_soak)
        sm.on("soak_bad", self.handled.on_bad)  # inside malformed envelopes only
        for name in ("ready", "reconnecting", "connected", "disconnected"):
            sm.on(name, self.lifecycle(name))
        errors: List[str] = []
        sm.on("error", lambda err: errors.append(type(err).__name__))
        sm.start().result(timeout=60)
        server.start_senders(self.n_senders, self.interval)
        faults, weights = list(SM_FAULTS), list(SM_FAULTS.values())
        next_sample = 0.0
        try:
            while self.elapsed() < self.duration and len(self.violations) < 50:
                fault = self.rng.choices(faults, weights)[0]
                before = server.healthy()
                done = server.apply(fault)
                self.faults[done] += 1
                if not self.recovered(fault, before):
                    self.violation(f"not ready {RECOVERY_LIMIT:g} s after {fault} "
                                   f"(state {sm.state})")
                time.sleep(self.rng.uniform(0.0, 0.3))  # let traffic flow between faults
                if self.elapsed() >= next_sample:
                    server.collect()
                    self.sample()
                    next_sample = self.elapsed() + 5.0
        finally:
            sent = server.stop_senders()
        self.final_checks(sent, baseline_fds)
        self.counts.update(Counter(f"error event: {e}" for e in errors))
        self.server_counts = server.collect()
        self.connections = server.connect_count()
        self.report(sent)
        return 1 if self.violations else 0

    def final_checks(self, sent: Dict[int, int], baseline_fds: int) -> None:
        # nothing pending: every event handled, every envelope acknowledged
        deadline = time.monotonic() + 60
        while True:
            pending, malformed = self.server.unacked()
            missing = self.handled.missing(sent)
            if (not pending and not malformed and not missing) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if missing:
            self.violation(f"{len(missing)} events never handled, e.g. {missing[:10]}")
        if pending:
            self.violation(f"{pending} envelopes never acknowledged")
        if malformed:
            self.violation(f"malformed envelopes never acknowledged: {Counter(malformed)}")
        self.sample()
        if self.handled.bad:
            self.violation(f"handlers got events that are not events: {self.handled.bad[:5]}")
        self.sm.disconnect(timeout=10)
        if self.sm.state != "disconnected":
            self.violation(f"state after disconnect(): {self.sm.state}")
        if slackrtm_threads():
            self.violation(f"threads left: {slackrtm_threads()}")
        if not self.server.wait_closed(10):
            self.violation("the server still has connections open 10 s after disconnect()")
        deadline = time.monotonic() + 10
        while open_fds() > baseline_fds and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.05)
        if open_fds() > baseline_fds:
            self.violation(f"{open_fds()} descriptors open at the end, {baseline_fds} before")
        warm = [s for s in self.samples if s[0] >= min(60.0, self.duration / 4)]
        self.memory = (0, 0)
        if len(warm) >= 6:
            first = sorted(s[1] for s in warm[:3])[1]
            last = sorted(s[1] for s in warm[-3:])[1]
            self.memory = (first, last)
            if last - first > max(16 * 1024, first // 5):
                self.violation(f"memory grew from {first / 1024:.1f} to {last / 1024:.1f} "
                               "MiB after warm-up")

    def report(self, sent: Dict[int, int]) -> None:
        print(f"\nsocket mode soak: {self.elapsed():.0f} s, {sum(self.faults.values())} "
              f"faults, {self.connections} Socket Mode connections, "
              f"{sum(sent.values())} events sent by {len(sent)} senders, "
              f"{self.handled.count} handled")
        for title, counter in (("client", self.counts), ("server", self.server_counts),
                               ("faults", self.faults), ("client log lines", self.logs),
                               ("client warnings (first words)", self.warnings)):
            print(f"  {title}:")
            for key, value in sorted(counter.items()):
                print(f"    {key:<50} {value}")
        print(f"  handled out of order (redeliveries after a drop): {self.handled.reordered}")
        first, last = self.memory
        print(f"  RSS after warm-up {first / 1024:.1f} -> {last / 1024:.1f} MiB; peak client "
              f"threads {self.peak_client_threads}")
        if self.violations:
            print(f"\nINVARIANTS BROKEN ({len(self.violations)}):")
            for v in self.violations[:50]:
                print(f"  {v}")
        else:
            print("\nall invariants held")


def run_socket_mode(minutes: float, seed: int, senders: int, verbose: bool) -> int:
    """The Socket Mode soak, its server in a child process."""
    from tests.soak.sm_server import start_sm_server

    manager, server = start_sm_server(seed)
    try:
        return SmSoak(minutes, seed, senders, verbose).run(server)
    finally:
        try:
            server.close()
        finally:
            manager.shutdown()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_socket_mode(1.0, 1, 4, True))
