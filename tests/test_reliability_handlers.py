"""Slow, blocking and raising handlers.

The inbound-queue policy under test: handlers run on one dispatcher thread; the client
reads ahead of them by at most ``max_backlog`` events (plus one socket read), then stops
reading the socket until they catch up (TCP back-pressure on Slack; nothing is dropped),
and keep-alive and reply deadlines stand still while it is not reading. Below that
limit, a blocked handler does not stop the reader: pings, pongs and replies flow, and a
dead connection is still detected.
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from typing import Any, Callable, Dict, List

from slackrtm import NoReplyReceivedError, RTMClient
from slackrtm.testing import FakeSlack
from tests.conftest import Recorder, wait_until
from tests.test_reliability_support import Ledger, Senders

Make = Callable[..., RTMClient]


def test_a_handler_blocking_longer_than_the_ping_timeout_stops_nothing_else(
        slack: FakeSlack, make: Make) -> None:
    """The dispatcher is stuck for 3 ping timeouts: pings still go out and are answered,
    sends resolve, events keep being read (up to the backlog), no reconnect."""
    rtm = make(client_ping_timeout=0.4, server_pong_timeout=0.2, reply_timeout=1.0)
    rec = Recorder().attach(rtm, "reconnecting")
    gate = threading.Event()
    seen: List[int] = []

    @rtm.on("slow")
    def slow(event: Dict[str, Any]) -> None:
        if event["n"] == 0:
            assert gate.wait(30)
        seen.append(event["n"])

    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    slack.inject({"type": "slow", "n": 0})
    pings = len(slack.wait_for_received("ping", timeout=30))
    t0 = time.monotonic()
    replies = [rtm.send_message(f"during-{i}", channel).result(timeout=30) for i in range(20)]
    assert [r["text"] for r in replies] == [f"during-{i}" for i in range(20)]
    for n in range(1, 200):
        slack.inject({"type": "slow", "n": n})
    # while blocked: pings are answered (3 more ping timeouts pass without a reconnect)
    slack.wait_for_received("ping", pings + 3, timeout=30)
    assert time.monotonic() - t0 >= 0.4 * 2
    assert seen == [] and rec.of("reconnecting") == []
    gate.set()
    wait_until(lambda: len(seen) == 200, what="200 events after the handler unblocked")
    assert seen == list(range(200)) and slack.connect_count == 1


def test_a_dead_connection_is_detected_while_a_handler_blocks(slack: FakeSlack,
                                                              make: Make) -> None:
    """Half-open while the dispatcher is stuck (backlog below the limit): the missed pong
    is noticed on time and the client reconnects; the blocked handler's event and the
    ones after it are still delivered, once, in order."""
    rtm = make(client_ping_timeout=0.4, server_pong_timeout=0.2)
    rec = Recorder().attach(rtm, "reconnecting", "ready")
    gate, blocked = threading.Event(), threading.Event()
    seen: List[Any] = []

    @rtm.on("slow")
    def slow(event: Dict[str, Any]) -> None:
        if event["n"] == 0:
            blocked.set()
            assert gate.wait(30)
        seen.append((event["conn"], event["n"]))

    rtm.start().result(timeout=30)
    slack.inject({"type": "slow", "conn": 1, "n": 0})
    slack.inject({"type": "slow", "conn": 1, "n": 1})
    slack.ping()  # its pong proves the client read everything sent before
    conn = slack.connections[0]
    slack.wait_until(lambda: conn.ws_pongs != [], 30, "the client's pong")
    assert blocked.wait(30)
    slack.freeze()
    t0 = time.monotonic()
    slack.wait_for_connect_count(2)  # (the lifecycle events wait for the dispatcher)
    wait_until(lambda: rtm.state == "ready", what="ready on the new connection")
    assert time.monotonic() - t0 < 0.4 + 0.2 + 2.4  # (ping + pong, room for a loaded machine)
    slack.inject({"type": "slow", "conn": 2, "n": 2})
    assert seen == [] and rec.of("reconnecting") == []
    gate.set()
    wait_until(lambda: len(seen) == 3, what="three events")
    assert seen == [(1, 0), (1, 1), (2, 2)]
    assert len(rec.of("reconnecting")) == 1 and len(rec.of("ready")) == 2
    slack.unfreeze()


def test_raising_handlers_skip_nothing(slack: FakeSlack, make: Make) -> None:
    """Handlers that raise on every event, an ``error`` handler that raises too, under a
    flood with sends in flight: every other handler sees every event in order, each raise
    is reported once through ``error``, keep-alive and replies are unaffected."""
    rtm = make()
    rec = Recorder().attach(rtm, "reconnecting")
    errors: List[BaseException] = []
    seen: List[int] = []
    types: List[str] = []

    def boom(event: Dict[str, Any]) -> None:
        raise ValueError(f"boom {event['n']}")

    rtm.on("burst", boom)
    rtm.on("burst", lambda e: seen.append(e["n"]))
    rtm.on("slack_event", lambda t, e: types.append(t))
    rtm.on("slack_event", lambda t, e: 1 / 0)
    rtm.on("error", errors.append)
    rtm.on("error", lambda e: (_ for _ in ()).throw(RuntimeError("error handler fails")))
    rtm.start().result(timeout=30)
    ledger = Ledger()
    senders = Senders(rtm, ledger, slack.channel_id("general"), n=2, limit=100)
    n = 1000
    slack.send_frames([json.dumps({"type": "burst", "n": i}) for i in range(n)])
    wait_until(lambda: len(seen) == n, timeout=30, what=f"{n} events")
    senders.join()
    ledger.wait_all(timeout=10)
    outcomes = ledger.check(slack)
    assert seen == list(range(n)) and outcomes == {"ok": len(ledger)}
    wait_until(lambda: types.count("message") >= len(ledger), what="the echoes")
    assert types.count("burst") == n
    # one ValueError per burst event, one ZeroDivisionError per slack_event
    wait_until(lambda: len(errors) == n + len(types), what="every raise reported")
    assert sum(isinstance(e, ValueError) for e in errors) == n
    assert sum(isinstance(e, ZeroDivisionError) for e in errors) == len(types)
    assert rec.of("reconnecting") == [] and slack.connect_count == 1


def test_sys_exit_in_a_handler_skips_nothing(slack: FakeSlack, make: Make) -> None:
    rtm = make(max_backlog=20)
    seen: List[int] = []
    errors: List[BaseException] = []

    def leave(event: Dict[str, Any]) -> None:
        if event["n"] % 10 == 3:
            raise SystemExit("a handler called sys.exit()")

    rtm.on("probe", leave)
    rtm.on("probe", lambda e: seen.append(e["n"]))
    rtm.on("error", errors.append)
    rtm.start().result(timeout=30)
    for k in range(5):
        slack.send_frames([json.dumps({"type": "probe", "n": 10 * k + i}) for i in range(10)])
    slack.inject({"type": "probe", "n": 1000})
    try:
        wait_until(lambda: 1000 in seen, timeout=30, what="the last event")
    finally:
        assert [n for n in seen if n < 1000] == list(range(50))
    assert len(errors) == 5


def test_bounded_backlog_pauses_reading_and_drops_nothing(slack: FakeSlack,
                                                          make: Make) -> None:
    """Handlers blocked while Slack floods 30,000 events: the client holds at most
    max_backlog events (+ one socket read), memory stays bounded, nothing is dropped,
    the connection is not declared dead while reading is paused (no pong can be read),
    and a send made meanwhile does not time out while reading is paused: its reply waits
    in the socket, behind the flood.

    The reply timeout is short (0.3 s) so that the pause outlasts it several times over;
    once reading resumes, the reply's deadline runs again while the client reads through
    the 7 MB in front of it, which a loaded machine may not do within 0.3 s: then the
    send fails with NoReplyReceivedError *after* the release, as documented, and never
    before it. Every wait here is on a condition."""
    max_backlog = 200
    rtm = make(client_ping_timeout=1.0, server_pong_timeout=0.5, reply_timeout=0.3,
               max_backlog=max_backlog)
    rec = Recorder().attach(rtm, "reconnecting")
    gate = threading.Event()
    seen: List[int] = []

    @rtm.on("flood")
    def handler(event: Dict[str, Any]) -> None:
        if event["n"] == 0:
            assert gate.wait(120)
        seen.append(event["n"])

    rtm.start().result(timeout=30)
    n, pad = 30_000, "p" * 200
    slack.flood(n, lambda i: {"type": "flood", "n": i, "pad": pad})
    tracemalloc.start()  # (after building the flood: tracing that would take seconds)
    try:
        run = rtm._run
        assert run is not None
        wait_until(lambda: run.dispatcher.backlog >= max_backlog, timeout=60,
                   what="a full backlog")
        wait_until(lambda: rtm._core.paused_at is not None, timeout=60,
                   what="reading paused")
        during = rtm.send_message("while paused", slack.channel_id("general"))
        slack.wait_for_received(lambda f: f.get("text") == "while paused", timeout=60)
        peaks = []
        # a window of > ping + pong timeouts and 5 reply timeouts, all of it paused
        deadline = time.monotonic() + 1.6
        while time.monotonic() < deadline:
            peaks.append(run.dispatcher.backlog)
            time.sleep(0.02)
        assert rtm._core.paused_at is not None
        # what the client's code holds (FakeSlack's copies of the flood excluded)
        held = sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces([
            tracemalloc.Filter(True, "*/slackrtm/_*.py"),
            tracemalloc.Filter(True, "*/json/*.py")]).statistics("filename"))
    finally:
        tracemalloc.stop()
    try:
        # one socket read is at most 256 KiB (64 KiB now): ~1,100 of these ~230-byte events
        assert max(peaks) <= max_backlog + 1200, max(peaks)
        assert held < 2 * 1024 * 1024, f"{held} bytes held while paused"  # the flood: 7 MB
        assert not during.done() and rec.of("reconnecting") == []
    finally:
        gate.set()
    wait_until(lambda: len(seen) == n, timeout=120, what=f"all {n} events")
    assert seen == list(range(n))
    try:
        assert during.result(timeout=60)["text"] == "while paused"
    except NoReplyReceivedError as exc:  # the deadline ran out after the release
        assert "within 0.3 s" in str(exc), exc
    assert rec.of("reconnecting") == [] and slack.connect_count == 1
    assert [f["text"] for f in slack.received if f.get("type") == "message"] == [
        "while paused"]


def test_reconnects_do_not_use_up_the_backlog(slack: FakeSlack, make: Make) -> None:
    rtm = make(max_backlog=3)
    seen: List[int] = []
    rtm.on("probe", lambda e: seen.append(e["n"]))
    rtm.start().result(timeout=30)
    for i in range(6):
        slack.drop()
        slack.wait_for_connect_count(i + 2, timeout=30)
        wait_until(lambda: rtm.state == "ready", timeout=30, what="ready")
    slack.inject({"type": "probe", "n": 1})
    wait_until(lambda: seen == [1], timeout=30, what="an event after 6 reconnects")


def test_a_handler_may_wait_for_a_reply_while_the_backlog_is_full(slack: FakeSlack,
                                                                  make: Make) -> None:
    rtm = make(max_backlog=5, reply_timeout=1.0)
    go = threading.Event()
    got: List[Any] = []

    @rtm.on("blk")
    def handler(event: Dict[str, Any]) -> None:
        if event["n"] == 0:
            assert go.wait(30)
            try:
                got.append(rtm.send_message("from a handler", slack.channel_id("general"))
                           .result(timeout=30))
            except Exception as exc:  # TimeoutError: the deadlock
                got.append(exc)

    rtm.start().result(timeout=30)
    run = rtm._run
    assert run is not None
    slack.send_frames([json.dumps({"type": "blk", "n": i}) for i in range(100)])
    wait_until(lambda: run.dispatcher.backlog >= 100, what="the first burst read")
    slack.send_frames([json.dumps({"type": "blk", "n": i}) for i in range(100, 200)])
    try:  # the handlers are far behind: the reader has stopped reading
        wait_until(lambda: rtm._core.paused_at is not None, what="reading to pause")
    finally:
        go.set()
    wait_until(lambda: got, timeout=30, what="the handler's send to end")
    assert isinstance(got[0], dict) and got[0]["text"] == "from a handler", got
