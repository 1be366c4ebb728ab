"""FakeProxy: CONNECT tunnels (ws, wss, https) and absolute-URI forwarding (http), with auth."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
import requests
import trustme
import websocket

from slackrtm.testing import FakeProxy, FakeSlack

AUTH = ("user", "p@ss word")


@pytest.fixture
def no_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert [t.name for t in threading.enumerate() if t not in before] == []


@pytest.fixture
def fake(no_leaks: None) -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack
    assert slack.errors == []


@pytest.fixture
def proxy(no_leaks: None) -> Iterator[FakeProxy]:
    with FakeProxy() as fake_proxy:
        yield fake_proxy


@pytest.fixture
def auth_proxy(no_leaks: None) -> Iterator[FakeProxy]:
    with FakeProxy(auth=AUTH) as fake_proxy:
        yield fake_proxy


def session(proxy_url: Optional[str], verify: Any = True) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    if proxy_url:
        http.proxies = {"http": proxy_url, "https": proxy_url}
    http.verify = verify
    return http


def ws_via(url: str, proxy: FakeProxy, auth: Optional[Tuple[str, str]] = None,
           **kwargs: Any) -> websocket.WebSocket:
    return websocket.create_connection(
        url, timeout=5, http_proxy_host=proxy.host, http_proxy_port=proxy.port,
        proxy_type="http", http_no_proxy=["no.proxy.invalid"], http_proxy_auth=auth, **kwargs)


def rtm_connect(http: requests.Session, slack: FakeSlack) -> Dict[str, Any]:
    resp = http.post(slack.api_url + "rtm.connect", timeout=5,
                     headers={"Authorization": f"Bearer {slack.token}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_urls(proxy: FakeProxy, auth_proxy: FakeProxy) -> None:
    assert proxy.url == f"http://127.0.0.1:{proxy.port}" == proxy.url_with_auth
    assert auth_proxy.url_with_auth == f"http://user:p%40ss%20word@127.0.0.1:{auth_proxy.port}"
    assert "p@ss" not in repr(auth_proxy)


def test_http_forwarding_and_ws_tunnel(fake: FakeSlack, proxy: FakeProxy) -> None:
    with session(proxy.url) as http:
        data = rtm_connect(http, fake)
    target = f"http://127.0.0.1:{fake.port}/api/rtm.connect"
    assert proxy.requests == [("POST", target)]
    (call,) = fake.calls
    assert call.authorized and "proxy-authorization" not in call.headers
    ws = ws_via(data["url"], proxy)
    assert json.loads(ws.recv()) == {"type": "hello"}
    ws.send(json.dumps({"type": "ping", "id": 1}))
    assert json.loads(ws.recv())["reply_to"] == 1
    assert proxy.wait_for_requests(2)[1] == ("CONNECT", f"127.0.0.1:{fake.port}")
    ws.close()
    fake.all_connections[0].wait_closed()


def test_forwarding_keeps_status_headers_and_keepalive(fake: FakeSlack, proxy: FakeProxy) -> None:
    fake.fail_next("auth.test", status=429, retry_after=3)
    with session(proxy.url) as http:
        resp = http.get(fake.api_url + "auth.test", params={"token": fake.token}, timeout=5)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
        assert http.get(fake.api_url + "auth.test", params={"token": fake.token},
                        timeout=5).json()["ok"] is True
    assert [m for m, _ in proxy.requests] == ["GET", "GET"]
    assert proxy.requests[0][1].endswith("/api/auth.test?token=" + fake.token)


def test_tls_through_the_tunnel(no_leaks: None) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with FakeSlack(ssl_context=server_ctx) as slack, FakeProxy(auth=AUTH) as proxy, \
            ca.cert_pem.tempfile() as ca_file, session(proxy.url_with_auth, ca_file) as http:
        data = rtm_connect(http, slack)
        ws = ws_via(data["url"], proxy, auth=AUTH, sslopt={"context": client_ctx})
        assert json.loads(ws.recv()) == {"type": "hello"}
        ws.close()
        assert proxy.requests == [("CONNECT", f"127.0.0.1:{slack.port}")] * 2
        assert proxy.rejected == []


def test_auth_required(fake: FakeSlack, auth_proxy: FakeProxy) -> None:
    with session(auth_proxy.url) as http:
        resp = http.post(fake.api_url + "auth.test", timeout=5)
    assert resp.status_code == 407 and "Basic" in resp.headers["Proxy-Authenticate"]
    with session(f"http://user:wrong@127.0.0.1:{auth_proxy.port}") as http:
        assert http.post(fake.api_url + "auth.test", timeout=5).status_code == 407
    with pytest.raises(websocket.WebSocketProxyException, match="407"):
        ws_via(f"ws://127.0.0.1:{fake.port}/rtm/x", auth_proxy)
    assert len(auth_proxy.rejected) == 3 and fake.calls == []
    with session(auth_proxy.url_with_auth) as http:
        data = rtm_connect(http, fake)
    ws = ws_via(data["url"], auth_proxy, auth=AUTH)
    assert json.loads(ws.recv()) == {"type": "hello"}
    ws.close()
    assert len(auth_proxy.requests) == 5 and len(auth_proxy.rejected) == 3


def test_bad_targets(proxy: FakeProxy) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed_port = free.getsockname()[1]
    with pytest.raises(websocket.WebSocketProxyException, match="502"):
        ws_via(f"ws://127.0.0.1:{closed_port}/rtm/x", proxy)
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
    with session(proxy.url) as http:
        assert http.get(f"http://127.0.0.1:{closed_port}/", timeout=5).status_code == 502


def test_close_with_open_tunnels_is_quick(fake: FakeSlack, no_leaks: None) -> None:
    proxy = FakeProxy()
    with session(None) as http:
        data = rtm_connect(http, fake)
    ws = ws_via(data["url"], proxy)
    assert json.loads(ws.recv())["type"] == "hello"
    idle = socket.create_connection((proxy.host, proxy.port), timeout=5)  # never says a word
    t0 = time.monotonic()
    proxy.close()
    assert time.monotonic() - t0 < 2
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()
    try:  # FIN if it was accepted, RST if it still sat in the listen backlog
        assert idle.recv(10) == b""
    except ConnectionResetError:
        pass
    idle.close()
    with pytest.raises(TimeoutError, match="2 request"):
        proxy.wait_for_requests(2, timeout=0.01)
