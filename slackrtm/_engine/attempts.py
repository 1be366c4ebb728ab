"""Connection attempts (Run's mixin): the supervising loop of the reader thread that gets
a WebSocket URL from the Web API, opens the socket, hands it to the protocol's read loop,
and after a loss or a failed attempt waits out the backoff and tries again."""

from __future__ import annotations

import threading
from typing import Any, Dict, FrozenSet, List, Optional, Set, Tuple

from slackrtm._engine.context import RunContext, apply, monotonic
from slackrtm._engine.core import State
from slackrtm._engine.dispatch import Dispatcher
from slackrtm._engine.transport import Transport, safe_url
from slackrtm._log import Log
from slackrtm._tokens import token_hint
from slackrtm.errors import (
    PlatformError,
    RateLimitedError,
    ReconnectRequested,
    SlackApiError,
    SlackHTTPError,
    SlackRTMError,
    WebsocketError,
)

__all__ = ["FATAL_ERRORS", "Attempts"]

#: Errors of the URL-handing call that no retry can mend (the token, the app, the scopes).
FATAL_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "user_removed_from_team", "team_disabled", "missing_scope", "not_allowed_token_type",
    "invalid_token",
})


class Attempts:
    """The connecting half of a run; :class:`slackrtm._engine.run.Run` sets these attributes."""

    #: The Web API method that hands out WebSocket URLs (for logs).
    source_method = "rtm.connect"
    #: Its errors that end the run.
    fatal_errors: FrozenSet[str] = FATAL_ERRORS

    ctx: RunContext
    log: Log
    args: Dict[str, Any]
    stop: threading.Event
    kick: threading.Event
    dispatcher: Dispatcher
    transport: Optional[Transport]
    teardown_reason: Optional[SlackRTMError]
    http_scopes: Set[Any]
    #: In-flight URL calls' deadlines (-1.0 once the keep-alive thread aborted one).
    url_calls: Dict[Any, float]
    handshakes: Set[Any]
    #: Kinds of failed attempts logged at WARNING since the last ready (see _attempt_failed).
    failures_logged: Set[Tuple[Any, ...]]

    def _open_source(self) -> Dict[str, Any]:
        """Call the Web API method that hands out a WebSocket URL; the answer has ``url``."""
        return self.call_web(self.source_method, self.args)

    def _read_loop(self, transport: Transport) -> Tuple[SlackRTMError, Transport]:
        """Read until the connection ends; return why, and the transport it ended on
        (another one than ``transport`` when the run replaced it meanwhile)."""
        raise NotImplementedError

    def _fail(self, error: BaseException) -> None:
        """End the run for good because of ``error`` (the run's shutdown)."""
        raise NotImplementedError

    def _move(self, new: State) -> bool:
        """Transition unless the run is stopping; False when stopping."""
        raise NotImplementedError

    def _supervise(self) -> None:
        """The reader thread's body: one connection after another until the run stops.

        Every step that changes shared state takes the client's lock for that step only;
        the lock is never held across a call that can block (HTTP, handshake, reading,
        the backoff wait). After each blocking call the stop is checked first: shutdown
        may have run meanwhile, and then nothing more may change.
        """
        ctx = self.ctx
        first = True
        while not self.stop.is_set():
            # 1. A new attempt (not the first: start() already moved to connecting and
            #    queued the event). _move refuses once the run is stopping.
            if not first:
                if not self._move(State.CONNECTING):
                    return
                self.dispatcher.event("connecting")
            first = False
            # 2. Ask the Web API for a WebSocket URL (no lock: shutdown aborts the call
            #    through its abort scope). A failure is fatal (bad token, app) or backs off.
            self.log.debug(f"connecting: calling {self.source_method}")
            try:
                data = self._open_source()
            except SlackRTMError as err:
                if self.stop.is_set():
                    return
                self.dispatcher.event("unable_to_rtm_start", err)
                fatal = isinstance(err, PlatformError) and err.error in self.fatal_errors
                if not self._attempt_failed(err, fatal):
                    return
                continue
            # 3. Authenticated: the facade's properties read connect_data under the lock.
            with ctx.lock:
                if self.stop.is_set():
                    return
                ctx.connect_data = data
                ctx.authenticated = True
            self.dispatcher.event("authenticated", data)
            # 4. The handshake (no lock: shutdown interrupts it through self.handshakes).
            try:
                transport = self.open_transport(data["url"])
            except WebsocketError as err:
                with ctx.lock:
                    ctx.authenticated = False
                if self.stop.is_set():
                    return
                if not self._attempt_failed(err, fatal=False):
                    return
                continue
            # 5. Publish the connection under the lock, in one step with the core's state:
            #    from now on shutdown, the writer and the keep-alive thread see it. If
            #    shutdown came first, nobody else will close this socket: do it here.
            with ctx.lock:
                if self.stop.is_set():
                    transport.release()
                    return
                self.transport = transport
                self.teardown_reason = None
                ctx.core.opened(monotonic())  # the hello deadline starts
            self.dispatcher.event("connected")
            self.kick.set()  # the keep-alive thread recomputes its deadline (hello)
            # 6. Read until the connection ends (the protocol's loop; no lock held).
            reason, transport = self._read_loop(transport)
            # 7. The connection is gone: unpublish it and fail the sends that awaited a
            #    reply on it, under the lock; a teardown by a deadline (no pong, no hello)
            #    is the truer reason than the read error it caused. Futures are completed
            #    after the lock is released (their callbacks run user code).
            with ctx.lock:
                self.transport = None
                if self.teardown_reason is not None:
                    reason = self.teardown_reason
                effects = ctx.core.connection_lost(reason, monotonic())
                ctx.authenticated = False
            transport.release()
            apply(effects)
            # 8. Stop, give up, or reconnect after the backoff (interrupted by the stop).
            if self.stop.is_set():
                return
            if isinstance(reason, PlatformError):  # the server said the run is over
                self._fail(reason)
                return
            ctx.last_error = reason
            if not ctx.auto_reconnect:
                self._fail(reason)
                return
            if isinstance(reason, ReconnectRequested):  # planned by Slack: no failure
                self.log.info(f"{reason}: reconnecting")
            else:
                self.log.warn(f"connection lost, reconnecting: {reason}")
            with ctx.lock:
                delay = max(ctx.core.reconnect_delay(), self._extra_delay(reason))
            if not self._wait_backoff(delay):
                return

    def _extra_delay(self, reason: SlackRTMError) -> float:
        """A floor for the delay before reconnecting after ``reason`` (0: the backoff's).
        The client's lock is held (a subclass may read the core)."""
        return 0.0

    def open_transport(self, url: str) -> Transport:
        """Open a WebSocket to ``url``; shutdown can interrupt the handshake meanwhile."""
        ctx = self.ctx
        self.log.debug(f"opening the WebSocket to {safe_url(url)}")
        published: List[Any] = []

        def publish(ws: Any) -> None:
            with ctx.lock:
                self.handshakes.add(ws)
                published.append(ws)
                stopping = self.stop.is_set()
            if stopping:
                raise WebsocketError("the client is disconnecting")

        try:
            return Transport.open(url, timeout=ctx.hello_timeout, proxy=ctx.ws_proxy(url),
                                  ssl_context=ctx.ssl_context, publish=publish)
        finally:
            with ctx.lock:
                for ws in published:
                    self.handshakes.discard(ws)

    def call_web(self, method: str, params: Dict[str, Any]) -> Dict[str, Any]:
        """Call ``method`` once (no 429 retries: the caller backs off), abortable by
        shutdown; its errors become this package's. The answer must carry a ``url``."""
        ctx = self.ctx
        scope_factory = ctx.abort_scope
        failure: Optional[SlackRTMError] = None
        overdue = False
        budget = 0.0
        try:
            with scope_factory() as scope:
                budget = max(10.0, 2.0 * float(getattr(ctx.web, "timeout", 30.0)))
                with ctx.lock:
                    self.http_scopes.add(scope)
                    if scope is not None:  # a server answering a byte at a time is cut off
                        self.url_calls[scope] = monotonic() + budget
                self.kick.set()
                if self.stop.is_set() and scope is not None:
                    scope.abort()
                try:
                    resp = ctx.web.call(method, dict(params), rate_limit_retries=0, retries=0)
                finally:
                    with ctx.lock:
                        self.http_scopes.discard(scope)
                        overdue = self.url_calls.pop(scope, None) == -1.0
        except SlackApiError as exc:
            message = self.log.redact(f"{method} failed: {exc.error}"
                                      f"{token_hint(exc.error, method)}")
            failure = PlatformError(message, error=exc.error, data=dict(exc.response.data))
        except SlackHTTPError as exc:
            if overdue:
                failure = SlackHTTPError(
                    f"{method} did not complete within {budget:g} s (the server answers too "
                    "slowly): abandoned", status_code=None)
            elif exc.error and exc.status_code != 429:
                # the Slack error code decides, whatever the HTTP status (401 invalid_auth)
                failure = PlatformError(self.log.redact(str(exc)), error=exc.error,
                                        data={"ok": False, "error": exc.error,
                                              "http_status": exc.status_code})
            else:
                failure = exc
        except SlackRTMError as exc:
            failure = exc
        except Exception as exc:  # anything else the HTTP stack raises
            failure = SlackHTTPError(self.log.redact(
                f"{method} failed: {type(exc).__name__}: {exc}"))
        if failure is not None:
            # raised outside the except blocks: a raw error of the HTTP stack (which may
            # quote the request) is never chained to ours, not even as __context__
            raise failure
        data = dict(resp.data)
        if not isinstance(data.get("url"), str):
            raise PlatformError(f"{method} answered without a WebSocket url",
                                error="no_url", data=data)
        return data

    def _attempt_failed(self, err: SlackRTMError, fatal: bool) -> bool:
        """A connection attempt failed: give up, or wait out the backoff.

        Returns True when the next attempt should start.
        """
        self.ctx.last_error = err
        if fatal or not self.ctx.auto_reconnect:
            self._fail(err)
            return False
        with self.ctx.lock:
            delay = self.ctx.core.attempt_failed()
        if isinstance(err, RateLimitedError):
            delay = max(delay, err.retry_after)
        kind = (type(err), getattr(err, "error", None), getattr(err, "status_code", None))
        if kind not in self.failures_logged:
            first = not self.failures_logged
            self.failures_logged.add(kind)
            self.log.warn(
                f"{'could not connect' if first else 'connection attempt failed'}: {err}; "
                "retrying with backoff until it works or disconnect() is called "
                "(auto_reconnect=True); client.last_error holds the latest reason, and "
                "further failures like this one are logged at DEBUG")
        else:
            self.log.debug(f"connection attempt failed again: {err}")
        return self._wait_backoff(delay)

    def _wait_backoff(self, delay: float) -> bool:
        if not self._move(State.RECONNECTING):
            return False
        self.dispatcher.event("reconnecting")
        self.log.debug(f"reconnecting in {delay:.3f} s")
        return not self.stop.wait(delay)

