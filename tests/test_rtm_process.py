"""Process-level behaviour: the client keeps a script alive; run_forever and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from slackrtm.testing import FakeSlack

ROOT = str(Path(__file__).resolve().parents[1])


def spawn(code: str, slack: FakeSlack) -> subprocess.Popen[str]:
    env = dict(os.environ, SLACK_TOKEN=slack.token, SLACK_API_URL=slack.api_url,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_started_client_keeps_the_script_alive(slack: FakeSlack) -> None:
    proc = spawn("""
        import os
        from slackrtm import RTMClient
        rtm = RTMClient(os.environ["SLACK_TOKEN"], client_ping_timeout=1, server_pong_timeout=0.5)

        @rtm.on("ready")
        def ready():
            print("ready", flush=True)

        @rtm.on("reaction_added")
        def done(event):
            print("got", event["reaction"], flush=True)
            rtm.disconnect()

        rtm.start()
        # the main thread ends here; the client keeps the process alive
        """, slack)
    try:
        assert read_line(proc) == "ready"
        slack.inject({"type": "reaction_added", "reaction": "wave"})
        assert read_line(proc) == "got wave"
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        proc.kill()


def _run_forever_script() -> str:
    return """
        import os
        from slackrtm import RTMClient
        rtm = RTMClient(os.environ["SLACK_TOKEN"])
        rtm.on("ready", lambda: print("ready", flush=True))
        rtm.on("disconnected", lambda: print("disconnected", flush=True))
        rtm.run_forever()
        print("returned", rtm.state, flush=True)
        """


def test_sigterm_disconnects_cleanly(slack: FakeSlack) -> None:
    proc = spawn(_run_forever_script(), slack)
    try:
        assert read_line(proc) == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        out = proc.stdout.read() if proc.stdout else ""
        assert "disconnected" in out and "returned disconnected" in out
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()


def test_ctrl_c_disconnects_cleanly(slack: FakeSlack) -> None:
    proc = spawn(_run_forever_script(), slack)
    try:
        assert read_line(proc) == "ready"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        out = proc.stdout.read() if proc.stdout else ""
        assert "returned disconnected" in out
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()


def test_run_forever_raises_fatal_error(slack: FakeSlack) -> None:
    proc = spawn("""
        from slackrtm import RTMClient, PlatformError
        rtm = RTMClient("xoxb-not-the-token")
        try:
            rtm.run_forever()
        except PlatformError as err:
            print("raised", err.error, flush=True)
        """, slack)
    try:
        assert proc.wait(timeout=15) == 0
        assert proc.stdout is not None and "raised invalid_auth" in proc.stdout.read()
    finally:
        proc.kill()
