"""The serving side of FakeSlack: Web API bookkeeping and the RTM protocol logic.

A mixin of :class:`FakeSlack`, called from the request and connection threads. Socket Mode
connections are handled by :class:`slackrtm.testing._socket_mode.SocketMode` on top.
"""

from __future__ import annotations

import itertools
import json
import secrets
import socket
import threading
import time
from typing import Any, Dict, List, NamedTuple, Optional, Union

from slackrtm.testing import _ws
from slackrtm.testing._calls import ApiCall, Fault
from slackrtm.testing._conn import FakeConnection
from slackrtm.testing._driving import Driving
from slackrtm.testing._envelopes import app_id_hash
from slackrtm.testing._limits import Limits
from slackrtm.testing._net import ThreadedServer, url_host

#: The Web API method whose tickets open Socket Mode connections.
SOCKET_MODE_METHOD = "apps.connections.open"


class Ticket(NamedTuple):
    """A one-time WebSocket ticket handed out by rtm.connect / rtm.start /
    apps.connections.open."""

    expires: float
    params: Dict[str, Any]
    method: str

    @property
    def kind(self) -> str:
        """``"socket_mode"`` or ``"rtm"``: the connection kind it opens."""
        return "socket_mode" if self.method == SOCKET_MODE_METHOD else "rtm"


class Serving(Driving, Limits):
    """Web API bookkeeping and RTM frame handling (mixed into :class:`FakeSlack`)."""

    token: str
    app_token: str
    ticket_ttl: float
    ignore_pings: bool
    hold_hello: bool
    reply_delay: float
    drop_replies: bool
    _stop: threading.Event
    _server: ThreadedServer
    _tls: bool
    _calls: List[ApiCall]
    _tickets: Dict[str, Ticket]
    _received: List[Dict[str, Any]]
    _unparsed: List[Union[str, bytes]]
    _connect_count: int
    _conn_ids: itertools.count[int]
    _handshakes: int

    # -- Web API support -----------------------------------------------------------------
    def _record_call(self, call: ApiCall) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def _finish_call(self, call: ApiCall, status: int, response: Optional[Dict[str, Any]]) -> None:
        with self._cond:
            call.status, call.response = status, response
            self._cond.notify_all()
            if self._tap is not None:
                self._tap.call(call)

    def _take_fault(self, method: str) -> Optional[Fault]:
        with self._cond:
            queue = self._faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
            return fault

    def _check_token(self, presented: Any, method: str = "") -> Optional[str]:
        """The auth error for ``presented`` calling ``method``, None if it may: the app
        token is for apps.connections.open only, the bot token for every other method."""
        if not presented:
            return "not_authed"
        if presented not in (self.token, self.app_token):
            return "invalid_auth"
        if self._revoked:
            return "token_revoked"
        if (presented == self.app_token) != (method == SOCKET_MODE_METHOD):
            return "not_allowed_token_type"
        return None

    def _issue_ticket(self, params: Dict[str, Any], method: str) -> str:
        ticket = secrets.token_urlsafe(18)
        now = time.monotonic()
        kept = {k: v for k, v in params.items() if k != "token"}
        with self._cond:
            for old in [t for t, v in self._tickets.items() if v.expires < now]:
                del self._tickets[old]
            self._tickets[ticket] = Ticket(now + self.ticket_ttl, kept, method)
        scheme = "wss" if self._tls else "ws"
        base = f"{scheme}://{url_host(self._server.host)}:{self._server.port}"
        if method == SOCKET_MODE_METHOD:  # as Slack's: wss://.../link/?ticket=...&app_id=...
            return f"{base}/link/?ticket={ticket}&app_id={app_id_hash()}"
        return f"{base}/rtm/{ticket}"

    def _redeem_ticket(self, ticket: str, kind: str = "rtm") -> Optional[Ticket]:
        """The ticket's record, once: None if unknown, used, expired or of the other kind."""
        with self._cond:
            info = self._tickets.get(ticket)
            if info is None or info.kind != kind:
                return None
            del self._tickets[ticket]
        if info.expires < time.monotonic():
            return None
        return info

    # -- RTM -----------------------------------------------------------------------------
    def _note_handshake(self) -> None:
        with self._cond:
            self._handshakes += 1
            self._cond.notify_all()

    def _open_connection(self, sock: socket.socket, ticket: Ticket, response: bytes,
                         query: Optional[Dict[str, str]] = None) -> FakeConnection:
        with self._cond:
            self._connect_count += 1
            conn = FakeConnection(self, self._server, sock, next(self._conn_ids),
                                  ticket.params, ticket.method)
            self._conns.append(conn)
            self._all_conns.append(conn)
            conn.hello_sent = not self.hold_hello
            hello = _ws.text_frame('{"type": "hello"}') if conn.hello_sent else b""
            conn._start(response + hello)
            self._cond.notify_all()
        return conn

    def _on_closed(self, conn: FakeConnection) -> None:
        with self._cond:
            if conn in self._conns:
                self._conns.remove(conn)
            self._cond.notify_all()

    def _on_binary(self, conn: FakeConnection, data: bytes) -> None:
        with self._cond:
            self._unparsed.append(data)
            self._cond.notify_all()

    def _on_text(self, conn: FakeConnection, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            with self._cond:
                self._unparsed.append(text)
                self._cond.notify_all()
            conn.send_event({"type": "error", "error": {
                "code": 1, "msg": "invalid frame: expected a JSON object"}})
            return
        with self._cond:
            conn._received.append(frame)
            self._received.append(frame)
            self._cond.notify_all()
        if self._limited(conn, frame):  # too long, or too fast: see _limits.py
            return
        kind = frame.get("type")
        if kind == "ping":
            if not self.ignore_pings:
                pong: Dict[str, Any] = {"type": "pong"}
                if "id" in frame:
                    pong["reply_to"] = frame["id"]
                pong.update((k, v) for k, v in frame.items() if k not in ("id", "type"))
                pong.setdefault("time", int(time.time() * 1000))
                conn.send_event(pong)
        elif kind == "message":
            delay = self.reply_delay
            if delay > 0:
                self._scheduler.call_later(delay, lambda: self._rtm_message(conn, frame))
            else:
                self._rtm_message(conn, frame)
        elif kind == "presence_sub":
            ids = frame.get("ids")
            with self._cond:
                conn.presence_subscriptions = [str(i) for i in ids] if isinstance(ids, list) else []
                self._cond.notify_all()
        elif not isinstance(kind, str):
            conn.send_event({"type": "error", "error": {"code": 1, "msg": "type is missing"}})

    def _rtm_message(self, conn: FakeConnection, frame: Dict[str, Any]) -> None:
        mid = frame.get("id")
        text = frame.get("text")
        reply: Dict[str, Any]
        with self._cond:
            channel = frame.get("channel")
            if not isinstance(text, str) or not text:
                reply = {"ok": False, "reply_to": mid,
                         "error": {"code": 2, "msg": "message text is missing"}}
            elif not isinstance(channel, str) or channel not in self._ws.channels:
                reply = {"ok": False, "reply_to": mid,
                         "error": {"code": 1, "msg": "channel_not_found"}}
            else:
                msg = self._ws.store(channel, self._ws.bot_user_id, text,
                                     thread_ts=frame.get("thread_ts"))
                reply = {"ok": True, "reply_to": mid, "ts": msg["ts"], "text": text}
            if mid is not None and not self.drop_replies:
                conn.send_event(reply)
            if reply["ok"]:
                self._broadcast(msg)
            self._cond.notify_all()
