"""FakeSlack's Socket Mode behaves as Slack does, checked with raw sockets (no slackrtm
client): the refusal over the connection limit, apps.connections.open's authentication,
which envelopes are sent again, server pings, debug_reconnects, the URL, response_url."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests
import websocket

from slackrtm.testing import FakeSlack, MissedAck, ResponsePost
from tests.conftest import checked_fake
from tests.test_fakeslack_socket_mode import ack, api, open_ws, recv, recv_close, sm_url

CLIENTS: List[websocket.WebSocket] = []


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A FakeSlack that must leave no thread behind and record no internal error."""
    yield from checked_fake(CLIENTS)


def raw(url: str) -> websocket.WebSocket:
    ws = open_ws(url)
    CLIENTS.append(ws)
    return ws


def recv_text(ws: websocket.WebSocket, timeout: float = 10.0) -> Dict[str, Any]:
    """The next text frame, answering (and skipping) the server's pings."""
    ws.settimeout(timeout)
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_PING:
            ws.pong(data)
            continue
        assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data)
        return json.loads(data)  # type: ignore[no-any-return]


# -- the connection over the limit ------------------------------------------------------
def test_the_connection_over_the_limit_gets_no_hello(fake: FakeSlack) -> None:
    fake.max_socket_connections, fake.close_delay = 1, 0.2
    first = raw(sm_url(fake))
    assert recv(first)["num_connections"] == 1
    refused = raw(sm_url(fake))
    assert recv(refused) == {"type": "disconnect", "reason": "too_many_websockets",
                             "debug_info": {"host": "fakeslack-1"}}
    assert recv_close(refused) == 1001
    conn = fake.all_socket_connections[1]
    assert not conn.hello_sent and conn.going_away
    fake.wait_until(lambda: len(fake.socket_connections) == 1, what="the refused one gone")
    fake.max_socket_connections = 2
    second = raw(sm_url(fake))
    assert recv(second)["num_connections"] == 2  # the refused one never counted


# -- apps.connections.open ----------------------------------------------------------------
def test_apps_connections_open_takes_the_token_by_bearer_header_and_post_only(
        fake: FakeSlack) -> None:
    method = "apps.connections.open"
    assert api(fake, method, None, token=fake.app_token) == {"ok": False,
                                                             "error": "invalid_auth"}
    assert api(fake, method, None) == {"ok": False, "error": "not_authed"}
    with requests.Session() as http:
        http.trust_env = False
        got = http.get(fake.api_url + method, timeout=5,
                       headers={"Authorization": f"Bearer {fake.app_token}"})
    assert got.status_code == 405 and got.headers["Allow"] == "POST"
    assert got.json() == {"ok": False, "error": "method_not_allowed"}
    assert api(fake, method, fake.app_token)["ok"] is True
    assert api(fake, method, fake.app_token, token="ignored")["ok"] is True  # header wins


def test_the_url_carries_ticket_and_app_id(fake: FakeSlack) -> None:
    url = sm_url(fake)
    head, _, query = url.partition("?")
    assert head == f"ws://127.0.0.1:{fake.port}/link/"
    assert [part.split("=")[0] for part in query.split("&")] == ["ticket", "app_id"]
    assert recv(raw(url))["type"] == "hello"


# -- what is sent again -------------------------------------------------------------------
def test_only_events_api_envelopes_are_sent_again(fake: FakeSlack) -> None:
    fake.ack_timeout = 0.3
    ws = raw(sm_url(fake))
    assert recv(ws)["type"] == "hello"
    event = fake.events_api({"type": "app_mention", "text": "hi"})
    command = fake.slash_command("/deploy", "prod")
    click = fake.interactive({"type": "block_actions", "actions": []},
                             accepts_response_payload=True)
    got = [recv_text(ws) for _ in range(3)]
    assert [e["type"] for e in got] == ["events_api", "slash_commands", "interactive"]
    again = recv_text(ws)  # none is acked: only the event comes again
    assert again["type"] == "events_api" and again["payload"] == event["payload"]
    assert again["retry_attempt"] == 1 and again["retry_reason"] == "timeout"
    ack(ws, again)
    missed = fake.wait_for_missed_acks(2)
    assert [(m.envelope_id, m.type) for m in missed] == [
        (command["envelope_id"], "slash_commands"), (click["envelope_id"], "interactive")]
    assert isinstance(missed[0], MissedAck) and missed[0].envelope == command
    assert missed[0].connection_id == fake.socket_connections[0].id
    time.sleep(1.0)  # more than three ack timeouts: nothing else arrives
    assert [e["type"] for _, e in fake.delivered] == ["events_api", "slash_commands",
                                                      "interactive", "events_api"]
    assert len(fake.missed_acks) == 2


def test_an_acked_command_is_not_a_missed_ack(fake: FakeSlack) -> None:
    fake.ack_timeout = 0.2
    ws = raw(sm_url(fake))
    assert recv(ws)["type"] == "hello"
    command = fake.slash_command("/deploy")
    ack(ws, recv_text(ws))
    fake.wait_for_acks(1)
    late = fake.interactive({"type": "block_actions"})
    time.sleep(0.5)  # past the ack timeout
    ack(ws, recv_text(ws))  # too late: Slack already showed the user an error
    assert [m.envelope_id for m in fake.wait_for_missed_acks(1)] == [late["envelope_id"]]
    assert fake.acked(command["envelope_id"])


# -- pings --------------------------------------------------------------------------------
def test_slack_pings_each_connection(fake: FakeSlack) -> None:
    assert fake.ping_interval == 10.0
    fake.ping_interval = 0.2
    ws = raw(sm_url(fake))
    assert recv(ws)["type"] == "hello"
    ws.settimeout(5)
    stamps = []
    for _ in range(3):
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PING and data == b"Ping from fakeslack-1"
        stamps.append(time.monotonic())
        ws.pong(data)
    assert stamps[-1] - stamps[0] >= 0.3
    (conn,) = fake.socket_connections
    fake.wait_until(lambda: len(conn.ws_pongs) >= 3, what="the pongs recorded")
    fake.ping_interval = None  # no more pings once the current one fires


# -- debug_reconnects ---------------------------------------------------------------------
def test_debug_reconnects_connections_last_360_s_scaled(fake: FakeSlack) -> None:
    fake.debug_reconnect_scale = 0.01  # 3.6 s; the warning 0.1 s before
    fake.close_delay = 0.2
    plain = raw(sm_url(fake))
    assert recv(plain)["debug_info"]["approximate_connection_time"] == 18060
    t0 = time.monotonic()
    ws = raw(sm_url(fake) + "&debug_reconnects=true")
    hello = recv_text(ws)
    assert hello["debug_info"]["approximate_connection_time"] == 360
    assert fake.socket_connections[-1].debug_reconnects
    assert not fake.socket_connections[0].debug_reconnects
    assert recv_text(ws)["reason"] == "warning"
    t_warn = time.monotonic() - t0
    assert recv_text(ws)["reason"] == "refresh_requested"
    t_ask = time.monotonic() - t0
    assert t_warn >= 3.3 and t_ask >= 3.5, (t_warn, t_ask)
    assert recv_close(ws) == 1001
    assert not fake.all_socket_connections[0].going_away  # the plain one stays


# -- response_url -------------------------------------------------------------------------
def test_response_url_records_answers_and_posts_in_channel_ones(fake: FakeSlack) -> None:
    rtm = raw(api(fake, "rtm.connect", fake.token)["url"])
    assert recv(rtm)["type"] == "hello"
    envelope = fake.slash_command("/deploy", "prod", channel="random")
    url = envelope["payload"]["response_url"]
    assert url.startswith(fake.api_url.replace("/api/", "/commands/"))
    with requests.Session() as http:
        http.trust_env = False
        quiet = http.post(url, json={"text": "only you see this"}, timeout=5)
        loud = http.post(url, json={"text": "deployed", "response_type": "in_channel"},
                         timeout=5)
        assert (quiet.status_code, quiet.text) == (200, "ok")
        assert (loud.status_code, loud.text) == (200, "ok")
        bad = http.post(url, data=b"not json", timeout=5)
        empty = http.post(url, json={"response_type": "in_channel"}, timeout=5)
        assert (bad.status_code, bad.text) == (400, "invalid_payload")
        assert (empty.status_code, empty.text) == (400, "no_text")
        for _ in range(3):
            assert http.post(url, json={"text": "more"}, timeout=5).status_code == 200
        used = http.post(url, json={"text": "sixth"}, timeout=5)
        assert (used.status_code, used.text) == (404, "used_url")  # 5 uses at most
        unknown = http.post(url[:-3] + "xyz", json={"text": "x"}, timeout=5)
        assert unknown.status_code == 404
    event = recv(rtm)  # the in_channel answer, as a message from the bot
    channel = fake.channel_id("random")
    assert event["type"] == "message" and event["text"] == "deployed"
    assert event["channel"] == channel and event["user"] == fake.bot_user_id
    answers = fake.responses
    assert [(r.response_type, r.via, r.payload.get("text")) for r in answers[:2]] == [
        ("ephemeral", "url", "only you see this"), ("in_channel", "url", "deployed")]
    assert isinstance(answers[0], ResponsePost) and answers[0].command == "/deploy"
    assert answers[0].ts is None and answers[1].ts == event["ts"]
    assert answers[1].channel == channel and len(answers) == 5
    texts = [m["text"] for m in fake.messages("random")]
    assert "deployed" in texts and "only you see this" not in texts


def test_an_ack_payload_answers_the_command(fake: FakeSlack) -> None:
    ws = raw(sm_url(fake))
    assert recv(ws)["type"] == "hello"
    envelope = fake.slash_command("/status")
    got = recv_text(ws)
    ack(ws, got, payload={"text": "all good", "response_type": "in_channel"})
    (answer,) = fake.wait_for_responses(1)
    assert answer.via == "ack" and answer.command == "/status"
    assert answer.url == envelope["payload"]["response_url"]
    assert answer.response_type == "in_channel" and answer.ts is not None
    assert fake.messages("general")[-1]["text"] == "all good"
