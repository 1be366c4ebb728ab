"""Pinned rules of the pure modules, each written out so that a changed rule fails a test:
core timers (paused reading, Socket Mode switches), pacing arithmetic, slow-down
classification, backoff, splitting, the documented defaults, and the envelope memory.
No sockets, no threads: time is passed in."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import Future
from typing import Any, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slackrtm import Backoff, SendRate
from slackrtm._engine.core import Core, PingDue, Resolve, State, Teardown, Timeouts, WriteDue
from slackrtm._engine.pacing import SLOW_INTERVALS, Bucket, Pacer, is_slow_down
from slackrtm._engine.split import MAX_MESSAGE_LENGTH, split_text
from slackrtm._protocols.envelope import Seen, ack_text

T = Timeouts(client_ping=10.0, server_pong=5.0, reply=300.0, hello=10.0)


def ready(now: float = 0.0, rate: Any = None) -> Core:
    core = Core(dataclasses.replace(T), Backoff(jitter=False),
                pacer=Pacer(rate) if rate is not None else None)
    core.start()
    core.opened(now)
    core.hello()
    return core


def submit(core: Core, channel: str, text: str) -> Future[Any]:
    fut: Future[Any] = Future()
    assert core.submit("message", {"channel": channel, "text": text}, True, fut) is None
    return fut


def write_all(core: Core, now: float) -> List[str]:
    out = []
    while True:
        item = core.next_write(now)
        if item is None:
            return out
        send, text = item
        out.append(json.loads(text).get("text", json.loads(text)["type"]))
        core.written(send)


# ---------------------------------------------------------------- core timers
def test_paused_reading_keeps_a_held_send_due_and_nothing_else() -> None:
    """While reading is paused, keep-alive and reply deadlines stand still, but a send held
    by its channel's rate must still wake the timer at its due time."""
    core = ready(rate=SendRate(1.0, 1))
    submit(core, "C1", "a0")
    submit(core, "C1", "a1")
    assert write_all(core, 0.0) == ["a0"]  # a1 is held until t=1
    assert core.next_deadline() == pytest.approx(1.0)
    core.pause(0.5)
    assert core.next_deadline() == pytest.approx(1.0)
    assert core.tick(0.9) == []
    assert [type(e) for e in core.tick(1.0)] == [WriteDue]
    assert core.next_deadline() is None  # signalled; keep-alive and reply stand still
    assert core.tick(400.0) == []  # no reply timeout, no ping while paused
    assert write_all(core, 1.0) == ["a1"]
    core.resume(400.0)  # every deadline moves by the 399.5 s spent paused
    assert core.next_deadline() == pytest.approx(10.0 + 399.5)  # the keep-alive ping
    assert sorted(s.deadline for s in core.pending.values()) == \
        pytest.approx([300.0 + 399.5, 301.0 + 399.5])


def test_paused_reading_without_held_sends_has_no_deadline() -> None:
    core = ready()
    submit(core, "C1", "a0")
    write_all(core, 0.0)
    assert core.next_deadline() == pytest.approx(10.0)  # keep-alive before the reply
    core.pause(1.0)
    assert core.next_deadline() is None
    core.resume(3.0)
    assert core.next_deadline() == pytest.approx(12.0)


def test_a_socket_mode_switch_restarts_the_keepalive_clock() -> None:
    core = ready(now=0.0)
    assert core.next_deadline() == pytest.approx(10.0)
    assert [type(e) for e in core.tick(10.0)] == [PingDue]
    assert core.next_deadline() == pytest.approx(15.0)  # the pong deadline
    core.switched(12.0)  # a refresh: the new connection is ready at 12
    assert not any(s.type == "ping" for s in core.outbox)  # the old ping is forgotten
    assert core.next_deadline() == pytest.approx(22.0)
    assert core.tick(16.0) == []  # no teardown for the old connection's pong
    assert [type(e) for e in core.tick(22.0)] == [PingDue]


def test_a_switch_revives_a_connection_a_deadline_had_declared_dead() -> None:
    core = ready(now=0.0)
    core.tick(10.0)
    assert [type(e) for e in core.tick(15.0)] == [Teardown]
    assert core.next_deadline() is None and core.tick(100.0) == []
    core.switched(20.0)
    assert core.next_deadline() == pytest.approx(30.0)
    assert [type(e) for e in core.tick(30.0)] == [PingDue]


def test_hello_deadline_only_while_connected() -> None:
    core = Core(dataclasses.replace(T))
    core.start()
    core.opened(5.0)
    assert core.next_deadline() == pytest.approx(15.0)
    assert core.tick(14.9) == []
    effects = core.tick(15.0)
    assert [type(e) for e in effects] == [Teardown]
    assert "10 s" in str(effects[0].reason)  # type: ignore[union-attr]
    assert core.tick(16.0) == []  # once


def test_reply_deadline_fires_at_exactly_its_time_in_write_order() -> None:
    core = ready()
    futs = [submit(core, "C1", f"m{i}") for i in range(2)]
    write_all(core, 0.0)
    assert not [e for e in core.tick(299.9) if isinstance(e, Resolve)]
    effects = [e for e in core.tick(300.0) if isinstance(e, Resolve)]
    assert [e.future for e in effects] == futs


# ---------------------------------------------------------------- pacing
def test_refill_across_the_end_of_a_slow_down_period() -> None:
    b = Bucket(1.0, 20, now=0.0)
    b.slow_down(0.0)
    assert b.tokens == 0.0 and b.slow_until == pytest.approx(SLOW_INTERVALS)
    b.refill(4.0)  # half rate: 2 tokens
    assert b.tokens == pytest.approx(2.0)
    b.refill(12.0)  # 6 s at half rate (to 10), then 2 s at the full rate
    assert b.tokens == pytest.approx(2.0 + 3.0 + 2.0)
    b.refill(13.0)  # full rate from now on
    assert b.tokens == pytest.approx(8.0)


def test_slow_down_in_one_refill_spanning_its_end() -> None:
    b = Bucket(2.0, 50, now=0.0)
    b.slow_down(0.0)  # half rate (1/s) for SLOW_INTERVALS / 2 = 5 s
    b.refill(8.0)  # 5 s at 1/s, then 3 s at 2/s
    assert b.tokens == pytest.approx(5.0 + 6.0)


def test_bucket_due_times_at_half_and_full_rate() -> None:
    b = Bucket(1.0, 3, now=0.0)
    for _ in range(3):
        assert b.take(0.0)
    assert b.ready_at() == pytest.approx(1.0) and b.due(0.25) == pytest.approx(1.0)
    assert b.due(5.0) == 5.0  # a token is there: due now
    assert b.reserve(5.0) == 0.0 and b.reserve(5.0) == 0.0 and b.reserve(5.0) == 0.0
    assert b.reserve(5.0) == pytest.approx(1.0)  # in debt: the 4th waits a second
    assert b.tokens == pytest.approx(-1.0)
    b.slow_down(5.0)
    assert b.tokens == pytest.approx(-1.0)  # debt kept, never raised to 0
    assert b.due(5.0) == pytest.approx(9.0)  # two tokens at half rate


def test_slow_down_of_a_bucket_with_tokens_left_empties_it() -> None:
    b = Bucket(1.0, 3, now=0.0)
    b.slow_down(1.0)
    assert b.tokens == 0.0 and b.stamp == 1.0
    assert b.slow_until == pytest.approx(1.0 + SLOW_INTERVALS)


def test_pacer_holds_in_submission_order_and_serves_the_longest_waiting_channel() -> None:
    p: Pacer[str] = Pacer(SendRate(1.0, 1))
    assert p.admit("A", 0.0) and not p.admit("A", 0.0)
    assert p.admit("B", 0.5) and not p.admit("B", 0.5)
    p.hold("A", "a3", 3)
    p.hold("A", "a1", 1)
    p.hold("A", "a2", 2)
    p.hold("B", "b9", 9)
    assert len(p) == 4
    assert not p.admit("A", 5.0)  # a channel with held sends admits nothing new
    assert p.next_due() == pytest.approx(1.0)
    assert p.take_ready(0.99) is None
    assert p.take_ready(2.0) == "a1"  # A's token came at 1, B's at 1.5: A waited longest
    assert p.next_due() == pytest.approx(2.0)  # B's token is there since 1.5
    assert p.take_ready(2.0) == "b9"
    assert p.take_ready(2.0) is None and p.next_due() == pytest.approx(3.0)
    assert p.take_ready(3.0) == "a2"
    assert p.drain() == ["a3"] and len(p) == 0 and p.next_due() is None


def test_slow_down_classification() -> None:
    assert is_slow_down({"code": -1, "msg": "too many messages"})
    assert is_slow_down({"code": -1, "msg": "  Too Many messages in a row"})
    assert is_slow_down({"code": 2, "msg": "Slow down, please"})
    assert not is_slow_down({"code": 2, "msg": "too many messages"})
    assert not is_slow_down({"msg": "too many messages"})
    assert not is_slow_down({"code": -1, "msg": "message text is missing"})
    assert not is_slow_down({"code": -1, "msg": None})
    assert not is_slow_down({"code": -1})
    assert not is_slow_down(["slow down"])


# ---------------------------------------------------------------- defaults and backoff
def test_documented_defaults() -> None:
    assert (SendRate().per_second, SendRate().burst) == (1.0, 3)
    b = Backoff()
    assert (b.initial, b.base, b.factor, b.maximum, b.jitter) == (0.0, 1.0, 2.0, 30.0, True)
    assert b.cap(100) == 30.0
    assert SLOW_INTERVALS == 10.0
    assert MAX_MESSAGE_LENGTH == 4000
    assert dataclasses.astuple(Timeouts()) == (10.0, 5.0, 30.0, 10.0)
    assert Seen().size == 10_000  # (the window the documentation promises)


def test_backoff_factor_one_is_accepted_and_constant() -> None:
    b = Backoff(base=2.0, factor=1.0, maximum=30.0, jitter=False)
    assert [b.delay(k) for k in range(5)] == [0.0, 2.0, 2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.999)


def test_backoff_zeroes_are_valid_and_negatives_are_not() -> None:
    assert Backoff(initial=0.0, base=0.0, maximum=0.0).delay(3) == 0.0
    for name in ("initial", "base", "maximum"):
        with pytest.raises(ValueError, match=f"Backoff.{name}"):
            Backoff(**{name: -0.001})  # type: ignore[arg-type]


def test_backoff_delay_zero_is_initial_even_with_jitter() -> None:
    b = Backoff(initial=0.7, base=4.0, jitter=True)
    assert b.delay(0, rand=lambda: 0.25) == 0.7
    assert b.delay(-1, rand=lambda: 0.25) == 0.7
    assert b.cap(0) == 0.7
    assert b.delay(1, rand=lambda: 0.25) == 1.0  # 4.0 * 0.25: jitter from the first failure
    assert b.delay(2, rand=lambda: 0.5) == 4.0  # cap 8.0
    assert b.delay(1, rand=lambda: 0.0) == 0.0


def test_backoff_cap_grows_then_stops_at_the_maximum_without_overflow() -> None:
    b = Backoff(base=0.5, factor=3.0, maximum=20.0, jitter=False)
    assert [b.cap(k) for k in range(1, 6)] == [0.5, 1.5, 4.5, 13.5, 20.0]
    assert Backoff(factor=10.0).cap(10_000) == 30.0  # 10.0 ** 9999 overflows: the maximum


# ---------------------------------------------------------------- splitting
@pytest.mark.parametrize("text,limit,parts", [
    ("ab cdefgh", 5, ["ab ", "cdefg", "h"]),  # a space at offset 2 of 5
    ("a bc de fgh", 6, ["a bc ", "de fgh"]),
    ("abc\tdefgh", 6, ["abc\t", "defgh"]),  # any whitespace, not only a space
    ("ab\ncd ef", 7, ["ab\n", "cd ef"]),  # a newline wins over a later space
    ("\nab cdef", 5, ["\nab ", "cdef"]),  # the newline would leave "\n" alone: the space
    ("\n\nabcdef", 4, ["\n\nab", "cdef"]),  # only blanks before any cut: cut at the limit
    ("x  yyyyy", 4, ["x  ", "yyyy", "y"]),  # the last of a run of spaces
    ("abcd efgh ij", 5, ["abcd ", "efgh ", "ij"]),  # space exactly at the limit
])
def test_split_falls_back_to_whitespace_at_any_offset(text: str, limit: int,
                                                      parts: List[str]) -> None:
    assert split_text(text, limit) == parts


def test_split_never_ends_on_a_part_of_blanks_it_can_avoid() -> None:
    assert split_text("abc def  ", 6) == ["abc ", "def  "]
    assert split_text("abcdef ", 6) == ["abcde", "f "]
    assert split_text("a" * 4000 + " ") == ["a" * 3999, "a "]
    assert split_text("a" * 4001) == ["a" * 4000, "a"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \n\t"), max_size=120),
       st.integers(min_value=1, max_value=12))
def test_no_part_is_blanks_alone_when_another_cut_avoids_it(text: str, limit: int) -> None:
    """A part of blanks alone comes only from a window of blanks alone; a last part of
    blanks alone only when no earlier cut in the part before could give it a character."""
    parts = split_text(text, limit)
    assert "".join(parts) == text and all(len(p) <= limit for p in parts)
    start = 0
    for n, part in enumerate(parts):
        if part.isspace():
            if n < len(parts) - 1:
                assert text[start:start + limit].isspace(), (parts, n)
            elif n > 0:
                before = parts[n - 1]
                last_word = len(before.rstrip()) - 1  # cut here: the word goes along
                assert not (last_word > 0 and not before[:last_word].isspace()
                            and len(before) - last_word + len(part) <= limit), (parts, n)
        start += len(part)


# ---------------------------------------------------------------- envelopes
def fill(size: int, count: int) -> Seen:
    seen = Seen(size)
    for i in range(count):
        assert seen.check(f"e{i}", None) is False
    return seen


def test_seen_keeps_exactly_the_last_size_envelopes() -> None:
    assert fill(3, 5).check("e2", None) is True
    assert fill(3, 5).check("e4", None) is True
    assert fill(3, 5).check("e1", None) is False  # forgotten: the 4th from the end
    assert fill(1, 2).check("e1", None) is True
    assert fill(1, 2).check("e0", None) is False


def test_seen_refreshes_an_id_seen_again() -> None:
    seen = fill(3, 3)  # e0 e1 e2
    assert seen.check("e0", None) is True  # e0 is now the newest: e1 e2 e0
    assert seen.check("e3", None) is False  # e1 goes
    assert seen.check("e0", None) is True
    assert seen.check("e1", None) is False


def test_seen_matches_a_redelivery_by_event_id() -> None:
    seen = Seen(10)
    assert seen.check("env-1", "Ev1") is False
    assert seen.check("env-2", "Ev1") is True  # the same event in a new envelope
    assert seen.check("env-1", "Ev2") is True  # the same envelope
    assert seen.check("env-3", "") is False and seen.check("env-4", "") is False
    assert seen.check("env-5", 7) is False and seen.check("env-6", 7) is False


def test_ack_text_is_the_json_slack_expects() -> None:
    assert ack_text("1d7ab4d1-6b7b-4f8f-9e1b-1b1d2a5e0f3a") == \
        '{"envelope_id":"1d7ab4d1-6b7b-4f8f-9e1b-1b1d2a5e0f3a"}'
    for odd in ['a"b', "x\\y", "é", "a b", "", "x" * 201, "a\nb"]:
        assert json.loads(ack_text(odd)) == {"envelope_id": odd}
    assert json.loads(ack_text("e1", {"text": "hi"})) == {"envelope_id": "e1",
                                                          "payload": {"text": "hi"}}
    assert json.loads(ack_text("e1", {})) == {"envelope_id": "e1", "payload": {}}
    assert ack_text("e1", {"t": "é"}) == '{"envelope_id":"e1","payload":{"t":"é"}}'


def test_state_values_are_the_public_names() -> None:
    assert str(State.READY) == "ready" and f"{State.DISCONNECTING}" == "disconnecting"


# ---------------------------------------------------------------- across connections
def lose(core: Core, now: float, reconnect_at: float) -> None:
    """The connection dies at ``now``; the next one is ready at ``reconnect_at``."""
    core.connection_lost(RuntimeError("lost"))  # (the run's order: then the state)
    core.transition(State.RECONNECTING)
    core.attempt()
    core.opened(reconnect_at)
    core.hello()


def test_a_new_connection_starts_its_keepalive_clock_afresh() -> None:
    core = ready(now=0.0)
    lose(core, 50.0, 100.0)
    assert core.next_deadline() == pytest.approx(110.0)
    assert core.tick(105.0) == []


def test_a_connection_declared_dead_does_not_silence_the_next_one() -> None:
    core = ready(now=0.0)
    core.tick(10.0)
    assert [type(e) for e in core.tick(15.0)] == [Teardown]
    lose(core, 15.0, 20.0)
    assert core.next_deadline() == pytest.approx(30.0)
    assert [type(e) for e in core.tick(30.0)] == [PingDue]


def test_losing_a_connection_before_hello_leaves_no_hello_deadline() -> None:
    core = Core(dataclasses.replace(T))
    core.start()
    core.opened(0.0)
    core.connection_lost(RuntimeError("lost"))
    core.transition(State.RECONNECTING)
    assert core.next_deadline() is None  # no stale deadline to wake for (or spin on)
    assert core.failures == 1


def test_a_connection_lost_while_connecting_counts_as_a_failure() -> None:
    core = Core(dataclasses.replace(T))
    core.start()
    core.connection_lost(RuntimeError("handshake"))
    assert core.failures == 1


def test_a_pause_ends_with_its_connection() -> None:
    core = ready(now=0.0)
    core.pause(1.0)
    lose(core, 2.0, 3.0)
    assert core.next_deadline() == pytest.approx(13.0)  # not frozen on the new one


def test_resume_without_a_pause_changes_nothing() -> None:
    core = ready(now=0.0)
    core.resume(50.0)
    assert core.next_deadline() == pytest.approx(10.0)


def test_a_late_pong_of_an_old_ping_does_not_clear_a_new_one() -> None:
    core = ready(now=0.0)
    core.tick(10.0)
    item = core.next_write(10.0)
    assert item is not None and item[0].type == "ping"
    old_ping = item[0].id
    core.switched(12.0)
    assert [type(e) for e in core.tick(22.0)] == [PingDue]
    core.inbound({"reply_to": old_ping}, 23.0)  # the old connection's pong, late
    assert [type(e) for e in core.tick(27.0)] == [Teardown]


def test_held_sends_are_signalled_again_on_a_new_connection() -> None:
    core = ready(rate=SendRate(1.0, 1))
    for i in range(2):
        submit(core, "C1", f"a{i}")
    write_all(core, 0.0)
    assert [type(e) for e in core.tick(1.0)] == [WriteDue]  # a1 due; not taken yet
    lose(core, 1.5, 2.0)
    assert [type(e) for e in core.tick(2.0)] == [WriteDue]  # signalled anew
    assert write_all(core, 2.0) == ["a1"]


def test_a_held_send_not_yet_due_is_not_writable() -> None:
    core = ready(rate=SendRate(1.0, 1))
    for i in range(3):
        submit(core, "C1", f"a{i}")
    write_all(core, 0.0)
    core.tick(1.0)
    assert write_all(core, 1.0) == ["a1"]
    assert not core.writable()  # a2 is due at 2.0, only 1.0 was signalled
    core.tick(2.0)
    assert core.writable()


def test_after_drop_all_no_deadline_is_left() -> None:
    core = Core(dataclasses.replace(T))
    core.start()
    core.opened(0.0)
    core.transition(State.DISCONNECTING)
    core.drop_all("disconnected")
    core.transition(State.DISCONNECTED)
    assert core.next_deadline() is None


def test_write_failed_and_requeue_of_internal_sends_resolve_nothing() -> None:
    core = ready(now=0.0)
    core.tick(10.0)
    item = core.next_write(10.0)
    assert item is not None
    ping = item[0]
    assert core.write_failed(ping, OSError("broken")) is None
    core.presence_ids = ["U1"]
    lose(core, 11.0, 12.0)  # hello queues the presence re-subscription (internal)
    item = core.next_write(12.0)
    assert item is not None and item[0].type == "presence_sub" and item[0].future is None
    assert core.requeue(item[0], stopping=True) is None  # nothing to fail, nothing raised


def test_requeued_internal_and_unpaced_sends_go_back_first_in_line() -> None:
    core = ready(now=0.0, rate=SendRate(1.0, 3))
    core.presence_ids = None
    lose(core, 1.0, 2.0)
    fut: Future[Any] = Future()
    assert core.submit("typing", {}, False, fut) is None  # no channel: not paced
    item = core.next_write(2.0)
    assert item is not None
    assert core.requeue(item[0]) is None
    assert core.outbox and core.outbox[0] is item[0]
    core.presence_ids = ["U1"]
    lose(core, 3.0, 4.0)  # hello queues the presence re-subscription (internal)
    sub = core.next_write(4.0)
    assert sub is not None and sub[0].type == "presence_sub" and sub[0].future is None
    assert core.requeue(sub[0]) is None
    assert core.outbox[0] is sub[0]  # kept: only pings are dropped for a dead connection


def test_a_run_restarted_after_drop_all_counts_its_first_failure() -> None:
    core = ready(now=0.0)
    core.transition(State.DISCONNECTING)
    core.drop_all("disconnected")  # (no connection_lost: the run simply ended)
    core.transition(State.DISCONNECTED)
    core.start()
    core.connection_lost(RuntimeError("handshake"))
    assert core.failures == 1


def test_a_reply_to_a_message_is_no_pong_while_the_ping_waits_to_be_written() -> None:
    core = ready(now=0.0)
    submit(core, "C1", "m")
    item = core.next_write(0.0)
    assert item is not None
    msg = item[0]
    assert [type(e) for e in core.tick(10.0)] == [PingDue]  # queued, not written yet
    core.inbound({"reply_to": msg.id, "ok": True}, 11.0)  # the message's reply
    assert [type(e) for e in core.tick(15.0)] == [Teardown]  # still no pong


def test_a_reply_to_a_message_is_no_pong_once_the_ping_is_written() -> None:
    core = ready(now=0.0)
    submit(core, "C1", "m")
    item = core.next_write(0.0)
    assert item is not None
    msg = item[0]
    core.tick(10.0)
    ping = core.next_write(10.0)
    assert ping is not None and ping[0].type == "ping"
    core.inbound({"reply_to": msg.id, "ok": True}, 11.0)
    assert [type(e) for e in core.tick(15.0)] == [Teardown]


def test_a_lost_connection_forgets_keepalive_pings_only() -> None:
    core = ready(now=0.0)
    mine: Future[Any] = Future()
    assert core.submit("ping", {"note": "mine"}, True, mine) is None  # a user's own ping
    core.tick(10.0)  # and a keep-alive ping, first in line
    core.connection_lost(RuntimeError("lost"))
    assert [(s.type, s.future) for s in core.outbox] == [("ping", mine)]


def test_the_pong_is_matched_to_the_ping_not_to_a_later_internal_send() -> None:
    core = ready(now=0.0)
    core.presence_ids = ["U1"]
    lose(core, 1.0, 2.0)  # hello queues a presence re-subscription
    assert [type(e) for e in core.tick(12.0)] == [PingDue]
    written = []
    while True:
        item = core.next_write(12.0)
        if item is None:
            break
        written.append(item[0])
        core.written(item[0])
    assert [s.type for s in written] == ["ping", "presence_sub"]
    core.inbound({"reply_to": written[0].id, "type": "pong"}, 13.0)
    assert Teardown not in [type(e) for e in core.tick(17.0)]  # the pong was seen


def test_paced_before_is_strict() -> None:
    core = ready(rate=SendRate(1.0, 1))
    submit(core, "C1", "a0")
    submit(core, "C1", "a1")
    write_all(core, 0.0)
    assert not core.paced_before(1.0) and core.paced_before(1.000001)


# ---------------------------------------------------------------- web sends (chat.postMessage)
def web_send(core: Core, channel: str, text: str) -> Future[Any]:
    fut: Future[Any] = Future()
    assert core.submit("message", {"channel": channel, "text": text}, True, fut,
                       web=True) is None
    return fut


def test_a_web_send_is_handed_over_with_an_id_and_awaits_no_socket_reply() -> None:
    core = ready(rate=SendRate(1.0, 3))
    web_send(core, "C1", "w")
    item = core.next_write(0.0)
    assert item is not None
    send, text = item
    assert send.web and send.id >= 1 and text == ""  # the poster posts it
    assert core.pending == {} and core.next_deadline() == pytest.approx(10.0)


def test_http_429_holds_a_web_send_once_until_retry_after() -> None:
    core = ready(rate=SendRate(1.0, 3))
    web_send(core, "C1", "w")
    send, _ = core.next_write(0.0)  # type: ignore[misc]
    assert core.rate_limited(send, 5.0, 0.0) is True
    assert send.retried and send.id == 0
    assert core.next_write(4.9) is None  # no token before Retry-After
    again = core.next_write(5.0)
    assert again is not None and again[0] is send and send.id > 0
    assert core.rate_limited(send, 5.0, 5.0) is False  # resent once only
    unpaced = ready()
    web_send(unpaced, "C1", "w")
    item = unpaced.next_write(0.0)
    assert item is not None and unpaced.rate_limited(item[0], 5.0, 0.0) is False


def test_a_negative_retry_after_waits_for_the_slowed_rate_only() -> None:
    core = ready(rate=SendRate(10.0, 3))
    web_send(core, "C1", "w")
    send, _ = core.next_write(0.0)  # type: ignore[misc]
    assert core.rate_limited(send, -3.0, 0.0) is True
    assert core.next_write(0.19) is None
    assert core.next_write(0.2) is not None  # one token at half rate (5/s): 0.2 s


def test_http_429_while_stopping_is_not_held() -> None:
    core = ready(rate=SendRate(1.0, 3))
    web_send(core, "C1", "w")
    send, _ = core.next_write(0.0)  # type: ignore[misc]
    core.transition(State.DISCONNECTING)
    assert core.rate_limited(send, 1.0, 0.0) is False and not send.retried


def test_a_reply_to_a_message_carries_its_channel() -> None:
    core = ready()
    fut = submit(core, "C1", "m")
    send, _ = core.next_write(0.0)  # type: ignore[misc]
    effects = core.inbound({"reply_to": send.id, "ok": True, "ts": "1.0", "text": "m"}, 1.0)
    assert [e.result for e in effects if isinstance(e, Resolve)] == [
        {"reply_to": send.id, "ok": True, "ts": "1.0", "text": "m", "channel": "C1"}]
    assert effects[0].future is fut  # type: ignore[union-attr]
    typing: Future[Any] = Future()
    core.submit("typing", {"channel": "C1"}, True, typing)
    t, _ = core.next_write(1.0)  # type: ignore[misc]
    effects = core.inbound({"reply_to": t.id, "ok": True}, 2.0)
    assert effects[0].result == {"reply_to": t.id, "ok": True}  # type: ignore[union-attr]
    m2 = submit(core, "C1", "m2")
    s2, _ = core.next_write(2.0)  # type: ignore[misc]
    effects = core.inbound({"reply_to": s2.id, "ok": True, "channel": "D9"}, 3.0)
    assert effects[0].result["channel"] == "D9" and effects[0].future is m2  # type: ignore
