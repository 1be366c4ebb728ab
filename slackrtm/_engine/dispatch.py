"""Event registry and the dispatcher thread's work: fan frames and lifecycle events out.

Handlers are kept in blinker signals (one :class:`blinker.Namespace` per client, strong
references) in registration order; the dispatcher calls each handler itself so that one
raising handler skips nothing. Everything runs on the one dispatcher thread, in order.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

import blinker

from slackrtm._engine.entries import (
    Duplicate,
    Entry,
    Envelope,
    EnvelopeEntry,
    Frame,
    Lifecycle,
    Unparsed,
)
from slackrtm._log import Log
from slackrtm.errors import PlatformError

__all__ = ["Dispatcher", "Frame", "Handler", "Observer", "Registry"]

Handler = Callable[..., Any]


_STOP = object()


def _key(fn: Handler) -> Any:
    """Identity of a handler as blinker sees it: a bound method is its object + function."""
    self_ = getattr(fn, "__self__", None)
    func = getattr(fn, "__func__", None)
    if self_ is not None and func is not None:
        return (id(self_), id(func))
    return id(fn)


# ---- observers: internal hooks that see every event before the user handlers (store,
# backfill). A client adds them with Registry.observe(); every Dispatcher of that registry
# calls them on its thread. (Added for the workspace store; see _store.py, _backfill.py.)
class Observer:
    """Sees every event on the dispatcher thread before the user handlers of that event.

    Subclass and override what you need; the defaults do nothing and drop nothing.
    """

    def frame(self, frame: Frame, dispatcher: Dispatcher) -> bool:
        """A parsed Slack event, before its handlers; return False to drop it (the
        ``raw_message`` handlers have seen it already)."""
        return True

    def before(self, name: str, args: Tuple[Any, ...], dispatcher: Dispatcher) -> None:
        """A lifecycle event (``authenticated``, ``ready``, ...) before its handlers."""

    def after(self, name: str, args: Tuple[Any, ...], dispatcher: Dispatcher) -> None:
        """A lifecycle event after its handlers ran."""


class Registry:
    """Handlers per event name, in registration order; safe to change from any thread."""

    def __init__(self) -> None:
        self._ns = blinker.Namespace()
        self._lock = threading.Lock()
        self._snapshots: Dict[str, Tuple[Handler, ...]] = {}
        self._once: Dict[Tuple[str, Any], Handler] = {}
        #: Internal observers, in the order they were added (see :class:`Observer`).
        self.observers: Tuple[Observer, ...] = ()

    def observe(self, observer: Observer) -> None:
        """Add an internal observer; it sees events before every user handler."""
        with self._lock:
            if observer not in self.observers:
                self.observers = (*self.observers, observer)

    def on(self, event: str, handler: Handler) -> Handler:
        """Register ``handler`` for ``event`` (once, however often it is registered)."""
        _check(event, handler, "on")
        with self._lock:
            self._ns.signal(event).connect(handler, weak=False)
            self._snapshots.pop(event, None)
        return handler

    def once(self, event: str, handler: Handler) -> Handler:
        """Register ``handler`` to run at most once for ``event``."""
        _check(event, handler, "once")
        key = (event, _key(handler))

        def run_once(*args: Any) -> Any:
            with self._lock:
                if self._once.get(key) is not run_once:
                    return None  # removed (or already ran) meanwhile
            self.off(event, handler)
            return handler(*args)

        with self._lock:
            if key in self._once:
                return handler
            self._once[key] = run_once
            self._ns.signal(event).connect(run_once, weak=False)
            self._snapshots.pop(event, None)
        return handler

    def off(self, event: str, handler: Handler) -> None:
        """Remove ``handler`` (or the once-wrapper made for it); no error when absent."""
        with self._lock:
            sig = self._ns.get(event)
            if sig is None:
                return
            wrapper = self._once.pop((event, _key(handler)), None)
            sig.disconnect(wrapper if wrapper is not None else handler)
            if wrapper is not None:  # it may have been registered with on() as well
                sig.disconnect(handler)
            self._snapshots.pop(event, None)

    def handlers(self, event: str) -> Tuple[Handler, ...]:
        """The handlers of ``event`` now, in registration order."""
        snap = self._snapshots.get(event)
        if snap is not None:
            return snap
        with self._lock:
            sig = self._ns.get(event)
            # blinker's receivers dict keeps insertion order (receivers_for() does not)
            snap = tuple(sig.receivers.values()) if sig is not None else ()
            self._snapshots[event] = snap
        return snap


class Dispatcher:
    """Owns the inbound queue; its :meth:`run` is the body of the dispatcher thread."""

    def __init__(self, registry: Registry, log: Log, max_backlog: int) -> None:
        self.registry = registry
        self.log = log
        self.max_backlog = max_backlog
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._backlog = 0
        # batches dispatched and not yet freed, and the frames in them: the reader frees
        # them (drop_dispatched), so their memory goes back where it was taken
        self._dispatched: Deque[List[Entry]] = deque()
        self._dispatched_frames = 0
        self._handler_waits = 0  # handlers blocked on a send's future: read on regardless
        self._room = threading.Condition(threading.Lock())
        self.thread_ident: Optional[int] = None
        self._interrupted = threading.Event()
        self._aborts: List[Callable[[], None]] = []
        #: A shared duplicate filter's door (``_gate.Gate.filter``): each batch passes it
        #: before dispatch; frames another copy claimed come back as ``Duplicate``.
        self.gate: Optional[Callable[[List[Any]], List[Any]]] = None
        #: The same filter for one frame an observer makes (``_gate.Gate.claim_frame``).
        self.claim_frame: Optional[Callable[[Frame], bool]] = None

    # ------------------------------------------------------------- producer side
    def put(self, entries: List[Entry], force: int = 0) -> None:
        """Queue entries for dispatch, in order; ``force`` frames are counted in although
        :meth:`admit` refused them (they were read from a connection now gone)."""
        if force:
            with self._room:
                self._backlog += force
        if entries:
            self._q.put(entries)

    def event(self, name: str, *args: Any) -> None:
        """Queue one lifecycle event."""
        self._q.put([Lifecycle(name, args)])

    def admit(self, frames: int, give_up: Callable[[], bool],
              on_pause: Callable[[bool], None]) -> bool:
        """Count ``frames`` in; while the backlog is full, wait (back-pressure on the socket).

        ``on_pause(True)`` is called before waiting and ``on_pause(False)`` after.
        Returns False, counting nothing in, when ``give_up()`` turns true while waiting.
        """
        with self._room:
            if self._backlog < self.max_backlog or self._handler_waits:
                self._backlog += frames
                return True
        on_pause(True)
        try:
            with self._room:
                while self._backlog >= self.max_backlog and not self._handler_waits:
                    if give_up():
                        return False
                    self._room.wait(0.25)
                self._backlog += frames
        finally:
            on_pause(False)
        return True

    @contextlib.contextmanager
    def handler_waiting(self) -> Iterator[None]:
        """A handler blocks on a send's future: its reply must be read even when the
        backlog is full (else it would wait for a reply nobody reads: a deadlock)."""
        if threading.get_ident() != self.thread_ident:
            yield
            return
        with self._room:
            self._handler_waits += 1
            self._room.notify_all()
        try:
            yield
        finally:
            with self._room:
                self._handler_waits -= 1

    def drop_dispatched(self) -> None:
        """Free the batches dispatched since the last call (reader thread, before each
        batch it reads). The objects of a batch were made on the reader thread: freeing
        them there too, in one go, costs about a third of what freeing them on the
        dispatcher did, whose CPU cache holds none of them (benchmarks/README.md)."""
        if not self._dispatched:
            return
        with self._room:
            batches = list(self._dispatched)
            self._dispatched.clear()
            self._dispatched_frames = 0
        del batches  # freed here, with no lock held

    def dispatched_batches(self) -> int:
        """How many dispatched batches wait to be freed (for tests)."""
        return len(self._dispatched)

    @property
    def backlog(self) -> int:
        """Frames read but not yet dispatched."""
        return self._backlog

    def stop(self) -> None:
        """Make :meth:`run` return once everything queued before this was dispatched."""
        self._q.put(_STOP)

    # ---- interruption of an observer's long work (a backfill's HTTP calls) by shutdown
    def interrupt(self) -> None:
        """The run is being torn down: abort what observers do on the dispatcher thread
        (their HTTP calls) at once. Called by the run's shutdown, from any thread."""
        with self._room:
            self._interrupted.set()
            aborts = list(self._aborts)
        for abort in aborts:
            try:
                abort()
            except Exception as exc:  # abandoning the work is all that matters
                self.log.debug(f"aborting an observer's work failed: {exc}")

    @property
    def interrupted(self) -> bool:
        """Whether :meth:`interrupt` was called (the run is ending)."""
        return self._interrupted.is_set()

    @contextlib.contextmanager
    def interruptible(self, abort: Callable[[], None]) -> Iterator[None]:
        """Within the block, :meth:`interrupt` calls ``abort`` (at once if it already was)."""
        with self._room:
            self._aborts.append(abort)
            already = self._interrupted.is_set()
        if already:
            abort()
        try:
            yield
        finally:
            with self._room:
                self._aborts.remove(abort)

    def deliver(self, frame: Frame) -> None:
        """Dispatch a frame made by an observer (e.g. a backfilled message) as if it had
        been read: observers, then ``slack_event``, ``{type}``, ``{type}::{subtype}``.
        Only on the dispatcher thread. A shared duplicate filter is asked first: a frame
        another copy claimed (it handled the live copy) reaches the observers only."""
        claim = self.claim_frame
        if claim is not None and not claim(frame):
            self._observe(frame)
            return
        self._frame(frame)

    # ------------------------------------------------------------- consumer side
    def run(self) -> None:
        """Dispatch until :meth:`stop`; never raises."""
        self.thread_ident = threading.get_ident()
        get = self._q.get
        while True:
            try:
                batch = get()
                if batch is _STOP:
                    with self._room:
                        self._dispatched.clear()  # the run ends: nobody frees them now
                        self._dispatched_frames = 0
                    return
                gate = self.gate
                if gate is not None:
                    batch = gate(batch)
                self._dispatch(batch)
                batch = None  # the reader frees it (see drop_dispatched), not this thread
            except BaseException as exc:  # never die silently; keep dispatching
                self.log.error("the dispatcher failed unexpectedly", exc)

    def _dispatch(self, batch: List[Entry]) -> None:
        handlers = self.registry.handlers
        emit = self.emit
        observers = self.registry.observers
        frames = 0  # entries read from the socket: they leave the backlog when done
        try:
            for entry in batch:
                if isinstance(entry, tuple):  # an event: the hot path, checked first
                    frames += 1
                    text, frame = entry
                    raw = handlers("raw_message")
                    if raw:
                        emit("raw_message", (text,), raw)
                    if observers:
                        self._frame(frame)
                        continue
                    # _frame's handler part, inlined (a call per frame costs ~50% of this
                    # loop); test_dispatch_paths checks both on the same frames
                    etype = frame["type"]
                    if etype == "error":
                        self._frame(frame)
                        continue
                    h = handlers("slack_event")
                    if h:
                        emit("slack_event", (etype, frame), h)
                    h = handlers(etype)
                    if h:
                        emit(etype, (frame,), h)
                    subtype = frame.get("subtype")
                    if subtype is not None and isinstance(subtype, str):
                        name = f"{etype}::{subtype}"
                        h = handlers(name)
                        if h:
                            emit(name, (frame,), h)
                elif isinstance(entry, Lifecycle):
                    if observers:
                        self._lifecycle(observers, entry.name, entry.args)
                    else:
                        emit(entry.name, entry.args)
                else:  # read from the socket, but no plain event
                    frames += 1
                    raw = handlers("raw_message")
                    if raw:
                        emit("raw_message", (entry.text,), raw)
                    if isinstance(entry, EnvelopeEntry):
                        self._envelope(entry.event, entry.envelope)
                    elif isinstance(entry, Duplicate):  # another copy handles it
                        self._observe(entry.frame)
                    elif isinstance(entry, Unparsed):
                        self.log.warn("dropped a frame that is not a Slack event: "
                                      f"{entry.text[:200]!r}")
        finally:
            old: List[List[Entry]] = []
            with self._room:
                if frames:
                    self._backlog -= frames
                    self._room.notify_all()
                # the reader frees the batch (drop_dispatched); while it does not come
                # by (blocked, or idle after a burst), at most max_backlog frames wait
                dispatched = self._dispatched
                dispatched.append(batch)
                held = self._dispatched_frames + len(batch)
                while held > self.max_backlog and len(dispatched) > 1:
                    gone = dispatched.popleft()
                    held -= len(gone)
                    old.append(gone)
                self._dispatched_frames = held
            del old  # freed here, with no lock held

    def _envelope(self, event: Optional[Frame], envelope: Envelope) -> None:
        """The envelope's handlers get it, then its inner event goes out like an RTM event;
        then the envelope is finished (acknowledged if nobody did), whatever was raised."""
        try:
            h = self.registry.handlers(envelope.type)
            if h:
                self.emit(envelope.type, (envelope,), h)
            if event is not None:
                self._frame(event)
        finally:
            envelope.finish()

    def _frame(self, frame: Frame) -> None:
        """A parsed event: observers first, then its handlers (an ``error`` frame is also
        reported through the ``error`` event). :meth:`_dispatch` inlines the handler part
        for speed when no observer is registered; ``tests/test_dispatch_paths.py`` runs
        both on the same frames."""
        handlers = self.registry.handlers
        emit = self.emit
        observers = self.registry.observers
        if observers:
            for observer in observers:
                try:
                    if not observer.frame(frame, self):
                        return
                except Exception as exc:  # an internal bug must not cost the user the event
                    self.log.error(f"internal observer {type(observer).__name__} failed", exc)
        etype = frame["type"]
        if etype == "error":
            emit("slack_event", ("error", frame))
            err = frame.get("error")
            msg = err.get("msg") if isinstance(err, dict) else err
            text = self.log.redact(f"Slack sent an error event: {msg}")
            emit("error", (PlatformError(text, error=str(msg), data=frame),))
            return
        h = handlers("slack_event")
        if h:
            emit("slack_event", (etype, frame), h)
        h = handlers(etype)
        if h:
            emit(etype, (frame,), h)
        subtype = frame.get("subtype")
        if subtype is not None and isinstance(subtype, str):
            name = f"{etype}::{subtype}"
            h = handlers(name)
            if h:
                emit(name, (frame,), h)

    def _observe(self, frame: Frame) -> None:
        """Only the observers see ``frame`` (the workspace store stays current)."""
        for observer in self.registry.observers:
            try:
                if not observer.frame(frame, self):
                    return
            except Exception as exc:
                self.log.error(f"internal observer {type(observer).__name__} failed", exc)

    def _lifecycle(self, observers: Tuple[Observer, ...], name: str,
                   args: Tuple[Any, ...]) -> None:
        for observer in observers:
            try:
                observer.before(name, args, self)
            except Exception as exc:
                self.log.error(f"internal observer {type(observer).__name__} failed", exc)
        self.emit(name, args)
        for observer in observers:
            try:
                observer.after(name, args, self)
            except Exception as exc:
                self.log.error(f"internal observer {type(observer).__name__} failed", exc)

    def emit(self, event: str, args: Tuple[Any, ...],
             handlers: Optional[Tuple[Handler, ...]] = None) -> None:
        """Call every handler of ``event`` with ``args``; a raising one is reported."""
        for handler in handlers if handlers is not None else self.registry.handlers(event):
            try:
                handler(*args)
            except BaseException as exc:  # sys.exit() in a handler too: the rest runs on
                name = getattr(handler, "__qualname__", repr(handler))
                self.log.error(f"handler {name} for {event!r} raised {type(exc).__name__}", exc)
                if event != "error":
                    self.emit("error", (exc,))


def _check(event: Any, handler: Any, how: str) -> None:
    """Refuse at registration what could never be called: a bad name or a non-callable."""
    if not isinstance(event, str) or not event:
        raise TypeError(f"{how}(event, handler): event must be an event name such as "
                        f"'message', not {event!r}")
    if not callable(handler):
        raise TypeError(f"{how}({event!r}, handler): handler must be callable (a function "
                        f"taking the event), not {type(handler).__name__} {handler!r}")
