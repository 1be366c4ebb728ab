"""FakeSlack's RTM WebSocket, driven by websocket-client over real loopback sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests
import websocket

from slackrtm.testing import FakeSlack
from tests.conftest import checked_fake

#: Client sockets opened by ``connect``, shut after each test.
CLIENTS: List[websocket.WebSocket] = []


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A FakeSlack that must leave no thread behind and record no internal error."""
    # these tests send bursts; tests/test_limits_fake.py throttles
    yield from checked_fake(CLIENTS, message_rate=None)


def api(slack: FakeSlack, method: str, **params: Any) -> Dict[str, Any]:
    with requests.Session() as session:
        session.trust_env = False
        resp = session.post(slack.api_url + method, data=params, timeout=5,
                            headers={"Authorization": f"Bearer {slack.token}"})
    return resp.json()  # type: ignore[no-any-return]


def connect(slack: FakeSlack, *, hello: bool = True, **params: Any) -> websocket.WebSocket:
    url = api(slack, "rtm.connect", **params)["url"]
    ws = websocket.create_connection(url, timeout=5, http_no_proxy=["*"])
    CLIENTS.append(ws)
    if hello:
        assert recv(ws) == {"type": "hello"}
    return ws


def recv(ws: websocket.WebSocket) -> Dict[str, Any]:
    return json.loads(ws.recv())  # type: ignore[no-any-return]


def send(ws: websocket.WebSocket, frame: Dict[str, Any]) -> None:
    ws.send(json.dumps(frame))


def test_hello_and_connection_record(fake: FakeSlack) -> None:
    t0 = time.monotonic()
    ws = connect(fake, batch_presence_aware="true")
    assert time.monotonic() - t0 < 5.0
    (conn,) = fake.wait_for_connections(1)
    assert conn.id == 1 and conn.method == "rtm.connect" and conn.open and conn.hello_sent
    assert conn.params == {"batch_presence_aware": "true"} and conn.batch_presence_aware
    assert fake.connect_count == 1 and fake.wait_for_connect_count(1) == 1
    assert fake.presence("fakebot") == "active"
    ws.close()
    conn.wait_closed()
    fake.wait_until(lambda: not fake.connections, what="the connection to go")
    assert fake.all_connections == [conn] and not conn.open
    assert fake.presence(fake.bot_user_id) == "away"


def test_ping_pong_echoes_extra_fields(fake: FakeSlack) -> None:
    ws = connect(fake)
    send(ws, {"type": "ping", "id": 7, "time": 123, "extra": "x"})
    assert recv(ws) == {"type": "pong", "reply_to": 7, "time": 123, "extra": "x"}
    send(ws, {"type": "ping", "id": 8})
    pong = recv(ws)
    assert pong["reply_to"] == 8 and isinstance(pong["time"], int)
    assert fake.wait_for_received("ping", count=2)[1] == {"type": "ping", "id": 8}


def test_message_reply_store_and_echo_to_every_client(fake: FakeSlack) -> None:
    ws1, ws2 = connect(fake), connect(fake)
    general = fake.channel_id("general")
    send(ws1, {"id": 1, "type": "message", "channel": general, "text": "hi", "thread_ts": "1.5"})
    reply = recv(ws1)
    assert reply == {"ok": True, "reply_to": 1, "ts": reply["ts"], "text": "hi"}
    for ws in (ws1, ws2):
        event = recv(ws)
        assert event["type"] == "message" and event["channel"] == general
        assert event["user"] == fake.bot_user_id and event["text"] == "hi"
        assert event["ts"] == reply["ts"] and event["thread_ts"] == "1.5"
    (stored,) = fake.messages("general")
    assert stored["ts"] == reply["ts"] and stored["thread_ts"] == "1.5"
    send(ws1, {"id": 2, "type": "message", "channel": general, "text": "again"})
    assert float(recv(ws1)["ts"]) > float(reply["ts"])


def test_message_errors(fake: FakeSlack) -> None:
    ws = connect(fake)
    general = fake.channel_id("general")
    send(ws, {"id": 1, "type": "message", "channel": general, "text": ""})
    assert recv(ws) == {"ok": False, "reply_to": 1,
                        "error": {"code": 2, "msg": "message text is missing"}}
    send(ws, {"id": 2, "type": "message", "channel": general})
    assert recv(ws)["error"]["code"] == 2
    send(ws, {"id": 3, "type": "message", "channel": "CNOPE", "text": "x"})
    reply = recv(ws)
    assert reply["ok"] is False and reply["reply_to"] == 3
    assert reply["error"]["code"] == 1 and "channel_not_found" in reply["error"]["msg"]
    assert fake.messages("general") == []


def test_typing_presence_sub_and_unknown_types_are_recorded_silently(fake: FakeSlack) -> None:
    ws = connect(fake)
    send(ws, {"id": 1, "type": "typing", "channel": fake.channel_id("general")})
    send(ws, {"id": 2, "type": "presence_sub", "ids": ["U0ALICE", "U0BOB"]})
    send(ws, {"id": 3, "type": "something_else", "x": 1})
    send(ws, {"id": 4, "type": "ping"})
    assert recv(ws)["reply_to"] == 4  # nothing was answered before the pong
    assert [f["type"] for f in fake.received] == ["typing", "presence_sub", "something_else",
                                                   "ping"]
    assert fake.connections[0].presence_subscriptions == ["U0ALICE", "U0BOB"]
    assert [f["id"] for f in fake.connections[0].received] == [1, 2, 3, 4]


def test_invalid_frames_get_error_frames(fake: FakeSlack) -> None:
    ws = connect(fake)
    for bad in ("not json", "[1, 2]", '"text"'):
        ws.send(bad)
        error = recv(ws)
        assert error["type"] == "error" and error["error"]["code"] == 1 and error["error"]["msg"]
    send(ws, {"id": 1})
    assert recv(ws)["type"] == "error"
    ws.send_binary(b"\x00\x01")
    send(ws, {"type": "ping", "id": 2})
    assert recv(ws)["reply_to"] == 2
    assert fake.unparsed == ["not json", "[1, 2]", '"text"', b"\x00\x01"]
    assert fake.received == [{"id": 1}, {"type": "ping", "id": 2}]


def test_received_waits_and_their_timeout_message(fake: FakeSlack) -> None:
    ws1, ws2 = connect(fake), connect(fake)
    send(ws1, {"type": "typing", "id": 1, "channel": "C"})
    send(ws2, {"type": "typing", "id": 2, "channel": "C"})
    assert len(fake.wait_for_received("typing", count=2)) == 2
    assert fake.wait_for_received(lambda f: f.get("id") == 2)[0]["id"] == 2
    assert len(fake.wait_for_received()) == 2
    with pytest.raises(TimeoutError, match=r"3 received frame.*got 2.*typing"):
        fake.wait_for_received("typing", count=3, timeout=0.05)
    with pytest.raises(TimeoutError, match="open connection"):
        fake.wait_for_connections(3, timeout=0.05)
    with pytest.raises(TimeoutError, match="3 accepted"):
        fake.wait_for_connect_count(3, timeout=0.05)


def test_websocket_ping_control_frame_and_server_ping(fake: FakeSlack) -> None:
    ws = connect(fake)
    ws.ping(b"abc")
    opcode, data = ws.recv_data(control_frame=True)
    assert (opcode, data) == (websocket.ABNF.OPCODE_PONG, b"abc")
    assert fake.ping(b"xyz") == 1
    opcode, data = ws.recv_data(control_frame=True)
    assert (opcode, data) == (websocket.ABNF.OPCODE_PING, b"xyz")  # and it answers a pong
    conn = fake.connections[0]
    fake.wait_until(lambda: conn.ws_pongs == [b"xyz"], what="the client's pong")


def test_client_close_frame_is_answered(fake: FakeSlack) -> None:
    ws = connect(fake)
    conn = fake.connections[0]
    ws.send_close(4000, b"bye")
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and data[:2] == (4000).to_bytes(2, "big")
    conn.wait_closed()
    assert (conn.close_code, conn.close_reason) == (4000, "bye")
    ws.shutdown()  # type: ignore[no-untyped-call]


def test_fragmented_message_and_interleaved_ping(fake: FakeSlack) -> None:
    ws = connect(fake)
    text = json.dumps({"id": 1, "type": "message", "channel": fake.channel_id("general"),
                       "text": "frag"})
    ABNF = websocket.ABNF
    ws.send_frame(ABNF.create_frame(text[:10], ABNF.OPCODE_TEXT, fin=0))
    ws.send_frame(ABNF.create_frame(b"p", ABNF.OPCODE_PING))
    ws.send_frame(ABNF.create_frame(text[10:20], ABNF.OPCODE_CONT, fin=0))
    ws.send_frame(ABNF.create_frame(text[20:], ABNF.OPCODE_CONT, fin=1))
    assert ws.recv_data(control_frame=True) == (ABNF.OPCODE_PONG, b"p")
    assert recv(ws)["reply_to"] == 1


@pytest.mark.parametrize("size", [10, 125, 126, 200, 65535, 65536, 200_000])
def test_payload_lengths_both_ways(fake: FakeSlack, size: int) -> None:
    fake.max_message_length = None  # framing of long frames, not Slack's 4,000 limit
    ws = connect(fake)
    text = "x" * size
    send(ws, {"id": 1, "type": "message", "channel": fake.channel_id("general"), "text": text})
    assert recv(ws)["text"] == text
    assert recv(ws)["text"] == text
    fake.inject({"type": "big", "blob": "y" * size})
    assert recv(ws)["blob"] == "y" * size


def test_invalid_utf8_from_client_fails_the_connection(fake: FakeSlack) -> None:
    ws = connect(fake)
    ws.send(b"\xff\xfe", websocket.ABNF.OPCODE_TEXT)
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and data[:2] == (1007).to_bytes(2, "big")
    fake.all_connections[0].wait_closed()
    assert fake.received == []


def test_many_messages_from_many_threads(fake: FakeSlack) -> None:
    ws = connect(fake)
    general = fake.channel_id("general")
    replies: Dict[int, str] = {}
    echoes: List[str] = []
    done = threading.Event()

    def reader() -> None:
        while len(replies) < 2000 or len(echoes) < 2000:
            frame = recv(ws)
            if "reply_to" in frame:
                replies[frame["reply_to"]] = frame["ts"]
            else:
                echoes.append(frame["ts"])
        done.set()

    def sender(first: int) -> None:
        for n in range(first, first + 250):
            send(ws, {"id": n, "type": "message", "channel": general, "text": f"m{n}"})

    t0 = time.monotonic()
    threads = [threading.Thread(target=reader)] + [
        threading.Thread(target=sender, args=(1 + 250 * i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert done.is_set(), f"got {len(replies)} replies and {len(echoes)} echoes"
    elapsed = time.monotonic() - t0
    assert sorted(replies) == list(range(1, 2001))
    assert len(set(replies.values())) == 2000 and echoes == sorted(echoes)
    assert len(fake.messages("general")) == 2000
    assert elapsed < 10, elapsed


# -- the handshake, by hand ------------------------------------------------------------------
def raw_handshake(slack: FakeSlack, path: str, **overrides: str) -> socket.socket:
    headers = {"Host": f"127.0.0.1:{slack.port}", "Upgrade": "websocket",
               "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
               "Sec-WebSocket-Version": "13"}
    headers.update(overrides)
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items() if v]
    sock = socket.create_connection((slack.host, slack.port), timeout=5)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def read_head(sock: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, data
        data += chunk
    return data.decode()


def ticket_path(slack: FakeSlack) -> str:
    return "/" + str(api(slack, "rtm.connect")["url"]).split("/", 3)[3]


def test_handshake_accept_key_and_one_time_tickets(fake: FakeSlack) -> None:
    path = ticket_path(fake)
    sock = raw_handshake(fake, path)
    head = read_head(sock)
    assert head.startswith("HTTP/1.1 101 ")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head  # RFC 6455 1.3
    sock.close()
    reused = raw_handshake(fake, path)
    assert read_head(reused).startswith("HTTP/1.1 404 ")
    reused.close()
    unknown = raw_handshake(fake, "/rtm/nope")
    assert read_head(unknown).startswith("HTTP/1.1 404 ")
    unknown.close()
    fake.ticket_ttl = -1.0
    expired = raw_handshake(fake, ticket_path(fake))
    assert read_head(expired).startswith("HTTP/1.1 404 ")
    expired.close()


@pytest.mark.parametrize("overrides, status", [
    ({"Sec-WebSocket-Key": "short"}, "400"),
    ({"Sec-WebSocket-Key": ""}, "400"),
    ({"Upgrade": ""}, "400"),
    ({"Connection": "keep-alive"}, "400"),
    ({"Sec-WebSocket-Version": "8"}, "426"),
])
def test_bad_handshakes(fake: FakeSlack, overrides: Dict[str, str], status: str) -> None:
    sock = raw_handshake(fake, ticket_path(fake), **overrides)
    assert read_head(sock).startswith(f"HTTP/1.1 {status} ")
    sock.close()
    assert fake.connect_count == 0


@pytest.mark.parametrize("frame", [
    b"\x81\x02hi",  # not masked
    b"\xc1\x82abcd\x00\x00",  # RSV1 set
    b"\x89\xfe\x00\x7e" + b"m" * 4 + b"p" * 126,  # control frame longer than 125
    b"\x80\x81abcd\x00",  # continuation without a start
])
def test_protocol_errors_close_with_1002(fake: FakeSlack, frame: bytes) -> None:
    sock = raw_handshake(fake, ticket_path(fake))
    read_head(sock)
    assert sock.recv(64) == b"\x81\x11" + b'{"type": "hello"}'
    sock.sendall(frame)
    data = b""
    while len(data) < 4:
        chunk = sock.recv(64)
        assert chunk, data
        data += chunk
    assert data[0] == 0x88 and data[2:4] == (1002).to_bytes(2, "big")
    assert sock.recv(64) == b""  # then the server closes TCP
    sock.close()
