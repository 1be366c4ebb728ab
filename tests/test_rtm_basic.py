"""RTMClient against FakeSlack: connecting, events, sending, disconnecting."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError, Future
from typing import Any, Callable, Dict, List

import pytest

import slackrtm
from slackrtm import (
    ErrorCode,
    KeepAliveConfigError,
    NoReplyReceivedError,
    PlatformError,
    RTMClient,
    SendMessagePlatformError,
    SendWhileDisconnectedError,
)
from slackrtm.testing import FakeSlack
from tests.conftest import LIFECYCLE, Recorder, client_threads, wait_until

Make = Callable[..., RTMClient]


def test_public_api_is_pinned() -> None:
    assert sorted(slackrtm.__all__) == sorted([
        "RTMClient", "WebClient", "SlackResponse", "LogLevel", "ErrorCode", "Backoff",
        "SlackRTMError", "PlatformError", "SendMessagePlatformError",
        "SendWhileDisconnectedError", "NoReplyReceivedError", "WebsocketError",
        "KeepAliveConfigError", "SlackApiError", "SlackHTTPError", "RateLimitedError",
        "MessageTooLongError", "SendRate", "SocketModeClient", "SocketModeRequest",
        "Dedupe", "MemoryDedupe", "ReconnectRequested", "TooManyWebsockets",
        "__version__"])
    for name in slackrtm.__all__:
        assert getattr(slackrtm, name) is not None


def test_keepalive_config_is_checked() -> None:
    with pytest.raises(KeepAliveConfigError) as info:
        RTMClient("xoxb-1", client_ping_timeout=5, server_pong_timeout=5)
    assert info.value.code is ErrorCode.KeepAliveConfigError
    with pytest.raises(ValueError, match="http://"):
        RTMClient("xoxb-1", proxy="ftp://127.0.0.1:1")


def test_start_resolves_at_ready_with_lifecycle_in_order(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, *LIFECYCLE)
    assert rtm.state == "disconnected" and not rtm.connected
    data = rtm.start().result(timeout=30)
    assert data["ok"] is True and data["self"]["id"] == slack.bot_user_id
    assert rtm.ready and rtm.connected and rtm.authenticated and rtm.state == "ready"
    assert rtm.active_user_id == slack.bot_user_id
    assert rtm.active_team_id == slack.team_id
    rec.wait_for("ready")
    assert rec.names() == ["connecting", "authenticated", "connected", "ready"]
    (auth_args,) = rec.of("authenticated")
    assert auth_args[0]["url"].startswith("ws://127.0.0.1")
    rtm.disconnect()
    assert rec.names()[-2:] == ["disconnecting", "disconnected"]
    assert rtm.state == "disconnected" and not rtm.authenticated
    assert not client_threads()


def test_start_twice_returns_the_same_future(make: Make, slack: FakeSlack) -> None:
    rtm = make()
    f1 = rtm.start()
    f2 = rtm.start()
    assert f1 is f2
    f1.result(timeout=30)
    assert rtm.start() is f1
    assert slack.connect_count == 1


def test_send_message_resolves_with_reply_and_echo(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "message", "slack_event")
    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    reply = rtm.send_message("hello there", channel).result(timeout=30)
    assert reply["ok"] is True and reply["text"] == "hello there" and reply["ts"]
    (frame,) = slack.wait_for_received("message")
    assert frame == {"id": frame["id"], "type": "message", "channel": channel,
                     "text": "hello there"}
    (echo,) = rec.wait_for("message")
    assert echo[0]["ts"] == reply["ts"] and echo[0]["channel"] == channel
    assert ("message", echo[0]) in [a for a in rec.of("slack_event")]


def test_add_outgoing_event_takes_the_type_first_and_the_older_form(slack: FakeSlack,
                                                                    make: Make) -> None:
    rtm = make()
    rtm.start().result(timeout=5)
    channel = slack.channel_id("general")
    reply = rtm.add_outgoing_event("message", {"channel": channel, "text": "new form"},
                                   await_reply=True).result(timeout=5)
    assert reply["ok"] is True and reply["text"] == "new form"
    assert rtm.add_outgoing_event("typing", {"channel": channel},
                                  await_reply=False).result(timeout=5) is None
    old = rtm.add_outgoing_event(True, "message", {"channel": channel, "text": "old form"})
    assert old.result(timeout=5)["text"] == "old form"
    assert rtm.add_outgoing_event(await_reply=False, type="typing",
                                  body={"channel": channel}).result(timeout=5) is None
    for bad_args, bad_kwargs in [((), {}), (("typing",), {}), (("typing", None, 3), {}),
                                 ((True,), {}), ((True, "x"), {"type": "y"}),
                                 (("typing",), {"await_reply": True, "channel": "C"}),
                                 ((5,), {"await_reply": True})]:
        with pytest.raises(TypeError):
            rtm.add_outgoing_event(*bad_args, **bad_kwargs)
    kinds = [f["type"] for f in slack.wait_for_received(None, count=4)]
    assert kinds == ["message", "typing", "message", "typing"]


def test_thread_ts_typing_and_generic_events(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    parent = rtm.send_message("parent", channel).result(timeout=30)
    rtm.send_message("child", channel, thread_ts=parent["ts"]).result(timeout=30)
    assert rtm.send_typing(channel).result(timeout=30) is None
    assert rtm.add_outgoing_event(False, "custom", {"id": 5, "type": "x", "a": 1}
                                  ).result(timeout=30) is None
    frames = slack.wait_for_received(None, count=4)
    assert frames[1]["thread_ts"] == parent["ts"]
    assert frames[2] == {"id": frames[2]["id"], "type": "typing", "channel": channel}
    assert frames[3]["type"] == "custom" and frames[3]["a"] == 1 and frames[3]["id"] != 5
    ids = [f["id"] for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_error_reply_fails_the_future(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    fut = rtm.send_message("", slack.channel_id("general"))
    err = fut.exception(timeout=30)
    assert isinstance(err, SendMessagePlatformError)
    assert err.code is ErrorCode.SendMessagePlatformError
    assert err.error["code"] == 2 and err.data["ok"] is False


def test_send_while_disconnected_fails_at_once(make: Make) -> None:
    rtm = make()
    fut = rtm.send_message("x", "C1")
    assert fut.done()
    err = fut.exception()
    assert isinstance(err, SendWhileDisconnectedError)
    assert err.code is ErrorCode.SendWhileDisconnectedError
    rtm.start().result(timeout=30)
    rtm.disconnect()
    assert isinstance(rtm.send_typing("C1").exception(timeout=0), SendWhileDisconnectedError)


def test_sends_made_before_ready_are_written_in_order(slack: FakeSlack, make: Make) -> None:
    slack.hold_hello = True
    rtm = make()
    start = rtm.start()
    futs = [rtm.send_message(f"m{i}", slack.channel_id("general")) for i in range(20)]
    slack.wait_for_connections(1)
    assert not any(f.done() for f in futs)
    slack.release_hello()
    start.result(timeout=30)
    replies = [f.result(timeout=30) for f in futs]
    assert [r["text"] for r in replies] == [f"m{i}" for i in range(20)]
    assert [f["text"] for f in slack.wait_for_received("message", 20)] == \
        [f"m{i}" for i in range(20)]


def test_disconnect_fails_queued_and_unanswered_sends(slack: FakeSlack, make: Make) -> None:
    slack.drop_replies = True
    rtm = make()
    rtm.start().result(timeout=30)
    written = rtm.send_message("w", slack.channel_id("general"))
    slack.wait_for_received("message")
    rtm.disconnect()
    assert isinstance(written.exception(timeout=0), NoReplyReceivedError)

    slack.hold_hello = True
    rtm2 = make()
    rtm2.start()
    queued = rtm2.send_message("q", slack.channel_id("general"))
    rtm2.disconnect()
    assert isinstance(queued.exception(timeout=0), SendWhileDisconnectedError)


def test_disconnect_before_ready_cancels_start(slack: FakeSlack, make: Make) -> None:
    slack.hold_hello = True
    rtm = make()
    fut = rtm.start()
    slack.wait_for_connections(1)
    rtm.disconnect()
    assert fut.cancelled()
    with pytest.raises(CancelledError):
        fut.result(timeout=0)
    assert rtm.state == "disconnected" and not client_threads()


def test_disconnect_is_idempotent_and_client_restarts(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "disconnected", "ready")
    rtm.disconnect()  # never started: nothing happens
    rtm.start().result(timeout=30)
    rtm.disconnect()
    rtm.disconnect()
    assert len(rec.of("disconnected")) == 1
    assert rtm.wait(0) is True
    data = rtm.start().result(timeout=30)
    assert data["ok"] and rtm.ready
    reply = rtm.send_message("again", slack.channel_id("general")).result(timeout=30)
    assert reply["ok"]
    rtm.disconnect()
    assert len(rec.of("disconnected")) == 2 and len(rec.of("ready")) == 2


def test_disconnect_from_a_handler(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "disconnected")
    returned = threading.Event()

    @rtm.on("reaction_added")
    def stop(event: Dict[str, Any]) -> None:
        rtm.disconnect()
        assert rec.of("disconnected") == []  # runs after this handler returns
        returned.set()

    rtm.start().result(timeout=30)
    slack.inject({"type": "reaction_added", "reaction": "tada"})
    assert rtm.wait(30)
    assert returned.is_set() and len(rec.of("disconnected")) == 1
    wait_until(lambda: not client_threads(), what="threads to end")


def test_concurrent_disconnects_from_many_threads(make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "disconnected", "disconnecting")
    rtm.start().result(timeout=30)
    threads = [threading.Thread(target=rtm.disconnect) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert rec.of("disconnecting") == [()] and rec.of("disconnected") == [()]
    assert not client_threads()


def test_context_manager_and_wait(make: Make) -> None:
    rtm = make()
    assert rtm.wait(0) is True
    with rtm as entered:
        assert entered is rtm
        rtm.start().result(timeout=30)
        assert rtm.wait(0.05) is False
    assert rtm.state == "disconnected" and rtm.wait(1) is True


def test_repr_has_no_token(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    assert slack.token not in repr(rtm) and "ready" in repr(rtm)
    assert slack.token not in repr(rtm.web_client)


# ---------------------------------------------------------------- events
def test_event_routing_types_subtypes_and_raw(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "raw_message", "slack_event", "channel_rename",
                            "message::channel_name", "message", "hello")
    rtm.start().result(timeout=30)
    rec.wait_for("hello")
    slack.inject({"type": "message", "subtype": "channel_name", "old_name": "a",
                  "name": "b", "channel": "C1"})
    slack.inject({"type": "channel_rename", "channel": {"id": "C1", "name": "b"}})
    rec.wait_for("channel_rename")
    (sub,) = rec.of("message::channel_name")
    assert sub[0]["old_name"] == "a"
    assert rec.of("message")[0][0]["subtype"] == "channel_name"
    types = [a[0] for a in rec.of("slack_event")]
    assert types == ["hello", "message", "channel_rename"]
    raws = [a[0] for a in rec.of("raw_message")]
    assert '"hello"' in raws[0] and '"channel_name"' in raws[1]
    # per frame: raw_message, then slack_event, then {type}, then {type}::{subtype}
    names = [n for n in rec.names() if n != "hello"]
    i = names.index("message")
    assert names[i - 2:i + 2] == ["raw_message", "slack_event", "message",
                                  "message::channel_name"]


def test_replies_and_junk_only_reach_raw_message(slack: FakeSlack, make: Make,
                                                 all_logs: List[Any]) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "raw_message", "slack_event", "error")
    rtm.start().result(timeout=30)
    rtm.send_message("x", slack.channel_id("general")).result(timeout=30)
    for junk in ("not json", "[1, 2]", '{"no_type": 1}', '{"type": 5}'):
        slack.send_raw(junk)
    slack.inject({"type": "sentinel"})
    rec.wait_for("slack_event", 3)  # hello, the echo, the sentinel
    types = [a[0] for a in rec.of("slack_event")]
    assert types == ["hello", "message", "sentinel"]
    raws = [a[0] for a in rec.of("raw_message")]
    assert "not json" in raws and '{"type": 5}' in raws
    assert any('"reply_to"' in r for r in raws)
    warnings = [r.getMessage() for r in all_logs if r.levelname == "WARNING"]
    assert sum("not a Slack event" in w for w in warnings) == 4
    assert rec.of("error") == []


def test_slack_error_frame(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "slack_event", "error")
    rtm.start().result(timeout=30)
    frame = {"type": "error", "error": {"code": 1, "msg": "Socket URL has expired"}}
    slack.inject(frame)
    (err,) = rec.wait_for("error")
    assert isinstance(err[0], PlatformError) and err[0].error == "Socket URL has expired"
    assert err[0].data == frame and err[0].code is ErrorCode.PlatformError
    assert ("error", frame) in rec.of("slack_event")


def test_on_once_off_decorators_and_duplicates(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    calls: List[str] = []

    @rtm.on("ping_test")
    def first(event: Dict[str, Any]) -> None:
        calls.append("first")

    def second(event: Dict[str, Any]) -> None:
        calls.append("second")

    assert rtm.on("ping_test", second) is second
    rtm.on("ping_test", second)  # registered once
    rtm.on("ping_test")(lambda e: calls.append("lambda"))  # held strongly
    rtm.once("ping_test", lambda e: calls.append("once"))
    done = threading.Event()
    rtm.on("done", lambda e: done.set())
    import gc
    gc.collect()
    rtm.start().result(timeout=30)
    slack.inject({"type": "ping_test"})
    slack.inject({"type": "ping_test"})
    wait_until(lambda: len(calls) == 7, what="two rounds of handlers")
    rtm.off("ping_test", first)
    rtm.off("ping_test", lambda e: None)  # absent: no error
    slack.inject({"type": "ping_test"})
    slack.inject({"type": "done"})
    assert done.wait(30)
    assert calls[:7] == ["first", "second", "lambda", "once", "first", "second", "lambda"]
    assert calls[7:] == ["second", "lambda"]


def test_once_off_before_it_runs(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    calls: List[str] = []

    def handler(event: Dict[str, Any]) -> None:
        calls.append("x")

    rtm.once("thing", handler)
    rtm.off("thing", handler)
    done = threading.Event()
    rtm.on("done", lambda e: done.set())
    rtm.start().result(timeout=30)
    slack.inject({"type": "thing"})
    slack.inject({"type": "done"})
    assert done.wait(30) and calls == []


def test_raising_handler_is_isolated(slack: FakeSlack, make: Make,
                                     all_logs: List[Any]) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "error")
    calls: List[str] = []

    def boom(event: Dict[str, Any]) -> None:
        raise ValueError("handler exploded")

    def bad_error_handler(err: Exception) -> None:
        raise RuntimeError("error handler exploded too")

    rtm.on("thing", boom)
    rtm.on("thing", lambda e: calls.append(e["n"]))
    rtm.on("error", bad_error_handler)
    rtm.start().result(timeout=30)
    slack.inject({"type": "thing", "n": 1})
    slack.inject({"type": "thing", "n": 2})
    rec.wait_for("error", 2)
    wait_until(lambda: calls == [1, 2], what="both events")
    assert all(isinstance(a[0], ValueError) for a in rec.of("error"))
    text = "\n".join(r.getMessage() for r in all_logs if r.levelname == "ERROR")
    assert "handler exploded" in text and "Traceback" in text
    assert "error handler exploded too" in text


def test_handler_may_block_on_a_send(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    got: List[str] = []

    @rtm.on("reaction_added")
    def reply(event: Dict[str, Any]) -> None:
        got.append(rtm.send_message("seen", slack.channel_id("general")).result(30)["ts"])

    rtm.start().result(timeout=30)
    slack.inject({"type": "reaction_added"})
    wait_until(lambda: got, what="the handler's send to resolve")


def test_futures_resolve_off_the_dispatcher(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    where: List[str] = []
    fut: Future[Any] = rtm.send_message("x", slack.channel_id("general"))
    fut.add_done_callback(lambda f: where.append(threading.current_thread().name))
    fut.result(timeout=30)
    wait_until(lambda: where, what="callback")
    assert where[0] != "slackrtm-dispatcher"


def test_restart_from_a_handler_keeps_one_dispatcher_and_event_order(
        slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, *LIFECYCLE)
    threads: List[str] = []
    rtm.on("ready", lambda: threads.append(threading.current_thread().name))

    @rtm.once("reaction_added")
    def restart(event: Dict[str, Any]) -> None:
        rtm.disconnect()
        rtm.start()

    rtm.start().result(timeout=30)
    slack.inject({"type": "reaction_added"})
    rec.wait_for("ready", 2)
    assert rec.names() == ["connecting", "authenticated", "connected", "ready",
                           "disconnecting", "disconnected",
                           "connecting", "authenticated", "connected", "ready"]


def test_backlog_counts_frames_only(slack: FakeSlack, make: Make) -> None:
    rtm = make(max_backlog=1)
    rec = Recorder().attach(rtm, "message")
    for _ in range(3):
        rtm.start().result(timeout=30)
        slack.post_message(slack.channel_id("general"), "hi")
        rec.wait_for("message", len(rec.of("message")) + 1)
        rtm.disconnect()


def test_disconnect_interrupts_a_hanging_handshake(slack: FakeSlack, make: Make) -> None:
    import time

    slack.hang_handshake = True
    rtm = make(hello_timeout=60.0, client_ping_timeout=60.0, server_pong_timeout=30.0)
    rtm.start()
    wait_until(lambda: slack.handshake_attempts >= 1, what="the handshake to start")
    t0 = time.monotonic()
    rtm.disconnect(timeout=30.0)
    assert time.monotonic() - t0 < 10.0  # (else: the 60 s hello timeout or 30 s)
    assert not client_threads() and rtm.state == "disconnected"


def test_disconnect_respects_its_timeout_with_a_stuck_writer(slack: FakeSlack,
                                                            make: Make) -> None:
    import time

    rtm = make(client_ping_timeout=30.0, server_pong_timeout=10.0)
    rtm.start().result(timeout=30)
    slack.freeze()  # the server stops reading: big writes end up blocked in sendall
    big = "x" * 1_000_000  # not a message: those over 4,000 characters fail at once
    futs: List[Future[Any]] = []
    sender = threading.Thread(target=lambda: futs.extend(
        rtm.add_outgoing_event(True, "blob", {"blob": big}) for _ in range(40)))
    sender.start()
    run = rtm._run
    assert run is not None and run.transport is not None
    send_lock = run.transport._send_lock

    def stuck() -> bool:  # the same write holds the lock across 0.2 s: it is blocked
        n = len(futs)
        if not send_lock.locked():
            return False
        time.sleep(0.2)
        return send_lock.locked() and len(futs) == n

    wait_until(stuck, what="a write blocked on the full socket")
    t0 = time.monotonic()
    rtm.disconnect(timeout=1.0)
    assert time.monotonic() - t0 < 1.5
    sender.join(5)
    assert not sender.is_alive() and len(futs) == 40
    assert all(f.done() for f in futs)
