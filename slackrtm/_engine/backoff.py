"""Reconnect delays."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnect attempts: capped exponential growth with full jitter.

    ``failures`` counts failed attempts since ``start()`` or since a connection stayed
    ready for ``healthy_after`` seconds. A connection lost sooner after its ``hello`` (a
    server that flaps: hello, then a drop) counts as one more failure, so the delays
    keep growing instead of starting over at every hello.
    ``delay(0)`` is ``initial`` exactly; after the k-th failure in a row the next attempt
    waits up to ``min(maximum, base * factor ** (k - 1))`` seconds, drawn uniformly from
    ``[0, that]`` when ``jitter`` is true.
    """

    initial: float = 0.0
    base: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    jitter: bool = True
    healthy_after: float = 30.0

    def __post_init__(self) -> None:
        for name in ("initial", "base", "maximum", "healthy_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"Backoff.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.factor < 1:
            raise ValueError(f"Backoff.factor must be >= 1, got {self.factor!r}")

    def cap(self, failures: int) -> float:
        """The largest delay ``delay(failures)`` can return."""
        if failures <= 0:
            return self.initial
        try:
            grown = self.base * self.factor ** (failures - 1)
        except OverflowError:
            return self.maximum
        return min(self.maximum, grown)

    def delay(self, failures: int, rand: Optional[Callable[[], float]] = None) -> float:
        """Seconds to wait before the next attempt after ``failures`` failed ones in a row."""
        if failures <= 0:
            return self.initial
        cap = self.cap(failures)
        if not self.jitter:
            return cap
        return cap * (rand or random.random)()
