"""Slack's limits end to end: RTMClient against a FakeSlack that enforces them.

Rates are scaled up (tens of messages per second instead of one) so the suite stays fast;
the fake is a little more lenient than the client, as Slack is with the client's default.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from slackrtm import (
    ErrorCode,
    MessageTooLongError,
    RTMClient,
    SendMessagePlatformError,
    SendRate,
    SendWhileDisconnectedError,
)
from slackrtm.testing import FakeSlack

Make = Callable[..., RTMClient]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A FakeSlack with its limits on (the default), unlike the shared fixture."""
    with FakeSlack() as fake:
        assert fake.max_message_length == 4000 and fake.message_rate == (1.0, 5)
        yield fake


def messages_to(slack: FakeSlack, channel: str) -> List[str]:
    return [f["text"] for f in slack.received
            if f.get("type") == "message" and f.get("channel") == channel]


def test_paced_bursts_from_many_threads_all_get_their_own_reply(slack: FakeSlack,
                                                                  make: Make) -> None:
    slack.message_rate = (60.0, 10)
    rtm = make(send_rate=SendRate(per_second=50.0, burst=3))
    rtm.start().result(timeout=30)
    one = slack.channel_id("general")
    ten = [slack.add_channel(f"room{i}", is_member=True) for i in range(10)]
    plan: List[List[Tuple[str, str]]] = [[] for _ in range(8)]
    for n in range(100):  # 100 to one channel, 100 over ten channels, spread over 8 threads
        plan[n % 8].append((one, f"one {n % 8} {n}"))
        plan[(n + 3) % 8].append((ten[n % 10], f"ten {(n + 3) % 8} {n}"))
    futures: List[List[Tuple[str, Future[Any]]]] = [[] for _ in range(8)]
    go = threading.Event()

    def sender(i: int) -> None:
        go.wait(5)
        for channel, text in plan[i]:
            futures[i].append((text, rtm.send_message(text, channel)))

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    started = time.monotonic()
    go.set()
    for t in threads:
        t.join(10)
    replies = {text: fut.result(timeout=30) for fs in futures for text, fut in fs}
    elapsed = time.monotonic() - started
    assert len(replies) == 200
    assert all(reply["ok"] and reply["text"] == text for text, reply in replies.items())
    assert slack.rate_limited == [] and slack.connect_count == 1
    assert elapsed >= 0.9 * (100 - 3) / 50.0, f"100 sends to one channel took {elapsed:.2f} s"
    for channel in [one, *ten]:  # each thread's sends arrive in its order, per channel
        got = messages_to(slack, channel)
        for i in range(8):
            mine = [int(t.split()[2]) for t in got if int(t.split()[1]) == i]
            assert mine == sorted(mine), (channel, i, mine)
    assert len(messages_to(slack, one)) == 100


def test_a_slow_down_reply_slows_the_channel_and_resends_once(slack: FakeSlack,
                                                              make: Make) -> None:
    # the fake refills 2 sends/s: a burst of four loses the last ones; the client, slowed
    # to half its 2/s after the refusal, resends each refused one after the fake refilled
    slack.message_rate = (2.0, 2)
    rtm = make(send_rate=SendRate(per_second=2.0, burst=4))
    rtm.start().result(timeout=30)
    general = slack.channel_id("general")
    futs = [rtm.send_message(f"m{i}", general) for i in range(4)]
    replies = [f.result(timeout=30) for f in futs]
    assert [r["text"] for r in replies] == ["m0", "m1", "m2", "m3"]
    refused = [f["text"] for f in slack.rate_limited]
    assert refused and set(refused) <= {"m2", "m3"}, refused  # m2, m3 unless sends crawled
    assert [m["text"] for m in slack.messages(general)] == ["m0", "m1", "m2", "m3"]
    written = messages_to(slack, general)
    assert sorted(written) == sorted(["m0", "m1", "m2", "m3", *refused])  # each resent once
    assert slack.connect_count == 1


def test_a_second_slow_down_fails_the_send(slack: FakeSlack, make: Make) -> None:
    slack.message_rate = (0.01, 1)
    rtm = make(send_rate=SendRate(per_second=20.0, burst=3))
    rtm.start().result(timeout=30)
    general = slack.channel_id("general")
    first, second = (rtm.send_message(t, general) for t in ("ok", "refused"))
    assert first.result(timeout=30)["ok"]
    err = second.exception(timeout=30)
    assert isinstance(err, SendMessagePlatformError) and "slow down" in str(err)
    assert err.code is ErrorCode.SendMessagePlatformError
    assert messages_to(slack, general) == ["ok", "refused", "refused"]  # resent once only


def test_too_long_text_fails_fast_and_the_connection_stays_up(slack: FakeSlack,
                                                             make: Make) -> None:
    rtm = make(send_rate=None)
    rtm.start().result(timeout=30)
    general = slack.channel_id("general")
    fut = rtm.send_message("x" * 4001, general)
    assert fut.done()
    err = fut.exception(0)
    assert isinstance(err, MessageTooLongError) and err.code is ErrorCode.MessageTooLongError
    assert rtm.send_message("still here", general).result(timeout=30)["ok"]
    assert messages_to(slack, general) == ["still here"]  # nothing of the long one
    assert slack.connect_count == 1 and len(slack.connections) == 1 and rtm.ready


def test_split_arrives_whole_and_in_order_with_the_default_limits(slack: FakeSlack,
                                                                  make: Make) -> None:
    rtm = make(send_rate=SendRate())  # the library's default pacing, the fake's default
    rtm.start().result(timeout=30)
    general = slack.channel_id("general")
    report = "".join(f"row {i}: {'ok ' * (i % 30)}\n" for i in range(180))
    assert 8000 < len(report) <= 12000
    futs = rtm.send_message(report, general, split=True)
    assert isinstance(futs, list) and len(futs) == 3  # within the default burst of 3
    replies = [f.result(timeout=30) for f in futs]
    assert "".join(r["text"] for r in replies) == report
    assert "".join(m["text"] for m in slack.messages(general)) == report
    assert all(len(m["text"]) <= 4000 for m in slack.messages(general))
    [single] = rtm.send_message("short", general, split=True)
    assert single.result(timeout=30)["text"] == "short"
    assert slack.rate_limited == [] and slack.connect_count == 1


def test_disconnect_fails_each_paced_send_once(slack: FakeSlack, make: Make) -> None:
    rtm = make(send_rate=SendRate(per_second=0.5, burst=1))
    rtm.start().result(timeout=30)
    general = slack.channel_id("general")
    futs = [rtm.send_message(f"m{i}", general) for i in range(5)]
    futs.append(rtm.send_typing(general))
    assert futs[0].result(timeout=30)["ok"]
    calls: Dict[int, int] = {}
    for i, f in enumerate(futs[1:]):
        f.add_done_callback(lambda _, i=i: calls.__setitem__(i, calls.get(i, 0) + 1))
    rtm.disconnect()
    for f in futs[1:]:
        err = f.exception(timeout=0)
        assert isinstance(err, SendWhileDisconnectedError), err
        assert "send rate" in str(err)
    assert calls == {i: 1 for i in range(5)}
    assert messages_to(slack, general) == ["m0"]


def test_send_rate_none_sends_bursts_unpaced(slack: FakeSlack, make: Make) -> None:
    slack.message_rate = None
    rtm = make(send_rate=None)
    rtm.start().result(timeout=30)
    general = slack.channel_id("general")
    futs = [rtm.send_message(f"m{i}", general) for i in range(50)]
    assert [f.result(timeout=30)["text"] for f in futs] == [f"m{i}" for i in range(50)]
