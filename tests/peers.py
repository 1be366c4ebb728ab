"""Raw misbehaving Slack servers on 127.0.0.1, for what FakeSlack cannot be told to do.

:class:`RawSlack` answers the Web API call that hands out a WebSocket URL (any method,
``{"ok": true, "url": ...}``) and accepts WebSocket connections on the same port; what
happens on each connection is the ``behave(conn, n)`` callable given (``n``: the
connection's number, from 1). Every connection's socket is kept, so a test can look at
them, and everything is closed by :meth:`close`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from typing import Any, Callable, List, Optional

from tests.test_reliability_support import json_frame

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawConn:
    """One accepted WebSocket connection (server side)."""

    def __init__(self, sock: socket.socket, n: int) -> None:
        self.sock = sock
        self.n = n
        self.closed = threading.Event()

    def send_json(self, event: Any) -> bool:
        try:
            self.sock.sendall(json_frame(event))
            return True
        except OSError:
            self.closed.set()
            return False


class RawSlack:
    """A Web API answer plus a WebSocket server whose connections do what ``behave`` says.

    ``rcvbuf`` shrinks the receive buffer of accepted connections (a peer that stops
    reading then stops the client's writes sooner)."""

    def __init__(self, behave: Callable[[RawConn], None], *, rcvbuf: int = 0) -> None:
        self.behave = behave
        self.listener = socket.socket()
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api/"
        self.conns: List[RawConn] = []
        self.api_calls = 0
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, name="raw-slack-accept",
                                          daemon=True)
        self._accepter.start()

    def __enter__(self) -> RawSlack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ws_count(self) -> int:
        with self._lock:
            return len(self.conns)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(sock,), name="raw-slack-conn",
                                 daemon=True)
            with self._lock:
                self._threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    sock.close()
                    return
                head += chunk
            text = head.decode("latin-1")
            path = text.split(" ", 2)[1]
            if path.startswith("/api/"):
                with self._lock:
                    self.api_calls += 1
                body = json.dumps({"ok": True, "url": f"ws://127.0.0.1:{self.port}/ws",
                                   "self": {"id": "U1"}, "team": {"id": "T1"}}).encode()
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(body)).encode() +
                             b"\r\nConnection: close\r\n\r\n" + body)
                sock.close()
                return
            key = ""
            for line in text.split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                          "\r\n\r\n").encode())
            with self._lock:
                conn = RawConn(sock, len(self.conns) + 1)
                self.conns.append(conn)
            self.behave(conn)
        except OSError:
            pass

    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self.conns)
            threads = list(self._threads)
        for conn in conns:
            conn.closed.set()
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()
        for t in threads:
            t.join(10)
        self._accepter.join(10)


def keep_sending(server: RawSlack, make: Callable[[int], Any], every: float,
                 hello: Optional[Any] = None) -> Callable[[RawConn], None]:
    """A ``behave`` that says hello, then sends ``make(i)`` every ``every`` seconds and
    never reads a byte (the peer that stopped reading)."""
    def behave(conn: RawConn) -> None:
        conn.send_json(hello if hello is not None else {"type": "hello"})
        i = 0
        while not server.stopping() and not conn.closed.is_set():
            if not conn.send_json(make(i)):
                return
            i += 1
            time.sleep(every)
    return behave
