"""Sending on both clients, with the same assertions: RTMClient over its socket and
SocketModeClient through chat.postMessage, against a FakeSlack that enforces Slack's limits
(its per-channel pace answers RTM with ``slow down`` and chat.postMessage with HTTP 429).

Rates are scaled up so the suite stays fast; the fake is a little more lenient than the
client, as Slack is with the client's default.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Dict, Iterator, List

import pytest

from slackrtm import (
    MessageTooLongError,
    RateLimitedError,
    RTMClient,
    SendMessagePlatformError,
    SendRate,
    SendWhileDisconnectedError,
    SlackApiError,
    SocketModeClient,
)
from slackrtm.testing import FakeSlack
from tests.conftest import FAST, SM_FAST, client_threads, wait_until

KINDS = ["rtm", "socket_mode"]
Client = Any  # RTMClient or SocketModeClient: the same sending interface


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A FakeSlack with its limits on (the default), unlike the shared fixture."""
    with FakeSlack() as fake:
        assert fake.max_message_length == 4000 and fake.message_rate == (1.0, 5)
        yield fake


@pytest.fixture
def make(slack: FakeSlack) -> Iterator[Callable[..., Client]]:
    """``make(kind, **options)``: an RTM client, or a Socket Mode client with the bot token;
    all are disconnected after the test and leave no thread."""
    clients: List[Client] = []

    def build(kind: str, **options: Any) -> Client:
        options.setdefault("slack_api_url", slack.api_url)
        client: Client
        if kind == "rtm":
            client = RTMClient(slack.token, **{**FAST, **options})
        else:
            options.setdefault("bot_token", slack.token)
            options.setdefault("send_rate", None)
            client = SocketModeClient(slack.app_token, **{**SM_FAST, **options})
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.disconnect(timeout=5.0)
    assert not client_threads(), client_threads()


def attempts(slack: FakeSlack, kind: str, channel: str) -> List[str]:
    """Every text the client tried to send to ``channel``, refused ones included."""
    if kind == "rtm":
        return [f["text"] for f in slack.received
                if f.get("type") == "message" and f.get("channel") == channel]
    return [c.params.get("text", "") for c in slack.calls
            if c.method == "chat.postMessage" and c.params.get("channel") == channel]


def posted(slack: FakeSlack, channel: str) -> List[str]:
    return [m["text"] for m in slack.messages(channel)]


@pytest.mark.parametrize("kind", KINDS)
def test_futures_resolve_with_ok_channel_ts_and_text(slack: FakeSlack, make: Any,
                                                     kind: str) -> None:
    slack.message_rate = None
    client = make(kind)
    client.start().result(timeout=10)
    general = slack.channel_id("general")
    futures: Dict[str, Future[Any]] = {}
    lock = threading.Lock()

    def sender(i: int) -> None:
        for n in range(10):
            fut = client.send_message(f"t{i} m{n}", general)
            with lock:
                futures[f"t{i} m{n}"] = fut

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    replies = {text: fut.result(timeout=30) for text, fut in futures.items()}
    assert len(replies) == 40
    for text, reply in replies.items():
        assert reply["ok"] is True and reply["channel"] == general and reply["text"] == text
        assert isinstance(reply["ts"], str)
    stored = {m["ts"]: m["text"] for m in slack.messages(general)}
    assert {r["ts"]: t for t, r in replies.items()} == stored
    got = posted(slack, general)
    for i in range(4):  # each thread's sends arrive in its order
        mine = [int(t.split()[1][1:]) for t in got if t.startswith(f"t{i} ")]
        assert mine == list(range(10))


@pytest.mark.parametrize("kind", KINDS)
def test_too_long_fails_at_once_and_split_sends_parts_in_order(slack: FakeSlack, make: Any,
                                                               kind: str) -> None:
    client = make(kind, send_rate=SendRate())  # the default pacing, the fake's default
    client.start().result(timeout=10)
    general = slack.channel_id("general")
    fut = client.send_message("x" * 4001, general)
    assert fut.done() and isinstance(fut.exception(0), MessageTooLongError)
    assert client.send_message("still here", general).result(timeout=10)["ok"]
    report = "".join(f"row {i}: {'ok ' * (i % 30)}\n" for i in range(120))
    assert 4000 < len(report) <= 8000
    parts = client.send_message(report, general, split=True)
    assert isinstance(parts, list) and len(parts) == 2
    replies = [f.result(timeout=10) for f in parts]
    assert "".join(r["text"] for r in replies) == report
    assert posted(slack, general) == ["still here", *[r["text"] for r in replies]]
    assert all(len(t) <= 4000 for t in posted(slack, general))
    assert slack.rate_limited == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_burst_of_20_to_one_channel_is_paced_in_order(slack: FakeSlack, make: Any,
                                                        kind: str) -> None:
    slack.message_rate = (30.0, 5)
    client = make(kind, send_rate=SendRate(per_second=20.0, burst=3))
    client.start().result(timeout=10)
    general = slack.channel_id("general")
    started = time.monotonic()
    futs = [client.send_message(f"m{i}", general) for i in range(20)]
    assert [f.result(timeout=30)["text"] for f in futs] == [f"m{i}" for i in range(20)]
    elapsed = time.monotonic() - started
    assert elapsed >= 0.9 * (20 - 3) / 20.0, f"20 sends took only {elapsed:.2f} s"
    assert posted(slack, general) == [f"m{i}" for i in range(20)]
    assert slack.rate_limited == []


@pytest.mark.parametrize("kind", KINDS)
def test_20_spread_over_five_channels_do_not_wait_for_each_other(slack: FakeSlack, make: Any,
                                                                 kind: str) -> None:
    slack.message_rate = (30.0, 5)
    client = make(kind, send_rate=SendRate(per_second=2.0, burst=3))
    client.start().result(timeout=10)
    rooms = [slack.add_channel(f"room{i}", is_member=True) for i in range(5)]
    busy = slack.channel_id("general")
    slow = [client.send_message(f"busy {i}", busy) for i in range(8)]  # ~2.5 s of pacing
    futs = [client.send_message(f"r{i % 5} {i}", rooms[i % 5]) for i in range(20)]
    # each room holds 4: three at once, the fourth half a second later, all before the
    # busy channel is through, whatever the load: no room waits behind another channel
    replies = [f.result(timeout=30) for f in futs]
    assert not slow[-1].done()
    assert [r["text"] for r in replies] == [f"r{i % 5} {i}" for i in range(20)]
    for n, room in enumerate(rooms):
        assert posted(slack, room) == [f"r{n} {i}" for i in range(n, 20, 5)]
    assert [f.result(timeout=30)["text"] for f in slow] == [f"busy {i}" for i in range(8)]
    assert slack.rate_limited == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_rate_limit_slows_the_channel_and_resends_once(slack: FakeSlack, make: Any,
                                                         kind: str) -> None:
    # the fake refills 2 sends/s: a burst of four loses the last ones; the client, slowed
    # after the refusal, sends each refused one again once
    slack.message_rate = (2.0, 2)
    client = make(kind, send_rate=SendRate(per_second=2.0, burst=4))
    client.start().result(timeout=10)
    general = slack.channel_id("general")
    futs = [client.send_message(f"m{i}", general) for i in range(4)]
    replies = [f.result(timeout=30) for f in futs]
    assert [r["text"] for r in replies] == ["m0", "m1", "m2", "m3"]
    refused = [f["text"] for f in slack.rate_limited]
    assert refused and set(refused) <= {"m2", "m3"}, refused
    assert posted(slack, general) == ["m0", "m1", "m2", "m3"]
    assert sorted(attempts(slack, kind, general)) == sorted(["m0", "m1", "m2", "m3", *refused])


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_rate_limit_fails_the_send(slack: FakeSlack, make: Any, kind: str) -> None:
    if kind == "rtm":
        slack.message_rate = (0.01, 1)  # one token: "ok" takes it; slow down, and again
    client = make(kind, send_rate=SendRate(per_second=20.0, burst=3))
    client.start().result(timeout=10)
    general = slack.channel_id("general")
    assert client.send_message("ok", general).result(timeout=10)["ok"]
    if kind != "rtm":  # two 429s in a row, each asking for a short wait
        slack.fail_next("chat.postMessage", status=429, retry_after=0.2, times=2)
    err = client.send_message("refused", general).exception(timeout=30)
    expected = SendMessagePlatformError if kind == "rtm" else RateLimitedError
    assert isinstance(err, expected), err
    assert attempts(slack, kind, general) == ["ok", "refused", "refused"]  # resent once only
    assert posted(slack, general) == ["ok"]


@pytest.mark.parametrize("kind", KINDS)
def test_not_in_channel_fails_the_future_with_the_api_error(slack: FakeSlack, make: Any,
                                                            kind: str) -> None:
    client = make(kind, send_rate=SendRate())
    client.start().result(timeout=10)
    random = slack.channel_id("random")  # the bot is not a member
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    err = client.send_message("hi", random, blocks=blocks).exception(timeout=10)
    assert isinstance(err, SlackApiError) and err.error == "not_in_channel", err
    if kind == "socket_mode":
        err = client.send_message("plain", random).exception(timeout=10)
        assert isinstance(err, SlackApiError) and err.error == "not_in_channel", err
    assert posted(slack, random) == []
    general = slack.channel_id("general")
    assert client.send_message("after", general).result(timeout=10)["ok"]


def test_blocks_go_through_rtm_in_order_with_plain_messages(slack: FakeSlack,
                                                            make: Any) -> None:
    client = make("rtm", send_rate=SendRate(per_second=20.0, burst=2))
    client.start().result(timeout=10)
    general = slack.channel_id("general")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*bold*"}}]
    futs = [client.send_message("plain 1", general),
            client.send_message("fancy", general, blocks=blocks, unfurl_links=False),
            client.send_message("plain 2", general),
            client.send_message("fancy 2", general, thread_ts="1.0", blocks=blocks)]
    replies = [f.result(timeout=10) for f in futs]
    assert [r["text"] for r in replies] == ["plain 1", "fancy", "plain 2", "fancy 2"]
    assert all(r["ok"] and r["channel"] == general for r in replies)
    messages = slack.messages(general)
    assert [m["text"] for m in messages] == ["plain 1", "fancy", "plain 2", "fancy 2"]
    assert messages[1]["blocks"] == blocks and messages[3]["blocks"] == blocks
    assert "blocks" not in messages[0] or not messages[0]["blocks"]
    assert attempts(slack, "rtm", general) == ["plain 1", "plain 2"]  # over the socket
    posts = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert [c.params["text"] for c in posts] == ["fancy", "fancy 2"]
    assert posts[0].params["unfurl_links"] == "false" and posts[1].params["thread_ts"] == "1.0"
    assert all(c.authorized for c in posts)
    with pytest.raises(TypeError, match="channel"):
        client.send_message("x", general, channel="C1")


@pytest.mark.parametrize("kind", KINDS)
def test_disconnect_fails_each_delayed_send_once(slack: FakeSlack, make: Any,
                                                 kind: str) -> None:
    # one token per 20 s: no held send can get its token before disconnect(), however
    # slow the machine
    client = make(kind, send_rate=SendRate(per_second=0.05, burst=1))
    client.start().result(timeout=30)
    general = slack.channel_id("general")
    futs = [client.send_message(f"m{i}", general) for i in range(5)]
    assert futs[0].result(timeout=10)["ok"]
    calls: Dict[int, int] = {}
    for i, f in enumerate(futs[1:]):
        f.add_done_callback(lambda _, i=i: calls.__setitem__(i, calls.get(i, 0) + 1))
    client.disconnect()
    for f in futs[1:]:
        err = f.exception(timeout=0)
        assert isinstance(err, SendWhileDisconnectedError), err
        assert "send rate" in str(err)
    assert calls == {i: 1 for i in range(4)}
    assert posted(slack, general) == ["m0"]
    late = client.send_message("late", general)
    assert isinstance(late.exception(timeout=0), SendWhileDisconnectedError)


def test_socket_mode_posts_on_its_own_thread_never_the_handler_s(slack: FakeSlack,
                                                                 make: Any) -> None:
    client = make("socket_mode")
    general = slack.channel_id("general")
    seen: Dict[str, Any] = {}
    done = threading.Event()

    @client.on("message")
    def answer(event: Dict[str, Any]) -> None:
        if event.get("user") == slack.bot_user_id:
            return
        fut = client.send_message("answer", event["channel"])
        seen["handler_returned_first"] = not fut.done()
        fut.add_done_callback(lambda f: (seen.__setitem__(
            "thread", threading.current_thread().name), done.set()))

    client.start().result(timeout=10)
    slack.fail_next("chat.postMessage", delay=1.0)  # a slow Web API: the handler goes on
    slack.post_message("general", "question")
    assert done.wait(30)
    assert seen == {"handler_returned_first": True, "thread": "slackrtm-poster"}
    assert posted(slack, general) == ["question", "answer"]


def test_socket_mode_without_a_bot_token_cannot_send(slack: FakeSlack, make: Any) -> None:
    client = make("socket_mode", bot_token=None)
    with pytest.raises(ValueError, match="bot token"):
        client.send_message("hi", "C1")
    with pytest.raises(NotImplementedError, match="Socket Mode"):
        client.send_typing("C1")
    with pytest.raises(NotImplementedError, match="Socket Mode"):
        client.subscribe_presence(["U1"])


def test_no_token_in_any_log_at_debug(slack: FakeSlack, make: Any,
                                      caplog: pytest.LogCaptureFixture) -> None:
    slack.message_rate = (1.0, 2)
    caplog.set_level(logging.DEBUG, logger="slackrtm")
    records: List[str] = []
    client = make("socket_mode", send_rate=SendRate(per_second=50.0, burst=5),
                  log_level=logging.DEBUG,
                  logger=lambda level, message: records.append(message))
    client.start().result(timeout=10)
    general, random = slack.channel_id("general"), slack.channel_id("random")
    futs = [client.send_message(f"m{i}", general) for i in range(4)]  # 429s, resends
    futs.append(client.send_message("refused", random))  # not_in_channel
    errors = [f.exception(timeout=30) for f in futs]
    assert any(e is not None for e in errors)
    wait_until(lambda: any("rate limited" in r for r in records), 10, "a rate-limit log")
    client.disconnect()
    texts = records + [r.getMessage() for r in caplog.records]
    texts += [f"{e!r} {e}" for e in errors if e is not None] + [repr(client)]
    assert any("chat.postMessage" in t for t in texts)
    for secret in (slack.token, slack.app_token):
        assert not [t for t in texts if secret in t]
