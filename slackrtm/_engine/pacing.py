"""Pacing of sends per channel: token buckets and the queues of sends held back by them.

Pure arithmetic on times passed in: no clock, no thread, no lock (the core, which calls
this, is serialised by the client's lock; the Web API's buckets in ``_tiers`` add their
own lock). Slack answers more than about one message per second per channel with a
``slow down`` error, so sends that carry a ``channel`` wait for a token of that channel's
bucket; sends to other channels never wait behind them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Generic, List, Mapping, Optional, Protocol, Tuple, TypeVar

from slackrtm._bucket import EPS as EPS  # re-exported: the old home of the bucket
from slackrtm._bucket import SLOW_INTERVALS as SLOW_INTERVALS
from slackrtm._bucket import Bucket

T = TypeVar("T")



@dataclass(frozen=True)
class SendRate:
    """How fast the client sends to one channel: ``per_second`` tokens, up to ``burst``.

    ``RTMClient(send_rate=SendRate(1.0, 3))`` (the default) lets 3 messages to a channel go
    at once, then one per second; ``send_rate=None`` turns pacing off. Typing indicators
    use the same tokens.

    ``shared`` (e.g. ``slackrtm.redis.RedisRate(url)``) takes each channel's tokens from a
    bucket every copy of the bot shares, so that N copies together keep this rate.
    """

    per_second: float = 1.0
    burst: int = 3
    shared: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.per_second, bool) or not isinstance(self.per_second, (int, float)) \
                or not math.isfinite(self.per_second) or self.per_second <= 0:
            raise ValueError(f"SendRate.per_second must be a finite number > 0, got "
                             f"{self.per_second!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"SendRate.burst must be an int >= 1, got {self.burst!r}")
        if self.shared is not None and not callable(getattr(self.shared, "reserve", None)):
            raise TypeError(f"SendRate.shared must have a reserve(key, per_second, burst) "
                            f"method (slackrtm.redis.RedisRate), got {self.shared!r}")


#: ``RTMClient``'s default: 3 messages at once to a channel, then one per second.
DEFAULT_SEND_RATE = SendRate()


class TokenBucket(Protocol):
    """What the pacer needs of a bucket: :class:`Bucket`, or a shared one."""

    def take(self, now: float) -> bool: ...
    def due(self, now: float) -> float: ...
    def ready_at(self) -> float: ...
    def reserve(self, now: float) -> float: ...
    def slow_down(self, now: float) -> None: ...
    def wait_until(self, now: float, when: float) -> None: ...


class Pacer(Generic[T]):
    """Per-channel buckets plus the sends each channel holds back, oldest first.

    The caller asks :meth:`admit` before writing a send to a channel; a refused send goes
    to :meth:`hold` and comes back from :meth:`take_ready` when its turn comes. A channel
    with held sends admits nothing new, so each channel's order is kept.
    """

    def __init__(self, rate: SendRate) -> None:
        self.rate = rate
        self.buckets: Dict[str, TokenBucket] = {}  # SharedBucket with rate.shared
        self.held: Dict[str, Deque[Tuple[int, T]]] = {}
        self.delayed = 0  # sends held back so far (health)

    def _bucket(self, channel: str, now: float) -> TokenBucket:
        bucket: Optional[TokenBucket] = self.buckets.get(channel)
        if bucket is None:
            if self.rate.shared is not None:
                from slackrtm._engine.shared_pacing import SharedBucket
                bucket = SharedBucket(self.rate.shared, "send:" + channel,
                                      self.rate.per_second, self.rate.burst, now)
            else:
                bucket = Bucket(self.rate.per_second, self.rate.burst, now)
            self.buckets[channel] = bucket
        return bucket

    def admit(self, channel: str, now: float) -> bool:
        """Whether a new send to ``channel`` may be written now (uses a token if so)."""
        if channel in self.held:
            return False
        return self._bucket(channel, now).take(now)

    def hold(self, channel: str, item: T, order: int) -> None:
        """Hold ``item`` back; held items leave in ascending ``order`` (submission order)."""
        self.delayed += 1
        queue = self.held.setdefault(channel, deque())
        if not queue or queue[-1][0] < order:
            queue.append((order, item))
            return
        index = next(i for i, (o, _) in enumerate(queue) if o > order)
        queue.insert(index, (order, item))

    def take_ready(self, now: float) -> Optional[T]:
        """The first held item of the channel that has waited longest, if its token came."""
        ready = sorted(((due, channel) for channel in self.held
                        for due in [self._bucket(channel, now).due(now)] if due <= now),
                       key=lambda pair: pair[0])  # stable: ties go to the first held
        # a shared bucket may find its token taken by another copy: it then reserves the
        # next one, and the channel waits for it
        best = next((channel for _, channel in ready if self.buckets[channel].take(now)),
                    None)
        if best is None:
            return None
        queue = self.held[best]
        _, item = queue.popleft()
        if not queue:
            del self.held[best]
        return item

    def next_due(self) -> Optional[float]:
        """When the next held item may be written (maybe in the past), or None when
        nothing is held. Reads no clock and changes nothing."""
        if not self.held:
            return None
        return min(self.buckets[channel].ready_at() for channel in self.held)

    def slow_down(self, channel: str, now: float) -> None:
        """Slack answered a send to ``channel`` with ``slow down``."""
        self._bucket(channel, now).slow_down(now)

    def wait_until(self, channel: str, now: float, when: float) -> None:
        """Slack asked to wait until ``when`` before the next send to ``channel``."""
        self._bucket(channel, now).wait_until(now, when)

    def drain(self) -> List[T]:
        """Remove and return every held item, channel by channel, oldest first."""
        items = [item for queue in self.held.values() for _, item in queue]
        self.held.clear()
        return items

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.held.values())


def paced_channel(body: Mapping[str, Any]) -> Optional[str]:
    """The channel a send is paced on: its ``channel`` when that is a string, else None."""
    channel = body.get("channel")
    return channel if isinstance(channel, str) else None


def is_slow_down(error: Any) -> bool:
    """Whether an RTM reply's ``error`` is Slack's rate-limit answer (``slow down, ...``)."""
    if not isinstance(error, dict):
        return False
    msg = error.get("msg")
    if not isinstance(msg, str):
        return False
    text = msg.strip().lower()
    return text.startswith("slow down") or (error.get("code") == -1 and "too many" in text)
