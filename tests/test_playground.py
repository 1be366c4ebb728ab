"""The playground's server side over real HTTP: authentication, the event stream, the
actions (people, the app's answers, faults), edits and deletes in FakeSlack and its Web
API, and the ``fake-slack post|react|slash`` verbs against a running fake."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
import requests

from slackrtm import SlackApiError, SocketModeRequest, WebClient
from slackrtm.testing import FakeSlack, Playground
from tests.conftest import wait_until

WAIT = 30.0


@pytest.fixture
def playground(slack: FakeSlack) -> Playground:
    return Playground(slack)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def control(http: requests.Session, pg: Playground, action: str,
            **params: Any) -> requests.Response:
    return http.post(f"{pg.base_url}/_control/{action}", json=params, timeout=WAIT,
                     headers={"Authorization": f"Bearer {pg.admin_token}"})


def ok(http: requests.Session, pg: Playground, action: str, **params: Any) -> Dict[str, Any]:
    answer = control(http, pg, action, **params)
    assert answer.status_code == 200, answer.text
    data: Dict[str, Any] = answer.json()
    assert data["ok"] is True, data
    return data


class Stream:
    """The page's event stream, read on a thread; :meth:`next` finds items in any order."""

    def __init__(self, http: requests.Session, pg: Playground) -> None:
        self.response = http.get(f"{pg.base_url}/playground/api/stream", stream=True,
                                 timeout=(WAIT, WAIT), cookies={f"fakeslack_{pg.slack.port}":
                                                               pg.admin_token})
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.items: List[Tuple[str, Any]] = []
        self.used: Set[int] = set()
        self.ended = False
        self.raw: List[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        kind = ""
        try:
            # one byte at a time: larger chunks wait for bytes that have not come yet
            for line in self.response.iter_lines(chunk_size=1, decode_unicode=True):
                with self.cond:
                    self.raw.append(line)
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        self.items.append((kind, json.loads(line[6:])))
                    self.cond.notify_all()
        except (requests.RequestException, OSError, ValueError):
            pass
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def next(self, kind: str, match: Any = lambda data: True) -> Any:
        """The first item of ``kind`` matching ``match`` not returned before (waits)."""
        deadline = time.monotonic() + WAIT
        with self.cond:
            while True:
                for index, (k, data) in enumerate(self.items):
                    if index not in self.used and k == kind and match(data):
                        self.used.add(index)
                        return data
                left = deadline - time.monotonic()
                assert left > 0 and not self.ended, \
                    f"no matching {kind} item (ended: {self.ended}); got {self.items[-10:]}"
                self.cond.wait(left)

    def close(self) -> None:
        self.response.close()


# -- who may do what -------------------------------------------------------------------------
def test_the_control_endpoint_and_the_page_need_the_admin_token(
        slack: FakeSlack, playground: Playground, http: requests.Session) -> None:
    base = playground.base_url
    assert http.post(f"{base}/_control/post", json={}, timeout=WAIT).status_code == 401
    wrong = http.post(f"{base}/_control/post", json={}, timeout=WAIT,
                      headers={"Authorization": f"Bearer {slack.token}"})
    assert wrong.status_code == 401 and "SLACK_FAKE_ADMIN_TOKEN" in wrong.json()["error"]
    # a page, a stream or an action without the cookie
    assert http.get(f"{base}/playground/", timeout=WAIT).status_code == 403
    assert http.get(f"{base}/playground/api/stream", timeout=WAIT).status_code == 403
    assert http.get(f"{base}/playground/?key=wrong", timeout=WAIT).status_code == 403
    # the printed URL trades the key for a cookie the page's script cannot read
    first = http.get(playground.url, allow_redirects=False, timeout=WAIT)
    assert first.status_code == 303 and first.headers["Location"] == "/playground/"
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = http.get(f"{base}/playground/", timeout=WAIT)
    assert page.status_code == 200 and "<title>FakeSlack playground</title>" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "https://" not in page.text  # nothing from elsewhere: it works offline
    # the page's actions also need a header a cross-site form cannot send
    action = {"as": "bob", "channel": "#general", "text": "hi"}
    assert http.post(f"{base}/playground/api/post", json=action,
                     timeout=WAIT).status_code == 403
    done = http.post(f"{base}/playground/api/post", json=action, timeout=WAIT,
                     headers={"X-Playground": "1"})
    assert done.status_code == 200 and done.json()["ok"], done.text
    # a page under another name (DNS rebinding) gets nothing
    assert http.get(f"{base}/playground/", headers={"Host": f"evil.example:{slack.port}"},
                    timeout=WAIT).status_code == 421
    for name in ("app.js", "app.css"):
        assert http.get(f"{base}/playground/static/{name}", timeout=WAIT).status_code == 200
    assert http.get(f"{base}/playground/static/..%2Fslack.py", timeout=WAIT).status_code == 404
    assert [m["text"] for m in slack.messages("general")] == ["hi"]


def test_without_web_only_the_control_endpoint_is_served(slack: FakeSlack,
                                                         http: requests.Session) -> None:
    pg = Playground(slack, web=False, admin_token="fsadmin-fixed")
    assert http.get(pg.url, timeout=WAIT).status_code == 404
    assert ok(http, pg, "post", **{"as": "carol", "channel": "random", "text": "x"})["ts"]
    with pytest.raises(RuntimeError, match="already has a playground"):
        Playground(slack)


# -- the stream ------------------------------------------------------------------------------
def test_the_stream_starts_with_a_snapshot_then_brings_every_change(
        slack: FakeSlack, playground: Playground, http: requests.Session, make: Any) -> None:
    slack.post_message("general", "before", user="U0BOB")
    stream = Stream(http, playground)
    try:
        snap = stream.next("snapshot")
        assert snap["bot"] == "U0BOT" and snap["team"]["name"] == "Fake Workspace"
        assert [m["text"] for m in snap["messages"]["C0GENERAL"]] == ["before"]
        assert {u["name"] for u in snap["users"]} >= {"alice", "bob", "carol", "fakebot"}
        general = next(c for c in snap["channels"] if c["name"] == "general")
        assert "U0BOT" in general["members"]
        rtm = make()
        rtm.start().result(timeout=WAIT)
        posted = ok(http, playground, "post", **{"as": "alice", "channel": "#general",
                                                 "text": "hi @bob, see #random"})
        event = stream.next("event", lambda e: e.get("ts") == posted["ts"])
        assert event["text"] == "hi <@U0BOB>, see <#C0RANDOM|random>"
        assert event["user"] == "U0ALICE"
        # the frames in and out are in the log, tokens redacted
        stream.next("log", lambda e: e["what"] == "message" and e["dir"] == "out")
        reply = rtm.send_message("pong", "C0GENERAL").result(timeout=WAIT)
        stream.next("log", lambda e: e["what"] == "message" and e["dir"] == "in")
        stream.next("log", lambda e: e["what"] == "reply" and reply["ts"] in e["text"])
        stream.next("log", lambda e: e["kind"] == "api" and e["what"] == "rtm.connect")
        WebClient(slack.token, slack_api_url=slack.api_url).chat.postMessage(
            channel="C0GENERAL", text="with a token in it: " + slack.token)
        stream.next("log", lambda e: e["what"] == "chat.postMessage")
        rtm.disconnect()
        stream.next("log", lambda e: e["what"] == "closed")
        stream.next("conns", lambda e: e.get("open") is False)
    finally:
        stream.close()
    text = "\n".join(stream.raw)
    for secret in (slack.token, slack.app_token, playground.admin_token):
        assert secret not in text
    assert "<redacted>" in text


def test_closing_the_fake_ends_the_streams_at_once(http: requests.Session) -> None:
    slack = FakeSlack()
    pg = Playground(slack)
    stream = Stream(http, pg)
    stream.next("snapshot")
    started = time.monotonic()
    slack.close()
    stream.thread.join(WAIT)
    assert not stream.thread.is_alive()
    assert time.monotonic() - started < 5  # not after a keep-alive period
    assert slack.threads == [] and slack.errors == []


# -- people's actions ------------------------------------------------------------------------
def test_react_edit_delete_presence_join_leave(slack: FakeSlack, playground: Playground,
                                               http: requests.Session, make: Any) -> None:
    rtm = make()
    seen: List[Dict[str, Any]] = []
    rtm.on("slack_event", lambda kind, event: seen.append(event))
    rtm.start().result(timeout=WAIT)
    rtm.subscribe_presence(["U0CAROL"]).result(timeout=WAIT)
    slack.wait_until(lambda: all("U0CAROL" in c.presence_subscriptions
                                 for c in slack.connections), timeout=WAIT)
    ts = ok(http, playground, "post", **{"as": "bob", "channel": "general", "text": "typo"})["ts"]
    ok(http, playground, "react", **{"as": "carol", "channel": "general", "ts": ts,
                                     "name": ":tada:"})
    assert slack.messages("general")[0]["reactions"] == [
        {"name": "tada", "users": ["U0CAROL"], "count": 1}]
    ok(http, playground, "react", **{"as": "carol", "channel": "general", "ts": ts,
                                     "name": "tada", "remove": True})
    ok(http, playground, "edit", **{"as": "bob", "channel": "general", "ts": ts,
                                    "text": "fixed @alice"})
    (msg,) = slack.messages("general")
    assert msg["text"] == "fixed <@U0ALICE>" and msg["edited"]["user"] == "U0BOB"
    ok(http, playground, "delete", channel="general", ts=ts)
    assert slack.messages("general") == []
    ok(http, playground, "presence", user="carol", presence="active")
    assert slack.presence("carol") == "active"
    ok(http, playground, "join", user="carol", channel="#dev")
    assert "U0CAROL" in slack.members("dev")
    ok(http, playground, "leave", user="carol", channel="#dev")
    assert "U0CAROL" not in slack.members("dev")
    im = ok(http, playground, "open_im", user="alice")["channel"]
    assert im.startswith("D")
    wait_until(lambda: any(e.get("type") == "im_created" for e in seen), WAIT, "im_created")
    kinds = [(e.get("type"), e.get("subtype")) for e in seen]
    for expected in [("message", None), ("reaction_added", None), ("reaction_removed", None),
                     ("message", "message_changed"), ("message", "message_deleted"),
                     ("presence_change", None), ("member_joined_channel", None),
                     ("member_left_channel", None)]:
        assert expected in kinds, (expected, kinds)
    changed = next(e for e in seen if e.get("subtype") == "message_changed")
    assert changed["message"]["ts"] == ts and changed["previous_message"]["text"] == "typo"
    deleted = next(e for e in seen if e.get("subtype") == "message_deleted")
    assert deleted["deleted_ts"] == ts and deleted["hidden"] is True


@pytest.mark.parametrize("action, params, error", [
    ("post", {"channel": "#nowhere", "text": "x"}, "no channel '#nowhere'"),
    ("post", {"as": "zed", "channel": "#general", "text": "x"}, "no user 'zed'"),
    ("post", {"channel": "#general"}, "text is required"),
    ("react", {"channel": "#general", "ts": "1.2", "name": "x"}, "no message '1.2'"),
    ("presence", {"user": "bob", "presence": "busy"}, "presence must be"),
    ("fault", {"what": "explode"}, "what must be drop"),
    ("nothing", {}, "unknown action 'nothing'"),
    ("click", {"channel": "#general", "ts": "1.2", "action_id": "a"}, "no message 1.2"),
])
def test_bad_input_is_a_400_saying_what_is_wrong(playground: Playground, http: requests.Session,
                                                 action: str, params: Dict[str, Any],
                                                 error: str) -> None:
    answer = control(http, playground, action, **params)
    assert answer.status_code == 400, answer.text
    assert error in answer.json()["error"]
    bad = http.post(f"{playground.base_url}/_control/post", data=b"[1", timeout=WAIT,
                    headers={"Authorization": f"Bearer {playground.admin_token}"})
    assert bad.status_code == 400 and "JSON object" in bad.json()["error"]


# -- the app's answers: slash commands, buttons, response_url -------------------------------
def test_slash_command_ack_payloads_show_as_slack_shows_them(
        slack: FakeSlack, playground: Playground, http: requests.Session, smake: Any) -> None:
    client = smake()

    @client.on("slash_commands")
    def answer(request: SocketModeRequest) -> None:
        if request.payload["text"] == "loud":
            request.ack({"text": "for everyone", "response_type": "in_channel"})
        else:
            request.ack({"text": "just for you"})

    client.start().result(timeout=WAIT)
    stream = Stream(http, playground)
    try:
        stream.next("snapshot")
        ok(http, playground, "slash", **{"as": "bob", "channel": "#general",
                                         "command": "/echo loud"})
        wait_until(lambda: [m["text"] for m in slack.messages("general")] == ["for everyone"],
                   WAIT, "the in_channel answer posted")
        assert slack.messages("general")[0]["user"] == slack.bot_user_id
        sent = ok(http, playground, "slash", **{"as": "bob", "channel": "#general",
                                                "command": "/echo", "text": "quiet"})
        note = stream.next("note", lambda n: n["kind"] == "ephemeral")
        assert (note["text"], note["user"], note["channel"]) == ("just for you", "U0BOB",
                                                                 "C0GENERAL")
        stream.next("note", lambda n: n["kind"] == "ack"
                    and n["envelope_id"] == sent["envelope_id"])
        stream.next("note", lambda n: n["kind"] == "command" and n["text"] == "/echo quiet")
    finally:
        stream.close()
    assert len(slack.messages("general")) == 1  # the ephemeral one was not posted


def test_a_click_sends_block_actions_and_response_url_answers_land(
        slack: FakeSlack, playground: Playground, http: requests.Session, smake: Any) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Ship it?"},
               "accessory": {"type": "button", "action_id": "ship", "value": "v1",
                             "text": {"type": "plain_text", "text": "Ship"}}}]
    web = WebClient(slack.token, slack_api_url=slack.api_url)
    ts = web.chat.postMessage(channel="C0GENERAL", text="Ship it?", blocks=blocks)["ts"]
    clicks: queue.Queue[Dict[str, Any]] = queue.Queue()
    client = smake()
    client.on("interactive", lambda request: clicks.put(request.payload))
    client.start().result(timeout=WAIT)
    ok(http, playground, "click", **{"as": "carol", "channel": "general", "ts": ts,
                                     "action_id": "ship"})
    payload = clicks.get(timeout=WAIT)
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0CAROL" and payload["user"]["username"] == "carol"
    assert payload["container"] == {"type": "message", "message_ts": ts,
                                    "channel_id": "C0GENERAL", "is_ephemeral": False}
    assert payload["channel"] == {"id": "C0GENERAL", "name": "general"}
    assert payload["message"]["ts"] == ts and payload["message"]["blocks"] == blocks
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == \
        ("ship", "b0", "v1", "button")
    assert payload["token"] == slack.verification_token
    # the response_url: replace_original edits the clicked message
    url = payload["response_url"]
    assert url.startswith(playground.base_url + "/actions/")
    with requests.Session() as bot_http:
        bot_http.trust_env = False
        answer = bot_http.post(url, json={"replace_original": True, "text": "Shipped!"},
                               timeout=WAIT)
        assert answer.status_code == 200 and answer.json() == {"ok": True}
        (msg,) = slack.messages("general")
        assert msg["text"] == "Shipped!" and "blocks" not in msg and "edited" in msg
        bot_http.post(url, json={"delete_original": True}, timeout=WAIT)
        assert slack.messages("general") == []
        gone = bot_http.post(playground.base_url + "/actions/T0FAKE/1/2", json={},
                             timeout=WAIT)
        assert gone.status_code == 404
    answer = control(http, playground, "click", channel="general", ts="9.9", action_id="x")
    assert answer.status_code == 400


# -- FakeSlack's edits and deletes over the Web API -----------------------------------------
def test_chat_update_and_chat_delete(slack: FakeSlack) -> None:
    web = WebClient(slack.token, slack_api_url=slack.api_url)
    ts = web.chat.postMessage(channel="C0GENERAL", text="v1")["ts"]
    updated = web.chat.update(channel="C0GENERAL", ts=ts, text="v2")
    assert updated["ts"] == ts and updated["text"] == "v2"
    assert updated["message"]["edited"]["user"] == slack.bot_user_id
    theirs = slack.post_message("general", "mine", user="U0ALICE")["ts"]
    for method, error in ((web.chat.update, "cant_update_message"),
                          (web.chat.delete, "cant_delete_message")):
        with pytest.raises(SlackApiError, match=error):
            method(channel="C0GENERAL", ts=theirs, text="x")
    with pytest.raises(SlackApiError, match="message_not_found"):
        web.chat.delete(channel="C0GENERAL", ts="1.000001")
    assert web.chat.delete(channel="C0GENERAL", ts=ts)["ok"]
    assert [m["text"] for m in slack.messages("general")] == ["mine"]


# -- faults ----------------------------------------------------------------------------------
def test_fault_panel_drop_freeze_goodbye_and_rate_limit(
        slack: FakeSlack, playground: Playground, http: requests.Session, make: Any) -> None:
    rtm = make()
    rtm.start().result(timeout=WAIT)
    assert ok(http, playground, "fault", what="drop")["connections"] == [1]
    slack.wait_for_connect_count(2, timeout=WAIT)
    wait_until(lambda: rtm.ready, WAIT, "ready again")
    assert ok(http, playground, "fault", what="freeze")["connections"] == [2]
    assert slack.connections[0].frozen
    ok(http, playground, "fault", what="unfreeze")
    assert not slack.connections[0].frozen
    assert ok(http, playground, "fault", what="goodbye")["connections"] == [2]
    slack.wait_for_connect_count(3, timeout=WAIT)
    assert ok(http, playground, "fault", what="refresh")["connections"] == []  # no Socket Mode
    ok(http, playground, "fault", what="ratelimit", method="chat.postMessage", retry_after=7)
    answer = requests.post(slack.api_url + "chat.postMessage", timeout=WAIT,
                           data={"channel": "C0GENERAL", "text": "x"},
                           headers={"Authorization": f"Bearer {slack.token}"})
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert answer.json() == {"ok": False, "error": "ratelimited"}


# -- the verbs -------------------------------------------------------------------------------
def test_fake_slack_verbs_drive_a_running_fake(procs: Any) -> None:
    from tests.test_cli import finished, one_error_line
    from tests.test_examples import Proc, child_env

    def cli(*args: str, **env: str) -> Proc:
        proc = Proc(["-m", "slackrtm", *args], child_env(**env))
        procs.append(proc)
        return proc

    server = cli("fake-slack")
    url = server.wait_for_line(r"^  export SLACK_API_URL=(\S+)$", timeout=WAIT)[1]
    admin = server.wait_for_line(r"^  export SLACK_FAKE_ADMIN_TOKEN=(\S+)$", timeout=WAIT)[1]
    server.wait_for_line(r"^  http://127\.0\.0\.1:\d+/playground/\?key=" + re.escape(admin))
    env = {"SLACK_API_URL": url, "SLACK_FAKE_ADMIN_TOKEN": admin}
    code, ts, err = finished(cli("fake-slack", "post", "--as", "bob", "#general", "hi @alice",
                                 **env), timeout=WAIT)
    assert code == 0 and re.fullmatch(r"\d+\.\d+", ts), err
    code, out, err = finished(cli("fake-slack", "react", "#general", ts, "tada", **env),
                              timeout=WAIT)
    assert (code, out) == (0, ""), err
    code, out, err = finished(cli("fake-slack", "slash", "--as", "carol", "#general", "/echo",
                                  "hi", "there", **env), timeout=WAIT)
    assert code == 0 and re.fullmatch(r"[0-9a-f-]{36}", out), err
    assert "no Socket Mode connection is open" in err
    # the fake says what the admin did, like any client's call
    state = requests.get(url.replace("/api/", "/_control/state"), timeout=WAIT,
                         headers={"Authorization": f"Bearer {admin}"}).json()
    (msg,) = state["messages"]["C0GENERAL"]
    assert msg["text"] == "hi <@U0ALICE>" and msg["user"] == "U0BOB"
    assert msg["reactions"] == [{"name": "tada", "users": ["U0ALICE"], "count": 1}]
    # mistakes: one line each
    proc = cli("fake-slack", "post", "#general", "x", SLACK_API_URL=url)
    one_error_line(proc, proc.finish(WAIT), "2", "no admin token: set SLACK_FAKE_ADMIN_TOKEN")
    proc = cli("fake-slack", "post", "#general", "x", SLACK_API_URL=url,
               SLACK_FAKE_ADMIN_TOKEN="fsadmin-wrong")
    one_error_line(proc, proc.finish(WAIT), "1", "refused SLACK_FAKE_ADMIN_TOKEN")
    proc = cli("fake-slack", "post", "#nowhere", "x", **env)
    one_error_line(proc, proc.finish(WAIT), "1", "post: FakeSlack has no channel '#nowhere'")
    proc = cli("fake-slack", "post", "#general", "x", SLACK_API_URL="https://slack.com/api/",
               SLACK_FAKE_ADMIN_TOKEN=admin)
    one_error_line(proc, proc.finish(WAIT), "2", "must be a FakeSlack's loopback address")
    assert server.interrupt(WAIT) == 0, server.describe()
    assert admin not in server.stderr


@pytest.fixture
def procs() -> Iterator[List[Any]]:
    started: List[Any] = []
    yield started
    for proc in started:
        proc.kill()
