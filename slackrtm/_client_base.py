"""What both clients' facades share: settings, state, handlers, start/stop, run_forever.

``RTMClient`` (``client.py``) and ``SocketModeClient`` (``socket_mode.py``) differ only in
the run they start (``_rtm_run.RTMRun`` or ``_sm_run.SocketModeRun``) and in what they
add on top: sending over RTM, acknowledging envelopes over Socket Mode.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import ssl
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Callable, Dict, Optional, Type, TypeVar, Union, overload

from slackrtm._engine.backoff import Backoff
from slackrtm._engine.core import Core, Send, State, Timeouts
from slackrtm._engine.dispatch import Registry
from slackrtm._engine.lifetime import EXIT_GRACE, track
from slackrtm._engine.pacing import Pacer
from slackrtm._engine.run import Run, RunContext, monotonic
from slackrtm._health import Replicated
from slackrtm._log import Log
from slackrtm._tokens import clean_token
from slackrtm._web.netconfig import (
    ProxyConfig,
    environ_proxy,
    parse_proxy,
    proxy_for,
    require_socks,
    trust_context,
)
from slackrtm.errors import KeepAliveConfigError, WebsocketError
from slackrtm.web import WebClient, api_url

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound="BaseClient")
DEFAULT_API_URL = "https://slack.com/api/"


class WaitFuture(Future):  # type: ignore[type-arg]
    """A future of the client's. A handler blocking on it lets the reader read past
    ``max_backlog`` meanwhile, so the reply it waits for is read: the wait cannot deadlock."""

    def __init__(self, client: BaseClient) -> None:
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


class BaseClient(Replicated):
    """The part of a Slack WebSocket client that does not depend on the protocol."""

    #: The kind of token this client takes (see ``_tokens.clean_token``).
    _token_kind: Optional[str] = None

    def __init__(
        self,
        token: str,
        *,
        slack_api_url: Optional[str],
        auto_reconnect: bool,
        client_ping_timeout: float,
        server_pong_timeout: float,
        reply_timeout: float,
        hello_timeout: float,
        backoff: Optional[Backoff],
        log_level: int,
        logger: Union[logging.Logger, Callable[[str, str], None], None],
        proxy: Optional[str],
        ssl_context: Optional[ssl.SSLContext],
        web_client: Optional[WebClient],
        max_backlog: int,
        pacer: Optional[Pacer[Send]] = None,
    ) -> None:
        token = clean_token(token, owner=type(self).__name__, kind=self._token_kind)
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
        self._proxy = parse_proxy(proxy) if proxy is not None else None
        self._log = Log(log_level, logger, secrets=(token,))
        if self._proxy is not None and self._proxy.auth is not None:
            self._log.add_secret(self._proxy.auth[1])
        self._api_url = api_url(slack_api_url or None, "slack_api_url")
        # Both legs (Web API and WebSocket) take their proxy and trust store from one
        # place, so a corporate proxy or CA works for both or for neither.
        require_socks(self._proxy)
        if self._proxy is None:
            require_socks(environ_proxy(self._api_url), origin="the environment's proxy")
        self._ssl_context = trust_context(ssl_context)
        self._web = web_client if web_client is not None else WebClient(
            token, slack_api_url=self._api_url, proxy=proxy, ssl_context=self._ssl_context,
            logger=logger, log_level=log_level)
        self._lock = threading.Lock()
        self._core = Core(Timeouts(client_ping_timeout, server_pong_timeout, reply_timeout,
                                   hello_timeout), backoff or Backoff(),
                          on_transition=self._on_transition, redact=self._log.redact,
                          on_odd=self._on_odd, pacer=pacer)
        self._odd_kinds: set[str] = set()
        self._registry = Registry()
        self._run: Optional[Run] = None
        #: What every run of this client is handed (the run never sees the facade).
        self._context = RunContext(
            lock=self._lock, core=self._core, log=self._log, registry=self._registry,
            web=self._web, owns_web=web_client is None, max_backlog=max_backlog,
            auto_reconnect=auto_reconnect, hello_timeout=hello_timeout,
            ssl_context=self._ssl_context, ws_proxy=self._ws_proxy,
            abort_scope=getattr(self._web, "_abort_scope", None) or contextlib.nullcontext,
            note_hello=self._note_hello)

    def _setup_dedupe(self, dedupe: Any, *, local_default: bool) -> None:
        super()._setup_dedupe(dedupe, local_default=local_default)
        # the run reaches the filters and counters through its context
        ctx = self._context
        ctx.counters, ctx.local_dedupe, ctx.gate = \
            self._counters, self._local_dedupe, self._gate

    @property
    def _post_web(self) -> Optional[WebClient]:
        """Posts messages with chat.postMessage (set by the facades that can); None: cannot.
        Kept in the run context: the run's poster uses it."""
        return self._context.post_web

    @_post_web.setter
    def _post_web(self, web: Optional[WebClient]) -> None:
        self._context.post_web = web

    @property
    def _connect_data(self) -> Optional[Dict[str, Any]]:
        """The last connect data (see :attr:`RunContext.connect_data`)."""
        return self._context.connect_data

    def _new_run(self, args: Dict[str, Any]) -> Run:
        """The run ``start(**args)`` begins (a protocol's subclass of :class:`Run`)."""
        raise NotImplementedError

    def _ws_proxy(self, url: str) -> Optional[ProxyConfig]:
        return proxy_for(self._proxy, url)

    def _on_transition(self, old: State, new: State) -> None:
        if new is State.RECONNECTING:
            self._counters.add("reconnects")
        self._log.debug(f"state {old.value} -> {new.value}")

    def _on_odd(self, kind: str, message: str) -> None:
        """Something odd from the server: WARNING the first time of each kind, then DEBUG."""
        if kind in self._odd_kinds:
            self._log.debug(message)
            return
        self._odd_kinds.add(kind)
        self._log.warn(f"{message} (logged once; more like it at DEBUG)")

    def _in_own_handler(self) -> bool:
        """Whether the calling thread is this client's dispatcher (a handler runs on it)."""
        run = self._run
        if run is None:
            return False
        me = threading.get_ident()
        previous = run.previous_dispatcher
        return me == run.dispatcher.thread_ident or (
            previous is not None and me == previous.ident)

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
        """Whether ``hello`` arrived on the current connection."""
        return self._core.state is State.READY

    @property
    def authenticated(self) -> bool:
        """From ``authenticated`` until that connection is lost."""
        return self._context.authenticated

    @property
    def last_error(self) -> Optional[BaseException]:
        """Why the latest connection attempt failed or the latest connection was lost
        (None until one did; kept after the client recovers). With ``auto_reconnect`` the
        client retries on its own: this says why it is not ready meanwhile."""
        return self._context.last_error

    @property
    def web_client(self) -> WebClient:
        """The WebClient used to get WebSocket URLs (handy for other calls with its token)."""
        return self._web

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
    def start(self, **args: Any) -> Future[Dict[str, Any]]:
        """Connect in the background; the future resolves with the connect data at ready.

        ``args`` go to the Web API call that hands out the WebSocket URL, on every
        (re)connect.
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
            run = self._new_run(dict(args))
            if previous is not None:
                run.previous_dispatcher = previous.threads["dispatcher"]
            self._core.start()
            self._run = run
        track(self)
        run.dispatcher.event("connecting")
        try:
            run.start_threads()
        except RuntimeError as exc:  # e.g. "can't create new thread at interpreter shutdown"
            err = WebsocketError(f"could not start the client's threads: {exc}")
            run.shutdown(err, timeout=5.0, explicit=False)
        return run.future

    # what the exit hook (_engine.lifetime) asks
    def _running(self) -> bool:
        run = self._run
        return run is not None and not run.finished.is_set()

    def _stopping(self) -> bool:
        run = self._run
        return run is not None and run.stopping

    def _grace_left(self) -> float:
        run = self._run
        return 0.0 if run is None else max(0.0, run.stopped_at + EXIT_GRACE - monotonic())

    def _wait_run(self, timeout: float) -> bool:
        run = self._run
        return run is None or run.finished.wait(timeout)

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

    def run_forever(self, **args: Any) -> None:
        """Start if needed (``args`` as for :meth:`start`), then block until disconnected.

        Ctrl-C or SIGTERM (on the main thread) disconnect cleanly and return. When the run
        ends for another reason than ``disconnect()``, the error that ended it is raised,
        also when it ended after ``start()``'s future resolved and before this call: that
        run is not started again (a later call starts a new one).
        """
        if self._in_own_handler():
            # it would block the dispatcher that has to deliver the run's end: a deadlock
            raise RuntimeError(
                "run_forever() was called from a handler of this client, which would "
                "block its event dispatch forever; call it from the main code, and from a "
                "handler use disconnect() (or start() to restart)")
        previous: Any = None
        main = threading.current_thread() is threading.main_thread()
        if main:
            def on_term(signum: int, frame: Any) -> None:
                raise _Terminate()
            previous = signal.signal(signal.SIGTERM, on_term)
        try:
            run = self._run
            unraised = run is not None and run.stopping and not run.explicit \
                and run.error is not None and not run.error_raised
            if run is None or (run.stopping and not unraised):
                self.start(**args)
                run = self._run
            assert run is not None
            while not run.finished.wait(1.0):
                pass
        except (KeyboardInterrupt, _Terminate):
            self._log.debug("interrupted: disconnecting")
            # a handler still busy gets EXIT_GRACE seconds, then run_forever() returns
            self.disconnect(timeout=EXIT_GRACE)
            return
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
        if run.error is not None and not run.explicit:
            run.error_raised = True
            raise run.error

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.disconnect()
