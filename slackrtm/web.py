"""A small Slack Web API client: ``WebClient`` and the ``SlackResponse`` it returns.

Any Slack method can be called, by name or through attribute namespaces::

    web = WebClient(token)
    web.api_call("chat.postMessage", channel="C1", text="hi")
    web.chat.postMessage(channel="C1", text="hi")       # the same call
    for page in web.conversations.list(limit=200):      # follows next_cursor
        ...
"""

from __future__ import annotations

import json
import math
import os
import re
import ssl
import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional, Union
from urllib.parse import urlsplit

import requests
import urllib3

from slackrtm._log import Log, LoggerLike, LogLevel, redact
from slackrtm._tokens import clean_token, token_hint
from slackrtm._version import __version__
from slackrtm._web import http as _http
from slackrtm._web.http import AbortHandle
from slackrtm._web.netconfig import environ_proxy, require_socks, trust_context
from slackrtm._web.tiers import RateLimits, method_limits
from slackrtm.errors import RateLimitedError, SlackApiError, SlackHTTPError

__all__ = ["AbortHandle", "ApiMethod", "SlackResponse", "WebClient", "is_safe_to_repeat"]

DEFAULT_BASE_URL = "https://slack.com/api/"
_METHOD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
# The last part of the names of methods that only read: repeating one changes nothing.
_READ_ONLY = frozenset({"list", "info", "history", "replies", "members", "test", "get",
                        "lookupByEmail", "getPresence", "getPermalink", "conversations"})
# Longest wait a 5xx's Retry-After may ask for before the call fails instead of waiting.
_MAX_RETRY_AFTER = 60.0


def is_safe_to_repeat(method: str) -> bool:
    """Whether a Web API ``method`` only reads, so that sending it twice changes nothing.

    ``conversations.list``, ``users.info``, ``conversations.history``, ``auth.test``,
    ``users.profile.get``, ``users.conversations``... are; ``chat.postMessage``,
    ``reactions.add``, ``rtm.connect`` and anything else that writes or hands out a
    one-time URL are not.
    """
    return method.rsplit(".", 1)[-1] in _READ_ONLY


def _never_sent(exc: BaseException) -> bool:
    """Whether a transport error happened before any byte of the request left: no TCP
    connection (refused, unreachable, DNS), a connect timeout, or a proxy that refused the
    tunnel. TLS failures are not counted: repeating them does not help."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        return isinstance(reason, (urllib3.exceptions.NewConnectionError,
                                   urllib3.exceptions.ConnectTimeoutError))
    return False


class SlackResponse:
    """One Web API response: read it like a dict, iterate it to follow pagination.

    ``resp["channels"]``, ``resp.get("ok")``, ``"error" in resp``, ``resp.data`` (the
    parsed JSON object), ``resp.status_code``, ``resp.headers``. ``for page in resp``
    yields this page, then each next page, calling the same method with the same params
    plus ``cursor=response_metadata.next_cursor``, until that cursor is empty.
    """

    def __init__(self, *, client: WebClient | None, method: str, params: Mapping[str, Any],
                 data: dict[str, Any], status_code: int, headers: Mapping[str, str]) -> None:
        self.method = method
        self.data = data
        self.status_code = status_code
        self.headers = headers
        self._client = client
        self._params = dict(params)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        """``data.get(key, default)``."""
        return self.data.get(key, default)

    @property
    def next_cursor(self) -> str:
        """``response_metadata.next_cursor``, or ``""`` on the last page."""
        meta = self.data.get("response_metadata")
        cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
        return cursor if isinstance(cursor, str) else ""

    def __iter__(self) -> Iterator[SlackResponse]:
        page: SlackResponse = self
        yield page
        seen = {str(self._params.get("cursor", ""))}
        while page.next_cursor and page.next_cursor not in seen:
            if page._client is None:
                raise RuntimeError(f"{self.method}: this response has no client to fetch "
                                   "the next page with")
            seen.add(page.next_cursor)
            page = page._client.call(self.method, {**self._params, "cursor": page.next_cursor})
            yield page

    def validate(self) -> SlackResponse:
        """Return self when ``ok`` is true; raise :class:`SlackApiError` otherwise."""
        if self.data.get("ok") is not True:
            error = self.data.get("error", "unknown_error")
            raise SlackApiError(f"{self.method} failed: {error}", self)
        return self

    def __repr__(self) -> str:
        return (f"<SlackResponse {self.method} status={self.status_code} "
                f"ok={self.data.get('ok')!r}>")


class ApiMethod:
    """A Slack method name or namespace: ``web.users`` is one, ``web.users.info`` another.

    Attribute access extends the name (any depth); calling it calls that method with
    keyword params: ``web.admin.users.session.list(limit=10)``.
    """

    def __init__(self, client: WebClient, name: str) -> None:
        self._client = client
        self._name = name

    def __getattr__(self, name: str) -> ApiMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return ApiMethod(self._client, f"{self._name}.{name}")

    def __call__(self, **params: Any) -> SlackResponse:
        return self._client.api_call(self._name, **params)

    def __repr__(self) -> str:
        return f"<slackrtm Web API method {self._name!r} at {self._client.base_url}>"


def encode_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Form values as Slack wants them: booleans "true"/"false", lists/dicts JSON, None dropped."""
    form: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            form[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple, dict)):
            form[key] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bytes):
            form[key] = value.decode("utf-8")
        else:
            form[key] = str(value)
    return form


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        value = float(headers.get("Retry-After", ""))
    except ValueError:
        return 1.0
    return value if math.isfinite(value) and value >= 0 else 1.0


class _BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer``; given to requests so ~/.netrc is never consulted."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token:
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "<BearerAuth>"


def api_url(value: str | None, keyword: str = "slack_api_url") -> str:
    """The Web API base URL ``value`` (None: ``$SLACK_API_URL``, else Slack's), checked and
    ending in ``/``. A bad one raises ``ValueError`` naming ``keyword`` (or the variable)."""
    if value is None:
        value, keyword = os.environ.get("SLACK_API_URL") or DEFAULT_BASE_URL, "$SLACK_API_URL"
    if not isinstance(value, str):
        raise TypeError(f"{keyword} must be a string (an http:// or https:// URL), not "
                        f"{type(value).__name__}")
    if urlsplit(value).scheme.lower() not in ("http", "https") or not urlsplit(value).netloc:
        raise ValueError(f"{keyword} must be an http:// or https:// URL such as "
                         f"{DEFAULT_BASE_URL!r}, got {value!r}")
    return value if value.endswith("/") else value + "/"


class WebClient:
    """Calls Slack Web API methods over HTTP (one ``requests.Session`` per client).

    ``token`` goes only in the ``Authorization`` header. ``slack_api_url`` (as for the
    RTM and Socket Mode clients; ``base_url`` is another name for it) defaults to
    ``$SLACK_API_URL``, else ``https://slack.com/api/``. ``timeout`` bounds connecting and
    each read, in seconds. HTTP 429 is retried after ``Retry-After`` seconds up to
    ``max_rate_limit_retries`` times. Other failures are retried up to ``max_retries`` times
    (0.5 s, then 1 s, apart) only where repeating cannot post twice: a connection that was
    never made (refused, unreachable, DNS, connect timeout, proxy refused) for any method,
    and for read-only methods (:func:`slackrtm.web.is_safe_to_repeat`) also a connection
    lost mid-call and a 5xx answer with ``Retry-After``. ``chat.postMessage`` and other
    writes are never repeated once sent. ``proxy`` (``http://``, ``socks5://`` or
    ``socks5h://`` ``[user:pass@]host:port``; SOCKS needs the ``socks`` extra) is used for
    every host, loopback included; None follows ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
    ``ALL_PROXY`` and ``NO_PROXY``. ``ssl_context`` is used as is for https, also through
    the proxy; without one the client trusts the bundle named by ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` / ``SSL_CERT_FILE``, else the system's store plus certifi's (the same
    store the real-time clients use for their WebSocket). ``logger`` is a ``logging.Logger``
    or ``fn(level, message)`` (default: the ``slackrtm.web`` logger), filtered at
    ``log_level``. A given ``session`` is used as is (no proxy, SSL context or in-flight
    abort is added to it) and is not closed by :meth:`close`.

    ``rate_limits=True`` paces calls before Slack has to refuse them: each method gets a
    token bucket from Slack's published tier (chat.postMessage: one a second per channel),
    and a call waits for its turn (any thread; the RTM client's disconnect interrupts the
    wait of its rtm.connect). A mapping turns it on with overrides: ``{"users.list": 4,
    "chat.update": (30, 5)}`` (a tier, or calls per minute and burst). Off by default.
    ``shared_limits`` (``slackrtm.redis.RedisRate(url)``) shares those buckets among
    every copy of a bot, so that together they keep the tiers.
    """

    def __init__(self, token: str | None = None, *, slack_api_url: str | None = None,
                 base_url: str | None = None, timeout: float = 30.0,
                 max_rate_limit_retries: int = 3,
                 proxy: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 logger: Union[LoggerLike, Log] = None, session: requests.Session | None = None,
                 log_level: int = LogLevel.INFO, rate_limits: RateLimits = False,
                 max_retries: int = 2, shared_limits: Any = None) -> None:
        if slack_api_url is not None and base_url is not None:
            raise TypeError("WebClient() takes slack_api_url or base_url (another name for "
                            "it), not both")
        base_url = api_url(slack_api_url, "slack_api_url") if base_url is None \
            else api_url(base_url, "base_url")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if max_rate_limit_retries < 0:
            raise ValueError(f"max_rate_limit_retries must be >= 0, got {max_rate_limit_retries!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        self._proxy = _http.parse_proxy(proxy) if proxy is not None else None
        require_socks(self._proxy, legs=("web",))
        if session is None and proxy is None:
            require_socks(environ_proxy(base_url), legs=("web",),
                          origin="the environment's proxy")
        if session is not None and (self._proxy is not None or ssl_context is not None):
            raise ValueError("proxy and ssl_context cannot be combined with a given session: "
                             "configure that session instead")
        if token is not None:
            token = clean_token(token, owner="WebClient")
        self._token = token
        self.base_url = base_url
        self.timeout = float(timeout)
        self.max_rate_limit_retries = int(max_rate_limit_retries)
        self.max_retries = int(max_retries)
        # One trust store for the Web API and the WebSocket: see netconfig.trust_context.
        self.ssl_context = ssl_context if session is not None else trust_context(ssl_context)
        secrets = [token or ""]
        if self._proxy is not None:
            secrets += [self._proxy.url, *(self._proxy.auth or ())]
        self._secrets = tuple(s for s in secrets if s)
        if isinstance(logger, Log):
            self._log = logger
            for secret in self._secrets:
                self._log.add_secret(secret)
        else:
            self._log = Log(log_level, logger, self._secrets, name="slackrtm.web")
        self._limits = method_limits(rate_limits, shared_limits)
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = _http.SlackAdapter(ssl_context=self.ssl_context, proxy=self._proxy)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = (f"slackrtm/{__version__} "
                                             f"{requests.utils.default_user_agent()}")
        self.session = session

    @property
    def slack_api_url(self) -> str:
        """The Web API's base URL, ending in ``/`` (also readable as ``base_url``)."""
        return self.base_url

    @property
    def proxy(self) -> str | None:
        """The explicit proxy without its credentials (``http://host:port``), or None."""
        return self._proxy.display if self._proxy is not None else None

    def __getattr__(self, name: str) -> ApiMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return ApiMethod(self, name)

    def __repr__(self) -> str:
        proxy = f", proxy={self.proxy!r}" if self._proxy is not None else ""
        return f"WebClient(base_url={self.base_url!r}{proxy})"

    def close(self) -> None:
        """Close the client's own session and its connections (a given session is left open)."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> WebClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _abort_scope(self) -> Iterator[AbortHandle]:
        """Make the calls this thread makes in the block abortable from another thread.

        ``handle.abort()`` shuts down the sockets in use at once (TCP connect, TLS
        handshake, proxy CONNECT, request and response), and the call raises
        ``SlackHTTPError(status_code=None)``; called before a request starts, that request
        fails at once; a rate-limit wait ends at once. Only a DNS lookup in progress cannot
        be interrupted: the call fails as soon as it returns. Works with the client's own
        session; with a given session only the checks between requests and the rate-limit
        wait apply.
        """
        with _http.abort_scope() as handle:
            yield handle

    def api_call(self, method: str, /, **params: Any) -> SlackResponse:
        """Call Web API ``method`` with form-encoded ``params``; see :meth:`call`."""
        return self.call(method, params)

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None, *,
             rate_limit_retries: int | None = None,
             retries: int | None = None) -> SlackResponse:
        """POST ``params`` to ``base_url + method`` and return the parsed response.

        ``rate_limit_retries`` overrides ``max_rate_limit_retries`` for this call (0: a
        429 raises :class:`RateLimitedError` at once, with ``.retry_after``). A ``token``
        param replaces the client's token for this call, still sent only as a header.
        ``retries`` overrides ``max_retries`` for this call (see the class). Raises
        :class:`SlackApiError` on ``ok: false`` and :class:`SlackHTTPError` on other HTTP
        errors and connection failures (``status_code=None``) once retries are spent.
        """
        if not isinstance(method, str) or not _METHOD_NAME.fullmatch(method):
            raise ValueError(f"not a Slack Web API method name: {method!r}")
        limit_retries = (self.max_rate_limit_retries if rate_limit_retries is None
                         else rate_limit_retries)
        params = dict(params or {})
        form = encode_params(params)
        token = form.pop("token", None) or self._token
        if token and token != self._token:
            token = clean_token(token, owner=f"{method}: the token param")
        if token and token != self._token:
            self._log.add_secret(token)
        scope = _http.current_scope()
        if self._limits is not None:  # rate_limits=True: wait for the method's turn
            self._wait_turn(method, params, scope)
        attempt = 0
        failures, max_failures = 0, self.max_retries if retries is None else retries
        while True:
            try:
                http = self._post(method, form, token, scope)
            except SlackHTTPError as err:
                cause = err.__cause__
                if (failures >= max_failures or cause is None
                        or (scope is not None and scope.aborted)
                        or not (_never_sent(cause) or (
                            is_safe_to_repeat(method)
                            and isinstance(cause, requests.exceptions.ConnectionError)
                            and not isinstance(cause, requests.exceptions.SSLError)))):
                    raise
                failures += 1
                self._pause(method, 0.5 * 2 ** (failures - 1), scope,
                            f"{err} (retry {failures} of {max_failures})")
                continue
            if (http.status_code >= 500 and "Retry-After" in http.headers
                    and is_safe_to_repeat(method) and failures < max_failures
                    and _retry_after(http.headers) <= _MAX_RETRY_AFTER):
                failures += 1
                self._pause(method, _retry_after(http.headers), scope,
                            f"{method} answered HTTP {http.status_code} with Retry-After "
                            f"(retry {failures} of {max_failures})")
                continue
            if http.status_code != 429:
                return self._response(method, params, http)
            retry_after = _retry_after(http.headers)
            if attempt >= limit_retries:
                raise RateLimitedError(
                    f"{method} was rate limited (HTTP 429, Retry-After {retry_after:g} s) "
                    f"after {attempt} {'retry' if attempt == 1 else 'retries'}",
                    retry_after=retry_after)
            attempt += 1
            self._log.warn(f"{method} was rate limited (HTTP 429): retry {attempt} of "
                           f"{limit_retries} in {retry_after:g} s")
            if scope is not None:
                if scope.wait(retry_after):
                    raise SlackHTTPError(f"{method} was aborted while waiting out a rate "
                                         "limit", status_code=None)
            else:
                time.sleep(retry_after)

    def _pause(self, method: str, delay: float, scope: AbortHandle | None, why: str) -> None:
        """Log why a call is repeated, then wait ``delay`` seconds (at once on abort)."""
        self._log.warn(f"{why}: repeating in {delay:g} s")
        if scope is not None:
            if scope.wait(delay):
                raise SlackHTTPError(f"{method} was aborted while waiting to be repeated",
                                     status_code=None)
        else:
            time.sleep(delay)

    def _wait_turn(self, method: str, params: Mapping[str, Any],
                   scope: AbortHandle | None) -> None:
        assert self._limits is not None
        wait = self._limits.reserve(method, params, time.monotonic())
        if wait <= 0:
            return
        self._log.debug(f"{method}: waiting {wait:.3f} s for its rate limit tier")
        if scope is not None:
            if scope.wait(wait):
                raise SlackHTTPError(f"{method} was aborted while waiting for its rate limit "
                                     "tier", status_code=None)
        else:
            time.sleep(wait)

    def _post(self, method: str, form: dict[str, str], token: str | None,
              scope: AbortHandle | None) -> requests.Response:
        url = self.base_url + method
        if scope is not None and scope.aborted:
            raise SlackHTTPError(f"{method} was aborted before it was sent", status_code=None)
        started = time.monotonic()
        failure: SlackHTTPError | None = None
        cause: BaseException | None = None
        try:
            http = self.session.post(url, data=form, auth=_BearerAuth(token),
                                     timeout=self.timeout, allow_redirects=False)
        except (*_TRANSPORT_ERRORS, ValueError) as exc:
            _scrub(exc)
            elapsed = time.monotonic() - started
            if scope is not None and scope.aborted:
                what = "was aborted"
            elif isinstance(exc, requests.Timeout):
                what = f"timed out after {elapsed:.1f} s (timeout {self.timeout:g} s)"
            elif isinstance(exc, requests.exceptions.SSLError):
                what = f"failed: TLS with {self._where(url)} failed"
            elif isinstance(exc, _TRANSPORT_ERRORS):
                what = f"failed: could not reach {self._where(url)}"
            else:
                what = "failed: the request could not be made"
            detail = redact(f"{type(exc).__name__}: {exc}", self._secrets)
            self._log.debug(f"{method} {what} ({detail})")
            failure = SlackHTTPError(f"{method} {what} ({detail})", status_code=None)
            # the raw error is chained only when its text shows no secret (its request's
            # Authorization header is scrubbed above); an invalid header quotes it whole
            cause = exc if detail == f"{type(exc).__name__}: {exc}" else None
        if failure is not None:
            # raised outside the except block: a raw error not chained as the cause is not
            # the context either
            raise failure from cause
        self._log.debug(f"{method} -> HTTP {http.status_code} in "
                        f"{time.monotonic() - started:.3f} s "
                        f"(params: {', '.join(sorted(form)) or 'none'})")
        return http

    def _where(self, url: str) -> str:
        host = urlsplit(url).netloc
        return f"{host} via proxy {self.proxy}" if self._proxy is not None else host

    def _response(self, method: str, params: Mapping[str, Any],
                  http: requests.Response) -> SlackResponse:
        status = http.status_code
        try:
            data = http.json()
        except ValueError:
            data = None
        if not 200 <= status < 300:
            code = data.get("error") if isinstance(data, dict) else None
            code = redact(code, self._secrets) if isinstance(code, str) and code else None
            error = f": {code}{token_hint(code, method)}" if code else ""
            message = redact(f"{method} failed: HTTP {status} {http.reason or ''}".rstrip()
                             + error, self._secrets)
            raise SlackHTTPError(message, status_code=status, error=code)
        if not isinstance(data, dict):
            raise SlackHTTPError(f"{method} failed: HTTP {status} but the body is not a JSON "
                                 "object", status_code=status)
        resp = SlackResponse(client=self, method=method, params=params, data=data,
                             status_code=status, headers=http.headers)
        if data.get("ok") is not True:
            error = redact(str(data.get("error", "unknown_error")), self._secrets)
            self._log.debug(f"{method} answered ok=false: {error}")
            raise SlackApiError(f"{method} failed: {error}{token_hint(error, method)}", resp)
        return resp


def _scrub(exc: BaseException) -> None:
    """Drop the token from the request that a requests exception carries along."""
    request = getattr(exc, "request", None)
    headers = getattr(request, "headers", None)
    if headers is not None and "Authorization" in headers:
        headers["Authorization"] = "Bearer <redacted>"
