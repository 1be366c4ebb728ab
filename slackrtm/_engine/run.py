"""One run of a client, from ``start()`` to ``disconnect()``: its threads and connection.

This is the machinery both clients share; what differs between RTM and Socket Mode (the
Web API call that hands out a WebSocket URL, which errors are fatal, what each frame
means) is supplied by a subclass: ``_rtm_run.RTMRun`` or ``_sm_run.SocketModeRun``. The
run knows its client only through :class:`~slackrtm._engine.context.RunContext`, the few
settings and shared objects it needs, never the facade.

Threads (all created in ``start()``, daemons, named ``slackrtm-<role>``; what keeps the
process alive while a client runs is the exit hook of ``_engine.lifetime``):

- reader: the supervisor. Asks for a WebSocket URL, opens the socket, reads frames
  (matching replies to futures on the way), hands them to the dispatcher, and reconnects
  with backoff in a loop. It owns the connection.
- dispatcher: calls the handlers (see ``_dispatch``).
- keepalive: fires the core's deadlines: pings, pong and hello deadlines, reply timeouts.
- writer: flushes queued sends when the connection becomes ready, writes pings and
  connection-bound frames (Socket Mode acks), so that neither the reader nor the timer
  thread ever blocks on a full socket.
- poster: posts the messages that go through chat.postMessage (Socket Mode's, and RTM's
  with Web-API-only fields), in the order the writer hands them over (``_poster``).
- a subclass may add roles (Socket Mode's refresher).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from slackrtm._engine.attempts import FATAL_ERRORS, Attempts
from slackrtm._engine.context import RunContext, apply, monotonic
from slackrtm._engine.core import Resolve, State, Teardown, WakeWriter
from slackrtm._engine.dispatch import Dispatcher
from slackrtm._engine.poster import Poster
from slackrtm._engine.reading import Reading
from slackrtm._engine.transport import Transport, abort_handshake
from slackrtm._engine.writer import Bound, Writer, ours
from slackrtm.errors import (
    SlackRTMError,
    WebsocketError,
)

__all__ = ["FATAL_ERRORS", "Bound", "Run", "RunContext", "apply", "monotonic"]



class Run(Attempts, Reading, Poster, Writer):
    """The machinery of one run; created by a client's ``start()``. Subclasses supply
    :meth:`_open_source`, :meth:`_read_loop` and the class attributes below."""

    def __init__(self, ctx: RunContext, args: Dict[str, Any]) -> None:
        # Who owns each attribute (writes it) and what guards it. "lock" is ctx.lock, the
        # client's one lock; Events and the dispatcher guard themselves.
        # -- set here, read-only after: any thread reads them.
        self.ctx = ctx
        self.args = args  # the Web API call's arguments (start(**args))
        self.log = ctx.log
        self.dispatcher = Dispatcher(ctx.registry, self.log, ctx.max_backlog)
        gate = ctx.gate
        if gate is not None:  # a shared duplicate filter: claimed before dispatch
            self.dispatcher.gate = gate.filter
            self.dispatcher.claim_frame = gate.claim_frame
        # -- Events (thread-safe by themselves).
        self.stop = threading.Event()  # set once, by shutdown (any thread)
        self.finished = threading.Event()  # dispatcher thread: it ran the last event
        self.torn_down = threading.Event()  # shutdown: the state is disconnected again
        self.threads_started = threading.Event()  # start(): every thread was started
        self.kick = threading.Event()  # any thread: the keep-alive thread recomputes
        self.wake_writer = threading.Event()  # any thread: the writer has work
        # -- start()'s future: resolved by the reader (hello) or shutdown; thread-safe.
        self.future: Future[Dict[str, Any]] = Future()
        # -- shutdown writes these once, under lock; others read them under lock, or
        #    (error, explicit) after finished is set.
        self.stopping = False
        self.stopped_at = 0.0  # when shutdown began (monotonic)
        self.explicit = False  # disconnect() ended the run (no error to raise)
        self.error: Optional[BaseException] = None  # what ended the run, if not disconnect()
        # -- the facade thread in shutdown / run_forever; no lock (only they read it).
        self.error_raised = False  # start()'s future or run_forever() reported it already
        # -- reader thread (the owner) writes under lock; writer, keep-alive and shutdown
        #    read under lock.
        self.transport: Optional[Transport] = None  # the connection being read
        self.pauses: Set[str] = set()  # why deadlines stand still (see _pause)
        # -- keep-alive and writer threads write under lock (a deadline, a failed write);
        #    the reader reads and clears it under lock when the connection ends.
        self.teardown_reason: Optional[SlackRTMError] = None
        # -- reader and refresher threads add and discard under lock; shutdown aborts what
        #    it finds there (under lock).
        self.http_scopes: Set[Any] = set()  # in-flight Web API calls
        self.handshakes: Set[Any] = set()  # websocket-client objects mid-handshake
        # -- keep-alive thread writes under lock; the writer reads it without (a float:
        #    a stale value only makes it kick the timer once more).
        self.next_wake = 0.0  # when the keep-alive thread plans to wake next
        # -- whoever pumps holds it: one writer at a time (see Writer.pump).
        self.write_lock = threading.Lock()
        # -- reader and refresher add their URL call's deadline under lock; the keep-alive
        #    thread marks an overdue one (-1.0) and aborts it, under lock.
        self.url_calls: Dict[Any, float] = {}
        # -- reader thread only: the kinds of failure logged in this streak (cleared at
        #    hello), so a flapping server is reported once, not per attempt.
        self.failures_logged: Set[Tuple[Any, ...]] = set()
        # -- any thread appends under lock (acks); the writer pops under lock.
        self.bound: Deque[Bound] = deque()
        self.bound_frames = 0  # the frames in it (a Bound may hold several)
        self.bound_room = threading.Event()  # the writer wrote bound frames
        # -- the poster's queue and wake-up (see Poster: any thread appends under lock,
        #    the poster thread takes under lock).
        self._init_poster()
        # -- start() sets it before the threads start; the dispatcher thread clears it.
        self.previous_dispatcher: Optional[threading.Thread] = None
        roles: List[Tuple[str, Callable[[], None]]] = [
            ("reader", self._reader_main), ("dispatcher", self._dispatcher_main),
            ("keepalive", self._keepalive_main), ("writer", self._writer_main),
            ("poster", self._poster_main)]
        roles.extend(self._extra_threads())
        self.threads = {
            # daemons: the exit hook (_engine.lifetime) decides when the process may end
            role: threading.Thread(target=ours(target), name=f"slackrtm-{role}",
                                   daemon=True)
            for role, target in roles
        }

    def _extra_threads(self) -> List[Tuple[str, Callable[[], None]]]:
        """More threads for this kind of run: ``(role, body)`` pairs, started with the rest."""
        return []

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
        ctx = self.ctx
        deadline = None if timeout is None else monotonic() + timeout
        # 1. Under the lock, in one step: claim the teardown (only the first caller does
        #    it; later ones only join) and take what must be interrupted. Every thread
        #    that publishes a connection, a handshake or an HTTP call checks the stop under
        #    the same lock, so nothing published after this step escapes the teardown.
        with ctx.lock:
            first = not self.stopping
            if first:
                self.stopping = True
                self.stopped_at = monotonic()
                self.explicit = explicit
                self.error = error
                if error is not None:
                    ctx.last_error = error
                self.stop.set()
                if ctx.core.state not in (State.DISCONNECTED, State.DISCONNECTING):
                    ctx.core.transition(State.DISCONNECTING)
                transport = self.transport
                scopes = list(self.http_scopes)
                handshaking = list(self.handshakes)
        me = threading.current_thread()
        # 2. No lock from here on: report, then interrupt every blocking call (HTTP, the
        #    handshake, the read) so that each thread sees the stop at once.
        if first:
            if error is not None:
                self.dispatcher.event("error", error)
                if not self.future.done():
                    self.future.set_exception(error)
                    self.error_raised = True  # start()'s future reports it
            self.dispatcher.event("disconnecting")
            self.dispatcher.interrupt()  # abort what observers do (a backfill's HTTP calls)
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
        # 3. Join every thread but the dispatcher and this one, within the deadline
        #    (start() may still be starting them: wait for that first).
        if me.name.startswith("slackrtm-") or self.threads_started.wait(_remaining(deadline)):
            pass  # start() is done starting the threads (or this is one of them)
        for role, thread in self.threads.items():
            if role == "dispatcher":
                continue
            if thread is not me and thread.ident is not None:
                thread.join(_remaining(deadline))
        # 4. Nobody else runs now: fail what is still queued or unanswered (under the
        #    lock; futures completed after it), close what the run holds, and queue the
        #    last events behind everything the dispatcher still has.
        if first:
            with ctx.lock:
                effects = ctx.core.drop_all("disconnected")
                effects.extend(self._drop_bound("the client disconnected"))
                effects.extend(self._drop_posts("the client disconnected"))
                ctx.core.transition(State.DISCONNECTED)
                ctx.authenticated = False
            apply(effects)
            if not self.future.done():
                self.future.cancel()
            if ctx.owns_web:  # leave no pooled HTTP connection behind (it reopens on demand)
                ctx.web.close()
            if ctx.post_web is not None and ctx.post_web is not ctx.web:
                ctx.post_web.close()
            self._release()
            self.torn_down.set()
            self.dispatcher.event("disconnected")
            self.dispatcher.stop()
        # 5. The dispatcher ends after the last event; never joined from a handler (that
        #    handler is the dispatcher) nor by a thread giving up (see _fail).
        dispatcher = self.threads["dispatcher"]
        if dispatcher.ident is None:  # never started: nobody else will say it is over
            self.finished.set()
        elif join_dispatcher and dispatcher is not me:
            dispatcher.join(_remaining(deadline))

    def _release(self) -> None:
        """The run is over: close what it holds besides sockets and threads."""

    def _wake_all(self) -> None:
        """Wake every thread that waits for work, so that each sees the stop."""
        self.kick.set()
        self.wake_writer.set()
        self.wake_poster.set()

    def _fail(self, error: BaseException) -> None:
        """End the run for good because of ``error`` (fatal, or any with no reconnect)."""
        self.log.error(f"giving up: {error}")
        # never join the dispatcher here: a handler may be the one calling disconnect()
        self.shutdown(error, timeout=10.0, explicit=False, join_dispatcher=False)

    def _move(self, new: State) -> bool:
        """Transition unless the run is stopping; False when stopping."""
        with self.ctx.lock:
            if self.stop.is_set():
                return False
            self.ctx.core.transition(new)
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

    def _pause(self, paused: bool, reason: str = "backlog") -> None:
        """Keep-alive and reply deadlines stand still while any reason holds (the handlers
        are behind; Socket Mode: the new connection waits while the old one drains)."""
        with self.ctx.lock:
            if paused:
                self.pauses.add(reason)
                self.ctx.core.pause(monotonic())
            else:
                self.pauses.discard(reason)
                if not self.pauses:
                    self.ctx.core.resume(monotonic())
        if paused and reason == "backlog":
            self.log.debug(f"handlers are {self.dispatcher.backlog} events behind: reading "
                          "paused until they catch up")
        self.kick.set()

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
        ctx = self.ctx
        while not self.stop.is_set():
            try:
                with ctx.lock:
                    now = monotonic()
                    effects = ctx.core.tick(now)
                    deadline = ctx.core.next_deadline()
                    wait = 30.0 if deadline is None else min(30.0, max(0.0, deadline - now))
                    overdue = [s for s, due in self.url_calls.items() if 0 <= due <= now]
                    for scope in overdue:
                        self.url_calls[scope] = -1.0
                    dues = [due for due in self.url_calls.values() if due >= 0]
                    if dues:
                        wait = min(wait, max(0.0, min(dues) - now))
                    # set under the lock: a send registered after this sees it and kicks
                    self.next_wake = now + wait
                    transport = self.transport
                for scope in overdue:
                    scope.abort()  # the URL call took too long: it fails, the next one starts
                resolves: List[Resolve] = []
                for e in effects:
                    if isinstance(e, Resolve):
                        resolves.append(e)
                    elif isinstance(e, Teardown):
                        self.log.warn(f"tearing the connection down: {e.reason}")
                        with ctx.lock:
                            if self.transport is transport:
                                self.teardown_reason = e.reason
                        if transport is not None:
                            transport.abort()
                    elif isinstance(e, WakeWriter):
                        self.wake_writer.set()
                apply(resolves)
                if transport is not None and transport.writing:
                    limit = ctx.core.timeouts.client_ping
                    if not self.pauses and transport.stalled(now, limit):
                        self._stalled(transport, limit)
                    wait = min(wait, limit / 4)  # a write under way is watched closely
                if not effects:
                    self.kick.wait(wait)
                self.kick.clear()
            except BaseException as exc:
                self.log.error("the keep-alive thread failed unexpectedly", exc)
                self.stop.wait(1.0)

    def _stalled(self, transport: Transport, limit: float) -> None:
        """A write made no progress for ``limit`` seconds: the peer stopped reading. The
        connection is torn down and replaced; the write fails (it may or may not have
        reached the peer), sends still queued go out on the next connection."""
        err = WebsocketError(f"the connection to {transport.host} stopped taking writes: "
                             f"no progress for {limit:g} s (the peer stopped reading)")
        self.log.warn(f"tearing the connection down: {err}")
        with self.ctx.lock:
            if self.transport is transport:
                self.teardown_reason = err
        transport.abort()


def _remaining(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(0.0, deadline - monotonic())
