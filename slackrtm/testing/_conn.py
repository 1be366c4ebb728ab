"""One RTM WebSocket connection: a reader loop on the request's thread, a writer thread.

Every write goes through the connection's queue and its single writer thread, in order:
frames queued by any thread are joined into one ``sendall`` when they pile up, and the
fault operations (close, FIN, RST) are queued too, so ``inject`` then ``drop`` reaches the
client in that order. Only the reader thread closes the socket, after the writer ended.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Protocol, Union

from slackrtm.testing import _ws
from slackrtm.testing._net import NET_ERRORS, ThreadedServer, wait_readable

#: Seconds a proper close waits for the client's close frame before closing TCP anyway.
CLOSE_GRACE = 1.0


class Tap(Protocol):
    """Sees every frame a connection writes or reads (the playground's event log)."""

    def frame(self, conn: FakeConnection, direction: str, data: Union[str, bytes]) -> None:
        """``direction`` ``"out"`` (``data``: the bytes written), ``"in"`` (a text frame's
        text) or ``"closed"`` (the connection ended; ``data`` empty). Must not block."""


class Hub(Protocol):
    """What a connection needs from the workspace that owns it."""

    ignore_pings: bool
    _cond: threading.Condition
    _tap: Optional[Tap]

    def _on_text(self, conn: FakeConnection, text: str) -> None: ...

    def _on_binary(self, conn: FakeConnection, data: bytes) -> None: ...

    def _on_closed(self, conn: FakeConnection) -> None: ...


class _Op:
    """A queued teardown: ``close`` (frame, wait for reply), ``close_now``, ``fin``, ``reset``."""

    def __init__(self, kind: str, code: Optional[int] = _ws.CLOSE_GOING_AWAY,
                 reason: str = "") -> None:
        self.kind, self.code, self.reason = kind, code, reason


_Item = Union[bytes, _Op]


class FakeConnection:
    """An open (or closed) RTM or Socket Mode WebSocket connection of a :class:`FakeSlack`.

    Attributes: ``id`` (1, 2, ... in accept order, one sequence for both kinds), ``kind``
    (``"rtm"`` or ``"socket_mode"``), ``params`` (the parameters its ticket was issued
    with, token removed), ``method`` (``"rtm.connect"``, ``"rtm.start"`` or
    ``"apps.connections.open"``), ``presence_subscriptions`` (ids of the last
    ``presence_sub``), ``close_code`` / ``close_reason`` (of the client's close frame, if
    any), ``ws_pongs`` (payloads of pong control frames received). Socket Mode only:
    ``acks`` (the ack records of this connection, in order), ``going_away`` (True once
    FakeSlack sent it a ``disconnect``: no envelope is routed to it any more) and
    ``debug_reconnects`` (its URL carried ``debug_reconnects=true``).
    """

    def __init__(self, hub: Hub, server: ThreadedServer, sock: socket.socket, conn_id: int,
                 params: Dict[str, Any], method: str, kind: str = "rtm") -> None:
        self.id = conn_id
        self.kind = kind
        self.params: Dict[str, Any] = params
        self.method = method
        self.acks: List[Any] = []
        self.going_away = False
        self.presence_subscriptions: List[str] = []
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.ws_pongs: List[bytes] = []
        self.hello_sent = False
        #: Socket Mode: the client asked for short connections (``debug_reconnects=true``).
        self.debug_reconnects = False
        self._received: List[Dict[str, Any]] = []
        self._hub = hub
        self._server = server
        self._sock = sock
        self._tls = hasattr(sock, "pending")
        self._io_lock = threading.Lock() if self._tls else None
        self._cv = threading.Condition()
        self._queue: Deque[_Item] = deque()
        self._frozen = False
        self._open = True
        self._writer_done = False
        self._reader_stop = False
        self._close_sent = False
        self._ending = False
        self._peer_closed = False
        self._reset = False
        self._failed = False
        self._writer: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<FakeConnection id={self.id} {state} kind={self.kind} method={self.method}>"

    @property
    def batch_presence_aware(self) -> bool:
        """Whether the client connected with ``batch_presence_aware`` set."""
        return truthy(self.params.get("batch_presence_aware"))

    @property
    def open(self) -> bool:
        """True until the connection's socket is closed."""
        return self._open

    @property
    def frozen(self) -> bool:
        """True while :meth:`freeze` holds all reading and writing."""
        return self._frozen

    @property
    def received(self) -> List[Dict[str, Any]]:
        """A copy of the JSON frames this client sent, in order."""
        with self._hub._cond:
            return list(self._received)

    # -- sending -----------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> bool:
        """Queue already-encoded frame bytes; False if the connection is gone or ending
        (a close, drop or close echo is queued: frames after it would never be written)."""
        with self._cv:
            if self._writer_done or self._reader_stop or self._ending:
                return False
            self._queue.append(data)
            self._cv.notify_all()
        return True

    def send_event(self, event: Dict[str, Any]) -> bool:
        """Queue ``event`` as a JSON text frame; False if the connection is gone."""
        return self.send_bytes(_ws.text_frame(json.dumps(event)))

    def send_raw(self, data: Union[str, bytes], *, binary: bool = False) -> bool:
        """Queue one raw frame: ``str`` as text, ``bytes`` as text with those exact bytes
        (even invalid UTF-8), or as a binary frame with ``binary=True``."""
        if binary:
            raw = data.encode("utf-8") if isinstance(data, str) else data
            return self.send_bytes(_ws.encode_frame(_ws.OP_BINARY, raw))
        return self.send_bytes(_ws.text_frame(data))

    def ping(self, payload: bytes = b"") -> bool:
        """Send a WebSocket ping control frame; the client's pong lands in ``ws_pongs``."""
        return self.send_bytes(_ws.encode_frame(_ws.OP_PING, payload[:125]))

    # -- faults ------------------------------------------------------------------------
    def drop(self, how: str = "reset") -> None:
        """End the connection: ``"reset"`` (RST), ``"fin"`` (TCP close, no close frame) or
        ``"close"`` (close frame 1001, then TCP close). Queued after earlier sends."""
        if how not in ("reset", "fin", "close"):
            raise ValueError(f"drop(how=...) must be 'reset', 'fin' or 'close', not {how!r}")
        self._queue_op(_Op(how))

    def close(self, code: int = _ws.CLOSE_GOING_AWAY, reason: str = "", *,
              wait_reply: bool = True) -> None:
        """Send a close frame and close TCP once the client answers (or after a grace)."""
        self._queue_op(_Op("close" if wait_reply else "close_now", code, reason))

    def freeze(self) -> None:
        """Stop reading from and writing to the socket (a dead peer); TCP stays open."""
        with self._cv:
            self._frozen = True
            self._cv.notify_all()

    def unfreeze(self) -> None:
        """Resume: frames the client sent meanwhile are read, held frames are written."""
        with self._cv:
            self._frozen = False
            self._cv.notify_all()

    def wait_closed(self, timeout: float = 30.0) -> None:
        """Block until the socket is closed; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._open:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"FakeSlack: connection {self.id} still open after {timeout}s")
                self._cv.wait(remaining)

    def _queue_op(self, op: _Op) -> None:
        with self._cv:
            if not (self._writer_done or self._reader_stop):
                self._ending = True
                self._queue.append(op)
                self._cv.notify_all()

    # -- writer ------------------------------------------------------------------------
    def _start(self, first: bytes) -> None:
        """Queue the handshake response (and hello) and start the writer thread."""
        with self._cv:
            self._queue.append(first)
        self._writer = self._server.spawn(self._write_loop, name=f"ws-{self.id}-writer")
        if self._writer is None:
            self._reader_stop = True

    def _take(self) -> Optional[List[_Item]]:
        with self._cv:
            while True:
                if self._reader_stop:
                    return None
                if self._frozen:
                    ops = [i for i, it in enumerate(self._queue) if isinstance(it, _Op)]
                    if ops:  # a drop ends a frozen connection: held frames are lost
                        op = self._queue[ops[0]]
                        self._queue.clear()
                        return [op]
                elif self._queue:
                    items = list(self._queue)
                    self._queue.clear()
                    return items
                self._cv.wait()

    def _write(self, data: bytes) -> None:
        tap = self._hub._tap
        if tap is not None:
            tap.frame(self, "out", data)
        if self._io_lock is None:
            self._sock.sendall(data)
        else:
            with self._io_lock:
                self._sock.sendall(data)

    def _write_loop(self) -> None:
        try:
            while True:
                items = self._take()
                if items is None:
                    return
                buf = bytearray()
                for item in items:
                    if isinstance(item, bytes):
                        buf += item
                        continue
                    if buf:
                        self._write(bytes(buf))
                        buf.clear()
                    self._run_op(item)
                    return
                if buf:
                    self._write(bytes(buf))
        except NET_ERRORS:
            self._server.shutdown(self._sock)
        finally:
            with self._cv:
                self._writer_done = True
                self._reader_stop = True
                self._queue.clear()
                self._cv.notify_all()

    def _run_op(self, op: _Op) -> None:
        if op.kind == "reset":
            self._reset = True
            self._server.shutdown(self._sock, socket.SHUT_RD)  # wakes the reader, sends nothing
            return
        if op.kind in ("close", "close_now", "echo"):
            self._close_sent = True
            self._write(_ws.encode_close(op.code, op.reason))
        if op.kind == "close":
            deadline = time.monotonic() + CLOSE_GRACE
            with self._cv:
                while not self._peer_closed and not self._reader_stop:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
        self._server.shutdown(self._sock)  # the server closes TCP first (RFC 6455 7.1.1)

    # -- reader ------------------------------------------------------------------------
    def _run(self) -> None:
        """Read and handle frames until the connection ends; then close the socket."""
        parser = _ws.FrameParser()
        try:
            while True:
                with self._cv:
                    while self._frozen and not self._reader_stop:
                        self._cv.wait()
                    if self._reader_stop and not self._writer_alive():
                        break
                if not (self._tls and self._pending()):
                    wait_readable([self._sock])
                    with self._cv:
                        if self._frozen:
                            continue
                data = self._recv()
                if not data:
                    break
                if self._failed:
                    continue
                try:
                    messages = parser.feed(data)
                except _ws.ProtocolError as exc:
                    self._fail(exc.code, str(exc))
                    continue
                for msg in messages:
                    self._handle(msg)
        except (*NET_ERRORS, ValueError):  # ValueError: select() on a socket closed under us
            pass
        finally:
            self._finish()

    def _writer_alive(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    def _pending(self) -> int:
        return int(self._sock.pending())  # type: ignore[attr-defined]

    def _recv(self) -> bytes:
        if self._io_lock is None:
            return self._sock.recv(262144)
        with self._io_lock:
            return self._sock.recv(262144)

    def _fail(self, code: int, reason: str) -> None:
        self._failed = True
        self._queue_op(_Op("close_now", code, reason))

    def _handle(self, msg: _ws.Message) -> None:
        if self._peer_closed:  # RFC 6455 5.5.1: the client sends nothing after its close
            return
        if msg.opcode == _ws.OP_TEXT:
            try:
                text = msg.payload.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(_ws.CLOSE_INVALID_DATA, "invalid UTF-8 in a text frame")
                return
            tap = self._hub._tap
            if tap is not None:
                tap.frame(self, "in", text)
            self._hub._on_text(self, text)
        elif msg.opcode == _ws.OP_BINARY:
            self._hub._on_binary(self, msg.payload)
        elif msg.opcode == _ws.OP_PING:
            if not self._hub.ignore_pings:
                self.send_bytes(_ws.encode_frame(_ws.OP_PONG, msg.payload))
        elif msg.opcode == _ws.OP_PONG:
            with self._hub._cond:
                self.ws_pongs.append(msg.payload)
                self._hub._cond.notify_all()
        elif msg.opcode == _ws.OP_CLOSE:
            code, reason = _ws.parse_close(msg.payload)
            with self._hub._cond:
                self.close_code, self.close_reason = code, reason
            with self._cv:
                self._peer_closed = True
                self._cv.notify_all()
                echo = not self._close_sent
            if echo:
                self._queue_op(_Op("echo", code))

    def _finish(self) -> None:
        with self._cv:
            self._reader_stop = True
            self._cv.notify_all()
        writer = self._writer
        if writer is not None and writer is not threading.current_thread():
            writer.join(0.2)
            if writer.is_alive():  # blocked writing to a client that does not read
                self._server.shutdown(self._sock)
                writer.join(2.0)
        self._server.release(self._sock, linger_reset=self._reset)
        with self._cv:
            self._open = False
            self._cv.notify_all()
        self._hub._on_closed(self)
        tap = self._hub._tap
        if tap is not None:
            tap.frame(self, "closed", b"")


def truthy(value: Any) -> bool:
    """Slack's reading of a boolean parameter: True, 1, "true", "1", "yes"."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)

