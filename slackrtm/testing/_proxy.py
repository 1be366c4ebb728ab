"""FakeProxy: an HTTP proxy on loopback (CONNECT tunnels and absolute-URI forwarding)."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, List, Optional, Tuple, cast
from urllib.parse import quote, urlsplit

from slackrtm.testing._net import ThreadedServer, url_host, wait_readable

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-authenticate",
               "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
               "content-length"}


class FakeProxy:
    """An HTTP proxy on 127.0.0.1 for testing clients' proxy support.

    Tunnels ``CONNECT host:port`` (what websocket-client uses for ws and wss, and requests
    for https) and forwards absolute-URI requests (``POST http://host:port/path``, what
    requests sends for http:// targets). With ``auth=("user", "pass")`` every request needs
    ``Proxy-Authorization: Basic ...``, else it is answered 407. Every request is recorded in
    :attr:`requests` as ``(method, target)``, e.g. ``("CONNECT", "127.0.0.1:5555")``.
    """

    def __init__(self, auth: Optional[Tuple[str, str]] = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.auth = auth
        self._expected = None if auth is None else "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        self._cond = threading.Condition()
        self._requests: List[Tuple[str, str]] = []
        self._rejected: List[Tuple[str, str]] = []
        self._server = ThreadedServer(host, port, self._handle, name="fakeslack-proxy")

    def _handle(self, sock: socket.socket, addr: Any) -> None:
        _ProxyHandler(sock, addr, self)

    @property
    def host(self) -> str:
        """The loopback address the proxy listens on."""
        return self._server.host

    @property
    def port(self) -> int:
        """The proxy's TCP port."""
        return self._server.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (without credentials)."""
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def url_with_auth(self) -> str:
        """``http://user:pass@127.0.0.1:PORT`` (just :attr:`url` without ``auth``)."""
        if self.auth is None:
            return self.url
        user, password = (quote(part, safe="") for part in self.auth)
        return f"http://{user}:{password}@{url_host(self.host)}:{self.port}"

    @property
    def requests(self) -> List[Tuple[str, str]]:
        """Every request received, as ``(method, target)``, in order (407s included)."""
        with self._cond:
            return list(self._requests)

    @property
    def rejected(self) -> List[Tuple[str, str]]:
        """The requests answered 407 (missing or wrong credentials)."""
        with self._cond:
            return list(self._rejected)

    def wait_for_requests(self, n: int = 1, timeout: float = 30.0) -> List[Tuple[str, str]]:
        """Wait until at least ``n`` requests arrived; returns them. ``TimeoutError`` if not."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"FakeProxy: timed out after {timeout:g}s waiting for "
                                       f"{n} request(s); got {self._requests}")
                self._cond.wait(remaining)
            return list(self._requests)

    def _record(self, method: str, target: str, authorization: Optional[str]) -> bool:
        ok = self._expected is None or authorization == self._expected
        with self._cond:
            self._requests.append((method, target))
            if not ok:
                self._rejected.append((method, target))
            self._cond.notify_all()
        return ok

    def close(self, timeout: float = 3.0) -> None:
        """Close every tunnel and connection and join every thread (idempotent)."""
        self._server.close(timeout)

    def __enter__(self) -> FakeProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeProxy {self.url} auth={'yes' if self.auth else 'no'}>"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeProxy"
    sys_version = ""

    def __init__(self, sock: socket.socket, addr: Tuple[Any, ...], proxy: FakeProxy) -> None:
        self.proxy = proxy
        super().__init__(sock, addr, cast(Any, None))

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def _authorized(self) -> bool:
        if self.proxy._record(self.command, self.path, self.headers.get("Proxy-Authorization")):
            return True
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="FakeProxy"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.close_connection = True
        return False

    def _error(self, status: int, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_CONNECT(self) -> None:
        """Open a tunnel to ``host:port`` and relay bytes both ways until either side ends."""
        if not self._authorized():
            return
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except (OSError, ValueError) as exc:
            self._error(502, f"cannot reach {self.path}: {exc}")
            return
        server = self.proxy._server
        if not server.track(upstream):
            upstream.close()
            return
        try:
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.send_response(200, "Connection established")
            self.end_headers()
            self.close_connection = True
            _relay(self.connection, upstream)
        finally:
            server.release(upstream)

    def _forward(self) -> None:
        if not self._authorized():
            return
        parts = urlsplit(self.path)
        if parts.scheme != "http" or not parts.hostname:
            self._error(400, "FakeProxy forwards absolute http:// URIs only")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else None
        headers: Dict[str, str] = {k: v for k, v in self.headers.items()
                                   if k.lower() not in _HOP_BY_HOP}
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        server = self.proxy._server
        try:
            conn.connect()
            if conn.sock is None or not server.track(conn.sock):
                return
            conn.request(self.command, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            self._error(502, f"cannot reach {parts.netloc}: {exc}")
            return
        finally:
            if conn.sock is not None:
                server.release(conn.sock)
            conn.close()
        self.send_response(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways; a FIN from one side is passed on (half-close) to the other."""
    peer = {client: upstream, upstream: client}
    reading = [client, upstream]
    while reading:
        try:
            ready = wait_readable(reading)
        except ValueError:
            return
        for sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            other = peer[sock]
            if not data:
                reading.remove(sock)
                try:
                    other.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            try:
                other.sendall(data)
            except OSError:
                return
