"""The Socket Mode side of a run: ``apps.connections.open``, envelopes and their acks, and
refreshes with no gap.

A refresh (Slack's ``disconnect`` with reason ``warning`` or ``refresh_requested``, or the
end of the connection's announced lifetime coming near) is carried out by the
``slackrtm-refresher`` thread: it asks for a new URL, opens the next connection and reads
until its ``hello``, while the reader keeps reading the current one. The reader then
takes the new connection over: it writes a close frame on the old one and reads it to its
end (everything Slack sent on it before answering the close), and only then reads what
arrived on the new one. So nothing is lost, nothing is delivered twice, and the order
across the switch is the order Slack sent in. The client stays ``ready`` throughout.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from slackrtm._engine.core import State
from slackrtm._engine.entries import Entry, EnvelopeEntry, Reply, Unparsed
from slackrtm._engine.reading import Batch
from slackrtm._engine.run import Bound, Run, RunContext, monotonic
from slackrtm._engine.transport import Message, Transport
from slackrtm._engine.writer import BOUND_HIGH
from slackrtm._protocols.envelope import Seen, SocketModeRequest, ack_texts, documented
from slackrtm._protocols.malformed import (
    envelope_problems,
    looks_like_envelope,
    recover_envelope_id,
    usable_id,
)
from slackrtm._protocols.refresh import Refresh
from slackrtm.errors import (
    PlatformError,
    ReconnectRequested,
    SlackRTMError,
    TooManyWebsockets,
    WebsocketError,
)

#: ``disconnect`` reasons that ask for a refresh (open the next connection first).
REFRESH_REASONS = frozenset({"warning", "refresh_requested"})
_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
#: Seconds a closing connection may take to deliver its last frames after a handover.
DRAIN_TIMEOUT = 2.0

#: A connection a refresh opened: its transport, what was read on it up to and including
#: hello, and the connect data (apps.connections.open's answer with hello's information).
Handover = Tuple[Transport, List[Message], Dict[str, Any]]


#: What link_disabled means and what to do about it (the run ends: no retry can mend it).
LINK_DISABLED = ("Slack turned Socket Mode off for this app (link_disabled): turn it back on "
                 "in the app's settings (https://api.slack.com/apps > your app > Socket "
                 "Mode), then start the client again")


class SocketModeRun(Run):
    """A run of a ``SocketModeClient``."""

    source_method = "apps.connections.open"
    json_ping = False
    special_key = ""  # every JSON object: an envelope may lack a usable envelope_id
    notable_types = frozenset({"disconnect"})

    def __init__(self, ctx: RunContext, args: Dict[str, Any], *, manual_ack: bool,
                 debug_reconnects: bool = False) -> None:
        self.manual_ack = manual_ack
        self.debug_reconnects = debug_reconnects
        # the refresh's state (changed with the client's lock held); the two events only
        # wake the threads that wait on it: the refresher, and a reader whose connection
        # ended while a refresh is under way
        self.refresh: Refresh[Handover] = Refresh(monotonic, ctx.core.backoff.delay)
        self.refresh_wanted = threading.Event()
        self.handed_over = threading.Event()
        local = ctx.local_dedupe
        self.seen = local if local is not None else Seen()
        #: Acknowledgements of the batch being read (reader thread only): those of
        #: requests, and the ids of the envelopes no request holds (one Bound for all).
        self.batch_acks: List[Bound] = []
        self.batch_ack_ids: List[str] = []
        self._handlers = ctx.registry.handlers
        # the refresher wakes the reader through this pair once the next connection is
        # ready (or the refresh failed), wherever the reader is blocked
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        super().__init__(ctx, args)

    def open_transport(self, url: str) -> Transport:
        """Open the WebSocket; with ``debug_reconnects`` Slack is asked for short-lived
        connections (about 360 s) by a flag in the URL."""
        if self.debug_reconnects:
            url += ("&" if "?" in url else "?") + "debug_reconnects=true"
        return super().open_transport(url)

    def _extra_threads(self) -> List[Tuple[str, Callable[[], None]]]:
        return [("refresher", self._refresher_main)]

    def _wake_all(self) -> None:
        super()._wake_all()
        self.refresh_wanted.set()
        self._wake_reader()  # a reader draining the old connection sees the stop at once
        with self.ctx.lock:
            pending = self.refresh.detach()
        if pending is not None:  # a connection opened for a refresh nobody will take now
            pending[0].release()  # nobody reads it: the refresher is done with it

    def _extra_delay(self, reason: SlackRTMError) -> float:
        assert self.ctx.lock.locked()  # the supervisor asks with the lock held
        if isinstance(reason, TooManyWebsockets):
            return self.refresh.refused_current()
        return 0.0

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the client's health counter ``name`` (see ``health()``)."""
        counters = self.ctx.counters
        if counters is not None:
            counters.add(name, n)

    def acknowledge(self, bound: Bound) -> None:
        """Queue an acknowledgement for the connection its envelope came on."""
        self.write_bound(bound)

    # ================================================================ reader
    def _read_loop(self, transport: Transport) -> Tuple[SlackRTMError, Transport]:
        with self.ctx.lock:
            self.refresh.attach()  # refreshes may begin for this connection
        try:
            reason, transport = self._read_connections(transport)
        finally:
            self._discard_handover()
        return reason, transport

    def _discard_handover(self) -> None:
        """The reader stops reading this run's connections: a refresh under way is for
        nothing, and a connection it opened is closed."""
        with self.ctx.lock:
            opened = self.refresh.detach()  # no refresh may begin for a connection given up
            self.transport = None
        if opened is not None:
            opened[0].release()

    def _read_connections(self, transport: Transport) -> Tuple[SlackRTMError, Transport]:
        """The reader's loop over this run's connections, refreshes included; returns
        why reading ended and the connection it ended on.

        Each turn: (1) the stop ends it at once (a draining connection is closed first);
        (2) messages held from a refreshed connection go first once the old one is read to
        its end, else (3) one read from the draining connection, or the current one (a
        read ends empty-handed when the refresher rings the waker); a current connection
        that ends waits for a refresh under way instead of reconnecting; (4) the batch is
        processed (take_batch); (5) a drain ends on the old connection's close, or after
        DRAIN_TIMEOUT of silence; (6) a connection the refresher made ready is taken over:
        the old one gets a close frame and is drained while the new one waits. No lock is
        held across a read; the handover is taken under the client's lock
        (_take_handover), so shutdown and the refresher see one owner at a time.
        """
        current = transport
        current.set_waker(self.wake_r)
        draining: Optional[Transport] = None  # the old connection, read to its end
        drain_until = 0.0
        held: List[Message] = []  # read on the new connection before the old one ended
        while True:
            if self.stop.is_set():
                if draining is not None:
                    draining.release()
                    self._drain_pause(False)
                return WebsocketError("the client is disconnecting"), current
            if held and draining is None:
                source = current
                messages, held = held, []
            else:
                source = draining or current
                try:
                    messages = source.read()  # returns empty-handed when the refresher wakes it
                except WebsocketError as err:
                    if source is draining:
                        draining.release()
                        draining = None
                        self._drain_pause(False)
                        continue
                    nxt = self._await_handover(err)
                    if nxt is None:
                        return err, current
                    current.release()
                    current, held = nxt
                    current.set_waker(self.wake_r)
                    continue
            if messages or source.pongs:
                outcome = self.take_batch(messages, source)
                if outcome is not None:
                    if draining is not None:
                        draining.release()
                        self._drain_pause(False)
                    return outcome, current
            if draining is not None:
                if messages or source.pongs:  # still talking: the drain ends after silence
                    drain_until = monotonic() + DRAIN_TIMEOUT
                elif monotonic() > drain_until:
                    self.log.debug("the old connection did not close in time: dropped")
                    draining.release()
                    draining = None
                    self._drain_pause(False)
                continue
            if self.refresh.ready:
                nxt = self._take_handover()
                if nxt is not None:
                    self._drain_pause(True)
                    draining = current
                    draining.begin_close()
                    draining.poll_every(DRAIN_TIMEOUT)  # a read returns by the deadline
                    drain_until = monotonic() + DRAIN_TIMEOUT
                    current, held = nxt
                    current.set_waker(self.wake_r)

    def _drain_pause(self, paused: bool) -> None:
        """While the old connection drains, the new one is not read: its keep-alive
        deadlines stand still, as while the handlers are behind."""
        self._pause(paused, "drain")

    def _take_handover(self) -> Optional[Tuple[Transport, List[Message]]]:
        """The connection the refresher opened, now made the current one, or None."""
        ctx = self.ctx
        with ctx.lock:
            if not self.refresh.ready or self.stop.is_set():
                return None
            transport, held, data = self.refresh.take()
            self.transport = transport
            self.teardown_reason = None  # whatever killed the old connection is past
            ctx.connect_data = data
            ctx.core.switched(monotonic())
        self.count("refreshes")
        self.log.debug(f"refreshed: reading {transport.host} on a new connection")
        self.wake_writer.set()  # acks waiting for a connection go out on this one
        self.kick.set()
        return transport, held

    def _await_handover(self, err: WebsocketError) -> Optional[Tuple[Transport, List[Message]]]:
        """The current connection ended: when a refresh is under way, wait for it (the
        next connection may be moments away) instead of reconnecting."""
        deadline = monotonic() + self.ctx.hello_timeout + 5.0
        while self.refresh.worth_waiting and not self.stop.is_set() \
                and monotonic() < deadline:
            self.handed_over.wait(0.05)
        return self._take_handover()

    # ---------------------------------------------------------------- frames
    def _special(self, text: str, frame: Dict[str, Any], batch: Batch) -> bool:
        """An envelope: acknowledged at once (unless its handlers answer it, or acks are
        manual), dispatched to its handlers unless Slack delivered it before; one that
        cannot be used is acknowledged if it can be, and dropped. False: no envelope."""
        envelope_id = frame.get("envelope_id")
        if type(envelope_id) is not str or not envelope_id:
            if looks_like_envelope(frame):
                self._unusable_id(frame, batch.transport)
                batch.entries.append(Reply(text))
                return True
            return False  # no envelope: read as an event
        etype = frame.get("type")
        if not self.manual_ack and self.dispatcher.gate is None and type(etype) is str \
                and not self._handlers(etype):
            # no handler of its type, no shared filter: nobody will see a request, so
            # none is made; the envelope is acknowledged now and its inner event (if
            # any) goes out like an RTM event
            payload: Any = frame.get("payload")
            plain, event = documented(etype, payload)
            if plain:  # else the long way, which warns about it
                self.batch_ack_ids.append(envelope_id)
                if self.seen.check(envelope_id, payload.get("event_id")):
                    self._duplicate(envelope_id, text, batch)
                    return True
                if self.refresh.refusals:
                    self.refresh.delivered()  # Slack delivers again: a refusal is over
                batch.entries.append(Reply(text) if event is None else (text, event))
                return True
        request = SocketModeRequest(frame, self, batch.transport, self.manual_ack)
        payload = request.payload
        if self.seen.check(envelope_id, payload.get("event_id") if payload else None):
            self._duplicate(envelope_id, text, batch)
            self.batch_acks.append(request.acked_on_read())
            return True
        if not request._plain:  # what Slack does not document: checked, maybe dropped
            problems, drop = envelope_problems(frame)
            self.log.warn(
                f"envelope {envelope_id} ({_shown(frame.get('type'))}) has "
                f"{', '.join(problems)}: "
                + ("acknowledged and dropped" if drop else
                   "only its envelope handlers get it, its inner event is not "
                   "dispatched"))
            if drop:
                self.batch_acks.append(request.acked_on_read())
                batch.entries.append(Reply(text))
                return True
        if self.refresh.refusals:
            self.refresh.delivered()
        if not (self.manual_ack or (request.accepts_response_payload
                                    and self.ctx.registry.handlers(request.type))):
            self.batch_acks.append(request.acked_on_read())
        batch.entries.append(EnvelopeEntry(text, request.event, request))
        return True

    def _duplicate(self, envelope_id: str, text: str, batch: Batch) -> None:
        """An envelope delivered before (the redelivery filter knew it): the caller
        acknowledges it again; it is not dispatched, only ``raw_message`` handlers see it."""
        self.count("duplicates_local")
        self.log.debug(f"envelope {envelope_id} was delivered before: "
                       "acknowledged again, not dispatched")
        if self.ctx.registry.handlers("raw_message"):
            batch.entries.append(Reply(text))

    def _unparsable(self, text: str, exc: BaseException, transport: Transport) -> Entry:
        """An envelope that cannot be parsed is acknowledged by the id it carries."""
        if '"envelope_id"' in text and self._salvage(text, exc, transport):
            return Reply(text)
        return Unparsed(text)

    def _hello_frame(self, frame: Dict[str, Any], now: float) -> None:
        self._note_hello(frame, now)

    def _notable(self, etype: str, frame: Dict[str, Any], batch: Batch) -> None:
        batch.outcome = self._disconnect(frame, batch.transport) or batch.outcome

    def _sorted(self, batch: Batch) -> None:
        """Acknowledgements are written (or queued for the writer) before the envelopes
        reach any handler, so a slow handler never makes Slack redeliver."""
        acks, self.batch_acks = self.batch_acks, []
        ids, self.batch_ack_ids = self.batch_ack_ids, []
        count = len(acks) + len(ids)
        if ids:  # one Bound for them all: nobody waits for one of them alone
            acks.append(Bound(ack_texts(ids), batch.transport))
        if acks:
            self.count("acked", count)  # first: Slack may have them before write_now returns
            self.write_now(acks, batch.transport)
            if self.bound_frames >= BOUND_HIGH:
                self.wait_bound_room(batch.transport)

    def _salvage(self, text: str, exc: BaseException, transport: Transport) -> bool:
        """An envelope that cannot be parsed: acknowledge it by the id it carries, so
        Slack does not deliver it again forever. True when it was acknowledged."""
        envelope_id = recover_envelope_id(text)
        why = "nested too deep" if isinstance(exc, RecursionError) else "not valid JSON"
        if envelope_id is None:
            self.log.warn(f"dropped an envelope that cannot be parsed ({why}) and has no "
                          f"readable envelope_id: {text[:120]!r}")
            return True
        self.log.warn(f"envelope {_shown(envelope_id)} cannot be parsed ({why}): "
                      "acknowledged and dropped")
        if isinstance(envelope_id, str):
            self.seen.check(envelope_id, None)
        self.write_bound_many([Bound(_encode({"envelope_id": envelope_id}), transport, None)])
        return True

    def _unusable_id(self, frame: Dict[str, Any], transport: Transport) -> None:
        """An envelope whose ``envelope_id`` is missing, empty, null or not a string: never
        handed to a handler (it could not be acknowledged); one with a number as its id
        is acknowledged with that number."""
        envelope_id = frame.get("envelope_id")
        kind = _shown(frame.get("type"))
        if usable_id(envelope_id):
            self.log.warn(f"envelope {kind} has the number {envelope_id!r} as its "
                          "envelope_id: acknowledged with it, and dropped")
            self.write_bound_many([Bound(_encode({"envelope_id": envelope_id}), transport,
                                         None)])
            return
        what = "no envelope_id" if "envelope_id" not in frame else \
            f"the envelope_id {_shown(envelope_id)}"
        self.log.warn(f"envelope {kind} has {what}: it cannot be acknowledged, and is "
                      "dropped")

    def _note_hello(self, frame: Dict[str, Any], now: float) -> None:
        """Remember what hello says; schedule a refresh before the connection's end."""
        info = _hello_info(frame)
        self.ctx.note_hello(info.get("num_connections"))
        with self.ctx.lock:
            if self.ctx.connect_data is not None:
                self.ctx.connect_data = dict(self.ctx.connect_data, **info)
        debug = frame.get("debug_info")
        life = debug.get("approximate_connection_time") if isinstance(debug, dict) else None
        if isinstance(life, (int, float)) and not isinstance(life, bool) and life > 0:
            with self.ctx.lock:
                self.refresh.lifetime(float(life))
            self.refresh_wanted.set()  # the refresher re-reads when it is due

    def _disconnect(self, frame: Dict[str, Any],
                    transport: Transport) -> Optional[SlackRTMError]:
        reason = str(frame.get("reason") or "")
        if transport is not self.transport:
            return None  # the old connection of a refresh says goodbye: expected
        if reason in REFRESH_REASONS:
            self.log.debug(f"Slack asked for a refresh ({reason}): opening the next "
                           "connection before closing this one")
            with self.ctx.lock:  # a refresh under way already answers this request
                wake = self.refresh.ask()
            if wake:
                self.refresh_wanted.set()
            return None
        if reason == "link_disabled":
            return PlatformError(LINK_DISABLED, error="link_disabled", data=frame)
        # any other outcome: take_batch closes the connection once the batch is queued
        if reason == "too_many_websockets":
            return TooManyWebsockets(
                "Slack refused the connection: too many WebSocket connections for this app "
                "(too_many_websockets)")
        return ReconnectRequested(f"Slack sent disconnect ({reason or 'no reason'}): it closes "
                                  "this connection", event="disconnect", reason=reason)

    # ================================================================ refresher
    def _refresher_main(self) -> None:
        while not self.stop.is_set():
            try:
                with self.ctx.lock:
                    wait = self.refresh.wait_time(30.0)
                if wait > 0:
                    self.refresh_wanted.wait(wait)
                self.refresh_wanted.clear()
                if self.stop.is_set():
                    return
                self._refresh()
            except BaseException as exc:
                self.log.error("the refresher thread failed unexpectedly", exc)
                self.stop.wait(1.0)

    def _refresh(self) -> None:
        """Begin the refresh if one is due; open the next connection; tell the reader."""
        ctx = self.ctx
        with ctx.lock:
            ticket = self.refresh.begin(ctx.core.state is State.READY)
            if ticket is None:
                return
            self.handed_over.clear()
        late: Optional[Handover] = None
        try:
            opened = self._open_next()
        except TooManyWebsockets as err:
            with ctx.lock:
                delay = self.refresh.refused(ticket)
            if delay is not None:
                self.log.warn(f"{err}: the current connection is kept, the refresh is "
                              f"tried again in {delay:.1f} s")
        except Exception as err:  # whatever went wrong, the reader must hear of it
            self.log.warn(f"refreshing the connection failed: {err}; the current one is "
                          "kept until it ends, then the client reconnects")
            with ctx.lock:
                self.refresh.failed(ticket)
        else:
            with ctx.lock:
                if self.stop.is_set():
                    self.refresh.failed(ticket)
                if self.stop.is_set() or not self.refresh.opened(ticket, opened):
                    late = opened  # the reader gave the connection up meanwhile
        if late is not None:
            late[0].release()
        self.handed_over.set()
        self._wake_reader()

    def _wake_reader(self) -> None:
        try:
            self.wake_w.send(b"\0")
        except OSError:  # the pair is closed (the run ended) or full (a wake is pending)
            pass

    def _release(self) -> None:
        super()._release()
        for end in (self.wake_r, self.wake_w):
            end.close()

    def _open_next(self) -> Handover:
        """The next connection, read up to and including its ``hello``; the connect data
        carries that hello's information at once (``app_id`` stays known).

        Slack refuses a connection over the app's limit with ``disconnect`` /
        ``too_many_websockets`` before any hello: that raises :class:`TooManyWebsockets`
        at once, and any other ``disconnect`` before hello a :class:`WebsocketError`
        (the socket is closed either way)."""
        data = self.call_web(self.source_method, self.args)
        transport = self.open_transport(data["url"])
        held: List[Message] = []
        hello: Optional[Dict[str, Any]] = None
        deadline = monotonic() + self.ctx.hello_timeout
        transport.poll_every(0.05)
        try:
            while hello is None:
                if self.stop.is_set():
                    raise WebsocketError("the client is disconnecting")
                if monotonic() > deadline:
                    raise WebsocketError(f"no hello from Slack within "
                                         f"{self.ctx.hello_timeout:g} s of refreshing")
                batch = transport.read()
                for message in batch:
                    # after hello, frames are the reader's (a disconnect then is the new
                    # connection's own, handled once it is current)
                    frame = None if hello is not None else _control_of(message)
                    if frame is None:
                        held.append(message)
                        continue
                    if frame.get("type") == "hello":
                        hello = frame
                        held.append(message)
                        continue
                    reason = str(frame.get("reason") or "no reason")
                    if reason == "too_many_websockets":
                        raise TooManyWebsockets(
                            "Slack refused the refresh's connection: too many WebSocket "
                            "connections for this app (too_many_websockets)")
                    raise WebsocketError(f"Slack sent disconnect ({reason}) on the refresh's "
                                         "connection before its hello")
        except BaseException:
            transport.release()
            raise
        transport.take_pongs()
        transport.poll_every(None)
        return transport, held, dict(data, **_hello_info(hello))


def _shown(value: Any) -> str:
    """A server value for a log line: short, whatever it is."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _control_of(message: Message) -> Optional[Dict[str, Any]]:
    """A ``hello`` or ``disconnect`` frame among read messages, or None."""
    text = message[0]
    if text is None or not ('"hello"' in text or '"disconnect"' in text):
        return None
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if isinstance(frame, dict) and frame.get("type") in ("hello", "disconnect") \
            and "envelope_id" not in frame:
        return frame
    return None


def _hello_info(frame: Dict[str, Any]) -> Dict[str, Any]:
    """What a hello tells about the connection (kept with the connect data)."""
    return {k: frame[k] for k in ("num_connections", "connection_info", "debug_info")
            if k in frame}
