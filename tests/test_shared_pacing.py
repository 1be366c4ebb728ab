"""Pacing shared by several copies through a real redis-server: SendRate(shared=...),
the Web API tiers with shared_limits, and what happens when Redis is gone."""

from __future__ import annotations

import pytest

from slackrtm import SendRate, WebClient
from slackrtm._engine.pacing import Pacer
from slackrtm._engine.shared_pacing import SharedBucket
from slackrtm._web.tiers import MethodLimits
from slackrtm.redis import RedisRate
from tests.redis_server import RedisServer


def test_two_pacers_share_one_channels_tokens(redis_url: str) -> None:
    rate = SendRate(1.0, 3, shared=RedisRate(redis_url))
    a, b = Pacer[str](rate), Pacer[str](rate)
    now = 100.0
    admitted = [p.admit("C1", now) for p in (a, b, a, b, a, b)]
    assert admitted.count(True) == 3  # the burst, across both copies
    assert a.admit("C2", now)  # another channel has its own bucket
    # a refused send holds a reservation: its channel is due later, not now
    refused = a if not admitted[-2] else b
    refused.hold("C1", "x", 1)
    due = refused.next_due()
    assert due is not None and due > now


def test_a_held_send_leaves_when_its_reserved_token_comes(redis_url: str) -> None:
    pacer = Pacer[str](SendRate(1.0, 1, shared=RedisRate(redis_url)))
    assert pacer.admit("C1", 0.0)
    assert not pacer.admit("C1", 0.0)
    pacer.hold("C1", "late", 1)
    due = pacer.next_due()
    assert due is not None and 0.5 < due <= 1.01
    assert pacer.take_ready(due - 0.2) is None
    assert pacer.take_ready(due) == "late"


def test_web_tiers_are_shared(redis_url: str) -> None:
    shared = RedisRate(redis_url)
    a, b = MethodLimits(shared=shared), MethodLimits(shared=shared)
    waits = [m.reserve("chat.postMessage", {"channel": "C1"}, 0.0) for m in (a, b, a, b, a)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.9 < waits[3] <= 1.01 and 1.9 < waits[4] <= 2.01
    assert a.reserve("chat.postMessage", {"channel": "C2"}, 0.0) == 0.0
    web = WebClient("xoxb-1", rate_limits=True, shared_limits=shared)
    assert web._limits is not None and web._limits.shared is shared


def test_without_redis_each_copy_paces_alone(redis_server: RedisServer,
                                            redis_url: str) -> None:
    bucket = SharedBucket(RedisRate(redis_url, timeout=0.3), "send:C1", 1.0, 2, 0.0)
    redis_server.stop()
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.failures == 3


def test_bad_shared_objects_are_refused() -> None:
    with pytest.raises(TypeError, match="reserve"):
        SendRate(1.0, 3, shared=object())
    with pytest.raises(TypeError, match="reserve"):
        WebClient("xoxb-1", rate_limits=True, shared_limits="redis://x")
    assert SendRate(1.0, 3, shared=None) == SendRate()
