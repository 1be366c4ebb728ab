"""The network around both legs: one trust store, proxies from the environment and SOCKS,
and which Web API failures are repeated.

Every leg is real: FakeSlack over TLS with a private CA (trustme), FakeProxy (HTTP) and
FakeSocksProxy (SOCKS5) on loopback, and small raw HTTP servers for failures.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

import pytest
import trustme

from slackrtm import RTMClient, SocketModeClient
from slackrtm.errors import SlackHTTPError, WebsocketError
from slackrtm.testing import FakeProxy, FakeSlack, FakeSocksProxy
from slackrtm.web import WebClient, is_safe_to_repeat
from tests.conftest import FAST, SM_FAST, client_threads, wait_until
from tests.test_web_servers import RecordingServer, Reply

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # generous: the suite runs on loaded machines
ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
       "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
       "SSL_CERT_DIR", "SLACK_API_URL")
Client = Union[RTMClient, SocketModeClient]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clients() -> Iterator[List[Client]]:
    made: List[Client] = []
    yield made
    for client in made:
        client.disconnect(timeout=10.0)
    assert not client_threads(), client_threads()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_slack(ca: trustme.CA) -> Iterator[FakeSlack]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    with FakeSlack(ssl_context=server) as slack:
        slack.message_rate = None
        yield slack


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "corporate-ca.pem"
    path.write_bytes(ca.cert_pem.bytes())
    return str(path)


def build(kind: str, slack: FakeSlack, clients: List[Client], **kwargs: Any) -> Client:
    client: Client
    if kind == "rtm":
        client = RTMClient(slack.token, **{**FAST, "slack_api_url": slack.api_url, **kwargs})
    else:
        client = SocketModeClient(slack.app_token,
                                  **{**SM_FAST, "slack_api_url": slack.api_url, **kwargs})
    clients.append(client)
    return client


def ws_connections(slack: FakeSlack) -> int:
    return int(slack.connect_count)


# --- one trust store ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rtm", "socket_mode"])
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_ca_bundle_from_the_environment_serves_both_legs(
        kind: str, variable: str, tls_slack: FakeSlack, ca_file: str,
        clients: List[Client], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, ca_file)
    client = build(kind, tls_slack, clients)
    client.start().result(timeout=WAIT)  # https for the URL call, then wss
    assert client.connected
    if isinstance(client, RTMClient):
        reply = client.send_message("over one trust store",
                                     tls_slack.channel_id("general")).result(timeout=WAIT)
        assert reply["ok"] is True


def test_the_websocket_leg_reads_the_environments_ca_bundle(
        tls_slack: FakeSlack, ca: trustme.CA, ca_file: str, clients: List[Client],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The Web API leg is trusted explicitly through its own client, so only the WebSocket
    # leg depends on the default store: without the bundle it refuses the private CA...
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    web = WebClient(tls_slack.token, base_url=tls_slack.api_url, ssl_context=trusted)
    refused = build("rtm", tls_slack, clients, web_client=web, auto_reconnect=False)
    error = refused.start().exception(timeout=WAIT)
    assert isinstance(error, WebsocketError) and "TLS" in str(error), error
    # ... and with REQUESTS_CA_BUNDLE (requests' own variable) it trusts it, as the Web
    # API leg does: before, websocket-client read only the system store.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    accepted = build("rtm", tls_slack, clients, web_client=web)
    accepted.start().result(timeout=WAIT)
    web.close()


def test_without_the_ca_the_web_api_leg_refuses(tls_slack: FakeSlack,
                                                clients: List[Client]) -> None:
    client = build("rtm", tls_slack, clients, auto_reconnect=False)
    error = client.start().exception(timeout=WAIT)
    assert isinstance(error, SlackHTTPError) and "TLS" in str(error), error
    assert ws_connections(tls_slack) == 0


def test_one_context_object_for_both_legs(slack: FakeSlack, clients: List[Client]) -> None:
    client = build("rtm", slack, clients)
    assert client.web_client.ssl_context is client._ssl_context
    given = ssl.create_default_context()
    other = build("rtm", slack, clients, ssl_context=given)
    assert other.web_client.ssl_context is given and other._ssl_context is given


# --- proxies from the environment --------------------------------------------------------


@pytest.mark.parametrize("kind", ["rtm", "socket_mode"])
def test_all_proxy_carries_both_legs(kind: str, slack: FakeSlack, clients: List[Client],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeProxy() as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        client = build(kind, slack, clients)
        client.start().result(timeout=WAIT)
        method = "rtm.connect" if kind == "rtm" else "apps.connections.open"
        seen = proxy.requests
        assert ("POST", f"{slack.api_url}{method}") in seen, seen  # the Web API leg
        assert ("CONNECT", f"127.0.0.1:{slack.port}") in seen, seen  # the WebSocket leg
        client.disconnect(timeout=WAIT)


@pytest.mark.parametrize("variable", ["ALL_PROXY", "HTTP_PROXY"])
def test_no_proxy_keeps_both_legs_direct(variable: str, slack: FakeSlack,
                                         clients: List[Client],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeProxy() as proxy:
        monkeypatch.setenv(variable, proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.0/8")
        client = build("rtm", slack, clients)
        client.start().result(timeout=WAIT)
        client.send_message("direct", slack.channel_id("general")).result(timeout=WAIT)
        client.disconnect(timeout=WAIT)
        assert proxy.requests == []


# --- SOCKS ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rtm", "socket_mode"])
def test_an_explicit_socks5h_proxy_carries_both_legs(kind: str, slack: FakeSlack,
                                                     clients: List[Client]) -> None:
    api_by_name = slack.api_url.replace("127.0.0.1", "localhost")
    with FakeSocksProxy() as socks:
        client = build(kind, slack, clients, proxy=socks.url("socks5h"),
                       slack_api_url=api_by_name)
        client.start().result(timeout=WAIT)
        seen = socks.wait_for_requests(2, timeout=WAIT)
        assert all(r.command == "CONNECT" and r.port == slack.port for r in seen), seen
        # socks5h: the client let the proxy resolve the API host's name
        assert any(r.by_name and r.host == "localhost" for r in seen), seen
        if isinstance(client, RTMClient):
            reply = client.send_message("through SOCKS",
                                         slack.channel_id("general")).result(timeout=WAIT)
            assert reply["ok"] is True
        client.disconnect(timeout=WAIT)
    assert repr(client).count("socks") <= 1


def test_all_proxy_socks5_from_the_environment(slack: FakeSlack, clients: List[Client],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSocksProxy(auth=("bot", "pw-SECRET-55")) as socks:
        monkeypatch.setenv("ALL_PROXY", socks.url("socks5", with_auth=True))
        client = build("socket_mode", slack, clients)
        client.start().result(timeout=WAIT)
        seen = socks.wait_for_requests(2, timeout=WAIT)
        assert not any(r.by_name for r in seen), seen  # socks5: resolved by the client
        assert socks.rejected == 0
        client.disconnect(timeout=WAIT)


def test_a_wrong_socks_password_fails_without_showing_it(slack: FakeSlack,
                                                          clients: List[Client]) -> None:
    with FakeSocksProxy(auth=("bot", "pw-SECRET-55")) as socks:
        wrong = socks.url("socks5h", with_auth=True).replace("pw-SECRET-55", "pw-WRONG-77")
        client = build("rtm", slack, clients, proxy=wrong, auto_reconnect=False)
        error = client.start().exception(timeout=WAIT)
        assert error is not None
        wait_until(lambda: socks.rejected >= 1, timeout=WAIT, what="the refused login")
        texts = [str(error), repr(error), repr(client), repr(client.web_client)]
        cause: Optional[BaseException] = error
        while cause is not None:
            texts.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        assert not any("pw-WRONG-77" in text for text in texts), texts


def test_a_socks_proxy_without_the_extra_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['socks'] = None; sys.modules['python_socks'] = None\n"
        "from slackrtm import RTMClient\n"
        "try:\n"
        "    RTMClient('xoxb-1', proxy='socks5h://127.0.0.1:1080')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, timeout=120,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pip install 'slackrtm[socks]'" in out.stdout, out.stdout
    assert "PySocks" in out.stdout and "python-socks" in out.stdout


# --- which Web API failures are repeated -------------------------------------------------


class RawServer:
    """A raw HTTP server on a socket bound now: ``actions`` decide each request in turn,
    ``"drop"`` (read it, close without answering) or a JSON body (answered 200)."""

    def __init__(self, sock: socket.socket, actions: List[Any]) -> None:
        self.sock = sock
        self.actions = list(actions)
        self.paths: List[str] = []
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def listen(self) -> None:
        self.sock.listen(8)
        self._thread = threading.Thread(target=self._serve, name="test-raw-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.actions:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(WAIT)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head = data.split(b"\r\n", 1)[0].decode()
                with self._lock:
                    self.paths.append(head.split(" ")[1] if " " in head else head)
                action = self.actions.pop(0)
                if action == "drop":
                    continue
                body = json.dumps(action).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))

    def close(self) -> None:
        self.sock.close()
        if self._thread is not None:
            self._thread.join(WAIT)


@pytest.fixture
def bound() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def retry_logger(on_first: Callable[[], None]) -> Tuple[List[str], Callable[[str, str], None]]:
    lines: List[str] = []

    def log(level: str, message: str) -> None:
        lines.append(message)
        if "repeating" in message and sum("repeating" in m for m in lines) == 1:
            on_first()
    return lines, log


@pytest.mark.parametrize("method", ["chat.postMessage", "conversations.list"])
def test_a_connection_never_made_is_repeated_for_any_method(method: str,
                                                            bound: socket.socket) -> None:
    # refused (bound, not listening) until the first failure is logged; then it listens
    server = RawServer(bound, [{"ok": True, "ts": "1.1"}])
    lines, log = retry_logger(server.listen)
    url = f"http://127.0.0.1:{bound.getsockname()[1]}/api/"
    with WebClient("xoxb-1", base_url=url, max_retries=5, logger=log) as web:
        resp = web.api_call(method, channel="C1", text="once")
    server.close()
    assert resp["ok"] is True
    assert server.paths == [f"/api/{method}"]  # it reached the server exactly once
    assert any("could not reach" in line and "repeating" in line for line in lines), lines


def test_max_retries_zero_repeats_nothing(bound: socket.socket) -> None:
    url = f"http://127.0.0.1:{bound.getsockname()[1]}/api/"
    lines: List[str] = []
    web = WebClient("xoxb-1", base_url=url, max_retries=0,
                    logger=lambda level, m: lines.append(m))
    with web, pytest.raises(SlackHTTPError):
        web.auth.test()
    assert not any("repeating" in line for line in lines)


def test_a_call_lost_after_sending_is_repeated_only_when_it_reads(
        bound: socket.socket) -> None:
    url = f"http://127.0.0.1:{bound.getsockname()[1]}/api/"
    server = RawServer(bound, ["drop", {"ok": True, "channels": []}, "drop"])
    server.listen()
    with WebClient("xoxb-1", base_url=url, max_retries=2) as web:
        assert web.conversations.list()["ok"] is True  # dropped once, then answered
        with pytest.raises(SlackHTTPError) as info:
            web.chat.postMessage(channel="C1", text="maybe posted")  # dropped: not repeated
    server.close()
    assert server.paths == ["/api/conversations.list"] * 2 + ["/api/chat.postMessage"]
    assert info.value.status_code is None


def test_a_5xx_with_retry_after_is_repeated_only_when_it_reads() -> None:
    with RecordingServer() as server:
        answers = {"conversations.history": [Reply(503, {"ok": False},
                                                   {"Retry-After": "0"}), Reply()],
                   "chat.postMessage": [Reply(503, {"ok": False}, {"Retry-After": "0"})],
                   "users.list": [Reply(500, {"ok": False})]}
        server.responder = lambda seen: answers[seen.path.rsplit("/", 1)[-1]].pop(0)
        with WebClient("xoxb-1", base_url=server.url) as web:
            assert web.conversations.history(channel="C1")["ok"] is True
            with pytest.raises(SlackHTTPError) as posted:
                web.chat.postMessage(channel="C1", text="hi")
            with pytest.raises(SlackHTTPError) as listed:
                web.users.list()  # a 5xx without Retry-After is not repeated
        paths = [s.path.rsplit("/", 1)[-1] for s in server.seen]
    assert paths == ["conversations.history"] * 2 + ["chat.postMessage", "users.list"]
    assert posted.value.status_code == 503 and listed.value.status_code == 500


def test_which_methods_are_safe_to_repeat() -> None:
    for method in ("conversations.list", "users.info", "conversations.history",
                   "conversations.replies", "auth.test", "users.profile.get",
                   "users.conversations", "team.info", "users.lookupByEmail"):
        assert is_safe_to_repeat(method), method
    for method in ("chat.postMessage", "chat.update", "reactions.add", "rtm.connect",
                   "apps.connections.open", "conversations.join", "files.upload"):
        assert not is_safe_to_repeat(method), method
