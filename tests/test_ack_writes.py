"""The reader writes a read's acknowledgements itself when the socket takes them at once
(``Transport.send_now``, ``Writer.write_now``); what a full socket leaves is held by the
transport and written before any other byte, by the writer thread.

Real sockets on 127.0.0.1, plain and TLS (a private CA), with small buffers and a peer
that stops reading, so that the socket fills for real: every frame arrives once, whole
and in order, whichever thread wrote which part of it.
"""

from __future__ import annotations

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
from slackrtm._engine.context import apply
from slackrtm._engine.core import State
from slackrtm._engine.states import Resolve
from slackrtm._engine.transport import Transport
from slackrtm._engine.writer import Bound, Writer
from slackrtm._log import Log
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


def _client_frames(data: bytes) -> Iterator[bytes]:
    """Unmask the client frames of ``data`` (whole text frames, as a server reads them)."""
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 == 0x81 and b1 & 0x80, (pos, b0, b1)
        n, head = b1 & 0x7F, 2
        if n == 126:
            n, head = struct.unpack_from("!H", data, pos + 2)[0], 4
        elif n == 127:
            n, head = struct.unpack_from("!Q", data, pos + 2)[0], 10
        key = data[pos + head:pos + head + 4]
        start = pos + head + 4
        assert start + n <= len(data), "a frame was cut"
        masked = data[start:start + n]
        yield bytes(c ^ key[i % 4] for i, c in enumerate(masked))
        pos = start + n


def _read_all(peer: socket.socket, last: bytes, into: List[bytes]) -> None:
    """Read ``peer``'s frames (unmasked) into ``into`` until one holds ``last``."""
    peer.settimeout(60)
    buf = b""
    while not (into and last in into[-1]):
        chunk = peer.recv(1 << 16)
        if not chunk:
            return
        frames, buf = _whole_frames(buf + chunk)
        into += frames


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_send_now_holds_what_a_full_socket_leaves_and_writes_it_first(
        tls: bool, ca: trustme.CA) -> None:
    transport, peer = _connected(ca if tls else None)
    try:
        sent: List[bytes] = []
        outcome: Optional[bool] = True
        deadline = time.monotonic() + 60
        i = 0
        while outcome and time.monotonic() < deadline:  # fill the socket: the peer reads nothing
            payload = (b"%06d" % i) * 5000  # 30 KB frames: one does not fit in the buffers
            i += 1
            outcome = transport.send_now([payload])
            if outcome is not False:
                sent.append(payload)
        assert outcome is None, "the full socket took every frame, or none of the last"
        assert transport._held, "nothing held after a write the socket took only in part"
        # while bytes are held, nothing else goes out without blocking
        assert transport.send_now([b"more"]) is False
        received: List[bytes] = []
        reader = threading.Thread(target=_read_all, args=(peer, b"the last frame", received))
        reader.start()
        transport.send_text("the last frame")  # blocking: the held rest goes first
        reader.join(60)
        assert not transport._held
        assert received == [*sent, b"the last frame"]  # each once, whole, in order
    finally:
        transport.release()
        peer.close()


def test_send_now_leaves_nothing_held_when_the_socket_takes_it(ca: trustme.CA) -> None:
    for c in (None, ca):
        transport, peer = _connected(c)
        try:
            assert transport.send_now([b'{"envelope_id":"1"}', b'{"envelope_id":"2"}']) is True
            assert not transport._held
            received: List[bytes] = []
            _read_all(peer, b'"2"}', received)
            assert received == [
                b'{"envelope_id":"1"}', b'{"envelope_id":"2"}']
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


def _fill(transport: Transport) -> None:
    """Write until the socket takes a write only in part (the peer reads nothing)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if transport.send_now([b"f" * 30000]) is None:
            return
    raise AssertionError("the socket never filled")


def test_acks_begun_on_a_full_socket_are_finished_by_the_writer() -> None:
    transport, peer = _connected(None)
    try:
        writer = _Writer(transport)
        texts = [json.dumps({"envelope_id": f"e{i}", "pad": "p" * 400}) for i in range(600)]
        big = Bound(texts, transport)  # ~250 KB: more than both socket buffers hold
        writer.write_now([big], transport)  # the reader's write: the peer reads nothing
        assert big.held and not big.settled(), "the socket took it all, or none of it"
        assert list(writer.bound) == [big] and writer.bound_frames == 600
        assert writer.wake_writer.is_set()  # the writer thread is asked to finish it
        received: List[bytes] = []
        peer_reads = threading.Thread(target=_read_all, args=(peer, b'"e599"', received))
        peer_reads.start()
        _writer_pass(writer)  # the held rest goes out, and only it: then settled
        peer_reads.join(60)
        assert big.settled() and big._outcome is None and not big.held
        assert [json.loads(f)["envelope_id"] for f in received] == \
            [f"e{i}" for i in range(600)]  # each once, whole, in order
        assert writer.bound_frames == 0
    finally:
        transport.release()
        peer.close()


def test_acks_held_by_a_connection_that_closed_go_out_on_the_current_one() -> None:
    old, old_peer = _connected(None)
    new, new_peer = _connected(None)
    try:
        writer = _Writer(new)
        _fill(old)
        acks = Bound([f'{{"envelope_id":"e{i}"}}' for i in range(5)], old)
        acks.held = True  # their start went out on ``old``, which holds the rest
        writer.bound.append(acks)
        writer.bound_frames = 5
        old.abort()  # the old connection ends before the rest went out
        received: List[bytes] = []
        reading = threading.Thread(target=_read_all, args=(new_peer, b'"e4"}', received))
        reading.start()
        _writer_pass(writer)
        reading.join(60)
        assert [f.decode() for f in received] == \
            [f'{{"envelope_id":"e{i}"}}' for i in range(5)]  # whole, on the new one
        assert acks.settled() and not acks.held and writer.bound_frames == 0
    finally:
        for t, p in ((old, old_peer), (new, new_peer)):
            t.release()
            p.close()


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


def _whole_frames(buf: bytes) -> Tuple[List[bytes], bytes]:
    """The whole client frames at the start of ``buf`` (unmasked), and the rest."""
    out: List[bytes] = []
    pos = 0
    while len(buf) - pos >= 2:
        n, head = buf[pos + 1] & 0x7F, 2
        if n == 126:
            if len(buf) - pos < 4:
                break
            n, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
        if len(buf) - pos < head + 4 + n:
            break
        out += _client_frames(buf[pos:pos + head + 4 + n])
        pos += head + 4 + n
    return out, buf[pos:]
