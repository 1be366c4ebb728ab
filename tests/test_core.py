"""Unit tests of the sans-I/O core: no sockets, no threads, an injected clock."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import Future
from typing import Any, List

import pytest

from slackrtm import Backoff, ErrorCode
from slackrtm._engine.core import (
    TRANSITIONS,
    Core,
    IllegalTransition,
    PingDue,
    Resolve,
    State,
    Teardown,
    Timeouts,
)
from slackrtm.errors import (
    NoReplyReceivedError,
    SendMessagePlatformError,
    SendWhileDisconnectedError,
    WebsocketError,
)

T = Timeouts(client_ping=10.0, server_pong=5.0, reply=30.0, hello=10.0)


def ready_core(now: float = 0.0) -> Core:
    core = Core(T, Backoff(jitter=False))
    core.start()
    core.opened(now)
    core.hello()
    return core


def write_all(core: Core, now: float) -> List[dict[str, Any]]:
    out = []
    while True:
        item = core.next_write(now)
        if item is None:
            return out
        send, text = item
        out.append(json.loads(text))
        eff = core.written(send)
        if eff is not None:
            eff.future.set_result(eff.result)


def apply(effects: List[Any]) -> None:
    for e in effects:
        assert isinstance(e, Resolve)
        if e.error is not None:
            e.future.set_exception(e.error)
        else:
            e.future.set_result(e.result)


# ---------------------------------------------------------------- state machine
#: The legal transitions, written out here on purpose (not read from TRANSITIONS): a
#: transition added to or removed from the table must fail this test.
LEGAL = {
    ("disconnected", "connecting"),
    ("connecting", "connected"), ("connecting", "reconnecting"),
    ("connecting", "disconnecting"),
    ("connected", "ready"), ("connected", "reconnecting"), ("connected", "disconnecting"),
    ("ready", "reconnecting"), ("ready", "disconnecting"),
    ("reconnecting", "connecting"), ("reconnecting", "disconnecting"),
    ("disconnecting", "disconnected"),
}


def test_every_legal_transition_and_every_illegal_one() -> None:
    assert [s.value for s in State] == ["disconnected", "connecting", "connected", "ready",
                                        "reconnecting", "disconnecting"]
    for old in State:
        for new in State:
            core = Core()
            core.state = old
            if (old.value, new.value) in LEGAL:
                core.transition(new)
                assert core.state is new
            else:
                with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
                    core.transition(new)
                assert core.state is old
    assert {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets} == LEGAL


def test_transition_hook_sees_every_change() -> None:
    seen = []
    core = Core(on_transition=lambda a, b: seen.append((a.value, b.value)))
    core.start()
    core.opened(0.0)
    core.hello()
    core.transition(State.RECONNECTING)
    core.attempt()
    core.transition(State.DISCONNECTING)
    core.transition(State.DISCONNECTED)
    assert seen == [("disconnected", "connecting"), ("connecting", "connected"),
                    ("connected", "ready"), ("ready", "reconnecting"),
                    ("reconnecting", "connecting"), ("connecting", "disconnecting"),
                    ("disconnecting", "disconnected")]


# ---------------------------------------------------------------- sending
def test_send_while_disconnected_fails_at_once() -> None:
    core = Core()
    fut: Future[Any] = Future()
    eff = core.submit("message", {"text": "x"}, True, fut)
    assert eff is not None and isinstance(eff.error, SendWhileDisconnectedError)
    assert eff.error.code is ErrorCode.SendWhileDisconnectedError
    assert "disconnected" in str(eff.error)
    assert not core.outbox


def test_sends_queue_until_ready_then_go_in_order_with_increasing_ids() -> None:
    core = Core(T)
    core.start()
    futs = [Future() for _ in range(3)]  # type: ignore[var-annotated]
    for i, f in enumerate(futs):
        assert core.submit("message", {"channel": "C1", "text": str(i)}, True, f) is None
    assert core.next_write(0.0) is None  # not ready: nothing leaves
    core.opened(0.0)
    assert core.next_write(0.0) is None
    core.hello()
    frames = write_all(core, 1.0)
    assert [f["text"] for f in frames] == ["0", "1", "2"]
    assert [f["id"] for f in frames] == [1, 2, 3]
    assert all(f["type"] == "message" for f in frames)
    assert set(core.pending) == {1, 2, 3}


def test_body_cannot_override_id_or_type() -> None:
    core = ready_core()
    fut: Future[Any] = Future()
    core.submit("typing", {"id": 999, "type": "evil", "channel": "C1"}, False, fut)
    (frame,) = write_all(core, 0.0)
    assert frame == {"id": 1, "type": "typing", "channel": "C1"}
    assert fut.done() and fut.result() is None  # resolves once written
    assert not core.pending


def test_reply_resolves_its_own_future() -> None:
    core = ready_core()
    a: Future[Any] = Future()
    b: Future[Any] = Future()
    core.submit("message", {"text": "a"}, True, a)
    core.submit("message", {"text": "b"}, True, b)
    write_all(core, 0.0)
    apply(core.inbound({"ok": True, "reply_to": 2, "ts": "2.0", "text": "b"}, 1.0))
    assert b.result()["ts"] == "2.0" and not a.done()
    apply(core.inbound({"ok": True, "reply_to": 1, "ts": "1.0", "text": "a"}, 1.0))
    assert a.result()["ts"] == "1.0"
    assert not core.pending


def test_error_reply_fails_with_platform_error() -> None:
    core = ready_core()
    fut: Future[Any] = Future()
    core.submit("message", {"text": ""}, True, fut)
    write_all(core, 0.0)
    reply = {"ok": False, "reply_to": 1, "error": {"code": 2, "msg": "message text is missing"}}
    apply(core.inbound(reply, 0.5))
    err = fut.exception()
    assert isinstance(err, SendMessagePlatformError)
    assert err.code is ErrorCode.SendMessagePlatformError
    assert err.data == reply and err.error == {"code": 2, "msg": "message text is missing"}
    assert "message text is missing" in str(err)


def test_unknown_and_late_replies_are_ignored() -> None:
    core = ready_core()
    assert core.inbound({"ok": True, "reply_to": 77}, 0.0) == []
    assert core.inbound({"ok": True, "reply_to": "1"}, 0.0) == []


def test_reply_timeout_fails_in_write_order() -> None:
    core = ready_core()
    a: Future[Any] = Future()
    b: Future[Any] = Future()
    core.submit("message", {"text": "a"}, True, a)
    write_all(core, 0.0)
    core.submit("message", {"text": "b"}, True, b)
    write_all(core, 5.0)
    core.heard(100.0)  # no ping in the way
    assert core.next_deadline() == 30.0
    assert core.tick(29.9) == []
    effects = core.tick(30.0)
    apply(effects)
    assert isinstance(a.exception(), NoReplyReceivedError) and not b.done()
    assert core.next_deadline() == 35.0
    apply(core.tick(35.0))
    assert isinstance(b.exception(), NoReplyReceivedError)
    assert b.exception().code is ErrorCode.NoReplyReceivedError  # type: ignore[union-attr]


def test_write_failure_and_requeue() -> None:
    core = ready_core()
    fut: Future[Any] = Future()
    core.submit("message", {"text": "a"}, True, fut)
    send, _ = core.next_write(0.0)  # type: ignore[misc]
    assert core.requeue(send) is None  # nothing written: goes out again, with a new id
    send2, text = core.next_write(0.0)  # type: ignore[misc]
    assert send2 is send and json.loads(text)["id"] == 2
    eff = core.write_failed(send2, OSError("broken pipe"))
    assert eff is not None and isinstance(eff.error, NoReplyReceivedError)
    assert "may or may not" in str(eff.error)
    assert not core.pending


# ---------------------------------------------------------------- keep-alive
def test_ping_after_silence_and_pong_clears_it() -> None:
    core = ready_core(now=0.0)
    core.heard(0.0)
    assert core.next_deadline() == 10.0
    assert core.tick(9.99) == []
    effects = core.tick(10.0)
    assert any(isinstance(e, PingDue) for e in effects)
    (ping,) = write_all(core, 10.0)
    assert ping["type"] == "ping" and core.ping_id == ping["id"]
    assert core.next_deadline() == 15.0
    core.inbound({"type": "pong", "reply_to": ping["id"]}, 11.0)
    core.heard(11.0)
    assert core.ping_id is None and core.ping_deadline is None
    assert core.next_deadline() == 21.0


def test_missed_pong_tears_down_even_if_ping_never_written() -> None:
    core = ready_core(now=0.0)
    core.tick(10.0)  # ping queued, writer stuck: never written
    assert core.tick(14.9) == []
    (effect,) = core.tick(15.0)
    assert isinstance(effect, Teardown) and isinstance(effect.reason, WebsocketError)
    assert "pong" in str(effect.reason)


def test_other_inbound_frames_do_not_count_as_pong() -> None:
    core = ready_core(now=0.0)
    core.tick(10.0)
    write_all(core, 10.0)
    core.heard(12.0)  # events keep coming, but no pong
    assert core.inbound({"type": "message"}, 12.0) == []
    assert isinstance(core.tick(15.0)[0], Teardown)


def test_hello_deadline() -> None:
    core = Core(T)
    core.start()
    core.opened(100.0)
    assert core.next_deadline() == 110.0
    assert core.tick(109.0) == []
    (effect,) = core.tick(110.0)
    assert isinstance(effect, Teardown) and "hello" in str(effect.reason)


# ---------------------------------------------------------------- loss, backoff, stop
def test_connection_lost_fails_written_keeps_queued_and_drops_stale_ping() -> None:
    core = ready_core()
    written: Future[Any] = Future()
    core.submit("message", {"text": "w"}, True, written)
    write_all(core, 0.0)
    core.tick(10.0)  # a ping queued
    core.transition(State.RECONNECTING)  # as the client does after the loss
    queued: Future[Any] = Future()
    core.submit("message", {"text": "q"}, True, queued)
    apply(core.connection_lost(WebsocketError("gone")))
    assert isinstance(written.exception(), NoReplyReceivedError)
    assert not queued.done()
    assert [s.type for s in core.outbox] == ["message"]
    assert core.failures == 0  # the lost connection had been ready


def test_failures_count_and_reset_at_ready() -> None:
    core = Core(T, Backoff(initial=0.0, base=1.0, factor=2.0, maximum=30.0, jitter=False))
    core.start()
    assert core.attempt_failed() == 1.0
    core.transition(State.RECONNECTING)
    core.attempt()
    assert core.attempt_failed() == 2.0
    core.transition(State.RECONNECTING)
    core.attempt()
    core.opened(0.0)  # handshake ok but no hello: still a failed attempt
    core.connection_lost(WebsocketError("no hello"))
    assert core.failures == 3 and core.reconnect_delay() == 4.0
    core.transition(State.RECONNECTING)
    core.attempt()
    core.opened(0.0)
    core.hello()
    assert core.failures == 0
    core.connection_lost(WebsocketError("lost"))
    assert core.reconnect_delay() == 0.0


def test_presence_resubscribed_once_per_ready() -> None:
    core = Core(T)
    core.start()
    fut: Future[Any] = Future()
    core.subscribe_presence(["U1", "U2"], fut)
    core.opened(0.0)
    core.hello()
    frames = write_all(core, 0.0)
    assert [f["type"] for f in frames] == ["presence_sub"]  # the queued one, not twice
    assert frames[0]["ids"] == ["U1", "U2"] and fut.done()
    core.transition(State.RECONNECTING)
    core.connection_lost(WebsocketError("x"))
    core.attempt()
    core.opened(1.0)
    core.hello()
    frames = write_all(core, 1.0)
    assert frames == [{"ids": ["U1", "U2"], "id": frames[0]["id"], "type": "presence_sub"}]


def test_drop_all_fails_everything_with_the_right_errors() -> None:
    core = ready_core()
    written: Future[Any] = Future()
    core.submit("message", {"text": "w"}, True, written)
    write_all(core, 0.0)
    queued: Future[Any] = Future()
    core.transition(State.DISCONNECTING)
    core.outbox.append(__import__("slackrtm._engine.core", fromlist=["Send"]).Send(
        "message", {}, True, queued))
    apply(core.drop_all("disconnected"))
    assert isinstance(written.exception(), NoReplyReceivedError)
    assert isinstance(queued.exception(), SendWhileDisconnectedError)
    assert not core.outbox and not core.pending


# ---------------------------------------------------------------- backoff
def test_backoff_formula() -> None:
    b = Backoff(initial=0.5, base=1.0, factor=2.0, maximum=30.0, jitter=False)
    assert [b.delay(k) for k in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert b.delay(10_000) == 30.0
    j = Backoff()
    assert j.delay(0) == 0.0
    assert j.delay(3, rand=lambda: 0.5) == 2.0
    for k in range(1, 8):
        assert 0.0 <= j.delay(k) <= min(30.0, 2.0 ** (k - 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.initial = 2.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        Backoff(factor=0.5)


def test_pause_freezes_keepalive_and_reply_deadlines() -> None:
    core = ready_core(now=0.0)
    fut: Future[Any] = Future()
    core.submit("message", {"text": "a"}, True, fut)
    write_all(core, 0.0)
    core.pause(5.0)
    assert core.next_deadline() is None
    assert core.tick(100.0) == []  # neither ping, pong nor reply deadline fires
    core.resume(100.0)
    assert core.pending[1].deadline == 125.0  # 30 s budget minus the 5 s used before
    assert core.next_deadline() == 105.0  # ping: 10 s of silence, counted without the pause
    core.pause(101.0)
    core.resume(101.0)
    assert core.tick(104.9) == []
    assert any(isinstance(e, PingDue) for e in core.tick(105.0))


def test_client_frames_are_masked_and_decode_back() -> None:
    from slackrtm._engine.transport import client_frame

    for size in (0, 1, 5, 125, 126, 65535, 65536, 70000):
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        frame = client_frame(payload, 0x1)
        assert frame[0] == 0x81 and frame[1] & 0x80
        n = frame[1] & 0x7F
        pos = 2
        if n == 126:
            n = int.from_bytes(frame[2:4], "big")
            pos = 4
        elif n == 127:
            n = int.from_bytes(frame[2:10], "big")
            pos = 10
        assert n == size
        key = frame[pos:pos + 4]
        body = frame[pos + 4:]
        assert bytes(b ^ key[i % 4] for i, b in enumerate(body)) == payload
    keys = {client_frame(b"x", 0x1)[2:6] for _ in range(2000)}
    assert len(keys) > 1990  # fresh keys, not one reused


def test_requeue_never_resends_a_failed_send_and_fails_when_stopped() -> None:
    core = ready_core()
    lost: Future[Any] = Future()
    core.submit("message", {"text": "a"}, True, lost)
    send, _ = core.next_write(0.0)  # type: ignore[misc]
    apply(core.connection_lost(WebsocketError("gone")))  # fails it before requeue
    assert core.requeue(send) is None and not core.outbox
    assert isinstance(lost.exception(), NoReplyReceivedError)

    core = ready_core()
    typing: Future[Any] = Future()
    core.submit("typing", {"channel": "C1"}, False, typing)
    send, _ = core.next_write(0.0)  # type: ignore[misc]
    eff = core.requeue(send, stopping=True)
    assert eff is not None and isinstance(eff.error, SendWhileDisconnectedError)
    assert not core.outbox
