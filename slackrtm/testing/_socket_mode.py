"""Socket Mode in FakeSlack, the driving side: sending envelopes (events, slash commands,
interactions, raw ones, redeliveries), telling connections to go, and inspection.

A mixin of :class:`FakeSlack` on top of :class:`SocketServing` (which routes envelopes and
handles the connections); every method is thread-safe and returns at once.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from slackrtm.testing import _envelopes as env
from slackrtm.testing._conn import FakeConnection
from slackrtm.testing._driving import Target
from slackrtm.testing._envelopes import Ack, MissedAck, Sent
from slackrtm.testing._net import url_host
from slackrtm.testing._responses import Responses
from slackrtm.testing._socket_serving import SocketServing
from slackrtm.testing._workspace import APP_ID


class SocketMode(SocketServing, Responses):
    """Socket Mode envelopes, disconnects and inspection (mixed into :class:`FakeSlack`)."""

    # -- sending envelopes ---------------------------------------------------------------
    def events_api(self, event: Dict[str, Any], *, to: Target = None) -> Dict[str, Any]:
        """Send ``event`` (any inner event) to Socket Mode as an ``events_api`` envelope.

        It is routed to the newest open connection that got its hello and was not told to
        go (held, in order, for the next connection if there is none), or written to the
        Socket Mode connection ``to``. It is redelivered until acked (see ``ack_timeout``).
        Every workspace event FakeSlack sends RTM clients is also sent this way once
        ``socket_mode_active`` is true. Returns the envelope (a copy).
        """
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
        payload, its payload shaped like Slack's (string values). Its ``response_url`` is
        served: answers posted there (and an acknowledgement's payload) are listed in
        :attr:`responses`, and ``response_type: "in_channel"`` ones are posted to the
        channel. Not acknowledged within ``ack_timeout``, it is not sent again (as Slack:
        the user sees an error): it is listed in :attr:`missed_acks`. Returns the
        envelope."""
        if not isinstance(command, str) or not command.startswith("/") or len(command) < 2:
            raise ValueError(f"command must look like '/name', not {command!r}")
        with self._cond:
            uid = self._ws.user_id(user) if user else self._default_human()
            cid = self._ws.channel_id(channel or "general")
            eid, team = env.envelope_ids(1)[0], self._ws.team
            scheme = "https" if self._tls else "http"
            base = f"{scheme}://{url_host(self._server.host)}:{self._server.port}"
            response_url = self._new_response_url(base, str(team["id"]), cid, uid, command)
            payload = {
                "token": self.verification_token, "team_id": team["id"],
                "team_domain": team["domain"], "channel_id": cid,
                "channel_name": self._ws.channels[cid]["name"], "user_id": uid,
                "user_name": self._ws.users[uid]["name"], "command": command, "text": text,
                "api_app_id": APP_ID, "is_enterprise_install": "false",
                "response_url": response_url,
                "trigger_id": f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**12)}."
                              f"{secrets.token_hex(16)}"}
            envelope = env.envelope(eid, "slash_commands", payload,
                                    accepts_response_payload=True)
            return self._send_new(envelope, eid, to)

    def interactive(self, payload: Dict[str, Any], *, accepts_response_payload: bool = False,
                    to: Target = None) -> Dict[str, Any]:
        """Send an ``interactive`` envelope carrying ``payload`` (a block action, a view
        submission, ...) as given. Not acknowledged within ``ack_timeout``, it is not sent
        again but listed in :attr:`missed_acks`. Returns the envelope."""
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
    def missed_acks(self) -> List[MissedAck]:
        """``slash_commands`` and ``interactive`` envelopes nobody acknowledged within
        ``ack_timeout`` (Slack shows the user an error and does not send them again)."""
        with self._cond:
            return list(self._missed_acks)

    def wait_for_missed_acks(self, count: int = 1, timeout: float = 10.0) -> List[MissedAck]:
        """Wait until at least ``count`` acks were missed; returns :attr:`missed_acks`."""
        self.wait_until(lambda: len(self._missed_acks) >= count, timeout,
                        lambda: f"{count} missed ack(s); got {len(self._missed_acks)}")
        return self.missed_acks

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
    def delivered_count(self) -> int:
        """How many envelopes were written (cheap: :attr:`delivered` decodes every one)."""
        with self._cond:
            return len(self._delivered)

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

    def wait_for_acks(self, count: int = 1, timeout: float = 30.0) -> List[Ack]:
        """Wait until at least ``count`` acks arrived; returns all of them so far."""
        self.wait_until(lambda: len(self._acks) >= count, timeout,
                        lambda: f"{count} ack(s); got {len(self._acks)}")
        return self.acks

    def wait_for_delivered(self, count: int = 1,
                           timeout: float = 30.0) -> List[Tuple[int, Dict[str, Any]]]:
        """Wait until at least ``count`` envelopes were written; returns :attr:`delivered`."""
        self.wait_until(lambda: len(self._delivered) >= count, timeout,
                        lambda: f"{count} delivered envelope(s); got {len(self._delivered)} "
                                f"({len(self._held)} held)")
        return self.delivered

    def wait_for_socket_connections(self, n: int = 1,
                                    timeout: float = 30.0) -> List[FakeConnection]:
        """Wait until at least ``n`` Socket Mode connections are open; returns them."""
        self.wait_until(lambda: len(self._socket_conns) >= n, timeout,
                        lambda: f"{n} open Socket Mode connection(s); "
                                f"{len(self._socket_conns)} open, "
                                f"{self._socket_connect_count} accepted in total")
        return self.socket_connections

    def wait_for_socket_connect_count(self, n: int, timeout: float = 30.0) -> int:
        """Wait until ``n`` Socket Mode connections were accepted in total; returns it."""
        self.wait_until(lambda: self._socket_connect_count >= n, timeout,
                        lambda: f"{n} accepted Socket Mode connection(s); "
                                f"{self._socket_connect_count} so far")
        return self.socket_connect_count
