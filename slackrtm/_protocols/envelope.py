"""Socket Mode envelopes: the request handed to handlers and its acknowledgement. The
memory of envelopes already seen (Slack redelivers what it thinks was not acknowledged) is
``_engine.dedupe.MemoryDedupe``, still importable here as ``Seen``."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import Future
from typing import Any, Dict, Optional, Protocol

from slackrtm._engine.dedupe import Seen, envelope_key
from slackrtm._engine.transport import Transport
from slackrtm._engine.writer import Bound
from slackrtm._log import Log

__all__ = ["Acknowledger", "Seen", "SocketModeRequest", "ack_text"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}").fullmatch


def ack_text(envelope_id: str, payload: Optional[Dict[str, Any]] = None) -> str:
    """The acknowledgement frame of an envelope.

    The id is written with non-ASCII characters escaped, so an id Slack sent with a
    ``\\ud800``-style escape goes back exactly as it came. A ``payload`` that cannot be
    sent (not JSON, or holding a lone surrogate that UTF-8 cannot encode) raises
    ``TypeError`` / ``ValueError`` at once.
    """
    if payload is None:
        if _PLAIN_ID(envelope_id):  # Slack's ids (UUIDs): nothing to escape
            return '{"envelope_id":"' + envelope_id + '"}'
        return _ascii({"envelope_id": envelope_id})
    body = _encode(payload)
    if not body.isascii():
        try:
            body.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the response payload of envelope {envelope_id!r} cannot be "
                             f"sent: it holds a lone surrogate at character {exc.start} "
                             "(UTF-8 cannot encode it); nothing was sent") from None
    return '{"envelope_id":' + _ascii(envelope_id) + ',"payload":' + body + "}"


class Acknowledger(Protocol):
    """What a request needs of the run it came on (``SocketModeRun``): its log, and a way
    to queue an acknowledgement for the connection it came on."""

    log: Log

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the client's health counter ``name``."""

    def acknowledge(self, text: str, via: Optional[Transport],
                    future: Optional[Future[None]]) -> None:
        """Queue ``text`` for ``via`` (or the next ready connection); ``future`` resolves
        once it is written."""


class SocketModeRequest:
    """One Socket Mode envelope, as handed to handlers of its type (``slash_commands``,
    ``interactive``, ``events_api``, ...).

    Attributes: ``envelope_id``, ``type``, ``payload`` (dict), ``event`` (the inner event of
    an ``events_api`` envelope, else None), ``accepts_response_payload``, ``retry_attempt``,
    ``retry_reason`` and ``envelope`` (the whole frame).

    ``dedupe_key`` is the key a shared duplicate filter knows it by (``msg:<channel>:<ts>``
    for a message, the ``event_id`` for other ``events_api`` envelopes, else the
    ``envelope_id``; see ``slackrtm.redis.RedisDedupe.settle``).

    Acknowledge it with :meth:`ack`. With ``ack="auto"`` (the default) the client already
    did as soon as the envelope was read, except for an envelope that accepts a response
    payload and has handlers of its type: those are acknowledged by the handler's
    ``ack(payload)``, or with an empty payload once its handlers return.
    """

    __slots__ = (
        "_future",
        "_gate",
        "_lock",
        "_manual",
        "_run",
        "_via",
        "accepts_response_payload",
        "dedupe_key",
        "envelope",
        "envelope_id",
        "event",
        "payload",
        "retry_attempt",
        "retry_reason",
        "type",
    )

    def __init__(self, envelope: Dict[str, Any], run: Acknowledger,
                 via: Optional[Transport], manual: bool) -> None:
        self.envelope = envelope
        self.envelope_id: str = envelope["envelope_id"]
        self.type: str = str(envelope.get("type") or "envelope")
        payload = envelope.get("payload")
        self.payload: Dict[str, Any] = payload if isinstance(payload, dict) else {}
        event = self.payload.get("event") if self.type == "events_api" else None
        self.event: Optional[Dict[str, Any]] = \
            event if isinstance(event, dict) and isinstance(event.get("type"), str) else None
        self.accepts_response_payload = envelope.get("accepts_response_payload") is True
        attempt = envelope.get("retry_attempt")
        self.retry_attempt: int = attempt if type(attempt) is int else 0
        self.retry_reason: str = str(envelope.get("retry_reason") or "")
        self._run = run
        self._via = via
        self._future: Optional[Future[None]] = None
        self._lock = threading.Lock()
        self._manual = manual
        self.dedupe_key: str = envelope_key(
            self.envelope_id, self.payload.get("event_id") if self.type == "events_api"
            else None, self.event)
        self._gate: Any = None  # the shared filter holding a lease on it, to settle

    def __repr__(self) -> str:
        return (f"<SocketModeRequest {self.type} envelope_id={self.envelope_id!r} "
                f"retry_attempt={self.retry_attempt} acked={self.acked}>")

    @property
    def acked(self) -> bool:
        """Whether an acknowledgement was queued (it may not be written yet)."""
        return self._future is not None

    def ack(self, payload: Optional[Dict[str, Any]] = None) -> Future[None]:
        """Acknowledge the envelope, with ``payload`` as the response when Slack accepts
        one. Returns a future that resolves once the acknowledgement is written (or fails
        when the client disconnected first). Acknowledging twice returns the first future;
        a payload given then is dropped with a warning."""
        with self._lock:
            future = self._future
            if future is None:
                text = ack_text(self.envelope_id, payload)  # raises on a non-JSON payload
                future = self._future = Future()
            else:
                text = ""
        if not text:
            if payload is not None:
                self._run.log.warn(f"envelope {self.envelope_id} was acknowledged already: "
                                   "the response payload given now is dropped")
            return future
        gate, self._gate = self._gate, None
        if gate is not None:  # handled: the claim outlives its lease
            gate.settle(self.dedupe_key)
        if payload is not None and not self.accepts_response_payload:
            self._run.log.warn(f"envelope {self.envelope_id} ({self.type}) accepts no "
                               "response payload: Slack ignores it")
        self._run.count("acked")
        self._run.acknowledge(text, self._via, future)
        return future

    def acked_on_read(self) -> Bound:
        """The client acknowledges the envelope as soon as it was read (no payload): the
        frame to queue for the writer."""
        future: Future[None] = Future()
        self._future = future
        return Bound(ack_text(self.envelope_id), self._via, future)

    def finish(self) -> None:
        """Every handler ran: acknowledge the envelope with an empty payload if none did."""
        with self._lock:
            if self._future is not None:
                return
        if self._manual:
            self._run.log.warn(f"no handler acknowledged envelope {self.envelope_id} "
                               f"({self.type}): acknowledged with an empty payload")
        self.ack()
