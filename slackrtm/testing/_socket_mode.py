"""Socket Mode in FakeSlack: connections opened with apps.connections.open, envelopes,
acks, redelivery and the ``disconnect`` frames.

A mixin of :class:`FakeSlack` on top of :class:`Serving`: it takes the connections whose
ticket came from apps.connections.open and leaves RTM to the classes below it.

Routing: each envelope goes to ONE connection, the newest open one whose hello was sent and
that was not told to go away (a ``disconnect`` frame). With none, envelopes are held in
order and written, in order, right after the next connection's hello. An envelope not
acked within ``ack_timeout`` seconds is routed again (a new envelope id, ``retry_attempt``
+ 1, ``retry_reason: "timeout"``, the same payload), up to ``max_retries`` times; timers
run on the shared :class:`Scheduler`, one per written batch.
"""

from __future__ import annotations

import copy
import itertools
import json
import secrets
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Set, Tuple, Union

from slackrtm.testing import _envelopes as env
from slackrtm.testing import _ws
from slackrtm.testing._conn import FakeConnection
from slackrtm.testing._driving import Target
from slackrtm.testing._envelopes import Ack, Sent
from slackrtm.testing._net import url_host
from slackrtm.testing._serving import Serving, Ticket
from slackrtm.testing._workspace import APP_ID

SOCKET = "socket_mode"


class SocketMode(Serving):
    """Socket Mode connections, envelopes, acks and redelivery (mixed into :class:`FakeSlack`)."""

    _closed: bool

    if TYPE_CHECKING:
        def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0,
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
    def _open_connection(self, sock: socket.socket, ticket: Ticket,
                         response: bytes) -> FakeConnection:
        if ticket.kind != SOCKET:
            return super()._open_connection(sock, ticket, response)
        with self._cond:
            self._socket_connect_count += 1
            conn = FakeConnection(self, self._server, sock, next(self._conn_ids),
                                  ticket.params, ticket.method, kind=SOCKET)
            self._socket_conns.append(conn)
            self._all_socket_conns.append(conn)
            conn._start(response)
            if not self.hold_hello:
                self._send_hello(conn)
            self._cond.notify_all()
        return conn

    def _send_hello(self, conn: FakeConnection) -> bool:
        if conn.kind != SOCKET:
            return super()._send_hello(conn)
        with self._cond:
            count = len(self._socket_conns)
            if not conn.send_event(env.hello(count, self.connection_time)):
                return False
            conn.hello_sent = True
            if count > self.max_socket_connections:
                self._go_away(conn, "too_many_websockets", self.close_delay)
            elif self._held:
                items = list(self._held)
                self._held.clear()
                if not self._write(conn, items):
                    self._held.extendleft(reversed(items))
            self._cond.notify_all()
            return True

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

    def _deliver(self, items: List[Sent], to: Optional[FakeConnection] = None) -> Optional[int]:
        """Write ``items`` to ``to``, or route them; returns the connection id (None: held)."""
        if to is not None:
            if self._write(to, items):
                return to.id
            self._arm(items)  # written to a dead connection: lost there, retried by routing
            return None
        for conn in reversed(self._socket_conns):
            if conn.hello_sent and not conn.going_away and self._write(conn, items):
                return conn.id
        self._held.extend(items)
        self._cond.notify_all()
        return None

    def _arm(self, items: List[Sent]) -> None:
        auto = [s for s in items if s.auto]
        if auto and self.redelivery and not self._closed:
            self._scheduler.call_later(self.ack_timeout, lambda: self._expire(auto))

    def _expire(self, items: List[Sent]) -> None:
        with self._cond:
            if self._closed or not self.redelivery:
                return
            again = [self._retry(s, new_id=True, auto=True) for s in items
                     if s.origin not in self._acked_origins and s.attempt < self.max_retries]
            if again:
                self._deliver(again)

    def _retry(self, s: Sent, *, new_id: bool, auto: bool) -> Sent:
        eid = env.envelope_ids(1)[0] if new_id else s.envelope_id
        again = Sent(eid, s.origin, env.retry_text(s.text, eid, s.attempt + 1, "timeout"),
                     s.attempt + 1, auto)
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
            s = Sent(str(envelope["envelope_id"]), origin, text)
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

    # -- sending envelopes ---------------------------------------------------------------
    def events_api(self, event: Dict[str, Any], *, to: Target = None) -> Dict[str, Any]:
        """Send ``event`` (any inner event) to Socket Mode as an ``events_api`` envelope:
        routed to the newest usable connection (or held for the next one), or to ``to``.
        Redelivered until acked. Returns the envelope."""
        if not isinstance(event, dict):
            raise TypeError(f"event must be a dict, not {type(event).__name__}")
        conn = self._socket_target(to)
        with self._cond:
            eid, event_id = env.envelope_ids(1)[0], f"Ev0FAKE{next(self._event_seq):08d}"
            text = self._template.text(eid, json.dumps(event), event_id, int(time.time()))
            s = Sent(eid, event_id, text)
            self._sent[eid] = s
            self._deliver([s], conn)
        return json.loads(text)  # type: ignore[no-any-return]

    def slash_command(self, command: str, text: str = "", user: Optional[str] = None,
                      channel: Optional[str] = None, *, to: Target = None) -> Dict[str, Any]:
        """``user`` (default alice) runs ``command`` (``"/deploy"``) with ``text`` in
        ``channel`` (default #general): a ``slash_commands`` envelope that accepts a response
        payload, its payload shaped like Slack's (string values; ``response_url`` points at
        FakeSlack but is not served). Returns the envelope."""
        if not isinstance(command, str) or not command.startswith("/") or len(command) < 2:
            raise ValueError(f"command must look like '/name', not {command!r}")
        with self._cond:
            uid = self._ws.user_id(user) if user else self._default_human()
            cid = self._ws.channel_id(channel or "general")
            eid, team = env.envelope_ids(1)[0], self._ws.team
            scheme = "https" if self._tls else "http"
            base = f"{scheme}://{url_host(self._server.host)}:{self._server.port}"
            payload = {
                "token": self.verification_token, "team_id": team["id"],
                "team_domain": team["domain"], "channel_id": cid,
                "channel_name": self._ws.channels[cid]["name"], "user_id": uid,
                "user_name": self._ws.users[uid]["name"], "command": command, "text": text,
                "api_app_id": APP_ID, "is_enterprise_install": "false",
                "response_url": f"{base}/commands/{team['id']}/{secrets.randbelow(10**12)}/"
                                f"{secrets.token_hex(12)}",
                "trigger_id": f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**12)}."
                              f"{secrets.token_hex(16)}"}
            envelope = env.envelope(eid, "slash_commands", payload,
                                    accepts_response_payload=True)
            return self._send_new(envelope, eid, to)

    def interactive(self, payload: Dict[str, Any], *, accepts_response_payload: bool = False,
                    to: Target = None) -> Dict[str, Any]:
        """Send an ``interactive`` envelope carrying ``payload`` (a block action, a view
        submission, ...) as given. Returns the envelope."""
        if not isinstance(payload, dict):
            raise TypeError(f"payload must be a dict, not {type(payload).__name__}")
        eid = env.envelope_ids(1)[0]
        envelope = env.envelope(eid, "interactive", copy.deepcopy(payload),
                                accepts_response_payload=accepts_response_payload)
        return self._send_new(envelope, eid, to)

    def send_envelope(self, envelope: Dict[str, Any], *, to: Target = None) -> Optional[int]:
        """Send ``envelope`` exactly as given (a duplicate, a malformed one, ...), routed or
        to ``to``; never redelivered automatically, but :meth:`redeliver` and acks know it
        when it has a string ``envelope_id``. Returns the connection id (None: held)."""
        if not isinstance(envelope, dict):
            raise TypeError(f"envelope must be a dict, not {type(envelope).__name__}")
        conn = self._socket_target(to)
        text = json.dumps(envelope)
        eid = envelope.get("envelope_id")
        payload = envelope.get("payload")
        event_id = payload.get("event_id") if isinstance(payload, dict) else None
        with self._cond:
            s = Sent(eid if isinstance(eid, str) else "", str(event_id or eid), text, auto=False)
            if isinstance(eid, str):
                self._sent[eid] = s
            return self._deliver([s], conn)

    def redeliver(self, envelope_id: str, *, same_id: bool = True,
                  to: Target = None) -> Dict[str, Any]:
        """Send the recorded envelope ``envelope_id`` again now, with ``retry_attempt`` + 1
        and ``retry_reason: "timeout"``: with the same id (``same_id``) or a new one (same
        payload and ``event_id``). KeyError for an id never sent. Returns the new envelope."""
        conn = self._socket_target(to)
        with self._cond:
            sent = self._sent.get(envelope_id)
            if sent is None:
                raise KeyError(f"FakeSlack sent no envelope {envelope_id!r}")
            again = self._retry(sent, new_id=not same_id, auto=False)
            self._deliver([again], conn)
            return json.loads(again.text)  # type: ignore[no-any-return]

    # -- telling connections to go -------------------------------------------------------
    def _socket_targets(self, to: Target) -> List[FakeConnection]:
        with self._cond:
            if to is None:
                return list(self._socket_conns)
            return [c for c in [self._socket_target(to)] if c is not None]

    def refresh(self, warning_first: bool = True, grace: float = 1.0,
                to: Target = None) -> List[FakeConnection]:
        """Rotate Socket Mode connections (all open ones, or ``to``) as Slack does.

        With ``warning_first``: ``disconnect`` reason ``warning`` now (no envelope is routed
        to the connection any more), ``refresh_requested`` ``grace`` seconds later, then a
        close frame (1001) ``close_delay`` seconds after that unless the client closed
        first. Without: ``refresh_requested`` now, the close ``close_delay`` later.
        Returns the connections."""
        targets = self._socket_targets(to)
        with self._cond:
            for conn in targets:
                if warning_first:
                    self._go_away(conn, "warning", None)
                    self._scheduler.call_later(grace, self._refresher(conn))
                else:
                    self._go_away(conn, "refresh_requested", self.close_delay)
        return targets

    def _refresher(self, conn: FakeConnection) -> Callable[[], None]:
        def refresh() -> None:
            with self._cond:
                self._go_away(conn, "refresh_requested", self.close_delay)
        return refresh

    def disconnect(self, reason: str = "refresh_requested",
                   to: Target = None) -> List[FakeConnection]:
        """Send ``{"type": "disconnect", "reason": reason}`` to Socket Mode connections (all
        open ones, or ``to``; ``link_disabled``, ``too_many_websockets``, ... are just
        reasons), route nothing more to them and close them ``close_delay`` seconds later.
        Returns the connections."""
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"reason must be a non-empty string, not {reason!r}")
        targets = self._socket_targets(to)
        with self._cond:
            for conn in targets:
                self._go_away(conn, reason, self.close_delay)
        return targets

    # -- inspection ----------------------------------------------------------------------
    @property
    def acks(self) -> List[Ack]:
        """Every ack (a Socket Mode frame with an ``envelope_id``) received, in order."""
        with self._cond:
            return list(self._acks)

    def acked(self, envelope_id: str) -> bool:
        """Whether an ack for ``envelope_id`` arrived."""
        with self._cond:
            return envelope_id in self._acked_ids

    @property
    def delivered(self) -> List[Tuple[int, Dict[str, Any]]]:
        """``(connection id, envelope)`` for every envelope written, in send order (copies)."""
        with self._cond:
            records = list(self._delivered)
        return [(cid, json.loads(text)) for cid, text in records]

    @property
    def held(self) -> List[Dict[str, Any]]:
        """Copies of the envelopes waiting for a Socket Mode connection, in order."""
        with self._cond:
            return [json.loads(s.text) for s in self._held]

    @property
    def socket_connections(self) -> List[FakeConnection]:
        """The Socket Mode connections currently open, oldest first."""
        with self._cond:
            return list(self._socket_conns)

    @property
    def all_socket_connections(self) -> List[FakeConnection]:
        """Every Socket Mode connection ever accepted, open or closed, oldest first."""
        with self._cond:
            return list(self._all_socket_conns)

    @property
    def socket_connect_count(self) -> int:
        """How many Socket Mode connections were accepted (101 sent) in total."""
        with self._cond:
            return self._socket_connect_count

    def wait_for_acks(self, count: int = 1, timeout: float = 5.0) -> List[Ack]:
        """Wait until at least ``count`` acks arrived; returns all of them so far."""
        self.wait_until(lambda: len(self._acks) >= count, timeout,
                        lambda: f"{count} ack(s); got {len(self._acks)}")
        return self.acks

    def wait_for_delivered(self, count: int = 1,
                           timeout: float = 5.0) -> List[Tuple[int, Dict[str, Any]]]:
        """Wait until at least ``count`` envelopes were written; returns :attr:`delivered`."""
        self.wait_until(lambda: len(self._delivered) >= count, timeout,
                        lambda: f"{count} delivered envelope(s); got {len(self._delivered)} "
                                f"({len(self._held)} held)")
        return self.delivered

    def wait_for_socket_connections(self, n: int = 1,
                                    timeout: float = 5.0) -> List[FakeConnection]:
        """Wait until at least ``n`` Socket Mode connections are open; returns them."""
        self.wait_until(lambda: len(self._socket_conns) >= n, timeout,
                        lambda: f"{n} open Socket Mode connection(s); "
                                f"{len(self._socket_conns)} open, "
                                f"{self._socket_connect_count} accepted in total")
        return self.socket_connections

    def wait_for_socket_connect_count(self, n: int, timeout: float = 5.0) -> int:
        """Wait until ``n`` Socket Mode connections were accepted in total; returns it."""
        self.wait_until(lambda: self._socket_connect_count >= n, timeout,
                        lambda: f"{n} accepted Socket Mode connection(s); "
                                f"{self._socket_connect_count} so far")
        return self.socket_connect_count


def _closer(conn: FakeConnection, reason: str) -> Callable[[], None]:
    def close() -> None:
        conn.close(reason=reason)
    return close
