"""FakeSlack's Socket Mode, driven by raw websocket-client sockets and requests over loopback."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
import trustme
import websocket

from slackrtm import WebClient
from slackrtm.testing import FakeSlack
from tests.conftest import checked_fake

#: Client sockets opened by the helpers, shut after each test.
CLIENTS: List[websocket.WebSocket] = []
HOST = {"host": "fakeslack-1"}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A FakeSlack that must leave no thread behind and record no internal error."""
    yield from checked_fake(CLIENTS)


def api(slack: FakeSlack, method: str, bearer: Optional[str], /,
        **params: Any) -> Dict[str, Any]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    with requests.Session() as session:
        session.trust_env = False
        resp = session.post(slack.api_url + method, data=params, timeout=5, headers=headers)
    return resp.json()  # type: ignore[no-any-return]


def open_ws(url: str) -> websocket.WebSocket:
    ws = websocket.create_connection(url, timeout=5, http_no_proxy=["*"])
    CLIENTS.append(ws)
    return ws


def sm_url(slack: FakeSlack) -> str:
    data = api(slack, "apps.connections.open", slack.app_token)
    assert data["ok"] is True, data
    return str(data["url"])


def sm_connect(slack: FakeSlack, *, hello: bool = True) -> websocket.WebSocket:
    ws = open_ws(sm_url(slack))
    if hello:
        assert recv(ws)["type"] == "hello"
    return ws


def rtm_connect(slack: FakeSlack) -> websocket.WebSocket:
    ws = open_ws(api(slack, "rtm.connect", slack.token)["url"])
    assert recv(ws) == {"type": "hello"}
    return ws


def recv(ws: websocket.WebSocket, timeout: float = 30.0) -> Dict[str, Any]:
    ws.settimeout(timeout)
    return json.loads(ws.recv())  # type: ignore[no-any-return]


def recv_close(ws: websocket.WebSocket, timeout: float = 30.0) -> int:
    """Read frames until the server's close frame; returns its code."""
    ws.settimeout(timeout)
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE, (opcode, data)
    return int.from_bytes(data[:2], "big")


def silent(ws: websocket.WebSocket, seconds: float) -> None:
    """Nothing arrives for ``seconds`` (a bounded wait for an absence)."""
    ws.settimeout(seconds)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()


def ack(ws: websocket.WebSocket, envelope: Dict[str, Any], **extra: Any) -> None:
    ws.send(json.dumps(dict({"envelope_id": envelope["envelope_id"]}, **extra)))


# -- apps.connections.open ----------------------------------------------------------------
def test_app_token_and_auth_matrix(fake: FakeSlack) -> None:
    assert re.fullmatch(r"xapp-1-A0FAKE-\d{13}-[0-9a-f]{64}", fake.app_token)
    assert fake.app_token != fake.token
    url = api(fake, "apps.connections.open", fake.app_token)["url"]
    assert re.fullmatch(rf"ws://127\.0\.0\.1:{fake.port}/link/\?ticket=[\w-]+&app_id=[0-9a-f]{{64}}",
                        url)
    opened = "apps.connections.open"
    assert api(fake, opened, fake.token) == {"ok": False, "error": "not_allowed_token_type"}
    assert api(fake, opened, "xapp-1-nope") == {"ok": False, "error": "invalid_auth"}
    assert api(fake, opened, None) == {"ok": False, "error": "not_authed"}
    # as Slack documents: the app token only in the Authorization header
    assert api(fake, opened, None, token=fake.app_token) == {"ok": False,
                                                            "error": "invalid_auth"}
    for method in ("auth.test", "chat.postMessage", "rtm.connect", "users.list"):
        assert api(fake, method, fake.app_token, channel="general", text="x") == {
            "ok": False, "error": "not_allowed_token_type"}, method
    assert api(fake, "api.test", fake.app_token)["ok"] is True
    assert api(fake, "auth.test", fake.token)["ok"] is True
    fake.fail_next(opened, "ratelimited", status=429, retry_after=1)
    assert api(fake, opened, fake.app_token) == {"ok": False, "error": "ratelimited"}
    assert api(fake, opened, fake.app_token)["ok"] is True
    fake.revoke_token()
    assert api(fake, opened, fake.app_token) == {"ok": False, "error": "token_revoked"}
    assert api(fake, "auth.test", fake.token) == {"ok": False, "error": "token_revoked"}


def test_given_app_token_and_webclient(fake: FakeSlack) -> None:
    with FakeSlack(app_token="xapp-1-A0FAKE-1-given") as other:
        assert other.app_token == "xapp-1-A0FAKE-1-given"
        assert api(other, "apps.connections.open", "xapp-1-A0FAKE-1-given")["ok"] is True
    with WebClient(fake.app_token, base_url=fake.api_url) as client:
        data = client.api_call("apps.connections.open")
    assert data["ok"] is True and "/link/?ticket=" in data["url"]


def test_urls_are_one_time_and_of_their_kind(fake: FakeSlack) -> None:
    url = sm_url(fake)
    ws = open_ws(url)
    assert recv(ws)["type"] == "hello"
    rtm_ticket = api(fake, "rtm.connect", fake.token)["url"].rsplit("/", 1)[1]
    sm_ticket = sm_url(fake).split("ticket=")[1].split("&")[0]
    for bad in (url, url.replace("/link/?ticket=", "/rtm/").split("&")[0],
                url.replace(url.split("ticket=")[1].split("&")[0], rtm_ticket),
                f"ws://127.0.0.1:{fake.port}/link/?app_id=x&tikcet={sm_ticket}"):
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            open_ws(bad)
        assert err.value.status_code == 404
    fake.ticket_ttl = 0.0
    stale = sm_url(fake)  # a ttl of 0: expired by the time the handshake arrives
    with pytest.raises(websocket.WebSocketBadStatusException):
        open_ws(stale)
    assert fake.socket_connect_count == 1 and fake.connect_count == 0


def test_handshake_faults_apply(fake: FakeSlack) -> None:
    fake.fail_next("websocket", "busy", status=503)
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        open_ws(sm_url(fake))
    assert err.value.status_code == 503
    sm_connect(fake)
    assert fake.socket_connect_count == 1 and fake.handshake_attempts == 2


# -- hello and connections ----------------------------------------------------------------
def test_hello_shape_and_num_connections(fake: FakeSlack) -> None:
    ws1 = open_ws(sm_url(fake))
    assert recv(ws1) == {"type": "hello", "num_connections": 1,
                         "debug_info": {"host": "fakeslack-1", "build_number": 1,
                                        "approximate_connection_time": 18060},
                         "connection_info": {"app_id": "A0FAKE"}}
    fake.connection_time = 600
    ws2 = open_ws(sm_url(fake))
    hello = recv(ws2)
    assert hello["num_connections"] == 2
    assert hello["debug_info"]["approximate_connection_time"] == 600
    conn1, conn2 = fake.wait_for_socket_connections(2)
    assert conn1.kind == conn2.kind == "socket_mode" and conn1.method == "apps.connections.open"
    assert conn1.hello_sent and conn2.id > conn1.id
    assert fake.connections == [] and fake.all_connections == [] and fake.connect_count == 0
    assert fake.wait_for_socket_connect_count(2) == 2
    ws1.close()
    conn1.wait_closed()
    fake.wait_until(lambda: fake.socket_connections == [conn2], what="conn1 to go")
    assert fake.all_socket_connections == [conn1, conn2]
    assert recv(open_ws(sm_url(fake)))["num_connections"] == 2


def test_hold_and_release_hello(fake: FakeSlack) -> None:
    sm_connect(fake).close()
    fake.wait_until(lambda: not fake.socket_connections, what="the first to close")
    fake.hold_hello = True
    ws = open_ws(sm_url(fake))
    (conn,) = fake.wait_for_socket_connections(1)
    fake.post_message("general", "while held")
    assert [e["payload"]["event"]["text"] for e in fake.held] == ["while held"]
    silent(ws, 0.3)
    assert fake.release_hello() == 1 and conn.hello_sent
    assert recv(ws)["num_connections"] == 1
    assert recv(ws)["payload"]["event"]["text"] == "while held"
    assert fake.held == []


# -- envelopes and acks -------------------------------------------------------------------
def test_events_api_envelope_wraps_the_rtm_event(fake: FakeSlack) -> None:
    rtm, sm = rtm_connect(fake), sm_connect(fake)
    posted = fake.post_message("general", "hello both", user="bob")
    event = recv(rtm)
    assert event == posted
    envelope = recv(sm)
    assert set(envelope) == {"envelope_id", "type", "accepts_response_payload", "retry_attempt",
                             "retry_reason", "payload"}
    assert envelope["type"] == "events_api" and envelope["accepts_response_payload"] is False
    assert envelope["retry_attempt"] == 0 and envelope["retry_reason"] == ""
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        envelope["envelope_id"])
    payload = envelope["payload"]
    assert payload["event"] == event
    assert payload["type"] == "event_callback" and payload["event_id"].startswith("Ev")
    assert payload["token"] == fake.verification_token and payload["team_id"] == "T0FAKE"
    assert payload["api_app_id"] == "A0FAKE" and payload["is_ext_shared_channel"] is False
    assert abs(payload["event_time"] - time.time()) < 60
    assert payload["authorizations"] == [{"enterprise_id": None, "team_id": "T0FAKE",
                                          "user_id": "U0BOT", "is_bot": True,
                                          "is_enterprise_install": False}]
    (delivered,) = fake.wait_for_delivered(1)
    assert delivered == (fake.socket_connections[0].id, envelope)
    # other generators: reactions, chat.postMessage, an RTM send echoed
    fake.add_reaction("general", posted["ts"], "tada")
    assert recv(sm)["payload"]["event"] == recv(rtm)
    api(fake, "chat.postMessage", fake.token, channel="general", text="from the web")
    assert recv(sm)["payload"]["event"] == recv(rtm)
    rtm.send(json.dumps({"id": 1, "type": "message", "channel": posted["channel"], "text": "x"}))
    assert recv(rtm)["reply_to"] == 1
    echoed = recv(sm)["payload"]["event"]
    assert echoed == recv(rtm) and echoed["text"] == "x"
    ids = [e["payload"]["event_id"] for _, e in fake.delivered]
    assert len(set(ids)) == 4


def test_inject_stays_rtm_only_and_nothing_before_socket_mode_is_used(fake: FakeSlack) -> None:
    rtm = rtm_connect(fake)
    fake.post_message("general", "before")
    assert recv(rtm)["text"] == "before"
    assert fake.held == [] and fake.delivered == [] and not fake.socket_mode_active
    sm = sm_connect(fake)
    assert fake.socket_mode_active
    fake.inject({"type": "goodbye"})
    assert recv(rtm) == {"type": "goodbye"}
    fake.post_message("general", "after")
    assert recv(sm)["payload"]["event"]["text"] == "after"  # the goodbye never came here


def test_acks_are_recorded_and_other_frames_received(fake: FakeSlack) -> None:
    sm = sm_connect(fake)
    (conn,) = fake.socket_connections
    envelope = fake.events_api({"type": "app_mention", "text": "<@U0BOT> hi"})
    got = recv(sm)
    assert got == envelope and got["payload"]["event"]["type"] == "app_mention"
    assert not fake.acked(envelope["envelope_id"])
    ack(sm, envelope)
    sm.send(json.dumps({"type": "ping", "id": 1}))  # not Socket Mode: recorded, unanswered
    sm.send(json.dumps({"envelope_id": "never-sent", "payload": {"x": 1}}))
    sm.send("not json")
    first, second = fake.wait_for_acks(2)
    assert first.envelope_id == envelope["envelope_id"] and first.payload is None
    assert first.connection_id == conn.id and first.late is False
    assert second.envelope_id == "never-sent" and second.payload == {"x": 1}
    assert not second.late
    assert fake.acked(envelope["envelope_id"]) and conn.acks == [first, second]
    assert fake.wait_for_received("ping") == [{"type": "ping", "id": 1}]
    fake.wait_until(lambda: fake.unparsed == ["not json"], what="the unparsed frame")
    assert all("envelope_id" not in f for f in fake.received)
    later = fake.events_api({"type": "x"})
    assert recv(sm) == later  # no pong or error frame came before it


def test_redelivery_after_ack_timeout(fake: FakeSlack) -> None:
    fake.ack_timeout = 0.3
    sm = sm_connect(fake)
    t0 = time.monotonic()
    fake.post_message("general", "retry me")
    first = recv(sm)
    second = recv(sm, timeout=3.0)
    assert time.monotonic() - t0 >= 0.3
    assert second["retry_attempt"] == 1 and second["retry_reason"] == "timeout"
    assert second["envelope_id"] != first["envelope_id"]
    assert second["payload"] == first["payload"]  # same event_id, same event
    ack(sm, second)
    fake.wait_for_acks(1)
    silent(sm, 0.9)  # three ack timeouts: no third delivery
    assert len(fake.delivered) == 2


def test_unacked_envelope_follows_the_client_to_its_next_connection(fake: FakeSlack) -> None:
    fake.ack_timeout = 0.3
    first = sm_connect(fake)
    fake.post_message("general", "across a reconnect")
    lost = recv(first)
    first.close()  # never acked
    fake.wait_until(lambda: not fake.socket_connections, what="the first connection to go")
    second = sm_connect(fake)
    again = recv(second, timeout=3.0)
    assert again["retry_attempt"] == 1 and again["envelope_id"] != lost["envelope_id"]
    assert again["payload"]["event_id"] == lost["payload"]["event_id"]
    assert again["payload"]["event"]["text"] == "across a reconnect"
    ack(second, again)
    fake.wait_for_acks(1)
    silent(second, 0.9)


def test_ack_of_an_older_copy_stops_redelivery_and_is_late(fake: FakeSlack) -> None:
    fake.ack_timeout = 0.3
    sm = sm_connect(fake)
    envelope = fake.events_api({"type": "reaction_added", "reaction": "x"})
    assert recv(sm) == envelope
    assert recv(sm, timeout=3.0)["retry_attempt"] == 1
    ack(sm, envelope)  # the first copy's id: same event_id, so retries stop
    (record,) = fake.wait_for_acks(1)
    assert record.late is True
    silent(sm, 0.9)


def test_max_retries_and_switching_redelivery_off(fake: FakeSlack) -> None:
    fake.ack_timeout, fake.max_retries = 0.1, 2
    sm = sm_connect(fake)
    fake.events_api({"type": "x"})
    attempts = [recv(sm, timeout=3.0)["retry_attempt"] for _ in range(3)]
    assert attempts == [0, 1, 2]
    silent(sm, 0.5)
    fake.redelivery = False
    fake.events_api({"type": "y"})
    assert recv(sm)["retry_attempt"] == 0
    silent(sm, 0.5)
    assert [e["retry_attempt"] for _, e in fake.delivered] == [0, 1, 2, 0]


def test_redeliver_send_envelope_and_interactive(fake: FakeSlack) -> None:
    fake.redelivery = False
    sm = sm_connect(fake)
    original = fake.events_api({"type": "x"})
    assert recv(sm) == original
    same = fake.redeliver(original["envelope_id"])
    assert recv(sm) == same and same["envelope_id"] == original["envelope_id"]
    assert same["retry_attempt"] == 1 and same["retry_reason"] == "timeout"
    new = fake.redeliver(original["envelope_id"], same_id=False)
    assert recv(sm) == new and new["envelope_id"] != original["envelope_id"]
    assert new["payload"] == original["payload"] and new["retry_attempt"] == 2
    with pytest.raises(KeyError):
        fake.redeliver("nope")
    raw = {"envelope_id": "dup", "type": "events_api", "payload": {"event_id": "Ev1"}}
    conn_id = fake.send_envelope(raw)
    assert conn_id == fake.socket_connections[0].id and recv(sm) == raw
    assert fake.send_envelope(raw) == conn_id and recv(sm) == raw
    action = {"type": "block_actions", "actions": [{"action_id": "a"}]}
    inter = fake.interactive(action)
    assert recv(sm) == inter and inter["type"] == "interactive"
    assert inter["payload"] == action and inter["accepts_response_payload"] is False
    assert fake.interactive(action, accepts_response_payload=True)["accepts_response_payload"]
    with pytest.raises(TypeError):
        fake.interactive("nope")  # type: ignore[arg-type]
    rtm_connect(fake)
    with pytest.raises(ValueError):
        fake.events_api({"type": "x"}, to=fake.connections[0])


def test_slash_command_shape(fake: FakeSlack) -> None:
    sm = sm_connect(fake)
    envelope = fake.slash_command("/deploy", "prod now", user="bob", channel="#dev")
    assert recv(sm) == envelope
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
    assert envelope["retry_attempt"] == 0
    p = envelope["payload"]
    assert {k: p[k] for k in ("team_id", "team_domain", "channel_id", "channel_name", "user_id",
                              "user_name", "command", "text", "api_app_id")} == {
        "team_id": "T0FAKE", "team_domain": "fakeslack", "channel_id": fake.channel_id("dev"),
        "channel_name": "dev", "user_id": "U0BOB", "user_name": "bob", "command": "/deploy",
        "text": "prod now", "api_app_id": "A0FAKE"}
    assert p["token"] == fake.verification_token
    assert p["response_url"].startswith(f"http://127.0.0.1:{fake.port}/commands/T0FAKE/")
    assert re.fullmatch(r"\d+\.\d+\.[0-9a-f]+", p["trigger_id"])
    default = fake.slash_command("/help")["payload"]
    assert default["user_name"] == "alice" and default["channel_name"] == "general"
    assert default["text"] == ""
    ack(sm, envelope, payload={"text": "deploying"})
    assert fake.wait_for_acks(1)[0].payload == {"text": "deploying"}
    with pytest.raises(ValueError):
        fake.slash_command("deploy")


# -- routing ------------------------------------------------------------------------------
def test_routing_to_the_newest_connection(fake: FakeSlack) -> None:
    fake.redelivery = False
    old, new = sm_connect(fake), sm_connect(fake)
    conn_old, conn_new = fake.wait_for_socket_connections(2)
    fake.post_message("general", "one")
    assert recv(new)["payload"]["event"]["text"] == "one"
    assert [cid for cid, _ in fake.delivered] == [conn_new.id]
    new.close()
    conn_new.wait_closed()
    fake.wait_until(lambda: fake.socket_connections == [conn_old], what="the newest to go")
    fake.post_message("general", "two")
    assert recv(old)["payload"]["event"]["text"] == "two"  # first frame after hello
    assert [cid for cid, _ in fake.delivered] == [conn_new.id, conn_old.id]


def test_held_without_a_connection_then_delivered_in_order(fake: FakeSlack) -> None:
    sm = sm_connect(fake)
    sm.close()
    fake.wait_until(lambda: not fake.socket_connections, what="the connection to go")
    for text in ("a", "b", "c"):
        fake.post_message("general", text)
    command = fake.slash_command("/later")
    assert len(fake.held) == 4 and fake.delivered == []
    again = sm_connect(fake)
    texts = [recv(again)["payload"]["event"]["text"] for _ in range(3)]
    assert texts == ["a", "b", "c"] and recv(again) == command
    assert fake.held == [] and len(fake.delivered) == 4


def test_flood_delivers_n_envelopes_in_order(fake: FakeSlack) -> None:
    fake.redelivery = False
    rtm, sm = rtm_connect(fake), sm_connect(fake)
    n = 2000
    t0 = time.perf_counter()
    events = fake.flood(n)
    took = time.perf_counter() - t0
    got = [recv(sm) for _ in range(n)]
    assert [e["payload"]["event"] for e in got] == events
    assert [e["payload"]["event"]["text"] for e in got] == [f"flood {i}" for i in range(n)]
    assert len({e["envelope_id"] for e in got}) == n
    assert len({e["payload"]["event_id"] for e in got}) == n
    assert all(e["retry_attempt"] == 0 and e["type"] == "events_api" for e in got)
    assert [recv(rtm)["text"] for _ in range(n)][-1] == f"flood {n - 1}"
    assert len(fake.wait_for_delivered(n)) == n == fake.delivered_count
    assert took < 2.0, f"flood({n}) took {took:.3f} s"


# -- telling connections to go ------------------------------------------------------------
def test_refresh_warning_then_refresh_requested_then_close(fake: FakeSlack) -> None:
    fake.close_delay = 0.2
    sm = sm_connect(fake)
    (conn,) = fake.socket_connections
    t0 = time.monotonic()
    assert fake.refresh(grace=0.3) == [conn]
    assert recv(sm) == {"type": "disconnect", "reason": "warning", "debug_info": HOST}
    assert conn.going_away
    fake.post_message("general", "during the warning")
    assert len(fake.held) == 1  # not routed to a connection told to go
    assert recv(sm) == {"type": "disconnect", "reason": "refresh_requested", "debug_info": HOST}
    t_refresh = time.monotonic()
    assert recv_close(sm) == 1001
    t_close = time.monotonic()
    assert t_refresh - t0 >= 0.3 and t_close - t0 >= 0.5
    conn.wait_closed()
    fresh = sm_connect(fake)
    assert recv(fresh)["payload"]["event"]["text"] == "during the warning"


def test_refresh_without_warning_and_client_closing_first(fake: FakeSlack) -> None:
    fake.close_delay = 0.2
    sm = sm_connect(fake)
    fake.refresh(warning_first=False)
    assert recv(sm)["reason"] == "refresh_requested"
    assert recv_close(sm) == 1001
    fake.close_delay = 5.0
    other = sm_connect(fake)
    fake.refresh(warning_first=False)
    assert recv(other)["reason"] == "refresh_requested"
    t0 = time.monotonic()
    other.close()
    fake.wait_until(lambda: not fake.socket_connections, what="the client's close")
    assert time.monotonic() - t0 < 2.0


def test_disconnect_reasons(fake: FakeSlack) -> None:
    fake.close_delay = 0.1
    sm = sm_connect(fake)
    (conn,) = fake.socket_connections
    assert fake.disconnect("link_disabled") == [conn]
    assert recv(sm) == {"type": "disconnect", "reason": "link_disabled", "debug_info": HOST}
    assert recv_close(sm) == 1001 and conn.going_away
    with pytest.raises(ValueError):
        fake.disconnect("")
    rtm_connect(fake)
    with pytest.raises(ValueError):
        fake.disconnect(to=fake.connections[0])


def test_too_many_websockets(fake: FakeSlack) -> None:
    fake.max_socket_connections, fake.close_delay = 2, 0.1
    fake.redelivery = False
    first, second = sm_connect(fake), sm_connect(fake)
    third = open_ws(sm_url(fake))
    # as Slack: no hello first, the refusal is the first frame
    assert recv(third) == {"type": "disconnect", "reason": "too_many_websockets",
                           "debug_info": HOST}
    assert recv_close(third) == 1001
    fake.wait_until(lambda: len(fake.socket_connections) == 2, what="the third to go")
    fake.post_message("general", "to the second")
    assert recv(second)["payload"]["event"]["text"] == "to the second"
    silent(first, 0.2)


def test_drop_freeze_and_ping_reach_socket_mode(fake: FakeSlack) -> None:
    sm = sm_connect(fake)
    (conn,) = fake.socket_connections
    assert fake.ping(b"hi") == 1
    sm.settimeout(5)
    opcode, data = sm.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PING and data == b"hi"
    fake.wait_until(lambda: conn.ws_pongs == [b"hi"], what="the pong")
    assert fake.freeze() == [conn] and conn.frozen
    fake.unfreeze()
    assert fake.drop("close") == [conn]
    assert recv_close(sm) == 1001
    conn.wait_closed()


def test_tokens_are_redacted_in_calls(fake: FakeSlack) -> None:
    api(fake, "apps.connections.open", fake.app_token)
    api(fake, "apps.connections.open", None, token=fake.app_token)
    with requests.Session() as session:
        session.trust_env = False
        session.get(f"{fake.api_url}apps.connections.open?token={fake.app_token}", timeout=5)
    calls = fake.wait_for_call("apps.connections.open", 3)
    everything = repr(calls) + repr(fake) + str([vars(c) for c in calls])
    assert fake.app_token not in everything and "xapp" not in everything
    assert calls[0].authorized and calls[0].headers["authorization"] == "Bearer <redacted>"
    assert calls[1].params["token"] == "<redacted>" and calls[1].token_in_body
    assert calls[2].token_in_url and "<redacted>" in calls[2].query


def test_socket_mode_over_tls() -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    before = set(threading.enumerate())
    with FakeSlack(ssl_context=server) as slack, ca.cert_pem.tempfile() as ca_file, \
            requests.Session() as http:
        http.trust_env = False
        url = http.post(slack.api_url + "apps.connections.open", verify=ca_file, timeout=5,
                        headers={"Authorization": f"Bearer {slack.app_token}"}).json()["url"]
        assert url.startswith(f"wss://127.0.0.1:{slack.port}/link/?ticket=")
        ws = websocket.create_connection(url, timeout=5, sslopt={"context": client},
                                         http_no_proxy=["*"])
        try:
            assert recv(ws)["type"] == "hello"
            envelope = slack.events_api({"type": "x"})
            assert recv(ws) == envelope
            ack(ws, envelope)
            assert slack.wait_for_acks(1)[0].envelope_id == envelope["envelope_id"]
        finally:
            ws.close()
        assert slack.errors == []
    assert [t.name for t in threading.enumerate() if t not in before] == []
