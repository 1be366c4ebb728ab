"""SocketModeClient against Slack's edge cases, on a FakeSlack that behaves as Slack does:
a refresh refused with too_many_websockets, debug_reconnects, link_disabled, the token in
the Authorization header, Slack's own pings, a slash command answered end to end."""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, List

import pytest
import requests

from slackrtm import Backoff, PlatformError, SocketModeClient
from slackrtm.testing import FakeSlack
from tests.conftest import SM_FAST, Recorder, wait_until

Make = Callable[..., SocketModeClient]
#: Keep-alive slow enough to stay out of the way; refused refreshes retried every 0.3 s.
CALM = dict(SM_FAST, client_ping_timeout=6.0, server_pong_timeout=3.0, hello_timeout=5.0,
            backoff=Backoff(initial=0.0, base=0.3, factor=1.0, maximum=0.3, jitter=False))


def texts(rec: Recorder) -> List[str]:
    return [args[0]["text"] for args in rec.of("message")]


# -- too_many_websockets on a refresh's connection ---------------------------------------
def test_a_refused_refresh_is_closed_at_once_and_retried_while_the_old_one_lives(
        slack: FakeSlack, smake: Make) -> None:
    slack.max_socket_connections = 1
    slack.close_delay = 30.0  # the old connection lives on after refresh_requested
    client = smake(**CALM)
    rec = Recorder().attach(client, "message", "reconnecting", "connecting")
    client.start().result(timeout=10)
    old = slack.socket_connections[0]
    slack.refresh(warning_first=False, to=old)
    slack.wait_for_socket_connect_count(2, timeout=10)
    refused = slack.all_socket_connections[1]
    assert not refused.hello_sent
    # closed by the client at once, not after hello_timeout (5 s) nor Slack's close (30 s)
    refused.wait_closed(timeout=2.5)
    # the refresh is tried again (and refused again) while the old connection lives
    slack.wait_for_socket_connect_count(3, timeout=10)
    slack.events_api({"type": "message", "channel": slack.channel_id("general"),
                      "text": "on the old one meanwhile"}, to=old)
    rec.wait_for("message", timeout=10)
    slack.max_socket_connections = 2  # Slack lets the next one in
    wait_until(lambda: not old.open, timeout=15, what="the handover (old one closed)")
    slack.post_message("general", "on the new one")
    rec.wait_for("message", 2, timeout=10)
    assert texts(rec) == ["on the old one meanwhile", "on the new one"]
    assert rec.of("reconnecting") == [] and len(rec.of("connecting")) <= 1  # start()
    assert client.state == "ready"
    refused_ones = [c for c in slack.all_socket_connections if not c.hello_sent]
    assert len(refused_ones) >= 2 and all(not c.open for c in refused_ones)


def test_a_refused_refresh_then_the_old_one_ending_is_a_normal_reconnect(
        slack: FakeSlack, smake: Make) -> None:
    slack.max_socket_connections = 1
    slack.close_delay = 1.0
    client = smake(**dict(CALM, backoff=Backoff(initial=0.0, base=5.0, factor=1.0,
                                                maximum=5.0, jitter=False)))
    rec = Recorder().attach(client, "message", "reconnecting", "ready")
    client.start().result(timeout=10)
    slack.refresh(warning_first=False)
    slack.wait_for_socket_connect_count(2, timeout=10)
    slack.all_socket_connections[1].wait_closed(timeout=2.5)  # refused, closed at once
    # the old connection ends 1 s after refresh_requested, long before the 5 s retry
    rec.wait_for("reconnecting", timeout=10)
    rec.wait_for("ready", 2, timeout=20)
    slack.post_message("general", "after the reconnect")
    rec.wait_for("message", timeout=10)
    assert texts(rec) == ["after the reconnect"]


# -- debug_reconnects ---------------------------------------------------------------------
def test_debug_reconnects_asks_slack_for_short_connections(slack: FakeSlack,
                                                           smake: Make) -> None:
    slack.debug_reconnect_scale = 0.01  # Slack's 360 s become 3.6 s
    slack.close_delay = 0.3
    plain = smake()
    data = plain.start().result(timeout=10)
    assert data["debug_info"]["approximate_connection_time"] == 18060
    assert not slack.socket_connections[0].debug_reconnects
    plain.disconnect()
    client = smake(debug_reconnects=True, **CALM)
    rec = Recorder().attach(client, "message", "reconnecting")
    data = client.start().result(timeout=10)
    assert data["debug_info"]["approximate_connection_time"] == 360
    assert slack.socket_connections[-1].debug_reconnects
    count = slack.socket_connect_count
    slack.wait_for_socket_connect_count(count + 2, timeout=30)  # refreshed twice
    assert all(c.debug_reconnects for c in slack.all_socket_connections[1:])
    slack.post_message("general", "still here")
    rec.wait_for("message", timeout=10)
    assert rec.of("reconnecting") == []


# -- link_disabled ------------------------------------------------------------------------
def test_link_disabled_says_what_to_do(slack: FakeSlack, smake: Make) -> None:
    client = smake()
    rec = Recorder().attach(client, "error", "reconnecting")
    client.start().result(timeout=10)
    slack.disconnect("link_disabled")
    (err,) = rec.wait_for("error", timeout=10)[0]
    assert isinstance(err, PlatformError) and err.error == "link_disabled"
    assert "turn it back on in the app's settings" in str(err)
    assert "Socket Mode" in str(err)
    assert rec.of("reconnecting") == []


# -- the token and Slack's pings -----------------------------------------------------------
def test_the_app_token_goes_in_the_authorization_header_by_post(slack: FakeSlack,
                                                                smake: Make) -> None:
    client = smake()
    client.start().result(timeout=10)
    (call,) = [c for c in slack.calls if c.method == "apps.connections.open"]
    assert call.http_method == "POST" and call.authorized
    assert not call.token_in_body and not call.token_in_url


def test_slacks_pings_are_answered_and_end_nothing(slack: FakeSlack, smake: Make) -> None:
    slack.ping_interval = 0.1
    client = smake(**CALM)
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=10)
    conn = slack.socket_connections[0]
    slack.wait_until(lambda: len(conn.ws_pongs) >= 5, timeout=10, what="5 pongs")
    assert set(conn.ws_pongs) == {b"Ping from fakeslack-1"}
    slack.post_message("general", "between pings")
    rec.wait_for("message", timeout=10)
    assert rec.of("reconnecting") == [] and client.state == "ready"


# -- slash commands end to end ------------------------------------------------------------
@pytest.mark.parametrize("how", ["response_url", "ack"])
def test_a_slash_command_answered_in_channel(slack: FakeSlack, smake: Make,
                                             how: str) -> None:
    client = smake(**CALM)
    rec = Recorder().attach(client, "message")
    errors: List[BaseException] = []
    answered = threading.Event()

    @client.on("slash_commands")
    def on_command(request: Any) -> None:
        body: Dict[str, Any] = {"text": f"deploying {request.payload['text']}",
                                "response_type": "in_channel"}
        try:
            if how == "ack":
                request.ack(body)
            else:
                request.ack()
                with requests.Session() as http:
                    http.trust_env = False
                    resp = http.post(request.payload["response_url"], json=body, timeout=5)
                    resp.raise_for_status()
        except BaseException as exc:
            errors.append(exc)
        answered.set()

    client.start().result(timeout=10)
    envelope = slack.slash_command("/deploy", "prod", channel="general")
    assert answered.wait(10)
    assert errors == []
    (answer,) = slack.wait_for_responses(1, timeout=10)
    assert answer.via == ("ack" if how == "ack" else "url")
    assert answer.url == envelope["payload"]["response_url"]
    rec.wait_for("message", timeout=10)  # the answer comes back as a channel message
    assert texts(rec) == ["deploying prod"]
    assert slack.messages("general")[-1]["text"] == "deploying prod"
    assert slack.acked(envelope["envelope_id"]) and slack.missed_acks == []


def test_a_disconnect_right_after_the_refresh_hello_is_the_new_connections_own(
        slack: FakeSlack, smake: Make) -> None:
    """hello and a warning arrive in one read on the refresh's connection: the refresh
    succeeds, and the warning asks the new connection for its own refresh."""
    slack.close_delay = 0.3
    client = smake(**CALM)
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=10)
    slack.hold_hello = True
    slack.refresh(warning_first=False)
    slack.wait_for_socket_connect_count(2, timeout=10)
    new = slack.all_socket_connections[1]
    slack.hold_hello = False
    hello = {"type": "hello", "num_connections": 2, "connection_info": {"app_id": "A0FAKE"},
             "debug_info": {"host": "fakeslack-1", "approximate_connection_time": 18060}}
    warning = {"type": "disconnect", "reason": "warning", "debug_info": {"host": "x"}}
    new.hello_sent = True
    slack.send_frames([json.dumps(hello), json.dumps(warning)], to=new)
    slack.wait_for_socket_connect_count(3, timeout=10)  # the new one refreshed in turn
    wait_until(lambda: len(slack.socket_connections) == 1 and slack.socket_connections[0]
               is slack.all_socket_connections[2], timeout=15, what="the third one alone")
    slack.post_message("general", "on the third")
    rec.wait_for("message", timeout=10)
    assert rec.of("reconnecting") == []
