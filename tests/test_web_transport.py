"""WebClient transport: explicit and environment proxies, a caller's SSLContext, aborts,
and secrets kept out of logs, messages and reprs."""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import threading
import time
import traceback
from typing import Any, Callable, Iterator

import pytest
import requests
import trustme

from slackrtm.errors import RateLimitedError, SlackApiError, SlackHTTPError
from slackrtm.web import WebClient
from tests.test_web_servers import (
    WAIT,
    CallInThread,
    HangingServer,
    RecordingServer,
    Reply,
    refused_port,
)

TOKEN = "tok-SECRET-0123456789"
PROXY_PASSWORD = "pw-SECRET-9876"
PROXY_ENV = ["http_proxy", "https_proxy", "all_proxy", "no_proxy",
             "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SLACK_API_URL"]
UNROUTED = "http://127.0.0.1:9/api/"  # never reached: the proxy answers for it


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[RecordingServer]:
    with RecordingServer() as srv:
        srv.responder = lambda seen: Reply(body={"ok": True, "via": "proxy"})
        yield srv


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[RecordingServer]:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    with RecordingServer(tls=server_ctx) as srv:
        yield srv


def one_ca_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    assert ctx.cert_store_stats()["x509_ca"] == 1
    return ctx


# --- proxies --------------------------------------------------------------------------------


def test_explicit_proxy_is_used_for_loopback_despite_no_proxy(
        proxy: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "*")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # wrong, and must not win
    with WebClient(TOKEN, base_url=UNROUTED,
                   proxy=f"http://user:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}") as web:
        assert web.auth.test()["via"] == "proxy"
        assert web.proxy == f"http://127.0.0.1:{proxy.port}"
    (seen,) = proxy.seen
    assert seen.path == UNROUTED + "auth.test"  # absolute URI: a forwarding proxy request
    expected = base64.b64encode(f"user:{PROXY_PASSWORD}".encode()).decode()
    assert seen.headers["Proxy-Authorization"] == f"Basic {expected}"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


def test_environment_proxy_is_honoured_without_explicit_proxy(
        proxy: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    with RecordingServer() as direct:
        with WebClient(TOKEN, base_url=direct.url) as web:
            assert web.auth.test()["via"] == "proxy"
        assert [s.path for s in proxy.seen] == [direct.url + "auth.test"]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with WebClient(TOKEN, base_url=direct.url) as web:
            assert "via" not in web.auth.test()
        assert [s.path for s in direct.seen] == ["/api/auth.test"] and len(proxy.seen) == 1


@pytest.mark.parametrize("bad", [
    "ftp://u:pw-SECRET-9876@127.0.0.1:1080", "https://127.0.0.1:3128", "127.0.0.1:3128",
    "socks4://127.0.0.1:1080",
    "http://127.0.0.1", "http://u:pw-SECRET-9876@127.0.0.1:port", "http://:3128",
    "http://127.0.0.1:3128/path", "http://127.0.0.1:3128?x=1", "",
])
def test_invalid_proxy_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        WebClient(TOKEN, proxy=bad)
    assert PROXY_PASSWORD not in str(info.value)


def test_https_through_proxy_connect_with_ssl_context(
        proxy: RecordingServer, tls_server: RecordingServer, ca: trustme.CA) -> None:
    ctx = one_ca_context(ca)
    with WebClient(TOKEN, base_url=tls_server.url, ssl_context=ctx,
                   proxy=f"http://u:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}") as web:
        web.auth.test()
        web.auth.test()
    assert [s.method for s in proxy.seen] == ["CONNECT"]  # one tunnel, kept alive
    assert proxy.seen[0].path == f"127.0.0.1:{tls_server.port}"
    assert "Proxy-Authorization" in proxy.seen[0].headers
    assert [s.path for s in tls_server.seen] == ["/api/auth.test"] * 2
    assert ctx.cert_store_stats()["x509_ca"] == 1


# --- TLS ------------------------------------------------------------------------------------


def test_self_signed_server_is_refused_by_default(tls_server: RecordingServer) -> None:
    with WebClient(TOKEN, base_url=tls_server.url) as web, \
            pytest.raises(SlackHTTPError) as info:
        web.auth.test()
    assert info.value.status_code is None
    assert "certificate verify failed" in str(info.value).lower()
    assert isinstance(info.value.__cause__, requests.exceptions.SSLError)
    assert tls_server.seen == []


def test_ssl_context_is_used_as_is(tls_server: RecordingServer, ca: trustme.CA) -> None:
    ctx = one_ca_context(ca)
    before = ctx.cert_store_stats()
    with WebClient(TOKEN, base_url=tls_server.url, ssl_context=ctx) as web:
        assert web.auth.test()["ok"] is True
        web.session.close()  # a fresh connection and pool: the context is used again
        assert web.auth.test()["ok"] is True
    assert ctx.cert_store_stats() == before  # requests' CA bundle was not loaded into it
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(tls_server.seen) == 2


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_ssl_context_that_does_not_verify_stays_so(tls_server: RecordingServer) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with WebClient(TOKEN, base_url=tls_server.url, ssl_context=ctx) as web:
        assert web.auth.test()["ok"] is True
    assert ctx.verify_mode == ssl.CERT_NONE
    assert ctx.cert_store_stats()["x509_ca"] == 0


def test_ssl_context_with_another_ca_refuses(tls_server: RecordingServer) -> None:
    ctx = one_ca_context(trustme.CA())
    with WebClient(TOKEN, base_url=tls_server.url, ssl_context=ctx) as web, \
            pytest.raises(SlackHTTPError) as info:
        web.auth.test()
    assert "certificate verify failed" in str(info.value).lower()


# --- aborts ---------------------------------------------------------------------------------


def abort_when(stuck: threading.Event, call: Callable[[], Any],
               web: WebClient) -> tuple[CallInThread, float]:
    """Run ``call`` in an abort scope on a thread, abort once the server says it is stuck."""
    handles: list[Any] = []

    def run() -> Any:
        with web._abort_scope() as handle:
            handles.append(handle)
            return call()

    runner = CallInThread(run)
    assert stuck.wait(WAIT), "the call never reached the server"  # set by the server
    aborted_at = time.monotonic()
    handles[0].abort()
    runner.join()
    return runner, runner.done_at - aborted_at


def assert_aborted(runner: CallInThread, took: float) -> None:
    assert isinstance(runner.error, SlackHTTPError), runner.error
    assert runner.error.status_code is None and "aborted" in str(runner.error)
    assert took < 5.0, f"abort took {took:.3f} s"  # (else: the 20 s timeout)


def test_abort_interrupts_a_request_waiting_for_its_response() -> None:
    with HangingServer() as hang, \
            WebClient(TOKEN, base_url=f"http://127.0.0.1:{hang.port}/", timeout=20) as web:
        runner, took = abort_when(hang.hung, web.auth.test, web)
        assert_aborted(runner, took)
    assert hang.connections == 1


def test_abort_interrupts_a_connect_in_progress() -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued: list[socket.socket] = []
    try:
        while True:  # fill the accept queue, never accepted: the next connect hangs
            assert len(queued) < 64, "the accept queue never filled"
            probe = socket.socket()
            probe.settimeout(0.2)
            try:
                probe.connect(("127.0.0.1", port))
                queued.append(probe)
            except socket.timeout:
                probe.close()
                break
        with WebClient(TOKEN, base_url=f"http://127.0.0.1:{port}/", timeout=20) as web:
            handles: list[Any] = []

            def run() -> Any:
                with web._abort_scope() as handle:
                    handles.append(handle)
                    return web.auth.test()

            runner = CallInThread(run)
            deadline = time.monotonic() + WAIT
            while not (handles and handles[0]._socks):  # its socket is registered: connecting
                assert time.monotonic() < deadline, "no socket registered in the scope"
                assert runner.thread.is_alive(), runner.error
                time.sleep(0.002)
            aborted_at = time.monotonic()
            handles[0].abort()
            runner.join()
            assert_aborted(runner, runner.done_at - aborted_at)
    finally:
        for sock in queued:
            sock.close()
        listener.close()


def test_abort_interrupts_a_reused_keep_alive_connection() -> None:
    with HangingServer(answers=1) as hang, \
            WebClient(TOKEN, base_url=f"http://127.0.0.1:{hang.port}/", timeout=20) as web:
        web.auth.test()
        runner, took = abort_when(hang.hung, web.auth.test, web)
        assert_aborted(runner, took)
    assert hang.connections == 1 and len(hang.heads) == 2


def test_abort_interrupts_a_tls_handshake(ca: trustme.CA) -> None:
    with HangingServer(silent=True) as hang, \
            WebClient(TOKEN, base_url=f"https://127.0.0.1:{hang.port}/", timeout=20,
                      ssl_context=one_ca_context(ca)) as web:
        runner, took = abort_when(hang.accepted, web.auth.test, web)
        assert_aborted(runner, took)


def test_abort_interrupts_a_proxy_connect() -> None:
    with HangingServer() as hang, \
            WebClient(TOKEN, base_url="https://slack.invalid/api/", timeout=20,
                      proxy=f"http://127.0.0.1:{hang.port}") as web:
        runner, took = abort_when(hang.hung, web.auth.test, web)
        assert_aborted(runner, took)
    assert hang.heads[0].startswith(b"CONNECT slack.invalid:443 ")


def test_abort_interrupts_a_rate_limit_wait(server_429: RecordingServer) -> None:
    with WebClient(TOKEN, base_url=server_429.url) as web:
        runner, took = abort_when(server_429.served, web.auth.test, web)
        assert_aborted(runner, took)
    assert len(server_429.seen) == 1


@pytest.fixture
def server_429() -> Iterator[RecordingServer]:
    with RecordingServer() as srv:
        srv.responder = lambda seen: Reply(429, {"ok": False}, {"Retry-After": "30"})
        yield srv


def test_abort_before_the_request_fails_at_once() -> None:
    with HangingServer() as hang, \
            WebClient(TOKEN, base_url=f"http://127.0.0.1:{hang.port}/", timeout=0.3) as web:
        with web._abort_scope() as handle:
            handle.abort()
            started = time.monotonic()
            with pytest.raises(SlackHTTPError) as info:
                web.auth.test()
            assert time.monotonic() - started < 5.0  # (the error says why: aborted)
        assert info.value.status_code is None and "aborted" in str(info.value)
        assert hang.connections == 0
        with pytest.raises(SlackHTTPError, match="timed out"):
            web.call("auth.test", {})  # outside the scope: a normal call again


def test_abort_scope_ends_with_its_block(proxy: RecordingServer) -> None:
    with WebClient(TOKEN, base_url=proxy.url) as web:
        with web._abort_scope() as handle:
            web.auth.test()
        handle.abort()  # after the block: nothing left to interrupt
        assert web.auth.test()["ok"] is True


# --- secrets --------------------------------------------------------------------------------


def test_token_and_proxy_password_never_leak(proxy: RecordingServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="slackrtm")
    lines: list[str] = []
    replies = [Reply(429, {"ok": False}, {"Retry-After": "0"}), Reply(),
               Reply(body={"ok": False, "error": f"invalid_auth {TOKEN}"}),  # echoed: redacted
               Reply(500, {"ok": False, "error": f"no {TOKEN} {PROXY_PASSWORD}"})]
    proxy.responder = lambda seen: replies.pop(0)
    creds = f"http://user:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    errors: list[BaseException] = []
    web = WebClient(TOKEN, base_url=UNROUTED, proxy=creds, log_level=logging.DEBUG)
    lines += [repr(web), repr(web.chat), repr(web.chat.postMessage)]
    resp = web.auth.test()  # 429 then ok
    lines += [repr(resp), str(resp.data)]
    for _ in range(2):  # ok: false, then HTTP 500
        with pytest.raises((SlackApiError, SlackHTTPError)) as info:
            web.auth.test()
        errors.append(info.value)
    closed = refused_port()
    for bad in (f"http://user:{PROXY_PASSWORD}@127.0.0.1:{closed.getsockname()[1]}", None):
        base = UNROUTED if bad else f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
        with WebClient(TOKEN, base_url=base, proxy=bad, log_level=logging.DEBUG) as failing, \
                pytest.raises(SlackHTTPError) as info:
            failing.auth.test()
        errors.append(info.value)
    closed.close()
    web.close()
    errors.append(RateLimitedError("x", retry_after=1))
    for err in errors:
        lines += [str(err), repr(err), "".join(traceback.format_exception(
            type(err), err, err.__traceback__))]
        cause = err.__cause__
        if cause is not None:
            lines += [str(cause), repr(cause)]
            request = getattr(cause, "request", None)
            if request is not None:
                lines += [str(dict(request.headers)), str(request.url), str(request.body)]
    assert caplog.records, "DEBUG records expected"
    lines += [r.getMessage() for r in caplog.records]
    assert any("429" in line for line in lines)
    for line in lines:
        assert TOKEN not in line and PROXY_PASSWORD not in line, line
