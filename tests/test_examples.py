"""Every script in examples/ runs as a subprocess against a FakeSlack; checks what it did.

The examples are unchanged user code: they find FakeSlack through $SLACK_API_URL. The
ones that listen forever are stopped with SIGINT, as a user's Ctrl-C would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Pattern, Union

import pytest

from slackrtm.testing import FakeProxy, FakeSlack

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
#: Environment variables that would let the host's settings leak into a child process.
_SCRUBBED = ("SLACK_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
             "https_proxy", "all_proxy", "no_proxy", "PYTHONSTARTUP")


def child_env(**extra: str) -> Dict[str, str]:
    """A clean environment for a child: this checkout importable, output unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


class Proc:
    """A child process whose stdout and stderr are collected line by line as they come."""

    def __init__(self, args: List[str], env: Dict[str, str]) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            [sys.executable, *args], cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8")
        self.out: List[str] = []
        self.err: List[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self.err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _pump(self, stream: Any, into: List[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stdout(self) -> str:
        with self._cond:
            return "\n".join(self.out)

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.err)

    def describe(self) -> str:
        return (f"{' '.join(self.args)} (exit {self.popen.poll()})\n--- stdout:\n{self.stdout}"
                f"\n--- stderr:\n{self.stderr}")

    def wait_for_line(self, pattern: Union[str, Pattern[str]], timeout: float = 60.0,
                      start: int = 0, stream: str = "out") -> re.Match[str]:
        """The first line (from index ``start``) matching the regex; fail after ``timeout``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        lines = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in lines[start:]:
                    found = regex.search(line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None
                                 and not any(t.is_alive() for t in self._readers)):
                    raise AssertionError(f"no line matching {regex.pattern!r} on std{stream}"
                                         f" within {timeout} s: {self.describe()}")
                self._cond.wait(min(left, 0.2))

    def line_index(self, pattern: str) -> int:
        """Index of the first stdout line matching ``pattern`` (after waiting for it)."""
        self.wait_for_line(pattern)
        with self._cond:
            return next(i for i, line in enumerate(self.out) if re.search(pattern, line))

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the exit; return its code (the output is fully read by then)."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            raise AssertionError(f"did not exit within {timeout} s: {self.describe()}")
        for t in self._readers:
            t.join(5)
        return code

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C (SIGINT), then wait for the exit."""
        self.popen.send_signal(signal.SIGINT)
        return self.finish(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)


@pytest.fixture
def procs() -> Iterator[List[Proc]]:
    """Collects the test's child processes; kills any still running at the end."""
    started: List[Proc] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture
def run(slack: FakeSlack, procs: List[Proc]) -> Any:
    """``run("name.py", *args, **env)``: start an example against the test's FakeSlack."""

    def start(script: str, *args: str, token: Optional[str] = None, **env: str) -> Proc:
        proc = Proc([str(EXAMPLES / script), *args],
                    child_env(SLACK_TOKEN=token or slack.token, SLACK_API_URL=slack.api_url,
                              **env))
        procs.append(proc)
        return proc

    return start


def clean_exit(proc: Proc, code: int) -> None:
    assert code == 0, proc.describe()
    assert "Traceback" not in proc.stderr, proc.describe()


def example_body(path: Path) -> str:
    """The code of an example without its docstring and ``__future__`` import."""
    code = path.read_text(encoding="utf-8").split('"""', 2)[2]
    return code.replace("from __future__ import annotations\n", "", 1).strip("\n")


def test_every_example_is_tested() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    tested = sorted(name[len("test_"):] + ".py" for name in globals()
                    if name.startswith("test_") and name[len("test_"):] + ".py" in scripts)
    assert scripts == tested


# -- the examples, one test each ---------------------------------------------------------
def test_connect_and_send(slack: FakeSlack, run: Any) -> None:
    general = slack.channel_id("general")
    proc = run("connect_and_send.py", general)
    clean_exit(proc, proc.finish())
    ts = proc.wait_for_line(r"^Message sent: (\d+\.\d+)$").group(1)
    posted = [m for m in slack.messages(general) if m["ts"] == ts]
    assert [(m["text"], m["user"]) for m in posted] == [("Hello there", slack.bot_user_id)]
    assert slack.token not in proc.stdout + proc.stderr


def test_long_report(slack: FakeSlack, run: Any) -> None:
    slack.message_rate = (1.0, 5)  # Slack's limits, as FakeSlack enforces them by default
    general = slack.channel_id("general")
    usage = run("long_report.py")
    assert usage.finish() == 2 and "usage:" in usage.stderr, usage.describe()
    proc = run("long_report.py", general)
    clean_exit(proc, proc.finish())
    posted = [m["text"] for m in slack.messages(general)]
    assert len(posted) == 4 and all(len(text) <= 4000 for text in posted)
    report = "".join(posted)
    assert report.startswith("Nightly builds\n   1. build-0001: passed\n")
    assert report.endswith(" 500. build-0500: passed") and report.count("\n") == 500
    assert [f"Part {n} of 4 posted" in line for n, line in enumerate(proc.out, 1)] == [True] * 4
    assert slack.rate_limited == [] and slack.connect_count == 1


def test_receive_messages(slack: FakeSlack, run: Any) -> None:
    general = slack.channel_id("general")
    proc = run("receive_messages.py")
    proc.wait_for_line(f"^Connected as {slack.bot_user_id}; listening")
    slack.inject({"type": "message", "subtype": "bot_message", "bot_id": "B0OTHER",
                  "channel": general, "text": "beep from a bot", "ts": "1700000001.000001"})
    slack.post_message(general, "my own echo", user=slack.bot_user_id)
    slack.post_message(general, "hi there", user=slack.user_id("alice"))
    slack.post_message("random", "and hello", user=slack.user_id("bob"))
    proc.wait_for_line(r"^\(channel:C0RANDOM\) U0BOB says: and hello$")
    clean_exit(proc, proc.interrupt())
    # events arrive in order: had the first two been printed, they would come first
    assert proc.out[1:] == ["(channel:C0GENERAL) U0ALICE says: hi there",
                            "(channel:C0RANDOM) U0BOB says: and hello"]


def test_with_web_client(slack: FakeSlack, run: Any) -> None:
    proc = run("with_web_client.py")
    clean_exit(proc, proc.finish())
    ts = proc.wait_for_line(r"^Message sent to #general with ts (\d+\.\d+)$").group(1)
    general = slack.channel_id("general")
    assert [m["text"] for m in slack.messages(general) if m["ts"] == ts] == ["Hello, world!"]
    assert "conversations.list" in [c.method for c in slack.calls]


def test_with_web_client_follows_pagination_and_handles_no_channel(
        slack: FakeSlack, run: Any) -> None:
    for channel in slack.channels:
        slack.leave_channel(slack.bot_user_id, channel["id"])
    proc = run("with_web_client.py")
    assert proc.finish() == 1, proc.describe()
    assert "not in any channel" in proc.stdout
    # now the only channel with the bot in it sits on the second page of 200
    for i in range(200):
        slack.add_channel(f"filler-{i:03d}")
    slack.add_channel("far-away", is_member=True)
    proc = run("with_web_client.py")
    clean_exit(proc, proc.finish())
    ts = proc.wait_for_line(r"^Message sent to #far-away with ts (\S+)$").group(1)
    assert [m["ts"] for m in slack.messages("far-away")] == [ts]
    lists = [c for c in slack.calls if c.method == "conversations.list"]
    assert len(lists) == 3 and lists[-1].params.get("cursor")


def token_variables(path: Path) -> List[str]:
    """The token variables an example's ``Usage:`` line sets (``SLACK_PROXY`` is no token)."""
    found = re.search(r"^Usage: (.*?)python examples/", path.read_text(encoding="utf-8"), re.M)
    assert found, path.name
    return re.findall(r"(SLACK_(?:APP_)?TOKEN)=", found.group(1))


def test_examples_without_their_token_print_a_usage_line_naming_it(slack: FakeSlack,
                                                                    procs: List[Proc]) -> None:
    scripts = sorted(EXAMPLES.glob("*.py"))
    checked = 0
    for path in scripts:
        variables = token_variables(path)
        assert variables, f"{path.name}: its Usage line names no token variable"
        for missing in variables:  # each token missing in turn, the others set
            env = child_env(SLACK_API_URL=slack.api_url,
                            **{v: (slack.app_token if "APP" in v else slack.token)
                               for v in variables if v != missing})
            proc = Proc([str(path), *required_args(path)], env)
            procs.append(proc)
            check_usage(proc, path.name, missing)  # one at a time: a loaded machine is slow
            checked += 1
    # socket_mode.py and buttons.py need two tokens each
    assert checked == len(scripts) + 2
    assert slack.calls == []


def check_usage(proc: Proc, name: str, missing: str) -> None:
    """``proc`` printed one usage line naming the ``missing`` variable and exited 2."""
    code = proc.finish(60)
    assert code == 2, proc.describe()
    assert proc.out == [] and len(proc.err) == 1, proc.describe()
    assert proc.err[0].startswith("usage: ") and f"{missing}=" in proc.err[0], proc.describe()
    assert f"examples/{name}" in proc.err[0], proc.describe()


def test_one_variable_name_per_token() -> None:
    """The bot token is $SLACK_TOKEN everywhere, the app-level token $SLACK_APP_TOKEN."""
    texts = [(ROOT / "README.rst").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in EXAMPLES.glob("*.py")]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "slackrtm").rglob("*.py")]
    docs = ROOT / "docs"
    if docs.is_dir():
        texts += [p.read_text(encoding="utf-8") for p in docs.rglob("*.rst")]
    for text in texts:
        assert "SLACK_BOT_TOKEN" not in text


def test_lifecycle_events(slack: FakeSlack, run: Any) -> None:
    proc = run("lifecycle_events.py")
    proc.wait_for_line("^ready +state=ready( |$)")
    assert [line.split()[0] for line in proc.out] == [
        "connecting", "authenticated", "connected", "ready"]
    assert proc.out[1] == "authenticated  as fakebot (U0BOT) in Fake Workspace"
    slack.drop()
    proc.wait_for_line("^ready", start=4)
    clean_exit(proc, proc.interrupt())
    names = [line.split()[0].rstrip(":") for line in proc.out]
    assert names[4:] == ["reconnecting", "connecting", "authenticated", "connected", "ready",
                         "disconnecting", "disconnected"], proc.describe()
    assert proc.out[-1] == "disconnected   state=disconnected"
    for line in proc.out:  # each lifecycle line shows the state its event announced
        name = line.split()[0].rstrip(":")
        if name not in ("authenticated", "unable_to_rtm_start", "error"):
            assert re.match(rf"^{name} +state={name}( \(now \w+\))?$", line), line


def test_lifecycle_events_with_a_bad_token(slack: FakeSlack, run: Any) -> None:
    proc = run("lifecycle_events.py", token="xoxb-not-the-right-one")
    code = proc.finish()
    assert code == 1, proc.describe()
    assert proc.out[0].startswith("connecting")
    proc.wait_for_line("^unable_to_rtm_start: .*invalid_auth")
    proc.wait_for_line("^error +slack_rtmapi_platform_error: .*invalid_auth")
    assert [line.split()[0] for line in proc.out[-2:]] == ["disconnecting", "disconnected"]
    assert "PlatformError" in proc.stderr  # run_forever() raised the error that ended it
    assert "xoxb-not-the-right-one" not in proc.stdout + proc.stderr


def test_message_subtypes(slack: FakeSlack, run: Any) -> None:
    proc = run("message_subtypes.py")
    proc.wait_for_line("^Waiting for channel renames")
    slack.post_message("random", "an ordinary message")
    slack.rename_channel("random", "chitchat")
    proc.wait_for_line("^A channel was renamed from random to chitchat$")
    clean_exit(proc, proc.interrupt())
    assert len(proc.out) == 2, proc.describe()


def test_other_events(slack: FakeSlack, run: Any) -> None:
    proc = run("other_events.py")
    proc.wait_for_line("^Waiting for reactions")
    msg = slack.post_message("general", "react to me")
    slack.add_reaction("general", msg["ts"], "tada", user=slack.user_id("bob"))
    proc.wait_for_line(rf"^User U0BOB reacted with :tada: to {msg['ts']} in C0GENERAL$")
    clean_exit(proc, proc.interrupt())
    assert len(proc.out) == 2, proc.describe()


def test_presence_timecard(slack: FakeSlack, run: Any) -> None:
    timecard = slack.channel_id("timecard")
    alice, bob, carol = (slack.user_id(n) for n in ("alice", "bob", "carol"))

    def subscribed(ids: List[str]) -> None:
        slack.wait_for_received(
            lambda f: f.get("type") == "presence_sub" and f.get("ids") == ids, timeout=10)

    proc = run("presence_timecard.py", timecard)
    proc.wait_for_line(f"^timecard: {alice} is active$")
    subscribed([alice])
    (conn,) = slack.connections
    assert conn.batch_presence_aware
    assert [c.params.get("user") for c in slack.calls if c.method == "users.getPresence"] == [
        alice]

    slack.join_channel(carol, "dev")  # another channel: ignored
    slack.join_channel(bob, timecard)
    proc.wait_for_line(f"^timecard: {bob} is active$")
    subscribed([alice, bob])
    slack.set_presence(carol, "active")  # not tracked: ignored
    slack.set_presence(bob, "away")
    proc.wait_for_line(f"^timecard: {bob} is away$")
    slack.leave_channel(alice, timecard)
    proc.wait_for_line(f"^timecard: {alice} left, timecard removed$")
    subscribed([bob])
    slack.set_presence(alice, "away")  # no longer tracked
    slack.set_presence(bob, "active")
    proc.wait_for_line(f"^timecard: {bob} is active$", start=3)
    clean_exit(proc, proc.interrupt())
    assert proc.out == [
        f"timecard: {alice} is active", f"timecard: {bob} is active",
        f"timecard: {bob} is away", f"timecard: {alice} left, timecard removed",
        f"timecard: {bob} is active", f"{bob}: active away active"], proc.describe()


def test_workspace_cache(slack: FakeSlack, run: Any) -> None:
    member_of = sorted(c["name"] for c in slack.channels if c["is_member"])
    proc = run("workspace_cache.py")
    line = proc.wait_for_line("^snapshot: ").string
    assert line == (f"snapshot: {len(slack.users)} users, {len(slack.channels)} channels; "
                    f"member of {', '.join('#' + n for n in member_of)}")
    methods = [c.method for c in slack.calls]
    assert "rtm.start" in methods and "rtm.connect" not in methods
    slack.wait_for_connections(1)  # "authenticated" comes before the WebSocket opens
    slack.rename_channel("random", "chitchat")
    proc.wait_for_line("^channel C0RANDOM is now #chitchat$")
    slack.post_message("C0RANDOM", "still here", user=slack.user_id("bob"))
    proc.wait_for_line("^#chitchat U0BOB: still here$")
    clean_exit(proc, proc.interrupt())


def test_custom_logger(slack: FakeSlack, run: Any, tmp_path: Path) -> None:
    log_path = tmp_path / "bot.log"
    proc = run("custom_logger.py", str(log_path))
    clean_exit(proc, proc.finish())
    assert proc.out == [f"Wrote the client's debug log to {log_path}"]
    assert proc.stderr == ""  # nothing went to the stdlib logger / stderr
    log = log_path.read_text(encoding="utf-8")
    lines = log.splitlines()
    assert sum("[debug]" in line for line in lines) >= 3, log
    assert all(re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+ \[(debug|info|warn|error)\] ", line)
               for line in lines if line and not line.startswith((" ", "Traceback")))
    assert "ready" in log and "disconnected" in log, log
    assert slack.token not in log
    assert "/rtm/" not in log  # the WebSocket URL's one-time ticket is not logged either


def test_proxy(slack: FakeSlack, run: Any) -> None:
    with FakeProxy(auth=("bot", "s3cret pass")) as proxy:
        proc = run("proxy.py", SLACK_PROXY=proxy.url_with_auth)
        clean_exit(proc, proc.finish())
        assert proc.out == ["Connected through SLACK_PROXY as fakebot to Fake Workspace"]
        assert "s3cret" not in proc.stdout + proc.stderr
        requests = proxy.requests
    assert not proxy.rejected
    # the Web API call is forwarded (an http:// target), the WebSocket tunnelled
    assert ("POST", slack.api_url + "rtm.connect") in requests
    assert ("CONNECT", f"127.0.0.1:{slack.port}") in requests
    assert slack.connect_count == 1


def test_proxy_from_the_environment(slack: FakeSlack, run: Any) -> None:
    with FakeProxy() as proxy:
        # FakeSlack speaks http://, so HTTP_PROXY applies (HTTPS_PROXY does for Slack itself)
        proc = run("proxy.py", HTTP_PROXY=proxy.url)
        clean_exit(proc, proc.finish())
        assert proc.out == ["Connected directly (or via HTTPS_PROXY) as fakebot to Fake Workspace"]
        assert ("CONNECT", f"127.0.0.1:{slack.port}") in proxy.requests
        proc = run("proxy.py", HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1")
        clean_exit(proc, proc.finish())
        assert slack.connect_count == 2
        assert len([r for r in proxy.requests if r[0] == "CONNECT"]) == 1


def test_greeter(slack: FakeSlack, run: Any) -> None:
    assert run("greeter.py").finish() == 2  # no channel: usage, exit 2
    general = slack.channel_id("general")
    proc = run("greeter.py", general)
    proc.wait_for_line(f"^Greeting the people who join {general}$")
    dave = slack.add_user("dave", real_name="Dave Dune")
    slack.join_channel(dave, "random")  # another channel: ignored
    slack.join_channel(dave, general)
    proc.wait_for_line("^greeted Dave Dune in #general$")
    slack.update_user(dave, real_name="David Dune")  # the store follows user_change
    slack.leave_channel(dave, general)
    slack.join_channel(dave, general)
    proc.wait_for_line("^greeted David Dune in #general$")
    slack.wait_until(lambda: len([m for m in slack.messages(general)
                                  if m["user"] == slack.bot_user_id]) == 2)
    clean_exit(proc, proc.interrupt())
    assert [m["text"] for m in slack.messages(general)] == [
        "Welcome to #general, Dave Dune!", "Welcome to #general, David Dune!"]
    # team_join brought dave in: no users.info call was needed at all
    assert slack.call_count("users.info") == 0


def test_logger(slack: FakeSlack, run: Any, tmp_path: Path) -> None:
    assert run("logger.py").finish() == 2
    log = tmp_path / "messages.log"
    proc = run("logger.py", str(log))
    proc.wait_for_line("^Logging messages to ")
    first = [slack.post_message("general", "one"), slack.post_message("ops", "two")]
    proc.wait_for_line(rf"^logged \S+ {first[1]['ts']}$")
    clean_exit(proc, proc.interrupt())
    # posted while no logger runs
    missed = [slack.post_message("general", "three"), slack.post_message("ops", "four")]
    proc = run("logger.py", str(log))
    proc.wait_for_line("^Logging messages to ")
    # the backfill runs after the ready handlers: let it finish (a message posted while it
    # runs may come backfilled, which is right too, but not what this test checks)
    members = len([c for c in slack.channels if c["is_member"]])
    slack.wait_for_call("conversations.history", count=members)
    slack.wait_until(lambda: all(c.status for c in slack.calls))
    proc.wait_for_line(rf"^logged \S+ {missed[1]['ts']} \(backfilled\)$")
    last = slack.post_message("timecard", "five")
    proc.wait_for_line(rf"^logged \S+ {last['ts']}$")
    clean_exit(proc, proc.interrupt())
    assert proc.out[1:] == [f"logged {m['channel']} {m['ts']} (backfilled)" for m in missed] + [
        f"logged {last['channel']} {last['ts']}"]
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [(r["ts"], r["text"], r["backfilled"]) for r in lines] == [
        (m["ts"], m["text"], m in missed) for m in first + missed + [last]]


def test_socket_mode(slack: FakeSlack, run: Any) -> None:
    general = slack.channel_id("general")
    alice, bob = slack.user_id("alice"), slack.user_id("bob")
    proc = run("socket_mode.py", SLACK_APP_TOKEN=slack.app_token)
    proc.wait_for_line("^Connected over Socket Mode as app A0FAKE. Press Ctrl-C to stop.$")
    hello = slack.post_message(general, "hello bot", user=alice)
    slack.post_message(general, "no greeting in this one", user=bob)
    slack.wait_until(lambda: len(slack.messages(general)) == 3, what="the bot's greeting")
    slack.add_reaction(general, hello["ts"], "tada", user=bob)
    slack.wait_until(lambda: len(slack.messages(general)) == 4, what="the bot's thanks")
    slack.wait_until(lambda: all(slack.acked(e["envelope_id"]) for _, e in slack.delivered),
                     what="every envelope acknowledged")
    clean_exit(proc, proc.interrupt())  # handlers of envelopes already read run first
    mine = [m for m in slack.messages(general) if m["user"] == slack.bot_user_id]
    assert [(m["text"], m.get("thread_ts")) for m in mine] == [
        (f"Hello <@{alice}>!", None), ("Thanks for the :tada:", hello["ts"])]
    methods = [c.method for c in slack.calls]
    assert methods.count("chat.postMessage") == 2 and methods.count("auth.test") == 1
    assert methods.count("apps.connections.open") == 1 and "rtm.connect" not in methods
    assert slack.app_token not in proc.stdout + proc.stderr
    assert slack.token not in proc.stdout + proc.stderr


@pytest.mark.parametrize("mode", [[], ["--socket-mode"]], ids=["rtm", "socket_mode"])
def test_portable_bot(slack: FakeSlack, run: Any, mode: List[str]) -> None:
    general = slack.channel_id("general")
    alice = slack.user_id("alice")
    proc = run("portable_bot.py", *mode, SLACK_APP_TOKEN=slack.app_token)
    kind = "Socket Mode" if mode else "RTM"
    proc.wait_for_line(f"^Ready as @fakebot over {kind}. Press Ctrl-C to stop.$", 30)
    slack.post_message(general, "no mention here", user=alice)
    asked = slack.post_message(general, f"<@{slack.bot_user_id}> are you there?", user=alice)
    proc.wait_for_line("^Answered @alice in #general$", 30)
    clean_exit(proc, proc.interrupt())
    mine = [m for m in slack.messages(general) if m["user"] == slack.bot_user_id]
    assert [(m["text"], m.get("thread_ts")) for m in mine] == [
        ("Hi alice, I heard you in #general.", asked["ts"])]
    stored = next(m for m in slack.messages(general) if m["ts"] == asked["ts"])
    assert [(r["name"], r["users"]) for r in stored.get("reactions", [])] == [
        ("eyes", [slack.bot_user_id])]
    methods = [c.method for c in slack.calls]
    opened = "apps.connections.open" if mode else "rtm.connect"
    assert methods.count(opened) == 1 and methods.count("reactions.add") == 1
    assert methods.count("users.info") == 1  # the store asks once for a name
    assert proc.out[1:] == ["Answered @alice in #general"]
    assert slack.token not in proc.stdout + proc.stderr
    assert slack.app_token not in proc.stdout + proc.stderr


def test_slash_command(slack: FakeSlack, run: Any) -> None:
    proc = run("slash_command.py", SLACK_APP_TOKEN=slack.app_token)
    proc.wait_for_line("^Waiting for slash commands")
    echo = slack.slash_command("/echo", "hi there", user="alice")
    other = slack.slash_command("/nope", user="bob")
    # the in_channel answer comes back as a message, whose ack may come before /nope's
    slack.wait_until(lambda: slack.acked(echo["envelope_id"]) and slack.acked(
        other["envelope_id"]), timeout=30, what="both commands' acks")
    acks = {a.envelope_id: a for a in slack.acks}
    assert acks[echo["envelope_id"]].payload == {
        "text": f"<@{slack.user_id('alice')}> said: hi there", "response_type": "in_channel"}
    assert acks[other["envelope_id"]].payload == {"text": "Sorry, I do not know /nope."}
    assert not any(a.late for a in acks.values())
    proc.wait_for_line("^U0BOB ran /nope$")
    clean_exit(proc, proc.interrupt())
    assert proc.out == ["Waiting for slash commands. Press Ctrl-C to stop.",
                        "U0ALICE ran /echo hi there", "U0BOB ran /nope"]
    commands = {echo["envelope_id"], other["envelope_id"]}
    assert len([a for a in slack.acks if a.envelope_id in commands]) == 2  # no redelivery
    # as in Slack, the in_channel answer is posted to the channel (an events_api message,
    # acked too); the other one is seen by bob only
    answers = slack.responses
    assert [(r.command, r.response_type, r.via) for r in answers] == [
        ("/echo", "in_channel", "ack"), ("/nope", "ephemeral", "ack")]
    assert slack.messages("general")[-1]["text"] == f"<@{slack.user_id('alice')}> said: hi there"


def test_buttons(slack: FakeSlack, run: Any) -> None:
    from slackrtm.testing import Playground

    playground = Playground(slack, web=False)
    proc = run("buttons.py", SLACK_APP_TOKEN=slack.app_token)
    proc.wait_for_line("^Say 'deploy'")
    slack.post_message("general", "please deploy", user=slack.user_id("bob"))
    slack.wait_until(lambda: any(m.get("blocks") for m in slack.messages("general")),
                     timeout=30, what="the bot's question")
    (question,) = [m for m in slack.messages("general") if m.get("blocks")]
    assert question["user"] == slack.bot_user_id and "<@U0BOB>" in question["text"]
    playground.actions.run("click", {"as": "carol", "channel": "general",
                                     "ts": question["ts"], "action_id": "approve"})
    slack.wait_until(lambda: "edited" in slack.messages("general")[-1], timeout=30,
                     what="the bot's update")
    updated = slack.messages("general")[-1]
    assert updated["ts"] == question["ts"]
    assert updated["text"] == "Deploy of build-42 approved by <@U0CAROL>."
    assert [b["type"] for b in updated["blocks"]] == ["section"]
    proc.wait_for_line("^U0CAROL approved build-42$")
    clean_exit(proc, proc.interrupt())


def required_args(path: Path) -> List[str]:
    """The arguments an example's ``Usage:`` line requires (``[OPTIONAL]`` ones left out)."""
    found = re.search(r"^Usage: .*?python examples/\S+\.py(.*)$",
                      path.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, f"{path.name} has no 'Usage: ... python examples/{path.name}' line"
    words = found.group(1).split("(")[0].split()
    return [word for word in words if not word.startswith("[")]


def test_examples_without_their_arguments_print_a_usage_line(slack: FakeSlack,
                                                             run: Any) -> None:
    scripts = sorted(EXAMPLES.glob("*.py"))
    for path in scripts:  # an example reading arguments says so in its Usage line
        if re.search(r"sys\.argv\[[1-9]|len\(sys\.argv\)", path.read_text(encoding="utf-8")):
            assert re.search(rf"examples/{path.name} +\S", path.read_text(encoding="utf-8"))
    needing = {p.name: required_args(p) for p in scripts if required_args(p)}
    assert sorted(needing) == ["connect_and_send.py", "greeter.py", "logger.py",
                               "long_report.py", "presence_timecard.py"]
    procs = {name: run(name, SLACK_APP_TOKEN=slack.app_token) for name in needing}
    for name, proc in procs.items():
        code = proc.finish()
        assert code == 2, proc.describe()
        assert proc.out == [] and len(proc.err) == 1, proc.describe()
        assert re.match(rf"^usage: .*python \S*examples/{name} {' '.join(needing[name])}$",
                        proc.err[0]), proc.describe()
    assert slack.calls == []  # nothing connected before the arguments were checked


def _poll(cond: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _get(url: str) -> tuple:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health_endpoint(slack: FakeSlack, run: Any) -> None:
    proc = run("health_endpoint.py", SLACK_APP_TOKEN=slack.app_token, HEALTH_PORT="0")
    found = proc.wait_for_line(r"^Health checks on http://127\.0\.0\.1:(\d+)/livez")
    base = f"http://127.0.0.1:{found.group(1)}"
    slack.wait_for_socket_connections(1, timeout=15)
    _poll(lambda: _get(base + "/readyz")[0] == 200, "ready")
    assert _get(base + "/livez") == (200, {"ok": True, "state": "ready"})
    status, health = _get(base + "/health")
    assert status == 200 and health["state"] == "ready" and health["num_connections"] == 1
    slack.events_api({"type": "app_mention", "text": "hi"})
    _poll(lambda: _get(base + "/health")[1]["acked"] == 1, "the ack counted")
    slack.disconnect("link_disabled")  # Socket Mode turned off: the run ends for good
    assert proc.finish(30) == 1, proc.describe()
    assert "Traceback" not in proc.stderr and "stopped: " in proc.stderr, proc.describe()


def test_enqueue_rq(slack: FakeSlack, run: Any, procs: List[Proc], redis_url: str) -> None:
    from redis import Redis
    from rq import Queue
    general = slack.channel_id("general")
    random_ = slack.add_channel("reports", is_member=True)  # the bot posts in both
    proc = run("enqueue_rq.py", SLACK_APP_TOKEN=slack.app_token, REDIS_URL=redis_url)
    proc.wait_for_line("^Queueing events to 4 RQ queues")
    posted = [slack.post_message(channel, f"report {i}", user="alice")
              for i in range(4) for channel in (general, random_)]
    slack.wait_until(lambda: len(slack.acks) >= len(posted), 60, "every envelope acked")
    r = Redis.from_url(redis_url)
    queued: Dict[str, List[str]] = {}
    for i in range(4):
        for job in Queue(f"slack-{i}", connection=r).get_jobs():
            event = job.args[0]
            queued.setdefault(event["channel"], []).append(event["text"])
            assert job.func_name == "enqueue_rq.handle_event"
    # each channel's events went, in order, to one queue
    assert queued == {general: [f"report {i}" for i in range(4)],
                      random_: [f"report {i}" for i in range(4)]}
    clean_exit(proc, proc.interrupt())
    worker = Proc(["-m", "rq.cli", "worker", "--burst", "--url", redis_url,
                   "--worker-class", "rq.worker.SimpleWorker",
                   "slack-0", "slack-1", "slack-2", "slack-3"],
                  child_env(SLACK_TOKEN=slack.token, SLACK_API_URL=slack.api_url,
                            PYTHONPATH=str(EXAMPLES) + os.pathsep + str(ROOT)))
    procs.append(worker)
    assert worker.finish(120) == 0, worker.describe()
    replies = [m for channel in (general, random_) for m in slack.messages(channel)
               if m["user"] == slack.bot_user_id]
    assert len(replies) == len(posted)
