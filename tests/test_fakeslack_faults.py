"""FakeSlack's driving (events, workspace changes) and fault injection, over real sockets."""

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
    yield from checked_fake(CLIENTS)


def connect(slack: FakeSlack, *, hello: bool = True, timeout: float = 30.0,
            **params: Any) -> websocket.WebSocket:
    with requests.Session() as session:
        session.trust_env = False
        url = session.post(slack.api_url + "rtm.connect", data=params, timeout=5,
                           headers={"Authorization": f"Bearer {slack.token}"}).json()["url"]
    ws = websocket.create_connection(url, timeout=timeout, http_no_proxy=["*"],
                                     skip_utf8_validation=True)
    CLIENTS.append(ws)
    if hello:
        assert recv(ws) == {"type": "hello"}
    return ws


def recv(ws: websocket.WebSocket) -> Dict[str, Any]:
    return json.loads(ws.recv())  # type: ignore[no-any-return]


def send(ws: websocket.WebSocket, frame: Dict[str, Any]) -> None:
    ws.send(json.dumps(frame))


def nothing_within(ws: websocket.WebSocket, seconds: float) -> None:
    """Assert that no frame arrives for ``seconds`` (absence can only be bounded in time)."""
    ws.settimeout(seconds)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()
    ws.settimeout(5)


def raw_after_drop(ws: websocket.WebSocket) -> bytes:
    """What the client's socket reads next (b"" at FIN); raises ConnectionResetError at RST."""
    sock = ws.sock
    assert isinstance(sock, socket.socket)
    sock.settimeout(5)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


# -- events ----------------------------------------------------------------------------------
def test_inject_to_all_or_one(fake: FakeSlack) -> None:
    ws1, ws2 = connect(fake), connect(fake)
    assert fake.inject({"type": "custom", "n": 1}) == 2
    assert recv(ws1) == recv(ws2) == {"type": "custom", "n": 1}
    conn1, conn2 = fake.connections
    assert fake.inject({"type": "only", "n": 2}, to=conn2) == 1
    assert fake.inject({"type": "only", "n": 3}, to=conn1.id) == 1
    assert recv(ws2)["n"] == 2 and recv(ws1)["n"] == 3
    with pytest.raises(KeyError):
        fake.inject({"type": "x"}, to=99)


def test_post_message_as_a_person(fake: FakeSlack) -> None:
    ws = connect(fake)
    msg = fake.post_message("general", "hi bot")
    assert msg["user"] == "U0ALICE" and msg["channel"] == "C0GENERAL"
    assert recv(ws) == msg
    reply = fake.post_message("C0GENERAL", "in thread", user="U0BOB", thread_ts=msg["ts"])
    event = recv(ws)
    assert event["user"] == "U0BOB" and event["thread_ts"] == msg["ts"] == reply["thread_ts"]
    assert [m["text"] for m in fake.messages("general")] == ["hi bot", "in thread"]


def test_reactions(fake: FakeSlack) -> None:
    ws = connect(fake)
    msg = fake.post_message("general", "react to me")
    recv(ws)
    added = fake.add_reaction("general", msg["ts"], "thumbsup")
    event = recv(ws)
    assert event == added and event["type"] == "reaction_added"
    assert event["item"] == {"type": "message", "channel": "C0GENERAL", "ts": msg["ts"]}
    assert event["user"] == "U0ALICE" and event["item_user"] == "U0ALICE"
    assert fake.messages("general")[0]["reactions"] == [
        {"name": "thumbsup", "users": ["U0ALICE"], "count": 1}]
    fake.remove_reaction("general", msg["ts"], "thumbsup")
    assert recv(ws)["type"] == "reaction_removed"
    assert "reactions" not in fake.messages("general")[0]
    with pytest.raises(KeyError):
        fake.add_reaction("general", "1.0", "x")


def test_membership_and_rename(fake: FakeSlack) -> None:
    ws = connect(fake)
    fake.join_channel("U0CAROL", "C0DEV")
    event = recv(ws)
    assert event["type"] == "member_joined_channel"
    assert (event["user"], event["channel"]) == ("U0CAROL", "C0DEV")
    assert "U0CAROL" in fake.members("dev")
    fake.leave_channel("carol", "dev")
    assert recv(ws)["type"] == "member_left_channel" and "U0CAROL" not in fake.members("dev")
    msg = fake.rename_channel("C0DEV", "engineering")
    renamed = recv(ws)
    assert renamed == msg and msg["subtype"] == "channel_name"
    assert (msg["old_name"], msg["name"]) == ("dev", "engineering")
    rename = recv(ws)
    assert rename["type"] == "channel_rename"
    assert rename["channel"]["id"] == "C0DEV" and rename["channel"]["name"] == "engineering"
    assert fake.channel_id("engineering") == "C0DEV"


def test_team_join_channel_created_and_presence_change(fake: FakeSlack) -> None:
    plain, batch = connect(fake), connect(fake, batch_presence_aware="true")
    uid = fake.add_user("erin")
    assert recv(plain)["type"] == recv(batch)["type"] == "team_join"
    cid = fake.add_channel("brand-new", is_member=True)
    assert recv(plain)["channel"]["id"] == cid
    recv(batch)
    fake.set_presence(uid, "away")  # nobody subscribed yet: no event
    for n, ws in enumerate((plain, batch)):
        ws.send(json.dumps({"id": n + 1, "type": "presence_sub", "ids": [uid]}))
    fake.wait_until(lambda: all(c.presence_subscriptions == [uid] for c in fake.connections),
                    what="both subscriptions")
    fake.set_presence(uid, "away")
    assert recv(plain) == {"type": "presence_change", "presence": "away", "user": uid}
    assert recv(batch) == {"type": "presence_change", "presence": "away", "users": [uid]}


def test_send_raw_frames(fake: FakeSlack) -> None:
    ws = connect(fake)
    assert fake.send_raw("not json at all") == 1
    assert ws.recv() == "not json at all"
    fake.send_raw(b"\xff\xfebad")
    assert ws.recv_data() == (websocket.ABNF.OPCODE_TEXT, b"\xff\xfebad")
    fake.send_raw(b"\x00\x01", binary=True)
    assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x00\x01")
    frames = [json.dumps({"type": "burst", "n": n}) for n in range(300)]
    assert fake.send_frames(frames) == 1
    assert [recv(ws)["n"] for _ in range(300)] == list(range(300))


def test_flood(fake: FakeSlack) -> None:
    ws = connect(fake)
    t0 = time.monotonic()
    events = fake.flood(5000)
    got = [recv(ws) for _ in range(5000)]
    assert got == events and got[0]["type"] == "message" and got[-1]["text"] == "flood 4999"
    assert time.monotonic() - t0 < 5
    assert fake.flood(3, lambda i: {"type": "n", "i": i}) == [recv(ws) for _ in range(3)]
    assert fake.messages("general") == []


# -- faults ----------------------------------------------------------------------------------
def test_drop_reset(fake: FakeSlack) -> None:
    ws = connect(fake)
    conn = fake.connections[0]
    fake.inject({"type": "before"})
    assert recv(ws)["type"] == "before"
    assert fake.drop() == [conn]
    with pytest.raises(ConnectionResetError):
        raw_after_drop(ws)
    conn.wait_closed()
    assert fake.connections == []


def test_drop_fin_sends_no_close_frame(fake: FakeSlack) -> None:
    ws = connect(fake)
    fake.drop("fin")
    assert raw_after_drop(ws) == b""
    fake.wait_until(lambda: not fake.connections)


def test_drop_close_sends_1001(fake: FakeSlack) -> None:
    ws = connect(fake)
    fake.inject({"type": "last"})
    fake.drop("close")
    assert recv(ws)["type"] == "last"  # queued before the drop, so written first
    opcode, data = ws.recv_data(control_frame=True)  # websocket-client answers the close
    assert opcode == websocket.ABNF.OPCODE_CLOSE and data[:2] == (1001).to_bytes(2, "big")
    conn = fake.all_connections[0]
    conn.wait_closed()
    assert conn.close_code == 1000  # websocket-client's answer was read before closing
    with pytest.raises(ValueError):
        fake.drop("explode")


def test_drop_one_connection(fake: FakeSlack) -> None:
    ws1, ws2 = connect(fake), connect(fake)
    conn1, conn2 = fake.connections
    fake.drop(to=conn1)
    conn1.wait_closed()
    assert fake.connections == [conn2]
    send(ws2, {"type": "ping", "id": 1})
    assert recv(ws2)["reply_to"] == 1
    ws1.close()


def test_goodbye_then_close_after_grace(fake: FakeSlack) -> None:
    ws = connect(fake)
    conn = fake.connections[0]
    t0 = time.monotonic()
    fake.goodbye(grace=0.2)
    assert recv(ws) == {"type": "goodbye"}
    opcode, _ = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and time.monotonic() - t0 >= 0.2
    conn.wait_closed()


def test_goodbye_client_closes_first(fake: FakeSlack) -> None:
    ws = connect(fake)
    conn = fake.connections[0]
    fake.goodbye(grace=5.0)
    assert recv(ws)["type"] == "goodbye"
    ws.close()
    conn.wait_closed(timeout=30)


def test_ignore_pings(fake: FakeSlack) -> None:
    ws = connect(fake)
    fake.ignore_pings = True
    send(ws, {"type": "ping", "id": 1})
    ws.ping(b"control")
    send(ws, {"type": "message", "id": 2, "channel": "C0GENERAL", "text": "still here"})
    assert recv(ws)["reply_to"] == 2  # the reply, not a pong
    assert recv(ws)["type"] == "message"
    nothing_within(ws, 0.2)
    fake.ignore_pings = False
    send(ws, {"type": "ping", "id": 3})
    assert recv(ws)["reply_to"] == 3


def test_freeze_and_unfreeze(fake: FakeSlack) -> None:
    ws = connect(fake)
    conn = fake.connections[0]
    assert fake.freeze() == [conn] and conn.frozen
    send(ws, {"type": "ping", "id": 1})
    fake.inject({"type": "held"})
    nothing_within(ws, 0.2)
    assert fake.received == []  # not even read
    other = connect(fake)  # new connections are not frozen
    send(other, {"type": "ping", "id": 9})
    assert recv(other)["reply_to"] == 9
    fake.unfreeze()
    assert recv(ws) == {"type": "held"}
    assert recv(ws)["reply_to"] == 1
    fake.freeze(to=conn)
    fake.drop(to=conn)  # a frozen connection can still be dropped
    conn.wait_closed()
    other.close()


def test_hold_hello(fake: FakeSlack) -> None:
    fake.hold_hello = True
    ws = connect(fake, hello=False)
    conn = fake.wait_for_connections()[0]
    assert not conn.hello_sent
    nothing_within(ws, 0.2)
    assert fake.release_hello() == 1 and conn.hello_sent
    assert recv(ws) == {"type": "hello"}
    assert fake.release_hello() == 0


def test_hang_handshake(fake: FakeSlack) -> None:
    fake.hang_handshake = True
    with pytest.raises(websocket.WebSocketTimeoutException):
        connect(fake, hello=False, timeout=0.2)
    assert fake.handshake_attempts == 1 and fake.connect_count == 0
    failures = []

    def hang() -> None:
        try:
            connect(fake, hello=False)
        except Exception as exc:  # the handshake ends when the server closes
            failures.append(exc)

    hung = threading.Thread(target=hang)
    hung.start()  # another hanging client, left hanging until close()
    fake.wait_until(lambda: fake.handshake_attempts == 2)
    fake.hang_handshake = False
    connect(fake).close()
    t0 = time.monotonic()
    fake.close()
    assert time.monotonic() - t0 < 2
    hung.join(5)
    assert not hung.is_alive() and len(failures) == 1


def test_reply_delay_does_not_block_the_connection(fake: FakeSlack) -> None:
    ws, other = connect(fake), connect(fake)
    fake.reply_delay = 0.3
    t0 = time.monotonic()
    send(ws, {"type": "message", "id": 1, "channel": "C0GENERAL", "text": "slow"})
    send(ws, {"type": "ping", "id": 2})
    assert recv(ws)["reply_to"] == 2  # the pong overtakes the delayed reply
    send(other, {"type": "ping", "id": 3})
    assert recv(other)["reply_to"] == 3
    reply = recv(ws)
    assert reply["reply_to"] == 1 and reply["ok"] and time.monotonic() - t0 >= 0.3
    assert recv(ws)["text"] == "slow"


def test_drop_replies(fake: FakeSlack) -> None:
    ws = connect(fake)
    fake.drop_replies = True
    send(ws, {"type": "message", "id": 1, "channel": "C0GENERAL", "text": "lost reply"})
    event = recv(ws)
    assert event["type"] == "message" and event["text"] == "lost reply"  # posted, echoed
    nothing_within(ws, 0.2)
    assert fake.messages("general")[0]["text"] == "lost reply"
    assert fake.wait_for_received("message")[0]["id"] == 1
