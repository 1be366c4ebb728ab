"""Soak: the reliability mix for N minutes against FakeSlack, invariants checked throughout.

    python -m tests.soak --minutes 3 [--seed 1] [--senders 4] [--client rtm|socket-mode|both]

One RTMClient (through a relay that can reset rtm.connect calls) lives through random
faults: drops (RST, FIN, close frame, mid-frame), goodbye and team migration, half-open
connections, connections without hello, refused and hung handshakes, rtm.connect 500 /
429 / ok:false / timeouts / resets, junk and invalid UTF-8, event floods, handlers that
fall behind (paused reading) or raise, and disconnect()/start() restarts, while sender
threads keep messages in flight. Checked all along:

- every send ends (reply with its own text, or a documented error), none pending for
  more than a minute; SendWhileDisconnectedError only across a restart;
- Slack receives each thread's messages once and in order (never resent);
- every event is delivered once and in order on each connection (probe sequences);
- the client recovers to ready after each fault; at most 5 client threads;
- at the end: no client thread or descriptor left, and memory flat after warm-up.

Prints counts of events, sends, reconnects, faults and failures by kind, and peak RSS,
threads and descriptors; exits 1 if an invariant broke. FakeSlack and the relay run in
a child process (see ``server.py``): this process holds only the client, the senders
and the bookkeeping, so its memory, threads and descriptors are the client's.

``--client socket-mode`` (or ``both``, the default: RTM first) soaks a SocketModeClient
the same way; see :mod:`tests.soak.sm_runner`.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import resource
import sys
import threading
import time
import tracemalloc
from collections import Counter, deque
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from slackrtm import Backoff, LogLevel, RTMClient, WebClient
from tests.soak.server import RECOVERY_LIMIT, start_server
from tests.test_reliability_support import open_fds, slackrtm_threads

DOCUMENTED = {"NoReplyReceivedError", "SendMessagePlatformError", "SendWhileDisconnectedError"}
PENDING_LIMIT = 60.0

#: fault -> weight
FAULTS = {
    "drop_reset": 6, "drop_fin": 4, "drop_close": 4, "mid_frame": 3, "goodbye": 3,
    "migration": 1, "half_open": 2, "before_hello": 2, "handshake_503": 2,
    "hung_handshake": 1, "rtm_500": 2, "rtm_429": 2, "rtm_error": 2, "rtm_timeout": 1,
    "relay_reset": 2, "between_send_and_reply": 3, "junk": 3, "invalid_utf8": 2,
    "flood": 3, "slow_handlers": 2, "raising_handlers": 2, "server_ping": 1, "restart": 2,
}
#: faults after which the same connection must still be up
NO_RECONNECT = {"junk", "flood", "slow_handlers", "raising_handlers", "server_ping"}


def memory_kib() -> Tuple[int, int]:
    """(current RSS, peak RSS) in KiB."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak, peak


class Soak:
    def __init__(self, minutes: float, seed: int, senders: int, verbose: bool,
                 max_backlog: int = 1000, trace: bool = False) -> None:
        self.max_backlog = max_backlog
        self.trace = trace
        self.snapshot: Any = None
        self.duration = minutes * 60.0
        self.seed = seed
        self.rng = random.Random(seed)
        self.n_senders = senders
        self.verbose = verbose
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.sends: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.logs: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()
        self.teardowns = 0
        self.last_errors: Deque[str] = deque(maxlen=10)
        self.violations: List[str] = []
        self.samples: List[Tuple[float, int, int, int]] = []  # (t, rss KiB, threads, fds)
        self.peak_threads = 0
        self.peak_client_threads = 0
        self.peak_fds = 0
        # send bookkeeping
        self.epoch = 0
        self.restarting = False
        self.stop_senders = threading.Event()
        self.server_counts: Dict[str, int] = {}
        self.connections = 0
        # probe streams
        self.next_n: Dict[int, int] = {}
        self.cur_conn: Optional[int] = None
        self.done_conns: Set[int] = set()

    # ------------------------------------------------------------------ bookkeeping
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
            if level == "error" and "Soak.on_raise" not in message:  # (those are expected)
                self.last_errors.append(message.splitlines()[0][:200])
            if level in ("warn", "error"):
                first = re.sub(r"\d+", "N", message.splitlines()[0].split(":")[0])
                self.warnings[first[:60]] += 1

    # ------------------------------------------------------------------ handlers
    def on_probe(self, event: Dict[str, Any]) -> None:
        conn, n = event["conn"], event["n"]
        with self.lock:
            self.counts["probe events"] += 1
            if conn != self.cur_conn:
                if conn in self.done_conns:
                    self.violations.append(f"probes of connection {conn} resumed")
                if self.cur_conn is not None:
                    self.done_conns.add(self.cur_conn)
                self.cur_conn = conn
            expected = self.next_n.get(conn, 0)
            if n != expected:
                self.violations.append(f"connection {conn}: probe {n}, expected {expected}")
            self.next_n[conn] = n + 1

    def on_event(self, etype: str, event: Dict[str, Any]) -> None:
        with self.lock:
            self.counts["events (slack_event)"] += 1
            if etype == "message":
                self.counts["message events"] += 1

    def on_slow(self, event: Dict[str, Any]) -> None:
        time.sleep(0.001)
        with self.lock:
            self.counts["slow events"] += 1

    def on_raise(self, event: Dict[str, Any]) -> None:
        raise ValueError("a handler that raises")

    def on_error(self, err: BaseException) -> None:
        with self.lock:
            self.failures[f"error event: {type(err).__name__}"] += 1

    def on_unable(self, err: BaseException) -> None:
        with self.lock:
            self.failures[f"rtm.connect failed: {type(err).__name__}"] += 1

    def on_lifecycle(self, name: str) -> Callable[..., None]:
        def count(*args: Any) -> None:
            with self.lock:
                self.counts[f"lifecycle {name}"] += 1
        return count

    # ------------------------------------------------------------------ senders
    def sender(self, k: int, depth: int = 3) -> None:
        try:
            self._sender(k, depth)
        except BaseException as exc:  # a dead sender would silently thin the traffic
            self.violation(f"sender {k} died: {exc!r}")

    def _sender(self, k: int, depth: int) -> None:
        window: Deque[Tuple[float, Future[Any], str, int, bool]] = deque()
        i = 0
        while True:
            stopping = self.stop_senders.is_set()
            if not stopping:
                epoch, restarting = self.epoch, self.restarting
                text = f"t{k}-{i}"
                fut = self.rtm.send_message(text, self.channel)
                window.append((time.monotonic(), fut, text, epoch, restarting))
                i += 1
                time.sleep(0.002)  # a few hundred sends a second per thread
            if not window:
                return
            if len(window) >= depth or stopping:
                self.settle(window)

    def settle(self, window: Deque[Tuple[float, Future[Any], str, int, bool]]) -> None:
        made, fut, text, epoch, restarting = window[0]
        try:
            err = fut.exception(timeout=0.2)
        except FutureTimeout:  # (not the builtin TimeoutError before Python 3.11)
            if time.monotonic() - made > PENDING_LIMIT:
                self.violation(f"send {text} pending for {PENDING_LIMIT:g} s")
                window.popleft()
            return
        except CancelledError:
            err = CancelledError()
        window.popleft()
        kind = "ok" if err is None else type(err).__name__
        with self.lock:
            self.sends[kind] += 1
        if err is None:
            reply = fut.result(0)
            if reply.get("text") != text:
                self.violation(f"send {text} resolved with the reply to {reply.get('text')}")
        elif kind not in DOCUMENTED:
            self.violation(f"send {text} failed with {err!r}")
        elif kind == "SendWhileDisconnectedError" and not restarting and epoch == self.epoch:
            self.violation(f"send {text} dropped without a restart: {err}")

    # ------------------------------------------------------------------ faults
    def apply(self, fault: str) -> None:
        if fault == "restart":
            self.restart()
        else:
            self.server.apply(fault)

    def restart(self) -> None:
        with self.lock:
            self.restarting = True
            self.epoch += 1
        self.rtm.disconnect(timeout=10)
        if self.rtm.state != "disconnected":
            self.violation(f"state after disconnect(): {self.rtm.state}")
        left = slackrtm_threads()
        if left:
            self.violation(f"threads left after disconnect(): {left}")
        self.rtm.start()
        with self.lock:
            self.restarting = False

    def recovered(self, fault: str, before: int) -> bool:
        """Ready again: on the same connection (faults that must not reconnect), or on a
        newer one than ``before`` (the newest the server had accepted before the fault).
        (The client's state alone could still be the old connection's "ready".)"""
        deadline = time.monotonic() + RECOVERY_LIMIT
        while time.monotonic() < deadline:
            newest = self.server.newest() if self.rtm.state == "ready" else 0
            if newest:
                if fault in NO_RECONNECT:
                    if newest != before:
                        with self.lock:
                            teardowns = self.warnings["tearing the connection down"]
                        if teardowns > self.teardowns:  # a late pong on a loaded machine
                            with self.lock:
                                self.counts["keep-alive reconnects during load faults"] += 1
                        else:
                            self.violation(f"{fault} made the client reconnect")
                    return True
                if newest > before:
                    return True
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------------ sampling
    def sample(self) -> None:
        if self.trace and self.snapshot is None and self.elapsed() >= min(
                60.0, self.duration / 4):
            gc.collect()
            self.snapshot = tracemalloc.take_snapshot()
        rss, _ = memory_kib()
        blocks = sys.getallocatedblocks()
        threads = threading.active_count()
        client = len(slackrtm_threads())
        fds = open_fds()
        self.samples.append((self.elapsed(), rss, threads, fds))
        self.peak_threads = max(self.peak_threads, threads)
        self.peak_client_threads = max(self.peak_client_threads, client)
        self.peak_fds = max(self.peak_fds, fds)
        if client > 5:
            self.violation(f"{client} client threads: {slackrtm_threads()}")
        if self.verbose:
            print(f"[{self.elapsed():7.1f}s] rss {rss / 1024:.1f} MiB ({blocks} Python "
                  f"blocks), threads {threads} "
                  f"(client {client}), fds {fds}, sends {sum(self.sends.values())}, "
                  f"faults {sum(self.faults.values())}, connections "
                  f"{self.server.connect_count()}", flush=True)

    # ------------------------------------------------------------------ run
    def run(self, server: Any = None) -> int:
        """Soak; returns 1 when an invariant broke. ``server``: a ``ServerSide`` in this
        process (the chaos test), else one is started in a child process."""
        self.t0 = time.monotonic()
        manager = None
        if server is None:
            manager, self.server = start_server(self.seed)
        else:
            self.server = server
        if self.trace:
            tracemalloc.start(8)
        api_url, token, self.channel = self.server.info()
        self.server.connect_count()
        baseline_fds = open_fds()  # (after the proxy's own connection to the manager)
        web = WebClient(token, base_url=api_url, timeout=1.0)
        self.rtm = rtm = RTMClient(
            token, slack_api_url=api_url, web_client=web,
            client_ping_timeout=2.0, server_pong_timeout=1.0, reply_timeout=5.0,
            hello_timeout=1.5, backoff=Backoff(initial=0.0, base=0.05, maximum=0.5),
            max_backlog=self.max_backlog, log_level=LogLevel.WARN, logger=self.log,
            send_rate=None)  # the soak sends bursts; pacing has its own tests
        rtm.on("probe", self.on_probe)
        rtm.on("slack_event", self.on_event)
        rtm.on("slow", self.on_slow)
        rtm.on("raise", self.on_raise)
        rtm.on("error", self.on_error)
        rtm.on("unable_to_rtm_start", self.on_unable)
        rtm.on("partial", lambda e: self.violation("a frame cut midway was delivered"))
        for name in ("ready", "reconnecting", "connected", "disconnected"):
            rtm.on(name, self.on_lifecycle(name))
        rtm.start().result(timeout=30)
        senders = [threading.Thread(target=self.sender, args=(k,), name=f"soak-sender-{k}")
                   for k in range(self.n_senders)]
        for t in senders:
            t.start()
        faults, weights = list(FAULTS), list(FAULTS.values())
        next_sample = 0.0
        try:
            while self.elapsed() < self.duration and len(self.violations) < 50:
                fault = self.rng.choices(faults, weights)[0]
                before = self.server.connect_count()
                with self.lock:
                    self.teardowns = self.warnings["tearing the connection down"]
                try:
                    self.apply(fault)
                except TimeoutError as exc:
                    self.violation(f"{fault}: {exc}")
                self.faults[fault] += 1
                if not self.recovered(fault, before):
                    self.violation(f"not ready {RECOVERY_LIMIT:g} s after {fault} "
                                   f"(state {rtm.state})")
                self.server.inject_probes(self.rng.randrange(0, 50))
                time.sleep(self.rng.uniform(0.0, 0.2))  # let traffic flow between faults
                if self.elapsed() >= next_sample:
                    self.check_server()
                    self.sample()
                    next_sample = self.elapsed() + 5.0
        finally:
            self.stop_senders.set()
            for t in senders:
                t.join(PENDING_LIMIT + 10)
                if t.is_alive():
                    self.violation(f"{t.name} did not finish")
            self.check_server()
            self.sample()
            rtm.disconnect(timeout=10)
            web.close()
        self.final_checks(baseline_fds)
        self.connections = self.server.connect_count()
        self.server.close()
        if manager is not None:
            manager.shutdown()
        self.report()
        return 1 if self.violations else 0

    def check_server(self) -> None:
        self.server.trim_and_check()
        found, self.server_counts = self.server.collect()
        for text in found:
            self.violation(text)

    def final_checks(self, baseline_fds: int) -> None:
        if slackrtm_threads():
            self.violation(f"threads left: {slackrtm_threads()}")
        if not self.server.wait_closed(10):
            self.violation("the server still has connections open 10 s after disconnect()")
        deadline = time.monotonic() + 10
        while True:
            gc.collect()
            if open_fds() <= baseline_fds or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if open_fds() > baseline_fds:
            self.violation(f"{open_fds()} descriptors open at the end, {baseline_fds} before")
        sent = self.server.probes_sent()
        with self.lock:
            for conn, n in self.next_n.items():
                if n > sent.get(conn, 0):
                    self.violations.append(f"connection {conn}: more probes than sent")
        # memory: after warm-up, the last samples may not exceed the first ones by much
        warm = [s for s in self.samples if s[0] >= min(60.0, self.duration / 4)]
        if len(warm) >= 6:
            first = sorted(s[1] for s in warm[:3])[1]
            last = sorted(s[1] for s in warm[-3:])[1]
            self.memory = (first, last)
            if last - first > max(16 * 1024, first // 5):
                self.violation(f"memory grew from {first / 1024:.1f} to {last / 1024:.1f} MiB "
                               "after warm-up")
        else:
            self.memory = (0, 0)

    def report(self) -> None:
        _, peak = memory_kib()
        print(f"\nsoak: {self.elapsed():.0f} s, {sum(self.faults.values())} faults, "
              f"{self.connections} WebSocket connections")
        for title, counter in (("events", self.counts), ("server", self.server_counts),
                               ("sends", self.sends),
                               ("faults", self.faults), ("failures", self.failures),
                               ("client log lines", self.logs),
                               ("client warnings (first words)", self.warnings)):
            print(f"  {title}:")
            for key, value in sorted(counter.items()):
                print(f"    {key:<42} {value}")
        first, last = self.memory
        print(f"  peak RSS {peak / 1024:.1f} MiB; after warm-up {first / 1024:.1f} -> "
              f"{last / 1024:.1f} MiB")
        print(f"  peak threads {self.peak_threads} (client {self.peak_client_threads}), "
              f"peak fds {self.peak_fds}; at the end: client threads "
              f"{len(slackrtm_threads())}, fds {open_fds()}")
        if self.last_errors:
            print("  last client ERROR log lines:")
            for line in self.last_errors:
                print(f"    {line}")
        if self.trace and self.snapshot is not None:
            gc.collect()
            growth = tracemalloc.take_snapshot().compare_to(self.snapshot, "lineno")
            growth.sort(key=lambda stat: stat.size_diff, reverse=True)
            total = sum(stat.size_diff for stat in growth)
            print(f"  Python memory since warm-up (tracemalloc): {total / 1024:+.1f} KiB; "
                  "largest growth by allocation site:")
            for stat in growth[:10]:
                print(f"    {stat}")
        if self.violations:
            print(f"\nINVARIANTS BROKEN ({len(self.violations)}):")
            for v in self.violations[:50]:
                print(f"  {v}")
        else:
            print("\nall invariants held")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--max-backlog", type=int, default=1000)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="report where memory grew after warm-up (slower)")
    parser.add_argument("--client", choices=["rtm", "socket-mode", "both"], default="both",
                        help="which client to soak (both: RTM, then Socket Mode, each for "
                             "--minutes)")
    args = parser.parse_args(argv)
    status = 0
    if args.client in ("rtm", "both"):
        status |= Soak(args.minutes, args.seed, args.senders, verbose=not args.quiet,
                       max_backlog=args.max_backlog, trace=args.tracemalloc).run()
    if args.client in ("socket-mode", "both"):
        from tests.soak.sm_runner import run_socket_mode

        status |= run_socket_mode(args.minutes, args.seed, args.senders,
                                  verbose=not args.quiet)
    return status
