"""WebClient(rate_limits=...): per-method buckets from Slack's tiers, against FakeSlack."""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator, List

import pytest

from slackrtm import SlackHTTPError, WebClient
from slackrtm._web.tiers import TIERS, MethodLimits
from slackrtm.testing import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


def timed(fn: object, n: int) -> float:
    t0 = time.monotonic()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return time.monotonic() - t0


class Waits:
    """Counts the waits for a tier the client logs: whether a call waited does not depend
    on how loaded the machine is, a duration measured from outside does."""

    def __init__(self) -> None:
        self.lines: List[str] = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append(message)

    def count(self) -> int:
        return sum("for its rate limit tier" in line for line in self.lines)


def test_off_by_default(fake: FakeSlack) -> None:
    with WebClient(fake.token, base_url=fake.api_url) as web:
        assert web._limits is None
        assert timed(web.auth.test, 30) < 3.0  # Tier 3 would allow only 10 at once


def test_the_published_tiers_and_overrides() -> None:
    limits = MethodLimits({"users.list": 4, "chat.update": (30, 5)})
    assert TIERS == {1: (1.0, 2), 2: (20.0, 5), 3: (50.0, 10), 4: (100.0, 20)}
    assert limits.limit("rtm.connect") == TIERS[1]
    assert limits.limit("conversations.list") == TIERS[2]
    assert limits.limit("some.newMethod") == TIERS[3]  # unknown: Tier 3
    assert limits.limit("users.info") == TIERS[4]
    assert limits.limit("chat.postMessage") == (60.0, 3)
    assert limits.limit("users.list") == TIERS[4] and limits.limit("chat.update") == (30.0, 5)
    for bad in (0, 5, True, (0, 1), (10, 0), (10, 1.5), "fast", (float("nan"), 1)):
        with pytest.raises(ValueError, match="rate_limits"):
            MethodLimits({"x.y": bad})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="rate_limits"):
        WebClient("xoxb-1", rate_limits="yes")  # type: ignore[arg-type]


def test_a_method_waits_for_its_turn_after_the_burst(fake: FakeSlack) -> None:
    waits = Waits()
    with WebClient(fake.token, base_url=fake.api_url, logger=waits, log_level=logging.DEBUG,
                   rate_limits={"auth.test": (60, 2)}) as web:  # 1/s, burst 2
        t0 = time.monotonic()
        timed(web.auth.test, 2)
        assert waits.count() == 0  # the burst goes at once
        timed(web.auth.test, 2)
        assert waits.count() == 2  # two more wait for their tokens: 1 s each...
        assert time.monotonic() - t0 >= 1.95  # ...so four take 2 s from the first
        timed(lambda: web.users.info(user="U0ALICE"), 5)
        assert waits.count() == 2  # users.info has its own bucket


def test_post_message_is_paced_per_channel(fake: FakeSlack) -> None:
    waits = Waits()
    with WebClient(fake.token, base_url=fake.api_url, logger=waits, log_level=logging.DEBUG,
                   rate_limits={"chat.postMessage": (60, 1)}) as web:  # 1/s, burst 1
        t0 = time.monotonic()
        web.chat.postMessage(channel="C0GENERAL", text="a")
        web.chat.postMessage(channel="C0OPS", text="b")  # another channel: no wait
        assert waits.count() == 0
        web.chat.postMessage(channel="C0GENERAL", text="c")
        assert waits.count() == 1
        assert time.monotonic() - t0 >= 0.95
    assert [m["text"] for m in fake.messages("general")] == ["a", "c"]


def test_threads_share_the_buckets(fake: FakeSlack) -> None:
    with WebClient(fake.token, base_url=fake.api_url,
                   rate_limits={"auth.test": (3000, 1)}) as web:  # 50/s, burst 1
        errors: List[BaseException] = []

        def calls() -> None:
            try:
                for _ in range(4):
                    web.auth.test()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=calls) for _ in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors
        assert time.monotonic() - t0 >= 0.95 * 31 / 50  # 32 calls, one every 20 ms
    assert fake.call_count("auth.test") == 32


def test_a_wait_is_interrupted_by_an_abort(fake: FakeSlack) -> None:
    with WebClient(fake.token, base_url=fake.api_url,
                   rate_limits={"auth.test": (1, 1)}) as web:  # then one a minute
        web.auth.test()
        with web._abort_scope() as scope:
            threading.Timer(0.1, scope.abort).start()
            t0 = time.monotonic()
            with pytest.raises(SlackHTTPError, match="rate limit tier"):
                web.auth.test()
            assert time.monotonic() - t0 < 2.0
