"""Property-based tests of the sans-I/O core: a hypothesis state machine drives ``Core``
the way the client's threads do (submit, next_write/written/write_failed/requeue,
inbound frames, ticks with advancing time, hello, connection loss, backoff, disconnect)
in arbitrary interleavings and checks the core's invariants after every step.

The driver only makes calls the real driver (``slackrtm._engine.run``) can make in that state;
the core must never raise ``IllegalTransition`` for them.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from slackrtm import Backoff
from slackrtm._engine.core import (
    TRANSITIONS,
    Core,
    PingDue,
    Resolve,
    Send,
    State,
    Teardown,
    Timeouts,
)
from slackrtm.errors import (
    NoReplyReceivedError,
    SendMessagePlatformError,
    SendWhileDisconnectedError,
)

T = Timeouts(client_ping=1.0, server_pong=0.5, reply=2.0, hello=1.5)
B = Backoff(initial=0.0, base=0.1, factor=2.0, maximum=1.0, jitter=True)

#: JSON values that are no message id but look like (or compare equal to) id ``k``.
LOOK_ALIKES = [float, str, lambda k: [k], lambda k: {"id": k}]

#: Time steps: tiny, around every timeout, and long silences.
DT = st.one_of(st.sampled_from([0.0, 0.001, 0.05, 0.1, 0.2]),
               st.sampled_from([0.25, 0.49, 0.5, 0.51, 0.99, 1.0, 1.01, 1.5, 2.0, 2.01, 5.0]))


class Tracked:
    """A user's send, as the test sees it."""

    def __init__(self, seq: int, type_: str, await_reply: bool) -> None:
        self.seq = seq
        self.type = type_
        self.await_reply = await_reply
        self.future: Future[Any] = Future()
        self.resolutions = 0
        self.ids: List[int] = []  # every id it was given (a requeue gives a new one)


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.seen: List[Tuple[State, State]] = []
        self.core = Core(T, B, on_transition=lambda a, b: self.seen.append((a, b)))
        self.now = 0.0
        self.sends: List[Tracked] = []
        self.by_future: Dict[int, Tracked] = {}
        self.in_flight: Optional[Send] = None  # taken by the writer, not yet written
        self.socket_dead = False  # the transport was aborted; the reader has yet to notice
        self.assigned_ids: List[int] = []
        self.written_ids: List[int] = []
        self.taken_seq: List[int] = []  # user sends in the order the writer took them
        self.unknown_id = 10_000_000

    # ------------------------------------------------------------------ helpers
    def apply(self, effects: List[Any]) -> None:
        for e in effects:
            assert isinstance(e, Resolve), e
            tracked = self.by_future.get(id(e.future))
            assert tracked is not None, "an internal send's future surfaced"
            assert not e.future.done(), f"send {tracked.seq} resolved twice"
            tracked.resolutions += 1
            if e.error is not None:
                e.future.set_exception(e.error)
            else:
                e.future.set_result(e.result)

    def write_failed_effects(self, send: Send, error: BaseException) -> List[Resolve]:
        """``write_failed``; a send answered before its write returned is already done
        (the client's apply() skips done futures, and so does this)."""
        effect = self.core.write_failed(send, error)
        assert send.id not in self.core.pending
        if send.future is None:
            assert effect is None
            return []
        if send.future.done():
            return []
        assert effect is not None and isinstance(effect.error, NoReplyReceivedError)
        return [effect]

    def transition(self, new: State) -> None:
        self.core.transition(new)  # raises IllegalTransition: a failure

    def queued_user_futures(self) -> List[int]:
        return [id(s.future) for s in self.core.outbox if s.future is not None]

    def connection_up(self) -> bool:
        return self.core.state in (State.CONNECTED, State.READY)

    # ------------------------------------------------------------------ run lifecycle
    @initialize(where=st.sampled_from(["disconnected", "ready", "ready", "ready"]),
                queued=st.integers(0, 4))
    def begin(self, where: str, queued: int) -> None:
        """Most runs start ready with a few sends queued: the busy part of the protocol."""
        if where == "ready":
            self.start()
            for _ in range(queued):
                self.submit(True, "message", [])
            self.handshake_done()
            self.hello()

    @precondition(lambda self: self.core.state is State.DISCONNECTED)
    @rule()
    def start(self) -> None:
        self.core.start()
        assert self.core.failures == 0

    @precondition(lambda self: self.core.state is State.CONNECTING)
    @rule()
    def handshake_done(self) -> None:
        self.core.opened(self.now)
        self.socket_dead = False
        assert self.core.hello_deadline == self.now + T.hello

    @precondition(lambda self: self.core.state is State.CONNECTING)
    @rule(rate_limited=st.booleans(), roll=st.integers(0, 2))
    def attempt_fails(self, rate_limited: bool, roll: int) -> None:
        if roll:
            return
        before = self.core.failures
        delay = self.core.attempt_failed()
        assert self.core.failures == before + 1
        assert 0.0 <= delay <= B.cap(before + 1) <= B.maximum
        if rate_limited:
            delay = max(delay, 0.7)
        self.transition(State.RECONNECTING)

    @precondition(lambda self: self.core.state is State.RECONNECTING)
    @rule(dt=DT)
    def backoff_over(self, dt: float) -> None:
        self.now += dt
        self.core.attempt()

    @precondition(lambda self: self.core.state is State.CONNECTED and not self.socket_dead)
    @rule()
    def hello(self) -> None:
        queued = self.queued_user_futures()
        self.core.heard(self.now)
        self.core.hello()
        assert self.core.failures == 0 and self.core.hello_deadline is None
        assert self.queued_user_futures() == queued
        if self.core.presence_ids is not None:
            # re-subscribed once: first in line, unless the user's own is queued already
            subs = [s for s in self.core.outbox if s.type == "presence_sub"]
            internal = [s for s in subs if s.future is None]
            assert subs and len(internal) <= 1
            assert not internal or self.core.outbox[0] is internal[0]

    @precondition(lambda self: self.connection_up())
    @rule(roll=st.integers(0, 2))
    def connection_lost(self, roll: int = 0) -> None:
        """The reader noticed the loss (after a drop, a teardown or goodbye)."""
        if roll and not self.socket_dead:
            return  # rarer than the rest, unless the socket is dead already
        queued = self.queued_user_futures()
        pending = [s.future for s in self.core.pending.values() if s.future is not None]
        if self.in_flight is not None:  # the writer's write failed when the socket went
            send, self.in_flight = self.in_flight, None
            self.apply(self.write_failed_effects(send, OSError("gone")))
        self.apply(self.core.connection_lost(OSError("lost")))
        assert not self.core.pending
        assert self.queued_user_futures() == queued, "a queued send was lost"
        assert not any(s.type == "ping" and s.future is None for s in self.core.outbox)
        for fut in pending:
            assert fut is not None and isinstance(fut.exception(0), NoReplyReceivedError)
        delay = self.core.reconnect_delay()
        assert 0.0 <= delay <= B.maximum
        self.socket_dead = False
        self.transition(State.RECONNECTING)

    @precondition(lambda self: self.core.state is not State.DISCONNECTED)
    @rule(roll=st.integers(0, 3))
    def disconnect(self, roll: int) -> None:
        if roll == 0:  # rarer than the rest, so that runs get somewhere
            self._disconnect()

    @rule()
    def progress(self) -> None:
        """The next step of a healthy run (biases runs towards ready and writing)."""
        state = self.core.state
        if state is State.DISCONNECTED:
            self.start()
        elif state is State.CONNECTING:
            self.handshake_done()
        elif state is State.CONNECTED and not self.socket_dead:
            self.hello()
        elif state is State.RECONNECTING:
            self.backoff_over(0.0)
        elif state is State.READY and not self.socket_dead:
            if self.in_flight is not None:
                self.written()
            elif self.core.writable():
                self.take_write()
            elif self.core.pending:
                sid = next(iter(self.core.pending))
                self.core.heard(self.now)
                self.apply(self.core.inbound({"ok": True, "reply_to": sid}, self.now))
            else:
                self.submit(True, "message", [])

    def _disconnect(self) -> None:
        if self.core.state is not State.DISCONNECTING:
            self.transition(State.DISCONNECTING)
        pending = {id(s.future) for s in self.core.pending.values() if s.future is not None}
        queued = set(self.queued_user_futures())
        if self.in_flight is not None:
            send, self.in_flight = self.in_flight, None
            self.apply(self.write_failed_effects(send, OSError("closing")))
        self.apply(self.core.drop_all("disconnected"))
        self.transition(State.DISCONNECTED)
        assert not self.core.pending and not self.core.outbox
        for s in self.sends:
            if id(s.future) in pending:
                assert isinstance(s.future.exception(0), NoReplyReceivedError)
            elif id(s.future) in queued:
                assert isinstance(s.future.exception(0), SendWhileDisconnectedError)
        self.socket_dead = False

    # ------------------------------------------------------------------ sending
    @rule(await_reply=st.booleans(),
          kind=st.sampled_from(["message", "message", "typing", "custom", "presence_sub"]),
          ids=st.lists(st.sampled_from(["U1", "U2", "U3"]), max_size=3))
    def submit(self, await_reply: bool, kind: str, ids: List[str]) -> None:
        presence = kind == "presence_sub"
        t = Tracked(len(self.sends), kind, await_reply and not presence)
        self.sends.append(t)
        self.by_future[id(t.future)] = t
        started = self.core.started
        if presence:
            failed = self.core.subscribe_presence(ids, t.future)
        else:
            failed = self.core.submit(kind, {"channel": "C1", "text": f"s{t.seq}"},
                                      await_reply, t.future)
        if started:
            assert failed is None and self.core.outbox[-1].future is t.future
            if presence:
                assert self.core.presence_ids == ids
        else:
            assert failed is not None
            self.apply([failed])
            assert isinstance(t.future.exception(0), SendWhileDisconnectedError)

    @precondition(lambda self: self.in_flight is None and not self.socket_dead)
    @rule()
    def take_write(self) -> None:
        writable = self.core.writable()
        item = self.core.next_write(self.now)
        assert (item is not None) == writable
        if item is None:
            return
        send, text = item
        frame = json.loads(text)
        assert frame["id"] == send.id and frame["type"] == send.type
        assert not self.assigned_ids or send.id > self.assigned_ids[-1]
        self.assigned_ids.append(send.id)
        if send.future is not None:
            t = self.by_future[id(send.future)]
            t.ids.append(send.id)
            if not self.taken_seq or self.taken_seq[-1] != t.seq:
                self.taken_seq.append(t.seq)
            assert not send.future.done()
            if send.await_reply:
                assert send.id in self.core.pending
                assert send.deadline == self.now + T.reply
        else:
            assert send.id not in self.core.pending
        self.in_flight = send

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def written(self) -> None:
        send, self.in_flight = self.in_flight, None
        assert send is not None
        self.written_ids.append(send.id)
        effect = self.core.written(send)
        if effect is not None:
            self.apply([effect])
        if send.future is not None:
            done = send.future.done()
            if send.await_reply:
                assert done == (send.id not in self.core.pending)
            else:
                assert done and send.future.result(0) is None

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def write_failed(self) -> None:
        """Writing broke midway: the send fails (maybe delivered), the socket is aborted."""
        send, self.in_flight = self.in_flight, None
        assert send is not None
        self.apply(self.write_failed_effects(send, OSError("broken pipe")))
        self.socket_dead = True

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def not_written(self) -> None:
        """The socket was already torn down: nothing written, the send goes back first."""
        send, self.in_flight = self.in_flight, None
        assert send is not None
        if send.future is not None and send.future.done():
            # its reply came before the write returned: it was written after all
            self.written_ids.append(send.id)
            return
        assert self.core.requeue(send) is None  # the client is started: nothing fails
        assert all(p is not send for p in self.core.pending.values())
        if send.future is None and send.type == "ping":
            # a ping for a torn-down connection is dropped: the next one gets its own
            assert all(s is not send for s in self.core.outbox)
            self.socket_dead = True
            return
        assert self.core.outbox[0] is send and send.id == 0
        if send.future is not None:
            t = self.by_future[id(send.future)]
            if self.taken_seq and self.taken_seq[-1] == t.seq:
                self.taken_seq.pop()
        self.socket_dead = True

    # ------------------------------------------------------------------ receiving
    @precondition(lambda self: self.connection_up() and not self.socket_dead and (
        bool(self.core.pending) or self.core.ping_id is not None))
    @rule(data=st.data(), ok=st.booleans())
    def reply(self, data: st.DataObject, ok: bool) -> None:
        """A reply to a written (or being-written) message, or a pong."""
        candidates = list(self.core.pending)
        if self.core.ping_id is not None:
            candidates.append(self.core.ping_id)
        candidates += self.written_ids[-3:]
        if not candidates:
            return
        reply_to = data.draw(st.sampled_from(candidates))
        send = self.core.pending.get(reply_to)
        was_ping = reply_to == self.core.ping_id
        frame: Dict[str, Any] = {"ok": ok, "reply_to": reply_to}
        if not ok:
            frame["error"] = {"code": 2, "msg": "message text is missing"}
        self.core.heard(self.now)
        effects = self.core.inbound(frame, self.now)
        if was_ping:
            assert self.core.ping_id is None and self.core.ping_deadline is None
        if send is None or send.future is None:
            assert effects == []
            return
        assert len(effects) == 1 and effects[0].future is send.future
        assert reply_to not in self.core.pending
        self.apply(effects)
        if ok:
            assert send.future.result(0)["reply_to"] == reply_to
        else:
            err = send.future.exception(0)
            assert isinstance(err, SendMessagePlatformError) and err.data is frame

    @precondition(lambda self: self.connection_up() and not self.socket_dead)
    @rule(frame=st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["message", "error", "pong", "x"])}),
        st.fixed_dictionaries({"reply_to": st.one_of(
            st.integers(-5, 10_000_100), st.text(max_size=3), st.none(), st.floats(),
            st.lists(st.integers(), max_size=2))}),
    ))
    def other_frame(self, frame: Dict[str, Any]) -> None:
        """Events, errors, pongs and replies to ids that were never pending."""
        reply_to = frame.get("reply_to")
        if reply_to is not None and not isinstance(reply_to, bool) and \
                isinstance(reply_to, int) and reply_to in self.core.pending:
            return  # a real reply: the rule above covers those
        pending_before = dict(self.core.pending)
        self.core.heard(self.now)
        effects = self.core.inbound(frame, self.now)
        if reply_to is None:
            assert effects == []
        assert [e for e in effects if e.future is not None] == effects
        self.apply(effects)
        assert self.core.pending == pending_before  # (JSON true is not message id 1)

    @precondition(lambda self: self.connection_up() and not self.socket_dead
                  and bool(self.core.pending))
    @rule(data=st.data())
    def look_alike_reply(self, data: st.DataObject) -> None:
        """``reply_to`` that equals a pending id in Python but is no JSON integer."""
        k = data.draw(st.sampled_from(sorted(self.core.pending)))
        reply_to = data.draw(st.sampled_from(LOOK_ALIKES))(k)
        pending_before = dict(self.core.pending)
        self.core.heard(self.now)
        assert self.core.inbound({"ok": True, "reply_to": reply_to}, self.now) == []
        assert self.core.pending == pending_before

    # ------------------------------------------------------------------ timers
    @rule(dt=DT)
    def tick(self, dt: float) -> None:
        self.now += dt
        due = self.core.next_deadline()
        pending_before = dict(self.core.pending)
        effects = self.core.tick(self.now)
        if due is None or self.now < due:
            assert effects == [], f"tick before the next deadline ({due}) did {effects}"
        elif self.now - due > 1e-9:  # (float rounding: a few ns of spinning are harmless)
            # a passed deadline always does something, or the keep-alive thread would spin
            assert effects, f"deadline {due} passed at {self.now} and tick did nothing"
        resolves = [e for e in effects if isinstance(e, Resolve)]
        for e in resolves:
            t = self.by_future[id(e.future)]
            sid = t.ids[-1]
            assert sid in pending_before and pending_before[sid].deadline <= self.now
            assert isinstance(e.error, NoReplyReceivedError)
        self.apply(resolves)
        for sid, send in pending_before.items():
            if send.deadline > self.now:
                assert sid in self.core.pending
        if self.core.paused_at is None and not self.core.dead:
            late = [s.id for s in self.core.pending.values() if s.deadline <= self.now]
            assert not late, f"sends {late} outlived their reply deadline"
        if any(isinstance(e, Teardown) for e in effects):
            assert self.connection_up()
            self.socket_dead = True  # the keep-alive thread aborts the transport
        if any(isinstance(e, PingDue) for e in effects):
            assert self.core.outbox[0].type == "ping" and self.core.ping_deadline is not None

    @precondition(lambda self: self.core.state is State.READY and not self.socket_dead)
    @rule(dt=DT)
    def handlers_fall_behind(self, dt: float) -> None:
        """The reader pauses for ``dt`` (backlog full): deadlines stand still meanwhile."""
        deadline = self.core.next_deadline()
        self.core.pause(self.now)
        assert self.core.next_deadline() is None and self.core.tick(self.now + 100) == []
        self.now += dt
        self.core.resume(self.now)
        after = self.core.next_deadline()
        if deadline is not None:
            assert after is not None and abs(after - (deadline + dt)) < 1e-9

    # ------------------------------------------------------------------ invariants
    @invariant()
    def pending_subset_of_written_and_in_order(self) -> None:
        keys = list(self.core.pending)
        assert keys == sorted(keys)
        assigned = set(self.assigned_ids)
        assert set(keys) <= assigned
        for sid, send in self.core.pending.items():
            assert send.id == sid and send.await_reply and send.future is not None
            assert not send.future.done()

    @invariant()
    def ids_unique_and_increasing(self) -> None:
        assert self.written_ids == sorted(set(self.written_ids))
        assert self.assigned_ids == sorted(set(self.assigned_ids))
        assert self.core.next_id > (self.assigned_ids[-1] if self.assigned_ids else 0)

    @invariant()
    def sends_taken_in_submission_order(self) -> None:
        assert self.taken_seq == sorted(self.taken_seq)

    @invariant()
    def every_future_is_where_it_should_be(self) -> None:
        queued = {id(s.future) for s in self.core.outbox if s.future is not None}
        pending = {id(s.future) for s in self.core.pending.values()}
        flying = {id(self.in_flight.future)} if self.in_flight is not None and \
            self.in_flight.future is not None else set()
        for t in self.sends:
            key = id(t.future)
            assert t.resolutions <= 1
            if key in queued or key in pending:
                assert not t.future.done(), f"send {t.seq} resolved but still held"
            elif key not in flying:
                assert t.future.done(), f"send {t.seq} is held nowhere and never resolved"

    @invariant()
    def only_legal_transitions(self) -> None:
        for old, new in self.seen:
            assert new in TRANSITIONS[old]
        assert self.core.started == (self.core.state not in (State.DISCONNECTED,
                                                             State.DISCONNECTING))
        if self.core.state is not State.DISCONNECTED:
            return
        assert not self.core.outbox and not self.core.pending

    def teardown(self) -> None:
        if self.core.state is not State.DISCONNECTED:
            self._disconnect()
        for t in self.sends:
            assert t.future.done() and t.resolutions == 1, f"send {t.seq} not resolved once"
            err = t.future.exception(0)
            assert err is None or isinstance(err, (NoReplyReceivedError,
                                                   SendMessagePlatformError,
                                                   SendWhileDisconnectedError)), err


CoreMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestCoreProperties = CoreMachine.TestCase


def test_json_true_is_no_message_id() -> None:
    core = Core(T, B)
    core.start()
    core.opened(0.0)
    core.hello()
    fut: Future[Any] = Future()
    core.submit("message", {"text": "x"}, True, fut)
    item = core.next_write(0.0)
    assert item is not None and item[0].id == 1
    assert core.inbound({"ok": True, "reply_to": True}, 0.0) == []
    assert 1 in core.pending


# ---------------------------------------------------------------------------------------
# The transport's frame parser: however the byte stream is cut into socket reads (inside
# a header, an extended length, a payload, a UTF-8 character), the same messages come
# out, in order; control frames between fragments are answered, not delivered; and the
# messages before a close frame are delivered before the connection ends.

def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((first, n))
    elif n < 65536:
        head = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + n.to_bytes(8, "big")
    return head + payload


PAYLOAD_SIZES = st.sampled_from([0, 1, 125, 126, 127, 200, 65535, 65536, 70_000])


@st.composite
def messages(draw: st.DrawFn) -> Tuple[bytes, Tuple[Optional[str], Optional[bytes]],
                                       List[int]]:
    """One message as wire bytes (maybe fragmented, pings in between), as parsed, and the
    offsets where its frames start."""
    if draw(st.booleans()):
        text = draw(st.text(max_size=40))
        if draw(st.booleans()):  # pad to a size around a length-encoding boundary
            text += "x" * max(0, draw(PAYLOAD_SIZES) - len(text.encode()))
        payload, opcode, parsed = text.encode(), 0x1, (text, None)
    else:
        payload = draw(st.binary(max_size=40)) + bytes(draw(PAYLOAD_SIZES))
        opcode, parsed = 0x2, (None, payload)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(payload)), max_size=3))))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
    wire = b""
    starts = []
    for i, piece in enumerate(pieces):
        starts.append(len(wire))
        wire += _frame(opcode if i == 0 else 0x0, piece, fin=i == len(pieces) - 1)
        if i < len(pieces) - 1 and draw(st.booleans()):
            starts.append(len(wire))
            wire += _frame(0x9, draw(st.binary(max_size=125)))  # a ping between fragments
    return wire, parsed, starts


def _read_all(chunks: List[bytes]) -> Tuple[List[Any], str]:
    """Feed ``chunks`` to a Transport as successive socket reads; return what it read and
    how it ended."""
    import socket

    from slackrtm._engine.transport import Transport
    from slackrtm.errors import WebsocketError

    ours, peer = socket.socketpair()  # pongs and the close reply go to ``peer``
    peer.setblocking(False)

    class _Ws:
        sock = ours

    transport = Transport(_Ws(), "ws://test")
    feed = iter(chunks)

    def fill() -> None:  # one "socket read" per chunk
        try:
            transport._buf += next(feed)
        except StopIteration:
            raise WebsocketError("end of the stream") from None

    transport._fill = fill  # type: ignore[method-assign]
    out: List[Any] = []
    try:
        while True:
            try:
                out += transport.read()
            except WebsocketError as exc:
                return out, str(exc)
    finally:
        ours.close()
        peer.close()


def test_every_cut_inside_a_frame_header() -> None:
    """Each length encoding (7, 16 and 64 bits), cut at every byte of its header."""
    for size in (5, 126, 65536):
        text = "h" * size
        wire = _frame(0x1, text.encode()) + _frame(0x1, b"{}")
        for cut in range(1, 12):
            out, _ = _read_all([wire[:cut], wire[cut:]])
            assert out == [(text, None), ("{}", None)], (size, cut)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=st.lists(messages(), max_size=8), data=st.data(),
       end=st.sampled_from(["close", "eof"]))
def test_frame_parser_is_independent_of_how_reads_cut_the_stream(
        stream: List[Tuple[bytes, Any, List[int]]], data: st.DataObject, end: str) -> None:
    wire = b""
    starts: List[int] = []
    for w, _, offsets in stream:
        starts += [len(wire) + o for o in offsets]
        wire += w
    if end == "close":
        starts.append(len(wire))
        wire += _frame(0x8, (1001).to_bytes(2, "big"))
    # reads that end anywhere, and especially inside a frame's header (1 to 11 bytes in)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6))
    if starts:
        cuts += [starts[i] + k for i, k in data.draw(st.lists(st.tuples(
            st.integers(0, len(starts) - 1), st.integers(1, 11)), max_size=12))]
    cuts = sorted(c for c in set(cuts) if 0 < c < len(wire))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)]) if b > a]
    out, ended = _read_all(chunks)
    assert out == [parsed for _, parsed, _ in stream]
    assert ("closed the connection (code 1001" in ended) == (end == "close"), ended
