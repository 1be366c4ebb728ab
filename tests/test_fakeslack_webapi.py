"""FakeSlack's Web API over HTTP with requests: auth, methods, pagination, recording, faults."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
import websocket

from slackrtm.testing import ApiCall, FakeSlack
from tests.conftest import checked_fake


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A FakeSlack that must leave no thread behind and record no internal error."""
    yield from checked_fake([])


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def call(http: requests.Session, slack: FakeSlack, method: str, token: Optional[str] = "",
         **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or slack.token}"} if token is not None else {}
    return http.post(slack.api_url + method, data=params, headers=headers, timeout=5)


def ok(http: requests.Session, slack: FakeSlack, method: str, **params: Any) -> Dict[str, Any]:
    resp = call(http, slack, method, **params)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    data: Dict[str, Any] = resp.json()
    assert data["ok"] is True, data
    return data


def error(resp: requests.Response) -> str:
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    data = resp.json()
    assert data["ok"] is False
    return str(data["error"])


def test_authentication(fake: FakeSlack, http: requests.Session) -> None:
    assert fake.token.startswith("xoxb-")
    assert ok(http, fake, "auth.test")["user_id"] == fake.bot_user_id == "U0BOT"
    assert error(call(http, fake, "auth.test", token="xoxb-wrong")) == "invalid_auth"
    assert error(call(http, fake, "auth.test", token=None)) == "not_authed"
    form = http.post(fake.api_url + "auth.test", data={"token": fake.token}, timeout=5)
    assert form.json()["ok"] is True
    query = http.get(fake.api_url + "auth.test", params={"token": fake.token}, timeout=5)
    assert query.json()["ok"] is True
    assert error(call(http, fake, "nope.nothing", token=None)) == "unknown_method"
    assert ok(http, fake, "api.test", foo="bar")["args"] == {"foo": "bar"}
    fake.revoke_token()
    assert error(call(http, fake, "auth.test")) == "token_revoked"
    assert error(call(http, fake, "rtm.connect")) == "token_revoked"
    assert error(call(http, fake, "auth.test", token="xoxb-wrong")) == "invalid_auth"


def test_custom_token() -> None:
    with FakeSlack(token="xoxb-given") as slack, requests.Session() as http:
        http.trust_env = False
        assert slack.token == "xoxb-given"
        assert ok(http, slack, "auth.test")["team_id"] == slack.team_id == "T0FAKE"


def test_calls_are_recorded_without_the_token(fake: FakeSlack, http: requests.Session) -> None:
    ok(http, fake, "users.info", user="U0ALICE")
    http.get(fake.api_url + "users.info", params={"user": "U0BOB", "token": fake.token},
             timeout=5)
    http.post(fake.api_url + "chat.postMessage", json={"channel": "C0GENERAL", "text": "j"},
              headers={"Authorization": f"Bearer {fake.token}"}, timeout=5)
    first, second = fake.wait_for_call("users.info", count=2)
    assert first.params == {"user": "U0ALICE"} and first.http_method == "POST"
    assert first.headers["authorization"] == "Bearer <redacted>"
    assert first.authorized and not first.token_in_body and not first.token_in_url
    assert first.status == 200 and first.response is not None
    assert first.response["user"]["name"] == "alice"
    assert second.http_method == "GET" and not second.authorized and second.token_in_url
    assert second.params == {"user": "U0BOB", "token": "<redacted>"}
    assert second.query == "user=U0BOB&token=<redacted>"
    (posted,) = fake.wait_for_call("chat.postMessage")
    assert posted.params == {"channel": "C0GENERAL", "text": "j"} and posted.authorized
    assert fake.call_count("users.info") == 2 and fake.call_count() == 3
    assert [c.method for c in fake.calls] == ["users.info", "users.info", "chat.postMessage"]
    everything = repr(fake.calls) + repr(fake) + str([vars(c) for c in fake.calls])
    assert fake.token not in everything
    with pytest.raises(TimeoutError, match=r"3 call.*users\.info.*got 2"):
        fake.wait_for_call("users.info", count=3, timeout=0.05)
    body = http.post(fake.api_url + "api.test", data={"token": fake.token}, timeout=5)
    assert body.json()["args"] == {"token": "<redacted>"}
    assert fake.calls[-1].token_in_body and not fake.calls[-1].token_in_url
    assert isinstance(fake.calls[-1], ApiCall) and fake.calls[-1].time <= time.monotonic()


def test_rtm_connect_and_rtm_start(fake: FakeSlack, http: requests.Session) -> None:
    first = ok(http, fake, "rtm.connect")
    assert first["url"].startswith(f"ws://127.0.0.1:{fake.port}/rtm/")
    assert first["team"] == {"id": "T0FAKE", "name": "Fake Workspace", "domain": "fakeslack"}
    assert first["self"] == {"id": "U0BOT", "name": "fakebot"}
    assert ok(http, fake, "rtm.connect")["url"] != first["url"]
    start = ok(http, fake, "rtm.start", batch_presence_aware=1)
    assert start["self"]["prefs"] == {} and start["self"]["id"] == "U0BOT"
    assert start["team"]["id"] == "T0FAKE" and "prefs" in start["team"]
    assert start["groups"] == [] and start["ims"] == []
    assert {u["name"] for u in start["users"]} >= {"fakebot", "alice", "bob", "carol"}
    assert {c["name"] for c in start["channels"]} >= {"general", "random", "timecard"}
    assert start["bots"][0]["id"] == "B0BOT"
    ws = websocket.create_connection(start["url"], timeout=5, http_no_proxy=["*"])
    assert json.loads(ws.recv()) == {"type": "hello"}
    conn = fake.wait_for_connections()[0]
    assert conn.method == "rtm.start" and conn.params == {"batch_presence_aware": "1"}
    ws.close()


def test_chat_post_message(fake: FakeSlack, http: requests.Session) -> None:
    url = ok(http, fake, "rtm.connect")["url"]
    ws = websocket.create_connection(url, timeout=5, http_no_proxy=["*"])
    assert json.loads(ws.recv())["type"] == "hello"
    data = ok(http, fake, "chat.postMessage", channel="#general", text="hello", thread_ts="1.2")
    assert data["channel"] == "C0GENERAL" and data["message"]["text"] == "hello"
    assert data["message"]["ts"] == data["ts"] and data["message"]["thread_ts"] == "1.2"
    event = json.loads(ws.recv())
    assert event["type"] == "message" and event["ts"] == data["ts"]
    assert event["user"] == fake.bot_user_id and event["channel"] == "C0GENERAL"
    assert fake.messages("general")[0]["text"] == "hello"
    assert error(call(http, fake, "chat.postMessage", channel="C0NOPE", text="x")) == \
        "channel_not_found"
    assert error(call(http, fake, "chat.postMessage", channel="C0GENERAL")) == "no_text"
    blocks = ok(http, fake, "chat.postMessage", channel="C0GENERAL",
                blocks=json.dumps([{"type": "section"}]))
    assert blocks["message"]["blocks"] == [{"type": "section"}]
    ws.close()


def walk(http: requests.Session, slack: FakeSlack, method: str, key: str,
         **params: Any) -> List[Dict[str, Any]]:
    items: List[Dict[str, Any]] = []
    cursor = ""
    for _ in range(50):
        data = ok(http, slack, method, cursor=cursor, **params)
        items.extend(data[key])
        cursor = data["response_metadata"]["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("pagination never ended")


@pytest.mark.parametrize("method", ["conversations.list", "channels.list"])
def test_channel_pagination(fake: FakeSlack, http: requests.Session, method: str) -> None:
    everything = ok(http, fake, method)
    assert everything["response_metadata"] == {"next_cursor": ""}
    names = [c["name"] for c in everything["channels"]]
    assert len(names) >= 5 and names[:3] == ["general", "random", "timecard"]
    first = ok(http, fake, method, limit=2)
    assert len(first["channels"]) == 2 and first["response_metadata"]["next_cursor"]
    assert [c["name"] for c in walk(http, fake, method, "channels", limit=2)] == names
    by_name = {c["name"]: c for c in everything["channels"]}
    assert by_name["general"]["is_member"] and by_name["timecard"]["is_member"]
    assert not by_name["random"]["is_member"]
    assert error(call(http, fake, method, cursor="garbage!")) == "invalid_cursor"


def test_private_channels_and_types(fake: FakeSlack, http: requests.Session) -> None:
    secret = fake.add_channel("secret", is_member=True, is_private=True)
    public = [c["id"] for c in ok(http, fake, "conversations.list")["channels"]]
    assert secret not in public
    private = ok(http, fake, "conversations.list", types="private_channel")["channels"]
    assert [c["id"] for c in private] == [secret]
    both = ok(http, fake, "conversations.list", types="public_channel,private_channel")
    assert len(both["channels"]) == len(public) + 1


def test_users(fake: FakeSlack, http: requests.Session) -> None:
    alice = ok(http, fake, "users.info", user="U0ALICE")["user"]
    assert alice["name"] == "alice" and alice["is_bot"] is False
    assert ok(http, fake, "users.info", user="U0BOT")["user"]["is_bot"] is True
    assert error(call(http, fake, "users.info", user="U0NOBODY")) == "user_not_found"
    members = walk(http, fake, "users.list", "members", limit=1)
    assert [u["name"] for u in members] == ["fakebot", "alice", "bob", "carol"]
    dave = fake.add_user("dave", real_name="Dave Doe", presence="away")
    assert ok(http, fake, "users.info", user=dave)["user"]["real_name"] == "Dave Doe"
    assert fake.user_id("dave") == dave and fake.users[-1]["id"] == dave


def test_presence(fake: FakeSlack, http: requests.Session) -> None:
    def presence(user: Optional[str] = None) -> str:
        params = {"user": user} if user else {}
        return str(ok(http, fake, "users.getPresence", **params)["presence"])

    assert presence("U0ALICE") == "active" and presence("U0CAROL") == "away"
    assert presence() == "away"  # the bot, with no RTM connection open
    url = ok(http, fake, "rtm.connect")["url"]
    ws = websocket.create_connection(url, timeout=5, http_no_proxy=["*"])
    fake.wait_for_connections()
    assert presence() == "active"
    fake.set_presence("U0ALICE", "away")
    assert presence("U0ALICE") == "away"
    with pytest.raises(ValueError):
        fake.set_presence("U0ALICE", "busy")
    assert error(call(http, fake, "users.getPresence", user="U0X")) == "user_not_found"
    ws.close()


def test_conversations_info_history_members_join(fake: FakeSlack, http: requests.Session) -> None:
    assert ok(http, fake, "conversations.info", channel="C0RANDOM")["channel"]["name"] == "random"
    for text in ("one", "two", "three"):
        fake.post_message("random", text)
    history = ok(http, fake, "conversations.history", channel="C0RANDOM", limit=2)
    assert [m["text"] for m in history["messages"]] == ["three", "two"] and history["has_more"]
    members = ok(http, fake, "conversations.members", channel="C0RANDOM")["members"]
    assert members == ["U0ALICE", "U0BOB", "U0CAROL"]
    joined = ok(http, fake, "conversations.join", channel="C0RANDOM")
    assert joined["channel"]["is_member"] and fake.members("random")[-1] == "U0BOT"
    assert ok(http, fake, "conversations.join", channel="C0RANDOM")["warning"] == \
        "already_in_channel"
    ts = fake.messages("random")[0]["ts"]
    ok(http, fake, "reactions.add", channel="C0RANDOM", timestamp=ts, name="tada")
    assert fake.messages("random")[0]["reactions"] == [
        {"name": "tada", "users": ["U0BOT"], "count": 1}]
    assert error(call(http, fake, "reactions.add", channel="C0RANDOM", timestamp="9.9",
                      name="x")) == "message_not_found"
    assert error(call(http, fake, "conversations.info", channel="C0NOPE")) == \
        "channel_not_found"


def test_workspace_accessors(fake: FakeSlack) -> None:
    assert fake.channel_id("general") == fake.channel_id("#general") == "C0GENERAL"
    assert fake.user_id("alice") == "U0ALICE" and fake.bot_user_id == "U0BOT"
    assert fake.team_id == "T0FAKE" and fake.bot_id == "B0BOT"
    with pytest.raises(KeyError):
        fake.channel_id("nope")
    with pytest.raises(KeyError):
        fake.user_id("nobody")
    channels = fake.channels
    channels[0]["name"] = "changed"
    assert fake.channels[0]["name"] == "general"
    new = fake.add_channel("new-one", members=["alice", "U0BOB"])
    assert fake.members(new) == ["U0ALICE", "U0BOB"]
    assert fake.channels[-1]["is_member"] is False
    assert fake.add_channel("new-one") != new  # a second channel, another id


# -- faults ----------------------------------------------------------------------------------
def test_fail_next_ratelimited(fake: FakeSlack, http: requests.Session) -> None:
    fake.fail_next("rtm.connect")
    assert error(call(http, fake, "rtm.connect")) == "ratelimited"
    assert ok(http, fake, "rtm.connect")
    fake.fail_next("rtm.connect", status=429, retry_after=1, times=2)
    for _ in range(2):
        resp = call(http, fake, "rtm.connect")
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
        assert resp.json() == {"ok": False, "error": "ratelimited"}
    assert ok(http, fake, "rtm.connect")
    fake.fail_next("rtm.connect", status=429, retry_after=0.2)
    assert call(http, fake, "rtm.connect").headers["Retry-After"] == "0.2"
    assert fake.calls[-1].status == 429


def test_fail_next_errors_and_500(fake: FakeSlack, http: requests.Session) -> None:
    fake.fail_next("rtm.connect", "invalid_auth")
    assert error(call(http, fake, "rtm.connect")) == "invalid_auth"
    fake.fail_next("auth.test", status=500)
    resp = call(http, fake, "auth.test")
    assert resp.status_code == 500 and resp.headers["Content-Type"].startswith("text/plain")
    assert fake.calls[-1].response is None
    fake.fail_next("users.list", "fatal_error", status=503)
    assert call(http, fake, "users.list").text == "fatal_error"
    assert ok(http, fake, "auth.test") and ok(http, fake, "users.list")
    with pytest.raises(ValueError):
        fake.fail_next("auth.test", times=0)


def test_fail_next_delay(fake: FakeSlack, http: requests.Session) -> None:
    fake.fail_next("rtm.connect", delay=0.3)
    t0 = time.monotonic()
    assert ok(http, fake, "rtm.connect")  # slow, then answered normally
    assert time.monotonic() - t0 >= 0.3
    fake.fail_next("rtm.connect", delay=5.0)
    with pytest.raises(requests.Timeout):
        http.post(fake.api_url + "rtm.connect", timeout=0.2,
                  headers={"Authorization": f"Bearer {fake.token}"})
    fake.wait_for_call("rtm.connect", count=2)  # recorded on arrival, before the answer
    fake.fail_next("rtm.connect", "ratelimited", delay=0.1)
    assert error(call(http, fake, "rtm.connect")) == "ratelimited"


def test_fail_next_websocket_handshake(fake: FakeSlack, http: requests.Session) -> None:
    fake.fail_next("websocket")
    url = ok(http, fake, "rtm.connect")["url"]
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(url, timeout=5, http_no_proxy=["*"])
    assert info.value.status_code == 503
    assert fake.handshake_attempts == 1 and fake.connect_count == 0


def test_json_body_and_chunked_body(fake: FakeSlack, http: requests.Session) -> None:
    headers = {"Authorization": f"Bearer {fake.token}"}
    resp = http.post(fake.api_url + "users.info", json={"user": "U0BOB"}, headers=headers,
                     timeout=5)
    assert resp.json()["user"]["name"] == "bob"
    chunked = http.post(fake.api_url + "users.info", data=iter([b"user=", b"U0CAROL"]),
                        headers=dict(headers, **{"Content-Type":
                                                 "application/x-www-form-urlencoded"}),
                        timeout=5)
    assert chunked.json()["user"]["name"] == "carol"
    bad = http.post(fake.api_url + "users.info", data=b"{not json",
                    headers=dict(headers, **{"Content-Type": "application/json"}), timeout=5)
    assert error(bad) == "invalid_json"
    assert http.get(f"http://127.0.0.1:{fake.port}/elsewhere", timeout=5).status_code == 404
