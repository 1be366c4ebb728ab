"""Unit tests of Slack's limits in the sans-I/O core: pacing, slow-down resend, length,
splitting. No sockets, no threads: time is passed in."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import Future
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slackrtm import ErrorCode, MessageTooLongError, RTMClient, SendRate
from slackrtm._engine.core import Core, PingDue, Resolve, State, Timeouts, WriteDue
from slackrtm._engine.pacing import SLOW_INTERVALS, Bucket, Pacer, is_slow_down
from slackrtm._engine.split import MAX_MESSAGE_LENGTH, split_text
from slackrtm.errors import SendMessagePlatformError, SendWhileDisconnectedError

T = Timeouts(client_ping=1000.0, server_pong=5.0, reply=300.0, hello=10.0)
SLOW = {"code": -1, "msg": "slow down, too many messages..."}


def paced_core(rate: float = 1.0, burst: int = 3) -> Core:
    core = Core(dataclasses.replace(T), pacer=Pacer(SendRate(rate, burst)))
    core.start()
    core.opened(0.0)
    core.hello()
    return core


def send(core: Core, channel: Optional[str], text: str = "t", kind: str = "message",
         await_reply: bool = True) -> Future[Any]:
    fut: Future[Any] = Future()
    body: Dict[str, Any] = {"text": text}
    if channel is not None:
        body["channel"] = channel
    assert core.submit(kind, body, await_reply, fut) is None
    return fut


def drain(core: Core, now: float) -> List[Dict[str, Any]]:
    """Every frame ``next_write`` gives at ``now``, marked written."""
    out = []
    while True:
        item = core.next_write(now)
        if item is None:
            return out
        s, text = item
        out.append(json.loads(text))
        eff = core.written(s)
        if eff is not None:
            eff.future.set_result(None)


def texts(frames: List[Dict[str, Any]]) -> List[Tuple[Any, Any]]:
    return [(f.get("channel"), f.get("text")) for f in frames]


# -- the bucket and the pacer ------------------------------------------------------------
def test_bucket_allows_a_burst_then_the_rate() -> None:
    b = Bucket(2.0, 3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.due(0.0) == pytest.approx(0.5)
    assert not b.take(0.49) and b.take(0.5)
    assert b.take(10.0) and b.tokens == pytest.approx(2.0)  # capped at the burst


def test_bucket_slow_down_empties_and_halves_for_a_while() -> None:
    b = Bucket(1.0, 3, now=0.0)
    b.slow_down(0.0)
    assert b.due(0.0) == pytest.approx(2.0)  # half rate: one token takes two seconds
    assert not b.take(1.9) and b.take(2.0)
    later = SLOW_INTERVALS + 5.0  # back to the full rate (and a full bucket) after it
    assert [b.take(later) for _ in range(4)] == [True, True, True, False]
    assert b.due(later) == pytest.approx(later + 1.0)


def test_send_rate_is_validated() -> None:
    for bad in (dict(per_second=0), dict(per_second=-1.0), dict(per_second=float("inf")),
                dict(burst=0), dict(burst=2.5), dict(per_second=True)):
        with pytest.raises(ValueError, match="SendRate"):
            SendRate(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="send_rate"):
        RTMClient("xoxb-1", send_rate=(1.0, 3))  # type: ignore[arg-type]
    assert RTMClient("xoxb-1", send_rate=None)._core.pacer is None
    assert RTMClient("xoxb-1")._core.pacer is not None  # on by default


def test_slow_down_replies_are_recognised() -> None:
    assert is_slow_down(SLOW)
    assert is_slow_down({"msg": "Slow down, please"})
    assert not is_slow_down({"code": 2, "msg": "message text is missing"})
    assert not is_slow_down("slow down") and not is_slow_down(None)


# -- pacing in the core ------------------------------------------------------------------
def test_burst_then_one_per_interval_per_channel() -> None:
    core = paced_core(rate=1.0, burst=3)
    for i in range(5):
        send(core, "C1", f"a{i}")
    assert texts(drain(core, 0.0)) == [("C1", "a0"), ("C1", "a1"), ("C1", "a2")]
    assert core.next_deadline() == pytest.approx(1.0)
    assert drain(core, 0.5) == []
    assert texts(drain(core, 1.0)) == [("C1", "a3")]
    assert texts(drain(core, 2.0)) == [("C1", "a4")]
    assert core.pacer is not None and len(core.pacer) == 0


def test_other_channels_and_unpaced_sends_never_wait() -> None:
    core = paced_core(rate=1.0, burst=1)
    send(core, "C1", "a0")
    send(core, "C1", "a1")
    send(core, "C1", "a2")
    send(core, "C2", "b0")
    send(core, None, "p", kind="presence_sub", await_reply=False)
    send(core, "C2", "b1")
    assert texts(drain(core, 0.0)) == [("C1", "a0"), ("C2", "b0"), (None, "p")]
    assert texts(drain(core, 1.0)) == [("C1", "a1"), ("C2", "b1")]
    assert texts(drain(core, 2.0)) == [("C1", "a2")]


def test_typing_counts_against_the_same_bucket() -> None:
    core = paced_core(rate=1.0, burst=2)
    send(core, "C1", kind="typing", await_reply=False)
    send(core, "C1", "a0")
    send(core, "C1", "a1")
    frames = drain(core, 0.0)
    assert [f["type"] for f in frames] == ["typing", "message"]
    assert texts(drain(core, 1.0)) == [("C1", "a1")]


def test_pings_are_never_paced() -> None:
    core = paced_core(rate=1.0, burst=1)
    core.timeouts.client_ping = 1.0
    send(core, "C1", "a0")
    send(core, "C1", "a1")
    drain(core, 0.0)
    effects = core.tick(1.0)  # the ping and a due held send
    assert any(type(e) is PingDue for e in effects)
    frames = drain(core, 1.0)
    assert [f["type"] for f in frames] == ["message", "ping"] or \
        [f["type"] for f in frames] == ["ping", "message"]


def test_tick_signals_a_due_send_once_and_deadline_moves_on() -> None:
    core = paced_core(rate=1.0, burst=1)
    for i in range(3):
        send(core, "C1", f"a{i}")
    drain(core, 0.0)
    assert core.next_deadline() == pytest.approx(1.0)
    assert core.tick(0.5) == []
    assert [type(e) for e in core.tick(1.0)] == [WriteDue]
    assert core.tick(1.0) == [] and core.next_deadline() == T.reply  # no busy loop
    assert texts(drain(core, 1.0)) == [("C1", "a1")]
    assert core.next_deadline() == pytest.approx(2.0)
    assert core.paced_before(2.5) and not core.paced_before(1.5)


def test_a_signalled_held_send_stays_writable_until_taken() -> None:
    """The writer woken by tick() may find the write lock taken by a user thread's pump
    that already gave up: that pump must see the send is writable and loop once more."""
    core = paced_core(rate=1.0, burst=1)
    send(core, "C1", "a0")
    send(core, "C1", "a1")
    drain(core, 0.0)
    assert not core.writable()  # held, not yet due
    assert [type(e) for e in core.tick(1.0)] == [WriteDue]
    assert core.writable()
    assert texts(drain(core, 1.0)) == [("C1", "a1")]
    assert not core.writable()


def test_held_sends_wait_while_not_ready_and_survive_a_reconnect() -> None:
    core = paced_core(rate=1.0, burst=1)
    futs = [send(core, "C1", f"a{i}") for i in range(3)]
    drain(core, 0.0)
    core.transition(State.RECONNECTING)
    assert core.connection_lost(RuntimeError("lost"))  # fails the written one only
    assert not any(f.done() for f in futs[1:])
    assert core.next_deadline() is None and drain(core, 5.0) == []
    core.attempt()
    core.opened(5.0)
    core.hello()
    assert texts(drain(core, 5.0)) == [("C1", "a1")]


def test_slow_down_resends_once_first_of_its_channel_with_the_same_future() -> None:
    core = paced_core(rate=10.0, burst=3)
    futs = [send(core, "C1", f"a{i}") for i in range(3)]
    frames = drain(core, 0.0)
    first = frames[0]["id"]
    effects = core.inbound({"ok": False, "reply_to": first, "error": SLOW}, 0.01)
    assert [type(e) for e in effects] == [WriteDue] and not futs[0].done()
    send(core, "C1", "a3")
    assert drain(core, 0.01) == []  # the channel is slowed down: its bucket is empty
    due = core.next_deadline()
    assert due is not None and due == pytest.approx(0.01 + 2 / 10.0)  # half rate
    again = drain(core, due)
    assert texts(again) == [("C1", "a0")] and again[0]["id"] != first
    [eff] = core.inbound({"ok": True, "reply_to": again[0]["id"], "ts": "1.1"}, due)
    assert isinstance(eff, Resolve) and eff.future is futs[0] and eff.result["ts"] == "1.1"
    effects = core.inbound({"ok": False, "reply_to": frames[1]["id"], "error": SLOW}, due)
    assert [type(e) for e in effects] == [WriteDue] and not futs[1].done()
    later = due + 10.0
    retry = drain(core, later)
    assert texts(retry) == [("C1", "a1"), ("C1", "a3")]
    [eff] = core.inbound({"ok": False, "reply_to": retry[0]["id"], "error": SLOW}, later)
    assert isinstance(eff, Resolve) and eff.future is futs[1]
    assert isinstance(eff.error, SendMessagePlatformError)
    assert eff.error.code is ErrorCode.SendMessagePlatformError


def test_resends_keep_submission_order_in_their_channel() -> None:
    core = paced_core(rate=10.0, burst=3)
    [send(core, "C1", f"a{i}") for i in range(3)]
    ids = [f["id"] for f in drain(core, 0.0)]
    core.inbound({"ok": False, "reply_to": ids[2], "error": SLOW}, 0.0)
    core.inbound({"ok": False, "reply_to": ids[1], "error": SLOW}, 0.0)
    assert texts(drain(core, 5.0)) == [("C1", "a1"), ("C1", "a2")]


def test_without_pacing_a_slow_down_fails_the_send_as_before() -> None:
    core = Core(dataclasses.replace(T))
    core.start()
    core.opened(0.0)
    core.hello()
    fut = send(core, "C1")
    [frame] = drain(core, 0.0)
    [eff] = core.inbound({"ok": False, "reply_to": frame["id"], "error": SLOW}, 0.0)
    assert eff.future is fut and isinstance(eff.error, SendMessagePlatformError)


def test_drop_all_fails_each_held_send_once_saying_why() -> None:
    core = paced_core(rate=1.0, burst=1)
    futs = [send(core, "C1", f"a{i}") for i in range(4)] + [send(core, "C2", "b")]
    drain(core, 0.0)
    core.transition(State.DISCONNECTING)
    effects = core.drop_all("disconnected")
    by_future = {id(e.future): e for e in effects}
    assert len(effects) == len(by_future) == 5  # each once
    for fut in futs[1:4]:
        err = by_future[id(fut)].error
        assert isinstance(err, SendWhileDisconnectedError)
        assert "send rate" in str(err)
    assert core.pacer is not None and len(core.pacer) == 0
    assert core.drop_all("disconnected") == []


def test_requeued_paced_send_goes_back_first_of_its_channel() -> None:
    core = paced_core(rate=1.0, burst=2)
    send(core, "C1", "a0")
    send(core, "C1", "a1")
    item = core.next_write(0.0)
    assert item is not None
    assert core.requeue(item[0]) is None  # nothing of it was written
    assert texts(drain(core, 1.0)) == [("C1", "a0"), ("C1", "a1")]


# -- length ------------------------------------------------------------------------------
def test_too_long_text_fails_at_once_and_nothing_is_queued() -> None:
    core = paced_core()
    fut: Future[Any] = Future()
    eff = core.submit("message", {"channel": "C1", "text": "x" * 4001}, True, fut)
    assert eff is not None and isinstance(eff.error, MessageTooLongError)
    assert eff.error.code is ErrorCode.MessageTooLongError
    assert (eff.error.length, eff.error.limit) == (4001, 4000)
    assert isinstance(eff.error, ValueError) and "4001" in str(eff.error)
    assert not core.outbox
    assert core.submit("message", {"channel": "C1", "text": "x" * 4000}, True, fut) is None


# -- splitting ---------------------------------------------------------------------------
def test_split_prefers_newlines_then_spaces_then_cuts() -> None:
    assert split_text("short") == ["short"] and split_text("") == [""]
    assert split_text("aaaa\nbb\ncc", 8) == ["aaaa\nbb\n", "cc"]
    assert split_text("aaa bbb ccc", 8) == ["aaa bbb ", "ccc"]
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    assert split_text(" abcdefghij", 4) == [" abc", "defg", "hij"]  # no part of spaces alone
    assert split_text("aaaa  ", 4) == ["aaa", "a  "]  # nor blanks alone at the end
    with pytest.raises(ValueError):
        split_text("x", 0)
    with pytest.raises(TypeError, match="str"):
        split_text(None)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \n\t\u00e9\U0001f600"), max_size=200),
       st.integers(min_value=1, max_value=30))
def test_split_properties(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert "".join(parts) == text
    assert all(len(p) <= limit for p in parts)
    assert all(parts) or parts == [""]
    if len(text) <= limit:
        assert parts == [text]


def test_split_of_a_real_report_fits_slack() -> None:
    report = "\n".join(f"line {i}: " + "word " * (i % 40) for i in range(2000))
    parts = split_text(report)
    assert len(parts) > 1 and "".join(parts) == report
    assert all(len(p) <= MAX_MESSAGE_LENGTH and p.endswith("\n") for p in parts[:-1])


# -- properties of pacing ----------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["C1", "C2", "C3", None]),
                          st.floats(min_value=0.0, max_value=0.7)), min_size=1, max_size=60),
       st.floats(min_value=0.5, max_value=20.0), st.integers(min_value=1, max_value=5))
def test_pacing_properties(plan: List[Tuple[Optional[str], float]], rate: float,
                           burst: int) -> None:
    """Per-channel FIFO, never more than burst + rate*t per channel in any window, and no
    channel waits while its own bucket has a token (no cross-channel blocking)."""
    core = paced_core(rate=rate, burst=burst)
    now = 0.0
    written: Dict[Optional[str], List[Tuple[float, int]]] = {}
    n = 0

    def pump(at: float) -> None:
        for frame in drain(core, at):
            if frame["type"] == "ping":
                continue
            written.setdefault(frame.get("channel"), []).append((at, int(frame["text"])))

    for channel, gap in plan:
        now += gap
        pump(now)
        send(core, channel, str(n), kind="message" if channel else "presence_sub",
             await_reply=channel is not None)
        n += 1
        pump(now)
        if channel is None:  # unpaced: written at once
            assert written[None][-1] == (now, n - 1)
    for _ in range(10_000):  # let the rest drain, following the core's own deadlines
        due = core.next_deadline()
        if due is None or (core.pacer is not None and not core.pacer.held):
            break
        now = max(now, due)
        core.tick(now)
        pump(now)
    assert core.pacer is not None and len(core.pacer) == 0 and not core.outbox
    total = sum(len(v) for v in written.values())
    assert total == n
    for channel, seq in written.items():
        numbers = [num for _, num in seq]
        assert numbers == sorted(numbers), f"{channel} out of order"
        if channel is None:
            continue
        times = [t for t, _ in seq]
        for i in range(len(times)):
            for j in range(i, len(times)):
                assert j - i + 1 <= burst + rate * (times[j] - times[i]) + 1e-6
