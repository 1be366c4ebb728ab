"""Opening a WebSocket and interrupting an opening from another thread.

websocket-client does the handshake (proxy tunnel, TLS). Its errors and the socket's become
:class:`~slackrtm.errors.WebsocketError` here, naming the host only: the URL's path and
query carry a one-time ticket.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Callable, Optional, Tuple
from urllib.parse import urlsplit

import websocket

from slackrtm._web.netconfig import ProxyConfig, require_socks
from slackrtm.errors import WebsocketError

__all__ = ["abort_handshake", "connect", "describe", "safe_url"]

# websocket-client reads NO_PROXY itself when this list is empty, and up to 1.8 always
# bypasses an explicit proxy for localhost: a list that matches no host stops both.
_MATCH_NO_HOST = ["\x00"]


def connect(url: str, *, timeout: float, proxy: Optional[ProxyConfig],
            ssl_context: Optional[ssl.SSLContext],
            publish: Optional[Callable[[Any], None]] = None) -> Tuple[Any, str]:
    """Open a WebSocket to ``url`` through ``proxy`` (HTTP CONNECT or SOCKS), or directly.

    Returns the websocket-client object, its socket now blocking, and the host to name in
    messages (:func:`safe_url`). ``publish`` gets the websocket-client object before the
    connection starts, so another thread can interrupt the handshake with
    :func:`abort_handshake`.
    """
    options: dict[str, Any] = {
        "timeout": timeout,
        "suppress_origin": True,
    }
    if proxy is not None:
        try:
            require_socks(proxy, legs=("ws",))
        except ImportError as exc:
            raise WebsocketError(str(exc)) from None
        options.update(http_proxy_host=proxy.host, http_proxy_port=proxy.port,
                       http_proxy_auth=proxy.auth, proxy_type=proxy.scheme,
                       http_no_proxy=_MATCH_NO_HOST)
    else:
        options["http_no_proxy"] = ["*"]
    host = safe_url(url)
    sockopt: Any = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
    ws = websocket.WebSocket(  # writes are serialised by the transport's own lock
        skip_utf8_validation=True, enable_multithread=False, sockopt=sockopt,
        sslopt={"context": ssl_context} if ssl_context is not None else None)
    if publish is not None:
        publish(ws)
    try:
        ws.connect(url, **options)  # type: ignore[no-untyped-call,unused-ignore]
    except websocket.WebSocketBadStatusException as exc:
        status = getattr(exc, "status_code", "?")
        raise WebsocketError(f"WebSocket handshake with {host} refused: HTTP {status}") \
            from None
    except ssl.SSLError as exc:
        raise WebsocketError(f"TLS failed while connecting to {host}: {exc}") from None
    except (OSError, websocket.WebSocketException) as exc:
        raise WebsocketError(
            f"could not open the WebSocket to {host}: {describe(exc)}") from None
    if ws.sock is None:
        raise WebsocketError(f"the WebSocket to {host} closed during the handshake")
    ws.sock.settimeout(None)  # reads block until data or teardown (shutdown wakes them)
    return ws, host


def abort_handshake(ws: Any) -> None:
    """Interrupt a handshake in progress on another thread (its socket, once it has one)."""
    sock = getattr(ws, "sock", None)
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def safe_url(url: str) -> str:
    """The URL reduced to scheme and host: its path and query carry a one-time ticket."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{':' + str(parts.port) if parts.port else ''}"


def describe(exc: BaseException) -> str:
    """An exception as ``Type: text`` (the type alone when it has no text)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
