"""The writer: the only place a run writes to its socket from (Run's mixin).

It flushes connection-bound frames (Socket Mode acks) first, then the core's queued sends
(messages, pings) in order, from the writer thread: no user thread, nor the keep-alive or
the dispatcher thread, ever blocks on a full socket. The reader writes the acks of a read
itself (:meth:`Writer.write_now`), but only when the socket takes them without blocking;
what it cannot write goes to the writer thread. A write that makes no progress for
``client_ping_timeout`` seconds (the peer stopped reading) is noticed by the keep-alive
thread, which tears the connection down.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from functools import partial
from typing import Any, Callable, Deque, Iterable, List, Optional, Tuple, Union

from slackrtm._engine.context import RunContext, apply, monotonic
from slackrtm._engine.core import Resolve, Send, State
from slackrtm._engine.split import unencodable
from slackrtm._engine.transport import Transport
from slackrtm._log import Log
from slackrtm.errors import (
    NoReplyReceivedError,
    NotWritten,
    SendWhileDisconnectedError,
    SlackRTMError,
    WebsocketError,
)

__all__ = ["BOUND_HIGH", "Bound", "Writer", "ours", "settle"]

#: Connection-bound frames (Socket Mode acks) queued at most before the reader stops
#: reading until the writer catches up (about 1 MB of acks; counted in frames, see
#: ``Writer.bound_frames``).
BOUND_HIGH = 10_000


_SETTLE_LOCK = threading.Lock()  # one for every Bound: held a moment, once per batch
_PENDING = object()


class Bound:
    """A frame for one connection (a Socket Mode ack): written before queued sends, on
    ``via`` while it takes writes, else on the current connection once it is ready.

    ``future`` (may be None) resolves once the frame is written, or fails. An ack the
    client made on read has none: nobody waits for it, and a Future per envelope is a
    cost every envelope would pay. :meth:`watch` gives one later, on demand, which
    resolves as the frame already did or will."""

    __slots__ = ("_outcome", "frames", "future", "held", "text", "via")

    def __init__(self, text: Union[str, List[str]], via: Optional[Transport],
                 future: Optional[Future[None]] = None) -> None:
        #: One frame's text, or the texts of several frames written together and
        #: settled as one (the acks of one read that no request holds)
        self.text = text
        self.frames = 1 if type(text) is str else len(text)
        self.via = via
        self.future = future
        #: Part of its frames went out on ``via`` (:meth:`Writer.write_now`): the number
        #: of that hold (``Transport.holds``); ``via`` writes the rest before any other
        #: byte, and they count as written once ``via.flushed`` reaches it. 0: none
        self.held = 0
        # _PENDING until settled; then None (written) or the exception it failed with
        self._outcome: Any = _PENDING

    def watch(self) -> Future[None]:
        """A future for the outcome of this frame: the one it has, else a new one,
        already resolved when the frame was settled before (any thread)."""
        with _SETTLE_LOCK:
            future = self.future
            if future is not None:
                return future
            future = self.future = Future()
            outcome = self._outcome
        if outcome is not _PENDING:
            apply([Resolve(future, error=outcome)])
        return future

    def hold_flushed(self) -> bool:
        """Whether its frames were begun without blocking and ``via`` has written the
        rest since (they are written, whoever flushed them)."""
        via = self.via
        return bool(self.held) and via is not None and via.flushed >= self.held

    def settled(self) -> bool:
        """Whether the frame was written or failed."""
        return self._outcome is not _PENDING


def _encoded(items: List[Bound]) -> List[bytes]:
    """The UTF-8 payloads of the frames of ``items``, in order."""
    out: List[bytes] = []
    for item in items:
        text = item.text
        if type(text) is str:
            out.append(text.encode("utf-8"))
        else:
            out += [t.encode("utf-8") for t in text]
    return out


def settle(items: Iterable[Bound], error: Optional[Callable[[], BaseException]],
           done: List[Resolve]) -> None:
    """Mark ``items`` written (``error`` None) or failed (each with an exception of its
    own, made by ``error``). Their futures, those they have or :meth:`Bound.watch` gives
    from now on, resolve so; ``done`` collects the ones to complete once no lock is
    held."""
    with _SETTLE_LOCK:
        for item in items:
            outcome = item._outcome = None if error is None else error()
            future = item.future
            if future is not None:
                done.append(Resolve(future, error=outcome))


class Writer:
    """The writing half of a run; :class:`slackrtm._engine.run.Run` sets these attributes."""

    ctx: RunContext
    log: Log
    stop: threading.Event
    stopping: bool
    transport: Optional[Transport]
    teardown_reason: Optional[SlackRTMError]
    kick: threading.Event
    next_wake: float
    wake_writer: threading.Event
    write_lock: threading.Lock
    bound: Deque[Bound]
    bound_frames: int  # the frames in ``bound`` (changed under the client's lock)
    bound_room: threading.Event
    json_ping: bool

    def queue_post(self, send: Send) -> None:  # the poster's (Run mixes both in)
        raise NotImplementedError

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
        """Have the writer thread write what is queued. A caller never writes itself: a
        peer that stops reading would block it (the writer's stalled write is detected
        by the keep-alive thread instead, which replaces the connection)."""
        self.wake_writer.set()

    def pump(self) -> None:
        """Write every connection-bound frame, then every writable queued send, in order.
        Never blocks waiting for the lock: the thread holding it writes what others queued
        meanwhile. Futures are completed after the lock is released.

        Two locks: the write lock (held for the whole pass: one writer at a time, so
        frames go out in the order the core hands them over) and the client's lock (held
        only to talk to the core, never while writing: a full socket must not stop the
        reader from settling replies)."""
        ctx = self.ctx
        core = ctx.core
        while True:
            # 1. Become the writer, or leave at once: whoever writes now also writes what
            #    this thread queued (it checks again after releasing, step 5).
            if not self.write_lock.acquire(blocking=False):
                return
            done: List[Resolve] = []
            try:
                # 2. Acknowledgements first: Slack redelivers an envelope not acked in time.
                self._write_bound(done)
                while True:
                    # 3. Take the next send under the client's lock: the core gives it its
                    #    id and registers it as awaiting a reply before a byte is written
                    #    (on loopback the reply can beat the write's return).
                    with ctx.lock:
                        transport = self.transport
                        if transport is None or transport.closed:
                            break
                        item = core.next_write(monotonic())
                        if item is None and core.paced_before(self.next_wake):
                            self.kick.set()  # pacing: a held send is due before the timer wakes
                    if item is None:
                        break
                    send, text = item
                    if send.web:  # a chat.postMessage: the poster posts it, in this order
                        self.queue_post(send)
                        continue
                    if send.deadline and send.deadline < self.next_wake:
                        self.kick.set()  # its reply deadline comes before the timer's wake
                    # 4. Write without the client's lock; then tell the core how it went
                    #    (under the lock again). Nothing written: put it back first in line.
                    #    Failed midway: it may have arrived, so it fails (never resent),
                    #    and the connection is torn down with that reason.
                    try:
                        if not self.json_ping and send.future is None and send.type == "ping":
                            transport.send_ping(str(send.id).encode())
                        else:
                            transport.send_text(text)
                    except UnicodeEncodeError as exc:  # nothing written: this send fails alone
                        with ctx.lock:
                            core.pending.pop(send.id, None)
                        if send.future is not None:
                            done.append(Resolve(send.future, error=ValueError(
                                f"this {send.type!r} event cannot be sent: "
                                f"{unencodable(exc)}; nothing was written")))
                        continue
                    except NotWritten:  # torn down first: not a byte of it went out
                        with ctx.lock:
                            effect = core.requeue(send, stopping=self.stopping)
                    except WebsocketError as err:
                        with ctx.lock:
                            effect = core.write_failed(send, err)
                            if self.transport is transport and self.teardown_reason is None:
                                self.teardown_reason = err  # unless it was torn down first
                        transport.abort()
                    else:
                        with ctx.lock:
                            effect = core.written(send)
                        if effect is not None:
                            done.append(effect)
                        continue
                    if effect is not None:
                        done.append(effect)
                    break
            finally:
                self.write_lock.release()
            # 5. Complete futures with no lock held (callbacks run user code), then look
            #    again: a send queued while this thread held the write lock found it taken
            #    and left its send to this thread.
            apply(done)
            with ctx.lock:
                transport = self.transport
                if transport is None or transport.closed:
                    return
                if not core.writable() and self._bound_target() is None:
                    return

    def _bound_target(self) -> Optional[Transport]:
        """Where the first bound frame goes now, or None (none queued, or nowhere yet)."""
        assert self.ctx.lock.locked()  # reads the bound queue, the transport and the state
        if not self.bound:
            return None
        via = self.bound[0].via
        if via is not None and via.writable:
            return via
        current = self.transport
        if current is not None and current.writable and self.ctx.core.state is State.READY:
            return current
        return None

    def _write_bound(self, done: List[Resolve]) -> None:
        """Write the bound frames, those for one connection in one write, stopping at the
        first with nowhere to go: it waits for the next ready connection."""
        assert self.write_lock.locked()  # the one writer: pump holds it
        ctx = self.ctx
        bound = self.bound
        while True:
            with ctx.lock:
                target = self._bound_target()
                if target is None:
                    return
                first = bound.popleft()
                items = [first]
                frames = first.frames
                # the frames that go to the same place: where a frame goes is looked up
                # again only when its via differs from the one before (acks of one read
                # all share theirs)
                via = first.via
                while bound and frames < 512:
                    nxt = bound[0].via
                    if nxt is not via:
                        if self._bound_target() is not target:
                            break
                        via = nxt
                    item = bound.popleft()
                    items.append(item)
                    frames += item.frames
                self.bound_frames -= frames
            # frames begun without blocking (write_now): written whole already when their
            # connection flushed the hold; else ``target`` holds their rest and writes it
            # before these; else (their connection ended first) they are written anew
            fresh = items
            if any(item.held for item in items):
                fresh = []
                for item in items:
                    skip = item.hold_flushed() or (item.held and item.via is target)
                    item.held = 0
                    if not skip:
                        fresh.append(item)
            try:
                payloads = _encoded(fresh)
            except UnicodeEncodeError:  # a lone surrogate: that frame fails alone
                good, payloads = self._encodable(fresh, done)
                items = [item for item in items if item not in fresh or item in good]
                if not items:
                    continue
            try:
                target.send_payloads(payloads)
            except NotWritten:  # closed meanwhile: try the next connection
                for item in items:
                    item.via = None
                with ctx.lock:
                    bound.extendleft(reversed(items))
                    self.bound_frames += sum(item.frames for item in items)
                continue
            except WebsocketError as err:
                with ctx.lock:
                    if self.transport is target and self.teardown_reason is None:
                        self.teardown_reason = err  # unless it was torn down first
                target.abort()
                why = (f"the connection failed while writing an acknowledgement; it may "
                       f"or may not have reached Slack: {err}")
                settle(items, partial(NoReplyReceivedError, why), done)
                continue
            settle(items, None, done)
            self.bound_room.set()

    def _encodable(self, items: List[Bound], done: List[Resolve]
                   ) -> Tuple[List[Bound], List[bytes]]:
        """The frames of ``items`` that UTF-8 can encode, encoded; each other one is
        logged and fails alone."""
        good: List[Bound] = []
        payloads: List[bytes] = []
        for item in items:
            try:
                payloads += _encoded([item])
            except UnicodeEncodeError as exc:
                why = f"the acknowledgement cannot be written: {unencodable(exc)}"
                self.log.warn(f"an acknowledgement was not written: {unencodable(exc)}")
                settle([item], partial(ValueError, why), done)
                continue
            good.append(item)
        return good, payloads

    def wait_bound_room(self, transport: Transport) -> None:
        """Reader side: while :data:`BOUND_HIGH` frames wait to be written (the peer
        reads slower than it sends, or not at all), stop reading until the writer brings
        them under half of that; a connection torn down meanwhile ends the wait. Memory
        stays bounded; a peer that stopped reading is detected by the stalled write."""
        while self.bound_frames >= BOUND_HIGH // 2:
            if self.stop.is_set() or transport.closed:
                return
            self.bound_room.clear()
            if self.bound_frames < BOUND_HIGH // 2:
                return
            self.bound_room.wait(0.5)

    def write_now(self, items: List[Bound], via: Transport) -> None:
        """Reader side: write ``items``, the acknowledgements of one read from ``via``,
        at once when the socket takes them without blocking (one thread hand-off less per
        read); else, or for what it did not take, queue them for the writer thread. The
        reader never waits on the socket: a write under way or queued frames make it
        queue, as does a full socket."""
        with self.ctx.lock:
            free = not self.bound and not self.stopping
        if free:
            try:
                payloads: Optional[List[bytes]] = _encoded(items)
            except UnicodeEncodeError:  # the writer fails the one that cannot be written
                payloads = None
            if payloads is not None:
                written = via.send_now(payloads)
                if written:
                    done: List[Resolve] = []
                    settle(items, None, done)
                    apply(done)
                    return
                if written is None:  # begun: via writes the rest before anything else
                    hold = via.holds
                    for item in items:
                        item.held = hold
        self.write_bound_many(items)

    def write_bound(self, item: Bound) -> None:
        """Queue a connection-bound frame and have the writer write it (any thread)."""
        self.write_bound_many([item])

    def write_bound_many(self, items: List[Bound]) -> None:
        """Queue connection-bound frames, in order, and wake the writer (any thread)."""
        with self.ctx.lock:
            if not self.stopping:
                self.bound.extend(items)
                self.bound_frames += sum(item.frames for item in items)
                items = []
        if items:
            done: List[Resolve] = []
            settle(items, lambda: SendWhileDisconnectedError(
                "the client disconnected before the acknowledgement could be written"), done)
            apply(done)
            return
        self.wake_writer.set()

    def _drop_bound(self, reason: str) -> List[Resolve]:
        """Fail every bound frame still queued (those begun without blocking whose
        connection wrote the rest count as written)."""
        assert self.ctx.lock.locked()
        effects: List[Resolve] = []
        written: List[Bound] = []
        unwritten: List[Bound] = []
        for item in self.bound:
            (written if item.hold_flushed() else unwritten).append(item)
        settle(written, None, effects)
        settle(unwritten, lambda: SendWhileDisconnectedError(
            f"{reason} before the acknowledgement could be written"), effects)
        self.bound.clear()
        self.bound_frames = 0
        return effects


_local = threading.local()


def ours(target: Callable[[], None]) -> Callable[[], None]:
    """Mark the thread running ``target`` as one of the client's own."""
    def run() -> None:
        _local.ours = True
        target()
    return run


