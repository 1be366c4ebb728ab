"""The WebSocket transport: the only code that touches an open connection's socket.

Opening is :mod:`slackrtm._engine.handshake`'s job and the frame format
:mod:`slackrtm._engine.frames`'. Reading is done here, straight from the socket in large
chunks: server frames are unmasked, so parsing them is a few slices, and text is validated
as UTF-8 by ``bytes.decode`` in C instead of websocket-client's pure-Python validator.
Errors of the socket are turned into :class:`WebsocketError` here.

Writes block (the writer thread's), except :meth:`Transport.send_now`, which writes what
the socket takes at once and holds the rest: held bytes go out before any other byte.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

import websocket

from slackrtm._engine.frames import (
    MAX_MESSAGE,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    U16,
    U64,
    client_frame,
    client_frames,
)
from slackrtm._engine.handshake import abort_handshake, connect, describe, safe_url
from slackrtm._web.netconfig import ProxyConfig
from slackrtm.errors import NotWritten, WebsocketError  # NotWritten: also imported from here

__all__ = ["MAX_MESSAGE", "Message", "NotWritten", "Transport", "abort_handshake",
           "client_frame", "safe_url"]

_CHUNK = 65536
_monotonic = time.monotonic
#: ``send`` flag for one write that must not block (plain sockets; Windows has none)
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)

#: A received message: ``(text, None)`` for a text frame, ``(None, payload)`` for binary.
Message = Tuple[Optional[str], Optional[bytes]]


class _PollTimeout(Exception):
    """A read with :meth:`Transport.poll_every` set found no data in time."""


class Transport:
    """One open WebSocket connection."""

    #: How many writes :meth:`send_now` began and held the rest of, and the number of the
    #: last hold written out whole (a held ``Bound`` knows its hold by number).
    holds: int
    flushed: int

    def __init__(self, ws: Any, host: str) -> None:
        self._ws = ws
        self._sock: socket.socket = ws.sock
        self.host = host
        self._buf = bytearray()
        self._rbuf = bytearray(_CHUNK)
        self._rview = memoryview(self._rbuf)
        self._fragments: List[bytes] = []
        self._frag_op = 0
        self._frag_len = 0
        self._closed = threading.Event()
        self._send_lock = threading.Lock()
        self._tls = isinstance(self._sock, ssl.SSLSocket)
        # what the socket did not take of a write begun without blocking (send_now): it
        # goes out before any other byte (under the send lock, see _flush_held)
        self._held = b""
        self.holds = 0
        self.flushed = 0
        self.close_received: Optional[Tuple[int, str]] = None
        #: Payloads of pong control frames received and not yet taken (see take_pongs).
        self.pongs: List[bytes] = []
        #: A close frame was written (see begin_close): no data frame may follow it.
        self.close_sent = False
        #: A write is under way, and when it last made progress (see :meth:`stalled`).
        self.writing = False
        self.write_progress = 0.0
        self._poller: Any = None  # watches the socket and the waker (set_waker)
        self._waker: Optional[socket.socket] = None
        self._poll_time: Optional[float] = None
        # the end of the connection, seen while parsing messages that arrived before it:
        # those are returned first, this is raised by the next read()
        self._ended: Optional[WebsocketError] = None

    @classmethod
    def open(cls, url: str, *, timeout: float, proxy: Optional[ProxyConfig],
             ssl_context: Optional[ssl.SSLContext],
             publish: Optional[Callable[[Any], None]] = None) -> Transport:
        """Open a connection to ``url`` (see :func:`slackrtm._engine.handshake.connect`)."""
        ws, host = connect(url, timeout=timeout, proxy=proxy, ssl_context=ssl_context,
                           publish=publish)
        return cls(ws, host)

    # ------------------------------------------------------------------ writing
    def send_text(self, text: str) -> None:
        """Write one text frame; raise WebsocketError if the connection is gone."""
        self._write_frame(client_frame(text.encode("utf-8"), OP_TEXT))

    def send_texts(self, texts: List[str]) -> None:
        """Write several text frames in one write (all or, on failure, maybe some)."""
        self._write_frame(client_frames([t.encode("utf-8") for t in texts]))

    def send_payloads(self, payloads: List[bytes]) -> None:
        """Write several text frames, already UTF-8 encoded, in one write (as send_texts)."""
        self._write_frame(client_frames(payloads))

    def send_ping(self, payload: bytes) -> None:
        """Write a ping control frame (a keep-alive); raise WebsocketError like send_text."""
        self._write_frame(client_frame(payload[:125], OP_PING))

    def send_now(self, payloads: List[bytes]) -> Optional[bool]:
        """Write text frames now without ever blocking (the reader's acknowledgements).

        True: the socket took them all. False: nothing was written (another write is under
        way, held bytes wait, the connection is closed or the socket failed): the caller
        has the writer thread write them, which reports a failure as for any write. None:
        part went out; the rest is held (hold number :attr:`holds`) and goes out before any
        other byte: the next data write (the writer thread's) writes it first, and a
        control frame is written only once it went out (a TLS socket that would block must
        be given the same bytes again, so it holds them all)."""
        if not self._send_lock.acquire(blocking=False):
            return False
        try:
            if self._held or self._closed.is_set() or self.close_sent:
                return False
            data = client_frames(payloads)
            try:
                rest = self._send_nowait(data)
            except (OSError, ValueError):  # the writer meets it again, and reports it
                return False
            if not rest:
                return True
            if rest is data and not self._tls:
                return False  # not a byte went out
            self._held = rest
            self.holds += 1
            return None
        finally:
            self._send_lock.release()

    def _send_nowait(self, data: bytes) -> bytes:
        """Send what the socket takes of ``data`` at once; return the rest (``data``
        itself when TLS would block: it must be written again as it is)."""
        sock = self._sock
        if _DONTWAIT and not self._tls:
            try:
                sent = sock.send(data, _DONTWAIT)
            except BlockingIOError:
                return data
            return data[sent:] if sent < len(data) else b""
        # TLS (SSLSocket.send takes no flags) and systems without MSG_DONTWAIT: the
        # socket is non-blocking for this one write; the send lock keeps every other
        # write out, and only this thread reads it
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            sent = sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return data
        finally:
            sock.settimeout(timeout)
        return data[sent:] if sent < len(data) else b""

    def _flush_held(self) -> None:
        """Write the held bytes first, blocking (the writer thread; the send lock is
        held). Raises OSError: the connection is then given up (it would be torn down by
        the caller), and the bytes with it."""
        held = self._held
        if held:
            self._held = b""
            self._send_all(held)
            self.flushed = self.holds

    def _flush_held_now(self) -> bool:
        """Write the held bytes if the socket takes them without blocking (the send lock
        is held); True when nothing is held any more. A control frame follows only then:
        no thread but the writer blocks on a full socket for held bytes."""
        held = self._held
        if not held:
            return True
        try:
            rest = self._send_nowait(held)
        except (OSError, ValueError):  # the stream cannot be mended: the connection goes
            self._held = b""
            self.abort()
            return False
        self._held = rest
        if rest:
            return False
        self.flushed = self.holds
        return True

    def _write_frame(self, data: bytes) -> None:
        try:
            with self._send_lock:
                if self._closed.is_set() or self.close_sent:
                    raise NotWritten(f"the connection to {self.host} is closed")
                if self._held:
                    self._flush_held()
                if data:
                    self._send_all(data)
        except (OSError, websocket.WebSocketException) as exc:
            raise WebsocketError(f"writing to {self.host} failed: {describe(exc)}") from None

    def _send_all(self, data: bytes) -> None:
        """``sendall``, noting when each part went out: a write that makes no progress
        for long means the peer stopped reading (see :meth:`stalled`)."""
        send = self._sock.send
        self.write_progress = _monotonic()
        self.writing = True
        try:
            if len(data) <= 65536:  # the common case: one send takes it all
                sent = send(data)
                if sent == len(data):
                    return
                data = data[sent:]
                self.write_progress = _monotonic()
            view = memoryview(data)
            while view:
                sent = send(view)
                view = view[sent:]
                self.write_progress = _monotonic()
        finally:
            self.writing = False

    def stalled(self, now: float, limit: float) -> bool:
        """Whether a write has been in progress for ``limit`` seconds without a byte
        going out (any thread; the writer may be blocked in it)."""
        return self.writing and now - self.write_progress >= limit

    def take_pongs(self) -> List[bytes]:
        """The payloads of pong frames received since the last call (reader thread only)."""
        pongs, self.pongs = self.pongs, []
        return pongs

    def _send_control(self, payload: bytes, opcode: int, wait: float = 1.0) -> None:
        if self._send_lock.acquire(timeout=wait):
            try:
                if self._flush_held_now():  # else held bytes wait: no frame may cut in
                    self._sock.sendall(client_frame(payload, opcode))
            except OSError:
                pass
            finally:
                self._send_lock.release()

    # ------------------------------------------------------------------ reading
    def set_waker(self, waker: socket.socket) -> None:
        """From now on a byte arriving on ``waker`` (a socketpair end, non-blocking) makes
        :meth:`read` return at once, maybe empty-handed (reader thread only)."""
        self._waker = waker
        self._poller = None

    def _wait_readable(self) -> None:
        """With a waker or a poll time: wait for data; raise _PollTimeout when the waker
        rang or the poll time passed first. The socket itself stays blocking, so no
        write on it is ever cut short."""
        pending = getattr(self._sock, "pending", None)
        if pending is not None and pending():
            return  # TLS data already decrypted and buffered: no need to wait
        waker = self._waker
        watched = [self._sock] if waker is None else [self._sock, waker]
        timeout = self._poll_time
        try:
            if hasattr(select, "poll"):  # select() fails on descriptors over FD_SETSIZE
                if self._poller is None:
                    self._poller = select.poll()
                    for s in watched:
                        self._poller.register(s, select.POLLIN)
                ready = [fd for fd, _ in self._poller.poll(
                    None if timeout is None else timeout * 1000)]
            else:
                ready = [s.fileno() for s in select.select(watched, [], [], timeout)[0]]
        except (OSError, ValueError) as exc:
            if self._closed.is_set():
                raise WebsocketError(f"the connection to {self.host} was closed") from None
            raise WebsocketError(f"reading from {self.host} failed: {describe(exc)}") from None
        if not ready:
            raise _PollTimeout()
        if waker is not None and waker.fileno() in ready:
            try:
                waker.recv(4096)
            except OSError:
                pass
            if len(ready) == 1:
                raise _PollTimeout()

    def _fill(self) -> None:
        if self._waker is not None or self._poll_time is not None:
            self._wait_readable()
        try:
            n = self._sock.recv_into(self._rbuf)
        except (OSError, ValueError) as exc:
            if self._closed.is_set():
                raise WebsocketError(f"the connection to {self.host} was closed") from None
            raise WebsocketError(
                f"reading from {self.host} failed: {describe(exc)}") from None
        if not n:
            raise WebsocketError(f"{self.host} closed the connection without a close frame")
        self._buf += self._rview[:n]

    def read(self) -> List[Message]:
        """Block until at least one whole message (or a pong) arrived; return every whole
        message buffered (possibly none when only pongs came: see :meth:`take_pongs`).

        Raises WebsocketError when the connection ends (close frame, EOF, error, teardown)
        or the peer breaks the protocol (invalid UTF-8, masked or malformed frames).
        With :meth:`poll_every` set, returns an empty list when that much time passed
        without data.
        """
        if self._ended is not None:
            raise self._ended
        out: List[Message] = []
        while not out and not self.pongs:
            try:
                self._fill()
            except _PollTimeout:
                break
            try:
                self._parse(out)
            except WebsocketError as exc:
                if not out:
                    raise
                self._ended = exc  # deliver what came before the close frame or bad frame
        return out

    def _parse(self, out: List[Message]) -> None:
        buf = self._buf
        pos = 0
        end = len(buf)
        view = memoryview(buf)
        append = out.append
        try:
            while end - pos >= 2:
                b0 = buf[pos]
                b1 = buf[pos + 1]
                length = b1 & 0x7F
                head = 2
                if length == 126:
                    if end - pos < 4:
                        break
                    length = U16.unpack_from(buf, pos + 2)[0]
                    head = 4
                elif length == 127:
                    if end - pos < 10:
                        break
                    length = U64.unpack_from(buf, pos + 2)[0]
                    head = 10
                if length > MAX_MESSAGE:
                    raise WebsocketError(
                        f"{self.host} sent a frame of {length} bytes (limit {MAX_MESSAGE})")
                if end - pos < head + length:
                    break
                start = pos + head
                pos = start + length
                if b0 == 0x81 and b1 < 0x80 and not self._fragments:
                    # the common case: a whole, unmasked text frame; decoding validates in C
                    try:
                        append((str(view[start:pos], "utf-8"), None))
                    except UnicodeDecodeError:
                        raise WebsocketError(f"{self.host} sent a text frame that is not "
                                             "valid UTF-8 (RFC 6455 8.1)") from None
                    continue
                if b1 & 0x80:
                    raise WebsocketError(f"{self.host} sent a masked frame (RFC 6455 5.1)")
                if b0 & 0x70:
                    raise WebsocketError(f"{self.host} sent a frame with reserved bits set")
                self._frame(b0 & 0x80, b0 & 0x0F, bytes(view[start:pos]), out)
        finally:
            view.release()
            del buf[:pos]

    def _frame(self, fin: int, op: int, payload: bytes, out: List[Message]) -> None:
        if op >= 0x8:
            if not fin or len(payload) > 125:
                raise WebsocketError(f"{self.host} sent a malformed control frame")
            if op == OP_PING:
                self._send_control(payload, OP_PONG)
            elif op == OP_CLOSE:
                code = U16.unpack_from(payload)[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                self.close_received = (code, reason)
                if not self.close_sent:
                    self.close_sent = True
                    self._send_control(payload[:2], OP_CLOSE)
                raise WebsocketError(
                    f"{self.host} closed the connection (code {code}"
                    f"{', ' + reason if reason else ''})")
            elif op == OP_PONG:
                self.pongs.append(payload)
            else:
                raise WebsocketError(f"{self.host} sent an unknown control opcode {op}")
            return
        if op == OP_CONT:
            if not self._fragments:
                raise WebsocketError(f"{self.host} sent a continuation frame out of sequence")
            self._fragments.append(payload)
            self._frag_len += len(payload)
            if self._frag_len > MAX_MESSAGE:
                raise WebsocketError(f"{self.host} sent a message over {MAX_MESSAGE} bytes")
            if not fin:
                return
            payload = b"".join(self._fragments)
            op = self._frag_op
            self._fragments = []
            self._frag_len = 0
        elif self._fragments:
            raise WebsocketError(f"{self.host} interleaved a new message with a fragmented one")
        elif not fin:
            if op not in (OP_TEXT, OP_BINARY):
                raise WebsocketError(f"{self.host} sent an unknown opcode {op}")
            self._fragments = [payload]
            self._frag_op = op
            self._frag_len = len(payload)
            return
        if op == OP_TEXT:
            try:
                out.append((payload.decode("utf-8"), None))
            except UnicodeDecodeError:
                raise WebsocketError(
                    f"{self.host} sent a text frame that is not valid UTF-8 (RFC 6455 8.1)"
                ) from None
        elif op == OP_BINARY:
            out.append((None, payload))
        else:
            raise WebsocketError(f"{self.host} sent an unknown opcode {op}")

    def poll_every(self, seconds: Optional[float]) -> None:
        """Make :meth:`read` return (maybe empty-handed) at least every ``seconds``; None:
        block until data again. Reader thread only; writes are not affected."""
        self._poll_time = seconds

    # ------------------------------------------------------------------ teardown
    def abort(self) -> None:
        """Tear the connection down now, without a close handshake; wakes a blocked read.

        Safe from any thread, any number of times.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            # the plain socket's shutdown: SSLSocket's own would drop the TLS object under
            # a thread that may be reading through it
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self) -> None:
        """Close the socket for good; only the reading thread calls this, once done."""
        self.abort()
        try:
            self._sock.close()
        except OSError:
            pass

    def begin_close(self, wait: float = 1.0) -> None:
        """Write a close frame and keep the connection open for reading: what the peer sent
        before answering it is still read, then :meth:`read` raises. Writes fail from now."""
        if self._closed.is_set() or self.close_sent:
            return
        if self._send_lock.acquire(timeout=wait):
            try:
                self.close_sent = True
                if self._flush_held_now():  # else no close frame: the drain times out
                    self._sock.sendall(client_frame(U16.pack(1000), OP_CLOSE))
            except OSError:
                pass
            finally:
                self._send_lock.release()

    @property
    def writable(self) -> bool:
        """Whether data frames may still be written (neither torn down nor closing)."""
        return not (self._closed.is_set() or self.close_sent)

    def close(self, wait: float = 1.0) -> None:
        """Send a close frame (best effort, waiting at most ``wait`` s for a writer to finish,
        never for the answer), then abort."""
        if not self._closed.is_set() and not self.close_sent:
            self.close_sent = True
            self._send_control(U16.pack(1000), OP_CLOSE, wait)
        self.abort()

    @property
    def closed(self) -> bool:
        """Whether :meth:`abort` or :meth:`close` was called."""
        return self._closed.is_set()
