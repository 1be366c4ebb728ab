"""The command line over Socket Mode: ``tail --socket-mode``, ``demo --socket-mode``, and
what ``fake-slack`` prints for it; ``python -m slackrtm`` subprocesses against a FakeSlack."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from slackrtm._cli.format import Names, describe, envelope_line
from slackrtm.testing import FakeSlack
from tests.test_cli import ANSI, finished, free_port, one_error_line
from tests.test_examples import Proc, child_env


@pytest.fixture
def cli() -> Iterator[Any]:
    """``cli(*args, **env)``: start ``python -m slackrtm *args`` with a clean environment."""
    started: List[Proc] = []

    def start(*args: str, **env: str) -> Proc:
        proc = Proc(["-m", "slackrtm", *args], child_env(**env))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def on(slack: FakeSlack) -> Dict[str, str]:
    """The environment that points ``--socket-mode`` at ``slack`` (no bot token in it)."""
    return {"SLACK_APP_TOKEN": slack.app_token, "SLACK_API_URL": slack.api_url}


def without_time(proc: Proc) -> List[str]:
    return [line.split(" ", 1)[1] for line in proc.out]


# -- tail --socket-mode ------------------------------------------------------------------
def test_tail_prints_inner_events_like_rtm_and_envelopes(slack: FakeSlack, cli: Any) -> None:
    proc = cli("tail", "--socket-mode", **on(slack))
    proc.wait_for_line(f"^slackrtm: connected over Socket Mode to {slack.api_url} as app "
                       "A0FAKE; listening, Ctrl-C to stop$", stream="err")
    proc.wait_for_line(r"^\d\d:\d\d:\d\d hello +app A0FAKE, 1 connection\(s\) open$")
    msg = slack.post_message("general", "hi there\nsecond line", user=slack.user_id("alice"))
    slack.add_reaction("general", msg["ts"], "tada", user=slack.user_id("bob"))
    slack.join_channel("carol", "ops")
    command = slack.slash_command("/deploy", "prod now", user="bob", channel="ops")
    slack.interactive({"type": "block_actions", "user": {"id": slack.user_id("carol")},
                       "actions": [{"action_id": "approve"}]})
    slack.events_api({"type": "something_new", "answer": 42})
    proc.wait_for_line(r'something_new +\{"answer":42\}$')
    acks = slack.wait_for_acks(len(slack.delivered))
    assert proc.interrupt() == 0, proc.describe()
    assert without_time(proc) == [
        "hello                 app A0FAKE, 1 connection(s) open",
        r"message               #C0GENERAL U0ALICE: hi there\nsecond line",
        f"reaction_added        U0BOB reacted :tada: on #C0GENERAL {msg['ts']}",
        "member_joined_channel U0CAROL joined #C0OPS",
        "slash_commands        U0BOB ran /deploy prod now in #C0OPS",
        "interactive           block_actions by U0CAROL: approve",
        'something_new         {"answer":42}'], proc.describe()
    # tail acknowledges what it prints (and adds no response payload)
    assert command["envelope_id"] in {a.envelope_id for a in acks}
    assert all(a.payload is None for a in acks)
    assert proc.err[-1] == "slackrtm: disconnected"
    assert slack.call_count("apps.connections.open") == 1
    assert slack.call_count("auth.test") == 0 and slack.connect_count == 0  # no RTM
    assert "Traceback" not in proc.stderr and slack.app_token not in proc.stderr
    assert not ANSI.search(proc.stdout + proc.stderr)


def test_tail_json_and_type_filter_over_a_refresh(slack: FakeSlack, cli: Any,
                                                  tmp_path: Path) -> None:
    token_file = tmp_path / "app-token"
    token_file.write_text(slack.app_token + "\n")
    proc = cli("tail", "--socket-mode", "--json", "--type", "message", "--type",
               "slash_commands", "--token-file", str(token_file), SLACK_API_URL=slack.api_url)
    proc.wait_for_line("listening", stream="err")
    first = slack.post_message("general", "one")
    slack.add_reaction("general", first["ts"], "eyes")  # filtered out
    slack.refresh(grace=0.05)
    slack.wait_for_socket_connect_count(2)
    command = slack.slash_command("/ping")
    second = slack.post_message("random", "two", user=slack.user_id("bob"))
    proc.wait_for_line('"two"')
    assert proc.interrupt() == 0, proc.describe()
    printed = [json.loads(line) for line in proc.out]
    assert printed == [first, command, second], proc.describe()
    assert not any("reconnecting" in line for line in proc.err)  # a refresh is no reconnect


def test_tail_without_an_app_token_is_a_usage_error(slack: FakeSlack, cli: Any) -> None:
    proc = cli("tail", "--socket-mode", SLACK_TOKEN=slack.token, SLACK_API_URL=slack.api_url)
    one_error_line(proc, proc.finish(), "2",
                   r"^slackrtm: error: no token: set SLACK_APP_TOKEN or pass --token-file "
                   r"PATH$")
    assert proc.out == [] and slack.calls == []


@pytest.mark.parametrize("token, pattern, code, calls", [
    # a bot token is refused before any call, with what to use instead
    ("bot", r"^slackrtm: error: SocketModeClient was given a bot or user token "
            r"\(xoxb-\.\.\.\), but Socket Mode needs an app-level token \(xapp-\.\.\.\)",
     "2", 0),
    ("xapp-1-A0FAKE-1-" + "0" * 64, r"^slackrtm: error: Slack rejected the token "
                                    r"\(invalid_auth\)$", "1", 1),
])
def test_tail_with_a_wrong_token_exits_1(slack: FakeSlack, cli: Any, token: str,
                                         pattern: str, code: str, calls: int) -> None:
    token = slack.token if token == "bot" else token
    proc = cli("tail", "--socket-mode", SLACK_APP_TOKEN=token, SLACK_API_URL=slack.api_url)
    one_error_line(proc, proc.finish(), code, pattern)
    assert token not in proc.stdout + proc.stderr
    assert slack.call_count("apps.connections.open") == calls


def test_an_app_token_given_to_rtm_tail_hints_at_socket_mode(slack: FakeSlack,
                                                             cli: Any) -> None:
    proc = cli("tail", SLACK_TOKEN=slack.app_token, SLACK_API_URL=slack.api_url)
    one_error_line(proc, proc.finish(), "1",
                   r"refused this token for RTM \(not_allowed_token_type\): .* set "
                   r"SLACK_APP_TOKEN and use --socket-mode$")
    assert slack.app_token not in proc.stderr


def test_tail_ends_with_1_when_socket_mode_is_turned_off(slack: FakeSlack, cli: Any) -> None:
    proc = cli("tail", "--socket-mode", **on(slack))
    proc.wait_for_line("listening", stream="err")
    slack.disconnect("link_disabled")
    code = proc.finish()
    assert code == 1, proc.describe()
    assert proc.err[-1] == ("slackrtm: error: Socket Mode is turned off for this app "
                            "(link_disabled): turn it on in the app's settings")
    assert without_time(proc)[-1] == "disconnect            reason: link_disabled"
    assert "Traceback" not in proc.stderr


def test_tail_when_the_api_is_unreachable_or_fails(slack: FakeSlack, cli: Any) -> None:
    port = free_port()
    proc = cli("tail", "--socket-mode", SLACK_APP_TOKEN="xapp-1-A1-1-ab",
               SLACK_API_URL=f"http://127.0.0.1:{port}/api/")
    one_error_line(proc, proc.finish(), "1",
                   rf"cannot reach the Slack API at http://127.0.0.1:{port}/api/: "
                   "Connection refused$")
    slack.fail_next("apps.connections.open", status=503)
    proc = cli("tail", "--socket-mode", **on(slack))
    one_error_line(proc, proc.finish(), "1", "answered HTTP 503$")


# -- send --socket-mode ------------------------------------------------------------------
def both(slack: FakeSlack) -> Dict[str, str]:
    """The environment for ``send --socket-mode``: the app-level token and the bot token."""
    return {**on(slack), "SLACK_TOKEN": slack.token}


def test_send_over_socket_mode_posts_with_the_bot_token(slack: FakeSlack, cli: Any,
                                                        tmp_path: Path) -> None:
    proc = cli("send", "--socket-mode", "C0GENERAL", "hello over Socket Mode", **both(slack))
    code = proc.finish(60)
    assert (code, proc.err) == (0, []), proc.describe()
    (ts,) = proc.out
    assert re.fullmatch(r"\d+\.\d+", ts), proc.describe()
    (posted,) = [m for m in slack.messages("general") if m["ts"] == ts]
    assert (posted["text"], posted["user"]) == ("hello over Socket Mode", slack.bot_user_id)
    # connected over Socket Mode, posted through the Web API: no RTM, tokens never printed
    assert slack.socket_connect_count == 1 and slack.connect_count == 0
    assert slack.call_count("apps.connections.open") == 1
    assert slack.call_count("chat.postMessage") == 1 and slack.call_count("rtm.connect") == 0
    assert slack.token not in proc.stdout + proc.stderr
    assert slack.app_token not in proc.stdout + proc.stderr

    # both tokens from files, a #name looked up with the bot token, a thread reply
    (tmp_path / "app").write_text(slack.app_token + "\n")
    (tmp_path / "bot").write_text(slack.token + "\n")
    proc = cli("send", "--socket-mode", "--token-file", str(tmp_path / "app"),
               "--bot-token-file", str(tmp_path / "bot"), "--thread-ts", ts, "#general",
               "in the thread", SLACK_API_URL=slack.api_url)
    code = proc.finish(60)
    assert (code, proc.err) == (0, []), proc.describe()
    (reply,) = [m for m in slack.messages("general") if m["ts"] == proc.out[0]]
    assert (reply["text"], reply["thread_ts"]) == ("in the thread", ts)
    slack.wait_until(lambda: not slack.socket_connections, timeout=30,
                     what="the send's Socket Mode connections closed")


def test_send_over_socket_mode_splits_a_long_text(slack: FakeSlack, cli: Any) -> None:
    slack.message_rate = None  # pacing has its own tests; here only the parts matter
    text = "\n".join(f"line {n:04d} " + "x" * 60 for n in range(150))  # ~10,500 characters
    proc = cli("send", "--socket-mode", "--split", "C0OPS", text, **both(slack))
    code = proc.finish(60)
    assert (code, proc.err) == (0, []), proc.describe()
    assert [m["ts"] for m in slack.messages("ops")] == proc.out and len(proc.out) == 3
    assert [line for m in slack.messages("ops") for line in m["text"].splitlines()
            if line] == text.splitlines()
    assert all(len(m["text"]) <= 4000 for m in slack.messages("ops"))


def test_send_over_socket_mode_without_a_bot_token_says_what_to_give(
        slack: FakeSlack, cli: Any, tmp_path: Path) -> None:
    proc = cli("send", "--socket-mode", "C0GENERAL", "hi", **on(slack))
    one_error_line(proc, proc.finish(), "2",
                   r"^slackrtm: error: send --socket-mode posts with chat.postMessage, which "
                   r"needs the bot token \(xoxb-\.\.\., the app's 'Bot User OAuth Token'\) "
                   r"besides the app-level token: set SLACK_TOKEN or pass --bot-token-file "
                   r"PATH$")
    (tmp_path / "empty").write_text("\n")
    proc = cli("send", "--socket-mode", "--bot-token-file", str(tmp_path / "empty"),
               "C0GENERAL", "hi", **on(slack))
    one_error_line(proc, proc.finish(), "2", r"the token file .*empty is empty$")
    # the app-level token where the bot token goes, and the other way round
    proc = cli("send", "--socket-mode", "C0GENERAL", "hi", SLACK_TOKEN=slack.app_token,
               **on(slack))
    one_error_line(proc, proc.finish(), "2",
                   r"^slackrtm: error: the bot token \(\$SLACK_TOKEN or --bot-token-file\) "
                   r"is an app-level token \(xapp-\.\.\.\), which cannot post")
    proc = cli("send", "--socket-mode", "C0GENERAL", "hi", SLACK_APP_TOKEN=slack.token,
               SLACK_TOKEN=slack.token, SLACK_API_URL=slack.api_url)
    one_error_line(proc, proc.finish(), "2", r"Socket Mode needs an app-level token")
    proc = cli("send", "--socket-mode", "C0GENERAL", "hi", SLACK_TOKEN=slack.token,
               SLACK_API_URL=slack.api_url)
    one_error_line(proc, proc.finish(), "2",
                   r"^slackrtm: error: no token: set SLACK_APP_TOKEN or pass --token-file "
                   r"PATH$")
    proc = cli("send", "--socket-mode", "--token-file", "-", "--bot-token-file", "-",
               "C0GENERAL", "hi", SLACK_API_URL=slack.api_url)
    one_error_line(proc, proc.finish(), "2", r"cannot both read stdin")
    proc = cli("send", "--bot-token-file", str(tmp_path / "empty"), "C0GENERAL", "hi",
               SLACK_TOKEN=slack.token, SLACK_API_URL=slack.api_url)
    one_error_line(proc, proc.finish(), "2", r"--bot-token-file goes with --socket-mode")
    assert slack.calls == [] and slack.socket_connect_count == 0  # nothing was tried
    assert slack.messages("general") == []


@pytest.mark.parametrize("env, channel, pattern, opened", [
    ({"SLACK_TOKEN": "xoxb-0-0-wrong"}, "C0GENERAL",
     r"^slackrtm: error: Slack rejected the bot token \(invalid_auth\)$", 1),
    ({"SLACK_TOKEN": "xoxb-0-0-wrong"}, "#general",
     r"^slackrtm: error: Slack rejected the bot token \(invalid_auth\)$", 0),
    ({"SLACK_APP_TOKEN": "xapp-1-A0FAKE-1-" + "0" * 64}, "C0GENERAL",
     r"^slackrtm: error: Slack rejected the app-level token \(invalid_auth\)$", 1),
    ({}, "C0NOWHERE", r"^slackrtm: error: Slack refused the message: channel_not_found$", 1),
    ({}, "#nowhere", r"no channel named #nowhere is visible to this token$", 0),
])
def test_send_over_socket_mode_failures_exit_1_with_one_line(
        slack: FakeSlack, cli: Any, env: Dict[str, str], channel: str, pattern: str,
        opened: int) -> None:
    environment = {**both(slack), **env}
    proc = cli("send", "--socket-mode", channel, "hi", **environment)
    one_error_line(proc, proc.finish(), "1", pattern)
    assert proc.out == [] and slack.messages("general") == []
    assert slack.call_count("apps.connections.open") == opened
    for token in (environment["SLACK_TOKEN"], environment["SLACK_APP_TOKEN"]):
        assert token not in proc.stderr


def test_help_mentions_socket_mode(cli: Any) -> None:
    code, out, _ = finished(cli("tail", "--help"))
    assert code == 0 and "--socket-mode" in out and "SLACK_APP_TOKEN" in out
    code, out, _ = finished(cli("demo", "--help"))
    assert code == 0 and "--socket-mode" in out
    code, out, _ = finished(cli("send", "--help"))
    # send --socket-mode takes both tokens: the app-level one connects, the bot one posts
    assert code == 0 and re.search(r"^ +--socket-mode +connect over Socket Mode", out, re.M)
    assert "not available" not in out and "cannot send" not in out
    for needed in ("$SLACK_APP_TOKEN", "$SLACK_TOKEN", "--bot-token-file", "chat.postMessage",
                   "--split"):
        assert needed in out, (needed, out)


# -- demo --socket-mode ------------------------------------------------------------------
def test_demo_over_socket_mode(cli: Any) -> None:
    proc = cli("demo", "--delay", "0", "--socket-mode")
    code, out, err = finished(proc, timeout=30)
    assert (code, err) == (0, ""), proc.describe()
    expected = [
        "Connecting a bot to it over Socket Mode (the code: slackrtm/_cli/demo.py)",
        "<- hello                 app A0FAKE, 1 connection(s) open",
        "-- ready",
        "== alice says hello in #general",
        "<- message               #general alice: hello bot!",
        "-> chat.postMessage #general: Hello @alice! React to this message and I will "
        "count it.",
        "<- message               #general fakebot: Hello @alice! React to this message and "
        "I will count it.",
        "== dave joins the workspace, then #general",
        "-> chat.postMessage #general: Welcome, @dave!",
        "== carol runs /reactions in #general",
        "<- slash_commands        carol ran /reactions in #general",
        "-> ack with a response payload: 2 reactions so far: :tada: 1, :+1: 1",
        "   Slack got the ack; it shows carol: 2 reactions so far: :tada: 1, :+1: 1",
        "<- channel_rename        #random is now #watercooler",
        "-- disconnected",
        "Demo over: the bot received 13 events, sent 3 messages, answered 1 slash command "
        "and counted :tada: 1, :+1: 1.",
    ]
    lines = proc.out
    positions = [lines.index(line) if line in lines else -1 for line in expected]
    assert -1 not in positions and positions == sorted(positions), (
        [e for e, p in zip(expected, positions) if p == -1], out)
    assert sum(line.startswith("   Slack replied ok, ts ") for line in lines) == 3
    assert not any("presence" in line or "send_message" in line for line in lines)


# -- fake-slack --------------------------------------------------------------------------
def test_fake_slack_prints_the_app_token_and_socket_mode_acks(cli: Any) -> None:
    server = cli("fake-slack", "--app-token", "xapp-1-A0FAKE-1-fixed")
    url = server.wait_for_line(r"^  export SLACK_API_URL=(http://127\.0\.0\.1:\d+/api/)$")[1]
    server.wait_for_line(r"^  export SLACK_TOKEN=xoxb-\S+$")
    token = server.wait_for_line(r"^  export SLACK_APP_TOKEN=(xapp-\S+)$")[1]
    assert token == "xapp-1-A0FAKE-1-fixed"
    tail = cli("tail", "--socket-mode", SLACK_APP_TOKEN=token, SLACK_API_URL=url)
    tail.wait_for_line("listening", stream="err")
    server.wait_for_line("^api apps.connections.open -> ok$")
    server.wait_for_line(r"^socket mode: 1 connection\(s\) open$")
    assert tail.interrupt() == 0, tail.describe()
    server.wait_for_line(r"^socket mode: 0 connection\(s\) open$")
    assert server.interrupt() == 0, server.describe()


# -- rendering, in-process ---------------------------------------------------------------
def test_socket_mode_rendering() -> None:
    names = Names({"U1": "ann"}, {"C1": "general"})
    assert describe({"type": "hello"}) == ""  # RTM's hello
    assert describe({"type": "hello", "num_connections": 2,
                     "connection_info": {"app_id": "A1"}}) == "app A1, 2 connection(s) open"
    assert describe({"type": "disconnect", "reason": "warning"}) == "reason: warning"
    line = envelope_line("slash_commands", {"user_id": "U1", "command": "/x", "text": "a\nb",
                                            "channel_id": "C1"}, names=names, stamp=False)
    assert line == r"slash_commands        ann ran /x a\nb in #general"
    assert envelope_line("interactive", {"type": "view_submission", "user": {"id": "U1"},
                                         "view": {"callback_id": "form"}},
                         names=names, stamp=False) == \
        "interactive           view_submission by ann: form"
    assert envelope_line("interactive", {"type": "shortcut", "user": None},
                         stamp=False) == "interactive           shortcut by ?"
    assert re.match(r"^\d\d:\d\d:\d\d odd +\{", envelope_line("odd", {"k": 1}))
