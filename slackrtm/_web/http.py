"""requests plumbing for the WebClient: a caller's SSLContext, a forced proxy, abortable calls.

Three things requests does not do by itself:

* use a caller's :class:`ssl.SSLContext` as is, for direct connections and for tunnels
  through a proxy, without loading its own CA bundle into it (requests sets ``ca_certs``
  on the pool and urllib3 then calls ``load_verify_locations`` on the caller's context);
* send every request through an explicit proxy (HTTP or SOCKS), loopback included,
  whatever ``NO_PROXY`` says;
* interrupt a request from another thread: :func:`abort_scope` registers every socket a
  thread uses inside the scope, and :meth:`AbortHandle.abort` shuts them down.

Works with urllib3 1.26 and 2.x.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, cast

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from slackrtm._web.netconfig import ProxyConfig, parse_proxy

# The proxy's parsing is shared with the WebSocket leg: see netconfig.
__all__ = ["AbortHandle", "ProxyConfig", "SlackAdapter", "abort_scope", "current_scope",
           "parse_proxy"]


# --- abortable requests ---------------------------------------------------------------------

_local = threading.local()


class AbortHandle:
    """Interrupts the HTTP requests made inside one :func:`abort_scope`.

    :meth:`abort` may be called from any thread, before, during or after a request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._socks: list[socket.socket] = []

    @property
    def aborted(self) -> bool:
        """Whether :meth:`abort` was called."""
        return self._event.is_set()

    def abort(self) -> None:
        """Shut down every socket in use in the scope now; later requests in it fail at once."""
        with self._lock:
            self._event.set()
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True (at once) when aborted."""
        return self._event.wait(max(0.0, timeout))

    def _track(self, sock: socket.socket | None) -> None:
        """Keep a duplicate descriptor of ``sock``: shutting it down wakes any reader.

        A duplicate, because TLS wrapping detaches the original socket object (its
        descriptor becomes -1) while the handshake, which must stay abortable, runs.
        """
        if sock is None:
            return
        try:
            dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except (OSError, ValueError):
            return  # already closed: nothing to interrupt
        with self._lock:
            if not self._event.is_set():
                self._socks.append(dup)
                return
        _shutdown(dup)
        dup.close()

    def _release(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def current_scope() -> AbortHandle | None:
    """The abort scope active on this thread, if any."""
    handle: AbortHandle | None = getattr(_local, "scope", None)
    return handle


@contextmanager
def abort_scope() -> Iterator[AbortHandle]:
    """Make the HTTP requests of this thread abortable until the block ends."""
    handle = AbortHandle()
    previous = current_scope()
    _local.scope = handle
    try:
        yield handle
    finally:
        _local.scope = previous
        handle._release()


def _connect(conn: Any, scope: AbortHandle) -> socket.socket:
    """urllib3's create_connection, each socket registered in ``scope`` before connecting.

    So abort() interrupts a connect in progress too (shutdown wakes it on Linux).
    """
    if scope.aborted:
        raise NewConnectionError(conn, "Failed to establish a new connection: aborted")
    host = str(getattr(conn, "_dns_host", conn.host)).strip("[]")
    timeout = conn.timeout
    try:
        infos = socket.getaddrinfo(host, conn.port, allowed_gai_family(), socket.SOCK_STREAM)
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to resolve {host!r} ({exc})") from exc
    error: OSError = OSError("getaddrinfo returned no address")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            if timeout is None or isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            scope._track(sock)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
            if scope.aborted:
                break
    if isinstance(error, socket.timeout) and not scope.aborted:
        raise ConnectTimeoutError(
            conn, f"Connection to {host} timed out. (connect timeout={timeout})") from error
    raise NewConnectionError(conn, f"Failed to establish a new connection: {error}") from error


class _HTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        scope = current_scope()
        return super()._new_conn() if scope is None else _connect(self, scope)


class _HTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        scope = current_scope()
        return super()._new_conn() if scope is None else _connect(self, scope)

    if getattr(urllib3, "__version__", "2").startswith("1."):
        def connect(self) -> None:
            # urllib3 1.26 drops server_hostname for IP hosts (its own contexts match
            # hostnames themselves), which a caller's check_hostname context refuses.
            ctx: Any = self.ssl_context
            host = self.server_hostname or getattr(self, "_tunnel_host", None) or self.host
            if ctx is None or not getattr(ctx, "check_hostname", False) or not _is_ip(host):
                super().connect()
                return
            self.ssl_context = cast(ssl.SSLContext, _WithServerHostname(ctx, host))
            try:
                super().connect()
            finally:
                self.ssl_context = ctx


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _WithServerHostname:
    """A caller's SSLContext that always wraps sockets with the given server_hostname."""

    _ctx: ssl.SSLContext
    _hostname: str

    def __init__(self, ctx: ssl.SSLContext, hostname: str) -> None:
        object.__setattr__(self, "_ctx", ctx)
        object.__setattr__(self, "_hostname", hostname.strip("[]"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._ctx, name, value)

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None,
                    **kwargs: Any) -> ssl.SSLSocket:
        return self._ctx.wrap_socket(sock, server_hostname=server_hostname or self._hostname,
                                     **kwargs)


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        scope = current_scope()
        if scope is not None:  # a kept-alive connection is already connected
            scope._track(getattr(conn, "sock", None))
        return conn


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        scope = current_scope()
        if scope is not None:
            scope._track(getattr(conn, "sock", None))
        return conn


def _pool_classes() -> dict[str, type[HTTPConnectionPool]]:
    return {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


# --- the adapter ----------------------------------------------------------------------------


class SlackAdapter(HTTPAdapter):
    """An HTTPAdapter with a caller's SSLContext, an optional forced proxy and abortable I/O.

    ``ssl_context`` (None: requests' defaults) is used as is: its CAs and verify mode rule,
    nothing is loaded into it. ``proxy`` (None: requests' usual environment handling)
    is used for every request, whatever the proxy settings of the session or environment.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None,
                 proxy: ProxyConfig | None = None) -> None:
        self._ssl_context = ssl_context
        self._proxy = proxy
        super().__init__(max_retries=0)  # Web API calls may not be idempotent

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        """Create the pool manager with this adapter's SSLContext and abortable pools."""
        if self._ssl_context is not None:
            pool_kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes()

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Create the proxy manager with this adapter's SSLContext (used inside CONNECT)."""
        if self._ssl_context is not None:
            proxy_kwargs["ssl_context"] = self._ssl_context
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers have their own pools
            manager.pool_classes_by_scheme = _pool_classes()
        return manager

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        """Pool settings for a request (requests >= 2.32.2): the caller's SSLContext wins."""
        host_params, kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs = cast("dict[str, Any]", kwargs)
        if self._ssl_context is not None:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = self._ssl_context
            pool_kwargs["cert_reqs"] = self._ssl_context.verify_mode
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Keep requests' CA bundle out of a caller's SSLContext."""
        if self._ssl_context is None:
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call,unused-ignore]
            return
        if url.lower().startswith("https"):
            conn.cert_reqs = self._ssl_context.verify_mode
            conn.ca_certs = None
            conn.ca_cert_dir = None

    def close(self) -> None:
        """Close every pooled connection now: urllib3 2 only drops its pools on clear()
        and leaves closing their sockets to the garbage collector, which may be late
        when a failed request left a reference cycle (an exception's traceback)."""
        managers = [self.poolmanager, *self.proxy_manager.values()]
        for manager in managers:
            pools = manager.pools
            for key in list(pools.keys()):
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        super().close()

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Mapping[str, str] | None = None) -> requests.Response:
        """Send ``request``, through the explicit proxy when there is one."""
        if self._proxy is not None:
            proxies = {"http": self._proxy.url, "https": self._proxy.url}
        return super().send(request, stream=stream, timeout=timeout, verify=verify,
                            cert=cert, proxies=proxies)
