"""``RTMClient``: the facade users hold. The machinery of a run lives in ``_run``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import ssl
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)
from urllib.parse import unquote, urlsplit

import requests.utils

from slackrtm._backfill import Backfill, attach
from slackrtm._backoff import Backoff
from slackrtm._core import Core, Resolve, State, Timeouts
from slackrtm._dispatch import Registry
from slackrtm._http import parse_proxy
from slackrtm._log import Log, LogLevel
from slackrtm._run import Run, apply
from slackrtm._store import Store
from slackrtm.errors import KeepAliveConfigError, SendWhileDisconnectedError, WebsocketError
from slackrtm.web import WebClient

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_API_URL = "https://slack.com/api/"


def _proxy_tuple(proxy: str, *, strict: bool) -> Tuple[str, int, Optional[Tuple[str, str]]]:
    """``(host, port, auth)`` of a proxy URL: strict for an explicit ``proxy=``, lenient
    (any scheme, default port) for one from the environment."""
    if strict:
        cfg = parse_proxy(proxy)
        return cfg.host, cfg.port, cfg.auth
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default, auth


class _SendFuture(Future):  # type: ignore[type-arg]
    """A send's future. A handler blocking on it lets the reader read past ``max_backlog``
    meanwhile, so the reply it waits for is read: the wait cannot deadlock."""

    def __init__(self, client: RTMClient) -> None:
        super().__init__()
        self._client = client

    def _waiting(self) -> Any:
        run = self._client._run
        return run.dispatcher.handler_waiting() if run is not None else \
            contextlib.nullcontext()

    def result(self, timeout: Optional[float] = None) -> Any:
        """As :meth:`concurrent.futures.Future.result`."""
        if self.done():
            return super().result(0)
        with self._waiting():
            return super().result(timeout)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """As :meth:`concurrent.futures.Future.exception`."""
        if self.done():
            return super().exception(0)
        with self._waiting():
            return super().exception(timeout)


class _Terminate(BaseException):
    """Raised in the main thread by the SIGTERM handler installed by run_forever()."""


class RTMClient:
    """A Slack RTM API client: one WebSocket kept alive, events out, sends in.

    See the README for the full guide. Typical use::

        rtm = RTMClient(token)
        rtm.on("message", lambda event: print(event["text"]))
        rtm.start().result(timeout=30)
        print(rtm.send_message("hi", channel_id).result()["ts"])

    Besides the arguments of the API contract, ``max_backlog`` (default 1,000) bounds the
    events read but not yet handled: when handlers fall that far behind, the client stops
    reading the socket until they catch up (TCP back-pressure; nothing is dropped), and
    keep-alive and reply deadlines stand still meanwhile.

    ``store=True`` keeps a live workspace store (:attr:`store`); ``backfill=True`` delivers
    the messages missed while disconnected after each reconnect (at most
    ``backfill_limit`` per channel, marked ``backfilled``), ``backfill="count"`` only
    reports them through the ``missed`` event; ``backfill_since`` seeds :attr:`last_seen`.
    See the README's "Workspace store and backfill".
    """

    def __init__(
        self,
        token: str,
        *,
        slack_api_url: Optional[str] = None,
        auto_reconnect: bool = True,
        use_rtm_connect: bool = True,
        client_ping_timeout: float = 10.0,
        server_pong_timeout: float = 5.0,
        reply_timeout: float = 30.0,
        hello_timeout: float = 10.0,
        backoff: Optional[Backoff] = None,
        log_level: int = LogLevel.INFO,
        logger: Union[logging.Logger, Callable[[str, str], None], None] = None,
        proxy: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        web_client: Optional[WebClient] = None,
        max_backlog: int = 1_000,
        store: bool = False,
        backfill: Union[bool, str] = False,
        backfill_limit: int = 100,
        backfill_since: Optional[Mapping[str, str]] = None,
    ) -> None:
        if server_pong_timeout >= client_ping_timeout:
            raise KeepAliveConfigError(
                f"server_pong_timeout ({server_pong_timeout:g} s) must be smaller than "
                f"client_ping_timeout ({client_ping_timeout:g} s)")
        for name, value in (("client_ping_timeout", client_ping_timeout),
                            ("server_pong_timeout", server_pong_timeout),
                            ("reply_timeout", reply_timeout), ("hello_timeout", hello_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be >= 1, got {max_backlog!r}")
        self._proxy = _proxy_tuple(proxy, strict=True) if proxy is not None else None
        self._log = Log(log_level, logger, secrets=(token,))
        if self._proxy is not None and self._proxy[2] is not None:
            self._log.add_secret(self._proxy[2][1])
        self._api_url = slack_api_url or os.environ.get("SLACK_API_URL") or DEFAULT_API_URL
        self._auto_reconnect = auto_reconnect
        self._use_rtm_connect = use_rtm_connect
        self._hello_timeout = hello_timeout
        self._ssl_context = ssl_context
        self._max_backlog = max_backlog
        self._owns_web = web_client is None
        self._web = web_client if web_client is not None else WebClient(
            token, base_url=self._api_url, proxy=proxy, ssl_context=ssl_context,
            logger=logger, log_level=log_level)
        self._lock = threading.Lock()
        self._core = Core(Timeouts(client_ping_timeout, server_pong_timeout, reply_timeout,
                                   hello_timeout), backoff or Backoff())
        self._core.on_transition = self._on_transition
        self._core.redact = self._log.redact
        self._registry = Registry()
        self._run: Optional[Run] = None
        self._connect_data: Optional[Dict[str, Any]] = None
        self._authenticated = False
        # -- workspace store and backfill (_store.py, _backfill.py): registry observers
        self._store, self._backfill = attach(
            self._registry, self._web, self._log, store=store, backfill=backfill,
            backfill_limit=backfill_limit, backfill_since=backfill_since)

    def __repr__(self) -> str:
        return (f"<RTMClient state={self.state} user={self.active_user_id} "
                f"team={self.active_team_id}>")

    def _ws_proxy(self, url: str) -> Optional[Tuple[str, int, Any]]:
        return ws_proxy(self._proxy, url)

    def _on_transition(self, old: State, new: State) -> None:
        self._log.debug(f"state {old.value} -> {new.value}")

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> str:
        """One of disconnected, connecting, connected, ready, reconnecting, disconnecting."""
        return self._core.state.value

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open (state connected or ready)."""
        return self._core.state in (State.CONNECTED, State.READY)

    @property
    def ready(self) -> bool:
        """Whether ``hello`` arrived on the current connection: sends flow."""
        return self._core.state is State.READY

    @property
    def authenticated(self) -> bool:
        """From ``authenticated`` until that connection is lost."""
        return self._authenticated

    @property
    def active_user_id(self) -> Optional[str]:
        """The bot's user id, from the last rtm.connect / rtm.start answer."""
        return _dig(self._connect_data, "self", "id")

    @property
    def active_team_id(self) -> Optional[str]:
        """The workspace id, from the last rtm.connect / rtm.start answer."""
        return _dig(self._connect_data, "team", "id")

    @property
    def web_client(self) -> WebClient:
        """The WebClient used for rtm.connect / rtm.start (handy for other calls)."""
        return self._web

    @property
    def store(self) -> Store:
        """The live workspace store (``RTMClient(..., store=True)``); see :class:`Store`."""
        if self._store is None:
            raise RuntimeError("the workspace store is off: create the client with "
                               "RTMClient(..., store=True)")
        return self._store

    @property
    def last_seen(self) -> Dict[str, str]:
        """Channel id -> ``ts`` of the newest message delivered there (with ``backfill``;
        persist it and pass it back as ``backfill_since`` to backfill across restarts)."""
        backfill: Optional[Backfill] = self._backfill
        return backfill.last_seen if backfill is not None else {}

    # ------------------------------------------------------------------ events
    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...

    def on(self, event: str, handler: Optional[F] = None) -> Any:
        """Register ``handler`` for ``event``; without one, return a decorator."""
        if handler is None:
            return lambda fn: self._registry.on(event, fn)
        return self._registry.on(event, handler)

    @overload
    def once(self, event: str) -> Callable[[F], F]: ...
    @overload
    def once(self, event: str, handler: F) -> F: ...

    def once(self, event: str, handler: Optional[F] = None) -> Any:
        """Like :meth:`on`, but the handler runs at most once."""
        if handler is None:
            return lambda fn: self._registry.once(event, fn)
        return self._registry.once(event, handler)

    def off(self, event: str, handler: Callable[..., Any]) -> None:
        """Remove ``handler`` from ``event`` (no error when it is not registered)."""
        self._registry.off(event, handler)

    # ------------------------------------------------------------------ running
    def start(self, **rtm_args: Any) -> Future[Dict[str, Any]]:
        """Connect in the background; the future resolves with the connect data at ready.

        ``rtm_args`` go to rtm.connect / rtm.start on every (re)connect.
        """
        previous = self._run
        if previous is not None and previous.stopping:
            # a teardown in another thread is finishing (it never waits for this thread
            # before setting torn_down, so waiting here cannot deadlock)
            previous.torn_down.wait(15.0)
        with self._lock:
            run = self._run
            if run is not None and not run.stopping:
                return run.future
            if self._core.state is not State.DISCONNECTED:
                raise RuntimeError(f"cannot start while {self._core.state.value}: a "
                                   "disconnect() is still finishing")
            run = Run(self, dict(rtm_args))
            if previous is not None:
                run.previous_dispatcher = previous.threads["dispatcher"]
            self._core.start()
            self._run = run
        run.dispatcher.event("connecting")
        try:
            run.start_threads()
        except RuntimeError as exc:  # e.g. "can't create new thread at interpreter shutdown"
            err = WebsocketError(f"could not start the client's threads: {exc}")
            run.shutdown(err, timeout=5.0, explicit=False)
        return run.future

    def disconnect(self, timeout: Optional[float] = 10.0) -> None:
        """Close the connection, fail pending sends, stop and join the client's threads.

        Idempotent; callable from any thread and state, including from a handler.
        """
        run = self._run
        if run is None:
            return
        run.shutdown(None, timeout, explicit=True)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the client is disconnected (True) or ``timeout`` passes (False)."""
        run = self._run
        if run is None:
            return True
        if threading.get_ident() == run.dispatcher.thread_ident:
            return run.torn_down.wait(timeout)
        return run.finished.wait(timeout)

    def run_forever(self, **rtm_args: Any) -> None:
        """Start if needed (``rtm_args`` as for :meth:`start`), then block until disconnected.

        Ctrl-C or SIGTERM (on the main thread) disconnect cleanly and return. When the run
        ends for another reason than ``disconnect()``, the error that ended it is raised.
        """
        previous: Any = None
        main = threading.current_thread() is threading.main_thread()
        if main:
            def on_term(signum: int, frame: Any) -> None:
                raise _Terminate()
            previous = signal.signal(signal.SIGTERM, on_term)
        try:
            run = self._run
            if run is None or run.stopping:
                self.start(**rtm_args)
                run = self._run
            assert run is not None
            while not run.finished.wait(1.0):
                pass
        except (KeyboardInterrupt, _Terminate):
            self._log.debug("interrupted: disconnecting")
            self.disconnect()
            return
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
        if run.error is not None and not run.explicit:
            raise run.error

    def __enter__(self) -> RTMClient:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.disconnect()

    # ------------------------------------------------------------------ sending
    def add_outgoing_event(self, await_reply: bool, type: str,
                           body: Optional[Dict[str, Any]] = None) -> Future[Any]:
        """Send any RTM event; resolves with the reply (``await_reply``) or None once written."""
        future: Future[Any] = _SendFuture(self)
        return self._submit(future, lambda: self._core.submit(type, body, await_reply, future))

    def send_message(self, text: str, conversation_id: str, *,
                     thread_ts: Optional[str] = None) -> Future[Dict[str, Any]]:
        """Post ``text``; resolves with Slack's reply (``ts``, ``text``) to this message."""
        body: Dict[str, Any] = {"channel": conversation_id, "text": text}
        if thread_ts is not None:
            body["thread_ts"] = thread_ts
        return self.add_outgoing_event(True, "message", body)

    def send_typing(self, conversation_id: str) -> Future[None]:
        """Show the typing indicator; resolves once written."""
        return self.add_outgoing_event(False, "typing", {"channel": conversation_id})

    def subscribe_presence(self, user_ids: List[str]) -> Future[None]:
        """Subscribe to these users' presence (the complete list); re-sent on reconnect."""
        future: Future[Any] = _SendFuture(self)
        return self._submit(future, lambda: self._core.subscribe_presence(user_ids, future))

    def _submit(self, future: Future[Any], queue: Callable[[], Optional[Resolve]]) -> Future[Any]:
        with self._lock:
            run = self._run
            failed = queue()
            writable = self._core.writable()
        if failed is not None:
            apply([failed])
        elif writable and run is not None:
            run.pump_or_wake()
        elif run is None and not future.done():  # cannot happen: started means a run exists
            future.set_exception(SendWhileDisconnectedError("the client is not started"))
        return future


def _dig(data: Optional[Dict[str, Any]], *keys: str) -> Optional[str]:
    value: Any = data
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, str) else None


def _environ_proxy(url: str) -> Optional[str]:
    http_url = "https" + url[3:] if url.startswith("wss") else "http" + url[2:]
    proxies = requests.utils.get_environ_proxies(http_url)
    return proxies.get("https" if http_url.startswith("https") else "http")


def ws_proxy(explicit: Optional[Tuple[str, int, Any]], url: str
             ) -> Optional[Tuple[str, int, Any]]:
    """The proxy for the WebSocket at ``url``: the explicit one, else the environment's."""
    if explicit is not None:
        return explicit
    env = _environ_proxy(url)
    return _proxy_tuple(env, strict=False) if env else None

