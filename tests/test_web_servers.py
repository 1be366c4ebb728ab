"""Small loopback servers for the WebClient tests (no tests here).

* RecordingServer: an HTTP/1.1 server that records every request and answers through a
  settable responder; it also acts as a proxy (absolute-URI requests are recorded like any
  other, CONNECT is tunnelled to 127.0.0.1 only), optionally over TLS.
* HangingServer: accepts connections, reads requests, answers the first ``answers`` of
  them and then never answers again (or, ``silent``, never reads at all).
"""

from __future__ import annotations

import json
import selectors
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

WAIT = 5.0  # the longest any test waits for a server-side event


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[Seen], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = WAIT
    server: RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(self.command, self.path, dict(self.headers.items()),
                    self.rfile.read(length) if length else b"")
        with self.server.lock:
            self.server.seen.append(seen)
        reply = self.server.responder(seen)
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.served.set()

    do_POST = do_GET = _serve

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        with self.server.lock:
            self.server.seen.append(Seen("CONNECT", self.path, dict(self.headers.items()), b""))
        if host != "127.0.0.1":
            self.send_error(403)
            return
        upstream = socket.create_connection((host, int(port)), timeout=WAIT)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        _pipe(self.connection, upstream)
        self.close_connection = True


def _pipe(a: socket.socket, b: socket.socket) -> None:
    with selectors.DefaultSelector() as sel, b:
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        while True:
            events = sel.select(WAIT)
            if not events:
                return
            for key, _ in events:
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
                except OSError:
                    return


class RecordingServer(ThreadingHTTPServer):
    """Records requests in ``seen``; ``responder`` decides each reply (default ``ok: true``)."""

    daemon_threads = True

    def __init__(self, tls: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.lock = threading.Lock()
        self.seen: list[Seen] = []
        self.served = threading.Event()
        self.responder: Responder = lambda seen: Reply()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-recording-server")

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/api/"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self._conns.append(request)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:  # handshake here, on the handler's thread
            request.settimeout(WAIT)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            with self.lock:
                self._conns.append(request)
        super().finish_request(request, client_address)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        with self.lock:
            for conn in self._conns:  # wake handlers waiting on kept-alive connections
                try:
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)
                except OSError:
                    pass
        self.server_close()  # joins the handler threads
        self._thread.join(WAIT)


class HangingServer:
    """Answers the first ``answers`` requests (each connection keeps alive), then hangs.

    ``hung`` is set when a request arrives that will never be answered; ``accepted``
    when a connection is accepted. ``silent=True`` never reads anything (for a TLS client
    that means a handshake that never ends).
    """

    def __init__(self, answers: int = 0, silent: bool = False) -> None:
        self.answers = answers
        self.silent = silent
        self.accepted = threading.Event()
        self.hung = threading.Event()
        self.connections = 0
        self.heads: list[bytes] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._conns: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, name="test-hanging-server")]

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
                thread = threading.Thread(target=self._serve, args=(conn,))
                self._threads.append(thread)
            self.accepted.set()
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        if self.silent:
            self._stop.wait(WAIT * 2)
            return
        buffer = b""
        conn.settimeout(WAIT * 2)
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                buffer = buffer[length:]
                with self._lock:
                    self.heads.append(head)
                    answer = self.answers > 0
                    self.answers -= 1
                if not answer:
                    self.hung.set()
                    self._stop.wait(WAIT * 2)
                    return
                body = b'{"ok": true}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            return

    def __enter__(self) -> HangingServer:
        self._threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._threads[0].join(WAIT)
        self._listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads[1:])
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        for thread in threads:
            thread.join(WAIT)


class CallInThread:
    """Runs ``fn`` on a thread; ``done_at``/``error``/``result`` tell how it ended."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done_at = 0.0
        self._fn = fn
        self.thread = threading.Thread(target=self._run, name="test-call", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import time

        try:
            self.result = self._fn()
        except BaseException as exc:
            self.error = exc
        self.done_at = time.monotonic()

    def join(self) -> None:
        self.thread.join(WAIT * 2)
        assert not self.thread.is_alive(), "the call did not end"


def refused_port() -> socket.socket:
    """A bound, non-listening socket: connecting to its port is refused. Close it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock
