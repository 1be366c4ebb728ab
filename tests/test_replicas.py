"""Several copies of a bot in one process, against FakeSlack and a real redis-server: the
shared duplicate filter on both clients, failing open or closed, leases of envelopes
acknowledged after their handlers, health(), and the num_connections warning."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List

import pytest
import redis as redis_py

from slackrtm import MemoryDedupe, RTMClient, SocketModeClient, SocketModeRequest
from slackrtm.redis import RedisDedupe
from slackrtm.testing import FakeSlack
from tests.conftest import wait_until
from tests.redis_server import RedisServer

Make = Callable[..., Any]


class Handled:
    """Thread-safe record of what each copy's handlers got."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by: Dict[str, List[Any]] = {}

    def handler(self, name: str) -> Callable[[Any], None]:
        def record(item: Any) -> None:
            with self.lock:
                self.by.setdefault(name, []).append(item)
        return record

    def all(self) -> List[Any]:
        with self.lock:
            return [item for items in self.by.values() for item in items]


def sm_text(request: SocketModeRequest) -> Any:
    return (request.event or {}).get("text")


def test_a_retry_on_another_copy_is_acked_not_dispatched_and_counted(
        slack: FakeSlack, smake: Make, redis_url: str) -> None:
    a = smake(dedupe=RedisDedupe(redis_url))
    b = smake(dedupe=RedisDedupe(redis_url))
    handled = Handled()
    a.on("events_api", handled.handler("a"))
    b.on("events_api", handled.handler("b"))
    a.start().result(timeout=10)
    b.start().result(timeout=10)
    conn_a, conn_b = slack.wait_for_socket_connections(2, timeout=10)
    env = slack.events_api({"type": "app_mention", "text": "once"}, to=conn_a)
    wait_until(lambda: len(handled.all()) == 1, 10, "the first copy handles it")
    again = slack.redeliver(env["envelope_id"], same_id=False, to=conn_b)
    wait_until(lambda: slack.acked(again["envelope_id"]), 10, "the retry acknowledged")
    wait_until(lambda: b.health()["duplicates_shared"] == 1, 10, "the duplicate counted")
    assert [sm_text(r) for r in handled.all()] == ["once"]
    assert list(handled.by) == ["a"]
    assert a.health()["duplicates_shared"] == 0
    assert b.health()["duplicates_local"] == 0


def test_without_a_shared_filter_both_copies_handle_the_retry(
        slack: FakeSlack, smake: Make) -> None:
    """The control: what the test above proves is the filter's doing."""
    a, b = smake(), smake()
    handled = Handled()
    a.on("events_api", handled.handler("a"))
    b.on("events_api", handled.handler("b"))
    a.start().result(timeout=10)
    b.start().result(timeout=10)
    conn_a, conn_b = slack.wait_for_socket_connections(2, timeout=10)
    env = slack.events_api({"type": "app_mention", "text": "twice"}, to=conn_a)
    slack.redeliver(env["envelope_id"], same_id=False, to=conn_b)
    wait_until(lambda: len(handled.all()) == 2, 10, "both copies handle it")


def test_rtm_copies_each_receive_everything_and_handle_each_event_once(
        slack: FakeSlack, make: Make, redis_url: str) -> None:
    copies = [make(dedupe=RedisDedupe(redis_url), store=True) for _ in range(3)]
    handled = Handled()
    raw = Handled()
    for i, rtm in enumerate(copies):
        rtm.on("message", handled.handler(str(i)))
        rtm.on("raw_message", raw.handler(str(i)))
    for rtm in copies:
        rtm.start().result(timeout=10)
    slack.wait_for_connections(3, timeout=10)
    n = 60
    for i in range(n):
        slack.post_message("general", f"m{i}")
    wait_until(lambda: len(handled.all()) >= n and sum(
        c.health()["duplicates_shared"] for c in copies) >= 2 * n, 30, "every event handled")
    texts = sorted(e["text"] for e in handled.all())
    assert texts == sorted(f"m{i}" for i in range(n))
    # every copy received every event (raw_message sees them all)
    for i in range(3):
        got = [t for t in raw.by.get(str(i), []) if '"m' in t]
        assert len(got) >= n


def test_claims_fail_open_with_one_warning_per_outage_then_resume(
        slack: FakeSlack, smake: Make, redis_server: RedisServer, redis_url: str,
        all_logs: List[logging.LogRecord]) -> None:
    client = smake(dedupe=RedisDedupe(redis_url, timeout=0.5))
    handled = Handled()
    client.on("events_api", handled.handler("a"))
    client.start().result(timeout=10)
    slack.events_api({"type": "app_mention", "text": "before"})
    wait_until(lambda: len(handled.all()) == 1, 10, "handled with Redis up")
    redis_server.stop()
    for i in range(3):
        slack.events_api({"type": "app_mention", "text": f"down{i}"})
    wait_until(lambda: len(handled.all()) == 4, 30, "dispatched while Redis is down")
    health = client.health()
    assert health["filter_outage"] is True and health["unfiltered"] >= 3
    warnings = [r for r in all_logs if r.levelno == logging.WARNING
                and "shared duplicate filter failed" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    redis_server.start()
    # the filter is tried again every couple of seconds (meanwhile events pass at once)
    sent = 0
    deadline = time.monotonic() + 60
    while not any("filtering resumed" in r.getMessage() for r in all_logs):
        assert time.monotonic() < deadline, "the filter was never tried again"
        slack.events_api({"type": "app_mention", "text": f"after{sent}"})
        sent += 1
        wait_until(lambda n=sent: len(handled.all()) == 4 + n, 30, "handled with Redis back")
        time.sleep(0.2)  # a poll of the log, between events
    assert client.health()["filter_outage"] is False
    warnings = [r for r in all_logs if r.levelno == logging.WARNING
                and "shared duplicate filter failed" in r.getMessage()]
    assert len(warnings) == 1


def test_claims_can_fail_closed(slack: FakeSlack, smake: Make, redis_server: RedisServer,
                                redis_url: str) -> None:
    slack.redelivery = False
    client = smake(dedupe=RedisDedupe(redis_url, timeout=0.5, fail_open=False),
                   ack="manual")
    handled = Handled()
    client.on("events_api", handled.handler("a"))
    client.start().result(timeout=10)
    redis_server.stop()
    env = slack.events_api({"type": "app_mention", "text": "down"})
    wait_until(lambda: client.health()["unfiltered"] == 1, 30, "the claim failed")
    assert handled.all() == []
    assert not slack.acked(env["envelope_id"])  # left for Slack's retry


def test_a_leased_envelope_is_left_to_slack_until_its_holder_acks(
        slack: FakeSlack, smake: Make, redis_url: str) -> None:
    """ack="manual": a retry on another copy while the first still works on the envelope
    is neither dispatched nor acknowledged; once the holder acked, a retry is acked."""
    slack.redelivery = False
    release = threading.Event()
    a = smake(dedupe=RedisDedupe(redis_url, lease=30), ack="manual")
    b = smake(dedupe=RedisDedupe(redis_url, lease=30), ack="manual")
    handled = Handled()

    def slow(request: SocketModeRequest) -> None:
        handled.handler("a")(request)
        release.wait(30)
        request.ack()

    a.on("events_api", slow)
    b.on("events_api", handled.handler("b"))
    a.start().result(timeout=10)
    b.start().result(timeout=10)
    conn_a, conn_b = slack.wait_for_socket_connections(2, timeout=10)
    env = slack.events_api({"type": "app_mention", "text": "slow"}, to=conn_a)
    wait_until(lambda: len(handled.all()) == 1, 10, "the first copy works on it")
    retry = slack.redeliver(env["envelope_id"], same_id=False, to=conn_b)
    wait_until(lambda: b.health()["duplicates_shared"] == 1, 10, "the retry filtered")
    assert not slack.acked(retry["envelope_id"])
    release.set()
    wait_until(lambda: slack.acked(env["envelope_id"]), 10, "the holder acks")
    last = slack.redeliver(env["envelope_id"], same_id=False, to=conn_b)
    wait_until(lambda: slack.acked(last["envelope_id"]), 10, "a retry after it is acked")
    assert list(handled.by) == ["a"]


def test_a_dead_copys_lease_runs_out_and_the_next_retry_is_handled(
        slack: FakeSlack, smake: Make, redis_url: str) -> None:
    """A claim taken by a copy that never finishes lasts only the lease."""
    slack.redelivery = False
    dedupe = RedisDedupe(redis_url, lease=0.5)
    dedupe.claim("sm:ev:Ev0FAKE00000001", 0.5)  # a copy that died right after its claim
    client = smake(dedupe=RedisDedupe(redis_url, lease=0.5), ack="manual")
    handled = Handled()
    client.on("events_api", lambda r: (handled.handler("a")(r), r.ack()))
    client.start().result(timeout=10)
    env = slack.events_api({"type": "app_mention", "text": "orphan"})
    assert env["payload"]["event_id"] == "Ev0FAKE00000001"
    wait_until(lambda: client.health()["duplicates_shared"] == 1, 10, "held by the dead copy")
    assert handled.all() == [] and not slack.acked(env["envelope_id"])
    wait_until(lambda: not redis_py.Redis.from_url(redis_url).exists(
        "slackrtm:sm:ev:Ev0FAKE00000001"), 10, "the lease runs out")
    retry = slack.redeliver(env["envelope_id"], same_id=False)
    wait_until(lambda: slack.acked(retry["envelope_id"]), 10, "the retry handled and acked")
    assert [sm_text(r) for r in handled.all()] == ["orphan"]


def test_settle_in_a_transaction_with_the_handlers_own_writes(
        slack: FakeSlack, smake: Make, redis_url: str) -> None:
    slack.redelivery = False
    r = redis_py.Redis.from_url(redis_url)
    dedupe = RedisDedupe(r, lease=30)
    client = smake(dedupe=dedupe, ack="manual")

    def count(request: SocketModeRequest) -> None:
        with r.pipeline(transaction=True) as pipe:
            pipe.hincrby("handled", request.dedupe_key, 1)
            dedupe.settle(request.dedupe_key, pipeline=pipe)
            pipe.execute()
        request.ack()

    client.on("events_api", count)
    client.start().result(timeout=10)
    env = slack.events_api({"type": "app_mention", "text": "x"})
    wait_until(lambda: slack.acked(env["envelope_id"]), 10, "acked")
    key = "sm:ev:" + env["payload"]["event_id"]
    assert r.hgetall("handled") == {key.encode(): b"1"}
    assert dedupe.settled(key) and 3000 < r.pttl("slackrtm:" + key) <= 3_600_000


def test_health_reports_the_clients_life(slack: FakeSlack, smake: Make,
                                         redis_url: str) -> None:
    client = smake(dedupe=RedisDedupe(redis_url))
    assert client.health()["state"] == "disconnected"
    client.start().result(timeout=10)
    conn = slack.wait_for_socket_connections(1, timeout=10)[0]
    env = slack.events_api({"type": "app_mention", "text": "h"})
    slack.redeliver(env["envelope_id"], same_id=True, to=conn)
    wait_until(lambda: client.health()["acked"] == 2, 10, "both acked")
    wait_until(lambda: client.health()["duplicates_local"] == 1, 10, "the local drop")
    slack.refresh(warning_first=False)
    wait_until(lambda: client.health()["refreshes"] == 1, 30, "a refresh")
    # the new connection's hello is counted in the backlog until the dispatcher has it
    wait_until(lambda: client.health()["backlog"] == 0, 30, "the backlog emptied")
    health = client.health()
    assert set(health) == {
        "state", "ready", "seconds_since_last_frame", "backlog", "reconnects", "refreshes",
        "num_connections", "acked", "duplicates_local", "duplicates_shared",
        "filter_outage", "unfiltered", "sends_delayed"}
    assert health["num_connections"] in (1, 2)
    assert isinstance(health["seconds_since_last_frame"], float)
    assert health["backlog"] == 0 and health["sends_delayed"] == 0


def test_health_counts_reconnects_and_delayed_sends(slack: FakeSlack, make: Make) -> None:
    from slackrtm import SendRate
    rtm = make(send_rate=SendRate(1.0, 1))
    rtm.start().result(timeout=10)
    futures = [rtm.send_message(f"p{i}", slack.channel_id("general")) for i in range(3)]
    wait_until(lambda: rtm.health()["sends_delayed"] >= 2, 10, "sends held by pacing")
    for future in futures:
        future.result(timeout=30)
    slack.drop()
    wait_until(lambda: rtm.health()["reconnects"] >= 1 and rtm.ready, 30, "a reconnect")
    assert rtm.health()["num_connections"] is None  # RTM's hello says nothing of it


def test_a_warning_when_hello_says_eight_connections(
        slack: FakeSlack, smake: Make, all_logs: List[logging.LogRecord]) -> None:
    clients = [smake() for _ in range(8)]
    for i, client in enumerate(clients):
        client.start().result(timeout=10)
        slack.wait_for_socket_connections(i + 1, timeout=10)
        if i < 7:
            assert not any("WebSocket connections" in r.getMessage() for r in all_logs)
    wait_until(lambda: any("holds 8 WebSocket connections" in r.getMessage()
                           and r.levelno == logging.WARNING for r in all_logs),
               10, "the warning")


def test_a_memory_dedupe_given_to_socket_mode_replaces_the_default(
        slack: FakeSlack, smake: Make) -> None:
    memory = MemoryDedupe(size=5)
    client = smake(dedupe=memory)
    client.start().result(timeout=10)
    slack.events_api({"type": "app_mention", "text": "m"})
    wait_until(lambda: len(memory) == 1, 10, "remembered in the given memory")


def test_bad_dedupe_is_refused() -> None:
    with pytest.raises(TypeError, match="claim"):
        SocketModeClient("xapp-1", dedupe=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="claim"):
        RTMClient("xoxb-1", dedupe="redis://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="redis://"):
        RedisDedupe("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="lease"):
        RedisDedupe("redis://127.0.0.1:1", lease=0)


def test_the_redis_password_stays_out_of_reprs_and_logs(
        slack: FakeSlack, smake: Make, all_logs: List[logging.LogRecord]) -> None:
    secret = "s3cr3t-redis-pass"
    dedupe = RedisDedupe(f"redis://:{secret}@127.0.0.1:1/0", timeout=0.2)
    assert secret not in repr(dedupe)
    client = smake(dedupe=dedupe)
    handled = Handled()
    client.on("events_api", handled.handler("a"))
    client.start().result(timeout=10)
    slack.events_api({"type": "app_mention", "text": "no redis"})
    wait_until(lambda: len(handled.all()) == 1, 30, "failed open")
    assert all(secret not in r.getMessage() for r in all_logs)


def test_a_backfill_does_not_handle_again_what_another_copy_handled_live(
        slack: FakeSlack, make: Make, redis_url: str) -> None:
    """The backfilled copy of a message has the key of its live copy: one mechanism."""
    handled = Handled()
    a = make(dedupe=RedisDedupe(redis_url), backfill=True)
    b = make(dedupe=RedisDedupe(redis_url))
    a.on("message", handled.handler("a"))
    b.on("message", handled.handler("b"))
    seen_by_a = Handled()
    a.on("raw_message", seen_by_a.handler("a"))
    a.start().result(timeout=10)
    b.start().result(timeout=10)
    conn_a, _ = slack.wait_for_connections(2, timeout=10)
    slack.post_message("general", "before")
    wait_until(lambda: len(handled.all()) == 1, 10, "the first message")
    slack.fail_next("rtm.connect", delay=3.0)  # a stays away while the next ones come
    slack.drop(to=conn_a)
    for i in range(5):
        slack.post_message("general", f"missed by a {i}")
    wait_until(lambda: len(handled.all()) == 6, 20, "b handles them live")
    wait_until(lambda: a.ready and a.health()["reconnects"] == 1, 30, "a back")
    slack.post_message("general", "after")
    # a's dispatcher runs its backfill before the events read after it: once a saw
    # "after", the backfill is over
    wait_until(lambda: any('"after"' in t for t in seen_by_a.all()), 20, "a saw 'after'")
    wait_until(lambda: len(handled.all()) >= 7, 10, "'after' handled")
    assert any(c.method == "conversations.history" for c in slack.calls)
    texts = sorted(e["text"] for e in handled.all())
    assert texts == sorted(["before", "after"] + [f"missed by a {i}" for i in range(5)])
    # a was away: b handled the missed ones live, and a's backfill did not again
    assert {f"missed by a {i}" for i in range(5)} <= {e["text"] for e in handled.by["b"]}
