"""Secrets and TLS, end to end through RTMClient (the WebClient's own checks are in
test_web_transport.py; the basics in test_rtm_load_logs.py).

- The token leaves the process only in the ``Authorization`` header: never in a URL, a
  form body or a WebSocket frame; and never in a log record (at DEBUG, tracebacks
  included), an exception message or chain, or a repr, whatever went wrong. Tokens
  without the ``xox?-`` shape (which a regex would catch anyway) are used too, so the
  explicit redaction is what is tested. The WebSocket URL's one-time ticket is never
  logged either.
- Proxy credentials (explicit or from the environment) are never logged.
- TLS is verified by default for https *and* wss: a self-signed server is refused
  unless its CA is given, and a certificate for another host is refused.
"""

from __future__ import annotations

import json
import logging
import ssl
import traceback
from typing import Iterator, List

import pytest
import trustme

from slackrtm import (
    LogLevel,
    RTMClient,
    SlackHTTPError,
    SlackRTMError,
    WebClient,
    WebsocketError,
)
from slackrtm.testing import FakeProxy, FakeSlack
from tests.conftest import FAST, Recorder, client_threads, wait_until
from tests.test_reliability_support import FlakyRelay, text_frame

PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
             "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clients() -> Iterator[List[RTMClient]]:
    made: List[RTMClient] = []
    yield made
    for rtm in made:
        rtm.disconnect(timeout=5)
    assert not client_threads()


def exception_texts(err: BaseException) -> List[str]:
    """Everything an error shows: str, repr, the formatted traceback, and the same for
    its cause and context chain, with any request (headers, URL, body) it carries."""
    out: List[str] = []
    seen = set()
    todo: List[BaseException] = [err]
    while todo:
        exc = todo.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        out += [str(exc), repr(exc), "".join(traceback.format_exception(
            type(exc), exc, exc.__traceback__))]
        response = getattr(exc, "response", None)
        if response is not None:
            out.append(repr(response))
        request = getattr(exc, "request", None)
        if request is not None:
            out += [str(getattr(request, "headers", "")), str(getattr(request, "url", "")),
                    str(getattr(request, "body", ""))]
        todo += [e for e in (exc.__cause__, exc.__context__) if e is not None]
    return out


def record_texts(records: List[logging.LogRecord]) -> List[str]:
    out = []
    formatter = logging.Formatter()
    for r in records:
        out.append(formatter.format(r))  # message, and exc_info/stack_info if any
        out.append(repr(r.args))
    return out


@pytest.mark.parametrize("token", ["xoxb-1234-5678-SeCrEtVaLuE", "plain-S3CR3T-t0ken-9f8e7d"])
def test_token_never_leaves_the_authorization_header(token: str, clients: List[RTMClient],
                                                     all_logs: List[logging.LogRecord]
                                                     ) -> None:
    """A DEBUG run through everything that can go wrong; then every log record, every
    error surfaced (with causes, contexts and tracebacks), every repr and every byte the
    server received is searched for the token and for the WebSocket ticket."""
    lines: List[str] = []
    errors: List[BaseException] = []
    with FakeSlack(token=token) as slack, FlakyRelay(slack) as relay:
        rtm = RTMClient(token, **dict(FAST, slack_api_url=relay.api_url,
                                      log_level=LogLevel.DEBUG, reply_timeout=0.3,
                                      logger=lambda level, msg: lines.append(msg)))
        clients.append(rtm)
        rtm2 = RTMClient(token, **dict(FAST, slack_api_url=slack.api_url,
                                       log_level=LogLevel.DEBUG, use_rtm_connect=False))
        clients.append(rtm2)
        rec = Recorder().attach(rtm, "ready", "authenticated")
        for name in ("error", "unable_to_rtm_start"):
            rtm.on(name, errors.append)
        rtm.on("boom", lambda e: (_ for _ in ()).throw(ValueError(f"handler saw {token}")))
        lines.append(repr(rtm))
        # rtm.connect: HTTP 500, 429, a reset, a slow answer, ok: false
        slack.fail_next("rtm.connect", status=500)
        slack.fail_next("rtm.connect", "ratelimited", status=429, retry_after=0.01)
        relay.arm("request")
        slack.fail_next("rtm.connect", "internal_error")
        slack.fail_next("websocket", "busy", status=503)
        start = rtm.start(batch_presence_aware=True, presence_sub=True)
        lines.append(repr(rtm))
        start.result(timeout=30)
        lines += [repr(rtm), repr(rtm.web_client), str(start.result(0).keys())]
        # sends that fail every way, a raising handler, junk, a protocol error, drops
        channel = slack.channel_id("general")
        futures = [rtm.send_message("", channel), rtm.send_message("x", "C404")]
        slack.drop_replies = True
        futures.append(rtm.send_message("unanswered", channel))
        slack.inject({"type": "boom", "token": "not the token"})
        slack.send_raw("{junk")
        for fut in futures:
            fut.exception(timeout=30)
        slack.drop_replies = False
        slack.connections[0].send_bytes(text_frame(b"\xff"))
        rec.wait_for("ready", 2)
        slack.ticket_ttl = -1  # the next tickets are refused: HTTP 404 on the handshake
        attempts = slack.handshake_attempts
        slack.drop()
        slack.wait_until(lambda: slack.handshake_attempts >= attempts + 2, 30, "404s")
        slack.ticket_ttl = 30
        rec.wait_for("ready", 3)
        futures.append(rtm.send_message("queued", channel))
        slack.goodbye()
        rec.wait_for("ready", 4)
        futures[-1].exception(timeout=30)  # answered, or lost with the goodbye
        rtm.disconnect()
        futures.append(rtm.send_message("after", channel))
        lines.append(repr(rtm))
        # rtm.start, its cache, and an invalid token
        rtm2.start().result(timeout=30)
        rtm2.disconnect()
        bad = RTMClient(token + "-wrong", **dict(FAST, slack_api_url=slack.api_url,
                                                  log_level=LogLevel.DEBUG))
        clients.append(bad)
        errors.append(bad.start().exception(timeout=30))
        lines.append(repr(bad))
        # the web client's own calls, with a token param override
        web = rtm.web_client
        resp = web.api_call("auth.test", token=token)
        lines += [repr(resp), repr(web), repr(web.auth.test)]
        for page in web.conversations.list(limit=1):
            lines.append(repr(page))
        calls = slack.calls
        received = json.dumps(slack.received) + repr(slack.unparsed)
        tickets = [a[0]["url"].rpartition("/")[2] for a in rec.of("authenticated")]
    for fut in futures:
        err = fut.exception(0)
        if err is not None:
            errors.append(err)
    assert len(errors) >= 10
    # the handler's own ValueError carries the token in its message: the user's object,
    # out of reach; its logged traceback is checked below
    assert sum(isinstance(e, ValueError) for e in errors) == 1
    assert all(isinstance(e, (ValueError, SlackRTMError)) for e in errors)
    for err in errors:
        if not isinstance(err, ValueError):
            lines += exception_texts(err)
    lines += record_texts(all_logs)
    assert len(all_logs) > 10 and len(lines) > 150
    assert any("Traceback" in line for line in lines)  # tracebacks were searched too
    assert any("internal_error" in line for line in lines)
    for line in lines:
        assert token not in line, line
        assert "S3CR3T" not in line and "SeCrEt" not in line, line
        for ticket in tickets:
            assert ticket not in line, line
    # what reached the server: the header, never the body or the URL or a frame
    assert len(calls) >= 10
    assert all(not c.token_in_body and not c.token_in_url for c in calls), calls
    assert [c.authorized for c in calls].count(False) == 1  # the wrong token's call
    assert token not in received


def test_proxy_credentials_are_never_logged(clients: List[RTMClient],
                                            monkeypatch: pytest.MonkeyPatch,
                                            all_logs: List[logging.LogRecord]) -> None:
    """Explicit and environment proxies with credentials, right and wrong, at DEBUG."""
    password = "pr0xy-PASS-w0rd"
    errors: List[BaseException] = []
    lines: List[str] = []
    with FakeSlack() as slack, FakeProxy(auth=("user", password)) as proxy:
        wrong = proxy.url_with_auth.replace(password, password + "-nope")
        good = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                             proxy=proxy.url_with_auth,
                                             log_level=LogLevel.DEBUG))
        refused = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                                proxy=wrong, auto_reconnect=False,
                                                log_level=LogLevel.DEBUG))
        clients += [good, refused]
        good.start().result(timeout=30)
        slack.drop()
        wait_until(lambda: slack.connect_count == 2 and good.ready, what="reconnect")
        lines += [repr(good), repr(good.web_client), str(good.web_client.proxy)]
        good.disconnect()
        errors.append(refused.start().exception(timeout=30))
        # the same from the environment (the WebSocket tunnel too)
        monkeypatch.setenv("HTTPS_PROXY", wrong.replace("http://", "http://"))
        monkeypatch.setenv("HTTP_PROXY", wrong)
        env = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                            auto_reconnect=False, log_level=LogLevel.DEBUG))
        clients.append(env)
        errors.append(env.start().exception(timeout=30))
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with_auth)
        env_ok = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                               log_level=LogLevel.DEBUG))
        clients.append(env_ok)
        env_ok.start().result(timeout=30)
        env_ok.disconnect()
        assert proxy.rejected and len(proxy.requests) > len(proxy.rejected)
    assert all(isinstance(e, (SlackHTTPError, WebsocketError)) for e in errors), errors
    for err in errors:
        lines += exception_texts(err)
    lines += record_texts(all_logs)
    assert len(all_logs) > 10
    for line in lines:
        assert password not in line, line


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_server(ca: trustme.CA, host: str = "127.0.0.1") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(ctx)
    return ctx


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_wss_is_verified_even_when_https_is_trusted(ca: trustme.CA,
                                                    clients: List[RTMClient]) -> None:
    """rtm.connect through a WebClient that trusts the CA succeeds, but the client's own
    WebSocket (no ssl_context: the default) still verifies, and refuses the server."""
    with FakeSlack(ssl_context=tls_server(ca)) as slack:
        web = WebClient(slack.token, base_url=slack.api_url, ssl_context=trusting(ca))
        rtm = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                            web_client=web, auto_reconnect=False))
        clients.append(rtm)
        err = rtm.start().exception(timeout=30)
        assert isinstance(err, WebsocketError) and "certificate" in str(err).lower(), err
        assert slack.call_count("rtm.connect") == 1 and slack.connect_count == 0
        # with auto_reconnect, it keeps refusing (and retrying), never connects
        retrying = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                                 web_client=web))
        clients.append(retrying)
        rec = Recorder().attach(retrying, "reconnecting", "connected")
        retrying.start()
        rec.wait_for("reconnecting", 3)
        assert rec.of("connected") == [] and slack.connect_count == 0
        retrying.disconnect()
        # given the CA for both, it works
        ok = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                           ssl_context=trusting(ca)))
        clients.append(ok)
        assert ok.start().result(timeout=30)["url"].startswith("wss://")
        assert ok.send_message("secure", slack.channel_id("general")).result(30)["ok"]
        ok.disconnect()
        web.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("mismatch", ["other_host", "other_ca"])
def test_certificates_for_another_host_or_ca_are_refused(ca: trustme.CA, mismatch: str,
                                                         clients: List[RTMClient]) -> None:
    """The client trusts a CA, but the server's certificate is for another name (or from
    another CA): refused for https, and for wss (reached through a trusting WebClient)."""
    server = tls_server(ca, "localhost") if mismatch == "other_host" else \
        tls_server(trustme.CA())
    with FakeSlack(ssl_context=server) as slack:
        rtm = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                            ssl_context=trusting(ca), auto_reconnect=False))
        clients.append(rtm)
        err = rtm.start().exception(timeout=30)
        assert isinstance(err, SlackHTTPError) and "TLS" in str(err), err
        assert slack.call_count() == 0
        if mismatch == "other_host":
            lax = ssl.create_default_context()
            lax.check_hostname = False  # the Web API side only: the WebSocket is strict
            lax.verify_mode = ssl.CERT_NONE
            web = WebClient(slack.token, base_url=slack.api_url, ssl_context=lax)
            strict = trusting(ca)
            ws = RTMClient(slack.token, **dict(FAST, slack_api_url=slack.api_url,
                                               web_client=web, ssl_context=strict,
                                               auto_reconnect=False))
            clients.append(ws)
            err = ws.start().exception(timeout=30)
            assert isinstance(err, WebsocketError), err
            assert "127.0.0.1" in str(err) and slack.connect_count == 0
            web.close()


@pytest.mark.parametrize("where", ["rtm_connect_error", "error_frame", "reply_error"])
def test_a_token_echoed_by_the_server_is_redacted_from_errors(
        where: str, clients: List[RTMClient], all_logs: List[logging.LogRecord]) -> None:
    token = "plain-S3CR3T-t0ken-9f8e7d"
    errors: List[BaseException] = []
    with FakeSlack(token=token) as slack:
        rtm = RTMClient(token, **dict(FAST, slack_api_url=slack.api_url,
                                      log_level=LogLevel.DEBUG))
        clients.append(rtm)
        rtm.on("error", errors.append)
        rtm.on("unable_to_rtm_start", errors.append)
        if where == "rtm_connect_error":
            slack.fail_next("rtm.connect", f"internal_error {token}")
        rtm.start().result(timeout=30)
        if where == "error_frame":
            slack.inject({"type": "error", "error": {"code": 1, "msg": f"bad {token}"}})
            wait_until(lambda: errors, what="the error event")
        elif where == "reply_error":
            slack.drop_replies = True
            fut = rtm.send_message("x", slack.channel_id("general"))
            (frame,) = slack.wait_for_received("message")
            slack.inject({"ok": False, "reply_to": frame["id"],
                          "error": {"code": 2, "msg": f"refused {token}"}})
            errors.append(fut.exception(timeout=30))
        rtm.disconnect()
    assert errors
    lines = [line for err in errors for line in exception_texts(err)]
    lines += record_texts(all_logs)
    for line in lines:
        assert token not in line, line
