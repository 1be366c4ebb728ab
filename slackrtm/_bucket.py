"""A token bucket, the one rate-limiting primitive: per-channel pacing of RTM sends
(``_engine.pacing``) and the Web API's method tiers (``_web.tiers``) both count with it."""

from __future__ import annotations

import math

__all__ = ["EPS", "SLOW_INTERVALS", "Bucket"]

#: After a ``slow down`` reply, a channel refills at half its rate for this many of its
#: normal token intervals (10 s at the default 1 message/s).
SLOW_INTERVALS = 10.0
#: Tolerance for float rounding: a bucket this close to a whole token has one.
EPS = 1e-9


class Bucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second.

    ``tokens`` may go negative (a reservation, see :meth:`reserve`): the bucket is then in
    debt and the next token comes later.
    """

    __slots__ = ("burst", "rate", "slow_until", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now
        self.slow_until = -math.inf

    def _rate(self) -> float:
        return self.rate / 2 if self.stamp < self.slow_until else self.rate

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last refill (never above ``burst``)."""
        if now > self.stamp:
            if self.stamp < self.slow_until < now:  # half rate up to slow_until, then full
                self.tokens += (self.slow_until - self.stamp) * self.rate / 2
                self.stamp = self.slow_until
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self._rate())
            self.stamp = now

    def due(self, now: float) -> float:
        """The earliest time (>= ``now``) at which a token is available."""
        self.refill(now)
        return max(now, self.ready_at())

    def ready_at(self) -> float:
        """When the next token is available, from the last refill (no time passed in)."""
        if self.tokens >= 1.0 - EPS:
            return self.stamp
        return self.stamp + (1.0 - self.tokens) / self._rate()

    def take(self, now: float) -> bool:
        """Use a token if one is available now."""
        self.refill(now)
        if self.tokens >= 1.0 - EPS:
            self.tokens -= 1.0
            return True
        return False

    def reserve(self, now: float) -> float:
        """Use the next token, now or in the future; return how long to wait for it."""
        wait = self.due(now) - now
        self.tokens -= 1.0
        return wait

    def slow_down(self, now: float) -> None:
        """Slack said ``slow down``: empty the bucket, refill at half rate for a while."""
        self.refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.slow_until = now + SLOW_INTERVALS / self.rate

    def wait_until(self, now: float, when: float) -> None:
        """No token before ``when`` (Slack's ``Retry-After``): the bucket goes into debt."""
        self.refill(now)
        self.tokens = min(self.tokens, 1.0 - (when - now) * self._rate())
