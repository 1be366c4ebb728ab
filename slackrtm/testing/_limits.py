"""Slack's limits on RTM sends, as FakeSlack enforces them (a mixin of :class:`FakeSlack`).

- Length: a ``message`` whose ``text`` is longer than ``max_message_length`` characters
  (default 4,000, counted as Python's ``len``) closes the connection with close code 1009
  (message too big) and reason ``message_too_long``; frames the client sends after it are
  ignored. Slack disconnects such clients too (its hard limit is 16 KB per frame).
- Pace: ``message`` sends are throttled per connection and channel by a token bucket of
  ``message_rate = (per_second, burst)`` (default ``(1.0, 5)``, a little more lenient than
  a client sending one per second with bursts of 3). A send over the limit is stored
  nowhere and answered ``{"ok": false, "reply_to": id, "error": {"code": -1, "msg":
  "slow down, too many messages..."}}``, as Slack does; :attr:`rate_limited` lists them.
  chat.postMessage is held to the same ``message_rate`` per channel (one bucket for the
  Web API, apart from the RTM connections'): a post over it is answered HTTP 429 with
  ``{"ok": false, "error": "ratelimited"}`` and a ``Retry-After`` in whole seconds (at
  least 1), stored nowhere, and listed in :attr:`rate_limited` too (its params).

``message_rate_scope = "channel"`` shares each channel's bucket among every connection
(several copies of one bot, as Slack counts an app's messages to a channel).

Set ``slack.max_message_length = None`` or ``slack.message_rate = None`` to turn either
off (plain attributes, read on each send).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from slackrtm.testing import _ws
from slackrtm.testing._conn import FakeConnection

#: The message of Slack's rate-limit reply to an RTM send.
SLOW_DOWN = "slow down, too many messages..."


class Limits:
    """Message length and per-channel pace, enforced on RTM sends."""

    #: Longest ``text`` of a ``message`` send, in characters; None: no limit.
    max_message_length: Optional[int] = 4000
    #: ``(per_second, burst)`` of ``message`` sends per connection and channel; None: off.
    message_rate: Optional[Tuple[float, int]] = (1.0, 5)
    #: ``"connection"``: a bucket per connection and channel; ``"channel"``: per channel.
    message_rate_scope: str = "connection"
    _cond: threading.Condition

    def _limit_state(self) -> Dict[str, Any]:
        state: Dict[str, Any] = self.__dict__.setdefault("_limits", {})
        if not state:
            state.update(buckets={}, closing=set(), refused=[])
        return state

    @property
    def rate_limited(self) -> List[Dict[str, Any]]:
        """The ``message`` sends answered with ``slow down`` and the chat.postMessage params
        answered HTTP 429, in order."""
        with self._cond:
            return list(self._limit_state()["refused"])

    def _limited(self, conn: FakeConnection, frame: Dict[str, Any]) -> bool:
        """Enforce the limits on one received frame; True when it was dealt with here."""
        with self._cond:
            state = self._limit_state()
            closing: Set[int] = state["closing"]
            if conn.id in closing:
                return True  # the connection is being closed: Slack reads no more of it
            if frame.get("type") != "message":
                return False
            text = frame.get("text")
            limit = self.max_message_length
            if limit is not None and isinstance(text, str) and len(text) > limit:
                closing.add(conn.id)
                conn.close(_ws.CLOSE_TOO_BIG, "message_too_long")
                self._cond.notify_all()
                return True
            rate = self.message_rate
            channel = frame.get("channel")
            if rate is None or not isinstance(channel, str):
                return False
            scope = conn.id if self.message_rate_scope == "connection" else 0
            if _take(state["buckets"], (scope, channel), rate, time.monotonic()):
                return False
            state["refused"].append(frame)
            self._cond.notify_all()
        conn.send_event({"ok": False, "reply_to": frame.get("id"),
                         "error": {"code": -1, "msg": SLOW_DOWN}})
        return True


    def _post_limited(self, params: Dict[str, Any]) -> Optional[int]:
        """chat.postMessage's pace: None when the post may go, else the Retry-After."""
        with self._cond:
            rate = self.message_rate
            channel = params.get("channel")
            if rate is None or not isinstance(channel, str):
                return None
            state = self._limit_state()
            buckets = state["buckets"]
            if _take(buckets, (0, channel), rate, time.monotonic()):
                return None
            state["refused"].append(dict(params))
            self._cond.notify_all()
            wait = (1.0 - buckets[(0, channel)][0]) / rate[0] if rate[0] > 0 else 1.0
            return max(1, math.ceil(wait))


def _take(buckets: Dict[Tuple[int, str], List[float]], key: Tuple[int, str],
          rate: Tuple[float, int], now: float) -> bool:
    """Take a token from the bucket ``key`` (``[tokens, stamp]``); False when empty."""
    per_second, burst = rate
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = [float(burst), now]
    tokens = bucket[0] + (now - bucket[1]) * per_second if math.isfinite(per_second) \
        else float(burst)
    tokens = min(float(burst), tokens)
    bucket[1] = now
    if tokens >= 1.0:
        bucket[0] = tokens - 1.0
        return True
    bucket[0] = tokens
    return False
