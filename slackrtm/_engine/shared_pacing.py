"""A per-channel bucket whose tokens come from a store shared by every copy of a bot
(``slackrtm.redis.RedisRate``), for ``SendRate(..., shared=...)`` and the Web API tiers.

The shared store hands out reservations: ``reserve(key, per_second, burst)`` takes the
next token, now or later, and says how long to wait for it. The bucket below keeps the
one reservation it holds until its time comes, so the core's pacer (which asks "is there
a token now?" and "when is the next one?") works unchanged. The store is asked only when
a send wants a token, under the client's lock: one round trip per paced send. If it fails,
the bucket falls back to a local one of the same rate (this copy alone then keeps
Slack's pace) until it answers again.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from slackrtm._bucket import EPS, Bucket


class SharedBucket:
    """A :class:`~slackrtm._engine.pacing.Bucket` look-alike backed by a shared store."""

    __slots__ = ("failures", "key", "local", "rate", "reserved_at", "shared", "slow_until")

    def __init__(self, shared: Any, key: str, rate: float, burst: int, now: float) -> None:
        self.shared = shared
        self.key = key
        self.rate = rate
        self.local = Bucket(rate, burst, now)
        self.reserved_at: Optional[float] = None  # when the token this copy holds is usable
        self.slow_until = -math.inf
        self.failures = 0

    def _reserve(self, now: float) -> float:
        """Seconds until the next shared token is this copy's (the local bucket's wait
        when the store fails)."""
        try:
            wait = float(self.shared.reserve(self.key, self.rate, self.local.burst))
        except Exception:
            self.failures += 1
            return self.local.reserve(now)
        return max(0.0, wait)

    def take(self, now: float) -> bool:
        """Use a token if one is this copy's now (reserving the next one otherwise)."""
        if self.reserved_at is None:
            if now < self.slow_until:
                self.reserved_at = self.slow_until
                return False
            wait = self._reserve(now)
            if wait <= EPS:
                return True
            self.reserved_at = now + wait
            return False
        if now + EPS >= self.reserved_at:
            self.reserved_at = None
            return True
        return False

    def due(self, now: float) -> float:
        """When a token may be this copy's (now when none is reserved: ask then)."""
        return max(now, self.ready_at())

    def ready_at(self) -> float:
        """When the reserved token is usable (the past when none is reserved)."""
        if self.reserved_at is not None:
            return self.reserved_at
        return self.slow_until if self.slow_until > -math.inf else -math.inf

    def reserve(self, now: float) -> float:
        """Take the next token, now or later; the seconds to wait for it."""
        if self.reserved_at is not None:
            at, self.reserved_at = self.reserved_at, None
            return max(0.0, at - now)
        return self._reserve(now)

    def wait_until(self, now: float, when: float) -> None:
        """Slack said to wait until ``when`` (``Retry-After``): no token before it."""
        self.slow_until = max(self.slow_until, when)
        if self.reserved_at is not None:
            self.reserved_at = max(self.reserved_at, when)
        self.local.wait_until(now, when)

    def slow_down(self, now: float) -> None:
        """Slack said ``slow down`` anyway: this copy waits its slow-down period."""
        self.slow_until = now + 10.0 / self.rate
        self.local.slow_down(now)
