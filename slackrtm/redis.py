"""Redis for bots that run as several copies: a shared duplicate filter (:class:`RedisDedupe`)
and shared rate limits (:class:`RedisRate`).

Needs redis-py (``pip install slackrtm[redis]``), imported only when one of these is
made, so nothing else in slackrtm depends on it.

Keys are ``<prefix><key>`` with ``prefix="slackrtm:"`` by default; give every bot (every
Slack app) its own prefix when they share a Redis.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

__all__ = ["RedisDedupe", "RedisRate"]

_SETTLED = b"d"


def _connect(client_or_url: Any, timeout: float) -> Tuple[Any, Optional[str], str]:
    """``(client, password or None, where)`` for a redis-py client or a ``redis://`` URL."""
    if isinstance(client_or_url, str):
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - the extra is installed in tests
            raise ImportError("slackrtm.redis needs redis-py: pip install "
                              "'slackrtm[redis]'") from exc
        parts = urlsplit(client_or_url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        client = redis.Redis.from_url(client_or_url, socket_timeout=timeout,
                                      socket_connect_timeout=timeout)
        where = f"{parts.scheme}://{parts.hostname or ''}" + (
            f":{parts.port}" if parts.port else "") + (parts.path if parts.scheme == "unix"
                                                      else "")
        return client, parts.password, where
    if not callable(getattr(client_or_url, "set", None)):
        raise TypeError(f"expected a redis-py client or a redis:// URL, "
                        f"got {type(client_or_url).__name__}")
    kwargs = getattr(getattr(client_or_url, "connection_pool", None), "connection_kwargs", {})
    password = kwargs.get("password") if isinstance(kwargs, dict) else None
    host = kwargs.get("host", "?") if isinstance(kwargs, dict) else "?"
    port = kwargs.get("port", "") if isinstance(kwargs, dict) else ""
    return client_or_url, password if isinstance(password, str) else None, f"{host}:{port}"


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisDedupe:
    """A duplicate filter shared by every copy of a bot, on Redis (``SET key NX PX``).

    ``SocketModeClient(token, dedupe=RedisDedupe("redis://localhost:6379/0"))`` or the
    same with ``RTMClient``: each event is handled by the one copy that claims it first;
    the others drop it (Socket Mode: acknowledged, not dispatched; RTM: not dispatched).

    ``client_or_url``: a ``redis.Redis`` (used as is) or a URL (a client is made with
    ``timeout``-second socket timeouts). ``ttl``: seconds a claim is remembered (Slack
    retries for a few minutes). ``lease``: while handlers still run on an envelope that
    is acknowledged after them (``ack="manual"``, or a response payload), its claim lasts
    only this long and is kept for ``ttl`` once acknowledged, so a copy killed mid-way
    does not take the event with it: Slack's next retry after the lease is handled by
    another copy. Keep it longer than your slowest handler. ``fail_open`` (default True):
    while Redis is unreachable, dispatch everything (at least once) rather than nothing.
    """

    def __init__(self, client_or_url: Any, ttl: float = 3600.0, prefix: str = "slackrtm:",
                 *, lease: float = 60.0, fail_open: bool = True, timeout: float = 1.0) -> None:
        for name, value in (("ttl", ttl), ("lease", lease), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        self.redis, self.secret, self._where = _connect(client_or_url, timeout)
        self.ttl = float(ttl)
        self.lease = float(lease)
        self.prefix = prefix
        self.fail_open = bool(fail_open)
        #: The value of this copy's claims until they are settled.
        self.owner = f"p:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def __repr__(self) -> str:
        return f"<RedisDedupe {self._where} prefix={self.prefix!r} ttl={self.ttl:g}>"

    def claim(self, key: str, ttl: float) -> bool:
        """True when no one holds ``key``; it is now this copy's for ``ttl`` seconds."""
        return bool(self.redis.set(self.prefix + key, self.owner, nx=True, px=_ms(ttl)))

    def claim_many(self, items: Sequence[Tuple[str, float]]) -> List[bool]:
        """:meth:`claim` for each ``(key, ttl)``, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for key, ttl in items:
            pipe.set(self.prefix + key, self.owner, nx=True, px=_ms(ttl))
        return [bool(answer) for answer in pipe.execute()]

    def settle(self, key: str, pipeline: Any = None) -> None:
        """The handlers of ``key`` finished: remember it for ``ttl`` seconds.

        Pass a redis-py ``pipeline`` (a transaction) to settle together with your own
        writes (``request.dedupe_key`` names the key): a copy killed before the
        transaction ran leaves the event to be handled again, one killed after it does
        not, so an effect kept in the same Redis happens exactly once."""
        target = pipeline if pipeline is not None else self.redis
        target.set(self.prefix + key, _SETTLED, px=_ms(self.ttl))

    def settled(self, key: str) -> bool:
        """Whether the copy that claimed ``key`` has finished with it."""
        return bool(self.redis.get(self.prefix + key) == _SETTLED)

    def forget(self, key: str) -> None:
        """Drop the claim on ``key`` (tests, or handing an event back on purpose)."""
        self.redis.delete(self.prefix + key)


# A token bucket in one atomic script. KEYS[1]: the bucket (a hash: tokens, stamp).
# ARGV: rate per second, burst, now (ms; Redis's own clock is used when 0). Takes the next
# token, now or later (tokens may go below zero: a reservation), and returns the
# milliseconds to wait for it.
_RESERVE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(b[1])
local stamp = tonumber(b[2])
if tokens == nil or stamp == nil then
  tokens = burst
  stamp = now
end
if now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) * rate / 1000)
  stamp = now
end
local wait = 0
if tokens < 1 then
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(stamp))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return wait
"""


class RedisRate:
    """Token buckets shared by every copy of a bot, on Redis: one atomic script per
    reservation, on Redis's clock, so N copies together send no faster than one.

    ``RTMClient(token, send_rate=SendRate(1.0, 3, shared=RedisRate(url)))`` paces each
    channel across all copies; ``WebClient(token, rate_limits=True,
    shared_limits=RedisRate(url))`` does the same for the Web API's method tiers.
    """

    def __init__(self, client_or_url: Any, prefix: str = "slackrtm:rate:", *,
                 timeout: float = 1.0) -> None:
        self.redis, self.secret, self._where = _connect(client_or_url, timeout)
        self.prefix = prefix
        self._script = self.redis.register_script(_RESERVE)

    def __repr__(self) -> str:
        return f"<RedisRate {self._where} prefix={self.prefix!r}>"

    def reserve(self, key: str, per_second: float, burst: int) -> float:
        """Take the next token of bucket ``key`` (``per_second``, up to ``burst``), now or
        later; returns the seconds to wait before using it."""
        wait = self._script(keys=[self.prefix + key], args=[repr(float(per_second)), burst])
        return float(wait) / 1000.0
