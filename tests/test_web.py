"""WebClient and SlackResponse against small loopback HTTP servers."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterator

import pytest
import requests

from slackrtm.errors import ErrorCode, RateLimitedError, SlackApiError, SlackHTTPError
from slackrtm.web import (
    DEFAULT_BASE_URL,
    ApiMethod,
    SlackResponse,
    WebClient,
    _retry_after,
    encode_params,
)
from tests.test_web_servers import HangingServer, RecordingServer, Reply, Seen, refused_port

TOKEN = "tok-SECRET-0123456789"  # not xox-shaped: redaction must come from the client itself
PROXY_ENV = ["http_proxy", "https_proxy", "all_proxy", "no_proxy",
             "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SLACK_API_URL"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as srv:
        yield srv


@pytest.fixture
def web(server: RecordingServer) -> Iterator[WebClient]:
    with WebClient(TOKEN, base_url=server.url) as client:
        yield client


def test_form_encoding_values_and_bearer_header(server: RecordingServer, web: WebClient) -> None:
    web.api_call("chat.postMessage", channel="C1", text="héllo & a=b", as_user=True,
                 unfurl_links=False, blocks=[{"type": "divider"}], metadata={"a": 1},
                 thread_ts=None, limit=5, ratio=0.5)
    (seen,) = server.seen
    assert seen.method == "POST"
    assert seen.path == "/api/chat.postMessage"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.form == {"channel": "C1", "text": "héllo & a=b", "as_user": "true",
                         "unfurl_links": "false", "blocks": '[{"type":"divider"}]',
                         "metadata": '{"a":1}', "limit": "5", "ratio": "0.5"}
    assert json.loads(seen.form["blocks"]) == [{"type": "divider"}]
    assert TOKEN not in seen.path and TOKEN.encode() not in seen.body
    assert seen.headers["User-Agent"].startswith("slackrtm/")


def test_a_param_named_method(server: RecordingServer, web: WebClient) -> None:
    web.api_call("apps.event.authorizations.list", method="x")
    assert server.seen[0].form == {"method": "x"}


def test_token_param_is_sent_as_the_header_only(server: RecordingServer, web: WebClient) -> None:
    web.api_call("auth.test", token="tok-OTHER")
    (seen,) = server.seen
    assert seen.headers["Authorization"] == "Bearer tok-OTHER"
    assert seen.form == {}


def test_no_token_no_authorization_header(server: RecordingServer) -> None:
    with WebClient(base_url=server.url) as web:
        web.api_call("api.test")
    assert "Authorization" not in server.seen[0].headers


def test_encode_params() -> None:
    assert encode_params({"a": True, "b": False, "c": None, "d": [1, "x"], "e": (1,),
                          "f": b"by", "g": 3}) == {
        "a": "true", "b": "false", "d": '[1,"x"]', "e": "[1]", "f": "by", "g": "3"}


def test_namespaces_at_any_depth(server: RecordingServer, web: WebClient) -> None:
    web.users.getPresence(user="U1")
    web.chat.postMessage(channel="C1", text="t")
    web.conversations.list()
    web.admin.users.session.list(limit=1)
    assert [s.path for s in server.seen] == [
        "/api/users.getPresence", "/api/chat.postMessage", "/api/conversations.list",
        "/api/admin.users.session.list"]
    assert server.seen[0].form == {"user": "U1"}
    ns = web.admin.users.session
    assert isinstance(ns, ApiMethod)
    assert "admin.users.session" in repr(ns) and TOKEN not in repr(ns)
    with pytest.raises(AttributeError):
        web._nope  # noqa: B018
    with pytest.raises(AttributeError):
        ns.__wrapped__  # noqa: B018


def test_method_names_are_checked(web: WebClient) -> None:
    for bad in ["", "../admin", "chat.postMessage?x=1", "a b", "a/b"]:
        with pytest.raises(ValueError):
            web.api_call(bad)


def test_response_reads_like_a_dict(server: RecordingServer, web: WebClient) -> None:
    server.responder = lambda seen: Reply(body={"ok": True, "user": {"id": "U1"}},
                                          headers={"X-Slack-Req": "r1"})
    resp = web.users.info(user="U1")
    assert isinstance(resp, SlackResponse)
    assert resp["user"] == {"id": "U1"} and resp.get("ok") is True
    assert resp.get("missing", 7) == 7 and resp.get("missing") is None
    assert "user" in resp and "nope" not in resp
    assert resp.data == {"ok": True, "user": {"id": "U1"}}
    assert resp.status_code == 200
    assert resp.headers["x-slack-req"] == "r1"
    assert resp.validate() is resp
    assert list(resp) == [resp]  # no cursor: one page
    assert "users.info" in repr(resp) and "200" in repr(resp) and TOKEN not in repr(resp)
    with pytest.raises(KeyError):
        resp["nope"]


def test_iteration_follows_cursors_with_the_same_params(server: RecordingServer,
                                                        web: WebClient) -> None:
    pages = {"": ("C1", "cur1"), "cur1": ("C2", "cur2"), "cur2": ("C3", "")}

    def respond(seen: Seen) -> Reply:
        channel, cursor = pages[seen.form.get("cursor", "")]
        return Reply(body={"ok": True, "channels": [{"id": channel}],
                           "response_metadata": {"next_cursor": cursor}})

    server.responder = respond
    got = [page["channels"][0]["id"] for page in web.conversations.list(limit=1, types=["a"])]
    assert got == ["C1", "C2", "C3"]
    forms = [s.form for s in server.seen]
    assert forms == [{"limit": "1", "types": '["a"]'},
                     {"limit": "1", "types": '["a"]', "cursor": "cur1"},
                     {"limit": "1", "types": '["a"]', "cursor": "cur2"}]
    assert {s.path for s in server.seen} == {"/api/conversations.list"}
    assert {s.headers["Authorization"] for s in server.seen} == {f"Bearer {TOKEN}"}


def test_ok_false_raises_slack_api_error(server: RecordingServer, web: WebClient) -> None:
    server.responder = lambda seen: Reply(body={"ok": False, "error": "channel_not_found"})
    with pytest.raises(SlackApiError) as info:
        web.chat.postMessage(channel="C404", text="x")
    err = info.value
    assert err.error == "channel_not_found" and err.code is ErrorCode.PlatformAPIError
    assert "chat.postMessage" in str(err) and "channel_not_found" in str(err)
    assert isinstance(err.response, SlackResponse) and err.response["ok"] is False
    assert len(server.seen) == 1


def test_429_is_retried_after_retry_after(server: RecordingServer) -> None:
    replies = [Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0.1"}),
               Reply(429, {"ok": False}, {"Retry-After": "0.05"}),
               Reply(body={"ok": True, "n": 3})]
    server.responder = lambda seen: replies.pop(0)
    records: list[tuple[str, str]] = []
    with WebClient(TOKEN, base_url=server.url, max_rate_limit_retries=2,
                   logger=lambda level, msg: records.append((level, msg))) as web:
        started = time.monotonic()
        resp = web.api_call("users.list")
        elapsed = time.monotonic() - started
    assert resp["n"] == 3 and len(server.seen) == 3
    assert elapsed >= 0.15
    warns = [msg for level, msg in records if level == "warn"]
    assert len(warns) == 2 and all("users.list" in m and "429" in m for m in warns)


def test_429_exhausted_raises_rate_limited(server: RecordingServer) -> None:
    server.responder = lambda seen: Reply(429, {"ok": False}, {"Retry-After": "0.01"})
    with WebClient(TOKEN, base_url=server.url, max_rate_limit_retries=2) as web, \
            pytest.raises(RateLimitedError) as info:
        web.api_call("users.list")
    assert info.value.retry_after == pytest.approx(0.01)
    assert info.value.code is ErrorCode.RateLimitedError and "users.list" in str(info.value)
    assert len(server.seen) == 3


def test_429_without_retries_raises_at_once(server: RecordingServer, web: WebClient) -> None:
    server.responder = lambda seen: Reply(429, {"ok": False}, {"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        web.call("rtm.connect", {"batch_presence_aware": True}, rate_limit_retries=0)
    assert time.monotonic() - started < 2
    assert info.value.retry_after == 30.0 and len(server.seen) == 1
    assert server.seen[0].form == {"batch_presence_aware": "true"}


def test_retry_after_parsing() -> None:
    assert _retry_after({"Retry-After": "2.5"}) == 2.5
    assert _retry_after({"Retry-After": "0"}) == 0.0
    for bad in [{}, {"Retry-After": "soon"}, {"Retry-After": "-3"}, {"Retry-After": "inf"},
                {"Retry-After": "nan"}]:
        assert _retry_after(bad) == 1.0


def test_missing_retry_after_means_one_second(server: RecordingServer, web: WebClient) -> None:
    server.responder = lambda seen: Reply(429, {"ok": False})
    with pytest.raises(RateLimitedError) as info:
        web.call("rtm.connect", rate_limit_retries=0)
    assert info.value.retry_after == 1.0


def test_http_500_is_not_retried(server: RecordingServer, web: WebClient) -> None:
    server.responder = lambda seen: Reply(500, b"<html>oops</html>")
    with pytest.raises(SlackHTTPError) as info:
        web.chat.postMessage(channel="C1", text="x")
    assert info.value.status_code == 500 and info.value.code is ErrorCode.HTTPError
    assert "chat.postMessage" in str(info.value) and "500" in str(info.value)
    assert len(server.seen) == 1


def test_non_json_200_is_an_http_error(server: RecordingServer, web: WebClient) -> None:
    server.responder = lambda seen: Reply(200, b"<html>captive portal</html>")
    with pytest.raises(SlackHTTPError) as info:
        web.auth.test()
    assert info.value.status_code == 200


def test_connection_refused(web: WebClient) -> None:
    sock = refused_port()
    try:
        with WebClient(TOKEN, base_url=f"http://127.0.0.1:{sock.getsockname()[1]}/api",
                       max_retries=0) as w:
            started = time.monotonic()
            with pytest.raises(SlackHTTPError) as info:
                w.auth.test()
    finally:
        sock.close()
    assert info.value.status_code is None and time.monotonic() - started < 3
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert "auth.test" in str(info.value)


def test_timeout() -> None:
    with HangingServer() as hang, \
            WebClient(TOKEN, base_url=f"http://127.0.0.1:{hang.port}/", timeout=0.3) as web:
        started = time.monotonic()
        with pytest.raises(SlackHTTPError) as info:
            web.auth.test()
        elapsed = time.monotonic() - started
    assert info.value.status_code is None and "timed out" in str(info.value)
    assert isinstance(info.value.__cause__, requests.Timeout)
    assert 0.25 <= elapsed < 3
    assert hang.hung.is_set()


def test_base_url(server: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert WebClient(TOKEN).base_url == DEFAULT_BASE_URL == "https://slack.com/api/"
    monkeypatch.setenv("SLACK_API_URL", server.url.rstrip("/"))
    with WebClient(TOKEN) as web:
        assert web.base_url == server.url
        web.auth.test()
    assert server.seen[0].path == "/api/auth.test"
    assert WebClient(base_url="http://h:1/x").base_url == "http://h:1/x/"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        WebClient(base_url="ftp://example.com/api/")
    with pytest.raises(ValueError):
        WebClient(timeout=0)
    with pytest.raises(ValueError):
        WebClient(max_rate_limit_retries=-1)


def test_logging_debug_per_call_and_quiet_at_info(server: RecordingServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="slackrtm")
    with WebClient(TOKEN, base_url=server.url) as web:
        web.chat.postMessage(channel="C1", text="very private text")
    assert caplog.records == []  # default level INFO: nothing when all is well
    with WebClient(TOKEN, base_url=server.url, log_level=logging.DEBUG) as web:
        web.chat.postMessage(channel="C1", text="very private text")
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG and record.name == "slackrtm.web"
    assert "chat.postMessage" in record.getMessage() and "200" in record.getMessage()
    assert "very private text" not in record.getMessage()


class _CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.closed = False

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent += 1
        return super().send(request, **kwargs)

    def close(self) -> None:
        self.closed = True
        super().close()


def test_given_session_is_used_as_is(server: RecordingServer) -> None:
    session = _CountingSession()
    with WebClient(TOKEN, base_url=server.url, session=session) as web:
        assert web.session is session
        web.auth.test()
    assert session.sent == 1 and not session.closed
    session.close()
    with pytest.raises(ValueError):
        WebClient(TOKEN, session=session, proxy="http://127.0.0.1:3128")


def test_close_releases_connections(server: RecordingServer) -> None:
    web = WebClient(TOKEN, base_url=server.url)
    web.auth.test()
    adapter = web.session.get_adapter(server.url)
    assert len(adapter.poolmanager.pools) == 1  # type: ignore[attr-defined]
    web.close()
    assert len(adapter.poolmanager.pools) == 0  # type: ignore[attr-defined]
