"""The sans-I/O core of both clients (RTM and Socket Mode).

Every protocol rule and every piece of connection state lives here: the state machine,
message ids, the queue of sends waiting for ``ready``, the table of written sends waiting
for their reply, ping/pong bookkeeping, the hello deadline and backoff arithmetic. It owns
no socket, thread or clock: callers pass the time in and get *effects* back, which they
carry out outside any lock (resolving futures runs user callbacks).

Two rules keep it that way (after h11's ``_state.py``):

Rule 1: everything that changes the core's state lives in this file and its sending half,
``sending.py``; the vocabulary (states, the transition table, sends, effects) is in
``states.py``. Nothing else assigns a field of :class:`Core`: the run and the facades call
its methods (``core.heard(now)``, ``core.hello()``), and its settings come in through the
constructor (``Core(timeouts, backoff, pacer=...)``). Reading a field is fine.

Rule 2: the core is not thread-safe by itself; the client serialises every call with one
lock, and effects returned are carried out after releasing it.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional

from slackrtm._engine.backoff import Backoff
from slackrtm._engine.pacing import Pacer, is_slow_down, paced_channel
from slackrtm._engine.sending import Sending
from slackrtm._engine.states import (
    RECONNECT_EVENTS,
    TRANSITIONS,
    Effect,
    IllegalTransition,
    PingDue,
    Resolve,
    Send,
    State,
    Teardown,
    Timeouts,
    WakeWriter,
    WriteDue,
)
from slackrtm.errors import (
    NoReplyReceivedError,
    SendMessagePlatformError,
    SendWhileDisconnectedError,
    WebsocketError,
)

__all__ = ["RECONNECT_EVENTS", "TRANSITIONS", "Core", "Effect", "IllegalTransition",
           "PingDue", "Resolve", "Send", "State", "Teardown", "Timeouts", "WakeWriter",
           "WriteDue"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass
class Core(Sending):
    """State and rules of one client, across all its runs and connections."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    backoff: Backoff = field(default_factory=Backoff)
    state: State = State.DISCONNECTED
    next_id: int = 1
    outbox: Deque[Send] = field(default_factory=deque)
    pending: Dict[int, Send] = field(default_factory=dict)
    failures: int = 0
    failures_before_ready: int = 0  # the failure count when the connection became ready
    ready_at: Optional[float] = None  # when it did (None: unknown, or not ready)
    presence_ids: Optional[List[str]] = None
    reached_ready: bool = False
    last_inbound: float = 0.0
    ping_id: Optional[int] = None
    ping_deadline: Optional[float] = None
    hello_deadline: Optional[float] = None
    paused_at: Optional[float] = None
    dead: bool = False  # torn down by a deadline; the reader has yet to notice
    on_transition: Optional[Callable[[State, State], None]] = None
    #: Told ``(kind, message)`` of anything odd in what the server sent (the client logs
    #: each kind once at WARNING).
    on_odd: Optional[Callable[[str, str], None]] = None
    #: Removes secrets from server text put into error messages (the client's redaction).
    redact: Callable[[str], str] = field(default=lambda text: text)
    #: Per-channel pacing of sends (``RTMClient(send_rate=...)``); None: no pacing.
    pacer: Optional[Pacer[Send]] = None
    next_seq: int = 1
    paced_signalled: Optional[float] = None  # the held send's due time already signalled

    # ----------------------------------------------------------------- state machine
    def transition(self, new: State) -> None:
        """Move to ``new``; raise :class:`IllegalTransition` unless the table allows it."""
        old = self.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"illegal state transition {old.value} -> {new.value}")
        self.state = new
        if self.on_transition is not None:
            self.on_transition(old, new)

    def start(self) -> None:
        """A run begins: the first connection attempt starts."""
        self.transition(State.CONNECTING)
        self.failures = 0
        self.failures_before_ready = 0
        self.ready_at = None

    def attempt(self) -> None:
        """A new connection attempt starts after a backoff wait."""
        self.transition(State.CONNECTING)

    def opened(self, now: float) -> None:
        """The WebSocket handshake completed: wait for ``hello`` until the deadline."""
        self.transition(State.CONNECTED)
        self.reached_ready = False
        self.last_inbound = now
        self.hello_deadline = now + self.timeouts.hello
        self.ping_id = None
        self.ping_deadline = None
        self.dead = False

    def attempt_failed(self) -> float:
        """An attempt (rtm.connect or handshake) failed: the failure count grows.

        Returns the backoff delay before the next attempt.
        """
        self.failures += 1
        return self.backoff.delay(self.failures)

    # ----------------------------------------------------------------- receiving
    def heard(self, now: float) -> None:
        """Something arrived on the current connection: the keep-alive's silence restarts.

        A single float store, so a reader may call it without the lock (the keep-alive
        thread reads it under the lock and sees this or the previous time)."""
        self.last_inbound = now

    def inbound(self, frame: Dict[str, Any], now: float) -> List[Effect]:
        """A parsed frame arrived (the caller calls :meth:`heard` too); match replies.

        Only ``"ok": true`` is a success (a ``pong`` answering a ping has no ``ok``);
        ``"ok": "false"``, an ``error`` without ``ok``, or no ``ok`` at all fail the send.
        Anything odd is reported through :attr:`on_odd`.
        """
        reply_to = frame.get("reply_to")
        if type(reply_to) is not int:  # JSON true, 1.0 or "1" is no message id
            if reply_to is not None or "reply_to" in frame:
                self._odd(f"reply_to:{type(reply_to).__name__}",
                          f"ignored a reply whose reply_to is {_shown(reply_to)} "
                          f"({type(reply_to).__name__}), not a message id")
            return []
        if reply_to == self.ping_id and self.ping_id is not None:
            self.ping_id = None
            self.ping_deadline = None
        send = self.pending.pop(reply_to, None)
        if send is None or send.future is None:
            return []
        ok = frame.get("ok")
        if ok is not True and ok is not False:
            if "ok" in frame:
                self._odd(f"ok:{type(ok).__name__}",
                          f"a reply's ok is {_shown(ok)} ({type(ok).__name__}), not true or "
                          "false: taken as a failure")
            elif "error" in frame:
                self._odd("ok:missing-with-error",
                          "a reply has an error but no ok: taken as a failure")
            elif frame.get("type") == "pong" and send.type == "ping":
                ok = True  # the answer to a ping carries no ok
            else:
                self._odd("ok:missing", "a reply has no ok: taken as a failure")
        if ok is not True:
            error = frame.get("error", f"the reply's ok is {_shown(ok)}")
            channel = paced_channel(send.body) if self.pacer is not None else None
            if channel is not None and self.pacer is not None and not send.retried \
                    and is_slow_down(error) and self.started:
                send.retried, send.id, send.deadline = True, 0, 0.0
                self.pacer.slow_down(channel, now)
                self.pacer.hold(channel, send, send.seq)  # resent once, first of its channel
                return [WriteDue()]
            msg = error.get("msg") if isinstance(error, dict) else error
            err = SendMessagePlatformError(self.redact(
                f"Slack refused message {send.id} ({send.type}): {msg}"), data=frame)
            return [Resolve(send.future, error=err)]
        if send.type == "message" and "channel" not in frame and "channel" in send.body:
            frame["channel"] = send.body["channel"]  # as chat.postMessage's answer has it
        return [Resolve(send.future, result=frame)]

    def _odd(self, kind: str, message: str) -> None:
        if self.on_odd is not None:
            self.on_odd(kind, message)

    def hello(self, now: Optional[float] = None) -> None:
        """``hello`` arrived: the connection is ready; presence is re-subscribed.

        The failure count starts over, but the failures before this ready are kept
        aside: a connection lost within ``backoff.healthy_after`` seconds of ``now``
        brings them back, plus one (see :meth:`connection_lost`)."""
        self.transition(State.READY)
        self.reached_ready = True
        self.failures_before_ready = self.failures
        self.failures = 0
        self.ready_at = now
        self.hello_deadline = None
        self.paced_signalled = None  # the writer is woken at ready: held sends go then
        if self.presence_ids is not None and not any(
                s.type == "presence_sub" for s in self.outbox):
            self.outbox.appendleft(Send("presence_sub", {"ids": list(self.presence_ids)},
                                        False, None))

    # ----------------------------------------------------------------- timers
    def pause(self, now: float) -> None:
        """The client stopped reading (its handlers are too far behind): keep-alive and
        reply deadlines stand still until :meth:`resume`, since silence now proves nothing.
        """
        if self.paused_at is None:
            self.paused_at = now

    def resume(self, now: float) -> None:
        """Reading again: every running deadline moves by the time spent paused."""
        if self.paused_at is None:
            return
        shift = max(0.0, now - self.paused_at)
        self.paused_at = None
        self.last_inbound += shift
        if self.ping_deadline is not None:
            self.ping_deadline += shift
        for send in self.pending.values():
            send.deadline += shift

    def next_deadline(self) -> Optional[float]:
        """The earliest time :meth:`tick` has something to do, or None."""
        times: List[float] = []
        due = self._paced_due()
        if due is not None:
            times.append(due)
        if self.paused_at is not None or self.dead:
            return min(times) if times else None
        if self.hello_deadline is not None:
            times.append(self.hello_deadline)
        if self.state is State.READY:
            if self.ping_deadline is not None:
                times.append(self.ping_deadline)
            else:
                times.append(self.last_inbound + self.timeouts.client_ping)
        if self.pending:  # written in id order, same timeout: the first is the earliest
            times.append(next(iter(self.pending.values())).deadline)
        return min(times) if times else None

    def tick(self, now: float) -> List[Effect]:
        """Fire the deadlines that have passed: reply timeouts, ping, pong, hello."""
        effects: List[Effect] = []
        due = self._paced_due()
        if due is not None and due <= now:
            self.paced_signalled = due  # once per due time: the writer takes it from here
            effects.append(WriteDue())
        if self.paused_at is not None or self.dead:
            return effects
        while self.pending:
            send = next(iter(self.pending.values()))
            if send.deadline > now:
                break
            del self.pending[send.id]
            effects.append(self._timed_out(send))
        if self.state is State.CONNECTED and self.hello_deadline is not None \
                and now >= self.hello_deadline:
            self.hello_deadline = None
            self.dead = True
            effects.append(Teardown(WebsocketError(
                f"no hello from Slack within {self.timeouts.hello:g} s of connecting")))
        if self.state is State.READY:
            if self.ping_deadline is not None:
                if now >= self.ping_deadline:
                    self.ping_deadline = None
                    self.ping_id = None
                    self.dead = True
                    effects.append(Teardown(WebsocketError(
                        f"no pong within {self.timeouts.server_pong:g} s of a ping: "
                        "the connection is dead")))
            elif now - self.last_inbound >= self.timeouts.client_ping:
                self.outbox.appendleft(Send("ping", {}, False, None))
                # The pong deadline runs from the moment the ping is due, written or not:
                # a writer stuck on a dead socket must not stop the detection.
                self.ping_deadline = now + self.timeouts.server_pong
                effects.append(PingDue())
        return effects

    def _timed_out(self, send: Send) -> Resolve:
        assert send.future is not None  # internal sends are never pending
        return Resolve(send.future, error=NoReplyReceivedError(
            f"no reply to message {send.id} ({send.type}) within "
            f"{self.timeouts.reply:g} s; it may or may not have been delivered"))

    # ----------------------------------------------------------------- loss and stop
    def connection_lost(self, error: BaseException,
                        now: Optional[float] = None) -> List[Resolve]:
        """The connection is gone: fail every written send still waiting for its reply.

        Queued sends stay queued for the next connection. A connection that was ready
        for less than ``backoff.healthy_after`` seconds (``now`` given) counts as a
        failure on top of those before it: a flapping server gets a growing backoff.
        """
        was_ready = self.reached_ready
        self.reached_ready = False
        if not was_ready and self.state in (State.CONNECTING, State.CONNECTED):
            self.failures += 1
        elif was_ready and now is not None and self.ready_at is not None \
                and now - self.ready_at < self.backoff.healthy_after:
            self.failures = self.failures_before_ready + 1
        self.ready_at = None
        self.ping_id = None
        self.ping_deadline = None
        self.hello_deadline = None
        self.paused_at = None
        effects: List[Resolve] = []
        for send in self.pending.values():
            if send.future is not None:
                effects.append(Resolve(send.future, error=NoReplyReceivedError(
                    f"the connection was lost before the reply to message {send.id} "
                    f"({send.type}) arrived; it may or may not have been delivered "
                    f"({error})")))
        self.pending.clear()
        self._forget_pings()
        return effects

    def _forget_pings(self) -> None:
        """Drop queued keep-alive pings: they were meant for a connection now gone."""
        if any(s.type == "ping" and s.future is None for s in self.outbox):
            self.outbox = deque(s for s in self.outbox
                                if not (s.type == "ping" and s.future is None))

    def switched(self, now: float) -> None:
        """A refresh replaced the connection by another one that is ready (Socket Mode):
        the keep-alive starts afresh; a ping meant for the old connection is forgotten."""
        self.last_inbound = now
        self.ping_id = None
        self.ping_deadline = None
        self.dead = False
        self._forget_pings()

    def reconnect_delay(self) -> float:
        """Backoff delay before the next attempt, for the current failure count."""
        return self.backoff.delay(self.failures)

    def drop_all(self, reason: str) -> List[Resolve]:
        """The run ends: fail every queued and every unanswered send."""
        effects: List[Resolve] = []
        for send in self.pending.values():
            if send.future is not None:
                effects.append(Resolve(send.future, error=NoReplyReceivedError(
                    f"the client {reason} before the reply to message {send.id} "
                    f"({send.type}) arrived; it may or may not have been delivered")))
        self.pending.clear()
        while self.outbox:
            send = self.outbox.popleft()
            if send.future is not None:
                # sends are taken from the queue by the writer thread: one not taken yet
                # may have been about to wait for its channel's send rate
                paced = self.pacer is not None and paced_channel(send.body) is not None
                effects.append(Resolve(send.future, error=SendWhileDisconnectedError(
                    f"the client {reason} before this {send.type!r} event could be sent"
                    + (": it was queued, paced by its channel's send rate (send_rate)"
                       if paced else ""))))
        for send in self.pacer.drain() if self.pacer is not None else ():
            if send.future is not None:
                effects.append(Resolve(send.future, error=SendWhileDisconnectedError(
                    f"the client {reason} before this {send.type!r} event could be sent: "
                    f"it was waiting for its channel's send rate (send_rate)")))
        self.ping_id = None
        self.ping_deadline = None
        self.hello_deadline = None
        self.reached_ready = False
        return effects


def _shown(value: Any) -> str:
    """A server value for a log line: short, whatever it is."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
