"""FakeSlack with several connections open for one app: Socket Mode routing policies,
retries on another connection, duplicates, the connection budget during refreshes, and
RTM's every-connection-gets-every-event."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable, Dict, List

import pytest

from slackrtm import SocketModeRequest
from slackrtm.testing import FakeSlack
from tests.conftest import wait_until

Make = Callable[..., Any]


def started(smake: Make, slack: FakeSlack, n: int, **kwargs: Any) -> List[Any]:
    clients = []
    for i in range(n):
        client = smake(**kwargs)
        client.start().result(timeout=10)
        slack.wait_for_socket_connections(i + 1, timeout=10)
        clients.append(client)
    return clients


def per_connection(slack: FakeSlack) -> Dict[int, int]:
    return dict(Counter(cid for cid, _ in slack.delivered))


def test_round_robin_spreads_envelopes_evenly(slack: FakeSlack, smake: Make) -> None:
    slack.socket_routing = "round_robin"
    clients = started(smake, slack, 3)
    for i in range(30):
        slack.events_api({"type": "app_mention", "text": str(i)})
    slack.wait_for_acks(30, timeout=20)
    assert sorted(per_connection(slack).values()) == [10, 10, 10]
    assert all(c.health()["acked"] == 10 for c in clients)


def test_random_routing_reaches_every_connection(slack: FakeSlack, smake: Make) -> None:
    slack.socket_routing = "random"
    started(smake, slack, 3)
    for i in range(300):
        slack.events_api({"type": "app_mention", "text": str(i)})
    slack.wait_for_acks(300, timeout=30)
    counts = per_connection(slack)
    assert len(counts) == 3 and sum(counts.values()) == 300


def test_newest_routing_is_the_default(slack: FakeSlack, smake: Make) -> None:
    assert slack.socket_routing == "newest"
    started(smake, slack, 2)
    newest = slack.socket_connections[-1].id
    for i in range(5):
        slack.events_api({"type": "app_mention", "text": str(i)})
    slack.wait_for_acks(5, timeout=10)
    assert per_connection(slack) == {newest: 5}


def test_a_bad_routing_is_refused(slack: FakeSlack) -> None:
    slack.socket_routing = "nearest"
    with pytest.raises(ValueError, match="round_robin"):
        slack.events_api({"type": "app_mention", "text": "x"})


def test_a_retry_goes_to_another_connection(slack: FakeSlack, smake: Make) -> None:
    slack.ack_timeout = 0.5
    release = threading.Event()
    first, second = started(smake, slack, 2, ack="manual")
    got: List[Any] = []

    def slow(request: SocketModeRequest) -> None:
        got.append(request)
        release.wait(20)
        request.ack()

    second.on("events_api", slow)
    first.on("events_api", lambda r: (got.append(r), r.ack()))
    # to the newest connection, where routing would send the retry too if it could
    conn_first = slack.socket_connections[-1]
    env = slack.events_api({"type": "app_mention", "text": "retry me"}, to=conn_first)
    wait_until(lambda: len(got) == 2, 20, "the retry handled on the other connection")
    release.set()
    retry = [e for cid, e in slack.delivered if e["retry_attempt"] == 1]
    assert retry and retry[0]["payload"]["event_id"] == env["payload"]["event_id"]
    where = {e["envelope_id"]: cid for cid, e in slack.delivered}
    assert where[retry[0]["envelope_id"]] != conn_first.id


def test_duplicate_rate_sends_a_retry_to_another_connection(slack: FakeSlack,
                                                            smake: Make) -> None:
    slack.duplicate_rate = 1.0
    started(smake, slack, 2)
    slack.events_api({"type": "app_mention", "text": "twice"})
    delivered = slack.wait_for_delivered(2, timeout=10)
    (c1, e1), (c2, e2) = delivered[:2]
    assert c1 != c2 and e1["payload"]["event_id"] == e2["payload"]["event_id"]
    assert e1["envelope_id"] != e2["envelope_id"] and e2["retry_attempt"] == 1


def test_connections_of_a_refresh_count_against_the_budget(slack: FakeSlack,
                                                           smake: Make) -> None:
    first, second = started(smake, slack, 2)
    assert second.health()["num_connections"] == 2
    slack.refresh(warning_first=False, to=slack.socket_connections[0])
    wait_until(lambda: first.health()["refreshes"] == 1, 30, "the refresh")
    # the new connection's hello counted the old one, still open while it drained
    assert first.health()["num_connections"] == 3


def test_rtm_every_connection_gets_every_event(slack: FakeSlack, make: Make) -> None:
    got: Dict[int, List[str]] = {0: [], 1: [], 2: []}
    for i in range(3):
        rtm = make()
        rtm.on("message", lambda e, i=i: got[i].append(e["text"]))
        rtm.start().result(timeout=10)
    slack.wait_for_connections(3, timeout=10)
    for i in range(5):
        slack.post_message("general", f"e{i}")
    wait_until(lambda: all(len(v) == 5 for v in got.values()), 20, "every copy gets all")
    assert all(v == [f"e{i}" for i in range(5)] for v in got.values())
