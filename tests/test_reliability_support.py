"""Tools of the reliability suite (and of ``python -m tests.soak``), with their own tests.

- :func:`open_fds` / :class:`LeakCheck`: descriptors and ``slackrtm-*`` threads before and
  after, waited for with a deadline (sockets are released by other threads).
- :class:`Ledger`: every send made, its future, and the check that each one ended in a
  documented way (never pending).
- :class:`Streams`: which connection each event came over, to check that every event is
  delivered once and in order on each connection.
- :class:`FlakyRelay`: a TCP relay in front of FakeSlack's Web API that resets
  rtm.connect calls midway (a drop *during* rtm.connect).
- :func:`partial_frame`: the first bytes of a text frame (a drop *mid-frame*).
"""

from __future__ import annotations

import gc
import json
import os
import socket
import struct
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from slackrtm import (
    NoReplyReceivedError,
    RTMClient,
    SendMessagePlatformError,
    SendWhileDisconnectedError,
)
from slackrtm.testing import FakeSlack

# --------------------------------------------------------------------------- leaks


def open_fds() -> int:
    """How many file descriptors this process has open (-1 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def slackrtm_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("slackrtm-")]


def settle(cond: Callable[[], bool], timeout: float) -> bool:
    """Wait for ``cond`` with a deadline (for resources released by other threads)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class LeakCheck:
    """Counts descriptors and client threads at :meth:`mark` and checks none are left.

    FakeSlack's own sockets (listener, closed connections being released by its threads)
    come and go, so :meth:`check` waits up to ``timeout`` for the count to come back.
    """

    def __init__(self) -> None:
        self.fds = open_fds()
        self.threads = len(slackrtm_threads())

    def mark(self) -> LeakCheck:
        self.fds = open_fds()
        self.threads = len(slackrtm_threads())
        return self

    def check(self, slack: Optional[FakeSlack] = None, timeout: float = 30.0,
              extra_fds: int = 0) -> None:
        if slack is not None:
            slack.wait_until(lambda: not slack._conns, timeout, "server connections closed")
        ok = settle(lambda: len(slackrtm_threads()) <= self.threads, timeout)
        assert ok, f"client threads left: {slackrtm_threads()}"
        if self.fds < 0:
            return
        # Sockets left to the garbage collector are caught by their own test
        # (test_reliability_leaks.py); here, only sockets nothing will ever close count.
        gc.collect()
        ok = settle(lambda: open_fds() <= self.fds + extra_fds, timeout)
        assert ok, (f"file descriptors leaked: {open_fds()} open, {self.fds} before "
                    f"(+{extra_fds} allowed): {_fd_targets()}")


def _fd_targets() -> List[str]:
    """What each descriptor is; for TCP sockets, their local and remote ports."""
    tcp: Dict[str, str] = {}
    try:
        with open("/proc/self/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                local, remote, inode = parts[1], parts[2], parts[9]
                tcp[inode] = (f"{int(local.split(':')[1], 16)}->"
                              f"{int(remote.split(':')[1], 16)} st={parts[3]}")
    except OSError:
        pass
    try:
        with open("/proc/self/net/unix") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                tcp[parts[6]] = "unix"
    except OSError:
        pass
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            target += " " + tcp.get(target[8:-1], "")
        out.append(f"{fd}->{target}")
    return out


# --------------------------------------------------------------------------- sends

#: The ways a send may legitimately end while connections fail (API.md, "Failures").
SEND_ERRORS = (NoReplyReceivedError, SendMessagePlatformError, SendWhileDisconnectedError)


class Ledger:
    """Every send made by the test, in order, with the state of the client when made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sends: List[Tuple[str, str, Future[Any]]] = []  # (text, state when made, future)

    def send(self, rtm: RTMClient, text: str, channel: str) -> Future[Any]:
        state = rtm.state
        fut = rtm.send_message(text, channel)
        with self._lock:
            self.sends.append((text, state, fut))
        return fut

    def __len__(self) -> int:
        with self._lock:
            return len(self.sends)

    def wait_all(self, timeout: float) -> None:
        """Every future completes within ``timeout`` (none is left pending forever)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            sends = list(self.sends)
        for text, _, fut in sends:
            try:
                fut.exception(max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                raise AssertionError(f"send {text!r} still pending after {timeout} s") from None

    def outcomes(self) -> Counter[str]:
        """Counts by outcome: ``ok`` or the exception's class name."""
        out: Counter[str] = Counter()
        with self._lock:
            for _, _, fut in self.sends:
                err = fut.exception(0)
                out["ok" if err is None else type(err).__name__] += 1
        return out

    def check(self, slack: Optional[FakeSlack] = None, *,
              allow_disconnected: bool = False) -> Counter[str]:
        """Each send ended in a documented way; replies carry the send's own text.

        With ``slack``: no text reached Slack twice (never resent), every answered send
        reached it, and the sends of each thread (texts ``"<tag>-<n>"``) reached it in the
        order they were made.
        """
        with self._lock:
            sends = list(self.sends)
        for text, state, fut in sends:
            assert fut.done(), f"send {text!r} (made while {state}) never completed"
            err = fut.exception(0)
            if err is None:
                reply = fut.result(0)
                assert reply["ok"] is True and reply["text"] == text, (text, reply)
            else:
                assert isinstance(err, SEND_ERRORS), f"send {text!r}: unexpected {err!r}"
                if isinstance(err, SendWhileDisconnectedError):
                    assert allow_disconnected, f"send {text!r} was dropped: {err}"
        if slack is not None:
            texts = [f.get("text") for f in slack.received if f.get("type") == "message"]
            assert len(texts) == len(set(texts)), "a message was written twice"
            arrived = set(texts)
            for text, _, fut in sends:
                if fut.exception(0) is None:
                    assert text in arrived
            # Order is checked connection by connection, oldest first: that is the order
            # the client wrote in. slack.received interleaves connections by the server's
            # read time, and on a loaded machine the server may read the last frames of a
            # dropped connection after the first frames of the next one.
            written = [f.get("text") for conn in slack.all_connections for f in conn.received
                       if f.get("type") == "message"]
            assert sorted(map(str, written)) == sorted(map(str, texts))
            by_tag: Dict[str, List[int]] = {}
            for text in written:
                if isinstance(text, str) and "-" in text:
                    tag, _, n = text.rpartition("-")
                    if n.isdigit():
                        by_tag.setdefault(tag, []).append(int(n))
            for tag, ns in by_tag.items():
                assert ns == sorted(ns), f"sends of {tag} reached Slack out of order"
        return self.outcomes()


class Senders:
    """Threads sending messages throughout; each keeps ``depth`` sends in flight and
    stops after ``limit`` sends (None: when joined)."""

    def __init__(self, rtm: RTMClient, ledger: Ledger, channel: str, n: int = 4,
                 depth: int = 3, limit: Optional[int] = None) -> None:
        self.stop = threading.Event()
        self.limit = limit
        self.threads = [threading.Thread(target=self._run, name=f"sender-{t}",
                                         args=(rtm, ledger, channel, f"t{t}", depth))
                        for t in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, rtm: RTMClient, ledger: Ledger, channel: str, tag: str,
             depth: int) -> None:
        window: List[Any] = []
        i = 0
        while not self.stop.is_set() and (self.limit is None or i < self.limit):
            window.append(ledger.send(rtm, f"{tag}-{i}", channel))
            i += 1
            if len(window) >= depth:
                # wait for the oldest (with a deadline: it may be held for a reconnect)
                try:
                    window.pop(0).exception(timeout=0.2)
                except FutureTimeout:  # not the builtin TimeoutError before Python 3.11
                    pass

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)
            assert not t.is_alive()


# --------------------------------------------------------------------------- events


class Streams:
    """Records ``probe`` events (``{"conn": id, "n": k}``) per connection.

    Each connection gets probes ``n = 0, 1, 2, ...``; the client must deliver a prefix
    of them (a connection may die before the rest arrive), each once, in order, and the
    probes of one connection must not interleave with another's.
    """

    def __init__(self, rtm: RTMClient, event: str = "probe") -> None:
        self._lock = threading.Lock()
        self.seen: List[Tuple[int, int]] = []
        self.sent: Dict[int, int] = {}
        rtm.on(event, self._on)

    def _on(self, event: Dict[str, Any]) -> None:
        with self._lock:
            self.seen.append((event["conn"], event["n"]))

    def inject(self, slack: FakeSlack, count: int = 1) -> int:
        """Send ``count`` probes to each open connection; returns how many were queued."""
        queued = 0
        for conn in slack.connections:
            for _ in range(count):
                with self._lock:
                    n = self.sent.get(conn.id, 0)
                    self.sent[conn.id] = n + 1
                if not slack.inject({"type": "probe", "conn": conn.id, "n": n}, to=conn):
                    break  # closed meanwhile: later probes would not be sent either
                queued += 1
        return queued

    def check(self) -> int:
        """Returns how many probes were delivered."""
        with self._lock:
            seen = list(self.seen)
        order: List[int] = []
        per: Dict[int, List[int]] = {}
        for conn, n in seen:
            if not order or order[-1] != conn:
                assert conn not in per, f"probes of connection {conn} resumed after another's"
                order.append(conn)
            per.setdefault(conn, []).append(n)
        for conn, ns in per.items():
            assert ns == list(range(len(ns))), f"connection {conn}: got {ns[:20]}..."
        return len(seen)


# --------------------------------------------------------------------------- frames


def _header(n: int, first: int = 0x81) -> bytes:
    if n < 126:
        return struct.pack("!BB", first, n)
    if n < 65536:
        return struct.pack("!BBH", first, 126, n)
    return struct.pack("!BBQ", first, 127, n)


def partial_frame(text: str, keep: int) -> bytes:
    """The first ``keep`` bytes of an unmasked text frame carrying ``text`` (header included)."""
    payload = text.encode("utf-8")
    return (_header(len(payload)) + payload)[:keep]


def text_frame(payload: bytes) -> bytes:
    """A whole unmasked text frame with exactly ``payload`` (even invalid UTF-8)."""
    return _header(len(payload)) + payload


def close_frame(code: int = 1001) -> bytes:
    return struct.pack("!BBH", 0x88, 2, code)


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          mask: bool = False, length: Optional[int] = None) -> bytes:
    """Any server frame, including broken ones (``length`` overrides the real length)."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    head = bytearray(_header(n, first))
    if mask:
        head[1] |= 0x80
        return bytes(head) + b"\0\0\0\0" + payload
    return bytes(head) + payload


def json_frame(event: Any) -> bytes:
    return text_frame(json.dumps(event).encode("utf-8"))


# --------------------------------------------------------------------------- relay


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0), shutting down first to wake a thread blocked on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class FlakyRelay:
    """A TCP relay to FakeSlack's Web API that can drop rtm.connect calls midway.

    Point a client's ``slack_api_url`` at :attr:`api_url`; the WebSocket URL that
    rtm.connect returns still points at FakeSlack itself. :meth:`arm` makes the next
    ``times`` rtm.connect / rtm.start requests end in a TCP reset, either right after the
    request arrived (``"request"``) or after half of the answer was forwarded
    (``"response"``).
    """

    def __init__(self, slack: FakeSlack) -> None:
        self._target = (slack.host, slack.port)
        self._lock = threading.Lock()
        self._armed: Deque[str] = deque()
        self._socks: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._closed = False
        self.resets = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def arm(self, how: str = "request", times: int = 1) -> None:
        assert how in ("request", "response")
        with self._lock:
            self._armed.extend([how] * times)

    @property
    def armed(self) -> int:
        with self._lock:
            return len(self._armed)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name="relay", daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]  # (long soaks)
            self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._socks += [client, upstream]
            mode: Dict[str, Any] = {"cut": None, "ends": 0}
            self._spawn(self._pump, self._up, client, upstream, mode)
            self._spawn(self._pump, self._down, upstream, client, mode)

    def _pump(self, fn: Callable[..., None], a: socket.socket, b: socket.socket,
              mode: Dict[str, Any]) -> None:
        try:
            fn(a, b, mode)
        finally:
            with self._lock:
                mode["ends"] += 1
                last = mode["ends"] == 2
                if last:  # both directions done: close both sockets now
                    for sock in (a, b):
                        if sock in self._socks:
                            self._socks.remove(sock)
            if last:
                a.close()
                b.close()

    def _up(self, client: socket.socket, upstream: socket.socket,
            mode: Dict[str, Any]) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if b"/api/rtm." in data:
                    with self._lock:
                        how = self._armed.popleft() if self._armed else None
                    if how == "request":
                        self.resets += 1
                        break  # never forwarded: reset both sides
                    mode["cut"] = how
                upstream.sendall(data)
        except OSError:
            pass
        _reset(client)
        _reset(upstream)

    def _down(self, upstream: socket.socket, client: socket.socket,
              mode: Dict[str, Any]) -> None:
        held = b""
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if mode["cut"] == "response":
                    held += data
                    head, sep, body = held.partition(b"\r\n\r\n")
                    if not sep or not body:
                        continue
                    # the headers and half the body, then FIN (an RST could discard them)
                    client.sendall(head + sep + body[: len(body) // 2])
                    client.shutdown(socket.SHUT_WR)
                    self.resets += 1
                    _reset(upstream)
                    return
                client.sendall(data)
        except OSError:
            pass
        _reset(client)
        _reset(upstream)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            socks = list(self._socks)
            threads = list(self._threads)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for s in socks:
            _reset(s)
        for t in threads:
            t.join(2.0)
        for s in socks:
            s.close()

    def __enter__(self) -> FlakyRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- self-tests


def test_partial_frame_lengths() -> None:
    assert partial_frame("abc", 99) == b"\x81\x03abc"
    assert partial_frame("x" * 200, 5) == b"\x81\x7e\x00\xc8x"
    assert len(partial_frame("x" * 70000, 12)) == 12
    assert text_frame(b"\xff") == b"\x81\x01\xff"
    assert frame(0x1, b"ab", fin=False) == b"\x01\x02ab"
    assert frame(0x9, b"", mask=True) == b"\x89\x80\0\0\0\0"
    assert frame(0x1, rsv=4, length=2**40)[:2] == b"\xc1\x7f"


def test_relay_forwards_and_resets(slack: FakeSlack) -> None:
    import requests

    with FlakyRelay(slack) as relay:
        headers = {"Authorization": f"Bearer {slack.token}"}
        ok = requests.post(relay.api_url + "rtm.connect", headers=headers, timeout=5)
        assert ok.json()["ok"] is True
        for how in ("request", "response"):
            relay.arm(how)
            try:
                requests.post(relay.api_url + "rtm.connect", headers=headers, timeout=5)
            except requests.RequestException:
                pass
            else:
                raise AssertionError(f"an armed {how} reset let the call through")
        # the relay counts a response cut after it sent the half: the client may see it first
        deadline = time.monotonic() + 5
        while relay.resets < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.resets == 2 and relay.armed == 0
