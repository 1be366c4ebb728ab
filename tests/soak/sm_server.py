"""The server side of the Socket Mode soak and chaos test: FakeSlack, sender threads that
post ``events_api`` envelopes, fault injection, and what Slack saw acknowledged.

Used in-process by ``tests/test_chaos_mix.py`` and from a child process (a
``multiprocessing`` manager) by ``python -m tests.soak --client socket-mode``, so that the
soak's process holds only the client. FakeSlack's records are trimmed as the run goes
(private attributes: this is test code).
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, deque
from multiprocessing.managers import BaseManager
from typing import Any, Deque, Dict, List, Optional, Tuple

from slackrtm.testing import FakeSlack
from tests.test_reliability_support import text_frame

RECOVERY_LIMIT = 30.0

#: fault -> weight
SM_FAULTS = {
    "refresh_warning": 5, "refresh_now": 4, "drop_reset": 4, "drop_fin": 3, "drop_close": 3,
    "redeliver_same": 4, "redeliver_new": 4, "malformed": 5, "junk": 3, "half_open": 1,
    "burst": 2, "open_fails": 2,
}
#: faults after which the same connection must still be up
SM_NO_RECONNECT = {"redeliver_same", "redeliver_new", "malformed", "junk", "burst"}

#: Envelopes a peer may send that carry no usable event: (name, envelope). Those with a
#: string ``envelope_id`` must be acknowledged all the same (else Slack resends them).
MALFORMED: List[Tuple[str, Dict[str, Any]]] = [
    ("no type", {"payload": {"event": {"type": "soak_bad"}}}),
    ("no payload", {"type": "events_api"}),
    ("payload not an object", {"type": "events_api", "payload": "x"}),
    ("payload a list", {"type": "events_api", "payload": [1, 2]}),
    ("event without type", {"type": "events_api", "payload": {"event": {"k": -1}}}),
    ("event not an object", {"type": "events_api", "payload": {"event": "soak"}}),
    ("unknown envelope type", {"type": "soak_unknown", "payload": {}}),
]
#: Envelopes without a usable id: never acknowledged, never dispatched as an event.
NO_ID: List[Tuple[str, Dict[str, Any]]] = [
    ("no envelope_id", {"type": "events_api", "payload": {"event": {"type": "soak_bad"}}}),
    ("numeric envelope_id", {"envelope_id": 7, "type": "events_api",
                             "payload": {"event": {"type": "soak_bad"}}}),
    ("null envelope_id", {"envelope_id": None, "type": "events_api",
                          "payload": {"event": {"type": "soak_bad"}}}),
]
JUNK = [b"{not json", b"[]", b"42", b'"text"', b"null", b"\xef\xbb\xbf{}", b'{"type": 1}']


class SmServerSide:
    """One FakeSlack serving Socket Mode, with sender threads and faults."""

    def __init__(self, seed: int, ack_timeout: float = 2.0) -> None:
        self.rng = random.Random(seed + 7)
        self.slack = FakeSlack()
        self.slack.ack_timeout = ack_timeout
        self.slack.max_retries = 1000  # Slack gives up after 3; the soak wants no loss
        self.slack.close_delay = 0.2
        self.counts: Counter[str] = Counter()
        self.sent: Dict[int, int] = {}
        self.stop = threading.Event()
        self.threads: List[threading.Thread] = []
        self.lock = threading.Lock()
        self.malformed_ids: Dict[str, str] = {}  # envelope id -> kind, until acked
        self.recent: Deque[str] = deque(maxlen=200)  # acked ids, for redeliveries
        self.errors: List[str] = []

    # ------------------------------------------------------------------ queries
    def info(self) -> Tuple[str, str]:
        """(API URL, app-level token)."""
        return self.slack.api_url, self.slack.app_token

    def connect_count(self) -> int:
        return self.slack.socket_connect_count

    def healthy(self) -> int:
        """The id of the newest open connection that got hello and is not going away
        (0: none)."""
        for conn in reversed(self.slack.socket_connections):
            if conn.hello_sent and not conn.going_away:
                return conn.id
        return 0

    def open_connections(self) -> int:
        return len(self.slack.socket_connections)

    def sent_counts(self) -> Dict[int, int]:
        with self.lock:
            return dict(self.sent)

    def unacked(self) -> Tuple[int, List[str]]:
        """(events not acknowledged yet, malformed envelopes with a string id not
        acknowledged yet: their kinds)."""
        slack = self.slack
        with slack._cond:
            pending = sum(1 for s in slack._sent.values()
                          if s.auto and s.origin not in slack._acked_origins)
            self._collect_acks()
            return pending, sorted(self.malformed_ids.values())

    def collect(self) -> Dict[str, int]:
        with self.slack._cond:
            self._collect_acks()
        return dict(self.counts)

    def wait_closed(self, timeout: float) -> bool:
        try:
            self.slack.wait_until(lambda: not self.slack._socket_conns, timeout, "closed")
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.stop_senders()
        self.slack.close()

    # ------------------------------------------------------------------ records
    def _collect_acks(self) -> None:
        """Count acks, note acked ids for redeliveries, and trim FakeSlack's records of
        what is finished (called with FakeSlack's lock held)."""
        slack = self.slack
        for ack in slack._acks:
            self.counts["acks"] += 1
            if ack.late:
                self.counts["late acks (after ack_timeout)"] += 1
            eid = ack.envelope_id
            if isinstance(eid, str):
                if self.malformed_ids.pop(eid, None) is not None:
                    self.counts["malformed envelopes acked"] += 1
                elif eid in slack._sent and slack._sent[eid].auto:
                    self.recent.append(eid)
        slack._acks.clear()
        for conn in slack._all_socket_conns:
            conn.acks.clear()
            conn._received.clear()
        slack._all_socket_conns[:] = [c for c in slack._all_socket_conns if c.open]
        self.counts["envelopes written"] += len(slack._delivered)
        slack._delivered.clear()
        slack._received.clear()
        slack._calls.clear()
        slack._unparsed.clear()
        slack._acked_ids.clear()
        keep = set(self.recent)
        for eid in [e for e, s in slack._sent.items()
                    if s.origin in slack._acked_origins and e not in keep]:
            del slack._sent[eid]

    # ------------------------------------------------------------------ senders
    def start_senders(self, n: int, interval: float) -> None:
        """``n`` threads, each posting ``{"type": "soak", "k": k, "i": i}`` events with
        ``i`` counting up, one every ``interval`` seconds (plus the time a post takes)."""
        self.stop.clear()
        for k in range(n):
            self.sent.setdefault(k, 0)
            t = threading.Thread(target=self._sender, args=(k, interval),
                                 name=f"soak-sm-sender-{k}", daemon=True)
            self.threads.append(t)
            t.start()

    def _sender(self, k: int, interval: float) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:  # sent[k] counts what was handed to FakeSlack
                    i = self.sent[k]
                    self.slack.events_api({"type": "soak", "k": k, "i": i})
                    self.sent[k] = i + 1
                self.stop.wait(interval)
        except BaseException as exc:  # a dead sender would silently thin the traffic
            self.errors.append(f"sender {k} died: {exc!r}")

    def stop_senders(self) -> Dict[int, int]:
        self.stop.set()
        for t in self.threads:
            t.join(10)
        self.threads = []
        return self.sent_counts()

    def burst(self, count: int) -> None:
        """``count`` events at once from sender ``-1``."""
        with self.lock:
            i0 = self.sent.setdefault(-1, 0)
            for i in range(i0, i0 + count):
                self.slack.events_api({"type": "soak", "k": -1, "i": i})
            self.sent[-1] = i0 + count

    # ------------------------------------------------------------------ faults
    def apply(self, fault: str) -> str:
        """Apply ``fault`` to the newest connection; returns what was done (for counts)."""
        slack, rng = self.slack, self.rng
        conns = [c for c in slack.socket_connections if c.hello_sent and not c.going_away]
        if not conns:
            return "skipped: no connection"
        conn = conns[-1]
        if fault == "refresh_warning":
            slack.refresh(warning_first=True, grace=rng.uniform(0.02, 0.5), to=conn)
        elif fault == "refresh_now":
            slack.refresh(warning_first=False, to=conn)
        elif fault.startswith("drop_"):
            conn.drop(fault[5:])
        elif fault.startswith("redeliver_"):
            with slack._cond:
                choices = [e for e in self.recent if e in slack._sent]
            if not choices:
                return "skipped: nothing acked yet"
            for eid in rng.sample(choices, min(len(choices), rng.randrange(1, 20))):
                slack.redeliver(eid, same_id=fault == "redeliver_same", to=conn)
                self.counts["redeliveries sent"] += 1
        elif fault == "malformed":
            ids = []
            for kind, body in rng.sample(MALFORMED, rng.randrange(1, len(MALFORMED) + 1)):
                eid = f"bad-{self.counts['malformed envelopes sent']}"
                ids.append(eid)
                with slack._cond:
                    self.malformed_ids[eid] = kind
                slack.send_envelope({"envelope_id": eid, **body}, to=conn)
                self.counts["malformed envelopes sent"] += 1
            for _, body in rng.sample(NO_ID, rng.randrange(0, len(NO_ID) + 1)):
                slack.send_envelope(body, to=conn)
                self.counts["envelopes without an id sent"] += 1
            # they are sent once (Slack would resend them, FakeSlack does not): wait for
            # their acks before a fault can end the connection they are on
            try:
                slack.wait_until(lambda: all(e in slack._acked_ids for e in ids),
                                 RECOVERY_LIMIT, "acks of malformed envelopes")
            except TimeoutError:
                if not conn.open:  # lost with their connection (a keep-alive teardown)
                    with slack._cond:
                        for eid in ids:
                            if self.malformed_ids.pop(eid, None) is not None:
                                self.counts["malformed envelopes lost with a connection"] += 1
        elif fault == "junk":
            conn.send_bytes(b"".join(text_frame(j) for j in rng.sample(JUNK, 3)))
            self.counts["junk frames sent"] += 3
        elif fault == "half_open":
            count = slack.socket_connect_count
            slack.freeze(to=conn)
            try:
                slack.wait_for_socket_connect_count(count + 1, timeout=RECOVERY_LIMIT)
            finally:
                slack.unfreeze(to=conn)
        elif fault == "burst":
            self.burst(rng.randrange(200, 2000))
        elif fault == "open_fails":
            how = rng.choice(["error", "ratelimited", "500"])
            if how == "error":
                slack.fail_next("apps.connections.open", "internal_error",
                                times=rng.randrange(1, 3))
            elif how == "ratelimited":
                slack.fail_next("apps.connections.open", "ratelimited", status=429,
                                retry_after=0.2)
            else:
                slack.fail_next("apps.connections.open", status=rng.choice([500, 503]))
            conn.drop("reset")
        else:  # pragma: no cover
            raise AssertionError(fault)
        return fault


class SmSoakManager(BaseManager):
    """Serves an :class:`SmServerSide` from a child process."""


SmSoakManager.register("SmServerSide", SmServerSide)


def start_sm_server(seed: int, ctx: Optional[Any] = None) -> Tuple[SmSoakManager, Any]:
    """Start the child process; returns the manager and a proxy of its SmServerSide."""
    import multiprocessing

    manager = SmSoakManager(ctx=ctx or multiprocessing.get_context("spawn"))
    manager.start()
    return manager, manager.SmServerSide(seed)  # type: ignore[attr-defined]


def describe(envelope: Dict[str, Any]) -> str:  # pragma: no cover (debugging aid)
    return json.dumps(envelope)[:200]
