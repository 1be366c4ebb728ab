"""The writer: the only place a run writes to its socket from (Run's mixin).

It flushes connection-bound frames (Socket Mode acks) first, then the core's queued sends
(messages, pings) in order, from the writer thread only: no user thread, nor the reader,
the keep-alive or the dispatcher thread, ever blocks on a full socket. A write that makes
no progress for ``client_ping_timeout`` seconds (the peer stopped reading) is noticed by
the keep-alive thread, which tears the connection down.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Deque, List, Optional

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

__all__ = ["BOUND_HIGH", "Bound", "Writer", "ours"]

#: Connection-bound frames (Socket Mode acks) queued at most before the reader stops
#: reading until the writer catches up (about 1 MB of acks).
BOUND_HIGH = 10_000


@dataclass
class Bound:
    """A frame for one connection (a Socket Mode ack): written before queued sends, on
    ``via`` while it takes writes, else on the current connection once it is ready."""

    text: str
    via: Optional[Transport]
    future: Optional[Future[None]]


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
        while True:
            with ctx.lock:
                target = self._bound_target()
                if target is None:
                    return
                items = [self.bound.popleft()]
                while self.bound and len(items) < 512 and self._bound_target() is target:
                    items.append(self.bound.popleft())
            payloads: List[bytes] = []
            good: List[Bound] = []
            for item in items:
                try:
                    payloads.append(item.text.encode("utf-8"))
                    good.append(item)
                except UnicodeEncodeError as exc:  # a lone surrogate: this item fails alone
                    self.log.warn(f"an acknowledgement was not written: {unencodable(exc)}")
                    if item.future is not None:
                        done.append(Resolve(item.future, error=ValueError(
                            f"the acknowledgement cannot be written: {unencodable(exc)}")))
            items = good
            if not items:
                continue
            try:
                target.send_payloads(payloads)
            except NotWritten:  # closed meanwhile: try the next connection
                for item in items:
                    item.via = None
                with ctx.lock:
                    self.bound.extendleft(reversed(items))
                continue
            except WebsocketError as err:
                with ctx.lock:
                    if self.transport is target and self.teardown_reason is None:
                        self.teardown_reason = err  # unless it was torn down first
                target.abort()
                done.extend(Resolve(item.future, error=NoReplyReceivedError(
                    f"the connection failed while writing an acknowledgement; it may "
                    f"or may not have reached Slack: {err}"))
                    for item in items if item.future is not None)
                continue
            done.extend(Resolve(item.future, result=None)
                        for item in items if item.future is not None)
            self.bound_room.set()

    def wait_bound_room(self, transport: Transport) -> None:
        """Reader side: while :data:`BOUND_HIGH` frames wait to be written (the peer
        reads slower than it sends, or not at all), stop reading until the writer brings
        them under half of that; a connection torn down meanwhile ends the wait. Memory
        stays bounded; a peer that stopped reading is detected by the stalled write."""
        while len(self.bound) >= BOUND_HIGH // 2:
            if self.stop.is_set() or transport.closed:
                return
            self.bound_room.clear()
            if len(self.bound) < BOUND_HIGH // 2:
                return
            self.bound_room.wait(0.5)

    def write_bound(self, item: Bound) -> None:
        """Queue a connection-bound frame and have the writer write it (any thread)."""
        self.write_bound_many([item])

    def write_bound_many(self, items: List[Bound]) -> None:
        """Queue connection-bound frames, in order, and wake the writer (any thread)."""
        with self.ctx.lock:
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
        """Fail every bound frame still queued."""
        assert self.ctx.lock.locked()
        effects = [Resolve(b.future, error=SendWhileDisconnectedError(
            f"{reason} before the acknowledgement could be written"))
            for b in self.bound if b.future is not None]
        self.bound.clear()
        return effects


_local = threading.local()



def ours(target: Callable[[], None]) -> Callable[[], None]:
    """Mark the thread running ``target`` as one of the client's own."""
    def run() -> None:
        _local.ours = True
        target()
    return run


