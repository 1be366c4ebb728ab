"""A small threaded TCP server on loopback that knows every thread and socket it started.

``socketserver`` polls for shutdown every half second and does not join daemon threads;
this one blocks in ``select`` on the listener and a wake-up pipe, runs each connection on
a named daemon thread, and on :meth:`ThreadedServer.close` shuts every socket down (which
wakes any thread blocked on it) and joins every thread within a deadline.
"""

from __future__ import annotations

import ipaddress
import itertools
import select
import socket
import ssl
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

Handler = Callable[[socket.socket, Tuple[Any, ...]], None]

#: Exceptions that mean "the peer went away or the server is closing", not a bug.
NET_ERRORS = (OSError, ssl.SSLError, EOFError)


def check_loopback(host: str) -> None:
    """Refuse to listen anywhere but on loopback: FakeSlack is never a public server."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"FakeSlack listens on loopback only, not on {host!r}")


def url_host(host: str) -> str:
    """``host`` as written in a URL (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host else host


def shutdown_fd(fd: int, how: int = socket.SHUT_RDWR) -> None:
    """``shutdown(2)`` the socket behind ``fd`` without owning or closing it.

    Safe while another thread reads or writes it (even through TLS): that thread's call
    returns at once with EOF or an error. Errors (already closed, not connected) are ignored.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(how)
    except OSError:
        pass
    finally:
        sock.detach()


def wait_readable(socks: Sequence[socket.socket],
                  timeout: Optional[float] = None) -> List[socket.socket]:
    """The sockets of ``socks`` that are readable (or closed, or failed).

    Uses ``poll`` where there is one: ``select`` fails on descriptors above 1023, which a
    big test suite reaches. Raises ``ValueError`` for a closed socket, like ``select``.
    """
    if not hasattr(select, "poll"):
        return list(select.select(socks, [], [], timeout)[0])
    poller = select.poll()
    by_fd: Dict[int, socket.socket] = {}
    for sock in socks:
        fd = sock.fileno()
        if fd < 0:
            raise ValueError("socket is closed")
        by_fd[fd] = sock
        poller.register(fd, select.POLLIN | select.POLLPRI)
    events = poller.poll(None if timeout is None else max(0.0, timeout) * 1000)
    return [by_fd[fd] for fd, _ in events]


class ThreadedServer:
    """Listens on ``host:port`` and runs ``handler(sock, address)`` on a thread per connection.

    With ``ssl_context`` (a server-side context) each connection is wrapped in TLS on its own
    thread before the handler sees it, so a client that never finishes its handshake cannot
    stall the accept loop.
    """

    def __init__(self, host: str, port: int, handler: Handler, *, name: str,
                 ssl_context: Optional[ssl.SSLContext] = None) -> None:
        check_loopback(host)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((host, port))
            self._listener.listen(128)
        except OSError:
            self._listener.close()
            raise
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self.name = name
        self._handler = handler
        self._ssl = ssl_context
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._threads: Set[threading.Thread] = set()
        self._fds: Set[int] = set()
        self._closing = False
        self._ids = itertools.count(1)
        #: Unexpected exceptions raised by handlers (bugs, not network errors).
        self.errors: List[BaseException] = []
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{name}-accept", daemon=True)
        self._accept_thread.start()

    @property
    def closing(self) -> bool:
        """True once :meth:`close` has begun."""
        return self._closing

    def spawn(self, target: Callable[..., None], *args: Any,
              name: str) -> Optional[threading.Thread]:
        """Start a tracked daemon thread named ``{server name}-{name}``; None once closing."""

        def run() -> None:
            try:
                target(*args)
            except NET_ERRORS:
                pass
            except BaseException as exc:  # a bug: keep it for the tests to see
                self.errors.append(exc)

        thread = threading.Thread(target=run, name=f"{self.name}-{name}", daemon=True)
        with self._lock:
            if self._closing:
                return None
            # Finished threads are kept until they are really gone, so close() can join them.
            self._threads = {t for t in self._threads if t.is_alive()}
            self._threads.add(thread)
            thread.start()
        return thread

    def track(self, sock: socket.socket) -> bool:
        """Remember ``sock`` so :meth:`close` can shut it down; False (and nothing) if closing."""
        with self._lock:
            if self._closing:
                return False
            self._fds.add(sock.fileno())
            return True

    def release(self, sock: socket.socket, *, linger_reset: bool = False) -> None:
        """Forget and close ``sock`` (with ``linger_reset``: abort it, sending RST)."""
        with self._lock:
            self._fds.discard(sock.fileno())
        try:
            if linger_reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

    def shutdown(self, sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
        """Shut ``sock`` down from any thread, if its owner has not released it yet."""
        with self._lock:
            fd = sock.fileno()
            if fd in self._fds:
                shutdown_fd(fd, how)

    def _accept_loop(self) -> None:
        while True:
            try:
                ready = wait_readable([self._listener, self._wake_r])
            except (OSError, ValueError):
                return
            if self._wake_r in ready or self._closing:
                return
            try:
                conn, addr = self._listener.accept()
            except OSError:
                continue
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if not self.track(conn):
                conn.close()
                return
            if self.spawn(self._serve, conn, addr, name=f"conn-{next(self._ids)}") is None:
                self.release(conn)

    def _serve(self, conn: socket.socket, addr: Tuple[Any, ...]) -> None:
        sock = conn
        try:
            if self._ssl is not None:
                conn.settimeout(10.0)
                # The TLS socket takes over the same file descriptor, so tracking holds.
                sock = self._ssl.wrap_socket(conn, server_side=True)
                sock.settimeout(None)
            self._handler(sock, addr)
        finally:
            self.release(sock)

    def close(self, timeout: float = 3.0) -> None:
        """Stop accepting, shut every connection down and join every thread (idempotent)."""
        with self._lock:
            already = self._closing
            self._closing = True
            fds = list(self._fds)
        if not already:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass
        for fd in fds:
            with self._lock:
                if fd in self._fds:
                    shutdown_fd(fd)
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        if self._accept_thread is not me:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        while True:
            with self._lock:
                pending = [t for t in self._threads if t is not me and t.is_alive()]
                fds = list(self._fds)
            if not pending:
                break
            for fd in fds:  # sockets a handler opened after the first sweep
                with self._lock:
                    if fd in self._fds:
                        shutdown_fd(fd)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            pending[0].join(min(remaining, 0.05))
        if not already:
            for s in (self._listener, self._wake_r, self._wake_w):
                try:
                    s.close()
                except OSError:
                    pass

    def threads(self) -> List[threading.Thread]:
        """The threads currently running for this server (accept thread included)."""
        with self._lock:
            out = [t for t in self._threads if t.is_alive()]
        if self._accept_thread.is_alive():
            out.append(self._accept_thread)
        return out
