"""SocketModeClient against FakeSlack: same handlers as RTM, acks, redeliveries, refreshes
with no gap, fatal and backing-off disconnect reasons, keep-alive, secrets, threads."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List

import pytest

from slackrtm import (
    Backoff,
    LogLevel,
    PlatformError,
    ReconnectRequested,
    RTMClient,
    SocketModeClient,
    SocketModeRequest,
    WebsocketError,
)
from slackrtm.testing import FakeSlack
from tests import shared_handlers
from tests.conftest import FAST, SM_FAST, Recorder, client_threads, wait_until

Make = Callable[..., SocketModeClient]



def texts(recorder: Recorder) -> List[str]:
    return [args[0]["text"] for args in recorder.of("message")]


def test_start_resolves_at_hello_with_connection_info(slack: FakeSlack, smake: Make) -> None:
    client = smake()
    rec = Recorder().attach(client, "connecting", "authenticated", "connected", "ready")
    data = client.start().result(timeout=30)
    assert data["ok"] is True
    assert data["connection_info"] == {"app_id": "A0FAKE"}
    assert data["num_connections"] == 1
    assert client.state == "ready" and client.ready and client.app_id == "A0FAKE"
    rec.wait_for("ready")
    assert rec.names() == ["connecting", "authenticated", "connected", "ready"]
    assert slack.call_count("apps.connections.open") == 1
    assert "xapp" not in repr(client) and slack.app_token not in repr(client)


def test_the_same_handler_module_runs_on_both_clients(slack: FakeSlack, smake: Make) -> None:
    rtm = RTMClient(slack.token, slack_api_url=slack.api_url, **FAST)
    sm = smake()
    try:
        for client in (rtm, sm):
            shared_handlers.register(client)
        rtm.start().result(timeout=30)
        sm.start().result(timeout=30)
        msg = slack.post_message("general", "hello both")
        slack.add_reaction("general", msg["ts"], "tada")
        slack.rename_channel("random", "random-2")
        slack.join_channel("bob", "general")
        got = shared_handlers.take(2 * 5)  # rename posts a channel_name message too
        by_kind: Dict[str, List[Any]] = {}
        for kind, value in got:
            by_kind.setdefault(kind, []).append(value)
        general = slack.channel_id("general")
        assert by_kind["message"].count((general, "hello both")) == 2
        assert len(by_kind["reaction_added"]) == 2 and \
            by_kind["reaction_added"][0] == by_kind["reaction_added"][1] == ("tada", msg["ts"])
        assert by_kind["message::channel_name"] == ["random-2", "random-2"]
        assert len(by_kind["member_joined_channel"]) == 2
    finally:
        rtm.disconnect()


def test_events_reach_type_subtype_slack_event_and_raw_message(slack: FakeSlack,
                                                               smake: Make) -> None:
    client = smake()
    rec = Recorder().attach(client, "message", "message::bot_message", "slack_event",
                            "raw_message", "events_api")
    client.start().result(timeout=30)
    slack.post_message("general", "from a bot", subtype="bot_message")
    rec.wait_for("message::bot_message")
    rec.wait_for("events_api")
    (event,) = rec.of("message")[0]
    assert event["text"] == "from a bot" and "envelope_id" not in event
    assert ("message", event) in [a for a in rec.of("slack_event")]
    (request,) = rec.of("events_api")[0]
    assert isinstance(request, SocketModeRequest) and request.event == event
    assert request.acked
    assert any('"envelope_id"' in args[0] for args in rec.of("raw_message"))


def test_envelopes_are_acked_within_3_s_while_a_handler_blocks_for_10(
        slack: FakeSlack, smake: Make) -> None:
    client = smake()
    release = threading.Event()
    started = threading.Event()
    done: List[str] = []

    @client.on("message")
    def slow(event: Dict[str, Any]) -> None:
        started.set()
        release.wait(10.0)
        done.append(event["text"])

    client.start().result(timeout=30)
    try:
        slack.post_message("general", "first")
        assert started.wait(30)
        for i in range(5):
            slack.post_message("general", f"behind {i}")
        acks = slack.wait_for_acks(6, timeout=30)
        assert all(not a.late for a in acks)
        delivered = {e["envelope_id"]: t for _, e in slack.delivered for t in [0]}
        assert {a.envelope_id for a in acks} == set(delivered)
        assert done == []  # the handler is still blocked: acks did not wait for it
    finally:
        release.set()
    wait_until(lambda: len(done) == 6, what="every handler to run")
    assert len(slack.delivered) == 6  # nothing was redelivered


def test_redeliveries_are_acked_and_not_dispatched_again(slack: FakeSlack,
                                                         smake: Make) -> None:
    client = smake()
    rec = Recorder().attach(client, "message")
    client.start().result(timeout=30)
    slack.post_message("general", "once")
    rec.wait_for("message")
    first = slack.delivered[0][1]
    slack.redeliver(first["envelope_id"], same_id=True)
    slack.redeliver(first["envelope_id"], same_id=False)
    slack.post_message("general", "twice")
    rec.wait_for("message", 2)
    slack.wait_for_acks(4)
    assert texts(rec) == ["once", "twice"]
    assert {a.envelope_id for a in slack.acks} >= {e["envelope_id"] for _, e in slack.delivered}


def test_unacked_envelope_redelivered_by_slack_is_dispatched_once(slack: FakeSlack,
                                                                  smake: Make) -> None:
    """A manual-ack handler that takes longer than Slack's ack timeout: Slack redelivers,
    the client acknowledges the retry and does not dispatch it."""
    slack.ack_timeout = 0.3
    client = smake(ack="manual")
    calls: List[int] = []
    release = threading.Event()

    @client.on("events_api")
    def slow(request: SocketModeRequest) -> None:
        calls.append(request.retry_attempt)
        release.wait(5.0)
        request.ack()

    client.start().result(timeout=30)
    slack.post_message("general", "slow one")
    slack.wait_until(lambda: any(e["retry_attempt"] >= 1 for _, e in slack.delivered),
                     what="a redelivery")
    acks = slack.wait_for_acks(1)
    release.set()
    wait_until(lambda: len(slack.acks) >= 2, what="the handler's own ack")
    assert calls == [0]
    assert acks[0].envelope_id != slack.delivered[0][1]["envelope_id"]  # the retry's


def test_manual_ack_with_payload_and_the_forgotten_ack(slack: FakeSlack, smake: Make,
                                                       all_logs: List[logging.LogRecord]
                                                       ) -> None:
    client = smake(ack="manual")
    futures: List[Any] = []

    @client.on("slash_commands")
    def on_command(request: SocketModeRequest) -> None:
        if request.payload["command"] == "/answer":
            futures.append(request.ack({"text": "done"}))

    client.start().result(timeout=30)
    answered = slack.slash_command("/answer", "now")
    forgotten = slack.slash_command("/forget")
    acks = {a.envelope_id: a for a in slack.wait_for_acks(2)}
    assert acks[answered["envelope_id"]].payload == {"text": "done"}
    assert acks[forgotten["envelope_id"]].payload is None
    assert futures[0].result(timeout=30) is None
    assert any("no handler acknowledged" in r.getMessage() for r in all_logs)


def test_auto_mode_leaves_response_payloads_to_the_handler(slack: FakeSlack,
                                                           smake: Make) -> None:
    client = smake()

    @client.on("slash_commands")
    def on_command(request: SocketModeRequest) -> None:
        request.ack({"text": f"ran {request.payload['command']}"})
        request.ack({"text": "again"})  # a second ack is the first one's future

    client.start().result(timeout=30)
    slack.slash_command("/deploy")
    slack.interactive({"type": "block_actions"})  # no handler: acked on read
    acks = slack.wait_for_acks(2)
    assert sorted(str(a.payload) for a in acks) == sorted(
        [str({"text": "ran /deploy"}), "None"])
    time.sleep(0.2)  # no third ack may follow
    assert len(slack.acks) == 2


@pytest.mark.parametrize("warning_first", [True, False])
def test_a_refresh_loses_and_duplicates_nothing(slack: FakeSlack, smake: Make,
                                                warning_first: bool) -> None:
    slack.close_delay = 0.2
    client = smake()
    rec = Recorder().attach(client, "message", "reconnecting", "connecting")
    client.start().result(timeout=30)
    for i in range(20):
        slack.post_message("general", f"before {i}")
    slack.refresh(warning_first=warning_first, grace=0.1)
    for i in range(20):
        slack.post_message("general", f"after {i}")
    slack.wait_for_socket_connect_count(2)
    rec.wait_for("message", 40)
    expected = [f"before {i}" for i in range(20)] + [f"after {i}" for i in range(20)]
    wait_until(lambda: len(slack.socket_connections) == 1, what="the old connection closed")
    assert texts(rec) == expected
    assert rec.of("reconnecting") == [] and len(rec.of("connecting")) == 1
    assert client.state == "ready"
    assert slack.call_count("apps.connections.open") == 2


def test_fifty_refreshes_with_envelopes_throughout(slack: FakeSlack, smake: Make) -> None:
    # Slack closes a connection it asked to refresh about 10 s later; the client is to
    # switch long before. A close after 50 ms made a loaded machine reconnect instead.
    slack.close_delay = 10.0
    client = smake()
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=30)
    stop = threading.Event()
    sent: List[str] = []

    def post() -> None:
        i = 0
        while not stop.is_set():
            slack.post_message("general", f"m{i}")
            sent.append(f"m{i}")
            i += 1
            time.sleep(0.002)

    poster = threading.Thread(target=post, name="test-poster")
    poster.start()
    try:
        for n in range(50):
            slack.refresh(warning_first=n % 2 == 0, grace=0.02)
            slack.wait_for_socket_connect_count(n + 2, timeout=30)
            wait_until(lambda: len(slack.socket_connections) == 1, timeout=30,
                       what="the refreshed connection to close")
    finally:
        stop.set()
        poster.join(5)
    wait_until(lambda: len(rec.of("message")) >= len(sent), timeout=30,
               what="every message")
    got = texts(rec)
    assert got == sent, (len(got), len(sent))
    assert rec.of("reconnecting") == []
    assert slack.call_count("apps.connections.open") == 51


def test_a_refresh_before_the_connections_end(slack: FakeSlack, smake: Make) -> None:
    """hello's approximate_connection_time: the client refreshes before it runs out."""
    slack.connection_time = 1
    client = smake()
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=30)
    slack.wait_for_socket_connect_count(3, timeout=30)
    slack.post_message("general", "still here")
    rec.wait_for("message")
    assert rec.of("reconnecting") == []


def test_link_disabled_ends_the_run(slack: FakeSlack, smake: Make) -> None:
    client = smake()
    rec = Recorder().attach(client, "error", "disconnected", "reconnecting")
    client.start().result(timeout=30)
    slack.disconnect("link_disabled")
    rec.wait_for("disconnected")
    assert client.wait(30)
    (err,) = rec.of("error")[0]
    assert isinstance(err, PlatformError) and err.error == "link_disabled"
    assert rec.of("reconnecting") == [] and client.state == "disconnected"


def test_run_forever_raises_link_disabled(slack: FakeSlack, smake: Make) -> None:
    client = smake()
    client.once("ready", lambda: slack.disconnect("link_disabled"))
    with pytest.raises(PlatformError, match="link_disabled"):
        client.run_forever()
    assert client.state == "disconnected"


def test_invalid_app_token_is_fatal_with_one_call(slack: FakeSlack, smake: Make) -> None:
    client = smake("xapp-1-A0FAKE-1-" + "0" * 64)
    with pytest.raises(PlatformError, match="invalid_auth"):
        client.start().result(timeout=30)
    assert client.wait(30)
    assert slack.call_count("apps.connections.open") == 1


def test_a_bot_token_is_refused(slack: FakeSlack, smake: Make) -> None:
    # refused when the client is made, with what to use instead (no call to Slack)
    with pytest.raises(ValueError, match="xapp-"):
        smake(slack.token)
    assert slack.call_count("apps.connections.open") == 0


def test_too_many_websockets_backs_off(slack: FakeSlack, smake: Make) -> None:
    slack.max_socket_connections = 0
    client = smake(backoff=Backoff(initial=0.0, base=0.1, factor=2.0, maximum=1.0,
                                   jitter=False))
    rec = Recorder().attach(client, "reconnecting")
    client.start()
    calls = slack.wait_for_call("apps.connections.open", 4, timeout=30)
    gaps = [b.time - a.time for a, b in zip(calls, calls[1:])]
    assert gaps[1] >= 0.15 and gaps[2] >= 0.35, gaps  # 0.1, 0.2, 0.4: growing
    assert len(rec.of("reconnecting")) >= 3


def test_a_half_open_connection_is_detected_by_ping_frames(slack: FakeSlack,
                                                           smake: Make) -> None:
    client = smake()
    rec = Recorder().attach(client, "reconnecting", "ready", "message")
    client.start().result(timeout=30)
    rec.wait_for("ready")
    slack.freeze()
    rec.wait_for("reconnecting", timeout=30)
    rec.wait_for("ready", 2, timeout=30)
    slack.post_message("general", "after")
    rec.wait_for("message")


def test_the_app_token_never_reaches_logs(slack: FakeSlack, smake: Make,
                                          all_logs: List[logging.LogRecord]) -> None:
    slack.close_delay = 0.05
    client = smake(log_level=LogLevel.DEBUG)
    client.start().result(timeout=30)
    slack.refresh(grace=0.02)
    slack.wait_for_socket_connect_count(2)
    slack.drop()
    slack.wait_for_socket_connect_count(3)
    slack.fail_next("apps.connections.open", "internal_error", times=1)
    slack.disconnect("refresh_requested")
    slack.wait_for_socket_connect_count(4, timeout=30)
    client.disconnect()
    bad = SocketModeClient("xapp-1-A0FAKE-9-secretsecret", slack_api_url=slack.api_url,
                           log_level=LogLevel.DEBUG, **SM_FAST)
    with pytest.raises(PlatformError) as info:
        bad.start().result(timeout=30)
    bad.disconnect()
    assert "secretsecret" not in str(info.value) and "secretsecret" not in repr(bad)
    text = "\n".join(r.getMessage() for r in all_logs)
    assert all_logs and slack.app_token not in text and "secretsecret" not in text
    assert "ticket=" not in text  # the one-time ticket of the URL


def test_disconnect_during_a_refresh_leaves_no_thread(slack: FakeSlack, smake: Make) -> None:
    client = smake()
    client.start().result(timeout=30)
    slack.fail_next("apps.connections.open", delay=2.0, times=1)
    slack.refresh(warning_first=True, grace=5.0)
    slack.wait_for_call("apps.connections.open", 2)
    t0 = time.monotonic()
    client.disconnect(timeout=3)
    assert time.monotonic() - t0 < 3
    assert not client_threads()
    assert client.state == "disconnected"


@pytest.mark.parametrize("envelope_id", ["57d6a792-4d35-4d0b-b6aa-3361493e1caf", 'quote"d',
                                         "back\\slash", "ü-ñ", "x" * 300, ""])
def test_ack_frames_are_valid_json_for_any_envelope_id(envelope_id: str) -> None:
    import json

    from slackrtm._protocols.envelope import ack_text
    assert json.loads(ack_text(envelope_id)) == {"envelope_id": envelope_id}
    assert json.loads(ack_text(envelope_id, {"text": "a\nb"})) == {
        "envelope_id": envelope_id, "payload": {"text": "a\nb"}}


def test_seen_ids_are_bounded_and_catch_either_id() -> None:
    from slackrtm._protocols.envelope import Seen
    seen = Seen(size=4)
    assert not seen.check("e1", "Ev1")
    assert seen.check("e1", None)  # same envelope id
    assert seen.check("e2", "Ev1")  # a retry: new envelope id, same event id
    for i in range(3, 10):
        assert not seen.check(f"e{i}", f"Ev{i}")
    assert not seen.check("e1", "Ev1")  # forgotten: only the last `size` ids are kept


def test_run_forever_raises_an_error_that_ended_the_run_before_it_was_called(
        slack: FakeSlack, smake: Make) -> None:
    """link_disabled between start() and run_forever(): the run is not started again."""
    client = smake()
    rec = Recorder().attach(client, "disconnected")
    client.start().result(timeout=30)
    slack.disconnect("link_disabled")
    rec.wait_for("disconnected")
    with pytest.raises(PlatformError, match="link_disabled"):
        client.run_forever()
    assert slack.call_count("apps.connections.open") == 1
    client.once("ready", lambda: client.disconnect())
    client.run_forever()  # raised once: a later call starts a new run
    assert slack.call_count("apps.connections.open") == 2


def test_an_ack_payload_that_is_not_json_raises_and_loses_nothing(slack: FakeSlack,
                                                                  smake: Make) -> None:
    client = smake(ack="manual")
    errors: List[BaseException] = []
    futures: List[Any] = []

    @client.on("slash_commands")
    def on_command(request: SocketModeRequest) -> None:
        try:
            request.ack({"text": object()})
        except TypeError as exc:
            errors.append(exc)
        futures.append(request.ack({"text": "fine"}))

    client.start().result(timeout=30)
    envelope = slack.slash_command("/deploy")
    (ack,) = slack.wait_for_acks(1)
    assert len(errors) == 1
    assert ack.envelope_id == envelope["envelope_id"] and ack.payload == {"text": "fine"}
    assert futures[0].result(timeout=30) is None


def test_a_refresh_that_fails_unexpectedly_leaves_refreshes_working(
        slack: FakeSlack, smake: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    from slackrtm._protocols.sm_run import SocketModeRun
    slack.close_delay = 0.1
    client = smake()
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=30)
    real = SocketModeRun._open_next
    calls: List[int] = []

    def flaky(self: SocketModeRun) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug somewhere below")
        return real(self)

    monkeypatch.setattr(SocketModeRun, "_open_next", flaky)
    slack.refresh(warning_first=False)  # the refresh fails; the old connection closes
    rec.wait_for("reconnecting", timeout=30)  # the reader reconnects, it does not hang
    slack.wait_for_socket_connect_count(2, timeout=30)
    slack.refresh(warning_first=False)  # and the next refresh works again
    slack.wait_for_socket_connect_count(3, timeout=30)
    slack.post_message("general", "after")
    rec.wait_for("message")
    assert len(calls) == 2


def test_a_disconnect_frame_without_auto_reconnect_ends_the_run_as_planned(
        slack: FakeSlack, smake: Make) -> None:
    """Slack's ``disconnect`` (not a refresh) is no failure: the run ends with
    ReconnectRequested naming the reason, and its message promises no reconnect."""
    slack.close_delay = 5.0  # the client closes first: it does not wait for Slack's close
    client = smake(auto_reconnect=False)
    rec = Recorder().attach(client, "error", "message")
    client.start().result(timeout=5)
    slack.post_message("general", "before")
    rec.wait_for("message")
    slack.disconnect("server_restart")
    assert client.wait(10)
    (err,) = rec.of("error")
    assert isinstance(err[0], ReconnectRequested) and isinstance(err[0], WebsocketError)
    assert (err[0].event, err[0].reason) == ("disconnect", "server_restart")
    assert "reconnecting" not in str(err[0])
    assert slack.socket_connect_count == 1
