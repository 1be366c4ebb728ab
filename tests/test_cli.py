"""The command line, run as ``python -m slackrtm ...`` subprocesses against a FakeSlack."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

import slackrtm
from slackrtm._cli.format import Names, describe, event_line
from slackrtm.testing import FakeSlack
from tests.test_examples import ROOT, Proc, child_env

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def cli(procs: List[Proc]) -> Any:
    """``cli(*args, **env)``: start ``python -m slackrtm *args`` with a clean environment."""

    def start(*args: str, **env: str) -> Proc:
        proc = Proc(["-m", "slackrtm", *args], child_env(**env))
        procs.append(proc)
        return proc

    return start


@pytest.fixture
def procs() -> Iterator[List[Proc]]:
    started: List[Proc] = []
    yield started
    for proc in started:
        proc.kill()


def on(slack: FakeSlack) -> dict[str, str]:
    """The environment that points the command line at ``slack``."""
    return {"SLACK_TOKEN": slack.token, "SLACK_API_URL": slack.api_url}


def finished(proc: Proc, timeout: float = 60.0) -> Tuple[int, str, str]:
    code = proc.finish(timeout)
    return code, proc.stdout, proc.stderr


def one_error_line(proc: Proc, code: int, expected: str, pattern: str) -> None:
    """Exit code ``expected`` and exactly one stderr line matching ``pattern``."""
    assert code == int(expected), proc.describe()
    assert len(proc.err) == 1, proc.describe()
    assert re.search(pattern, proc.err[0]), proc.describe()
    assert "Traceback" not in proc.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the entry points and usage errors ---------------------------------------------------
def test_console_script_entry_point_is_main() -> None:
    import slackrtm.__main__ as entry
    from slackrtm._cli import main as _cli

    assert entry.main is _cli.main
    config = (ROOT / "setup.cfg").read_text()
    assert "slackrtm = slackrtm.__main__:main" in config


def test_help_and_version(cli: Any) -> None:
    proc = cli("--help")
    code, out, _ = finished(proc)
    assert code == 0
    for command in ("demo", "tail", "send", "fake-slack", "Exit codes"):
        assert command in out
    code, out, _ = finished(cli("--version"))
    assert (code, out) == (0, f"slackrtm {slackrtm.__version__}")


@pytest.mark.parametrize("args, message", [
    ((), "the following arguments are required: COMMAND"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    (("send", "C1"), "the following arguments are required: TEXT"),
    (("send", "--timeout", "0", "C1", "hi"), "argument --timeout: must be more than 0"),
    (("tail", "--color", "pink"), "argument --color: invalid choice"),
    (("fake-slack", "--port", "70000"), "must be between 0 and 65535"),
    (("demo", "--delay", "soon"), "not a number: 'soon'"),
])
def test_bad_arguments_exit_2_with_one_line(cli: Any, args: Tuple[str, ...],
                                            message: str) -> None:
    proc = cli(*args)
    code, out, _ = finished(proc)
    one_error_line(proc, code, "2", re.escape(message))
    assert proc.err[0].endswith("(see --help)") and out == ""


def test_token_problems_are_usage_errors(cli: Any, tmp_path: Path) -> None:
    proc = cli("send", "C1", "hi")
    one_error_line(proc, proc.finish(), "2",
                   r"^slackrtm: error: no token: set SLACK_TOKEN or pass --token-file PATH$")
    proc = cli("tail", "--token-file", str(tmp_path / "missing"))
    one_error_line(proc, proc.finish(), "2", "cannot read the token file .*missing: No such")
    (tmp_path / "empty").write_text("\n")
    proc = cli("send", "--token-file", str(tmp_path / "empty"), "C1", "hi")
    one_error_line(proc, proc.finish(), "2", r"the token file .*empty is empty$")
    (tmp_path / "two").write_text("xoxb-one xoxb-two\n")
    proc = cli("send", "--token-file", str(tmp_path / "two"), "C1", "hi")
    one_error_line(proc, proc.finish(), "2", "more than one word")
    proc = cli("send", "--api-url", "slack.com/api", "C1", "hi", SLACK_TOKEN="xoxb-1")
    one_error_line(proc, proc.finish(), "2", "--api-url must be an http:// or https:// URL")


# -- send --------------------------------------------------------------------------------
def test_send_prints_the_ts_of_the_posted_message(slack: FakeSlack, cli: Any,
                                                  tmp_path: Path) -> None:
    proc = cli("send", "C0GENERAL", "hello from the shell", **on(slack))
    code, out, err = finished(proc)
    assert (code, err) == (0, ""), proc.describe()
    assert re.fullmatch(r"\d+\.\d+", out)
    (posted,) = [m for m in slack.messages("general") if m["ts"] == out]
    assert (posted["text"], posted["user"]) == ("hello from the shell", slack.bot_user_id)

    token_file = tmp_path / "token"
    token_file.write_text(slack.token + "\n")
    proc = cli("send", "--token-file", str(token_file), "--api-url", slack.api_url.rstrip("/"),
               "--thread-ts", out, "#ops", "in a thread")
    code, ts, _ = finished(proc)
    assert code == 0, proc.describe()
    (reply,) = [m for m in slack.messages("ops") if m["ts"] == ts]
    assert (reply["text"], reply["thread_ts"]) == ("in a thread", out)

    piped = subprocess.run([sys.executable, "-m", "slackrtm", "send", "--token-file", "-",
                            "C0RANDOM", "token from stdin"], cwd=str(ROOT), timeout=30,
                           env=child_env(SLACK_API_URL=slack.api_url), input=slack.token,
                           capture_output=True, encoding="utf-8")
    assert piped.returncode == 0, piped.stderr
    assert [m["ts"] for m in slack.messages("random")] == [piped.stdout.strip()]


def test_send_split_posts_a_long_text_as_several_messages(slack: FakeSlack,
                                                          cli: Any) -> None:
    slack.message_rate = None  # pacing has its own tests; here only the parts matter
    text = "\n".join(f"line {n:04d} " + "x" * 60 for n in range(150))  # ~10,500 characters
    proc = cli("send", "--split", "C0GENERAL", text, **on(slack))
    code, out, err = finished(proc, timeout=60)
    assert (code, err) == (0, ""), proc.describe()
    stamps = out.splitlines()
    assert len(stamps) == 3 and all(re.fullmatch(r"\d+\.\d+", s) for s in stamps)
    posted = [m for m in slack.messages("general") if m["ts"] in stamps]
    assert [m["ts"] for m in posted] == stamps
    assert [line for m in posted for line in m["text"].splitlines() if line] == \
        text.splitlines()
    assert all(len(m["text"]) <= 4000 for m in posted)
    # without --split, the same text is refused before anything is sent
    proc = cli("send", "C0GENERAL", text, **on(slack))
    code, out, _ = finished(proc)
    one_error_line(proc, code, "1", "4000|4,000")
    assert out == ""


@pytest.mark.parametrize("args, env, pattern", [
    (("C0GENERAL", "hi"), {"SLACK_TOKEN": "xoxb-0-0-wrong"},
     r"^slackrtm: error: Slack rejected the token \(invalid_auth\)$"),
    (("C0GENERAL", ""), {}, "^slackrtm: error: Slack refused the message: message text is "
                            "missing$"),
    (("C0NOWHERE", "hi"), {}, "Slack refused the message: channel_not_found$"),
    (("#nowhere", "hi"), {}, "no channel named #nowhere is visible to this token$"),
])
def test_send_failures_exit_1_with_one_line(slack: FakeSlack, cli: Any, args: Tuple[str, ...],
                                            env: dict[str, str], pattern: str) -> None:
    proc = cli("send", *args, **{**on(slack), **env})
    code, out, _ = finished(proc)
    one_error_line(proc, code, "1", pattern)
    assert out == ""
    assert "xoxb-" not in proc.stderr and slack.token not in proc.stderr


def test_send_when_slack_is_unreachable_or_refuses(slack: FakeSlack, cli: Any) -> None:
    port = free_port()
    proc = cli("send", "C1", "hi", SLACK_TOKEN="xoxb-1",
               SLACK_API_URL=f"http://127.0.0.1:{port}/api/")
    one_error_line(proc, proc.finish(),
                   "1", rf"cannot reach the Slack API at http://127.0.0.1:{port}/api/: "
                        "Connection refused$")
    slack.fail_next("rtm.connect", "team_disabled")
    proc = cli("send", "C0GENERAL", "hi", **on(slack))
    one_error_line(proc, proc.finish(), "1", r"Slack rejected the token \(team_disabled\)$")
    slack.fail_next("rtm.connect", status=503)
    proc = cli("send", "C0GENERAL", "hi", **on(slack))
    one_error_line(proc, proc.finish(), "1", "answered HTTP 503$")


def test_send_without_a_reply(slack: FakeSlack, cli: Any) -> None:
    slack.drop_replies = True
    proc = cli("send", "--timeout", "0.5", "C0GENERAL", "lost reply", **on(slack))
    one_error_line(proc, proc.finish(), "1",
                   "no reply from Slack in time: the message may or may not have been posted")
    assert [m["text"] for m in slack.messages("general")] == ["lost reply"]


# -- tail --------------------------------------------------------------------------------
def test_tail_prints_events_and_reconnects(slack: FakeSlack, cli: Any) -> None:
    proc = cli("tail", **on(slack))
    proc.wait_for_line("connected to Fake Workspace as fakebot \\(U0BOT\\); listening",
                       stream="err")
    proc.wait_for_line(r"^\d\d:\d\d:\d\d hello$")
    msg = slack.post_message("general", "hi there\nsecond line", user=slack.user_id("alice"))
    slack.add_reaction("general", msg["ts"], "tada", user=slack.user_id("bob"))
    slack.join_channel("carol", "ops")
    proc.wait_for_line(r"member_joined_channel U0CAROL joined #C0OPS$")
    slack.drop()
    proc.wait_for_line("connection lost: reconnecting", stream="err")
    proc.wait_for_line("hello$", start=4)
    slack.inject({"type": "something_new", "answer": 42})
    proc.wait_for_line(r'something_new +\{"answer":42\}$')
    code = proc.interrupt()
    assert code == 0, proc.describe()
    lines = [line.split(" ", 1)[1] for line in proc.out]  # without the time
    assert lines == [
        "hello",
        r"message               #C0GENERAL U0ALICE: hi there\nsecond line",
        f"reaction_added        U0BOB reacted :tada: on #C0GENERAL {msg['ts']}",
        "member_joined_channel U0CAROL joined #C0OPS",
        "hello",
        'something_new         {"answer":42}'], proc.describe()
    assert proc.err[-1] == "slackrtm: disconnected"
    assert not ANSI.search(proc.stdout + proc.stderr)  # not a terminal: no colors
    assert "Traceback" not in proc.stderr and slack.token not in proc.stderr


def test_tail_json_lines_filtered_by_type_with_colors(slack: FakeSlack, cli: Any) -> None:
    proc = cli("tail", "--json", "--type", "message", "--type", "goodbye", **on(slack))
    proc.wait_for_line("listening", stream="err")
    first = slack.post_message("general", "one")
    slack.add_reaction("general", first["ts"], "eyes")
    second = slack.post_message("random", "two", user=slack.user_id("bob"))
    proc.wait_for_line('"two"')
    assert proc.interrupt() == 0, proc.describe()
    assert [json.loads(line) for line in proc.out] == [first, second]

    proc = cli("tail", "--color", "always", **on(slack))
    proc.wait_for_line("hello", timeout=30)
    assert proc.interrupt() == 0
    assert ANSI.search(proc.out[0]) and ANSI.search(proc.err[0]), proc.describe()


def test_tail_colors_on_a_terminal_by_default(slack: FakeSlack) -> None:
    import pty
    import select

    leader, follower = pty.openpty()
    env = child_env(**on(slack), TERM="xterm")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "slackrtm", "tail"], cwd=str(ROOT),
                            env=env, stdout=follower,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 15
        while b"hello" not in seen and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                seen += os.read(leader, 4096)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(leader)
    assert b"hello" in seen and ANSI.search(seen.decode()), seen


def test_ctrl_c_before_run_forever_is_entered_still_disconnects(
        slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    from slackrtm import RTMClient
    from slackrtm._cli.base import run_until_stopped

    rtm = RTMClient(slack.token, slack_api_url=slack.api_url)

    def interrupted() -> None:  # Ctrl-C lands between start() and run_forever()
        raise KeyboardInterrupt

    monkeypatch.setattr(rtm, "run_forever", interrupted)
    run_until_stopped(rtm)
    assert rtm.state == "disconnected"
    assert not [t for t in threading.enumerate() if t.name.startswith("slackrtm-")]


def test_tail_errors(slack: FakeSlack, cli: Any) -> None:
    proc = cli("tail", **{**on(slack), "SLACK_TOKEN": "xoxb-0-0-wrong"})
    one_error_line(proc, proc.finish(), "1", r"Slack rejected the token \(invalid_auth\)$")
    port = free_port()
    proc = cli("tail", "--api-url", f"http://127.0.0.1:{port}/api/", SLACK_TOKEN="xoxb-1")
    one_error_line(proc, proc.finish(), "1", "cannot reach the Slack API at .*refused$")
    assert slack.connect_count == 0


def test_tail_ends_when_the_token_is_revoked(slack: FakeSlack, cli: Any) -> None:
    proc = cli("tail", **on(slack))
    proc.wait_for_line("listening", stream="err")
    slack.revoke_token()
    slack.drop()
    code = proc.finish()
    assert code == 1, proc.describe()
    assert proc.err[-1] == "slackrtm: error: Slack rejected the token (token_revoked)"
    assert "Traceback" not in proc.stderr


def test_tail_stops_when_stdout_is_closed(slack: FakeSlack) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "slackrtm", "tail"], cwd=str(ROOT),
                            env=child_env(**on(slack)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().endswith(b"hello\n")
        proc.stdout.close()  # like `slackrtm tail | head -n 1`
        slack.post_message("general", "nobody reads this")
        code = proc.wait(15)
        err = proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert code == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# -- fake-slack --------------------------------------------------------------------------
def test_fake_slack_serves_until_interrupted(cli: Any) -> None:
    server = cli("fake-slack")
    url = server.wait_for_line(r"^  export SLACK_API_URL=(http://127\.0\.0\.1:\d+/api/)$")[1]
    token = server.wait_for_line(r"^  export SLACK_TOKEN=(xoxb-\S+)$")[1]
    server.wait_for_line(r"^  C0GENERAL +#general  \(the bot is a member\)$")
    server.wait_for_line(r"^  U0BOT +fakebot")
    send = cli("send", "C0GENERAL", "hello fake", SLACK_TOKEN=token, SLACK_API_URL=url)
    code, ts, _ = finished(send)
    assert code == 0 and ts, send.describe()
    server.wait_for_line("^api rtm.connect -> ok$")
    server.wait_for_line("^rtm <- message to #general: hello fake$")
    bad = cli("send", "C0GENERAL", "hi", SLACK_TOKEN="xoxb-0-0-wrong", SLACK_API_URL=url)
    assert bad.finish() == 1
    server.wait_for_line("^api rtm.connect -> invalid_auth$")
    assert server.interrupt() == 0, server.describe()
    assert server.err[-1] == "slackrtm: stopped"


def test_fake_slack_fixed_port_and_token_and_sigterm(cli: Any, slack: FakeSlack) -> None:
    busy = cli("fake-slack", "--port", str(slack.port))
    one_error_line(busy, busy.finish(), "1", f"cannot listen on 127.0.0.1:{slack.port}: ")
    port = free_port()
    server = cli("fake-slack", "--port", str(port), "--token", "xoxb-1-2-fixed", "--quiet")
    server.wait_for_line(f"^  export SLACK_API_URL=http://127.0.0.1:{port}/api/$")
    server.wait_for_line("^  export SLACK_TOKEN=xoxb-1-2-fixed$")
    send = cli("send", "C0GENERAL", "quiet", SLACK_TOKEN="xoxb-1-2-fixed",
               SLACK_API_URL=f"http://127.0.0.1:{port}/api/")
    assert send.finish() == 0, send.describe()
    server.popen.send_signal(signal.SIGTERM)
    assert server.finish() == 0, server.describe()
    assert not [line for line in server.out if line.startswith(("api ", "rtm "))]


def test_fake_slack_exits_0_on_sigterm_at_any_moment(cli: Any) -> None:
    # right after the banner, and while a client is connected and talking
    early = cli("fake-slack")
    early.wait_for_line(r"^  export SLACK_TOKEN=")
    early.popen.send_signal(signal.SIGTERM)
    assert early.finish(30) == 0, early.describe()
    server = cli("fake-slack")
    url = server.wait_for_line(r"^  export SLACK_API_URL=(\S+)$")[1]
    token = server.wait_for_line(r"^  export SLACK_TOKEN=(\S+)$")[1]
    tail = cli("tail", SLACK_TOKEN=token, SLACK_API_URL=url)
    server.wait_for_line("^rtm: 1 connection", timeout=30)
    server.popen.send_signal(signal.SIGTERM)
    assert server.finish(30) == 0, server.describe()
    assert "Traceback" not in server.stderr, server.describe()
    tail.popen.send_signal(signal.SIGTERM)
    assert tail.finish(30) == 0, tail.describe()


@pytest.mark.parametrize("when", ["^Started FakeSlack", "^-- ready$", "^== alice says hello"])
def test_demo_exits_0_on_sigterm_at_any_moment(cli: Any, when: str) -> None:
    proc = cli("demo", "--delay", "0.5")
    proc.wait_for_line(when, timeout=30)
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.finish(30) == 0, proc.describe()
    assert "Traceback" not in proc.stderr, proc.describe()


# -- demo --------------------------------------------------------------------------------
def test_demo_plays_the_scripted_conversation(cli: Any) -> None:
    proc = cli("demo", "--delay", "0")
    code, out, err = finished(proc, timeout=30)
    assert (code, err) == (0, ""), proc.describe()
    expected = [
        "-- ready",
        "== alice says hello in #general",
        "<- message               #general alice: hello bot!",
        "-> send_message #general: Hello @alice! React to this message and I will count it.",
        "<- message               #general fakebot: Hello @alice! React to this message and "
        "I will count it.",
        "== bob and carol react to the bot's answer",
        "== dave joins the workspace, then #general",
        "<- team_join             dave (Dave Dawson) joined the workspace as U0DAVE",
        "<- member_joined_channel dave joined #general",
        "-> send_message #general: Welcome, @dave!",
        "== bob asks how many reactions there were",
        "-> send_message #general: 2 reactions so far: :tada: 1, :+1: 1",
        "== alice renames #random to #watercooler",
        "<- channel_rename        #random is now #watercooler",
        "== carol goes away",
        "<- presence_change       carol is away",
        "-- disconnected",
        "Demo over: the bot received 13 events, sent 3 messages and counted :tada: 1, :+1: 1.",
    ]
    lines = proc.out
    positions = [lines.index(line) if line in lines else -1 for line in expected]
    assert -1 not in positions and positions == sorted(positions), (
        [e for e, p in zip(expected, positions) if p == -1], out)
    assert sum(line.startswith("   Slack replied ok, ts ") for line in lines) == 3
    assert any(re.match(r"<- reaction_added +bob reacted :tada: on #general \d", line)
               for line in lines)
    assert not ANSI.search(out)


# -- rendering, in-process ---------------------------------------------------------------
def test_event_rendering() -> None:
    names = Names({"U1": "ann"}, {"C1": "general"})
    assert describe({"type": "message", "channel": "C1", "user": "U1", "text": "yo",
                     "ts": "2.0", "thread_ts": "1.0"}, names) == "#general ann: yo (in thread 1.0)"
    assert describe({"type": "message", "subtype": "message_changed", "channel": "C1",
                     "message": {"user": "U1", "text": "edited"}}, names) == \
        "#general [message_changed] ann: edited"
    assert describe({"type": "message", "subtype": "message_deleted", "channel": "C9",
                     "deleted_ts": "3.0"}) == "#C9 [message_deleted] ts=3.0"
    assert describe({"type": "presence_change", "users": ["U1", "U2"], "presence": "away"},
                    names) == "ann, U2 is away"
    assert describe({"type": "error", "error": {"code": 1, "msg": "boom"}}) == "code 1: boom"
    assert describe({"type": "hello"}) == ""
    long = describe({"type": "x", "blob": "a" * 1000})
    assert len(long) == 300 and long.endswith("...")
    odd = describe({"type": "message", "channel": "C1", "message": None,
                    "subtype": "message_changed", "text": "t"})
    assert "#C1" in odd  # malformed events are still shown
    line = event_line({"type": "hello"}, clock=lambda: 0.0, stamp=False)
    assert line == "hello"
    painted = event_line({"type": "message", "text": "hi"}, color=True)
    assert ANSI.search(painted)
