"""The store and backfill on SocketModeClient (with its bot token), against FakeSlack over
real sockets: the store has RTMClient's interface and is kept current from the events of
``events_api`` envelopes; backfill delivers each message posted while the client was away
exactly once, whatever FakeSlack does with the envelopes it could not deliver meanwhile
(held, retried a few times, dropped), and never runs after a gapless refresh."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from slackrtm import RTMClient, SocketModeClient
from slackrtm._store.backfill import ts_key
from slackrtm.testing import FakeSlack
from tests.conftest import FAST, SM_FAST, Recorder, client_threads, wait_until

Client = Any


@pytest.fixture
def make(slack: FakeSlack) -> Iterator[Callable[..., Client]]:
    clients: List[Client] = []

    def build(kind: str, **options: Any) -> Client:
        options.setdefault("slack_api_url", slack.api_url)
        client: Client
        if kind == "rtm":
            client = RTMClient(slack.token, **{**FAST, **options})
        else:
            options.setdefault("bot_token", slack.token)
            client = SocketModeClient(slack.app_token, **{**SM_FAST, **options})
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.disconnect(timeout=5.0)
    assert not client_threads(), client_threads()


class Inbox:
    """Every message event (channel, ts, backfilled) and ``missed`` event, in order."""

    def __init__(self, client: Client) -> None:
        self.messages: List[Tuple[str, str, bool]] = []
        self.missed: List[Tuple[str, int]] = []
        self._lock = threading.Lock()
        client.on("message", self._message)
        client.on("missed", lambda channel, n: self.missed.append((channel, n)))

    def _message(self, event: Dict[str, Any]) -> None:
        with self._lock:
            self.messages.append((event["channel"], event["ts"], bool(event.get("backfilled"))))

    def stamps(self) -> List[str]:
        with self._lock:
            return [ts for _, ts, _ in self.messages]


@pytest.mark.parametrize("kind", ["rtm", "socket_mode"])
def test_the_store_is_the_same_on_both_clients(slack: FakeSlack, make: Any,
                                               kind: str) -> None:
    client = make(kind, store=True)
    seen: Dict[str, Any] = {}
    renamed = threading.Event()

    @client.on("ready")
    def on_ready() -> None:
        seen["self"] = client.store.self["id"]

    @client.on("channel_rename")
    def on_rename(event: Dict[str, Any]) -> None:  # the store has it already
        seen["renamed"] = client.store.channel(event["channel"]["id"])["name"]
        renamed.set()

    client.start().result(timeout=10)
    store = client.store
    wait_until(lambda: "self" in seen, 10, "the ready handler")
    assert seen["self"] == slack.bot_user_id
    assert store.self["id"] == slack.bot_user_id and store.self["name"] == "fakebot"
    assert store.team["id"] == slack.team_id and store.team["domain"]
    alice = slack.user_id("alice")
    assert store.user(alice)["name"] == "alice"
    assert store.name_of(alice) == "@alice"
    random = slack.channel_id("random")
    assert store.channel(random)["name"] == "random"
    slack.rename_channel("random", "random-2")
    assert renamed.wait(30)
    assert seen["renamed"] == "random-2" and store.channel(random)["name"] == "random-2"
    assert slack.call_count("users.info") == 1  # cached: asked once


def test_socket_mode_store_and_backfill_need_the_bot_token(slack: FakeSlack) -> None:
    for options in ({"store": True}, {"backfill": True}, {"backfill": "count"}):
        with pytest.raises(ValueError, match="bot token"):
            SocketModeClient(slack.app_token, slack_api_url=slack.api_url, **options)
    client = SocketModeClient(slack.app_token, slack_api_url=slack.api_url)
    with pytest.raises(RuntimeError, match="store"):
        assert client.store is None  # raises
    assert client.last_seen == {}


def go_away(slack: FakeSlack, rec: Recorder, delay: float) -> None:
    """Drop the client's connection and keep it away ``delay`` seconds (a slow
    apps.connections.open), until it asks again."""
    before = slack.call_count("apps.connections.open")
    slack.fail_next("apps.connections.open", delay=delay)
    slack.drop()
    slack.wait_for_call("apps.connections.open", count=before + 1, timeout=30)


@pytest.mark.parametrize("policy", ["hold", "retry", "drop"])
def test_backfill_delivers_each_missed_message_once_whatever_becomes_of_the_envelopes(
        slack: FakeSlack, make: Any, policy: str) -> None:
    slack.offline_envelopes = policy
    # "retry": the first retry comes while the client is away, the second after it is
    # back and has seen newer live messages of the same channels
    slack.ack_timeout = 0.5
    client = make("socket_mode", backfill=True)
    inbox = Inbox(client)
    rec = Recorder().attach(client, "ready", "error")
    client.start().result(timeout=10)
    general, ops = slack.channel_id("general"), slack.channel_id("ops")
    first = slack.post_message(general, "before")
    wait_until(lambda: first["ts"] in inbox.stamps(), 30, "the live message")
    assert client.last_seen == {general: first["ts"]}
    go_away(slack, rec, 0.7)
    away = [slack.post_message(c, f"while away {i}") for i, c in
            enumerate([general, ops, general, ops, general])]
    rec.wait_for("ready", 2, timeout=30)
    after = slack.post_message(general, "after")
    wait_until(lambda: after["ts"] in inbox.stamps(), 30, "the live message after")
    later = slack.post_message(ops, "after in ops")
    wait_until(lambda: later["ts"] in inbox.stamps(), 30, "the live message after")
    wanted = [first["ts"], *(m["ts"] for m in away), after["ts"], later["ts"]]
    wait_until(lambda: set(inbox.stamps()) >= set(wanted), 30, "every message")
    # Slack's retries come and go: wait until each envelope is acknowledged or dropped
    wait_until(lambda: settled(slack, away), 30, "the last retries")
    # and Slack tries each once more, late, after newer live messages: a new envelope id,
    # the same event (dropped by its event_id if delivered before, else by channel and ts)
    for m in away:
        slack.redeliver(envelope_of(slack, m["ts"]), same_id=False)
    sentinel = slack.post_message(general, "sentinel")
    wait_until(lambda: sentinel["ts"] in inbox.stamps(), 30, "the sentinel")
    stamps = inbox.stamps()[:-1]
    assert sorted(stamps, key=ts_key) == sorted(wanted, key=ts_key)  # each exactly once
    for channel in (general, ops):
        mine = [ts for c, ts, _ in inbox.messages if c == channel]
        assert mine == sorted(mine, key=ts_key)
    backfilled = {ts for _, ts, b in inbox.messages if b}
    # "after" may come backfilled when posted before the backfill fetched its channel
    assert backfilled - {after["ts"], later["ts"]} <= {m["ts"] for m in away}
    if policy == "drop":
        assert backfilled >= {m["ts"] for m in away}
        assert len(slack.dropped_envelopes) >= len(away)
    if policy == "hold":
        assert slack.dropped_envelopes == []
    assert not rec.of("error")
    assert client.last_seen == {general: sentinel["ts"], ops: later["ts"]}


def settled(slack: FakeSlack, away: List[Dict[str, Any]]) -> bool:
    """Whether FakeSlack is done with the envelopes of ``away``: for each message, one of
    its envelopes was acknowledged, or it was dropped (no retry can come any more)."""
    acked = {ack.envelope_id for ack in slack.acks}
    done = {_event_ts(e) for e in slack.dropped_envelopes}
    done |= {_event_ts(e) for _, e in slack.delivered if e.get("envelope_id") in acked}
    return {m["ts"] for m in away} <= done


def envelope_of(slack: FakeSlack, ts: str) -> str:
    """The id of an envelope FakeSlack made for the message ``ts`` (dropped or written)."""
    for envelope in [*slack.dropped_envelopes, *(e for _, e in slack.delivered)]:
        if _event_ts(envelope) == ts:
            return str(envelope["envelope_id"])
    raise AssertionError(f"no envelope for {ts}")


def _event_ts(envelope: Dict[str, Any]) -> Any:
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    event = payload.get("event") if isinstance(payload, dict) else None
    return event.get("ts") if isinstance(event, dict) else None


def test_count_mode_counts_each_missed_message_once(slack: FakeSlack, make: Any) -> None:
    client = make("socket_mode", backfill="count")  # held envelopes come live after it
    inbox = Inbox(client)
    rec = Recorder().attach(client, "ready", "error", "missed")
    client.start().result(timeout=10)
    general = slack.channel_id("general")
    first = slack.post_message(general, "before")
    wait_until(lambda: first["ts"] in inbox.stamps(), 30, "the live message")
    go_away(slack, rec, 0.3)
    away = [slack.post_message(general, f"while away {i}") for i in range(4)]
    rec.wait_for("missed", timeout=30)
    sentinel = slack.post_message(general, "sentinel")
    wait_until(lambda: sentinel["ts"] in inbox.stamps(), 30, "the sentinel")
    assert inbox.missed == [(general, 4)]
    assert inbox.stamps() == [first["ts"], sentinel["ts"]]  # counted, never delivered too
    assert away and not rec.of("error")


def test_a_refresh_loses_nothing_and_backfills_nothing(slack: FakeSlack, make: Any) -> None:
    client = make("socket_mode", backfill=True)
    inbox = Inbox(client)
    client.start().result(timeout=10)
    general = slack.channel_id("general")
    first = slack.post_message(general, "before")
    wait_until(lambda: first["ts"] in inbox.stamps(), 30, "the live message")
    slack.refresh()
    slack.wait_for_socket_connect_count(2, timeout=30)
    during = [slack.post_message(general, f"during {i}") for i in range(3)]
    wait_until(lambda: set(inbox.stamps()) >= {m["ts"] for m in during}, 30, "live ones")
    assert inbox.stamps() == [first["ts"], *(m["ts"] for m in during)]
    assert slack.call_count("conversations.history") == 0
    assert slack.call_count("users.conversations") == 0


def test_backfill_since_backfills_the_first_connection(slack: FakeSlack, make: Any) -> None:
    general = slack.channel_id("general")
    old = slack.post_message(general, "seen by an earlier run")
    new = [slack.post_message(general, f"missed {i}") for i in range(3)]
    client = make("socket_mode", backfill=True, backfill_since={general: old["ts"]})
    inbox = Inbox(client)
    client.start().result(timeout=10)
    wait_until(lambda: len(inbox.messages) >= 3, 30, "the backfill")
    assert inbox.messages == [(general, m["ts"], True) for m in new]
    assert client.last_seen[general] == new[-1]["ts"]
