"""The server side of the soak: FakeSlack, the resetting relay, fault injection and the
checks of what Slack received. Runs in a child process (a ``multiprocessing`` manager),
so that the soak's process holds only the client and its memory is the client's.

FakeSlack records everything it sees; its records are trimmed as the run goes (private
attributes: this is test code).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from multiprocessing.managers import BaseManager
from typing import Any, Dict, List, Optional, Tuple

from slackrtm.testing import FakeSlack
from tests.test_reliability_support import FlakyRelay, json_frame, partial_frame, text_frame

RECOVERY_LIMIT = 30.0


class ServerSide:
    """One FakeSlack behind a FlakyRelay, driven by the soak through a manager proxy."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed + 1)
        self.slack = FakeSlack()
        self.slack.message_rate = None  # the soak's clients send unpaced bursts
        self.relay = FlakyRelay(self.slack)
        self.counts: Counter[str] = Counter()
        self.violations: List[str] = []
        self.sent_n: Dict[int, int] = {}
        self.server_seen: Dict[str, bytearray] = {}
        self.server_last: Dict[Tuple[int, str], int] = {}

    # ------------------------------------------------------------------ queries
    def info(self) -> Tuple[str, str, str]:
        """(API URL through the relay, token, the general channel's id)."""
        return self.relay.api_url, self.slack.token, self.slack.channel_id("general")

    def connect_count(self) -> int:
        return self.slack.connect_count

    def newest(self) -> int:
        """The id of the newest open connection (0: none)."""
        conns = self.slack.connections
        return conns[-1].id if conns else 0

    def open_connections(self) -> int:
        return len(self.slack.connections)

    def collect(self) -> Tuple[List[str], Dict[str, int]]:
        """Violations found since the last call, and the counters so far."""
        out, self.violations = self.violations, []
        return out, dict(self.counts)

    def probes_sent(self) -> Dict[int, int]:
        return dict(self.sent_n)

    def wait_closed(self, timeout: float) -> bool:
        try:
            self.slack.wait_until(lambda: not self.slack._conns, timeout, "closed")
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.relay.close()
        self.slack.close()

    # ------------------------------------------------------------------ checks
    def trim_and_check(self) -> None:
        """Check what Slack received, then drop FakeSlack's records so that its memory
        does not grow. Each message must arrive once (a bitmap per sender thread), and
        each thread's messages in order on each connection. (Across connections, order
        is not checked: a half-open connection's buffered frames reach the server after
        the client has moved on, as the "may have been delivered" of
        NoReplyReceivedError allows.)"""
        slack = self.slack
        with slack._cond:
            batches = []
            for conn in slack._all_conns:
                batches.append((conn.id, list(conn._received)))
                conn._received.clear()
            slack._all_conns[:] = [c for c in slack._all_conns if c.open]
            slack._received.clear()
            slack._calls.clear()
            slack._unparsed.clear()
            for history in slack._ws.history.values():
                history.clear()
        for conn_id, frames in batches:
            for frame in frames:
                text = frame.get("text")
                if frame.get("type") != "message" or not isinstance(text, str):
                    continue
                tag, _, digits = text.rpartition("-")
                n = int(digits)
                seen = self.server_seen.setdefault(tag, bytearray())
                if len(seen) <= n // 8:
                    seen.extend(bytes(n // 8 + 1024 - len(seen)))
                if seen[n // 8] & (1 << (n % 8)):
                    self.violations.append(f"Slack received {text} twice")
                seen[n // 8] |= 1 << (n % 8)
                key = (conn_id, tag)
                last = self.server_last.get(key, -1)
                if n <= last:
                    self.violations.append(f"connection {conn_id}: Slack received {text} "
                                           f"after {tag}-{last}")
                self.server_last[key] = n
                self.counts["messages received by Slack"] += 1

    # ------------------------------------------------------------------ events
    def inject_probes(self, count: int) -> None:
        """``count`` probes to each open connection, numbered per connection."""
        for conn in self.slack.connections:
            n0 = self.sent_n.get(conn.id, 0)
            data = b"".join(json_frame({"type": "probe", "conn": conn.id, "n": n})
                            for n in range(n0, n0 + count))
            if conn.send_bytes(data):
                self.sent_n[conn.id] = n0 + count
                self.counts["probe events sent"] += count

    # ------------------------------------------------------------------ faults
    def apply(self, fault: str) -> None:
        slack, rng = self.slack, self.rng
        conns = slack.connections
        if not conns:
            return
        conn = conns[-1]
        if fault.startswith("drop_"):
            conn.drop(fault[5:])
        elif fault == "mid_frame":
            text = json.dumps({"type": "partial", "pad": "x" * rng.randrange(10, 100_000)})
            conn.send_bytes(partial_frame(text, rng.randrange(1, 300)))
            conn.drop(rng.choice(["reset", "fin"]))
        elif fault == "goodbye":
            slack.goodbye(to=conn)
        elif fault == "migration":
            slack.inject({"type": "team_migration_started"}, to=conn)
        elif fault == "half_open":
            count = slack.connect_count
            slack.freeze(to=conn)
            slack.wait_for_connect_count(count + 1, timeout=RECOVERY_LIMIT)
            slack.unfreeze(to=conn)
        elif fault == "before_hello":
            slack.hold_hello = True
            count = slack.connect_count
            conn.drop("fin")
            try:
                slack.wait_for_connect_count(count + 1, timeout=RECOVERY_LIMIT)
                slack.connections[-1].drop("reset")
            finally:
                slack.hold_hello = False
                slack.release_hello()
        elif fault == "handshake_503":
            slack.fail_next("websocket", "busy", status=503, times=rng.randrange(1, 3))
            conn.drop("reset")
        elif fault == "hung_handshake":
            slack.hang_handshake = True
            attempts = slack.handshake_attempts
            conn.drop("reset")
            try:
                slack.wait_until(lambda: slack.handshake_attempts > attempts, RECOVERY_LIMIT)
            finally:
                slack.hang_handshake = False
        elif fault.startswith("rtm_"):
            if fault == "rtm_500":
                slack.fail_next("rtm.connect", status=rng.choice([500, 502, 503]))
            elif fault == "rtm_429":
                slack.fail_next("rtm.connect", "ratelimited", status=429, retry_after=0.2)
            elif fault == "rtm_error":
                slack.fail_next("rtm.connect", "internal_error", times=rng.randrange(1, 4))
            else:
                slack.fail_next("rtm.connect", delay=1.5)  # the Web client times out at 1 s
            conn.drop("fin")
        elif fault == "relay_reset":
            self.relay.arm(rng.choice(["request", "response"]), times=rng.randrange(1, 3))
            conn.drop("close")
        elif fault == "between_send_and_reply":
            slack.drop_replies = True
            try:
                slack.wait_until(lambda: any(f.get("type") == "message"
                                             for f in conn._received), 5, "a send")
            except TimeoutError:
                pass
            conn.drop("reset")
            slack.drop_replies = False
        elif fault == "junk":
            junk = [b"{not json", b"[]", b"42", b"{}", b'{"type": 1}', b"\xef\xbb\xbf{}",
                    json.dumps({"reply_to": 10**9, "ok": True}).encode()]
            conn.send_bytes(b"".join(text_frame(j) for j in junk))
            slack.send_raw(b"\x00binary", binary=True, to=conn)
        elif fault == "invalid_utf8":
            conn.send_bytes(text_frame(b'{"type": "x", "t": "\xff"}'))
        elif fault == "flood":
            self.inject_probes(rng.randrange(1000, 10_000))
        elif fault == "slow_handlers":
            conn.send_bytes(b"".join(json_frame({"type": "slow"}) for _ in range(3000)))
        elif fault == "raising_handlers":
            conn.send_bytes(b"".join(json_frame({"type": "raise"}) for _ in range(200)))
        elif fault == "server_ping":
            slack.ping(b"soak", to=conn)
        else:  # pragma: no cover
            raise AssertionError(fault)


class SoakManager(BaseManager):
    """Serves a :class:`ServerSide` from a child process."""


SoakManager.register("ServerSide", ServerSide)


def start_server(seed: int, ctx: Optional[Any] = None) -> Tuple[SoakManager, Any]:
    """Start the child process; returns the manager and a proxy of its ServerSide."""
    import multiprocessing

    manager = SoakManager(ctx=ctx or multiprocessing.get_context("spawn"))
    manager.start()
    return manager, manager.ServerSide(seed)  # type: ignore[attr-defined]
