"""Shared fixtures: a FakeSlack per test and RTM clients with short timeouts."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from slackrtm import Backoff, RTMClient, SocketModeClient
from slackrtm.testing import FakeSlack

#: Fast settings for tests: short keep-alive and no long backoff waits.
#: Pacing is off (``send_rate=None``): these tests send bursts; tests/test_limits*.py pace.
FAST = dict(client_ping_timeout=1.0, server_pong_timeout=0.5, reply_timeout=5.0,
            hello_timeout=2.0, backoff=Backoff(initial=0.0, base=0.01, maximum=0.05),
            send_rate=None)


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``cond`` until truthy; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def client_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("slackrtm-")]


class Recorder:
    """Records events in arrival order, thread-safely, with waits that have deadlines."""

    def __init__(self) -> None:
        self.events: List[tuple[str, tuple[Any, ...]]] = []
        self._cond = threading.Condition()

    def handler(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            with self._cond:
                self.events.append((name, args))
                self._cond.notify_all()
        record.__qualname__ = f"record_{name}"
        return record

    def attach(self, rtm: RTMClient, *names: str) -> Recorder:
        for name in names:
            rtm.on(name, self.handler(name))
        return self

    def names(self) -> List[str]:
        with self._cond:
            return [n for n, _ in self.events]

    def of(self, name: str) -> List[tuple[Any, ...]]:
        with self._cond:
            return [a for n, a in self.events if n == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 30.0) -> List[tuple[Any, ...]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [a for n, a in self.events if n == name]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} {name!r} events within {timeout} s, got "
                        f"{len(got)}; all events: {[n for n, _ in self.events]}")
                self._cond.wait(left)


LIFECYCLE = ("connecting", "authenticated", "connected", "ready", "disconnecting",
             "reconnecting", "disconnected", "error", "unable_to_rtm_start")


def checked_fake(sockets: List[Any], **settings: Any) -> Iterator[FakeSlack]:
    """A FakeSlack (``settings`` set on it) that must leave no thread behind and record no
    internal error; the raw client ``sockets`` a test opened are shut after it."""
    before = set(threading.enumerate())
    slack = FakeSlack()
    for name, value in settings.items():
        setattr(slack, name, value)
    try:
        yield slack
    finally:
        slack.close()
        while sockets:
            sockets.pop().shutdown()
    assert slack.errors == []
    assert [t.name for t in threading.enumerate() if t not in before] == []


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A FakeSlack without its per-channel throttle: most tests send bursts (unpaced)."""
    with FakeSlack() as fake:
        fake.message_rate = None
        yield fake


def _clients(slack: FakeSlack, cls: Any, default_token: str,
             defaults: Dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """A factory of ``cls`` clients against ``slack`` with ``defaults``; after the test,
    every one is disconnected and no client thread may be left."""
    clients: List[Any] = []

    def make(token: Optional[str] = None, **kwargs: Any) -> Any:
        options = dict(defaults)
        options.update(kwargs)
        options.setdefault("slack_api_url", slack.api_url)
        client = cls(token or default_token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.disconnect(timeout=5.0)
    leftover = client_threads()
    assert not leftover, f"client threads alive after disconnect(): {leftover}"


@pytest.fixture
def make(slack: FakeSlack) -> Iterator[Callable[..., RTMClient]]:
    """Build RTM clients against the test's FakeSlack; all are disconnected and checked after."""
    yield from _clients(slack, RTMClient, slack.token, FAST)


#: FAST for Socket Mode clients (no sends there: no reply timeout, no send rate).
SM_FAST: Dict[str, Any] = {k: v for k, v in FAST.items() if k not in ("reply_timeout",
                                                                      "send_rate")}


@pytest.fixture
def smake(slack: FakeSlack) -> Iterator[Callable[..., SocketModeClient]]:
    """Build Socket Mode clients against the test's FakeSlack; disconnected and checked
    after."""
    yield from _clients(slack, SocketModeClient, slack.app_token, SM_FAST)


@pytest.fixture
def all_logs() -> Iterator[List[logging.LogRecord]]:
    """Every record the slackrtm loggers emit, at every level."""
    records: List[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("slackrtm")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old)


# a real redis-server per module for the tests of running several copies (tests/redis_server.py)
from tests.redis_server import redis_server, redis_url  # noqa: E402,F401
