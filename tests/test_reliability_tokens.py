"""Tokens under attack: line endings from files, wrong kinds, errors that could carry them,
HTTP statuses that hide a fatal Slack error, and an address nobody answers at."""

from __future__ import annotations

import logging
import socket
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Callable, List, Set

import pytest

from slackrtm import (
    PlatformError,
    RTMClient,
    SlackApiError,
    SlackHTTPError,
    SocketModeClient,
    WebClient,
)
from slackrtm.testing import FakeSlack
from tests.conftest import FAST, SM_FAST, wait_until

Make = Callable[..., Any]
ENDINGS = ["\n", "\r\n", "\r", " \t\n", "\n\n"]


def _texts(obj: Any, seen: Set[int], depth: int = 0) -> List[str]:
    """Everything an exception (or what hangs off it) can show: str, repr, args, its
    attributes one level down (a request's headers), its cause and its context."""
    if obj is None or id(obj) in seen or depth > 6:
        return []
    seen.add(id(obj))
    out = [str(obj), repr(obj)]
    if isinstance(obj, BaseException):
        for arg in obj.args:
            out.append(repr(arg))
        for value in vars(obj).values():
            out.extend(_texts(value, seen, depth + 1))
        out.extend(_texts(obj.__cause__, seen, depth + 1))
        out.extend(_texts(obj.__context__, seen, depth + 1))
    elif isinstance(obj, dict):
        out.extend(repr(v) for v in obj.values())
    else:
        headers = getattr(obj, "headers", None)
        if headers is not None:
            out.append(repr(dict(headers)))
    return out


def assert_no_token(exc: BaseException, token: str) -> None:
    bare = token.strip()
    for text in _texts(exc, set()):
        assert bare not in text, text
        assert bare[5:] not in text, text


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read(path: Path, text: str) -> str:
    path.write_bytes(text.encode())
    with open(path, newline="") as f:  # newline="": the file's own ending, kept
        return f.read()


@pytest.mark.parametrize("ending", ENDINGS, ids=repr)
def test_tokens_read_from_files_with_any_line_ending_work_everywhere(
        slack: FakeSlack, tmp_path: Path, ending: str) -> None:
    bot = _read(tmp_path / "bot.token", slack.token + ending)
    app = _read(tmp_path / "app.token", slack.app_token + ending)
    assert bot.endswith(ending) and app.endswith(ending)
    with WebClient(bot, base_url=slack.api_url) as web:
        assert web.api_call("auth.test")["ok"] is True
        # a per-call token param read the same way works too
        assert web.api_call("auth.test", token=bot)["ok"] is True
    rtm = RTMClient(bot, **dict(FAST, slack_api_url=slack.api_url))
    sm = SocketModeClient(app, bot_token=bot, **dict(SM_FAST, slack_api_url=slack.api_url))
    try:
        rtm.start().result(timeout=30)
        sm.start().result(timeout=30)
        assert rtm.ready and sm.ready
        general = slack.channel_id("general")
        assert rtm.send_message("over rtm", general).result(timeout=30)["ok"] is True
        assert sm.send_message("over the web", general).result(timeout=30)["ok"] is True
    finally:
        rtm.disconnect()
        sm.disconnect()


@pytest.mark.parametrize("ending", ENDINGS, ids=repr)
def test_no_error_of_a_failed_connect_carries_the_token(ending: str) -> None:
    token = "xoxb-1234-5678-" + "S3cr3tT0kenValue" + ending
    url = f"http://127.0.0.1:{closed_port()}/api/"
    with WebClient(token, base_url=url, timeout=5) as web, \
            pytest.raises(SlackHTTPError) as info:
        web.api_call("auth.test")
    assert_no_token(info.value, token)
    rtm = RTMClient(token, **dict(FAST, slack_api_url=url, auto_reconnect=False))
    try:
        err = rtm.start().exception(timeout=30)
    finally:
        rtm.disconnect()
    assert isinstance(err, SlackHTTPError), repr(err)
    assert_no_token(err, token)
    assert rtm.last_error is err
    assert "xoxb-" not in repr(rtm) and "xoxb-" not in repr(rtm.web_client)


@pytest.mark.parametrize("bad, kind", [
    ("", ValueError), ("   \n", ValueError), (None, TypeError), (42, TypeError),
    (b"xoxb-1-2", TypeError), ("xoxb-12 34", ValueError), ("xoxb-12\n34", ValueError)])
def test_unusable_tokens_are_refused_at_construction(bad: Any, kind: type) -> None:
    for cls in (RTMClient, SocketModeClient):
        with pytest.raises(kind) as info:
            cls(bad)
        assert cls.__name__ in str(info.value)
        if isinstance(bad, str) and bad.strip():
            assert "12" not in str(info.value)  # the token itself is never shown
    if bad is not None:  # WebClient() without a token is fine (token= per call)
        with pytest.raises(kind):
            WebClient(bad)


def test_the_wrong_kind_of_token_is_refused_with_what_to_use(slack: FakeSlack) -> None:
    with pytest.raises(ValueError) as info:
        RTMClient(slack.app_token)
    text = str(info.value)
    assert "SocketModeClient" in text and "xoxb-" in text
    assert slack.app_token not in text and slack.app_token[5:] not in text
    for bot in (slack.token, "xoxp-1-2-3"):
        with pytest.raises(ValueError) as info:
            SocketModeClient(bot)
        text = str(info.value)
        assert "xapp-" in text and "App-Level Tokens" in text
        assert bot[5:] not in text
    with pytest.raises(ValueError, match="xoxb-"):
        SocketModeClient(slack.app_token, bot_token=slack.app_token)
    # FakeSlack's tokens, and tokens of a shape not recognised, still work
    RTMClient(slack.token)
    SocketModeClient(slack.app_token)
    RTMClient("plain-S3CR3T-t0ken-9f8e7d")
    WebClient(slack.app_token)


def test_not_allowed_token_type_says_which_token_is_needed(slack: FakeSlack,
                                                          smake: Make) -> None:
    with WebClient(slack.token, base_url=slack.api_url) as web, \
            pytest.raises(SlackApiError) as info:
        web.api_call("apps.connections.open")
    assert info.value.error == "not_allowed_token_type"
    assert "xapp-" in str(info.value)
    with WebClient(slack.app_token, base_url=slack.api_url) as web, \
            pytest.raises(SlackApiError) as info:
        web.api_call("rtm.connect")
    assert "xoxb-" in str(info.value)
    # a client handed a web client with a bot token: its fatal error says what to use
    with WebClient(slack.token, base_url=slack.api_url) as bot_web:
        client = smake(web_client=bot_web)
        with pytest.raises(PlatformError) as perr:
            client.start().result(timeout=30)
    assert perr.value.error == "not_allowed_token_type" and "xapp-" in str(perr.value)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("kind", ["rtm", "socket_mode"])
def test_a_fatal_slack_error_is_fatal_whatever_the_http_status(
        slack: FakeSlack, request: pytest.FixtureRequest, status: int, kind: str) -> None:
    method = "rtm.connect" if kind == "rtm" else "apps.connections.open"
    factory = request.getfixturevalue("make" if kind == "rtm" else "smake")
    for error in ("invalid_auth", "token_revoked"):
        slack.fail_next(method, error, status=status)
        before = slack.call_count(method)
        with pytest.raises(PlatformError, match=error) as info:
            factory().start().result(timeout=30)
        assert info.value.error == error
        assert slack.call_count(method) == before + 1  # one call: fatal, no retry


def test_a_retriable_error_behind_a_4xx_is_still_retried(slack: FakeSlack,
                                                        smake: Make) -> None:
    slack.fail_next("apps.connections.open", "internal_error", status=400, times=2)
    client = smake()
    client.start().result(timeout=30)
    assert slack.call_count("apps.connections.open") == 3
    assert isinstance(client.last_error, PlatformError)
    assert client.last_error.error == "internal_error"


@pytest.mark.parametrize("cls", [RTMClient, SocketModeClient])
def test_start_on_an_unreachable_address_logs_once_and_sets_last_error(
        all_logs: List[logging.LogRecord], cls: Any) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/"
    token = "xoxb-1-2-abc" if cls is RTMClient else "xapp-1-A1-2-abc"
    settings = FAST if cls is RTMClient else SM_FAST
    client = cls(token, **dict(settings, slack_api_url=url, log_level=logging.DEBUG))
    try:
        with pytest.raises(FutureTimeout):
            client.start().result(timeout=1.0)
        err = client.last_error
        assert isinstance(err, SlackHTTPError) and "could not reach 127.0.0.1" in str(err)
        wait_until(lambda: sum("failed again" in r.getMessage() for r in all_logs) >= 3,
                   60, "more failed attempts")
    finally:
        client.disconnect()
    warnings = [r.getMessage() for r in all_logs if r.levelno >= logging.WARNING
                and r.name == "slackrtm"]
    assert len(warnings) == 1, warnings
    assert "could not connect" in warnings[0] and "127.0.0.1" in warnings[0]
    assert "last_error" in warnings[0]
