"""Reconnect triggers and rtm.connect failures in mixed sequences: goodbye storms,
team migrations, 429 with Retry-After, 500s, timeouts, refused handshakes and fatal errors.

Backoff is measured on FakeSlack's side (the arrival time of each rtm.connect call), and
"fatal is never retried" is proven by the run ending (no client thread is left that could
retry), not by waiting and hoping.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, List

import pytest

from slackrtm import (
    Backoff,
    PlatformError,
    RateLimitedError,
    RTMClient,
    SendWhileDisconnectedError,
    SlackHTTPError,
    WebClient,
    WebsocketError,
)
from slackrtm._engine.run import FATAL_ERRORS
from slackrtm.testing import FakeSlack
from tests.conftest import LIFECYCLE, Recorder
from tests.test_reliability_support import (
    Ledger,
    Senders,
    Streams,
    slackrtm_threads,
)

Make = Callable[..., RTMClient]


def test_goodbye_storm_each_goodbye_reconnects_exactly_once(slack: FakeSlack,
                                                           make: Make) -> None:
    """Goodbye right after every reconnect, several goodbyes in one burst, goodbye then a
    drop, team_migration_started, goodbye before hello: one reconnect each, at once
    (delay(0) after a ready connection), nothing sent is lost, events stay in order."""
    # healthy_after=0: every ready connection counts as healthy, so each goodbye gets a
    # reconnect at once; a storm right after hello otherwise counts as flapping and backs
    # off (tests/test_reliability_flapping.py)
    rtm = make(backoff=Backoff(initial=0.0, base=0.3, jitter=False, healthy_after=0.0),
               client_ping_timeout=5.0, server_pong_timeout=2.0)
    rec = Recorder().attach(rtm, "ready", "reconnecting", "goodbye",
                            "team_migration_started", "error")
    streams = Streams(rtm)
    ledger = Ledger()
    rtm.start().result(timeout=30)
    rec.wait_for("ready")  # (the future resolves before the event is dispatched)
    senders = Senders(rtm, ledger, slack.channel_id("general"), n=2)
    storms = ["goodbye", "burst", "goodbye_then_drop", "migration", "goodbye_before_hello"]
    failed_attempts: List[int] = []
    try:
        for i in range(40):
            kind = storms[i % len(storms)]
            ready = len(rec.of("ready"))
            reconnecting = len(rec.of("reconnecting"))
            conn = slack.connections[-1]
            streams.inject(slack, 2)
            if kind == "goodbye":
                slack.goodbye(to=conn)
            elif kind == "burst":
                slack.send_frames([json.dumps({"type": "goodbye"})] * 5, to=conn)
            elif kind == "goodbye_then_drop":
                slack.goodbye(to=conn)
                conn.drop("reset")
            elif kind == "migration":
                slack.inject({"type": "team_migration_started"}, to=conn)
            else:
                slack.hold_hello = True
                count = slack.connect_count
                failed_attempts.append(count + 1)  # index of the call after the failed one
                slack.goodbye(to=conn)
                slack.wait_for_connect_count(count + 1)
                slack.goodbye(to=slack.all_connections[count])  # connected, no hello yet
                slack.wait_for_connect_count(count + 2)
                slack.hold_hello = False
                slack.release_hello(to=slack.all_connections[count + 1])
            rec.wait_for("ready", ready + 1, timeout=30)
            assert len(rec.of("reconnecting")) == reconnecting + (
                2 if kind == "goodbye_before_hello" else 1), kind
    finally:
        senders.join()
    ledger.wait_all(timeout=10)
    outcomes = ledger.check(slack)
    assert set(outcomes) <= {"ok", "NoReplyReceivedError"} and outcomes["ok"] > 0, outcomes
    assert streams.check() > 0
    assert rec.of("error") == []
    assert len(rec.of("team_migration_started")) == 8
    # dispatched like any event, also without hello (a goodbye just before a reset may
    # be lost with the connection)
    assert len(rec.of("goodbye")) >= 8 + 8 + 2 * 8
    assert slack.connect_count == 1 + 40 + 8
    calls = slack.calls
    assert [c.method for c in calls] == ["rtm.connect"] * slack.connect_count
    # a goodbye before hello ends a failed attempt: the next waits delay(1) == 0.3 s
    for n in failed_attempts:
        assert calls[n].time - calls[n - 1].time >= 0.3


def test_mixed_rtm_connect_failures_honour_backoff_and_retry_after(slack: FakeSlack,
                                                                   make: Make) -> None:
    """500, 429 + Retry-After, ok:false, a timeout, a refused handshake, then success:
    every gap between attempts (as FakeSlack saw them) is at least the documented delay
    (``max(delay(failures), Retry-After)``) and not much more; after ready the count
    starts over (a drop reconnects at once). The delays are long enough (0.3 s to 2.4 s)
    for a loaded machine's scheduling to stay well inside the bounds."""
    # healthy_after=0: the ready connection counts as healthy at once, so its loss
    # starts the count over (a loss sooner than healthy_after would count as a flap)
    backoff = Backoff(initial=0.0, base=0.3, factor=2.0, maximum=2.4, jitter=False,
                      healthy_after=0.0)
    web = WebClient(slack.token, base_url=slack.api_url, timeout=0.25)
    rtm = make(backoff=backoff, web_client=web, client_ping_timeout=5.0,
               server_pong_timeout=2.0)
    rec = Recorder().attach(rtm, *LIFECYCLE)
    slack.fail_next("rtm.connect", status=500)
    slack.fail_next("rtm.connect", "ratelimited", status=429, retry_after=2.0)
    slack.fail_next("rtm.connect", "internal_error")
    slack.fail_next("rtm.connect", delay=3.0)  # answered after the client's 0.25 s timeout
    slack.fail_next("websocket", "busy", status=503)
    assert rtm.start().result(timeout=30)["ok"]
    calls = slack.wait_for_call("rtm.connect", 6)
    gaps = [b.time - a.time for a, b in zip(calls, calls[1:])]
    # waits after failures 1..5; the 4th attempt itself takes the 0.25 s timeout
    # (Retry-After 2.0 beats delay(2) = 0.6; FakeSlack notes a call once it has read it,
    # a little after the client's timeout started: hence 0.1 s of slack below)
    minimum = [0.3, 2.0, 1.2, 0.25 + 2.4, 2.4]
    for k, (gap, least) in enumerate(zip(gaps, minimum), start=1):
        assert least - 0.1 <= gap < least + 1.0, f"gap after failure {k}: {gap:.3f} s"
    errors = [a[0] for a in rec.of("unable_to_rtm_start")]
    assert [type(e) for e in errors] == [SlackHTTPError, RateLimitedError, PlatformError,
                                         SlackHTTPError]
    assert errors[0].status_code == 500 and errors[1].retry_after == pytest.approx(2.0)
    assert errors[2].error == "internal_error" and errors[3].status_code is None
    assert "timed out" in str(errors[3])
    assert len(rec.of("reconnecting")) == 5 and rec.of("error") == []
    slack.drop()
    rec.wait_for("ready", 2, timeout=30)  # delay(0) == initial: no 2.4 s wait
    after = slack.wait_for_call("rtm.connect", 7)[-1]
    assert after.time - calls[-1].time > 0 and rtm.state == "ready"
    rtm.disconnect()
    web.close()


def test_fatal_error_while_reconnecting_ends_the_run_and_fails_queued_sends(
        slack: FakeSlack, make: Make) -> None:
    """A token revoked while connected: the reconnect's rtm.connect answers
    token_revoked after some retryable failures; the run ends for good (error,
    disconnecting, disconnected), queued sends fail with SendWhileDisconnectedError,
    and no thread is left that could retry."""
    rtm = make()
    rec = Recorder().attach(rtm, *[e for e in LIFECYCLE if e != "unable_to_rtm_start"])
    failed: List[str] = []
    rtm.on("unable_to_rtm_start", lambda e: failed.append(type(e).__name__))
    start = rtm.start()
    assert start.result(timeout=30)["ok"]
    channel = slack.channel_id("general")
    slack.fail_next("rtm.connect", status=502)
    slack.fail_next("rtm.connect", "ratelimited", status=429, retry_after=0.05)
    slack.revoke_token()
    slack.hold_hello = True  # (never reached: no further connection is made)
    slack.drop()
    rec.wait_for("reconnecting")
    queued = [rtm.send_message(f"q{i}", channel) for i in range(20)]
    assert rtm.wait(timeout=5)
    assert not slackrtm_threads()  # nobody left to retry: fatal was not retried
    assert slack.call_count("rtm.connect") == 4
    assert failed == ["SlackHTTPError", "RateLimitedError", "PlatformError"]
    assert slack.connect_count == 1
    for fut in queued:
        assert isinstance(fut.exception(0), SendWhileDisconnectedError)
    (err,) = rec.of("error")
    assert isinstance(err[0], PlatformError) and err[0].error == "token_revoked"
    assert rec.names()[-3:] == ["error", "disconnecting", "disconnected"]
    assert start.result(0)["ok"]  # resolved at the first ready, untouched
    assert rtm.state == "disconnected"
    assert isinstance(rtm.send_message("late", channel).exception(0),
                      SendWhileDisconnectedError)
    # (descriptors: the PlatformError kept by the run holds the HTTP pool open; bug 04,
    # see test_reliability_races.py)


def test_every_fatal_error_stops_at_the_first_call(slack: FakeSlack, make: Make) -> None:
    seen: List[str] = []
    for error in sorted(FATAL_ERRORS):
        before = slack.call_count("rtm.connect")
        slack.fail_next("rtm.connect", "internal_error")  # a retryable one first
        slack.fail_next("rtm.connect", error)
        rtm = make()
        err = rtm.start().exception(timeout=30)
        assert isinstance(err, PlatformError) and err.error == error
        assert rtm.wait(30) and not slackrtm_threads()
        assert slack.call_count("rtm.connect") == before + 2, error
        seen.append(error)
    assert len(seen) == 10


@pytest.mark.parametrize("fault", ["429", "500", "timeout", "handshake_503", "hung_handshake",
                                   "no_hello", "drop_before_hello"])
def test_without_auto_reconnect_the_first_failure_of_any_kind_ends_the_run(
        slack: FakeSlack, make: Make, fault: str) -> None:
    web = WebClient(slack.token, base_url=slack.api_url, timeout=0.25)
    rtm = make(auto_reconnect=False, hello_timeout=0.3, web_client=web)
    rec = Recorder().attach(rtm, *LIFECYCLE)
    expected: Any = WebsocketError
    if fault == "429":
        slack.fail_next("rtm.connect", "ratelimited", status=429, retry_after=30)
        expected = RateLimitedError
    elif fault == "500":
        slack.fail_next("rtm.connect", status=500)
        expected = SlackHTTPError
    elif fault == "timeout":
        slack.fail_next("rtm.connect", delay=1.0)
        expected = SlackHTTPError
    elif fault == "handshake_503":
        slack.fail_next("websocket", "busy", status=503)
    elif fault == "hung_handshake":
        slack.hang_handshake = True
    elif fault == "no_hello":
        slack.hold_hello = True
    else:
        slack.hold_hello = True
        rtm.once("connected", lambda: slack.drop())
    queued = rtm.send_message("never", slack.channel_id("general"))
    err = rtm.start().exception(timeout=30)
    assert isinstance(err, expected), err
    assert rtm.wait(30) and not slackrtm_threads()
    assert slack.call_count("rtm.connect") == 1 and "reconnecting" not in rec.names()
    assert rec.names()[-3:] == ["error", "disconnecting", "disconnected"]
    assert rec.of("error")[0][0] is err
    assert isinstance(queued.exception(0), SendWhileDisconnectedError)
    web.close()


def test_disconnect_during_a_long_retry_after_is_immediate(slack: FakeSlack,
                                                           make: Make) -> None:
    slack.fail_next("rtm.connect", "ratelimited", status=429, retry_after=60)
    rtm = make()
    rec = Recorder().attach(rtm, "reconnecting")
    start = rtm.start()
    rec.wait_for("reconnecting")
    done = threading.Event()

    def stop() -> None:
        rtm.disconnect(timeout=5)
        done.set()

    threading.Thread(target=stop).start()
    assert done.wait(30), "disconnect() waited out Retry-After"
    assert start.cancelled() and slack.call_count("rtm.connect") == 1
