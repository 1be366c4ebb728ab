"""FakeSlack over TLS (https and wss) with a trustme CA."""

from __future__ import annotations

import json
import ssl
import threading
from typing import Iterator, Tuple

import pytest
import requests
import trustme
import websocket

from slackrtm.testing import FakeSlack


@pytest.fixture(scope="module")
def certs() -> Iterator[Tuple[trustme.CA, ssl.SSLContext]]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    yield ca, server


@pytest.fixture
def fake(certs: Tuple[trustme.CA, ssl.SSLContext]) -> Iterator[FakeSlack]:
    before = set(threading.enumerate())
    slack = FakeSlack(ssl_context=certs[1])
    slack.message_rate = None  # bursts of sends; tests/test_limits_fake.py throttles
    try:
        yield slack
    finally:
        slack.close()
    assert slack.errors == []
    assert [t.name for t in threading.enumerate() if t not in before] == []


@pytest.fixture
def http(certs: Tuple[trustme.CA, ssl.SSLContext]) -> Iterator[requests.Session]:
    with certs[0].cert_pem.tempfile() as ca_file, requests.Session() as session:
        session.trust_env = False
        session.verify = ca_file
        yield session


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def rtm_url(http: requests.Session, slack: FakeSlack) -> str:
    resp = http.post(slack.api_url + "rtm.connect", timeout=5,
                     headers={"Authorization": f"Bearer {slack.token}"})
    return str(resp.json()["url"])


def test_https_and_wss(fake: FakeSlack, http: requests.Session,
                       certs: Tuple[trustme.CA, ssl.SSLContext]) -> None:
    assert fake.api_url == f"https://127.0.0.1:{fake.port}/api/"
    url = rtm_url(http, fake)
    assert url.startswith(f"wss://127.0.0.1:{fake.port}/rtm/")
    ws = websocket.create_connection(url, timeout=5, http_no_proxy=["*"],
                                     sslopt={"context": client_context(certs[0])})
    assert json.loads(ws.recv()) == {"type": "hello"}
    ws.send(json.dumps({"id": 1, "type": "message", "channel": "C0GENERAL", "text": "tls"}))
    assert json.loads(ws.recv())["reply_to"] == 1
    assert json.loads(ws.recv())["text"] == "tls"
    big = "z" * 100_000
    fake.inject({"type": "big", "blob": big})
    ws.send(json.dumps({"type": "ping", "id": 2, "blob": big}))
    assert json.loads(ws.recv())["blob"] == big
    pong = json.loads(ws.recv())
    assert pong["reply_to"] == 2 and pong["blob"] == big
    fake.drop("close")
    opcode, _ = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    fake.all_connections[0].wait_closed()
    ws.shutdown()  # type: ignore[no-untyped-call]


def test_many_messages_over_tls(fake: FakeSlack, http: requests.Session,
                                certs: Tuple[trustme.CA, ssl.SSLContext]) -> None:
    ws = websocket.create_connection(rtm_url(http, fake), timeout=5, http_no_proxy=["*"],
                                     sslopt={"context": client_context(certs[0])})
    assert json.loads(ws.recv())["type"] == "hello"
    for n in range(300):
        ws.send(json.dumps({"id": n, "type": "message", "channel": "C0GENERAL", "text": "m"}))
    frames = [json.loads(ws.recv()) for _ in range(600)]
    assert sorted(f["reply_to"] for f in frames if "reply_to" in f) == list(range(300))
    ws.close()


def test_clients_without_the_ca_are_refused(fake: FakeSlack, http: requests.Session) -> None:
    with requests.Session() as plain:
        plain.trust_env = False
        with pytest.raises(requests.exceptions.SSLError):
            plain.post(fake.api_url + "auth.test", timeout=5)
    url = rtm_url(http, fake)
    with pytest.raises(ssl.SSLCertVerificationError):
        websocket.create_connection(url, timeout=5, http_no_proxy=["*"],
                                    sslopt={"context": ssl.create_default_context()})
    assert fake.connect_count == 0
    resp = http.post(fake.api_url + "auth.test", timeout=5,
                     headers={"Authorization": f"Bearer {fake.token}"})
    assert resp.json()["ok"] is True  # the server is unharmed


def test_plain_http_to_a_tls_server_fails_cleanly(fake: FakeSlack) -> None:
    with requests.Session() as plain:
        plain.trust_env = False
        with pytest.raises(requests.exceptions.ConnectionError):
            plain.post(fake.api_url.replace("https", "http"), timeout=5)
