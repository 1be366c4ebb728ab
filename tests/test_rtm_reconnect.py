"""Keep-alive, reconnection, backoff, fatal errors and failure modes of sends."""

from __future__ import annotations

import logging
import time
from typing import Callable, List

import pytest

from slackrtm import (
    Backoff,
    ErrorCode,
    NoReplyReceivedError,
    PlatformError,
    RateLimitedError,
    ReconnectRequested,
    RTMClient,
    SlackHTTPError,
    WebsocketError,
)
from slackrtm.testing import FakeSlack
from tests.conftest import LIFECYCLE, Recorder, client_threads, wait_until

Make = Callable[..., RTMClient]


def test_fifty_forced_drops_lose_nothing_from_the_queue(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "ready", "reconnecting")
    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    futures = []
    for i in range(50):
        rec.wait_for("ready", i + 1)
        if futures:  # the queued send was written at ready: let its reply come first
            assert futures[-1].result(timeout=30)["text"] == f"q{i - 1}"
        slack.hold_hello = True  # queue sends while the next connection waits for hello
        slack.drop(how="reset" if i % 2 else "fin")
        rec.wait_for("reconnecting", i + 1)
        futures.append(rtm.send_message(f"q{i}", channel))
        slack.wait_for_connect_count(i + 2)
        slack.hold_hello = False
        slack.release_hello()
    rec.wait_for("ready", 51)
    replies = [f.result(timeout=30) for f in futures]
    assert [r["text"] for r in replies] == [f"q{i}" for i in range(50)]
    assert slack.connect_count == 51
    assert [f["text"] for f in slack.wait_for_received("message", 50)] == \
        [f"q{i}" for i in range(50)]


def test_reconnect_backoff_after_ready_is_initial(slack: FakeSlack, make: Make) -> None:
    # a connection ready for healthy_after seconds counts as healthy: its loss starts
    # the count over (one lost sooner is a flap: tests/test_reliability_flapping.py)
    rtm = make(backoff=Backoff(initial=0.0, base=60.0, jitter=False, healthy_after=0.2))
    rec = Recorder().attach(rtm, "ready")
    rtm.start().result(timeout=30)
    time.sleep(0.3)  # longer than healthy_after
    t0 = time.monotonic()
    slack.drop()
    rec.wait_for("ready", 2, timeout=30)  # delay(0) == initial == 0: no 60 s wait
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("event", ["goodbye", "team_migration_started"])
def test_goodbye_and_migration_reconnect(slack: FakeSlack, make: Make, event: str) -> None:
    """The client reconnects at once on its own: the server keeps the old socket open for
    a minute (Slack closes it only some time after ``goodbye``), so a client that ignored
    the event would still be on the old connection when the wait below ends."""
    rtm = make()
    rec = Recorder().attach(rtm, "ready", "reconnecting", event)
    rtm.start().result(timeout=30)
    if event == "goodbye":
        slack.goodbye(grace=60.0)
    else:
        slack.inject({"type": event})
    rec.wait_for("ready", 2, timeout=30)  # well before the server closes anything
    assert rec.of(event) and rec.of("reconnecting") == [()]
    assert slack.connect_count == 2
    assert rtm.send_message("after", slack.channel_id("general")).result(30)["ok"]


def test_half_open_connection_detected_within_ping_plus_pong(slack: FakeSlack,
                                                             make: Make) -> None:
    rtm = make(client_ping_timeout=0.4, server_pong_timeout=0.2)
    rec = Recorder().attach(rtm, "ready", "reconnecting")
    rtm.start().result(timeout=30)
    slack.wait_for_received("ping", timeout=30)  # keep-alive pings flow while idle
    slack.drop_replies = True
    pending = rtm.send_message("lost", slack.channel_id("general"))
    slack.wait_for_received(lambda f: f.get("text") == "lost")
    t0 = time.monotonic()
    slack.freeze()
    rec.wait_for("reconnecting", timeout=30)
    detected = time.monotonic() - t0
    assert detected < 0.4 + 0.2 + 2.4, detected  # (before the 5 s reply timeout)
    assert isinstance(pending.exception(timeout=30), NoReplyReceivedError)
    slack.drop_replies = False
    slack.unfreeze()
    rec.wait_for("ready", 2, timeout=30)


def test_ignored_pings_trigger_reconnect(slack: FakeSlack, make: Make) -> None:
    rtm = make(client_ping_timeout=0.3, server_pong_timeout=0.15)
    rec = Recorder().attach(rtm, "ready", "reconnecting")
    rtm.start().result(timeout=30)
    slack.ignore_pings = True
    rec.wait_for("reconnecting", timeout=30)
    slack.ignore_pings = False
    rec.wait_for("ready", 2)


def test_missing_hello_reconnects(slack: FakeSlack, make: Make) -> None:
    slack.hold_hello = True
    rtm = make(hello_timeout=0.3)
    rec = Recorder().attach(rtm, "connected", "reconnecting", "ready")
    fut = rtm.start()
    rec.wait_for("reconnecting", timeout=30)
    slack.hold_hello = False
    assert fut.result(timeout=30)["ok"]
    rec.wait_for("connected", 2)


def test_rate_limited_rtm_connect_waits_retry_after(slack: FakeSlack, make: Make) -> None:
    slack.fail_next("rtm.connect", "ratelimited", status=429, retry_after=0.6)
    rtm = make()
    rec = Recorder().attach(rtm, *LIFECYCLE)
    t0 = time.monotonic()
    rtm.start().result(timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.6
    rec.wait_for("ready")  # events are dispatched after the future resolves
    (err,) = rec.of("unable_to_rtm_start")
    assert isinstance(err[0], RateLimitedError) and err[0].retry_after == pytest.approx(0.6)
    assert rec.names()[:3] == ["connecting", "unable_to_rtm_start", "reconnecting"]
    assert slack.call_count("rtm.connect") == 2


def test_retryable_errors_then_success(slack: FakeSlack, make: Make) -> None:
    slack.fail_next("rtm.connect", "internal_error", times=2)
    slack.fail_next("rtm.connect", status=500)
    rtm = make()
    rec = Recorder().attach(rtm, "unable_to_rtm_start")
    rtm.start().result(timeout=30)
    errs = [a[0] for a in rec.wait_for("unable_to_rtm_start", 3)]
    assert [type(e) for e in errs] == [PlatformError, PlatformError, SlackHTTPError]
    assert errs[0].error == "internal_error" and errs[2].status_code == 500


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked", "account_inactive",
                                   "missing_scope"])
def test_fatal_errors_fail_start_without_retry(slack: FakeSlack, make: Make,
                                               error: str) -> None:
    slack.fail_next("rtm.connect", error)
    rtm = make()
    rec = Recorder().attach(rtm, *LIFECYCLE)
    err = rtm.start().exception(timeout=30)
    assert isinstance(err, PlatformError) and err.error == error
    assert err.code is ErrorCode.PlatformError and err.data["error"] == error
    assert rtm.wait(30)
    assert slack.call_count("rtm.connect") == 1
    assert rec.names() == ["connecting", "unable_to_rtm_start", "error", "disconnecting",
                           "disconnected"]
    wait_until(lambda: not client_threads(), what="threads to end")


def test_invalid_token_is_fatal(slack: FakeSlack, make: Make) -> None:
    rtm = make(token="xoxb-wrong")
    with pytest.raises(PlatformError, match="invalid_auth"):
        rtm.start().result(timeout=30)
    with pytest.raises(PlatformError):
        rtm.run_forever()  # starts again, fails again, raises the error that ended it
    assert slack.call_count("rtm.connect") == 2


def test_no_auto_reconnect_first_failure_ends_the_run(slack: FakeSlack, make: Make) -> None:
    slack.fail_next("rtm.connect", "internal_error")
    rtm = make(auto_reconnect=False)
    rec = Recorder().attach(rtm, *LIFECYCLE)
    err = rtm.start().exception(timeout=30)
    assert isinstance(err, PlatformError)
    rtm.wait(5)
    assert rec.names()[-2:] == ["disconnecting", "disconnected"]
    assert slack.call_count("rtm.connect") == 1


def test_no_auto_reconnect_lost_connection(slack: FakeSlack, make: Make) -> None:
    rtm = make(auto_reconnect=False)
    rec = Recorder().attach(rtm, *LIFECYCLE)
    rtm.start().result(timeout=30)
    slack.drop()
    assert rtm.wait(30)
    (err,) = rec.of("error")
    assert isinstance(err[0], WebsocketError) and err[0].code is ErrorCode.WebsocketError
    assert rec.names()[-3:] == ["error", "disconnecting", "disconnected"]
    assert slack.connect_count == 1 and "reconnecting" not in rec.names()


def test_no_auto_reconnect_run_forever_raises(slack: FakeSlack, make: Make) -> None:
    rtm = make(auto_reconnect=False)
    rec = Recorder().attach(rtm, "error")
    rtm.once("ready", lambda: slack.drop())
    with pytest.raises(WebsocketError):
        rtm.run_forever()
    assert isinstance(rec.of("error")[0][0], WebsocketError)


def test_no_auto_reconnect_goodbye_ends_the_run_as_planned(slack: FakeSlack,
                                                          make: Make) -> None:
    rtm = make(auto_reconnect=False)
    rec = Recorder().attach(rtm, "error")
    rtm.start().result(timeout=5)
    slack.goodbye()
    assert rtm.wait(10)
    (err,) = rec.of("error")
    assert isinstance(err[0], ReconnectRequested) and err[0].event == "goodbye"
    assert "reconnecting" not in str(err[0])  # nothing reconnects: the message says so
    assert slack.connect_count == 1


def test_goodbye_reconnects_without_a_warning(slack: FakeSlack, make: Make,
                                              all_logs: List[logging.LogRecord]) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "ready")
    rtm.start().result(timeout=5)
    slack.goodbye()
    rec.wait_for("ready", 2, timeout=30)
    assert not [r for r in all_logs if r.levelno >= logging.WARNING]
    assert any("Slack sent 'goodbye': it closes this connection: reconnecting"
               in r.getMessage() for r in all_logs)


def test_handshake_failure_is_retried(slack: FakeSlack, make: Make) -> None:
    slack.hang_handshake = True
    rtm = make(hello_timeout=0.3)
    rec = Recorder().attach(rtm, "reconnecting")
    fut = rtm.start()
    rec.wait_for("reconnecting", timeout=30)
    slack.hang_handshake = False
    assert fut.result(timeout=30)["ok"]


def test_disconnect_interrupts_slow_rtm_connect(slack: FakeSlack, make: Make) -> None:
    slack.fail_next("rtm.connect", delay=10.0)
    rtm = make()
    fut = rtm.start()
    slack.wait_for_call("rtm.connect")
    t0 = time.monotonic()
    rtm.disconnect()
    assert time.monotonic() - t0 < 2.0
    assert fut.cancelled() and not client_threads()


def test_disconnect_during_backoff_is_immediate(slack: FakeSlack, make: Make) -> None:
    slack.fail_next("rtm.connect", "internal_error")
    rtm = make(backoff=Backoff(base=30.0, jitter=False))
    rec = Recorder().attach(rtm, "reconnecting")
    rtm.start()
    rec.wait_for("reconnecting")
    assert rtm.state == "reconnecting"
    t0 = time.monotonic()
    rtm.disconnect()
    assert time.monotonic() - t0 < 2.0 and rtm.state == "disconnected"


def test_reply_timeout(slack: FakeSlack, make: Make) -> None:
    slack.drop_replies = True
    rtm = make(reply_timeout=0.3)
    rtm.start().result(timeout=30)
    t0 = time.monotonic()
    err = rtm.send_message("x", slack.channel_id("general")).exception(timeout=30)
    assert isinstance(err, NoReplyReceivedError) and err.code is ErrorCode.NoReplyReceivedError
    assert 0.25 <= time.monotonic() - t0 < 2.0


def test_connection_lost_before_reply(slack: FakeSlack, make: Make) -> None:
    slack.drop_replies = True
    rtm = make()
    rec = Recorder().attach(rtm, "ready")
    rtm.start().result(timeout=30)
    fut = rtm.send_message("x", slack.channel_id("general"))
    slack.wait_for_received("message")
    slack.drop()
    assert isinstance(fut.exception(timeout=30), NoReplyReceivedError)
    rec.wait_for("ready", 2)
    assert len(slack.wait_for_received("message")) == 1  # never resent


def test_presence_resubscribed_after_reconnect(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "ready")
    rtm.subscribe_presence(["U1"])  # not started: fails, but nothing is kept
    rtm.start().result(timeout=30)
    assert rtm.subscribe_presence(["U1", "U2"]).result(timeout=30) is None
    slack.drop()
    rec.wait_for("ready", 2)
    subs = slack.wait_for_received("presence_sub", 2)
    assert [s["ids"] for s in subs] == [["U1", "U2"], ["U1", "U2"]]
    assert slack.connections[0].received[-1]["type"] == "presence_sub"


def test_rtm_args_and_rtm_start_cache(slack: FakeSlack, make: Make) -> None:
    rtm = make(use_rtm_connect=False)
    rec = Recorder().attach(rtm, "authenticated", "ready")
    rtm.start(batch_presence_aware=True).result(timeout=30)
    slack.drop()
    rec.wait_for("ready", 2)
    calls = slack.wait_for_call("rtm.start", 2)
    assert all(c.params.get("batch_presence_aware") in ("true", "1", True) for c in calls)
    assert slack.call_count("rtm.connect") == 0
    data = rec.of("authenticated")[0][0]
    assert data["users"] and data["channels"] and data["self"]["id"] == slack.bot_user_id


def test_batch_presence_events(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "presence_change")
    rtm.start(batch_presence_aware=True).result(timeout=30)
    alice = slack.user_id("alice")
    rtm.subscribe_presence([alice]).result(timeout=30)
    slack.wait_until(lambda: slack.connections[0].presence_subscriptions == [alice],
                     what="the subscription")
    slack.set_presence(slack.user_id("bob"), "away")  # not subscribed: no event
    slack.set_presence(alice, "away")
    (event,) = rec.wait_for("presence_change")
    assert event[0]["users"] == [alice] and event[0]["presence"] == "away"


def test_invalid_utf8_fails_the_connection_and_reconnects(slack: FakeSlack,
                                                          make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "ready", "reconnecting", "raw_message")
    rtm.start().result(timeout=30)
    slack.send_raw(b'{"type":"x","t":"\xff\xfe"}')
    rec.wait_for("ready", 2)
    assert not any("\ufffd" in a[0] for a in rec.of("raw_message"))


def test_messages_in_one_burst_all_arrive_in_order(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    seen: List[int] = []
    rtm.on("burst", lambda e: seen.append(e["n"]))
    rtm.start().result(timeout=30)
    import json
    slack.send_frames([json.dumps({"type": "burst", "n": i}) for i in range(5000)])
    wait_until(lambda: len(seen) == 5000, what="5000 burst events")
    assert seen == list(range(5000))


def test_unknown_reply_to_and_late_reply_are_harmless(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "error", "slack_event")
    rtm.start().result(timeout=30)
    slack.inject({"ok": True, "reply_to": 123456, "ts": "1.0"})
    slack.inject({"type": "after"})
    wait_until(lambda: any(a[0] == "after" for a in rec.of("slack_event")), what="after")
    assert rec.of("error") == []



def test_slow_handler_keeps_keepalive_and_replies_working(slack: FakeSlack,
                                                          make: Make) -> None:
    """A handler blocking longer than the ping timeout, with a tiny backlog limit:
    the reader pauses instead of dropping, the connection is not declared dead, sends
    still resolve, and every event arrives once, in order."""
    import threading

    rtm = make(client_ping_timeout=0.3, server_pong_timeout=0.15, max_backlog=5)
    rec = Recorder().attach(rtm, "reconnecting")
    seen: List[int] = []
    gate = threading.Event()

    @rtm.on("slow")
    def slow(event: dict) -> None:  # type: ignore[type-arg]
        if event["n"] == 0:
            gate.wait(1.5)  # five ping timeouts
        seen.append(event["n"])

    rtm.start().result(timeout=30)
    reply = rtm.send_message("before", slack.channel_id("general"))
    assert reply.result(timeout=30)["ok"]
    for n in range(3):
        slack.inject({"type": "slow", "n": n})
    during = rtm.send_message("during", slack.channel_id("general"))
    assert during.result(timeout=30)["ok"]  # resolved while the handler is blocked
    for n in range(3, 200):
        slack.inject({"type": "slow", "n": n})
    wait_until(lambda: len(seen) == 200, timeout=30, what="200 slow events")
    assert seen == list(range(200))
    after = rtm.send_message("after", slack.channel_id("general"))
    assert after.result(timeout=30)["ok"]
    assert rec.of("reconnecting") == [] and slack.connect_count == 1


def test_run_forever_passes_rtm_args(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rtm.once("ready", lambda: rtm.disconnect())
    rtm.run_forever(batch_presence_aware=True)
    (call,) = slack.wait_for_call("rtm.connect")
    assert call.params.get("batch_presence_aware") in ("true", "1")
    assert rtm.state == "disconnected"
