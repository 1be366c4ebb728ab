"""Socket Mode envelopes: the request handed to handlers and its acknowledgement. The
memory of envelopes already seen (Slack redelivers what it thinks was not acknowledged) is
``_engine.dedupe.MemoryDedupe``, still importable here as ``Seen``."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import Future
from typing import Any, Dict, List, Optional, Protocol, Tuple

from slackrtm._engine.dedupe import Seen, envelope_key
from slackrtm._engine.transport import Transport
from slackrtm._engine.writer import Bound
from slackrtm._log import Log

__all__ = ["Acknowledger", "Seen", "SocketModeRequest", "ack_text", "ack_texts", "documented"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}").fullmatch
_PLAIN_IDS = re.compile(r"(?:[A-Za-z0-9_.:-]{1,200}\n)+").fullmatch  # ids, one per line
#: Held a moment by ack(): one for every request (a lock per envelope costs every envelope).
_ACK_LOCK = threading.Lock()


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


def ack_texts(envelope_ids: List[str]) -> List[str]:
    """The acknowledgement frames of several envelopes (no payload): ``ack_text`` of each,
    with one check that every id is plain (the common case: Slack's UUIDs)."""
    lines = "\n".join(envelope_ids) + "\n"
    if _PLAIN_IDS(lines) and lines.count("\n") == len(envelope_ids):  # no id spans lines
        return ['{"envelope_id":"' + envelope_id + '"}' for envelope_id in envelope_ids]
    return [ack_text(envelope_id) for envelope_id in envelope_ids]


def documented(etype: Any, payload: Any) -> Tuple[bool, Optional[Dict[str, Any]]]:
    """Whether an envelope of type ``etype`` with ``payload`` is what Slack documents (a
    non-empty string type, an object as its payload, and for ``events_api`` an event
    object with a string type: then ``envelope_problems`` finds nothing), and its inner
    event (``events_api`` only; None when it is not documented)."""
    if not isinstance(payload, dict) or type(etype) is not str or not etype:
        return False, None
    if etype != "events_api":
        return True, None
    event = payload.get("event")
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return True, event
    return False, None


class Acknowledger(Protocol):
    """What a request needs of the run it came on (``SocketModeRun``): its log, and a way
    to queue an acknowledgement for the connection it came on."""

    log: Log

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the client's health counter ``name``."""

    def acknowledge(self, bound: Bound) -> None:
        """Queue ``bound`` for its connection (or the next ready one)."""


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
        "_bound",
        "_dedupe_key",
        "_gate",
        "_manual",
        "_plain",
        "_run",
        "_via",
        "accepts_response_payload",
        "envelope",
        "envelope_id",
        "event",
        "payload",
        "type",
    )

    def __init__(self, envelope: Dict[str, Any], run: Acknowledger,
                 via: Optional[Transport], manual: bool) -> None:
        self.envelope = envelope
        self.envelope_id: str = envelope["envelope_id"]
        etype: Any = envelope.get("type")
        payload = envelope.get("payload")
        plain, event = documented(etype, payload)
        if not isinstance(payload, dict):
            payload = {}
        self._plain = plain
        self.type: str = etype if plain else str(etype or "envelope")
        self.payload: Dict[str, Any] = payload
        self.event: Optional[Dict[str, Any]] = event
        self.accepts_response_payload = envelope.get("accepts_response_payload") is True
        self._run = run
        self._via = via
        self._bound: Optional[Bound] = None  # the queued acknowledgement
        self._manual = manual
        self._dedupe_key: Optional[str] = None
        self._gate: Any = None  # the shared filter holding a lease on it, to settle

    def __repr__(self) -> str:
        return (f"<SocketModeRequest {self.type} envelope_id={self.envelope_id!r} "
                f"retry_attempt={self.retry_attempt} acked={self.acked}>")

    @property
    def retry_attempt(self) -> int:
        """How many times Slack delivered this envelope before (0: the first time)."""
        attempt = self.envelope.get("retry_attempt")
        return attempt if type(attempt) is int else 0

    @property
    def retry_reason(self) -> str:
        """Why Slack delivers it again (``timeout``, ...), or ``""``."""
        return str(self.envelope.get("retry_reason") or "")

    @property
    def dedupe_key(self) -> str:
        """The key a shared duplicate filter knows the envelope by."""
        key = self._dedupe_key
        if key is None:
            key = self._dedupe_key = envelope_key(
                self.envelope_id, self.payload.get("event_id") if self.type == "events_api"
                else None, self.event)
        return key

    @property
    def acked(self) -> bool:
        """Whether an acknowledgement was queued (it may not be written yet)."""
        return self._bound is not None

    def ack(self, payload: Optional[Dict[str, Any]] = None) -> Future[None]:
        """Acknowledge the envelope, with ``payload`` as the response when Slack accepts
        one. Returns a future that resolves once the acknowledgement is written (or fails
        when the client disconnected first). Acknowledging twice returns the first
        acknowledgement's future (also when the client acknowledged on read); a payload
        given then is dropped with a warning."""
        with _ACK_LOCK:
            bound = self._bound
            if bound is None:
                text = ack_text(self.envelope_id, payload)  # raises on a non-JSON payload
                bound = self._bound = Bound(text, self._via, Future())
                fresh = True
            else:
                fresh = False
        if not fresh:
            if payload is not None:
                self._run.log.warn(f"envelope {self.envelope_id} was acknowledged already: "
                                   "the response payload given now is dropped")
            return bound.watch()
        gate, self._gate = self._gate, None
        if gate is not None:  # handled: the claim outlives its lease
            gate.settle(self.dedupe_key)
        if payload is not None and not self.accepts_response_payload:
            self._run.log.warn(f"envelope {self.envelope_id} ({self.type}) accepts no "
                               "response payload: Slack ignores it")
        self._run.count("acked")
        self._run.acknowledge(bound)
        return bound.watch()

    def acked_on_read(self) -> Bound:
        """The client acknowledges the envelope as soon as it was read (no payload): the
        frame to queue for the writer. It carries no future: :meth:`ack` makes one if a
        handler asks (reader thread, before any handler has the request)."""
        bound = self._bound = Bound(ack_text(self.envelope_id), self._via)
        return bound

    def finish(self) -> None:
        """Every handler ran: acknowledge the envelope with an empty payload if none did."""
        if self._bound is not None:
            return
        if self._manual:
            self._run.log.warn(f"no handler acknowledged envelope {self.envelope_id} "
                               f"({self.type}): acknowledged with an empty payload")
        self.ack()
