"""Slack's Web API rate-limit tiers, and the per-method buckets of ``WebClient(rate_limits=True)``.

Slack publishes each method's tier as a floor in calls per minute (Tier 1: 1+, Tier 2:
20+, Tier 3: 50+, Tier 4: 100+), applied per method, app and workspace; chat.postMessage
is special: about one message per second per channel. The burst sizes below are this
package's choice (Slack tolerates "some" bursts without saying how many).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from slackrtm._bucket import Bucket

#: ``(calls per minute, burst)`` of each tier.
TIERS: Dict[int, Tuple[float, int]] = {1: (1.0, 2), 2: (20.0, 5), 3: (50.0, 10), 4: (100.0, 20)}
#: chat.postMessage: per channel, one a second with a burst of 3.
POST_MESSAGE: Tuple[float, int] = (60.0, 3)
#: Methods not listed here are treated as Tier 3.
DEFAULT_TIER = 3
#: Published tiers of common methods.
METHOD_TIERS: Dict[str, int] = {
    "rtm.connect": 1, "rtm.start": 1, "apps.connections.open": 1,
    "conversations.list": 2, "users.list": 2, "files.upload": 2, "channels.list": 2,
    "conversations.history": 3, "conversations.info": 3, "conversations.replies": 3,
    "conversations.open": 3, "conversations.join": 3, "chat.update": 3, "chat.delete": 3,
    "reactions.add": 3, "users.getPresence": 3, "files.list": 3, "files.delete": 3,
    "team.info": 3,
    "conversations.members": 4, "users.info": 4, "files.info": 4, "chat.postEphemeral": 4,
}

Limit = Union[int, Tuple[float, int]]
RateLimits = Union[bool, Mapping[str, Limit]]


def _as_limit(method: str, value: Any) -> Tuple[float, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value in TIERS:
        return TIERS[value]
    if isinstance(value, tuple) and len(value) == 2:
        per_minute, burst = value
        if isinstance(per_minute, (int, float)) and not isinstance(per_minute, bool) \
                and math.isfinite(per_minute) and per_minute > 0 \
                and isinstance(burst, int) and not isinstance(burst, bool) and burst >= 1:
            return float(per_minute), burst
    raise ValueError(f"rate_limits[{method!r}] must be a tier (1 to 4) or (calls per minute "
                     f"> 0, burst >= 1), got {value!r}")


class MethodLimits:
    """Token buckets per Web API method (per channel for chat.postMessage), thread-safe.

    ``overrides`` maps method names to a tier number or ``(calls_per_minute, burst)``.
    """

    def __init__(self, overrides: Optional[Mapping[str, Limit]] = None,
                 shared: Any = None) -> None:
        self.overrides = {m: _as_limit(m, v) for m, v in (overrides or {}).items()}
        if shared is not None and not callable(getattr(shared, "reserve", None)):
            raise TypeError(f"shared_limits must have a reserve(key, per_second, burst) "
                            f"method (slackrtm.redis.RedisRate), got {shared!r}")
        self.shared = shared
        self._buckets: Dict[Tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def limit(self, method: str) -> Tuple[float, int]:
        """``(calls per minute, burst)`` for ``method``."""
        if method in self.overrides:
            return self.overrides[method]
        if method == "chat.postMessage":
            return POST_MESSAGE
        return TIERS[METHOD_TIERS.get(method, DEFAULT_TIER)]

    def reserve(self, method: str, params: Mapping[str, Any], now: float) -> float:
        """Take the method's next slot; return the seconds to wait before calling it."""
        channel = params.get("channel") if method == "chat.postMessage" else None
        key = (method, channel if isinstance(channel, str) else "")
        if self.shared is not None:  # every copy's calls in one bucket
            per_minute, burst = self.limit(method)
            try:
                return max(0.0, float(self.shared.reserve(f"web:{key[0]}:{key[1]}",
                                                          per_minute / 60.0, burst)))
            except Exception:  # the shared store failed: this copy keeps the pace alone
                pass
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                per_minute, burst = self.limit(method)
                bucket = self._buckets[key] = Bucket(per_minute / 60.0, burst, now)
            return bucket.reserve(now)


def method_limits(rate_limits: RateLimits, shared: Any = None) -> Optional[MethodLimits]:
    """The buckets for ``WebClient(rate_limits=..., shared_limits=...)``: None when off."""
    if rate_limits is False:
        return None
    if rate_limits is True:
        return MethodLimits(shared=shared)
    if isinstance(rate_limits, Mapping):
        return MethodLimits(rate_limits, shared)
    raise TypeError(f"rate_limits must be True, False or a mapping of method names to "
                    f"tiers, got {rate_limits!r}")
