"""Backfill: messages posted while the client was disconnected are delivered once, in order,
before the new connection's events (or counted in ``missed``); rate limits, limits,
duplicates, disconnect() during a backfill and restarts."""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import pytest

from slackrtm import RTMClient
from slackrtm._store.backfill import ts_key
from slackrtm.testing import FakeSlack

from .conftest import Recorder, wait_until


class Inbox:
    """Every message event and ``missed`` event, in dispatch order."""

    def __init__(self, rtm: RTMClient) -> None:
        self.messages: List[Tuple[str, str, bool]] = []  # (channel, ts, backfilled)
        self.missed: List[Tuple[str, int]] = []
        self.order: List[str] = []  # "live" / "backfilled" / "ready"
        self._lock = threading.Lock()
        rtm.on("message", self._message)
        rtm.on("missed", self._missed)
        rtm.on("ready", lambda: self.order.append("ready"))

    def _message(self, event: Dict[str, Any]) -> None:
        with self._lock:
            backfilled = bool(event.get("backfilled"))
            self.messages.append((event["channel"], event["ts"], backfilled))
            self.order.append("backfilled" if backfilled else "live")

    def _missed(self, channel: str, count: int) -> None:
        with self._lock:
            self.missed.append((channel, count))

    def ts_of(self) -> List[str]:
        with self._lock:
            return [ts for _, ts, _ in self.messages]

    def missed_total(self) -> int:
        with self._lock:
            return sum(n for _, n in self.missed)


def outage(slack: FakeSlack, rng: random.Random, channels: List[str],
           count: int) -> List[Dict[str, Any]]:
    """Drop the connection, hold the reconnect for a random time (a slow rtm.connect),
    post ``count`` messages meanwhile; returns them."""
    before = slack.call_count("rtm.connect")
    slack.fail_next("rtm.connect", delay=rng.uniform(0.05, 0.3))
    slack.drop()
    slack.wait_for_call("rtm.connect", count=before + 1)
    return [slack.post_message(rng.choice(channels), f"while down {i}") for i in range(count)]


def member_channels(slack: FakeSlack) -> List[str]:
    return [c["id"] for c in slack.channels if c["is_member"]]


def start(rtm: RTMClient) -> Recorder:
    rec = Recorder().attach(rtm, "ready", "error", "missed")
    rtm.start().result(30)
    rec.wait_for("ready")
    return rec


def check_order(inbox: Inbox) -> None:
    per_channel: Dict[str, List[str]] = {}
    for channel, ts, _ in inbox.messages:
        per_channel.setdefault(channel, []).append(ts)
    for channel, stamps in per_channel.items():
        assert stamps == sorted(stamps, key=ts_key), channel
        assert len(set(stamps)) == len(stamps), f"a message delivered twice in {channel}"


@pytest.mark.parametrize("mode", [True, "count"])
def test_ten_random_outages_each_message_once_in_order_or_counted(
        slack: FakeSlack, make: Callable[..., RTMClient], mode: Any) -> None:
    rng = random.Random(315 if mode is True else 316)
    rtm = make(backfill=mode)
    inbox = Inbox(rtm)
    rec = start(rtm)
    channels = member_channels(slack)
    live = [slack.post_message(c, "hello") for c in channels]
    down: List[Dict[str, Any]] = []
    for cycle in range(10):
        expected = len(live) + (len(down) if mode is True else 0)
        wait_until(lambda n=expected: len(inbox.messages) >= n, what="deliveries")
        readies = len(rec.of("ready"))
        posted = outage(slack, rng, channels, rng.randint(1, 5))
        down += posted
        rec.wait_for("ready", readies + 1)
        if mode is True:
            wanted = {m["ts"] for m in down} | {m["ts"] for m in live}
            wait_until(lambda w=wanted: set(inbox.ts_of()) >= w, what=f"backfill {cycle}")
        else:
            total = len(down)
            wait_until(lambda n=total: inbox.missed_total() == n, what=f"missed {cycle}")
            last = inbox.missed[-len({m["channel"] for m in posted}):]
            want: Dict[str, int] = {}
            for m in posted:
                want[m["channel"]] = want.get(m["channel"], 0) + 1
            assert dict(last) == want, (cycle, inbox.missed)
            # the count of the other channels is over too: what follows is live (a message
            # posted while a count runs may be counted, and its live copy dropped)
            idle(slack, rtm)
        live += [slack.post_message(rng.choice(channels), f"live {cycle}.{i}")
                 for i in range(rng.randint(0, 3))]
    wanted = {m["ts"] for m in live} | ({m["ts"] for m in down} if mode is True else set())
    wait_until(lambda: len(inbox.messages) >= len(wanted), what="the last deliveries")
    slack.inject({"type": "message", "channel": channels[0], "ts": "9999999999.000000",
                  "text": "sentinel"})
    wait_until(lambda: "9999999999.000000" in inbox.ts_of(), what="the sentinel")
    delivered = inbox.ts_of()[:-1]
    assert sorted(delivered, key=ts_key) == sorted(wanted, key=ts_key)  # once each
    check_order(inbox)
    backfilled = {ts for _, ts, b in inbox.messages if b}
    if mode is True:
        # a live message posted while the backfill still ran may come backfilled (then its
        # live copy is dropped): what matters is that each comes once
        assert backfilled >= {m["ts"] for m in down}
        assert backfilled - {m["ts"] for m in down} <= {m["ts"] for m in live}
        assert inbox.missed == []
    else:
        assert backfilled == set() and inbox.missed_total() == len(down)
    assert not rec.of("error")
    assert slack.call_count("conversations.history") >= 10


def test_backfill_comes_before_the_new_connections_events(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make(backfill=True)
    inbox = Inbox(rtm)
    rec = start(rtm)
    general = slack.channel_id("general")
    slack.post_message(general, "before")
    wait_until(lambda: len(inbox.messages) == 1)
    slack.fail_next("conversations.history", delay=0.3)  # the backfill's first fetch
    slack.drop()
    slack.wait_for_connections(1)
    rec.wait_for("ready", 2)
    (call,) = slack.wait_for_call("conversations.history")
    # posted during the backfill: answered by that fetch AND sent live behind it
    both = slack.post_message(call.params["channel"], "during the backfill")
    slack.wait_for_call("conversations.history", count=len(member_channels(slack)))
    slack.wait_until(lambda: all(c.status for c in slack.calls
                                 if c.method == "conversations.history"))
    after = slack.post_message(general, "after the backfill")
    wait_until(lambda: after["ts"] in inbox.ts_of())
    assert [ts for _, ts, _ in inbox.messages].count(both["ts"]) == 1
    assert (call.params["channel"], both["ts"], True) in inbox.messages
    assert inbox.order[inbox.order.index("ready", 1) + 1:] == ["backfilled", "live"]
    assert not rec.of("error")


def test_backfill_limit_delivers_the_newest_and_reports_the_rest(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make(backfill=True, backfill_limit=3)
    inbox = Inbox(rtm)
    rec = start(rtm)
    general = slack.channel_id("general")
    slack.post_message(general, "seen")
    wait_until(lambda: len(inbox.messages) == 1)
    posted = outage(slack, random.Random(1), [general], 7)
    rec.wait_for("missed")
    wait_until(lambda: len(inbox.messages) == 4)
    assert inbox.missed == [(general, 4)]
    assert inbox.ts_of()[1:] == [m["ts"] for m in posted[-3:]]


def test_a_rate_limited_history_is_waited_out_and_nothing_is_lost(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make(backfill=True)
    inbox = Inbox(rtm)
    rec = start(rtm)
    channels = member_channels(slack)
    slack.post_message(channels[0], "seen")
    wait_until(lambda: len(inbox.messages) == 1)
    slack.fail_next("conversations.history", status=429, retry_after=0.3, times=2)
    posted = outage(slack, random.Random(2), channels, 6)
    started = time.monotonic()
    wait_until(lambda: set(inbox.ts_of()) >= {m["ts"] for m in posted})
    assert time.monotonic() - started >= 0.55  # both Retry-After waits were honoured
    history = [c for c in slack.calls if c.method == "conversations.history"]
    assert [c.status for c in history[:2]] == [429, 429]
    check_order(inbox)
    assert not rec.of("error") and not rec.of("missed")


def test_disconnect_during_a_backfill_returns_within_its_timeout(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make(backfill=True)
    inbox = Inbox(rtm)
    rec = start(rtm)
    rec.attach(rtm, "disconnected")
    slack.post_message("general", "seen")
    wait_until(lambda: len(inbox.messages) == 1)
    # a slow server, then one answering 429 with a long Retry-After
    for fault in (dict(delay=5.0), dict(status=429, retry_after=5)):
        readies = len(rec.of("ready"))
        before = slack.call_count("conversations.history")
        slack.fail_next("conversations.history", **fault)  # type: ignore[arg-type]
        slack.drop()
        rec.wait_for("ready", readies + 1)
        slack.wait_for_call("conversations.history", count=before + 1)
        started = time.monotonic()
        rtm.disconnect(timeout=2.0)
        assert time.monotonic() - started < 2.0, fault
        assert len(rec.of("disconnected")) == 1 and not rec.of("error")
        rec.events.clear()
        rtm.start().result(30)
        rec.wait_for("ready")
        idle(slack, rtm)  # the restart's own backfill is over


def idle(slack: FakeSlack, rtm: RTMClient) -> None:
    """Wait until the dispatcher got past everything queued so far (a backfill included)."""
    done = threading.Event()
    rtm.once("sentinel", lambda e: done.set())
    slack.wait_for_connections(1)
    slack.inject({"type": "sentinel"})
    assert done.wait(30), "the dispatcher is still busy"


def test_backfill_across_restarts_and_processes(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make(backfill=True)
    inbox = Inbox(rtm)
    start(rtm)
    general, ops = slack.channel_id("general"), slack.channel_id("ops")
    first = slack.post_message(general, "one")
    wait_until(lambda: len(inbox.messages) == 1)
    rtm.disconnect()
    second = slack.post_message(general, "two while stopped")
    rtm.start().result(30)  # the same client again: it backfills what it missed
    wait_until(lambda: second["ts"] in inbox.ts_of())
    assert rtm.last_seen == {general: second["ts"]}
    saved = rtm.last_seen
    rtm.disconnect()
    third = slack.post_message(general, "three while no process ran")
    fourth = slack.post_message(ops, "four, in a channel not seen before")
    other = make(backfill=True, backfill_since=saved)  # a new process, its saved state
    inbox2 = Inbox(other)
    start(other)
    wait_until(lambda: len(inbox2.messages) == 2)
    assert inbox2.messages == [(general, third["ts"], True), (ops, fourth["ts"], True)]
    assert first["ts"] not in inbox2.ts_of()


def test_count_mode_counts_a_message_once_even_if_it_also_arrives_live(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make(backfill="count")
    inbox = Inbox(rtm)
    rec = start(rtm)
    slack.post_message("general", "seen")
    wait_until(lambda: len(inbox.messages) == 1)
    slack.fail_next("conversations.history", delay=0.3)
    slack.drop()
    rec.wait_for("ready", 2)
    (call,) = slack.wait_for_call("conversations.history")
    both = slack.post_message(call.params["channel"], "posted while counting")
    idle(slack, rtm)
    assert inbox.missed == [(call.params["channel"], 1)]
    assert both["ts"] not in inbox.ts_of()  # counted: its live copy was dropped
    later = slack.post_message(call.params["channel"], "later")
    wait_until(lambda: later["ts"] in inbox.ts_of())
    assert inbox.missed == [(call.params["channel"], 1)]


def test_counting_beyond_the_limit_uses_full_pages(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    """backfill_limit=1 and 450 missed: one message delivered, 449 counted in 3 calls
    (the first page sized to the limit, then pages of 200), not 450."""
    rtm = make(backfill=True, backfill_limit=1)
    inbox = Inbox(rtm)
    rec = start(rtm)
    general = slack.channel_id("general")
    slack.post_message(general, "seen")
    wait_until(lambda: len(inbox.messages) == 1)
    before = slack.call_count("conversations.history")
    posted = outage(slack, random.Random(3), [general], 450)
    rec.wait_for("missed")
    wait_until(lambda: len(inbox.messages) == 2)
    assert inbox.missed == [(general, 449)]
    assert inbox.ts_of()[1] == posted[-1]["ts"]
    general_calls = [c for c in slack.calls[before:] if c.method == "conversations.history"
                     and c.params.get("channel") == general]
    assert len(general_calls) == 4, len(general_calls)  # 1 + 200 + 200 + 49
