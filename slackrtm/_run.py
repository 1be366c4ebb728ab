"""One run of a client, from ``start()`` to ``disconnect()``: its threads and connection.

Threads (all created in ``start()``, non-daemon, named ``slackrtm-<role>``):

- reader: the supervisor. Calls rtm.connect, opens the socket, reads frames (matching
  replies to futures on the way), hands them to the dispatcher, and reconnects with
  backoff in a loop. It owns the connection.
- dispatcher: calls the handlers (see ``_dispatch``).
- keepalive: fires the core's deadlines: pings, pong and hello deadlines, reply timeouts.
- writer: flushes queued sends when the connection becomes ready, and writes pings, so
  that neither the reader nor the timer thread ever blocks on a full socket.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from slackrtm._core import RECONNECT_EVENTS, PingDue, Resolve, State, Teardown
from slackrtm._dispatch import Dispatcher, Entry
from slackrtm._transport import NotWritten, Transport, abort_handshake, safe_url
from slackrtm.errors import (
    PlatformError,
    RateLimitedError,
    SlackApiError,
    SlackHTTPError,
    SlackRTMError,
    WebsocketError,
)

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm.client import RTMClient

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


class Run:
    """The machinery of one run; created by ``RTMClient.start()``."""

    def __init__(self, client: RTMClient, rtm_args: Dict[str, Any]) -> None:
        self.c = client
        self.rtm_args = rtm_args
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
        self.http_scope: Any = None
        self.kick = threading.Event()
        self.next_wake = 0.0  # when the keep-alive thread plans to wake next
        self.wake_writer = threading.Event()
        self.write_lock = threading.Lock()
        self.dispatcher = Dispatcher(client._registry, self.log, client._max_backlog)
        self.threads_started = threading.Event()  # start() finished starting them
        self.connecting_ws: Any = None  # the websocket-client object during a handshake
        self.previous_dispatcher: Optional[threading.Thread] = None
        self.threads = {
            role: threading.Thread(target=_ours(target), name=f"slackrtm-{role}",
                                   daemon=False)
            for role, target in (("reader", self._reader_main),
                                 ("dispatcher", self._dispatcher_main),
                                 ("keepalive", self._keepalive_main),
                                 ("writer", self._writer_main))
        }

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
                scope = self.http_scope
                handshaking = self.connecting_ws
        me = threading.current_thread()
        if first:
            if error is not None:
                self.dispatcher.event("error", error)
                if not self.future.done():
                    self.future.set_exception(error)
            self.dispatcher.event("disconnecting")
            self.dispatcher.interrupt()  # store/backfill hook: abort observers' HTTP calls
            if scope is not None:
                try:
                    scope.abort()
                except Exception as exc:  # abandoning the call is all that matters
                    self.log.debug(f"aborting the in-flight HTTP call failed: {exc}")
            if handshaking is not None:
                abort_handshake(handshaking)
            if transport is not None:
                if explicit:  # a close frame, best effort, then teardown
                    transport.close(wait=min(0.2, _remaining(deadline) or 0.0))
                else:
                    transport.abort()
            self.kick.set()
            self.wake_writer.set()
        if me.name.startswith("slackrtm-") or self.threads_started.wait(_remaining(deadline)):
            pass  # start() is done starting the threads (or this is one of them)
        for role in ("reader", "writer", "keepalive"):
            thread = self.threads[role]
            if thread is not me and thread.ident is not None:
                thread.join(_remaining(deadline))
        if first:
            with c._lock:
                effects = c._core.drop_all("disconnected")
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
            self.log.debug("connecting: calling "
                           + ("rtm.connect" if c._use_rtm_connect else "rtm.start"))
            try:
                data = self._rtm_connect()
            except SlackRTMError as err:
                if self.stop.is_set():
                    return
                self.dispatcher.event("unable_to_rtm_start", err)
                fatal = isinstance(err, PlatformError) and err.error in FATAL_ERRORS
                if not self._attempt_failed(err, fatal):
                    return
                continue
            with c._lock:
                if self.stop.is_set():
                    return
                c._connect_data = data
                c._authenticated = True
            self.dispatcher.event("authenticated", data)
            url = data["url"]
            self.log.debug(f"opening the WebSocket to {safe_url(url)}")
            try:
                transport = Transport.open(url, timeout=c._hello_timeout,
                                           proxy=c._ws_proxy(url),
                                           ssl_context=c._ssl_context,
                                           publish=self._publish_handshake)
            except WebsocketError as err:
                with c._lock:
                    self.connecting_ws = None
                    c._authenticated = False
                if self.stop.is_set():
                    return
                if not self._attempt_failed(err, fatal=False):
                    return
                continue
            with c._lock:
                self.connecting_ws = None
                if self.stop.is_set():
                    transport.release()
                    return
                self.transport = transport
                self.teardown_reason = None
                c._core.connected(monotonic())
            self.dispatcher.event("connected")
            self.kick.set()
            reason = self._read_loop(transport)
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
            if not c._auto_reconnect:
                self._fail(reason)
                return
            self.log.warn(f"connection lost, reconnecting: {reason}")
            with c._lock:
                delay = c._core.reconnect_delay()
            if not self._wait_backoff(delay):
                return

    def _publish_handshake(self, ws: Any) -> None:
        """Called by Transport.open before connecting, so that shutdown can abort it."""
        with self.c._lock:
            self.connecting_ws = ws
            stopping = self.stop.is_set()
        if stopping:
            abort_handshake(ws)

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

    def _rtm_connect(self) -> Dict[str, Any]:
        c = self.c
        method = "rtm.connect" if c._use_rtm_connect else "rtm.start"
        scope_factory = getattr(c._web, "_abort_scope", None) or contextlib.nullcontext
        try:
            with scope_factory() as scope:
                with c._lock:
                    self.http_scope = scope
                if self.stop.is_set() and scope is not None:
                    scope.abort()
                try:
                    resp = c._web.call(method, dict(self.rtm_args), rate_limit_retries=0)
                finally:
                    with c._lock:
                        self.http_scope = None
        except SlackApiError as exc:
            message = self.log.redact(f"{method} failed: {exc.error}")
            raise PlatformError(message, error=exc.error,
                                data=dict(exc.response.data)) from None
        except SlackRTMError:
            raise
        except Exception as exc:  # anything else the HTTP stack raises
            raise SlackHTTPError(f"{method} failed: {type(exc).__name__}: {exc}") from None
        data = dict(resp.data)
        if not isinstance(data.get("url"), str):
            raise PlatformError(f"{method} answered without a WebSocket url",
                                error="no_url", data=data)
        return data

    def _read_loop(self, transport: Transport) -> SlackRTMError:
        """Read until the connection ends; return why it ended."""
        c = self.c
        core = c._core
        lock = c._lock
        loads = json.loads
        disp = self.dispatcher
        stop = self.stop
        registry = c._registry

        def raw_handlers() -> bool:
            return bool(registry.handlers("raw_message"))

        while True:
            try:
                messages = transport.read()
            except WebsocketError as err:
                return err
            now = monotonic()
            entries: List[Entry] = []
            ready_at = -1
            replies: List[Dict[str, Any]] = []
            reconnect: Optional[str] = None
            for text, payload in messages:
                if text is None:
                    self.log.warn(f"dropped a binary frame of {len(payload or b'')} bytes")
                    continue
                try:
                    frame = loads(text)
                except (ValueError, RecursionError):  # RecursionError: nested too deep
                    entries.append((text, None))
                    continue
                if type(frame) is not dict:
                    entries.append((text, None))
                elif "reply_to" in frame:
                    replies.append(frame)
                    if raw_handlers():  # replies reach only raw_message: skip when unheard
                        entries.append((text, False))
                elif type(frame.get("type")) is not str:
                    entries.append((text, None))
                else:
                    entries.append((text, frame))
                    etype = frame["type"]
                    if etype == "hello":
                        if self._hello():
                            ready_at = len(entries)
                            entries.append((None, "ready", ()))
                    elif etype in RECONNECT_EVENTS:
                        reconnect = etype
            if replies:
                with lock:
                    core.last_inbound = now
                    effects: List[Any] = []
                    for frame in replies:
                        effects.extend(core.inbound(frame, now))
                apply(effects)
            else:
                core.last_inbound = now  # a float store: atomic, read under the lock later
            if entries:
                frames = len(entries) - (ready_at >= 0)
                if not disp.admit(frames, lambda: stop.is_set() or transport.closed,
                                  self._pause):
                    if stop.is_set():
                        return WebsocketError("the client is disconnecting")
                    disp.put(entries, force=frames)  # torn down while paused: keep them
                    return WebsocketError(f"the connection to {transport.host} was closed")
                disp.put(entries)
            if reconnect is not None:
                transport.close()
                return WebsocketError(f"Slack sent {reconnect!r}: reconnecting")

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

    def _hello(self) -> bool:
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
        """Write every writable queued send, in order. Never blocks waiting for the lock:
        the thread holding it writes what others queued meanwhile. Futures are completed
        after the lock is released."""
        c = self.c
        core = c._core
        while True:
            if not self.write_lock.acquire(blocking=False):
                return
            done: List[Resolve] = []
            try:
                while True:
                    with c._lock:
                        transport = self.transport
                        if transport is None or transport.closed:
                            break
                        item = core.next_write(monotonic())
                    if item is None:
                        break
                    send, text = item
                    if send.deadline and send.deadline < self.next_wake:
                        self.kick.set()  # its reply deadline comes before the timer's wake
                    try:
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
                if not core.writable() or transport is None or transport.closed:
                    return


_local = threading.local()


def _ours(target: Callable[[], None]) -> Callable[[], None]:
    """Mark the thread running ``target`` as one of the client's own."""
    def run() -> None:
        _local.ours = True
        target()
    return run


def _remaining(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(0.0, deadline - monotonic())
