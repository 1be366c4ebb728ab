"""The reader writes a read's acknowledgements itself when the socket takes them at once
(``Transport.send_now``, ``Writer.write_now``); what a full socket leaves is held by the
transport and written before any other byte: by the writer thread, or without blocking
before a control frame (which waits while bytes are held).

Real sockets on 127.0.0.1, plain and TLS (a private CA), with small buffers and a peer
that stops reading, so that the socket fills for real: every frame arrives once, whole
and in order, whichever thread wrote which part of it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import threading
import time
from collections import deque
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import trustme

from slackrtm import SocketModeClient
from slackrtm._engine import transport as transport_module
from slackrtm._engine.context import apply
from slackrtm._engine.core import State
from slackrtm._engine.frames import OP_PONG
from slackrtm._engine.states import Resolve
from slackrtm._engine.transport import Transport
from slackrtm._engine.writer import Bound, Writer
from slackrtm._log import Log
from slackrtm.errors import SendWhileDisconnectedError
from tests.conftest import wait_until
from tests.peers import RawConn, RawSlack
from tests.test_reliability_support import json_frame

_BUF = 16384  # small socket buffers: they fill after a few frames


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class _Ws:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


def _connected(ca: Optional[trustme.CA]) -> Tuple[Transport, socket.socket]:
    """A Transport over a TCP connection on 127.0.0.1 (TLS when ``ca`` is given), with
    small buffers on both ends, and the server's end of it (not reading)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUF)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    ours = socket.socket()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUF)
    ours.connect(listener.getsockname())
    peer, _ = listener.accept()
    listener.close()
    if ca is None:
        return Transport(_Ws(ours), "ws://test"), peer
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    wrapped: List[Any] = []
    t = threading.Thread(target=lambda: wrapped.append(
        server_ctx.wrap_socket(peer, server_side=True)))
    t.start()
    tls = client_ctx.wrap_socket(ours, server_hostname="127.0.0.1")
    t.join(30)
    assert wrapped, "the TLS handshake did not complete"
    return Transport(_Ws(tls), "wss://test"), wrapped[0]


def _whole_frames(buf: bytes) -> Tuple[List[bytes], bytes]:
    """The payloads (unmasked) of the whole client text frames at the start of ``buf``,
    control frames (pong, close) skipped, and the rest of ``buf``."""
    out: List[bytes] = []
    pos = 0
    while len(buf) - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        assert b1 & 0x80 and b0 in (0x81, 0x88, 0x8A), (pos, b0, b1)  # whole, masked
        n, head = b1 & 0x7F, 2
        if n == 126:
            if len(buf) - pos < 4:
                break
            n, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
        elif n == 127:
            if len(buf) - pos < 10:
                break
            n, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
        if len(buf) - pos < head + 4 + n:
            break
        key = buf[pos + head:pos + head + 4]
        start = pos + head + 4
        if b0 == 0x81:
            out.append(bytes(c ^ key[i % 4] for i, c in enumerate(buf[start:start + n])))
        pos = start + n
    return out, buf[pos:]


def _read_all(peer: socket.socket, last: bytes, into: List[bytes]) -> None:
    """Read ``peer``'s text frames (unmasked) into ``into`` until one holds ``last``."""
    peer.settimeout(60)
    buf = b""
    while not (into and last in into[-1]):
        chunk = peer.recv(1 << 16)
        if not chunk:
            return
        frames, buf = _whole_frames(buf + chunk)
        into += frames


def _reading(peer: socket.socket, last: bytes) -> Tuple[threading.Thread, List[bytes]]:
    into: List[bytes] = []
    thread = threading.Thread(target=_read_all, args=(peer, last, into), daemon=True)
    thread.start()
    return thread, into


_BIG = b"%s" % (b"0123456789" * 30000)  # 300 KB: more than both socket buffers hold


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_send_now_holds_what_a_full_socket_leaves_and_writes_it_first(
        tls: bool, ca: trustme.CA) -> None:
    transport, peer = _connected(ca if tls else None)
    try:
        assert transport.send_now([b"first"]) is True  # room: written at once
        assert transport.send_now([_BIG]) is None  # the peer reads nothing: part held
        assert transport._held and transport.holds == 1 and transport.flushed == 0
        # while bytes are held, nothing else goes out without blocking
        assert transport.send_now([b"more"]) is False
        reader, received = _reading(peer, b"the last frame")
        transport.send_text("the last frame")  # blocking: the held rest goes first
        reader.join(60)
        assert not transport._held and transport.flushed == 1
        assert received == [b"first", _BIG, b"the last frame"]  # once each, whole, in order
    finally:
        transport.release()
        peer.close()


def test_send_now_leaves_nothing_held_when_the_socket_takes_it(ca: trustme.CA) -> None:
    for c in (None, ca):
        transport, peer = _connected(c)
        try:
            assert transport.send_now([b'{"envelope_id":"1"}', b'{"envelope_id":"2"}']) is True
            assert not transport._held and transport.holds == 0
            received: List[bytes] = []
            _read_all(peer, b'"2"}', received)
            assert received == [b'{"envelope_id":"1"}', b'{"envelope_id":"2"}']
        finally:
            transport.release()
            peer.close()


def test_send_now_without_msg_dontwait_makes_the_socket_non_blocking_for_one_write(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``send`` takes no MSG_DONTWAIT (Windows), as for TLS; the socket blocks
    again afterwards."""
    monkeypatch.setattr(transport_module, "_DONTWAIT", 0)
    transport, peer = _connected(None)
    try:
        assert transport.send_now([_BIG]) is None
        assert transport._sock.gettimeout() is None  # blocking again
        reader, received = _reading(peer, b"last")
        transport.send_text("last")
        reader.join(60)
        assert received == [_BIG, b"last"]
    finally:
        transport.release()
        peer.close()


def test_send_now_writes_nothing_while_another_write_is_under_way() -> None:
    transport, peer = _connected(None)
    try:
        with transport._send_lock:  # the writer thread is writing
            assert transport.send_now([b"x"]) is False
        transport.abort()
        assert transport.send_now([b"x"]) is False  # closed: the writer reports it
    finally:
        transport.release()
        peer.close()


def _in_thread(call: Any) -> threading.Thread:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(30)
    return thread


def test_control_frames_and_close_never_block_on_held_bytes() -> None:
    """A pong, a close frame, or the close of ``disconnect()`` while held bytes wait on a
    peer that reads nothing: none blocks, none cuts into the held frame."""
    transport, peer = _connected(None)
    try:
        assert transport.send_now([_BIG]) is None
        assert not _in_thread(lambda: transport._send_control(b"1", OP_PONG)).is_alive()
        assert transport._held  # still waiting: no pong went out before it
        reader, received = _reading(peer, b"last")
        transport.send_text("last")
        reader.join(60)
        assert received == [_BIG, b"last"]  # whole: nothing cut into the held frame
        assert transport.send_now([_BIG]) is None  # the peer reads no more
        assert not _in_thread(transport.close).is_alive()
        assert transport.closed
    finally:
        transport.release()
        peer.close()
    transport, peer = _connected(None)
    try:
        assert transport.send_now([_BIG]) is None
        assert not _in_thread(transport.begin_close).is_alive()
        assert transport.close_sent and transport._held  # no close frame before it
        assert transport.send_now([b"x"]) is False
    finally:
        transport.release()
        peer.close()


class _Writer(Writer):
    """The writing half of a run with just what it needs, over real transports."""

    def __init__(self, current: Transport) -> None:
        class _Core:
            state = State.READY

        class _Ctx:
            lock = threading.Lock()
            core = _Core()

        self.ctx = _Ctx()  # type: ignore[assignment]
        self.log = Log()
        self.stop = threading.Event()
        self.stopping = False
        self.transport = current
        self.teardown_reason = None
        self.kick = threading.Event()
        self.wake_writer = threading.Event()
        self.write_lock = threading.Lock()
        self.bound = deque()
        self.bound_frames = 0
        self.bound_room = threading.Event()
        self.json_ping = False


def _writer_pass(writer: _Writer) -> None:
    """What the writer thread's pass does with the bound frames."""
    done: List[Resolve] = []
    with writer.write_lock:
        writer._write_bound(done)
    apply(done)


def _acks(n: int, via: Transport) -> Bound:
    """One Bound of ``n`` acks padded to ~400 bytes each (600: more than the buffers)."""
    return Bound([json.dumps({"envelope_id": f"e{i}", "pad": "p" * 400}) for i in range(n)],
                 via)


def _ids(frames: List[bytes]) -> List[str]:
    return [json.loads(f)["envelope_id"] for f in frames if f.startswith(b'{"envelope_id"')]


def test_acks_begun_on_a_full_socket_are_finished_by_the_writer() -> None:
    transport, peer = _connected(None)
    try:
        writer = _Writer(transport)
        big = _acks(600, transport)
        writer.write_now([big], transport)  # the reader's write: the peer reads nothing
        assert big.held == transport.holds == 1 and not big.settled()
        assert list(writer.bound) == [big] and writer.bound_frames == 600
        assert writer.wake_writer.is_set()  # the writer thread is asked to finish it
        reader, received = _reading(peer, b'"e599"')
        _writer_pass(writer)  # the held rest goes out, and only it: then settled
        reader.join(60)
        assert big.settled() and big._outcome is None and not big.held
        assert _ids(received) == [f"e{i}" for i in range(600)]  # each once, whole, in order
        assert writer.bound_frames == 0
    finally:
        transport.release()
        peer.close()


@contextlib.contextmanager
def _two_connections() -> Iterator[Tuple[Transport, socket.socket, Transport, socket.socket]]:
    """Two plain connections (as :func:`_connected`): the old and the new, say."""
    a, a_peer = _connected(None)
    b, b_peer = _connected(None)
    try:
        yield a, a_peer, b, b_peer
    finally:
        for t, p in ((a, a_peer), (b, b_peer)):
            t.release()
            p.close()


def test_acks_held_by_a_connection_that_ended_go_out_whole_on_the_current_one() -> None:
    with _two_connections() as (old, _, new, new_peer):
        writer = _Writer(new)
        acks = _acks(600, old)
        writer.write_now([acks], old)
        assert acks.held
        old.abort()  # the old connection ends before the rest went out
        reader, received = _reading(new_peer, b'"e599"')
        _writer_pass(writer)
        reader.join(60)
        assert _ids(received) == [f"e{i}" for i in range(600)]  # whole, on the new one
        assert acks.settled() and acks._outcome is None and writer.bound_frames == 0


def test_acks_whose_hold_a_control_frame_flushed_are_not_written_again() -> None:
    """The held rest went out before a pong (the peer read again), then the connection
    began closing: the writer counts the acks as written and writes nothing anew."""
    with _two_connections() as (old, old_peer, new, new_peer):
        writer = _Writer(new)
        acks = _acks(600, old)
        writer.write_now([acks], old)
        assert acks.held
        reader, received = _reading(old_peer, b'"e599"')
        assert wait_until(lambda: old._send_control(b"1", OP_PONG) or old.flushed == 1, 60)
        old.begin_close()  # old takes no more data frames: the writer looks elsewhere
        _writer_pass(writer)
        assert acks.settled() and acks._outcome is None and writer.bound_frames == 0
        reader.join(60)
        assert _ids(received) == [f"e{i}" for i in range(600)]  # once, on the old one
        new_reader, on_new = _reading(new_peer, b"marker")
        new.send_text("marker")
        new_reader.join(60)
        assert on_new == [b"marker"]  # nothing was written again on the new one


def test_stopping_fails_only_the_acks_whose_rest_never_went_out() -> None:
    with _two_connections() as (flushed_t, flushed_peer, stuck_t, _):
        writer = _Writer(flushed_t)
        flushed, stuck = _acks(600, flushed_t), _acks(600, stuck_t)
        writer.write_now([flushed], flushed_t)
        _Writer(stuck_t).write_now([stuck], stuck_t)  # (a second writer: this one queues)
        writer.bound.append(stuck)
        writer.bound_frames += stuck.frames
        assert flushed.held and stuck.held and list(writer.bound) == [flushed, stuck]
        reader, _ = _reading(flushed_peer, b'"e599"')
        assert wait_until(lambda: flushed_t._send_control(b"1", OP_PONG)
                          or flushed_t.flushed == 1, 60)
        with writer.ctx.lock:
            effects = writer._drop_bound("the client stopped")
        apply(effects)
        assert flushed.settled() and flushed._outcome is None  # its rest went out
        assert isinstance(stuck._outcome, SendWhileDisconnectedError)
        assert not writer.bound and writer.bound_frames == 0
        reader.join(60)


def _envelope(i: int) -> Dict[str, Any]:
    return {"envelope_id": f"env-{i}", "type": "events_api", "accepts_response_payload":
            False, "payload": {"event_id": f"Ev{i}", "event": {"type": "noise", "n": i,
                                                                "pad": "x" * 300}}}


def test_every_envelope_is_acked_once_across_a_peer_that_pauses_reading(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that sends in bursts and reads the acks only between them: the client's
    small socket fills, acks are begun by the reader and finished by the writer, and the
    peer reads each one once, in whole frames."""
    outcomes: List[Optional[bool]] = []
    send_now = Transport.send_now

    def recording(self: Transport, payloads: List[bytes]) -> Optional[bool]:
        result = send_now(self, payloads)
        outcomes.append(result)
        return result

    monkeypatch.setattr(Transport, "send_now", recording)
    init = Transport.__init__

    def small(self: Transport, ws: Any, host: str) -> None:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        init(self, ws, host)

    monkeypatch.setattr(Transport, "__init__", small)
    acked: List[str] = []
    sent: List[int] = []
    done = threading.Event()

    def behave(conn: RawConn) -> None:
        conn.send_json({"type": "hello", "num_connections": 1})
        conn.sock.settimeout(60)
        buf = b""
        i = 0
        while not done.is_set():
            burst = b"".join(json_frame(_envelope(j)) for j in range(i, i + 400))
            sent.extend(range(i, i + 400))
            i += 400
            conn.sock.sendall(burst)  # the client reads it all while we do not read
            time.sleep(0.2)
            deadline = time.monotonic() + 60
            while len(acked) < len(sent) and time.monotonic() < deadline:
                buf += conn.sock.recv(65536)
                frames, buf = _whole_frames(buf)
                acked.extend(json.loads(f)["envelope_id"] for f in frames)
            if None in outcomes and len(sent) >= 4000:
                done.set()

    with RawSlack(behave, rcvbuf=4096) as raw:
        client = SocketModeClient("xapp-1-A1-2-abc", slack_api_url=raw.api_url,
                                  client_ping_timeout=30.0, server_pong_timeout=20.0)
        handled: List[int] = []
        client.on("noise", lambda e: handled.append(e["n"]))
        try:
            client.start().result(timeout=30)
            assert wait_until(done.is_set, 120), \
                f"no ack was begun and held ({len(sent)} sent, outcomes {set(outcomes)})"
            assert wait_until(lambda: len(handled) >= len(sent), 60)
        finally:
            client.disconnect()
    assert sorted(acked, key=lambda e: int(e[4:])) == [f"env-{i}" for i in sent]
    assert len(set(acked)) == len(acked)
    assert handled == sent
