"""One run of a client, from ``start()`` to ``disconnect()``: its threads and connection.

This is the machinery both clients share; what differs between RTM and Socket Mode (the
Web API call that hands out a WebSocket URL, which errors are fatal, what each frame
means) is supplied by a subclass: ``_rtm_run.RTMRun`` or ``_sm_run.SocketModeRun``. The
run knows its client only through :class:`Host`, the few settings and shared objects it
needs, never the facade.

Threads (all created in ``start()``, non-daemon, named ``slackrtm-<role>``):

- reader: the supervisor. Asks for a WebSocket URL, opens the socket, reads frames
  (matching replies to futures on the way), hands them to the dispatcher, and reconnects
  with backoff in a loop. It owns the connection.
- dispatcher: calls the handlers (see ``_dispatch``).
- keepalive: fires the core's deadlines: pings, pong and hello deadlines, reply timeouts.
- writer: flushes queued sends when the connection becomes ready, writes pings and
  connection-bound frames (Socket Mode acks), so that neither the reader nor the timer
  thread ever blocks on a full socket.
- a subclass may add roles (Socket Mode's refresher).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, FrozenSet, List, Optional, Protocol, Set, Tuple

from slackrtm._core import Core, PingDue, Resolve, State, Teardown
from slackrtm._dispatch import Dispatcher, Entry, Registry
from slackrtm._log import Log
from slackrtm._transport import NotWritten, Transport, abort_handshake, safe_url
from slackrtm.errors import (
    NoReplyReceivedError,
    PlatformError,
    RateLimitedError,
    SendWhileDisconnectedError,
    SlackApiError,
    SlackHTTPError,
    SlackRTMError,
    WebsocketError,
)
from slackrtm.web import WebClient

#: Errors of the URL-handing call that no retry can mend (the token, the app, the scopes).
FATAL_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "user_removed_from_team", "team_disabled", "missing_scope", "not_allowed_token_type",
    "invalid_token",
})

monotonic = time.monotonic


def apply(effects: List[Resolve]) -> None:
    """Complete futures (outside every lock: it runs their callbacks)."""
    for e in effects:
        fut = e.future
        if fut.done():
            continue
        try:
            if e.error is not None:
                fut.set_exception(e.error)
            else:
                fut.set_result(e.result)
        except Exception:  # InvalidStateError: cancelled meanwhile by its owner
            pass


class Host(Protocol):
    """What a run needs of the client that started it."""

    _lock: threading.Lock
    _core: Core
    _log: Log
    _registry: Registry
    _max_backlog: int
    _auto_reconnect: bool
    _hello_timeout: float
    _ssl_context: Optional[ssl.SSLContext]
    _web: WebClient
    _owns_web: bool
    _connect_data: Optional[Dict[str, Any]]
    _authenticated: bool

    def _ws_proxy(self, url: str) -> Optional[Tuple[str, int, Any]]: ...


@dataclass
class Bound:
    """A frame for one connection (a Socket Mode ack): written before queued sends, on
    ``via`` while it takes writes, else on the current connection once it is ready."""

    text: str
    via: Optional[Transport]
    future: Optional[Future[None]]


class Run:
    """The machinery of one run; created by a client's ``start()``. Subclasses supply
    :meth:`_open_source`, :meth:`_read_loop` and the class attributes below."""

    #: The Web API method that hands out WebSocket URLs (for logs).
    source_method = "rtm.connect"
    #: Its errors that end the run.
    fatal_errors: FrozenSet[str] = FATAL_ERRORS
    #: Keep-alive pings as JSON ``{"type": "ping"}`` messages (RTM), else as WebSocket
    #: ping control frames answered by pong frames (Socket Mode).
    json_ping = True

    def __init__(self, client: Host, args: Dict[str, Any]) -> None:
        self.c = client
        self.args = args
        self.log = client._log
        self.stop = threading.Event()
        self.finished = threading.Event()  # the dispatcher ran the last event
        self.torn_down = threading.Event()  # state is disconnected again
        self.future: Future[Dict[str, Any]] = Future()
        self.stopping = False
        self.explicit = False
        self.error: Optional[BaseException] = None
        self.transport: Optional[Transport] = None
        self.teardown_reason: Optional[SlackRTMError] = None
        self.http_scopes: Set[Any] = set()  # in-flight Web API calls, aborted by shutdown
        self.kick = threading.Event()
        self.next_wake = 0.0  # when the keep-alive thread plans to wake next
        self.wake_writer = threading.Event()
        self.write_lock = threading.Lock()
        self.dispatcher = Dispatcher(client._registry, self.log, client._max_backlog)
        self.threads_started = threading.Event()  # start() finished starting them
        self.handshakes: Set[Any] = set()  # websocket-client objects mid-handshake
        self.bound: Deque[Bound] = deque()
        self.previous_dispatcher: Optional[threading.Thread] = None
        roles: List[Tuple[str, Callable[[], None]]] = [
            ("reader", self._reader_main), ("dispatcher", self._dispatcher_main),
            ("keepalive", self._keepalive_main), ("writer", self._writer_main)]
        roles.extend(self._extra_threads())
        self.threads = {
            role: threading.Thread(target=_ours(target), name=f"slackrtm-{role}",
                                   daemon=False)
            for role, target in roles
        }

    def _extra_threads(self) -> List[Tuple[str, Callable[[], None]]]:
        """More threads for this kind of run: ``(role, body)`` pairs, started with the rest."""
        return []

    # ================================================================ protocol hooks
    def _open_source(self) -> Dict[str, Any]:
        """Call the Web API method that hands out a WebSocket URL; the answer has ``url``."""
        raise NotImplementedError

    def _read_loop(self, transport: Transport) -> Tuple[SlackRTMError, Transport]:
        """Read until the connection ends; return why, and the transport it ended on
        (another one than ``transport`` when the run replaced it meanwhile)."""
        raise NotImplementedError

    def start_threads(self) -> None:
        """Start every thread this run will need (none is created later)."""
        try:
            for thread in self.threads.values():
                thread.start()
        finally:
            self.threads_started.set()

    # ================================================================ shutdown
    def shutdown(self, error: Optional[BaseException], timeout: Optional[float],
                 explicit: bool, join_dispatcher: bool = True) -> None:
        """Tear the run down (once) and join its threads, except the calling one.

        ``error`` is what ended the run when it was not ``disconnect()``.
        """
        c = self.c
        deadline = None if timeout is None else monotonic() + timeout
        with c._lock:
            first = not self.stopping
            if first:
                self.stopping = True
                self.explicit = explicit
                self.error = error
                self.stop.set()
                if c._core.state not in (State.DISCONNECTED, State.DISCONNECTING):
                    c._core.transition(State.DISCONNECTING)
                transport = self.transport
                scopes = list(self.http_scopes)
                handshaking = list(self.handshakes)
        me = threading.current_thread()
        if first:
            if error is not None:
                self.dispatcher.event("error", error)
                if not self.future.done():
                    self.future.set_exception(error)
            self.dispatcher.event("disconnecting")
            for scope in scopes:
                try:
                    scope.abort()
                except Exception as exc:  # abandoning the call is all that matters
                    self.log.debug(f"aborting the in-flight HTTP call failed: {exc}")
            for ws in handshaking:
                abort_handshake(ws)
            if transport is not None:
                if explicit:  # a close frame, best effort, then teardown
                    transport.close(wait=min(0.2, _remaining(deadline) or 0.0))
                else:
                    transport.abort()
            self._wake_all()
        if me.name.startswith("slackrtm-") or self.threads_started.wait(_remaining(deadline)):
            pass  # start() is done starting the threads (or this is one of them)
        for role, thread in self.threads.items():
            if role == "dispatcher":
                continue
            if thread is not me and thread.ident is not None:
                thread.join(_remaining(deadline))
        if first:
            with c._lock:
                effects = c._core.drop_all("disconnected")
                effects.extend(self._drop_bound("the client disconnected"))
                c._core.transition(State.DISCONNECTED)
                c._authenticated = False
            apply(effects)
            if not self.future.done():
                self.future.cancel()
            if c._owns_web:  # leave no pooled HTTP connection behind (it reopens on demand)
                c._web.close()
            self.torn_down.set()
            self.dispatcher.event("disconnected")
            self.dispatcher.stop()
        dispatcher = self.threads["dispatcher"]
        if dispatcher.ident is None:  # never started: nobody else will say it is over
            self.finished.set()
        elif join_dispatcher and dispatcher is not me:
            dispatcher.join(_remaining(deadline))

    def _wake_all(self) -> None:
        """Wake every thread that waits for work, so that each sees the stop."""
        self.kick.set()
        self.wake_writer.set()

    def _fail(self, error: BaseException) -> None:
        """End the run for good because of ``error`` (fatal, or any with no reconnect)."""
        self.log.error(f"giving up: {error}")
        # never join the dispatcher here: a handler may be the one calling disconnect()
        self.shutdown(error, timeout=10.0, explicit=False, join_dispatcher=False)

    def _move(self, new: State) -> bool:
        """Transition unless the run is stopping; False when stopping."""
        with self.c._lock:
            if self.stop.is_set():
                return False
            self.c._core.transition(new)
            return True

    # ================================================================ reader
    def _reader_main(self) -> None:
        try:
            self._supervise()
        except BaseException as exc:
            self.log.error("the reader thread failed unexpectedly", exc)
            if not self.stop.is_set():
                err = exc if isinstance(exc, SlackRTMError) else WebsocketError(
                    f"internal error in the reader thread: {exc!r}")
                self.shutdown(err, timeout=10.0, explicit=False, join_dispatcher=False)

    def _supervise(self) -> None:
        c = self.c
        first = True
        while not self.stop.is_set():
            if not first:
                if not self._move(State.CONNECTING):
                    return
                self.dispatcher.event("connecting")
            first = False
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
            with c._lock:
                if self.stop.is_set():
                    return
                c._connect_data = data
                c._authenticated = True
            self.dispatcher.event("authenticated", data)
            try:
                transport = self.open_transport(data["url"])
            except WebsocketError as err:
                with c._lock:
                    c._authenticated = False
                if self.stop.is_set():
                    return
                if not self._attempt_failed(err, fatal=False):
                    return
                continue
            with c._lock:
                if self.stop.is_set():
                    transport.release()
                    return
                self.transport = transport
                self.teardown_reason = None
                c._core.connected(monotonic())
            self.dispatcher.event("connected")
            self.kick.set()
            reason, transport = self._read_loop(transport)
            with c._lock:
                self.transport = None
                if self.teardown_reason is not None:
                    reason = self.teardown_reason
                effects = c._core.connection_lost(reason)
                c._authenticated = False
            transport.release()
            apply(effects)
            if self.stop.is_set():
                return
            if isinstance(reason, PlatformError):  # the server said the run is over
                self._fail(reason)
                return
            if not c._auto_reconnect:
                self._fail(reason)
                return
            self.log.warn(f"connection lost, reconnecting: {reason}")
            with c._lock:
                delay = max(c._core.reconnect_delay(), self._extra_delay(reason))
            if not self._wait_backoff(delay):
                return

    def _extra_delay(self, reason: SlackRTMError) -> float:
        """A floor for the delay before reconnecting after ``reason`` (0: the backoff's)."""
        return 0.0

    def open_transport(self, url: str) -> Transport:
        """Open a WebSocket to ``url``; shutdown can interrupt the handshake meanwhile."""
        c = self.c
        self.log.debug(f"opening the WebSocket to {safe_url(url)}")
        published: List[Any] = []

        def publish(ws: Any) -> None:
            with c._lock:
                self.handshakes.add(ws)
                published.append(ws)
                stopping = self.stop.is_set()
            if stopping:
                abort_handshake(ws)

        try:
            return Transport.open(url, timeout=c._hello_timeout, proxy=c._ws_proxy(url),
                                  ssl_context=c._ssl_context, publish=publish)
        finally:
            with c._lock:
                for ws in published:
                    self.handshakes.discard(ws)

    def call_web(self, method: str, params: Dict[str, Any]) -> Dict[str, Any]:
        """Call ``method`` once (no 429 retries: the caller backs off), abortable by
        shutdown; its errors become this package's. The answer must carry a ``url``."""
        c = self.c
        scope_factory = getattr(c._web, "_abort_scope", None) or contextlib.nullcontext
        try:
            with scope_factory() as scope:
                with c._lock:
                    self.http_scopes.add(scope)
                if self.stop.is_set() and scope is not None:
                    scope.abort()
                try:
                    resp = c._web.call(method, dict(params), rate_limit_retries=0)
                finally:
                    with c._lock:
                        self.http_scopes.discard(scope)
        except SlackApiError as exc:
            message = self.log.redact(f"{method} failed: {exc.error}")
            raise PlatformError(message, error=exc.error,
                                data=dict(exc.response.data)) from None
        except SlackRTMError:
            raise
        except Exception as exc:  # anything else the HTTP stack raises
            raise SlackHTTPError(self.log.redact(
                f"{method} failed: {type(exc).__name__}: {exc}")) from None
        data = dict(resp.data)
        if not isinstance(data.get("url"), str):
            raise PlatformError(f"{method} answered without a WebSocket url",
                                error="no_url", data=data)
        return data

    def deliver(self, entries: List[Entry], frames: int,
                transport: Transport) -> Optional[SlackRTMError]:
        """Hand ``entries`` (``frames`` of them read from the socket) to the dispatcher,
        waiting while its backlog is full. Returns why to stop reading, or None."""
        disp = self.dispatcher
        stop = self.stop
        if not disp.admit(frames, lambda: stop.is_set() or transport.closed, self._pause):
            if stop.is_set():
                return WebsocketError("the client is disconnecting")
            disp.put(entries, force=frames)  # torn down while paused: keep them
            return WebsocketError(f"the connection to {transport.host} was closed")
        disp.put(entries)
        return None

    def pongs_as_replies(self, transport: Transport) -> List[Dict[str, Any]]:
        """Pong control frames as reply frames to the keep-alive pings they answer."""
        replies: List[Dict[str, Any]] = []
        for payload in transport.take_pongs():
            if not self.json_ping and payload.isdigit() and len(payload) < 19:
                replies.append({"reply_to": int(payload)})
        return replies

    def _pause(self, paused: bool) -> None:
        with self.c._lock:
            if paused:
                self.c._core.pause(monotonic())
            else:
                self.c._core.resume(monotonic())
        if paused:
            self.log.debug(f"handlers are {self.dispatcher.backlog} events behind: reading "
                          "paused until they catch up")
        self.kick.set()

    def _attempt_failed(self, err: SlackRTMError, fatal: bool) -> bool:
        """A connection attempt failed: give up, or wait out the backoff.

        Returns True when the next attempt should start.
        """
        if fatal or not self.c._auto_reconnect:
            self._fail(err)
            return False
        with self.c._lock:
            delay = self.c._core.attempt_failed()
        if isinstance(err, RateLimitedError):
            delay = max(delay, err.retry_after)
        self.log.warn(f"connection attempt failed: {err}")
        return self._wait_backoff(delay)

    def _wait_backoff(self, delay: float) -> bool:
        if not self._move(State.RECONNECTING):
            return False
        self.dispatcher.event("reconnecting")
        self.log.debug(f"reconnecting in {delay:.3f} s")
        return not self.stop.wait(delay)

    def hello(self) -> bool:
        """``hello`` arrived on the connection being set up: the client is ready. Returns
        False when it came at the wrong time (ignored)."""
        c = self.c
        with c._lock:
            if self.stop.is_set() or c._core.state is not State.CONNECTED:
                self.log.debug("ignored a hello outside the connected state")
                return False
            c._core.hello()
            data = c._connect_data
        self.log.debug("ready")
        if not self.future.done():
            try:
                self.future.set_result(dict(data or {}))
            except Exception:  # cancelled by disconnect() meanwhile
                pass
        self.wake_writer.set()
        self.kick.set()
        return True

    # ================================================================ dispatcher
    def _dispatcher_main(self) -> None:
        previous = self.previous_dispatcher
        # a restart from a handler: the old run's dispatcher finishes its events first,
        # so handlers never run on two threads at once and disconnected comes before
        # the new run's connecting
        while previous is not None and previous.is_alive() and not self.stop.is_set():
            previous.join(0.5)
        self.previous_dispatcher = None
        try:
            self.dispatcher.run()
        finally:
            self.finished.set()

    # ================================================================ keepalive
    def _keepalive_main(self) -> None:
        c = self.c
        while not self.stop.is_set():
            try:
                with c._lock:
                    now = monotonic()
                    effects = c._core.tick(now)
                    deadline = c._core.next_deadline()
                    wait = 30.0 if deadline is None else min(30.0, max(0.0, deadline - now))
                    # set under the lock: a send registered after this sees it and kicks
                    self.next_wake = now + wait
                    transport = self.transport
                resolves: List[Resolve] = []
                for e in effects:
                    if isinstance(e, Resolve):
                        resolves.append(e)
                    elif isinstance(e, Teardown):
                        self.log.warn(f"tearing the connection down: {e.reason}")
                        with c._lock:
                            if self.transport is transport:
                                self.teardown_reason = e.reason
                        if transport is not None:
                            transport.abort()
                    elif isinstance(e, PingDue):
                        self.wake_writer.set()
                apply(resolves)
                if not effects:
                    self.kick.wait(wait)
                self.kick.clear()
            except BaseException as exc:
                self.log.error("the keep-alive thread failed unexpectedly", exc)
                self.stop.wait(1.0)

    # ================================================================ writer
    def _writer_main(self) -> None:
        while not self.stop.is_set():
            try:
                self.wake_writer.wait(30.0)
                self.wake_writer.clear()
                if not self.stop.is_set():
                    self.pump()
            except BaseException as exc:
                self.log.error("the writer thread failed unexpectedly", exc)
                self.stop.wait(1.0)

    def pump_or_wake(self) -> None:
        """Write queued sends now on this (user) thread. On the client's own threads, wake
        the writer instead: they must never block on a full socket, and no future is
        completed on the dispatcher."""
        if getattr(_local, "ours", False):
            self.wake_writer.set()
        else:
            self.pump()

    def pump(self) -> None:
        """Write every connection-bound frame, then every writable queued send, in order.
        Never blocks waiting for the lock: the thread holding it writes what others queued
        meanwhile. Futures are completed after the lock is released."""
        c = self.c
        core = c._core
        while True:
            if not self.write_lock.acquire(blocking=False):
                return
            done: List[Resolve] = []
            try:
                self._write_bound(done)
                while True:
                    with c._lock:
                        transport = self.transport
                        if transport is None or transport.closed:
                            break
                        item = core.next_write(monotonic())
                        if item is None and core.paced_before(self.next_wake):
                            self.kick.set()  # pacing: a held send is due before the timer wakes
                    if item is None:
                        break
                    send, text = item
                    if send.deadline and send.deadline < self.next_wake:
                        self.kick.set()  # its reply deadline comes before the timer's wake
                    try:
                        if not self.json_ping and send.future is None and send.type == "ping":
                            transport.send_ping(str(send.id).encode())
                        else:
                            transport.send_text(text)
                    except NotWritten:  # torn down first: not a byte of it went out
                        with c._lock:
                            effect = core.requeue(send, stopping=self.stopping)
                    except WebsocketError as err:
                        with c._lock:
                            effect = core.write_failed(send, err)
                            if self.transport is transport:
                                self.teardown_reason = err
                        transport.abort()
                    else:
                        with c._lock:
                            effect = core.written(send)
                        if effect is not None:
                            done.append(effect)
                        continue
                    if effect is not None:
                        done.append(effect)
                    break
            finally:
                self.write_lock.release()
            apply(done)
            with c._lock:
                transport = self.transport
                if transport is None or transport.closed:
                    return
                if not core.writable() and self._bound_target() is None:
                    return

    def _bound_target(self) -> Optional[Transport]:
        """Where the first bound frame goes now, or None (none queued, or nowhere yet).
        Called with the client's lock held."""
        if not self.bound:
            return None
        via = self.bound[0].via
        if via is not None and via.writable:
            return via
        current = self.transport
        if current is not None and current.writable and self.c._core.state is State.READY:
            return current
        return None

    def _write_bound(self, done: List[Resolve]) -> None:
        """Write the bound frames (write lock held), those for one connection in one write,
        stopping at the first with nowhere to go: it waits for the next ready connection."""
        c = self.c
        while True:
            with c._lock:
                target = self._bound_target()
                if target is None:
                    return
                items = [self.bound.popleft()]
                while self.bound and len(items) < 512 and self._bound_target() is target:
                    items.append(self.bound.popleft())
            try:
                target.send_texts([item.text for item in items])
            except NotWritten:  # closed meanwhile: try the next connection
                for item in items:
                    item.via = None
                with c._lock:
                    self.bound.extendleft(reversed(items))
                continue
            except WebsocketError as err:
                with c._lock:
                    if self.transport is target:
                        self.teardown_reason = err
                target.abort()
                done.extend(Resolve(item.future, error=NoReplyReceivedError(
                    f"the connection failed while writing an acknowledgement; it may "
                    f"or may not have reached Slack: {err}"))
                    for item in items if item.future is not None)
                continue
            done.extend(Resolve(item.future, result=None)
                        for item in items if item.future is not None)

    def write_bound(self, item: Bound) -> None:
        """Queue a connection-bound frame and have the writer write it (any thread)."""
        self.write_bound_many([item])

    def write_bound_many(self, items: List[Bound]) -> None:
        """Queue connection-bound frames, in order, and wake the writer (any thread)."""
        with self.c._lock:
            if not self.stopping:
                self.bound.extend(items)
                items = []
        if items:
            apply([Resolve(item.future, error=SendWhileDisconnectedError(
                "the client disconnected before the acknowledgement could be written"))
                for item in items if item.future is not None])
            return
        self.wake_writer.set()

    def _drop_bound(self, reason: str) -> List[Resolve]:
        """Fail every bound frame still queued (client lock held)."""
        effects = [Resolve(b.future, error=SendWhileDisconnectedError(
            f"{reason} before the acknowledgement could be written"))
            for b in self.bound if b.future is not None]
        self.bound.clear()
        return effects


_local = threading.local()


def _ours(target: Callable[[], None]) -> Callable[[], None]:
    """Mark the thread running ``target`` as one of the client's own."""
    def run() -> None:
        _local.ours = True
        target()
    return run


def _remaining(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(0.0, deadline - monotonic())
