"""Errors a newcomer meets, and what they say: one keyword for the API address on every
client, channel names in send_message, wrong types refused where they are passed."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from slackrtm import RTMClient, SocketModeClient, WebClient
from slackrtm.testing import FakeSlack


# -- slack_api_url everywhere --------------------------------------------------------------
def test_webclient_takes_slack_api_url_like_the_other_clients(slack: FakeSlack) -> None:
    with WebClient(slack.token, slack_api_url=slack.api_url.rstrip("/")) as web:
        assert web.slack_api_url == web.base_url == slack.api_url
        assert web.auth.test()["user_id"] == slack.bot_user_id
    with WebClient(slack.token, base_url=slack.api_url) as web:  # the other name still works
        assert web.slack_api_url == slack.api_url
    with pytest.raises(TypeError, match="slack_api_url or base_url"):
        WebClient(slack.token, slack_api_url=slack.api_url, base_url=slack.api_url)


@pytest.mark.parametrize("make_client, keyword", [
    (lambda url: WebClient("xoxb-1", slack_api_url=url), "slack_api_url"),
    (lambda url: WebClient("xoxb-1", base_url=url), "base_url"),
    (lambda url: RTMClient("xoxb-1", slack_api_url=url), "slack_api_url"),
    (lambda url: SocketModeClient("xapp-1-A-1-a", slack_api_url=url), "slack_api_url"),
])
def test_a_bad_api_address_error_names_the_keyword_passed(make_client: Callable[[str], Any],
                                                          keyword: str) -> None:
    with pytest.raises(ValueError) as info:
        make_client("slack.com/api")
    assert str(info.value).startswith(f"{keyword} must be an http:// or https:// URL")
    assert "'slack.com/api'" in str(info.value)


def test_a_bad_api_address_from_the_environment_names_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "ftp://example.com/api/")
    for build in (lambda: WebClient("xoxb-1"), lambda: RTMClient("xoxb-1")):
        with pytest.raises(ValueError, match=r"^\$SLACK_API_URL must be an http"):
            build()


# -- send_message and on() -----------------------------------------------------------------
def test_send_message_takes_a_channel_name_looked_up_once(slack: FakeSlack, make: Any) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    first = rtm.send_message("by name", "#general").result(timeout=30)
    second = rtm.send_message("without the hash", "ops").result(timeout=30)
    third = rtm.send_message("cached", "general").result(timeout=30)
    assert [m["text"] for m in slack.messages("general")] == ["by name", "cached"]
    assert [m["ts"] for m in slack.messages("ops")] == [second["ts"]]
    assert first["ok"] and third["ok"]
    assert slack.call_count("conversations.list") == 1  # one walk, every name cached
    with pytest.raises(ValueError) as info:
        rtm.send_message("hi", "#nowhere")
    message = str(info.value)
    assert "needs a conversation id such as C0123456789" in message
    assert "#nowhere" in message and "conversations.list" in message
    with pytest.raises(ValueError, match="needs a conversation id"):
        rtm.send_message("hi", "two words")


def test_send_message_refuses_wrong_types_at_once(slack: FakeSlack, make: Any) -> None:
    rtm = make()
    with pytest.raises(TypeError, match="text must be a str, not int"):
        rtm.send_message(123, "C0GENERAL")
    with pytest.raises(TypeError, match=r"conversation_id must be a str .* not int"):
        rtm.send_message("hi", 123)
    assert slack.calls == []


def test_on_refuses_a_handler_that_is_not_callable(make: Any) -> None:
    rtm = make()
    with pytest.raises(TypeError, match=r"handler must be callable .* int 42"):
        rtm.on("message", 42)
    with pytest.raises(TypeError, match="handler must be callable"):
        rtm.once("message", "print")
    with pytest.raises(TypeError, match="event must be an event name"):
        rtm.on(42, print)
    decorate = rtm.on("message")
    with pytest.raises(TypeError, match="handler must be callable"):
        decorate(None)
