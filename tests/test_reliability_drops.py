"""Connections dropped at every point of their life, with sends in flight from threads.

Outcomes are exact: every send ends with its reply, ``NoReplyReceivedError`` (written,
then the connection died) or ``SendMessagePlatformError``, never pending and never
dropped; nothing is written twice; each thread's sends reach Slack in order; every event
is delivered once and in order on each connection; no thread or descriptor is left.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, Callable, List

import pytest

from slackrtm import NoReplyReceivedError, RTMClient, SendWhileDisconnectedError
from slackrtm.testing import FakeSlack
from tests.conftest import Recorder
from tests.test_reliability_support import (
    FlakyRelay,
    LeakCheck,
    Ledger,
    Senders,
    Streams,
    json_frame,
    partial_frame,
)

Make = Callable[..., RTMClient]

#: Where the connection is cut, and how. Each fault ends the current connection; the test
#: then waits for the client to be ready again.
FAULTS = ["reset", "fin", "close", "mid_frame", "mid_header", "between_send_and_reply",
          "before_hello", "handshake_refused", "rtm_connect_reset_request",
          "rtm_connect_reset_response", "rtm_connect_500", "goodbye"]


def cut(slack: FakeSlack, relay: FlakyRelay, kind: str, rng: random.Random,
        streams: Streams) -> None:
    """Apply one fault to the client's current connection."""
    conn = slack.connections[-1]
    streams.inject(slack, rng.randrange(4))
    if kind in ("reset", "fin", "close"):
        slack.drop(kind, to=conn)
    elif kind in ("mid_frame", "mid_header"):
        text = json.dumps({"type": "partial", "pad": "x" * rng.randrange(10, 70000)})
        keep = rng.randrange(12, 200) if kind == "mid_frame" else 1
        conn.send_bytes(partial_frame(text, keep))
        conn.drop(rng.choice(["reset", "fin"]))
    elif kind == "between_send_and_reply":
        slack.drop_replies = True
        n = len(conn.received)
        slack.wait_until(lambda: any(f.get("type") == "message"
                                     for f in conn.received[n:]), 5, "a send to be written")
        conn.drop("reset")
        slack.drop_replies = False
    elif kind == "before_hello":
        slack.hold_hello = True
        count = slack.connect_count
        conn.drop("fin")
        slack.wait_for_connect_count(count + 1)
        slack.drop("reset", to=slack.all_connections[count])  # connected, no hello yet
        slack.hold_hello = False
        slack.release_hello()  # to a connection accepted while the flag was still up
    elif kind == "handshake_refused":
        slack.fail_next("websocket", "busy", status=503)
        conn.drop("reset")
    elif kind.startswith("rtm_connect_reset"):
        relay.arm(kind.rpartition("_")[2])
        conn.drop("fin")
    elif kind == "rtm_connect_500":
        slack.fail_next("rtm.connect", status=500)
        conn.drop("close")
    elif kind == "goodbye":
        slack.goodbye(to=conn)
    else:  # pragma: no cover
        raise AssertionError(kind)


def test_200_drops_at_every_point_with_sends_in_flight(slack: FakeSlack, make: Make) -> None:
    leaks = LeakCheck()
    with FlakyRelay(slack) as relay:
        rtm = make(slack_api_url=relay.api_url, reply_timeout=5.0, hello_timeout=1.0)
        rec = Recorder().attach(rtm, "ready", "reconnecting")
        # names only: an error kept alive keeps its traceback's HTTP pool open (bug 04,
        # tested on its own in test_reliability_races.py)
        failed_attempts: List[str] = []
        rtm.on("unable_to_rtm_start", lambda e: failed_attempts.append(type(e).__name__))
        streams = Streams(rtm)
        partials: List[Any] = []
        rtm.on("partial", partials.append)
        ledger = Ledger()
        channel = slack.channel_id("general")
        queued_early = [ledger.send(rtm, f"early-{i}", channel) for i in range(3)]
        assert all(isinstance(f.exception(0), SendWhileDisconnectedError)
                   for f in queued_early)  # before start(): failed at once, documented
        ledger = Ledger()
        start = rtm.start()
        queued_early = [ledger.send(rtm, f"early-{i}", channel) for i in range(5)]
        start.result(timeout=30)
        rec.wait_for("ready")  # (the future resolves before the event is dispatched)
        # queued before ready: written at ready, and delivered (before any fault starts)
        assert all(f.result(timeout=30)["ok"] for f in queued_early)
        senders = Senders(rtm, ledger, channel)
        rng = random.Random(4)
        done = {kind: 0 for kind in FAULTS}
        try:
            for i in range(200):
                kind = FAULTS[i % len(FAULTS)] if i < len(FAULTS) else rng.choice(FAULTS)
                ready = len(rec.of("ready"))
                cut(slack, relay, kind, rng, streams)
                rec.wait_for("ready", ready + 1, timeout=30)
                done[kind] += 1
                # let the new connection carry a few sends (and their replies) first
                new = slack.connections[-1]
                slack.wait_until(lambda c=new: len(c.received) >= 3, 5,
                                 "sends on the new connection")
        finally:
            senders.join()
        ledger.wait_all(timeout=15)  # every send ends while the client is still running
        # and with the faults over, every send gets its own reply
        final = [ledger.send(rtm, f"final-{i}", channel) for i in range(100)]
        assert all(f.result(timeout=30)["text"] == f"final-{i}" for i, f in enumerate(final))
        outcomes = ledger.check(slack)
        rtm.disconnect()
    assert outcomes["ok"] > 400 and outcomes["NoReplyReceivedError"] > 0, outcomes
    assert set(outcomes) <= {"ok", "NoReplyReceivedError"}, outcomes
    assert partials == []  # a frame cut midway is never delivered
    assert streams.check() > 100
    assert slack.connect_count >= 201 and all(done.values()), done
    assert len(rec.of("reconnecting")) >= 200
    # relay resets and HTTP 500s, all retried
    assert set(failed_attempts) == {"SlackHTTPError"}, failed_attempts
    leaks.check(slack)


@pytest.mark.parametrize("how", ["reset", "fin"])
def test_a_frame_cut_midway_is_never_delivered_and_the_next_connection_starts_clean(
        slack: FakeSlack, make: Make, how: str) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "ready", "raw_message", "partial", "whole")
    rtm.start().result(timeout=30)
    big = json.dumps({"type": "partial", "pad": "y" * 300_000})
    conn = slack.connections[0]
    conn.send_bytes(json_frame({"type": "whole", "n": 1}) + partial_frame(big, 150_000))
    conn.drop(how)
    rec.wait_for("ready", 2)
    slack.inject({"type": "whole", "n": 2})  # parsed from a fresh buffer
    rec.wait_for("whole", 2)
    assert [a[0]["n"] for a in rec.of("whole")] == [1, 2]
    assert rec.of("partial") == []
    assert all("partial" not in a[0] for a in rec.of("raw_message"))


def test_sends_queued_across_many_failed_attempts_are_all_delivered(slack: FakeSlack,
                                                                   make: Make) -> None:
    """Sends made while the client cannot connect (refused handshakes, rtm.connect errors,
    connections without hello) stay queued, in order, and go out once ready."""
    rtm = make(hello_timeout=0.3, client_ping_timeout=5.0, server_pong_timeout=2.0)
    rec = Recorder().attach(rtm, "ready", "reconnecting")
    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    slack.fail_next("rtm.connect", "internal_error", times=3)
    slack.fail_next("websocket", "busy", status=503, times=3)
    slack.hold_hello = True  # then two connections that never get hello
    slack.drop()
    rec.wait_for("reconnecting")
    futures = [rtm.send_message(f"held-{i}", channel) for i in range(100)]
    rec.wait_for("reconnecting", 1 + 3 + 3 + 2)
    assert slack.connect_count == 3 and not any(f.done() for f in futures)
    slack.hold_hello = False
    replies = [f.result(timeout=30) for f in futures]
    assert [r["text"] for r in replies] == [f"held-{i}" for i in range(100)]
    rec.wait_for("ready", 2)  # replies resolve on the reader; events follow on theirs
    assert len(rec.of("ready")) == 2 and slack.connect_count == 4
    assert len(rec.of("reconnecting")) == 1 + 3 + 3 + 2
    sent = [f["text"] for f in slack.received if f.get("type") == "message"]
    assert sent == [f"held-{i}" for i in range(100)]


def test_half_open_connection_under_load_is_detected_and_recovered(slack: FakeSlack,
                                                                   make: Make) -> None:
    """The server stops reading and answering while threads keep sending: the missed
    pong tears the connection down, written sends fail with NoReplyReceivedError, sends
    made meanwhile wait and go out on the next connection; the frozen server side is
    closed too once it thaws."""
    rtm = make(client_ping_timeout=0.4, server_pong_timeout=0.2, reply_timeout=10.0)
    rec = Recorder().attach(rtm, "ready", "reconnecting")
    rtm.start().result(timeout=30)
    ledger = Ledger()
    channel = slack.channel_id("general")
    senders = Senders(rtm, ledger, channel, n=3)
    slack.wait_for_received("message", 30)
    frozen = slack.freeze()
    t0 = time.monotonic()
    rec.wait_for("reconnecting", timeout=30)
    detected = time.monotonic() - t0
    rec.wait_for("ready", 2, timeout=30)
    slack.wait_for_received(lambda f: f.get("type") == "message", len(slack.received) + 30)
    senders.join()
    ledger.wait_all(timeout=15)
    outcomes = ledger.check(slack)
    assert outcomes["NoReplyReceivedError"] >= 1 and outcomes["ok"] > 30, outcomes
    # ping + pong timeouts, with room for a loaded machine; well before the 5 s reply
    # timeout that would otherwise be the first to notice
    assert detected < 0.4 + 0.2 + 2.4, detected
    # the replies the frozen server owed were never delivered: failed, not resolved late
    lost = [t for t, _, f in ledger.sends if isinstance(f.exception(0), NoReplyReceivedError)]
    slack.unfreeze()
    frozen[0].wait_closed(timeout=30)
    assert slack.connect_count == 2 and lost


def test_handshake_that_never_completes_is_abandoned_every_time(slack: FakeSlack,
                                                               make: Make) -> None:
    """TCP is accepted but the upgrade is never answered: each attempt gives up after
    hello_timeout, closes its socket, backs off; queued sends wait; no descriptor left."""
    leaks = LeakCheck()
    slack.hang_handshake = True
    rtm = make(hello_timeout=0.2)
    rec = Recorder().attach(rtm, "reconnecting", "connected", "ready")
    start = rtm.start()
    queued = rtm.send_message("waited", slack.channel_id("general"))
    slack.wait_until(lambda: slack.handshake_attempts >= 3, 30, "three hung handshakes")
    rec.wait_for("reconnecting", 3)
    assert rec.of("connected") == [] and not start.done() and not queued.done()
    slack.hang_handshake = False
    assert start.result(timeout=30)["ok"]
    assert queued.result(timeout=30)["text"] == "waited"
    assert slack.connect_count == 1
    rtm.disconnect()
    leaks.check(slack)


def test_drops_during_rtm_connect_are_retried(slack: FakeSlack, make: Make) -> None:
    """The HTTP connection of rtm.connect is reset before or while it is answered:
    a failed attempt (SlackHTTPError), retried with backoff; start() still resolves."""
    with FlakyRelay(slack) as relay:
        relay.arm("request", times=2)
        relay.arm("response", times=2)
        rtm = make(slack_api_url=relay.api_url)
        rec = Recorder().attach(rtm, "unable_to_rtm_start", "reconnecting")
        data = rtm.start().result(timeout=30)
        assert data["ok"] and relay.resets == 4
        errors = [a[0] for a in rec.of("unable_to_rtm_start")]
        assert len(errors) == 4 and len(rec.of("reconnecting")) == 4
        assert all(type(e).__name__ == "SlackHTTPError" and e.status_code is None
                   for e in errors), errors
        assert rtm.send_message("after", slack.channel_id("general")).result(30)["ok"]
        rtm.disconnect()
