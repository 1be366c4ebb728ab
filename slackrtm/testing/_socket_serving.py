"""Socket Mode in FakeSlack, the serving side: connections opened with
apps.connections.open, their hello, acks, and the routing and redelivery of envelopes.

A mixin on top of :class:`Serving`: it takes the connections whose ticket came from
apps.connections.open and leaves RTM to the classes below it.

Routing: each envelope goes to ONE connection among the open ones whose hello was sent and
that were not told to go away (a ``disconnect`` frame): the newest by default, or by the
policy in ``socket_routing`` (see ``_routing``); a retry goes to another connection than
its previous attempt when there is one. With none, ``offline_envelopes``
says what happens: ``"hold"`` (the default) keeps them in order and writes them, in order,
right after the next connection's hello; ``"retry"`` tries each again every
``ack_timeout`` seconds (a new envelope id, ``retry_attempt`` + 1), up to ``max_retries``
times, then drops it; ``"drop"`` drops it at once. Dropped envelopes are listed in
``dropped_envelopes``. An envelope not acked within ``ack_timeout`` seconds is routed
again (a new envelope id, ``retry_attempt`` + 1, ``retry_reason: "timeout"``, the same
payload), up to ``max_retries`` times; timers run on the shared :class:`Scheduler`, one
per written batch. Every connection open counts against ``max_socket_connections``, those
of a refresh under way included. Everything here runs with the workspace lock held, so
envelopes keep the order they were made in.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Set, Tuple, Union

from slackrtm.testing import _envelopes as env
from slackrtm.testing import _ws
from slackrtm.testing._conn import FakeConnection
from slackrtm.testing._driving import Target
from slackrtm.testing._envelopes import Ack, MissedAck, Sent
from slackrtm.testing._routing import Router, by_previous
from slackrtm.testing._serving import Serving, Ticket

SOCKET = "socket_mode"
#: The values of ``FakeSlack.offline_envelopes``.
OFFLINE_POLICIES = ("hold", "retry", "drop")
#: What hello announces to a ``debug_reconnects=true`` connection (seconds), and how long
#: before that connection's end the ``warning`` comes.
DEBUG_CONNECTION_TIME = 360
DEBUG_WARNING_GRACE = 10.0


class SocketServing(Serving):
    """Socket Mode connections, acks, routing and redelivery (under :class:`SocketMode`)."""

    _closed: bool

    if TYPE_CHECKING:
        def _answer_ack(self, envelope: Dict[str, Any], payload: Any) -> None: ...

        def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0,
                       what: Union[str, Callable[[], str]] = "a condition") -> None: ...

    def _init_socket_mode(self, app_token: Optional[str]) -> None:
        #: The app-level token apps.connections.open accepts (``xapp-1-A0FAKE-...``).
        self.app_token: str = app_token or env.new_app_token()
        #: The legacy verification token put in every payload's ``token``.
        self.verification_token = env.new_verification_token()
        #: Whether workspace events become ``events_api`` envelopes (held while no Socket
        #: Mode connection is open). Set by the first apps.connections.open answered ok.
        self.socket_mode_active = False
        self.connection_time = 18060
        self.ack_timeout = 3.0
        self.max_retries = 3
        self.redelivery = True
        self.close_delay = 0.5
        self.max_socket_connections = 10
        #: What becomes of an envelope produced while no Socket Mode connection can take
        #: it: "hold" (until one can), "retry" (every ack_timeout, max_retries times, then
        #: dropped) or "drop" (at once).
        self.offline_envelopes = "hold"
        self._dropped: List[Dict[str, Any]] = []
        #: Which open connection gets each envelope: "newest", "round_robin" or "random".
        self.socket_routing = "newest"
        #: The fraction of envelopes sent twice at once (a retry on another connection).
        self.duplicate_rate = 0.0
        self._router = Router()
        #: Seconds between the WebSocket pings Slack sends each Socket Mode connection
        #: (None: none). Read when a connection opens and at each ping.
        self.ping_interval: Optional[float] = 10.0
        #: ``debug_reconnects`` connections last 360 s times this (tests make it small).
        self.debug_reconnect_scale = 1.0
        self._missed_acks: List[MissedAck] = []
        self._missed_ids: Set[str] = set()
        self._socket_conns: List[FakeConnection] = []
        self._all_socket_conns: List[FakeConnection] = []
        self._socket_connect_count = 0
        self._held: Deque[Sent] = deque()
        self._sent: Dict[str, Sent] = {}
        self._acked_origins: Set[str] = set()
        self._acked_ids: Set[Any] = set()
        self._acks: List[Ack] = []
        self._delivered: List[Tuple[int, str]] = []
        self._event_seq = itertools.count(1)
        self._template = env.EventsTemplate(self.verification_token, str(self._ws.team["id"]),
                                            self._ws.bot_user_id)

    # -- connections (called by the request and connection threads) ----------------------
    def _open_connection(self, sock: socket.socket, ticket: Ticket, response: bytes,
                         query: Optional[Dict[str, str]] = None) -> FakeConnection:
        if ticket.kind != SOCKET:
            return super()._open_connection(sock, ticket, response, query)
        with self._cond:
            self._socket_connect_count += 1
            conn = FakeConnection(self, self._server, sock, next(self._conn_ids),
                                  ticket.params, ticket.method, kind=SOCKET)
            conn.debug_reconnects = (query or {}).get("debug_reconnects") == "true"
            self._socket_conns.append(conn)
            self._all_socket_conns.append(conn)
            conn._start(response)
            if self._live_count() > self.max_socket_connections:
                # as Slack: the connection over the app's limit gets no hello, only this
                self._go_away(conn, "too_many_websockets", self.close_delay)
            elif not self.hold_hello:
                self._send_hello(conn)
            self._ping_later(conn)
            self._cond.notify_all()
        return conn

    def _live_count(self) -> int:
        """Open Socket Mode connections, not counting those refused over the limit."""
        return sum(1 for c in self._socket_conns if c.hello_sent or not c.going_away)

    def _ping_later(self, conn: FakeConnection) -> None:
        """Slack pings each Socket Mode connection every ``ping_interval`` seconds."""
        interval = self.ping_interval
        if interval is None or interval <= 0 or self._closed:
            return

        def ping() -> None:
            with self._cond:
                if conn.open and not self._closed:
                    conn.ping(f"Ping from {env.DEBUG_HOST}".encode("ascii"))
                    self._ping_later(conn)
        self._scheduler.call_later(interval, ping)

    def _send_hello(self, conn: FakeConnection) -> bool:
        if conn.kind != SOCKET:
            return super()._send_hello(conn)
        with self._cond:
            if conn.going_away and not conn.hello_sent:
                return False  # refused (too_many_websockets) or told to go before hello
            count = self._live_count()
            life = DEBUG_CONNECTION_TIME if conn.debug_reconnects else self.connection_time
            if not conn.send_event(env.hello(count, life)):
                return False
            conn.hello_sent = True
            if conn.debug_reconnects:
                self._debug_refresh_later(conn)
            if self._held:
                items = list(self._held)
                self._held.clear()
                if not self._write(conn, items):
                    self._held.extendleft(reversed(items))
            self._cond.notify_all()
            return True

    def _debug_refresh_later(self, conn: FakeConnection) -> None:
        """A ``debug_reconnects`` connection is refreshed after about 360 s (times
        ``debug_reconnect_scale``): ``warning``, then ``refresh_requested`` 10 s later."""
        scale = self.debug_reconnect_scale
        grace = DEBUG_WARNING_GRACE * scale

        def warn() -> None:
            with self._cond:
                if conn.open and not conn.going_away and not self._closed:
                    self._go_away(conn, "warning", None)
                    self._scheduler.call_later(grace, ask)

        def ask() -> None:
            with self._cond:
                if conn.open and not self._closed:
                    self._go_away(conn, "refresh_requested", self.close_delay)
        self._scheduler.call_later(max(0.0, DEBUG_CONNECTION_TIME * scale - grace), warn)

    def _on_closed(self, conn: FakeConnection) -> None:
        if conn.kind != SOCKET:
            super()._on_closed(conn)
            return
        with self._cond:
            if conn in self._socket_conns:
                self._socket_conns.remove(conn)
            self._cond.notify_all()

    def _on_text(self, conn: FakeConnection, text: str) -> None:
        if conn.kind != SOCKET:
            super()._on_text(conn, text)
            return
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        with self._cond:
            if not isinstance(frame, dict):
                self._unparsed.append(text)
            elif "envelope_id" in frame:
                self._record_ack(conn, frame)
            else:  # not an ack: recorded, never answered (Socket Mode has no JSON ping)
                conn._received.append(frame)
                self._received.append(frame)
            self._cond.notify_all()

    def _record_ack(self, conn: FakeConnection, frame: Dict[str, Any]) -> None:
        now = time.monotonic()
        eid = frame["envelope_id"]
        sent = self._sent.get(eid) if isinstance(eid, str) else None
        late = False
        if sent is not None:
            self._acked_origins.add(sent.origin)
            late = sent.sent_at is not None and now - sent.sent_at > self.ack_timeout
        try:
            self._acked_ids.add(eid)
        except TypeError:  # an unhashable id (a list, ...): recorded in acks only
            pass
        if sent is not None and sent.watch and frame.get("payload") is not None \
                and '"slash_commands"' in sent.text:
            envelope = json.loads(sent.text)
            if envelope.get("type") == "slash_commands":
                self._answer_ack(envelope, frame.get("payload"))
        ack = Ack(eid, frame.get("payload"), conn.id, now, late)
        self._acks.append(ack)
        conn.acks.append(ack)

    # -- routing (always with the lock held) ---------------------------------------------
    def _write(self, conn: FakeConnection, items: List[Sent]) -> bool:
        if not conn.send_bytes(b"".join(_ws.text_frame(s.text) for s in items)):
            return False
        now = time.monotonic()
        for s in items:
            s.sent_at, s.conn_id = now, conn.id
            self._delivered.append((conn.id, s.text))
        self._arm(items)
        self._cond.notify_all()
        return True

    def _deliver(self, items: List[Sent], to: Optional[FakeConnection] = None,
                 avoid: Optional[int] = None) -> Optional[int]:
        """Write ``items`` to ``to``, or route them (away from connection ``avoid`` when
        another is open); returns the first connection id written to (None: held)."""
        if to is not None:
            if self._write(to, items):
                return to.id
            self._arm(items)  # written to a dead connection: lost there, retried by routing
            return None
        self._router.policy = self._router.check(self.socket_routing)
        usable = [c for c in self._socket_conns if c.hello_sent and not c.going_away]
        written: Optional[int] = None
        unsent: List[Sent] = []
        twice: List[Tuple[int, Sent]] = []
        for order, run in self._router.spread(items, usable, avoid):
            conn = next((c for c in order if self._write(c, run)), None)
            if conn is None:
                unsent.extend(run)
                continue
            if written is None:
                written = conn.id
            if self.duplicate_rate > 0:
                twice.extend((conn.id, self._retry(s, new_id=True, auto=True)) for s in run
                             if s.auto and s.attempt == 0
                             and self._router.rng.random() < self.duplicate_rate)
        if unsent:
            self._offline_items(unsent)
        for conn_id, again in twice:
            self._deliver([again], avoid=conn_id)
        return written

    def _offline_items(self, items: List[Sent]) -> None:
        """Envelopes no connection could take: as ``offline_envelopes`` says."""
        policy = self.offline_envelopes
        if policy not in OFFLINE_POLICIES:
            raise ValueError(f"offline_envelopes must be one of {OFFLINE_POLICIES}, got "
                             f"{policy!r}")
        if policy == "hold":
            self._held.extend(items)
        else:
            later = [s for s in items if policy == "retry" and s.attempt < self.max_retries
                     and not self._closed]
            self._dropped.extend(json.loads(s.text) for s in items if s not in later)
            if later:
                self._scheduler.call_later(self.ack_timeout, lambda: self._offline(later))
        self._cond.notify_all()

    def _offline(self, items: List[Sent]) -> None:
        """Slack tries envelopes it could not deliver again, a few times."""
        with self._cond:
            if not self._closed:
                self._deliver([self._retry(s, new_id=True, auto=s.auto) for s in items])

    @property
    def dropped_envelopes(self) -> List[Dict[str, Any]]:
        """Envelopes given up while no Socket Mode connection could take them (see
        ``offline_envelopes``), in order."""
        with self._cond:
            return list(self._dropped)

    def _arm(self, items: List[Sent]) -> None:
        auto = [s for s in items if s.auto]
        if auto and self.redelivery and not self._closed:
            self._scheduler.call_later(self.ack_timeout, lambda: self._expire(auto))
        watched = [s for s in items if s.watch]
        if watched and not self._closed:
            self._scheduler.call_later(self.ack_timeout, lambda: self._missed(watched))

    def _missed(self, items: List[Sent]) -> None:
        """Slack does not redeliver a slash command or an interaction: the user sees an
        error once ``ack_timeout`` passed without an ack. Recorded in ``missed_acks``."""
        with self._cond:
            now = time.monotonic()
            for s in items:
                if s.origin in self._acked_origins or s.envelope_id in self._missed_ids:
                    continue
                self._missed_ids.add(s.envelope_id)
                envelope = json.loads(s.text)
                self._missed_acks.append(MissedAck(s.envelope_id, str(envelope.get("type")),
                                                   envelope, s.conn_id, now))
            self._cond.notify_all()

    def _expire(self, items: List[Sent]) -> None:
        with self._cond:
            if self._closed or not self.redelivery:
                return
            due = [s for s in items
                   if s.origin not in self._acked_origins and s.attempt < self.max_retries]
            for previous, group in by_previous(due).items():
                self._deliver([self._retry(s, new_id=True, auto=True) for s in group],
                              avoid=previous)

    def _retry(self, s: Sent, *, new_id: bool, auto: bool) -> Sent:
        eid = env.envelope_ids(1)[0] if new_id else s.envelope_id
        again = Sent(eid, s.origin, env.retry_text(s.text, eid, s.attempt + 1, "timeout"),
                     s.attempt + 1, auto, s.watch)
        self._sent[eid] = again
        return again

    def _route_events(self, texts: List[str], to: Target = None) -> None:
        conn: Optional[FakeConnection] = None
        if to is not None:
            conn = self._targets(to)[0]
            if conn.kind != SOCKET:
                return
        elif not self.socket_mode_active:
            return
        now = int(time.time())
        items = []
        for eid, text in zip(env.envelope_ids(len(texts)), texts):
            event_id = f"Ev0FAKE{next(self._event_seq):08d}"
            s = Sent(eid, event_id, self._template.text(eid, text, event_id, now))
            self._sent[eid] = s
            items.append(s)
        self._deliver(items, conn)

    def _socket_target(self, to: Target) -> Optional[FakeConnection]:
        if to is None:
            return None
        conn = self._targets(to)[0]
        if conn.kind != SOCKET:
            raise ValueError(f"connection {conn.id} is an RTM connection, not Socket Mode")
        return conn

    def _send_new(self, envelope: Dict[str, Any], origin: str, to: Target) -> Dict[str, Any]:
        conn = self._socket_target(to)
        text = json.dumps(envelope)
        with self._cond:
            # Slack never sends a slash command or an interaction again: missed acks are
            # recorded instead (see _missed)
            s = Sent(str(envelope["envelope_id"]), origin, text, auto=False, watch=True)
            self._sent[s.envelope_id] = s
            self._deliver([s], conn)
        return json.loads(text)  # type: ignore[no-any-return]

    def _go_away(self, conn: FakeConnection, reason: str, close_in: Optional[float]) -> bool:
        conn.going_away = True
        sent = conn.send_event(env.disconnect(reason))
        if sent and close_in is not None:
            self._scheduler.call_later(close_in, _closer(conn, reason))
        self._cond.notify_all()
        return sent


def _closer(conn: FakeConnection, reason: str) -> Callable[[], None]:
    def close() -> None:
        conn.close(reason=reason)
    return close
