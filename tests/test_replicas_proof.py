"""The proof that several copies act as one: three replica processes on FakeSlack and one
real redis-server. Socket Mode: a burst of events, about 5% redelivered to another
connection, one copy SIGKILLed mid-burst and restarted: every event handled exactly once,
none lost. RTM: every copy receives everything, one handles each. Pacing: three copies
sending to one channel together keep Slack's pace.

The event counts are scaled for a loaded 2-core machine; benchmarks/replicas_proof.py
runs the same with 10,000 events.
"""

from __future__ import annotations

import time
from typing import List

from slackrtm.testing import FakeSlack
from tests.conftest import wait_until
from tests.replica_procs import Replica, counts

EVENTS = 1_500


def _start(replicas: List[Replica]) -> None:
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.wait_for("ready", timeout=90)


def _envelope_events(slack: FakeSlack) -> dict:
    return {e["envelope_id"]: e["payload"]["event_id"] for _, e in slack.delivered}


def test_socket_mode_replicas_handle_each_event_once_through_a_kill(redis_url: str) -> None:
    with FakeSlack() as slack:
        slack.socket_routing = "round_robin"
        slack.duplicate_rate = 0.05
        slack.ack_timeout = 5.0
        slack.max_retries = 100  # Slack gives up after 3; the proof is about the client
        replicas = [Replica("sm", f"r{i}", slack.api_url, slack.app_token, redis_url,
                            "--lease", "4") for i in range(3)]
        try:
            _start(replicas)
            slack.wait_for_socket_connections(3, timeout=30)
            for i in range(EVENTS):
                slack.events_api({"type": "app_mention", "text": f"proof {i}"})
                if i == EVENTS // 2:
                    replicas[1].kill()  # mid-burst, holding unacknowledged envelopes
            restarted = Replica("sm", "r1b", slack.api_url, slack.app_token, redis_url,
                                "--lease", "4")
            replicas.append(restarted)
            _start([restarted])

            def all_acked() -> bool:
                events = _envelope_events(slack)
                acked = {events.get(a.envelope_id) for a in slack.acks}
                return len(acked - {None}) == EVENTS

            wait_until(all_acked, 300, "every event acknowledged by some copy")
            wait_until(lambda: sum(counts(redis_url)["by"].values()) >= EVENTS, 60,
                       "every event counted")
        finally:
            for replica in replicas:
                replica.stop()
        got = counts(redis_url)
        assert len(got["handled"]) == EVENTS, "events lost"
        twice = {k: v for k, v in got["handled"].items() if v != 1}
        assert twice == {}, f"handled more than once: {twice}"
        assert sum(got["by"].values()) == EVENTS
        assert len(got["by"]) >= 3  # the load was shared (the restarted copy included)
        retries = sum(1 for _, e in slack.delivered if e["retry_attempt"] > 0)
        assert retries >= EVENTS * 0.03  # the duplicates and the dead copy's envelopes


def test_rtm_replicas_each_receive_everything_and_handle_each_once(redis_url: str) -> None:
    n = 1_000
    with FakeSlack() as slack:
        slack.message_rate = None
        replicas = [Replica("rtm", f"r{i}", slack.api_url, slack.token, redis_url)
                    for i in range(3)]
        try:
            _start(replicas)
            slack.wait_for_connections(3, timeout=30)
            for i in range(n):
                slack.post_message("general", f"proof {i}")
            wait_until(lambda: sum(counts(redis_url)["by"].values()) >= n
                       and all(v >= n for v in counts(redis_url)["received"].values())
                       and len(counts(redis_url)["received"]) == 3, 300,
                       "every event received by each copy and handled")
        finally:
            for replica in replicas:
                replica.stop()
        got = counts(redis_url)
        assert len(got["handled"]) == n
        assert set(got["handled"].values()) == {1}
        assert got["received"] == {"r0": n, "r1": n, "r2": n}


def _pace(redis_url: str, share: bool, sends: int) -> tuple:
    with FakeSlack() as slack:
        slack.message_rate = (1.0, 4)  # Slack's ~1/s per channel; the client's burst is 3
        slack.message_rate_scope = "channel"  # all copies' messages to it count together
        general = slack.channel_id("general")
        extra = ["--channel", general, "--sends", str(sends)] + ([] if share else
                                                                 ["--no-share"])
        replicas = [Replica("send", f"s{i}", slack.api_url, slack.token, redis_url, *extra)
                    for i in range(3)]
        try:
            _start(replicas)
            began = time.monotonic()
            for replica in replicas:
                replica.wait_for("sent", timeout=300)
            elapsed = time.monotonic() - began
        finally:
            for replica in replicas:
                replica.stop()
        stored = [m for m in slack.messages("general") if " says " in m.get("text", "")]
        return slack.rate_limited, stored, elapsed


def test_replicas_share_a_channels_pace(redis_url: str) -> None:
    sends = 8
    refused, stored, elapsed = _pace(redis_url, share=True, sends=sends)
    assert refused == []
    assert len(stored) == 3 * sends
    assert elapsed >= (3 * sends - 3) * 0.9  # one a second after the burst of 3


def test_without_sharing_the_copies_exceed_it(redis_url: str) -> None:
    """The control: each copy pacing alone sends three times too fast (each refused send
    is resent once the client's slow-down period passes, so all are stored in the end)."""
    refused, _, _ = _pace(redis_url, share=False, sends=6)
    assert refused
