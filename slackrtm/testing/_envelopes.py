"""Socket Mode records and envelope building: :class:`Ack`, envelope ids and JSON text.

Plain functions and records, no locking and no I/O. Envelopes of the Events API are built
as JSON text straight from the inner event's JSON (which RTM already encoded), so a flood
of thousands costs little more than the RTM frames themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
from typing import Any, Dict, List, NamedTuple, Optional

from slackrtm.testing._workspace import APP_ID

#: ``debug_info.host`` of every hello and disconnect frame.
DEBUG_HOST = "fakeslack-1"


class Ack(NamedTuple):
    """One acknowledgement a Socket Mode client sent: a frame with an ``envelope_id``.

    ``payload`` is the frame's ``"payload"`` (None without one), ``connection_id`` the
    :class:`FakeConnection` id it arrived on, ``time`` its ``time.monotonic()`` arrival
    time, ``late`` whether it came after ``ack_timeout`` since that envelope was written
    (False for an id FakeSlack never sent).
    """

    envelope_id: Any
    payload: Any
    connection_id: int
    time: float
    late: bool


class MissedAck(NamedTuple):
    """A ``slash_commands`` or ``interactive`` envelope nobody acknowledged within
    ``ack_timeout``. Slack does not send those again: the user who ran the command or
    clicked sees an error instead (``operation_timeout``).

    ``envelope`` is the envelope as sent, ``connection_id`` the connection it was written
    to (None: it never left the queue), ``time`` the ``time.monotonic()`` of the timeout.
    """

    envelope_id: str
    type: str
    envelope: Dict[str, Any]
    connection_id: Optional[int]
    time: float


class Sent:
    """What FakeSlack remembers of one envelope it sent (or holds): for acks and retries.

    ``origin`` ties retries together: the ``event_id`` of an Events API envelope, else the
    first envelope's id. ``auto``: redelivered automatically until acked (``events_api``
    only). ``watch``: a missed ack is recorded instead (``slash_commands``,
    ``interactive``).
    """

    __slots__ = ("attempt", "auto", "conn_id", "envelope_id", "origin", "sent_at", "text",
                 "watch")

    def __init__(self, envelope_id: str, origin: str, text: str, attempt: int = 0,
                 auto: bool = True, watch: bool = False) -> None:
        self.envelope_id, self.origin, self.text = envelope_id, origin, text
        self.attempt, self.auto, self.watch = attempt, auto, watch
        self.sent_at: Optional[float] = None
        self.conn_id: Optional[int] = None


def new_app_token() -> str:
    """An app-level token like Slack's: ``xapp-1-A0FAKE-<13 digits>-<64 hex>``."""
    digits = "".join(secrets.choice(string.digits) for _ in range(13))
    return f"xapp-1-{APP_ID}-{digits}-{secrets.token_hex(32)}"


def new_verification_token() -> str:
    """The (legacy) verification token Slack puts in every payload's ``token``."""
    alnum = string.ascii_letters + string.digits
    return "".join(secrets.choice(alnum) for _ in range(24))


def envelope_ids(n: int) -> List[str]:
    """``n`` random UUID4 strings, made in one batch (cheaper than ``uuid.uuid4()``)."""
    raw = os.urandom(16 * n).hex()
    out = []
    for i in range(0, 32 * n, 32):
        h = raw[i:i + 32]
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}")
    return out


class EventsTemplate:
    """Builds ``events_api`` envelope text around an inner event's JSON text."""

    def __init__(self, verification_token: str, team_id: str, bot_user_id: str) -> None:
        auth = json.dumps([{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}])
        self._head = '{"envelope_id": "'
        self._mid = ('", "type": "events_api", "accepts_response_payload": false, '
                     '"retry_attempt": %d, "retry_reason": %s, "payload": {"token": '
                     + json.dumps(verification_token) + ', "team_id": ' + json.dumps(team_id)
                     + ', "api_app_id": "' + APP_ID + '", "event": ')
        self._tail = ('%s, "type": "event_callback", "event_id": "%s", "event_time": %d, '
                      '"authorizations": ' + auth.replace("%", "%%")
                      + ', "is_ext_shared_channel": false}}')

    def text(self, envelope_id: str, event_json: str, event_id: str, event_time: int,
             attempt: int = 0, reason: str = "") -> str:
        """The envelope as JSON text (``event_json`` is the inner event, already encoded)."""
        return (self._head + envelope_id + self._mid % (attempt, json.dumps(reason) if reason
                                                        else '""')
                + self._tail % (event_json, event_id, event_time))


def envelope(envelope_id: str, kind: str, payload: Dict[str, Any], *,
             accepts_response_payload: bool, attempt: int = 0,
             reason: str = "") -> Dict[str, Any]:
    """A Socket Mode envelope as a dict."""
    return {"envelope_id": envelope_id, "type": kind,
            "accepts_response_payload": accepts_response_payload, "retry_attempt": attempt,
            "retry_reason": reason, "payload": payload}


def retry_text(text: str, envelope_id: str, attempt: int, reason: str) -> str:
    """``text`` (an envelope) again with another id, ``retry_attempt`` and ``retry_reason``."""
    data = json.loads(text)
    data.update(envelope_id=envelope_id, retry_attempt=attempt, retry_reason=reason)
    return json.dumps(data)


def app_id_hash() -> str:
    """The ``app_id`` of a Socket Mode URL: an opaque hex string, as Slack's."""
    return hashlib.sha256(APP_ID.encode("ascii")).hexdigest()


def hello(num_connections: int, connection_time: int) -> Dict[str, Any]:
    """The first frame of a Socket Mode connection."""
    return {"type": "hello", "num_connections": num_connections,
            "debug_info": {"host": DEBUG_HOST, "build_number": 1,
                           "approximate_connection_time": connection_time},
            "connection_info": {"app_id": APP_ID}}


def disconnect(reason: str) -> Dict[str, Any]:
    """A ``disconnect`` frame: ``warning``, ``refresh_requested``, ``link_disabled``, ..."""
    return {"type": "disconnect", "reason": reason, "debug_info": {"host": DEBUG_HOST}}
