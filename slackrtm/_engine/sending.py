"""The sending half of the sans-I/O core (a mixin of :class:`slackrtm._engine.core.Core`):
the queue of sends waiting for ``ready``, message ids, per-channel pacing, and what
becomes of a send once written, refused by the socket, or put back.

Part of the core: the rules in ``core.py``'s opening comment hold here too. No I/O, no
lock, no clock: the caller holds the client's lock and passes the time in.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any, Deque, Dict, List, Optional, Tuple

from slackrtm._engine.pacing import Pacer, paced_channel
from slackrtm._engine.split import MAX_MESSAGE_LENGTH, unencodable
from slackrtm._engine.states import Resolve, Send, State, Timeouts
from slackrtm.errors import (
    MessageTooLongError,
    NoReplyReceivedError,
    SendWhileDisconnectedError,
)

__all__ = ["Sending"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Sending:
    """Sends, from ``submit`` to written; :class:`~slackrtm._engine.core.Core` holds the
    fields named here."""

    timeouts: Timeouts
    state: State
    next_id: int
    next_seq: int
    outbox: Deque[Send]
    pending: Dict[int, Send]
    ping_id: Optional[int]
    ping_deadline: Optional[float]
    presence_ids: Optional[List[str]]
    pacer: Optional[Pacer[Send]]
    paced_signalled: Optional[float]

    @property
    def started(self) -> bool:
        """Whether sends are accepted (queued or written): anything but disconnected."""
        return self.state not in (State.DISCONNECTED, State.DISCONNECTING)

    def submit(self, type: str, body: Optional[Dict[str, Any]], await_reply: bool,
               future: Future[Any], web: bool = False) -> Optional[Resolve]:
        """Queue a send; when the client is not started, return the effect failing it.

        ``web``: a message posted with chat.postMessage by the run's poster instead of
        written on the socket; paced and ordered per channel with the others."""
        if not self.started:
            err = SendWhileDisconnectedError(
                f"cannot send a {type!r} event while the client is {self.state.value}; "
                "call start() first")
            return Resolve(future, error=err)
        text = (body or {}).get("text") if type == "message" else None
        if isinstance(text, str) and len(text) > MAX_MESSAGE_LENGTH:
            return Resolve(future, error=MessageTooLongError(
                f"message text is {len(text)} characters long, more than Slack's "
                f"{MAX_MESSAGE_LENGTH}; nothing was sent (send_message(..., split=True) "
                "sends it in parts)", length=len(text), limit=MAX_MESSAGE_LENGTH))
        if isinstance(text, str) and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                return Resolve(future, error=ValueError(
                    f"the message text cannot be sent: {unencodable(exc)}; nothing was sent"))
        self.outbox.append(Send(type, dict(body or {}), await_reply, future, seq=self.next_seq,
                                web=web))
        self.next_seq += 1
        return None

    def subscribe_presence(self, ids: List[str], future: Future[Any]) -> Optional[Resolve]:
        """Remember ``ids`` for re-subscription after reconnects, and queue the send."""
        failed = self.submit("presence_sub", {"ids": list(ids)}, False, future)
        if failed is None:
            self.presence_ids = list(ids)
        return failed

    def writable(self) -> bool:
        """Whether :meth:`next_write` would return a send now (a held send counts once
        :meth:`tick` signalled it due: the pump that was busy then must take it)."""
        if self.state is not State.READY:
            return False
        if self.outbox:
            return True
        if self.pacer is None or not self.pacer.held or self.paced_signalled is None:
            return False
        due = self.pacer.next_due()
        return due is not None and due <= self.paced_signalled

    def next_write(self, now: float) -> Optional[Tuple[Send, str]]:
        """Take the next queued send, give it an id, register it, and return its text.

        Registering before the write matters: on loopback the reply can arrive before
        the write call returns.
        """
        if self.state is not State.READY:
            return None
        if self.pacer is None:
            if not self.outbox:
                return None
            send = self.outbox.popleft()
        else:
            paced = self._take_paced(now)
            if paced is None:
                return None
            send = paced
        send.id = self.next_id
        self.next_id += 1
        if send.web:  # the poster posts it and completes its future: nothing to register
            return send, ""
        payload = dict(send.body)
        payload["id"] = send.id
        payload["type"] = send.type
        if send.future is None:
            if send.type == "ping" and self.ping_deadline is not None:
                self.ping_id = send.id  # the reply to this id is the pong
        elif send.await_reply:
            send.deadline = now + self.timeouts.reply
            self.pending[send.id] = send
        return send, _encode(payload)

    def _take_paced(self, now: float) -> Optional[Send]:
        """The first send that may go now: a held one whose channel's token came, else the
        first queued one that has no channel or whose channel admits it. Refused sends are
        held per channel, so no channel waits behind another."""
        assert self.pacer is not None
        send = self.pacer.take_ready(now)
        if send is not None:
            return send
        while self.outbox:
            send = self.outbox.popleft()
            channel = paced_channel(send.body)
            if channel is None or self.pacer.admit(channel, now):
                return send
            self.pacer.hold(channel, send, send.seq)
        return None

    def paced_before(self, when: float) -> bool:
        """Whether a held send becomes writable before ``when`` (the timer must wake)."""
        due = self._paced_due()
        return due is not None and due < when

    def _paced_due(self) -> Optional[float]:
        """When the next held send may go, unless that time was already signalled."""
        if self.pacer is None or self.state is not State.READY:
            return None
        due = self.pacer.next_due()
        return None if due is None or due == self.paced_signalled else due

    def requeue(self, send: Send, stopping: bool = False) -> Optional[Resolve]:
        """Nothing of ``send`` was written (the connection was already torn down): put it
        back first in line, with a new id to come. A send that a connection loss already
        failed is dropped (never resent), and one the client stopped for meanwhile fails.
        """
        if send.await_reply and send.future is not None \
                and self.pending.pop(send.id, None) is None:
            return None  # connection_lost / drop_all already failed it
        if send.type == "ping" and send.future is None:
            if self.ping_id == send.id:
                self.ping_id = None
            return None  # a ping for a dead connection is worthless
        if stopping or not self.started:
            if send.future is None:
                return None
            return Resolve(send.future, error=SendWhileDisconnectedError(
                f"the client disconnected before this {send.type!r} event could be sent"))
        send.id = 0
        channel = paced_channel(send.body) if self.pacer is not None else None
        if channel is not None and self.pacer is not None:
            self.pacer.hold(channel, send, send.seq)  # behind nothing of its channel
        else:
            self.outbox.appendleft(send)
        return None

    def rate_limited(self, send: Send, retry_after: float, now: float) -> bool:
        """chat.postMessage answered a web send with HTTP 429: with pacing, the channel is
        slowed (no token before ``retry_after``) and the send held to go again once, first
        of its channel; True when so (a :class:`WriteDue` is due). False: not held here
        (no pacing, resent once already, or stopping)."""
        channel = paced_channel(send.body) if self.pacer is not None else None
        if channel is None or self.pacer is None or send.retried or not self.started:
            return False
        send.retried, send.id = True, 0
        self.pacer.slow_down(channel, now)
        self.pacer.wait_until(channel, now, now + max(0.0, retry_after))
        self.pacer.hold(channel, send, send.seq)
        return True

    def written(self, send: Send) -> Optional[Resolve]:
        """The send was written; a send that awaits no reply is complete."""
        if send.await_reply or send.future is None or send.future.done():
            return None
        return Resolve(send.future, result=None)

    def write_failed(self, send: Send, error: BaseException) -> Optional[Resolve]:
        """Writing failed midway: the message may or may not have reached Slack."""
        self.pending.pop(send.id, None)
        if send.future is None:
            return None
        err = NoReplyReceivedError(
            f"the connection failed while writing message {send.id} ({send.type}); "
            f"it may or may not have been delivered: {error}")
        return Resolve(send.future, error=err)
