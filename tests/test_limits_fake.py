"""FakeSlack enforces Slack's limits on RTM sends, seen from a raw WebSocket client."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List

import pytest
import requests
import websocket

from slackrtm.testing import FakeSlack
from tests.conftest import checked_fake

OPEN: List[websocket.WebSocket] = []


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A FakeSlack that must leave no thread behind and record no internal error."""
    yield from checked_fake(OPEN)


def connect(slack: FakeSlack) -> websocket.WebSocket:
    with requests.Session() as http:
        http.trust_env = False
        url = http.post(slack.api_url + "rtm.connect", timeout=5,
                        headers={"Authorization": f"Bearer {slack.token}"}).json()["url"]
    ws = websocket.create_connection(url, timeout=5, http_no_proxy=["*"])
    OPEN.append(ws)
    assert json.loads(ws.recv()) == {"type": "hello"}
    return ws


def message(ws: websocket.WebSocket, mid: int, text: str, channel: str = "C0GENERAL") -> None:
    ws.send(json.dumps({"id": mid, "type": "message", "channel": channel, "text": text}))


def replies(ws: websocket.WebSocket, count: int) -> Dict[int, Dict[str, Any]]:
    got: Dict[int, Dict[str, Any]] = {}
    while len(got) < count:
        frame = json.loads(ws.recv())
        if "reply_to" in frame:
            got[frame["reply_to"]] = frame
    return got


def test_text_over_4000_characters_closes_the_connection(fake: FakeSlack) -> None:
    ws = connect(fake)
    message(ws, 1, "\U0001f600" * 4000)  # 4,000 characters (16,000 bytes) are fine
    assert replies(ws, 1)[1]["ok"] is True
    message(ws, 2, "y" * 4001)
    message(ws, 3, "after")  # Slack reads nothing more of this connection
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        assert json.loads(data).get("reply_to") not in (2, 3)
    assert int.from_bytes(data[:2], "big") == 1009 and data[2:] == b"message_too_long"
    (conn,) = fake.all_connections
    conn.wait_closed()
    assert [m["text"][:5] for m in fake.messages("general")] == ["\U0001f600" * 5]
    assert [f["id"] for f in fake.received] == [1, 2, 3]  # recorded all the same


def test_the_length_limit_can_be_turned_off(fake: FakeSlack) -> None:
    fake.max_message_length = None
    ws = connect(fake)
    message(ws, 1, "z" * 20000)
    assert replies(ws, 1)[1]["ok"] is True


def test_sends_beyond_the_per_channel_rate_are_answered_slow_down(fake: FakeSlack) -> None:
    ws = connect(fake)
    for i in range(1, 8):
        message(ws, i, f"m{i}")
    message(ws, 8, "other", channel="C0RANDOM")  # another channel has its own bucket
    got = replies(ws, 8)
    assert [i for i in range(1, 9) if got[i]["ok"]] == [1, 2, 3, 4, 5, 8]
    assert got[6] == {"ok": False, "reply_to": 6,
                      "error": {"code": -1, "msg": "slow down, too many messages..."}}
    assert [f["text"] for f in fake.rate_limited] == ["m6", "m7"]
    assert [m["text"] for m in fake.messages("general")] == [f"m{i}" for i in range(1, 6)]
    assert fake.connect_count == 1 and len(fake.connections) == 1


def test_the_throttle_can_be_turned_off(fake: FakeSlack) -> None:
    fake.message_rate = None
    ws = connect(fake)
    for i in range(1, 51):
        message(ws, i, f"m{i}")
    assert all(r["ok"] for r in replies(ws, 50).values())
    assert fake.rate_limited == []
