"""What a test does *to* the clients: events, workspace changes and fault injection.

A mixin of :class:`FakeSlack`; every method is thread-safe and returns at once (frames are
queued to each connection's writer, in order, and written as soon as possible). Events go
to every RTM connection and, through the :meth:`Driving._route_events` hook, to Socket Mode.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple, Union

from slackrtm.testing import _ws
from slackrtm.testing._calls import Fault, format_retry_after
from slackrtm.testing._conn import FakeConnection
from slackrtm.testing._timer import Scheduler
from slackrtm.testing._workspace import CREATED, Workspace

#: ``to=`` of the event methods: None (every open connection), a connection or its ``id``.
Target = Union[None, FakeConnection, int]
_UNSET: Any = object()
RTM: Tuple[str, ...] = ("rtm",)
BOTH: Tuple[str, ...] = ("rtm", "socket_mode")


class Driving:
    """Events, workspace changes and faults (mixed into :class:`FakeSlack`)."""

    _cond: threading.Condition
    _ws: Workspace
    _conns: List[FakeConnection]
    _all_conns: List[FakeConnection]
    _socket_conns: List[FakeConnection]
    _all_socket_conns: List[FakeConnection]
    _scheduler: Scheduler
    _faults: Dict[str, Deque[Fault]]
    _revoked: bool
    _presence_set: Set[str]
    _tap: Any  # None, or the playground's hub: sees every workspace event

    # -- plumbing ------------------------------------------------------------------------
    def _targets(self, to: Target, kinds: Tuple[str, ...] = RTM) -> List[FakeConnection]:
        """``to`` as a list; None: the open connections of ``kinds`` (RTM, then Socket Mode)."""
        with self._cond:
            if to is None:
                return [c for c in self._conns + self._socket_conns if c.kind in kinds]
            if isinstance(to, FakeConnection):
                return [to]
            for conn in self._all_conns + self._all_socket_conns:
                if conn.id == to:
                    return [conn]
        raise KeyError(f"FakeSlack has no connection {to!r}")

    def _send_rtm(self, event: Dict[str, Any], to: Target = None) -> int:
        data = _ws.text_frame(json.dumps(event))
        with self._cond:
            return sum(conn.send_bytes(data) for conn in self._targets(to))

    def _broadcast(self, event: Dict[str, Any]) -> int:
        """Send a workspace event to every RTM connection and to Socket Mode."""
        text = json.dumps(event)
        data = _ws.text_frame(text)
        with self._cond:  # one lock: every client sees events in the same order
            sent = sum(conn.send_bytes(data) for conn in self._conns)
            self._route_events([text])
            if self._tap is not None:
                self._tap.event(event)
            return sent

    def _route_events(self, texts: List[str], to: Target = None) -> None:
        """Hook: deliver inner events (JSON texts) to Socket Mode; without it, nothing."""

    def _send_hello(self, conn: FakeConnection) -> bool:
        """Hook: send ``conn`` its hello (called with the lock held); True if queued."""
        if conn.send_event({"type": "hello"}):
            conn.hello_sent = True
            return True
        return False

    def _post(self, channel: str, user: str, text: str, extra: Dict[str, Any]) -> Dict[str, Any]:
        with self._cond:
            msg = self._ws.store(channel, user, text, **extra)
            self._broadcast(msg)
            self._cond.notify_all()
            return dict(msg)

    def _default_human(self) -> str:
        # alice by her id: her name may have been changed (rename_user)
        return "U0ALICE" if "U0ALICE" in self._ws.users else next(
            uid for uid, u in self._ws.users.items() if not u.get("is_bot"))

    # -- events --------------------------------------------------------------------------
    def inject(self, event: Dict[str, Any], to: Target = None) -> int:
        """Send ``event`` (any dict) as it is to every open RTM connection, or only ``to``
        (not wrapped for Socket Mode: see :meth:`events_api`).

        Returns the number of connections it was queued to.
        """
        return self._send_rtm(event, to)

    def post_message(self, channel: str, text: str, user: Optional[str] = None,
                     **extra: Any) -> Dict[str, Any]:
        """Simulate a person posting ``text`` in ``channel`` (id or name; ``user`` defaults
        to alice): stored in the history and sent as a ``message`` event. ``extra`` fields
        (``thread_ts``, ``subtype``, ...) go into the message. Returns the message."""
        with self._cond:
            cid = self._ws.channel_id(channel)
            return self._post(cid, user or self._default_human(), text, extra)

    def add_reaction(self, channel: str, ts: str, name: str,
                     user: Optional[str] = None) -> Dict[str, Any]:
        """``user`` (default alice) reacts with ``name`` to the message ``ts``: records it on
        the message and sends ``reaction_added``. Returns the event."""
        return self._react(channel, ts, name, user, added=True)

    def remove_reaction(self, channel: str, ts: str, name: str,
                        user: Optional[str] = None) -> Dict[str, Any]:
        """Undo :meth:`add_reaction`; sends ``reaction_removed``. Returns the event."""
        return self._react(channel, ts, name, user, added=False)

    def _react(self, channel: str, ts: str, name: str, user: Optional[str],
               added: bool) -> Dict[str, Any]:
        with self._cond:
            cid = self._ws.channel_id(channel)
            msg = self._ws.find_message(cid, ts)
            if msg is None:
                raise KeyError(f"FakeSlack has no message {ts!r} in {cid}")
            uid = user or self._default_human()
            reactions = msg.setdefault("reactions", [])
            entry = next((r for r in reactions if r["name"] == name), None)
            if added:
                if entry is None:
                    entry = {"name": name, "users": [], "count": 0}
                    reactions.append(entry)
                if uid not in entry["users"]:
                    entry["users"].append(uid)
            elif entry is not None and uid in entry["users"]:
                entry["users"].remove(uid)
            if entry is not None:
                entry["count"] = len(entry["users"])
            msg["reactions"] = [r for r in reactions if r["count"]]
            if not msg["reactions"]:
                del msg["reactions"]
            event = {"type": "reaction_added" if added else "reaction_removed", "user": uid,
                     "reaction": name, "item_user": msg.get("user"),
                     "item": {"type": "message", "channel": cid, "ts": ts},
                     "event_ts": self._ws.next_ts()}
            self._broadcast(event)
            return event

    def join_channel(self, user: str, channel: str) -> Dict[str, Any]:
        """``user`` joins ``channel``: membership updated, ``member_joined_channel`` sent."""
        return self._membership(user, channel, joined=True)

    def leave_channel(self, user: str, channel: str) -> Dict[str, Any]:
        """``user`` leaves ``channel``: membership updated, ``member_left_channel`` sent."""
        return self._membership(user, channel, joined=False)

    def _membership(self, user: str, channel: str, joined: bool) -> Dict[str, Any]:
        with self._cond:
            cid = self._ws.channel_id(channel)
            uid = self._ws.user_id(user)
            members = self._ws.members[cid]
            if joined and uid not in members:
                members.append(uid)
            elif not joined and uid in members:
                members.remove(uid)
            kind = "member_joined_channel" if joined else "member_left_channel"
            event = {"type": kind, "user": uid, "channel": cid, "channel_type": "C",
                     "team": self._ws.team["id"], "event_ts": self._ws.next_ts()}
            self._broadcast(event)
            return event

    def rename_channel(self, channel: str, new_name: str,
                       user: Optional[str] = None) -> Dict[str, Any]:
        """Rename ``channel``: sends a ``message`` with ``subtype: "channel_name"``
        (``old_name``, ``name``), then a ``channel_rename`` event. Returns the message."""
        with self._cond:
            cid = self._ws.channel_id(channel)
            record = self._ws.channels[cid]
            old = record["name"]
            record.update(name=new_name, name_normalized=new_name)
            record["previous_names"].insert(0, old)
            uid = user or self._default_human()
            text = f"<@{uid}> renamed the channel from \u201c{old}\u201d to \u201c{new_name}\u201d"
            msg = self._post(cid, uid, text,
                             {"subtype": "channel_name", "old_name": old, "name": new_name})
            self._broadcast({"type": "channel_rename", "event_ts": msg["ts"], "channel": {
                "id": cid, "name": new_name, "name_normalized": new_name, "created": CREATED,
                "is_channel": True, "is_mpim": False}})
            return msg

    def set_presence(self, user: str, presence: str) -> None:
        """Set ``user``'s presence (``"active"`` or ``"away"``) and send ``presence_change``
        to the connections whose last ``presence_sub`` named the user, as Slack does:
        ``users: [id]`` to connections made with ``batch_presence_aware``, else ``user: id``."""
        if presence not in ("active", "away"):
            raise ValueError(f"presence must be 'active' or 'away', not {presence!r}")
        with self._cond:
            uid = self._ws.user_id(user)
            self._ws.presence[uid] = presence
            self._presence_set.add(uid)
            for conn in self._conns:
                if uid not in conn.presence_subscriptions:
                    continue
                key: Dict[str, Any] = {"users": [uid]} if conn.batch_presence_aware else {
                    "user": uid}
                conn.send_event(dict({"type": "presence_change", "presence": presence}, **key))

    # -- faults --------------------------------------------------------------------------
    def revoke_token(self) -> None:
        """From now on the token is answered with ``token_revoked``."""
        with self._cond:
            self._revoked = True

    def fail_next(self, method: str, error: Any = _UNSET, *, status: int = 200,
                  retry_after: Union[int, float, str, None] = None, times: int = 1,
                  delay: Optional[float] = None) -> None:
        """Answer the next ``times`` calls of Web API ``method`` with ``{"ok": false,
        "error": error}`` and HTTP ``status`` (default error ``"ratelimited"``).

        ``retry_after`` adds a ``Retry-After`` header, written as given (``0.2`` stays
        ``"0.2"``; Slack itself sends whole seconds). ``status >= 500`` answers a
        ``text/plain`` body. ``delay`` seconds pass before answering; given alone (no
        ``error``), the call is then answered normally: a slow server. ``method="websocket"``
        applies to the next WebSocket handshakes (``status`` defaults to 503 there).
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if error is _UNSET:
            error = None if delay is not None and status == 200 else (
                "Internal Server Error" if status >= 500 else "ratelimited")
        shown = format_retry_after(retry_after) if retry_after is not None else None
        with self._cond:
            self._faults.setdefault(method, deque()).append(
                Fault(error=error, status=status, retry_after=shown, delay=delay, times=times))

    def drop(self, how: str = "reset", to: Target = None) -> List[FakeConnection]:
        """Drop open connections (RTM and Socket Mode) without a close frame: ``"reset"``
        (RST) or ``"fin"`` (TCP close); ``"close"`` sends a close frame (1001) instead.
        Returns the connections."""
        if how not in ("reset", "fin", "close"):
            raise ValueError(f"drop(how=...) must be 'reset', 'fin' or 'close', not {how!r}")
        targets = self._targets(to, BOTH)
        for conn in targets:
            conn.drop(how)
        return targets

    def goodbye(self, to: Target = None, grace: float = 1.0) -> List[FakeConnection]:
        """Send ``{"type": "goodbye"}`` (RTM only); close each connection ``grace`` seconds later
        (close frame 1001) unless the client closed it first. Returns the connections."""
        targets = self._targets(to)
        for conn in targets:
            if conn.send_event({"type": "goodbye"}):
                self._scheduler.call_later(grace, _closer(conn))
        return targets

    def freeze(self, to: Target = None) -> List[FakeConnection]:
        """Half-open: stop reading from and writing to open connections, RTM and Socket
        Mode (TCP stays up). Frames sent meanwhile are held; later connections are not frozen."""
        targets = self._targets(to, BOTH)
        for conn in targets:
            conn.freeze()
        return targets

    def unfreeze(self, to: Target = None) -> List[FakeConnection]:
        """Undo :meth:`freeze`: held frames are written, pending client frames read."""
        with self._cond:
            targets = (self._all_conns + self._all_socket_conns) if to is None \
                else self._targets(to)
        for conn in targets:
            conn.unfreeze()
        return targets

    def release_hello(self, to: Target = None) -> int:
        """Send the ``hello`` held back by ``hold_hello`` (RTM and Socket Mode); returns how
        many were sent."""
        sent = 0
        with self._cond:
            for conn in self._targets(to, BOTH):
                if not conn.hello_sent and self._send_hello(conn):
                    sent += 1
        return sent

    def send_raw(self, data: Union[str, bytes], *, binary: bool = False,
                 to: Target = None) -> int:
        """Write one raw frame: ``str`` as text, ``bytes`` as a text frame with exactly those
        bytes (even invalid UTF-8), or a binary frame with ``binary=True``."""
        with self._cond:
            return sum(c.send_raw(data, binary=binary) for c in self._targets(to, BOTH))

    def send_frames(self, frames: Sequence[Union[str, bytes]], to: Target = None) -> int:
        """Write many text frames in one socket write per connection (a burst)."""
        data = b"".join(_ws.text_frame(f) for f in frames)
        with self._cond:
            return sum(c.send_bytes(data) for c in self._targets(to))

    def flood(self, n: int, make_event: Optional[Callable[[int], Dict[str, Any]]] = None,
              to: Target = None) -> List[Dict[str, Any]]:
        """Blast ``n`` events in one write per connection: ``make_event(i)``, by default a
        ``message`` in #general numbered ``"flood {i}"`` (not stored in the history).
        Socket Mode gets them as ``events_api`` envelopes (routed as one write, see
        :meth:`events_api`) once it is active. Returns the events."""
        with self._cond:
            if make_event is None:
                general, alice = self._ws.channel_id("general"), self._default_human()
                events = [{"type": "message", "channel": general, "user": alice,
                           "text": f"flood {i}", "ts": self._ws.next_ts()} for i in range(n)]
            else:
                events = [make_event(i) for i in range(n)]
            texts = [json.dumps(e) for e in events]
            data = b"".join(_ws.text_frame(t) for t in texts)
            for conn in self._targets(to):
                if conn.kind == "rtm":
                    conn.send_bytes(data)
            self._route_events(texts, to)
        return events

    def ping(self, payload: bytes = b"", to: Target = None) -> int:
        """Send a WebSocket ping control frame to RTM and Socket Mode connections; pongs land
        in each connection's ``ws_pongs``."""
        with self._cond:
            return sum(c.ping(payload) for c in self._targets(to, BOTH))


def _closer(conn: FakeConnection) -> Callable[[], None]:
    def close() -> None:
        conn.close(reason="goodbye")
    return close
