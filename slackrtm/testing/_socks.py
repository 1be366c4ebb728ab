"""FakeSocksProxy: a SOCKS5 proxy on loopback (RFC 1928 CONNECT, RFC 1929 user/password)."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from typing import Any, List, NamedTuple, Optional, Tuple
from urllib.parse import quote

from slackrtm.testing._net import ThreadedServer, url_host
from slackrtm.testing._proxy import _relay

_VERSION = 5
_NO_AUTH, _USER_PASS, _NO_METHOD = 0x00, 0x02, 0xFF
_CONNECT = 0x01
_IPV4, _DOMAIN, _IPV6 = 0x01, 0x03, 0x04
_SUCCEEDED, _FAILURE, _NOT_ALLOWED, _REFUSED, _BAD_COMMAND, _BAD_ADDRESS = 0, 1, 2, 5, 7, 8


class SocksRequest(NamedTuple):
    """One SOCKS request: the target as the client named it."""

    command: str
    """``"CONNECT"`` (the only command served; others are recorded and refused)."""
    host: str
    """The target host: an IP address, or a name when the client let the proxy resolve it."""
    port: int
    by_name: bool
    """True when the client sent a host name (``socks5h://``), False for an address."""


class FakeSocksProxy:
    """A SOCKS5 proxy on 127.0.0.1 for testing clients' SOCKS support.

    Serves ``CONNECT`` to IPv4, IPv6 and host-name targets (host names are resolved here, as
    ``socks5h://`` asks; only loopback targets are connected). With ``auth=("user", "pass")``
    clients must authenticate with RFC 1929 user/password; others are refused. Every request
    is recorded in :attr:`requests`; failed authentications count in :attr:`rejected`.
    """

    def __init__(self, auth: Optional[Tuple[str, str]] = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.auth = auth
        self._cond = threading.Condition()
        self._requests: List[SocksRequest] = []
        self._rejected = 0
        self._server = ThreadedServer(host, port, self._handle, name="fakeslack-socks")

    @property
    def host(self) -> str:
        """The loopback address the proxy listens on."""
        return self._server.host

    @property
    def port(self) -> int:
        """The proxy's TCP port."""
        return self._server.port

    def url(self, scheme: str = "socks5h", *, with_auth: bool = False) -> str:
        """``socks5h://127.0.0.1:PORT`` (or ``socks5://``), with the credentials if asked."""
        creds = ""
        if with_auth and self.auth is not None:
            creds = "{}:{}@".format(*(quote(part, safe="") for part in self.auth))
        return f"{scheme}://{creds}{url_host(self.host)}:{self.port}"

    @property
    def requests(self) -> List[SocksRequest]:
        """Every request received, in order."""
        with self._cond:
            return list(self._requests)

    @property
    def rejected(self) -> int:
        """How many clients failed to authenticate."""
        with self._cond:
            return self._rejected

    def wait_for_requests(self, n: int = 1, timeout: float = 5.0) -> List[SocksRequest]:
        """Wait until at least ``n`` requests arrived; returns them. ``TimeoutError`` if not."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"FakeSocksProxy: timed out after {timeout:g}s waiting "
                                       f"for {n} request(s); got {self._requests}")
                self._cond.wait(remaining)
            return list(self._requests)

    def close(self, timeout: float = 3.0) -> None:
        """Close every tunnel and connection and join every thread (idempotent)."""
        self._server.close(timeout)

    def __enter__(self) -> FakeSocksProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeSocksProxy {self.url()} auth={'yes' if self.auth else 'no'}>"

    # ------------------------------------------------------------------ one client

    def _handle(self, sock: socket.socket, addr: Any) -> None:
        try:
            if not self._greet(sock):
                return
            request = self._read_request(sock)
            if request is None:
                return
            with self._cond:
                self._requests.append(request)
                self._cond.notify_all()
            if request.command != "CONNECT":
                self._reply(sock, _BAD_COMMAND)
                return
            upstream = self._connect(request)
            if upstream is None:
                self._reply(sock, _REFUSED)
                return
            if not self._server.track(upstream):  # closing: close() shuts tracked sockets
                upstream.close()
                return
            try:
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._reply(sock, _SUCCEEDED, upstream.getsockname())
                _relay(sock, upstream)
            finally:
                self._server.release(upstream)
        except (OSError, ValueError, struct.error):
            return

    def _greet(self, sock: socket.socket) -> bool:
        version, count = _read(sock, 2)
        if version != _VERSION:
            return False
        methods = set(_read(sock, count))
        wanted = _NO_AUTH if self.auth is None else _USER_PASS
        if wanted not in methods:
            sock.sendall(bytes((_VERSION, _NO_METHOD)))
            return False
        sock.sendall(bytes((_VERSION, wanted)))
        if self.auth is None:
            return True
        _, ulen = _read(sock, 2)
        user = _read(sock, ulen).decode("utf-8", "replace")
        (plen,) = _read(sock, 1)
        password = _read(sock, plen).decode("utf-8", "replace")
        ok = (user, password) == self.auth
        sock.sendall(bytes((1, 0 if ok else 1)))
        if not ok:
            with self._cond:
                self._rejected += 1
                self._cond.notify_all()
        return ok

    def _read_request(self, sock: socket.socket) -> Optional[SocksRequest]:
        version, command, _, atyp = _read(sock, 4)
        if version != _VERSION:
            return None
        if atyp == _IPV4:
            host, by_name = socket.inet_ntop(socket.AF_INET, _read(sock, 4)), False
        elif atyp == _IPV6:
            host, by_name = socket.inet_ntop(socket.AF_INET6, _read(sock, 16)), False
        elif atyp == _DOMAIN:
            (length,) = _read(sock, 1)
            host, by_name = _read(sock, length).decode("idna"), True
        else:
            self._reply(sock, _BAD_ADDRESS)
            return None
        (port,) = struct.unpack("!H", _read(sock, 2))
        name = "CONNECT" if command == _CONNECT else f"command-{command}"
        return SocksRequest(name, host, port, by_name)

    @staticmethod
    def _connect(request: SocksRequest) -> Optional[socket.socket]:
        try:
            infos = socket.getaddrinfo(request.host, request.port, type=socket.SOCK_STREAM)
        except OSError:
            return None
        for family, kind, proto, _, address in infos:
            if not ipaddress.ip_address(address[0]).is_loopback:
                continue  # a test proxy never leaves the machine
            upstream = socket.socket(family, kind, proto)
            try:
                upstream.settimeout(10)
                upstream.connect(address)
                upstream.settimeout(None)
                return upstream
            except OSError:
                upstream.close()
        return None

    @staticmethod
    def _reply(sock: socket.socket, code: int,
               bound: Tuple[Any, ...] = ("0.0.0.0", 0)) -> None:
        try:
            packed = socket.inet_pton(socket.AF_INET, bound[0])
            atyp = _IPV4
        except OSError:
            packed = socket.inet_pton(socket.AF_INET6, bound[0])
            atyp = _IPV6
        sock.sendall(bytes((_VERSION, code, 0, atyp)) + packed + struct.pack("!H", bound[1]))


def _read(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes, or ValueError when the client goes away first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("SOCKS client went away")
        data += chunk
    return data
