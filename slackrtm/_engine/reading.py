"""Reading (Run's mixin): what the reader thread does with the messages of one read, for
either protocol. The parsing, the checks every frame gets, ``hello``, reply settling and
the handover to the dispatcher live here once; a protocol's run says only what its own
frames mean (RTM replies and ``goodbye``, Socket Mode envelopes and ``disconnect``)
through the hooks below."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Set, Tuple

from slackrtm._engine.context import RunContext, apply, monotonic
from slackrtm._engine.core import Resolve, State, WakeWriter
from slackrtm._engine.dispatch import Dispatcher
from slackrtm._engine.entries import Entry, Lifecycle, Unparsed
from slackrtm._engine.transport import Message, Transport
from slackrtm._log import Log
from slackrtm.errors import PlatformError, SlackRTMError, WebsocketError

__all__ = ["Batch", "Reading"]

#: The JSON decoder's scanner: ``json.loads`` is it plus checks (a BOM, whitespace around
#: the value), which the reader does itself for the frames Slack sends (``{...}``).
_scan_once: Callable[[str, int], Tuple[Any, int]] = \
    json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # (not in typeshed)
_JSON_SPACE = " \t\n\r"


class Batch:
    """What one read gave, sorted on the reader thread: entries for the dispatcher, reply
    frames to match against sends, and why to stop reading (if anything said so)."""

    __slots__ = ("entries", "outcome", "replies", "transport")

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.entries: List[Entry] = []
        self.replies: List[Dict[str, Any]] = []
        self.outcome: Optional[SlackRTMError] = None


class Reading:
    """The reading half of a run; :class:`slackrtm._engine.run.Run` sets these attributes."""

    #: A frame holding this key is no plain event: :meth:`_special` decides what it is
    #: (``reply_to``: RTM's replies). Empty: every JSON object goes to :meth:`_special`
    #: first (Socket Mode: an envelope may lack a usable ``envelope_id``).
    special_key = "reply_to"
    #: Event types besides ``hello`` that :meth:`_notable` hears about (after the event
    #: was queued for its handlers).
    notable_types: FrozenSet[str] = frozenset()
    #: Keep-alive pings are JSON messages (RTM), else WebSocket ping frames (Socket Mode).
    json_ping = True

    ctx: RunContext
    log: Log
    stop: threading.Event
    kick: threading.Event
    wake_writer: threading.Event
    dispatcher: Dispatcher
    transport: Optional[Transport]
    future: Future[Dict[str, Any]]
    failures_logged: Set[Any]

    def _pause(self, paused: bool, reason: str = "backlog") -> None:
        """Deadlines stand still while paused (the run's)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- protocol hooks
    def _special(self, text: str, frame: Dict[str, Any], batch: Batch) -> bool:
        """``frame`` holds :attr:`special_key`: add what it means to ``batch``; False
        when it is no special frame after all (it is then read as an event)."""
        return False

    def _unparsable(self, text: str, exc: BaseException, transport: Transport) -> Entry:
        """A text frame that is not JSON (or nested too deep): what to queue for it."""
        return Unparsed(text)

    def _notable(self, etype: str, frame: Dict[str, Any], batch: Batch) -> None:
        """An event of :attr:`notable_types` was queued: act on it (set
        ``batch.outcome`` to stop reading this connection once the batch is delivered)."""

    def _hello_frame(self, frame: Dict[str, Any], now: float) -> None:
        """A ``hello`` frame arrived, before the client is made ready by it."""

    def _sorted(self, batch: Batch) -> None:
        """Every message of the batch was sorted; nothing is delivered yet."""

    # ---------------------------------------------------------------- one read
    def take_batch(self, messages: List[Message], transport: Transport
                   ) -> Optional[SlackRTMError]:
        """Process the messages of one read from ``transport`` (reader thread): queue
        them for the handlers, settle replies; return why to stop reading, or None.

        No lock is held on entry; the client's lock is taken once for the replies."""
        self.dispatcher.drop_dispatched()
        now = monotonic()
        batch = Batch(transport)
        entries = batch.entries
        append = entries.append
        loads = json.loads
        scan = _scan_once
        special_key = self.special_key
        notable = self.notable_types
        ready_at = -1
        for text, payload in messages:
            if text is None:  # Slack sends text only: a binary frame is logged, not fatal
                self.log.warn(f"dropped a binary frame of {len(payload or b'')} bytes")
                continue
            try:
                if text[:1] == "{":  # every Slack frame: json.loads' own work, less its checks
                    try:
                        frame, end = scan(text, 0)
                    except StopIteration:
                        frame = loads(text)  # raises json.loads' error
                    else:
                        if end != len(text) and text[end:].strip(_JSON_SPACE):
                            frame = loads(text)  # data after the object: its error
                else:
                    frame = loads(text)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                append(self._unparsable(text, exc, transport))  # raw_message sees it
                continue
            if type(frame) is not dict:
                append(Unparsed(text))
                continue
            if (not special_key or special_key in frame) \
                    and self._special(text, frame, batch):
                continue
            etype = frame.get("type")
            if type(etype) is not str:
                append(Unparsed(text))
                continue
            append((text, frame))  # the hot path ends here for almost every frame
            if etype == "hello":
                self._hello_frame(frame, now)
                if self.hello():
                    ready_at = len(entries)  # "ready" right after hello, in order
                    append(Lifecycle("ready"))
            elif etype in notable:
                self._notable(etype, frame, batch)
        self._sorted(batch)
        # Replies settle their futures here, on the reader, never on the dispatcher: a
        # handler may block on one. Pongs to WebSocket pings are replies too.
        replies = batch.replies
        if transport.pongs:
            replies.extend(self.pongs_as_replies(transport))
        core = self.ctx.core
        if replies:
            with self.ctx.lock:
                core.heard(now)
                effects: List[Any] = []
                for frame in replies:
                    effects.extend(core.inbound(frame, now))
            self.settle(effects)
        elif transport is self.transport:  # a connection being drained proves nothing
            core.heard(now)  # no lock needed: see Core.heard
        if entries:
            stop = self.enqueue(entries, len(entries) - (ready_at >= 0), transport)
            if stop is not None:
                return stop
        if batch.outcome is not None and not isinstance(batch.outcome, PlatformError):
            # Slack ends this connection (the run goes on): close it now that everything
            # it sent before was queued. A PlatformError ends the run, whose shutdown
            # tears the connection down.
            transport.close()
        return batch.outcome

    # ---------------------------------------------------------------- helpers
    def enqueue(self, entries: List[Entry], frames: int,
                transport: Transport) -> Optional[SlackRTMError]:
        """Queue ``entries`` (``frames`` of them read from the socket) for the dispatcher,
        waiting while its backlog is full. Returns why to stop reading, or None."""
        disp = self.dispatcher
        stop = self.stop
        if not disp.admit(frames, lambda: stop.is_set() or transport.closed, self._pause):
            if stop.is_set():
                return WebsocketError("the client is disconnecting")
            disp.put(entries, force=frames)  # torn down while paused: keep them
            return WebsocketError(f"the connection to {transport.host} was closed")
        disp.put(entries)
        return None

    def settle(self, effects: List[Any]) -> None:
        """Carry out what matching replies gave: complete futures; a resend queued by
        pacing wakes the timer (which wakes the writer)."""
        if any(isinstance(e, WakeWriter) for e in effects):
            self.kick.set()
        apply([e for e in effects if isinstance(e, Resolve)])

    def pongs_as_replies(self, transport: Transport) -> List[Dict[str, Any]]:
        """Pong control frames as reply frames to the keep-alive pings they answer."""
        replies: List[Dict[str, Any]] = []
        for payload in transport.take_pongs():
            if not self.json_ping and payload.isdigit() and len(payload) < 19:
                replies.append({"reply_to": int(payload)})
        return replies

    def hello(self) -> bool:
        """``hello`` arrived: when the connection is being set up, the client is ready.
        Returns False when it came at another time (ignored: a Socket Mode refresh's new
        connection says hello while the client stays ready)."""
        ctx = self.ctx
        with ctx.lock:  # the state is read and changed in one step
            if self.stop.is_set() or ctx.core.state is not State.CONNECTED:
                if ctx.core.state is not State.READY:
                    self.log.debug("ignored a hello outside the connected state")
                return False
            ctx.core.hello(monotonic())
            data = ctx.connect_data
        self.log.debug("ready")
        self.failures_logged.clear()  # a new streak of failures is reported again
        if not self.future.done():
            try:
                self.future.set_result(dict(data or {}))
            except Exception:  # cancelled by disconnect() meanwhile
                pass
        self.wake_writer.set()  # sends queued before ready go now
        self.kick.set()  # the keep-alive deadlines start
        return True

