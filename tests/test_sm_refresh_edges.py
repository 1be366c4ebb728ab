"""SocketModeClient at the edges of a refresh and a connection loss.

Refreshes that fail (429, handshake, no hello), disconnect() at each step of a refresh,
redeliveries across a refresh, manual acks across a connection loss, back-pressure during
a refresh, a refresh asked for twice, link_disabled mid-refresh, secrets in logs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List

import pytest

from slackrtm import (
    LogLevel,
    PlatformError,
    SendWhileDisconnectedError,
    SocketModeRequest,
)
from slackrtm.testing import FakeSlack
from tests.conftest import Recorder, client_threads, wait_until
from tests.test_sm_refresh import QUIET, Make, run_of, texts


def refreshed(slack: FakeSlack, client: Any) -> None:
    """Wait until the client reads a connection opened by a refresh (not the first one)."""
    run = run_of(client)
    first = run.transport
    wait_until(lambda: run.transport is not None and run.transport is not first
               and not run.refresh.ready, timeout=5, what="the handover")


def test_a_refresh_whose_first_call_is_rate_limited(slack: FakeSlack,
                                                           smake: Make) -> None:
    """warning: apps.connections.open answers 429; refresh_requested: the next try works."""
    slack.close_delay = 0.3
    client = smake()
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=30)
    slack.fail_next("apps.connections.open", "ratelimited", status=429, retry_after=1)
    slack.refresh(warning_first=True, grace=0.3)
    slack.post_message("general", "during")
    rec.wait_for("message", timeout=30)
    slack.wait_for_socket_connect_count(2)
    wait_until(lambda: len(slack.socket_connections) == 1, what="the old connection closed")
    slack.post_message("general", "after")
    rec.wait_for("message", 2, timeout=30)
    assert texts(rec) == ["during", "after"]
    assert rec.of("reconnecting") == []
    assert slack.call_count("apps.connections.open") == 3


@pytest.mark.parametrize("fault", ["handshake", "no_hello"])
def test_a_failed_refresh_leaks_no_socket_and_loses_nothing(
        slack: FakeSlack, smake: Make, fault: str) -> None:
    """The refresh's handshake is refused, or its hello never comes: the refresher gives
    up (closing what it opened), the old connection is used to its end, then the client
    reconnects and gets what Slack held meanwhile."""
    slack.close_delay = 1.0
    client = smake(hello_timeout=0.5)
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=30)
    if fault == "handshake":
        slack.fail_next("websocket", status=503)
    else:
        slack.hold_hello = True
    slack.refresh(warning_first=False)
    if fault == "no_hello":
        slack.wait_for_socket_connect_count(2)
        refresh_conn = slack.all_socket_connections[1]
        refresh_conn.wait_closed(timeout=30)  # closed by the client after hello_timeout
        slack.hold_hello = False
    slack.post_message("general", "held for the next connection")
    rec.wait_for("message", timeout=30)
    rec.wait_for("reconnecting")
    assert texts(rec) == ["held for the next connection"]
    wait_until(lambda: len(slack.socket_connections) == 1, what="one connection left")


@pytest.mark.parametrize("where", ["http", "handshake", "hello"])
def test_disconnect_at_each_step_of_a_refresh(slack: FakeSlack, smake: Make,
                                                     where: str) -> None:
    client = smake(hello_timeout=60.0)  # each step would block far beyond the bound below
    client.start().result(timeout=30)
    if where == "http":
        slack.fail_next("apps.connections.open", delay=60.0)
    elif where == "handshake":
        slack.hang_handshake = True
    else:
        slack.hold_hello = True
    slack.refresh(warning_first=False)
    if where == "http":
        slack.wait_for_call("apps.connections.open", 2)
    elif where == "handshake":
        slack.wait_until(lambda: slack.handshake_attempts >= 2, what="the handshake")
    else:
        slack.wait_for_socket_connect_count(2)
    time.sleep(0.05)  # the refresher is blocked in that step by now (no event to wait on)
    t0 = time.monotonic()
    client.disconnect(timeout=1.0)
    assert time.monotonic() - t0 < 10.0  # (else: blocked in that step for good)
    assert not client_threads(), client_threads()
    slack.wait_until(lambda: not slack.socket_connections, timeout=30,
                     what="every Socket Mode connection closed")


def test_redeliveries_across_a_refresh(slack: FakeSlack, smake: Make) -> None:
    """An envelope read on the old connection and delivered again on the new one (same
    envelope_id, or a new one with the same event_id) is acked, not dispatched again."""
    slack.close_delay = 0.2
    client = smake()
    rec = Recorder().attach(client, "message")
    client.start().result(timeout=30)
    slack.post_message("general", "once")
    rec.wait_for("message")
    first = slack.delivered[0][1]["envelope_id"]
    slack.refresh(warning_first=False)
    refreshed(slack, client)
    new = slack.socket_connections[-1]
    slack.redeliver(first, same_id=True, to=new)
    slack.redeliver(first, same_id=False, to=new)
    slack.post_message("general", "twice")
    rec.wait_for("message", 2)
    acked = {a.envelope_id for a in slack.wait_for_acks(4)}
    assert {e["envelope_id"] for _, e in slack.delivered} <= acked
    assert texts(rec) == ["once", "twice"]


def manual_client(smake: Make) -> Any:
    """A manual-ack client whose slash command handler acks once ``go`` is set."""
    client = smake(ack="manual")
    go = threading.Event()
    arrived = threading.Event()
    futures: List[Any] = []

    @client.on("slash_commands")
    def on_command(request: SocketModeRequest) -> None:
        arrived.set()
        go.wait(5)
        futures.append(request.ack({"text": "late but there"}))

    return client, arrived, go, futures


def test_manual_ack_after_a_connection_loss_goes_out_on_the_next(
        slack: FakeSlack, smake: Make) -> None:
    slack.redelivery = False
    client, arrived, go, futures = manual_client(smake)
    rec = Recorder().attach(client, "ready")
    client.start().result(timeout=30)
    envelope = slack.slash_command("/later")
    assert arrived.wait(30)
    slack.drop("reset")
    slack.wait_for_socket_connect_count(2)
    go.set()  # the handler acks while the client reconnects, or once it is ready again
    wait_until(lambda: futures, what="the ack")
    assert futures[0].result(timeout=30) is None
    (ack,) = slack.wait_for_acks(1)
    assert ack.envelope_id == envelope["envelope_id"] and ack.payload == {
        "text": "late but there"}
    assert ack.connection_id == slack.socket_connections[-1].id
    assert len(rec.of("ready")) == 2


def test_manual_ack_future_fails_at_disconnect(slack: FakeSlack, smake: Make) -> None:
    client, arrived, go, futures = manual_client(smake)
    client.start().result(timeout=30)
    slack.slash_command("/never")
    assert arrived.wait(30)
    slack.hold_hello = True
    slack.drop("reset")  # no ready connection to write the ack on
    slack.wait_for_socket_connect_count(2)
    go.set()
    wait_until(lambda: futures, what="the ack")
    assert not futures[0].done()
    client.disconnect(timeout=2)
    with pytest.raises(SendWhileDisconnectedError):
        futures[0].result(timeout=30)
    assert slack.acks == []


def test_back_pressure_during_a_refresh_keeps_order(slack: FakeSlack,
                                                           smake: Make) -> None:
    slack.close_delay = 0.3
    client = smake(max_backlog=2)
    rec = Recorder()

    @client.on("message")
    def slow(event: Dict[str, Any]) -> None:
        time.sleep(0.004)
        rec.handler("message")(event)

    client.start().result(timeout=30)
    slack.flood(60)
    slack.refresh(warning_first=False)
    slack.flood(60, lambda i: {"type": "message", "channel": slack.channel_id("general"),
                               "text": f"after {i}"})
    rec.wait_for("message", 120, timeout=30)
    assert texts(rec) == [f"flood {i}" for i in range(60)] + [f"after {i}" for i in range(60)]
    assert slack.call_count("apps.connections.open") == 2


def test_a_refresh_asked_for_three_times_opens_one_connection(
        slack: FakeSlack, smake: Make) -> None:
    slack.close_delay = 5.0
    client = smake(**QUIET)
    client.start().result(timeout=30)
    old = slack.socket_connections[0]
    slack.refresh(warning_first=True, grace=0.1)  # warning, then refresh_requested
    slack.disconnect("refresh_requested", to=old)
    refreshed(slack, client)
    wait_until(lambda: len(slack.socket_connections) == 1, what="the old connection closed")
    time.sleep(0.2)  # a second refresh would have called by now
    assert slack.call_count("apps.connections.open") == 2


def test_link_disabled_while_the_refresh_waits_for_hello(slack: FakeSlack,
                                                                smake: Make) -> None:
    slack.close_delay = 5.0
    client = smake(hello_timeout=3.0)
    rec = Recorder().attach(client, "error", "disconnected", "reconnecting")
    client.start().result(timeout=30)
    old = slack.socket_connections[0]
    slack.hold_hello = True
    slack.refresh(warning_first=False)
    slack.wait_for_socket_connect_count(2)
    slack.disconnect("link_disabled", to=old)
    rec.wait_for("disconnected", timeout=30)
    (err,) = rec.of("error")[0]
    assert isinstance(err, PlatformError) and err.error == "link_disabled"
    slack.wait_until(lambda: not slack.socket_connections, timeout=30,
                     what="the refresh's connection closed too")


def test_refresh_failures_keep_secrets_out_of_logs(
        slack: FakeSlack, smake: Make, all_logs: List[logging.LogRecord]) -> None:
    slack.close_delay = 5.0
    client = smake(hello_timeout=0.5, log_level=LogLevel.DEBUG)
    client.start().result(timeout=30)
    for fail in ("invalid_auth", "websocket", "hello"):
        if fail == "invalid_auth":
            slack.fail_next("apps.connections.open", "invalid_auth")
        elif fail == "websocket":
            slack.fail_next("websocket", status=403)
        else:
            slack.hold_hello = True
        def failed(before: int = len(all_logs)) -> bool:
            return any("refreshing the connection failed" in r.getMessage()
                       for r in all_logs[before:])

        slack.disconnect("refresh_requested", to=slack.socket_connections[0])
        wait_until(failed, timeout=30, what="the failure")
        slack.hold_hello = False
    text = "\n".join(r.getMessage() + str(r.exc_info) for r in all_logs)
    assert slack.app_token not in text and "ticket=" not in text
