"""The HTTP side of FakeSlack: ``/api/<method>``, the WebSocket upgrades at
``/rtm/<ticket>`` (RTM) and ``/link/?ticket=<ticket>&app_id=...`` (Socket Mode, as
Slack's URLs), and slash commands' ``response_url`` (POST ``/commands/...``)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, List, Optional, Tuple, cast
from urllib.parse import parse_qsl, urlsplit

from slackrtm.testing import _webapi, _ws
from slackrtm.testing._calls import Fault
from slackrtm.testing._conn import FakeConnection
from slackrtm.testing._serving import Ticket

TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Front:
    """What the HTTP front door needs, handed over by FakeSlack: the Web API's
    :class:`~slackrtm.testing._webapi.Desk`, and for WebSocket upgrades the handshake
    faults, tickets and the opening of a connection."""

    api: _webapi.Desk
    note_handshake: Callable[[], None]
    #: Whether handshakes hang (``FakeSlack.hang_handshake``), read per handshake.
    hanging: Callable[[], bool]
    redeem_ticket: Callable[[str, str], Optional[Ticket]]
    open_connection: Callable[..., FakeConnection]
    #: A POST to a slash command's response_url: ``(status, headers, body)``.
    response_post: Callable[[str, bytes], Tuple[int, Dict[str, str], bytes]]
    #: Path prefix -> an app serving it (the playground), mounted while FakeSlack runs.
    mounts: Dict[str, Any]


class SlackHandler(BaseHTTPRequestHandler):
    """Serves one client connection (keep-alive) of a :class:`FakeSlack`."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeSlack"
    sys_version = ""

    def __init__(self, sock: socket.socket, addr: Tuple[Any, ...], front: Front) -> None:
        self.front = front
        super().__init__(sock, addr, cast(Any, None))

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read records, not stderr."""

    def do_GET(self) -> None:
        """Web API call, or a WebSocket upgrade under ``/rtm/`` or ``/socket-mode/``."""
        self._route()

    def do_POST(self) -> None:
        """Web API call."""
        self._route()

    def _route(self) -> None:
        target = self.path
        if target.startswith(("http://", "https://")):  # absolute-URI form (via a proxy)
            parts = urlsplit(target)
            target = parts.path + ("?" + parts.query if parts.query else "")
        path, _, query = target.partition("?")
        if path.startswith("/api/") and len(path) > 5:
            body = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._reply(*_webapi.handle(self.front.api, self.command, path[5:], query, body,
                                        headers))
        elif path.startswith("/rtm/") and self.command == "GET":
            self._websocket(path[5:], "rtm")
        elif path in ("/link/", "/link") and self.command == "GET":
            args = dict(parse_qsl(query, keep_blank_values=True))
            self._websocket(args.get("ticket", ""), "socket_mode", args)
        elif path.startswith("/commands/") and self.command == "POST" \
                and "/commands/" not in self.front.mounts:  # a playground shows them too
            self._reply(*self.front.response_post(path, self._read_body()))
        else:
            for prefix, app in list(self.front.mounts.items()):  # the playground, if any
                if path.startswith(prefix):
                    app.serve(self, path, query)
                    return
            self._reply(404, {"Content-Type": TEXT}, b"not found\n")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: List[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, status: int, headers: Dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _websocket(self, ticket: str, kind: str,
                   query: Optional[Dict[str, str]] = None) -> None:
        front = self.front
        front.note_handshake()
        fault: Optional[Fault] = front.api.take_fault("websocket")
        if fault is not None:
            if fault.delay and front.api.stop.wait(fault.delay):
                self.close_connection = True  # closing: hang up without an answer
                return
            if fault.error is not None:
                status = fault.status if fault.status != 200 else 503
                self._reply(status, {"Content-Type": TEXT}, fault.error.encode("utf-8"))
                return
        if front.hanging():
            self.close_connection = True
            while self.connection.recv(65536):  # until the client gives up or we close
                pass
            return
        info = front.redeem_ticket(ticket, kind)
        if info is None:
            self._reply(404, {"Content-Type": TEXT}, b"unknown, used or expired ticket\n")
            return
        error = self._check_upgrade()
        if error is not None:
            self._reply(error[0], error[1], error[2])
            return
        key = self.headers.get("Sec-WebSocket-Key", "").strip()
        response = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nServer: FakeSlack\r\n"
                    f"Sec-WebSocket-Accept: {_ws.accept_key(key)}\r\n\r\n").encode("ascii")
        self.close_connection = True
        conn = front.open_connection(self.connection, info, response, query)
        threading.current_thread().name = f"fakeslack-ws-{conn.id}"
        conn._run()

    def _check_upgrade(self) -> Any:
        upgrade = (self.headers.get("Upgrade") or "").lower()
        connection = (self.headers.get("Connection") or "").lower()
        if upgrade != "websocket" or "upgrade" not in connection:
            return 400, {"Content-Type": TEXT}, b"expected a WebSocket upgrade\n"
        if (self.headers.get("Sec-WebSocket-Version") or "").strip() != "13":
            return 426, {"Content-Type": TEXT, "Sec-WebSocket-Version": "13"}, b"version 13\n"
        if not _ws.valid_client_key(self.headers.get("Sec-WebSocket-Key")):
            return 400, {"Content-Type": TEXT}, b"invalid Sec-WebSocket-Key\n"
        return None
