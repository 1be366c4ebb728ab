"""Load from many threads, logging, secrets, proxies and TLS."""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any, Callable, Dict, List, Tuple

import pytest
import trustme

from slackrtm import LogLevel, RTMClient
from slackrtm.testing import FakeProxy, FakeSlack
from tests.conftest import Recorder

Make = Callable[..., RTMClient]


def test_2000_sends_from_8_threads_each_get_their_own_reply(slack: FakeSlack,
                                                            make: Make) -> None:
    rtm = make(reply_timeout=30.0)
    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    results: Dict[str, Any] = {}
    lock = threading.Lock()

    def worker(t: int) -> None:
        futs = [(f"t{t}-{i}", rtm.send_message(f"t{t}-{i}", channel)) for i in range(250)]
        for text, fut in futs:
            reply = fut.result(timeout=30)
            with lock:
                results[text] = reply

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2000
    assert all(reply["text"] == text for text, reply in results.items())
    assert len({r["ts"] for r in results.values()}) == 2000
    sent = slack.wait_for_received("message", 2000, timeout=30)
    ids = [f["id"] for f in sent]
    assert ids == sorted(ids) and len(set(ids)) == 2000
    for t in range(8):  # each thread's sends were written in the order it made them
        mine = [f["text"] for f in sent if f["text"].startswith(f"t{t}-")]
        assert mine == [f"t{t}-{i}" for i in range(250)]


def test_token_never_logged_at_debug(slack: FakeSlack, make: Make,
                                     all_logs: List[logging.LogRecord]) -> None:
    rtm = make(log_level=LogLevel.DEBUG)
    rec = Recorder().attach(rtm, "ready")
    rtm.start().result(timeout=30)
    rtm.send_message("x", slack.channel_id("general")).result(timeout=30)
    slack.drop()
    rec.wait_for("ready", 2)
    slack.send_raw("junk that is not json")
    rtm.disconnect()
    text = "\n".join(r.getMessage() for r in all_logs)
    assert "state ready -> reconnecting" in text and "connecting" in text
    assert slack.token not in text
    assert "/rtm/" not in text  # the ws URL's one-time ticket
    assert len(all_logs) > 5


def test_silent_at_default_level_when_all_is_well(slack: FakeSlack, make: Make,
                                                  all_logs: List[logging.LogRecord]) -> None:
    rtm = make(log_level=LogLevel.INFO)
    rtm.start().result(timeout=30)
    rtm.send_message("x", slack.channel_id("general")).result(timeout=30)
    rtm.disconnect()
    assert [r.getMessage() for r in all_logs] == []


def test_logger_callable_and_logger_object(slack: FakeSlack, make: Make) -> None:
    lines: List[Tuple[str, str]] = []
    rtm = make(log_level=LogLevel.DEBUG, logger=lambda level, msg: lines.append((level, msg)))
    rtm.start().result(timeout=30)
    rtm.disconnect()
    assert lines and {lvl for lvl, _ in lines} <= {"debug", "info", "warn", "error"}
    assert any("state" in m for _, m in lines)
    assert all(slack.token not in m for _, m in lines)

    records: List[logging.LogRecord] = []
    custom = logging.getLogger("my.bot")
    custom.setLevel(logging.DEBUG)

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    custom.addHandler(Keep())
    rtm2 = make(log_level=LogLevel.WARN, logger=custom)
    rec = Recorder().attach(rtm2, "ready")
    rtm2.start().result(timeout=30)
    slack.drop()
    rec.wait_for("ready", 2)
    rtm2.disconnect()
    assert records and all(r.levelno >= logging.WARNING for r in records)
    assert logging.getLogger("slackrtm").level == logging.NOTSET  # never changed by us


def test_explicit_proxy_carries_api_and_websocket(slack: FakeSlack, make: Make,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  all_logs: List[logging.LogRecord]) -> None:
    monkeypatch.setenv("NO_PROXY", "*")
    with FakeProxy(auth=("proxyuser", "s3cret-pass")) as proxy:
        rtm = make(proxy=proxy.url_with_auth, log_level=LogLevel.DEBUG)
        rtm.start().result(timeout=30)
        assert rtm.send_message("via proxy", slack.channel_id("general")).result(30)["ok"]
        rtm.disconnect()
        methods = [m for m, _ in proxy.requests]
        assert "CONNECT" in methods  # the WebSocket went through the tunnel
        assert any("rtm.connect" in target for _, target in proxy.requests)
    text = "\n".join(r.getMessage() for r in all_logs)
    assert "s3cret-pass" not in text


def test_environment_proxy_is_honoured(slack: FakeSlack, make: Make,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        rtm = make()
        rtm.start().result(timeout=30)
        rtm.disconnect()
        assert any(m == "CONNECT" for m, _ in proxy.requests)
        n = len(proxy.requests)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        rtm2 = make()
        rtm2.start().result(timeout=30)
        rtm2.disconnect()
        assert len(proxy.requests) == n  # NO_PROXY honoured: direct


def test_tls_verified_by_default_and_trusted_with_context(make: Make) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    with FakeSlack(ssl_context=server_ctx) as tls_slack:
        assert tls_slack.api_url.startswith("https://")
        refused = make(token=tls_slack.token, slack_api_url=tls_slack.api_url,
                       auto_reconnect=False)
        err = refused.start().exception(timeout=30)
        assert err is not None and "certificate" in str(err).lower()

        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        rtm = make(token=tls_slack.token, slack_api_url=tls_slack.api_url,
                   ssl_context=client_ctx)
        data = rtm.start().result(timeout=30)
        assert data["url"].startswith("wss://")
        assert rtm.send_message("secure", tls_slack.channel_id("general")).result(30)["ok"]
        rtm.disconnect()

