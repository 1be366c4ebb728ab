"""A script that fails exits; a script that reaches its last line keeps running while its
client runs; Ctrl-C during a long handler exits promptly. Both clients, in subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

from slackrtm.testing import FakeSlack

ROOT = str(Path(__file__).resolve().parents[1])
KINDS = ["rtm", "socket_mode"]

PRELUDE = {
    "rtm": """
        import os, sys, time
        from slackrtm import RTMClient
        client = RTMClient(os.environ["SLACK_TOKEN"], client_ping_timeout=2,
                           server_pong_timeout=1)
        """,
    "socket_mode": """
        import os, sys, time
        from slackrtm import SocketModeClient
        client = SocketModeClient(os.environ["SLACK_APP_TOKEN"], client_ping_timeout=2,
                                  server_pong_timeout=1)
        """,
}


def spawn(kind: str, body: str, slack: FakeSlack) -> subprocess.Popen[str]:
    env = dict(os.environ, SLACK_TOKEN=slack.token, SLACK_APP_TOKEN=slack.app_token,
               SLACK_API_URL=slack.api_url,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = textwrap.dedent(PRELUDE[kind]) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def finish(proc: subprocess.Popen[str], timeout: float) -> Tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the process did not exit within {timeout} s:\n{out}\n{err}")
    return proc.returncode, out, err


def event(slack: FakeSlack, kind: str, name: str) -> None:
    if kind == "rtm":
        slack.inject({"type": name})
    else:
        slack.events_api({"type": name})


@pytest.fixture
def procs() -> Iterator[List[Any]]:
    started: List[Any] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("kind", KINDS)
def test_a_script_whose_main_code_raises_exits(slack: FakeSlack, kind: str,
                                               procs: List[Any]) -> None:
    proc = spawn(kind, """
        client.start().result(timeout=30)
        print("ready", flush=True)
        raise RuntimeError("the script failed")
        """, slack)
    procs.append(proc)
    assert read_line(proc) == "ready"
    code, _, err = finish(proc, 30)
    assert code == 1 and "RuntimeError: the script failed" in err, err


@pytest.mark.parametrize("kind", KINDS)
def test_a_start_that_times_out_exits(slack: FakeSlack, kind: str, procs: List[Any]) -> None:
    slack.hold_hello = True  # connected, never ready: result(timeout) raises
    proc = spawn(kind, """
        print("starting", flush=True)
        client.start().result(timeout=1)
        """, slack)
    procs.append(proc)
    assert read_line(proc) == "starting"
    code, _, err = finish(proc, 30)
    assert code == 1 and "TimeoutError" in err, err


@pytest.mark.parametrize("kind", KINDS)
def test_ctrl_c_during_a_long_handler_exits_promptly(slack: FakeSlack, kind: str,
                                                     procs: List[Any]) -> None:
    proc = spawn(kind, """
        @client.on("busy")
        def busy(event):
            print("busy", flush=True)
            time.sleep(20)
            print("handler finished", flush=True)

        client.on("ready", lambda: print("ready", flush=True))
        client.run_forever()
        print("returned", client.state, flush=True)
        """, slack)
    procs.append(proc)
    assert read_line(proc) == "ready"
    event(slack, kind, "busy")
    assert read_line(proc) == "busy"
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, 30)
    took = time.monotonic() - interrupted
    assert took < 10, f"took {took:.1f} s to exit after Ctrl-C"
    assert code == 0 and "returned disconnected" in out and "handler finished" not in out
    assert "Traceback" not in err, err


@pytest.mark.parametrize("kind", KINDS)
def test_a_script_that_reaches_its_last_line_keeps_running(slack: FakeSlack, kind: str,
                                                           procs: List[Any]) -> None:
    proc = spawn(kind, """
        @client.on("finish")
        def done(event):
            print("got it", flush=True)
            client.disconnect()

        client.on("ready", lambda: print("ready", flush=True))
        client.start()
        print("last line", flush=True)
        """, slack)
    procs.append(proc)
    assert {read_line(proc), read_line(proc)} == {"ready", "last line"}
    time.sleep(1.0)  # the main code is over; the process must still be there
    assert proc.poll() is None
    event(slack, kind, "finish")
    code, out, err = finish(proc, 30)
    assert code == 0 and "got it" in out and err == "", err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_script_kept_running_stops_on_a_signal(slack: FakeSlack, kind: str, sig: int,
                                                 procs: List[Any]) -> None:
    proc = spawn(kind, """
        client.on("disconnected", lambda: print("disconnected", flush=True))
        client.start().result(timeout=30)
        print("last line", flush=True)
        """, slack)
    procs.append(proc)
    assert read_line(proc) == "last line"
    time.sleep(0.5)  # let the main code end: the exit hook is waiting now
    proc.send_signal(sig)
    code, out, err = finish(proc, 30)
    assert code == 0 and "disconnected" in out and "Traceback" not in err, (out, err)
    slack.wait_until(lambda: not slack.connections and not slack.socket_connections, 30,
                     "the server saw the connection closed")


def test_a_client_started_inside_a_handler_thread_does_not_outlive_a_failed_main(
        slack: FakeSlack, procs: List[Any]) -> None:
    """A restart from a handler (a new run with new threads) is covered too."""
    proc = spawn("rtm", """
        restarted = []

        @client.on("restart")
        def restart(event):
            client.disconnect()
            client.start()
            restarted.append(1)
            print("restarted", flush=True)

        client.start().result(timeout=30)
        print("ready", flush=True)
        while not restarted:
            time.sleep(0.05)
        raise SystemError("main failed after a restart")
        """, slack)
    procs.append(proc)
    assert read_line(proc) == "ready"
    slack.inject({"type": "restart"})
    code, _, err = finish(proc, 30)
    assert code == 1 and "SystemError" in err, err
