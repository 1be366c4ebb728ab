"""FakeSlack's lifecycle: start, addresses, clean shutdown, threads, pytest plugin, CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
import requests
import websocket

import slackrtm.testing
from slackrtm.testing import FakeProxy, FakeSlack

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert [t.name for t in threading.enumerate() if t not in before] == []


def new_threads(before: List[threading.Thread]) -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before]


def rtm_url(slack: FakeSlack) -> str:
    with requests.Session() as http:
        http.trust_env = False
        return str(http.post(slack.api_url + "rtm.connect", timeout=5, headers={
            "Authorization": f"Bearer {slack.token}"}).json()["url"])


def test_public_names() -> None:
    assert slackrtm.testing.__all__ == ["Ack", "ApiCall", "FakeConnection", "FakeProxy",
                                        "FakeSlack", "FakeSocksProxy", "MissedAck",
                                        "Playground", "ResponsePost"]
    for name in slackrtm.testing.__all__:
        assert getattr(slackrtm.testing, name).__doc__
    with pytest.raises(AttributeError):
        slackrtm.testing.Nothing  # noqa: B018


def test_addresses_and_close(no_leaks: None) -> None:
    before = threading.enumerate()
    slack = FakeSlack()
    assert slack.host == "127.0.0.1" and slack.port > 0
    assert slack.api_url == f"http://127.0.0.1:{slack.port}/api/"
    threads = new_threads(before)
    assert threads and all(t.name.startswith("fakeslack-") and t.daemon for t in threads)
    t0 = time.monotonic()
    slack.close()
    slack.close()  # idempotent
    assert time.monotonic() - t0 < 1
    assert "closed" in repr(slack)
    with pytest.raises(requests.ConnectionError):
        requests.post(slack.api_url + "auth.test", timeout=5)


def test_close_while_everything_is_busy(no_leaks: None) -> None:
    slack = FakeSlack()
    before = threading.enumerate()
    ws = websocket.create_connection(rtm_url(slack), timeout=5, http_no_proxy=["*"])
    assert json.loads(ws.recv())["type"] == "hello"
    frozen = websocket.create_connection(rtm_url(slack), timeout=5, http_no_proxy=["*"])
    slack.freeze(to=2)
    slack.reply_delay = 30.0
    ws.send(json.dumps({"type": "message", "id": 1, "channel": "C0GENERAL", "text": "later"}))
    slack.goodbye(to=2, grace=30.0)
    slack.hang_handshake = True
    hung = socket.create_connection((slack.host, slack.port), timeout=5)
    hung.sendall(f"GET {rtm_url(slack).split(str(slack.port), 1)[1]} HTTP/1.1\r\n"
                 "Host: x\r\nUpgrade: websocket\r\n\r\n".encode())
    slack.fail_next("auth.test", delay=30.0)
    keepalive = requests.Session()
    keepalive.trust_env = False
    outcome: List[object] = []

    def slow_call() -> None:
        try:
            outcome.append(keepalive.post(slack.api_url + "auth.test", timeout=30))
        except requests.RequestException as exc:
            outcome.append(exc)

    slow = threading.Thread(target=slow_call)
    slow.start()
    slack.wait_for_call("auth.test")
    slack.wait_until(lambda: slack.handshake_attempts == 3)
    slack.wait_for_received("message")
    assert all(t.name.startswith("fakeslack-") for t in new_threads(before) if t is not slow)
    t0 = time.monotonic()
    slack.close()
    assert time.monotonic() - t0 < 2
    assert slack.threads == []
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and data[:2] == (1001).to_bytes(2, "big")
    slow.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)
    assert hung.recv(100) == b""
    for closable in (ws, frozen, hung, keepalive):
        closable.close()


def test_loopback_only(no_leaks: None) -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            FakeSlack(host=host)
        with pytest.raises(ValueError, match="loopback"):
            FakeProxy(host=host)
    with FakeSlack(host="localhost") as slack:
        assert slack.api_url.startswith("http://localhost:")


def test_fixed_port_and_port_in_use(no_leaks: None) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FakeSlack(port=port) as slack:
        assert slack.port == port and slack.api_url == f"http://127.0.0.1:{port}/api/"
        with pytest.raises(OSError):
            FakeSlack(port=port)


def test_ipv6_loopback(no_leaks: None) -> None:
    try:
        slack = FakeSlack(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with slack:
        assert slack.api_url == f"http://[::1]:{slack.port}/api/"
        url = rtm_url(slack)
        assert url.startswith(f"ws://[::1]:{slack.port}/rtm/")
        ws = websocket.create_connection(url, timeout=5, http_no_proxy=["*"])
        assert json.loads(ws.recv())["type"] == "hello"
        ws.close()


def test_wait_until(no_leaks: None) -> None:
    with FakeSlack() as slack:
        slack.wait_until(lambda: slack.connect_count == 0)
        with pytest.raises(TimeoutError, match=r"after 0\.01s waiting for a custom thing 7"):
            slack.wait_until(lambda: False, timeout=0.01, what=lambda: "a custom thing 7")


def run(args: List[str], cwd: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_plugin_is_cheap_to_import() -> None:
    result = run(["-c", "import sys, slackrtm.testing.pytest_plugin; "
                        "print(sorted(m for m in sys.modules if 'testing.' in m))"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['slackrtm.testing.pytest_plugin']"


def test_pytest_plugin_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_uses_fixtures.py").write_text(
        "import threading, requests\n"
        "def test_fixtures(fake_slack, fake_proxy):\n"
        "    fake_slack.post_message('general', 'hi')\n"
        "    assert fake_slack.messages('general')[0]['text'] == 'hi'\n"
        "    assert fake_proxy.url.startswith('http://127.0.0.1:')\n"
        "def test_closed_after():\n"
        "    assert not [t for t in threading.enumerate() if t.name.startswith('fakeslack')]\n")
    result = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:slackrtm",
                  "-p", "slackrtm.testing.pytest_plugin", "--rootdir", str(tmp_path),
                  "-c", os.devnull, str(tmp_path)], cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_command_line_server_is_fake_slack() -> None:
    """``python -m slackrtm.testing`` is ``python -m slackrtm fake-slack``, options too."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "slackrtm.testing", "--token", "xoxb-cli"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("  export SLACK_TOKEN="):
            line = proc.stdout.readline()
            assert line, (lines, proc.stderr and proc.stderr.read())
            lines.append(line)
        url = next(li for li in lines if "SLACK_API_URL=" in li).strip().split("=", 1)[1]
        assert lines[-1].strip() == "export SLACK_TOKEN=xoxb-cli"
        with requests.Session() as http:
            http.trust_env = False
            assert http.post(url + "auth.test", data={"token": "xoxb-cli"},
                             timeout=30).json()["ok"] is True
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_events_default_to_alice_after_she_was_renamed() -> None:
    with FakeSlack() as slack:
        slack.rename_user("alice", "alicia")
        msg = slack.post_message("general", "still me")
        assert msg["user"] == "U0ALICE"
