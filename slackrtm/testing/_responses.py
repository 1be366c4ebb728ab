"""Slash commands' ``response_url``: the endpoint FakeSlack serves for each command it sends,
and the answers a bot gives there or in its acknowledgement.

As Slack: a ``response_url`` takes a JSON POST (``text`` and/or ``blocks``,
``response_type`` ``"ephemeral"`` by default or ``"in_channel"``), at most 5 times within
30 minutes. An ``in_channel`` answer becomes a message in the command's channel, posted
by the app's bot (clients see it as a ``message`` event); an ephemeral one is seen only
by the user who ran the command, so it is only recorded. Every answer, from the URL or
from the envelope's acknowledgement payload, is listed in ``FakeSlack.responses``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from slackrtm.testing._driving import Driving
from slackrtm.testing._workspace import BOT_ID

#: How often, and for how long, a response_url may be used (Slack's documented limits).
MAX_USES = 5
LIFETIME = 30 * 60.0
TEXT = "text/plain; charset=utf-8"

Answer = Tuple[int, Dict[str, str], bytes]


class ResponsePost(NamedTuple):
    """One answer to a slash command: posted to its ``response_url`` (``via="url"``) or
    given as the acknowledgement's payload (``via="ack"``).

    ``command`` and ``channel`` (an id) are the command's, ``payload`` the JSON body,
    ``response_type`` ``"ephemeral"`` or ``"in_channel"``, ``ts`` the message posted to the
    channel (``in_channel`` only, else None), ``time`` its ``time.monotonic()``.
    """

    url: str
    command: str
    channel: str
    payload: Dict[str, Any]
    response_type: str
    via: str
    ts: Optional[str]
    time: float


class _Url:
    __slots__ = ("channel", "command", "expires", "url", "user", "uses")

    def __init__(self, url: str, channel: str, user: str, command: str) -> None:
        self.url, self.channel, self.user, self.command = url, channel, user, command
        self.uses = 0
        self.expires = time.monotonic() + LIFETIME


class Responses(Driving):
    """``response_url`` endpoints and answer records (mixed into :class:`FakeSlack`)."""

    _response_urls: Dict[str, _Url]
    _responses: List[ResponsePost]

    def _init_responses(self) -> None:
        self._response_urls = {}
        self._responses = []

    def _new_response_url(self, base: str, team: str, channel: str, user: str,
                          command: str) -> str:
        """A fresh ``response_url`` for a command run by ``user`` in ``channel``."""
        path = (f"/commands/{team}/{secrets.randbelow(10**12)}/"
                f"{secrets.token_hex(12)}")
        with self._cond:
            self._response_urls[path] = _Url(base + path, channel, user, command)
        return base + path

    def _response_post(self, path: str, body: bytes) -> Answer:
        """Serve a POST to a ``response_url`` (the request thread)."""
        with self._cond:
            target = self._response_urls.get(path)
            if target is None:
                return 404, {"Content-Type": TEXT}, b"invalid_url"
            if time.monotonic() > target.expires:
                return 404, {"Content-Type": TEXT}, b"expired_url"
            if target.uses >= MAX_USES:
                return 404, {"Content-Type": TEXT}, b"used_url"
            try:
                payload = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                payload = None
            if not isinstance(payload, dict):
                return 400, {"Content-Type": TEXT}, b"invalid_payload"
            if not payload.get("text") and not payload.get("blocks") \
                    and not payload.get("delete_original"):
                return 400, {"Content-Type": TEXT}, b"no_text"
            target.uses += 1
            self._answer(target.url, target.command, target.channel, payload, "url")
        return 200, {"Content-Type": TEXT}, b"ok"

    def _answer(self, url: str, command: str, channel: str, payload: Dict[str, Any],
                via: str) -> None:
        """Record an answer; post it to the channel when it is ``in_channel``."""
        kind = "in_channel" if payload.get("response_type") == "in_channel" else "ephemeral"
        ts: Optional[str] = None
        if kind == "in_channel" and channel in self._ws.channels:
            blocks = payload.get("blocks")
            msg = self._post(channel, self._ws.bot_user_id, str(payload.get("text") or ""),
                             {"bot_id": BOT_ID, "blocks": blocks if blocks else None,
                              "thread_ts": None, "attachments": None})
            ts = str(msg["ts"])
        self._responses.append(ResponsePost(url, command, channel, dict(payload), kind, via,
                                            ts, time.monotonic()))
        self._cond.notify_all()

    def _answer_ack(self, envelope: Dict[str, Any], payload: Any) -> None:
        """A slash command's acknowledgement carried a payload: Slack shows it as the
        command's answer (called with the lock held)."""
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return
        inner = envelope.get("payload") or {}
        self._answer(str(inner.get("response_url") or ""), str(inner.get("command") or ""),
                     str(inner.get("channel_id") or ""), payload, "ack")

    @property
    def responses(self) -> List[ResponsePost]:
        """Every answer to a slash command (its ``response_url``, or its acknowledgement's
        payload), in order."""
        with self._cond:
            return list(self._responses)

    def wait_for_responses(self, count: int = 1, timeout: float = 5.0) -> List[ResponsePost]:
        """Wait until at least ``count`` answers to slash commands arrived; returns all."""
        self.wait_until(lambda: len(self._responses) >= count, timeout,  # type: ignore[attr-defined]
                        lambda: f"{count} slash command answer(s); got {len(self._responses)}")
        return self.responses
