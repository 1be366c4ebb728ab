"""A local Slack RTM and Socket Mode flood server for benchmarks (stdlib only, own process).

One TCP port serves three things, told apart by the request line:

* ``POST /api/rtm.connect`` (and ``rtm.start``, ``auth.test``): a minimal Web API whose
  ``rtm.connect`` answer points at ``ws://127.0.0.1:<port>/ws/<n>``;
* ``GET /ws/<n>`` with ``Upgrade: websocket``: the RTM socket. It sends ``hello`` at once,
  answers ``message`` sends with ``{"ok": true, "reply_to": id, "ts": ..., "text": ...}``,
  RTM ``ping`` with ``pong`` and WebSocket ping frames with pong frames;
* ``POST /control/<command>?<args>``: commands from the benchmark worker, applied to every
  open RTM connection: ``flood?n=N&pace=EPS`` (N ``message`` events of ~300 B carrying a
  sequence number, then a ``bench_done`` sentinel; ``pace=0`` is as fast as TCP allows),
  ``drop`` (close without a close frame), ``halfopen`` (stop answering and sending, keep
  the TCP connection open), ``stats``.

Socket Mode (``_flood_sm.py``): ``POST /api/apps.connections.open`` with an ``xapp-`` token
hands out a one-time ``ws://127.0.0.1:<port>/socket-mode/<ticket>``; its connections get a
Socket Mode ``hello``, and control commands for that app's tag (``flood`` with refreshes,
``drop``, ``stats`` with ack counts) go to ``SMApp.command``.

Run: ``python flood_server.py --port 0`` prints ``READY <port>`` on stdout once listening.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from _flood_sm import SMApp
from _wsframe import frame

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT = "benchmark flood message " + "lorem ipsum dolor sit amet " * 6
# One event is ~300 B; the sequence number is both in "seq" and in the ts.
_EVENT = (
    '{"type":"message","channel":"C024BE91L","user":"U2147483697","text":"' + _TEXT
    + '","ts":"1700000000.%06d","seq":%d,"team":"T024BE7LD","client_msg_id":"bench"}'
).encode()
_BATCH = 512  # events rendered and written per sendall


def render_events(first: int, count: int) -> bytes:
    """``count`` framed message events starting at sequence number ``first``."""
    parts: List[bytes] = []
    for seq in range(first, first + count):
        body = _EVENT % (seq % 1000000, seq)
        parts.append(b"\x81\x7e" + struct.pack("!H", len(body)) + body)
    return b"".join(parts)


class RTMConnection:
    """One server side RTM WebSocket connection: a reader thread and a locked writer."""

    def __init__(self, server: FloodServer, sock: socket.socket, buf: bytes, tag: str) -> None:
        self.server = server
        self.tag = tag
        self.sock = sock
        self.buf = bytearray(buf)
        self.lock = threading.Lock()
        self.halfopen = False
        self.closed = False
        self.flood_gen = 0

    def write(self, data: bytes) -> bool:
        with self.lock:
            if self.closed or self.halfopen:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self.closed = True
                return False

    def send_json(self, obj: Dict[str, Any]) -> bool:
        return self.write(frame(json.dumps(obj, separators=(",", ":")).encode()))

    def drop(self) -> None:
        """Close without a close frame (what a dead peer or a load balancer does)."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # ------------------------------------------------------------------ reading
    def run(self) -> None:
        self.send_json({"type": "hello"})
        try:
            while not self.closed:
                msg = self._read_frame()
                if msg is None:
                    break
                opcode, payload = msg
                if self.halfopen:
                    continue  # a half-open peer: the bytes go nowhere, nothing answers
                if opcode == 0x9:
                    self.write(frame(payload, 0xA))
                elif opcode == 0x8:
                    self.write(frame(payload[:2], 0x8))
                    break
                elif opcode == 0x1:
                    self._on_text(payload)
        except (OSError, ValueError) as exc:
            print(f"connection {self.tag}: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            self.server.forget(self)
            if not self.closed:
                self.drop()

    def _recv_exact(self, n: int) -> Optional[bytes]:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _read_frame(self) -> Optional[Tuple[int, bytes]]:
        head = self._recv_exact(2)
        if head is None:
            return None
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            ext = self._recv_exact(2)
            if ext is None:
                return None
            length = struct.unpack("!H", ext)[0]
        elif length == 127:
            ext = self._recv_exact(8)
            if ext is None:
                return None
            length = struct.unpack("!Q", ext)[0]
        mask = self._recv_exact(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = self._recv_exact(length)
        if mask is None or data is None:
            return None
        if mask != b"\0\0\0\0" and length:
            words = (length + 3) // 4
            key = int.from_bytes(mask * words, "big") >> (8 * (4 * words - length))
            data = (int.from_bytes(data, "big") ^ key).to_bytes(length, "big")
        return opcode, data

    def _on_text(self, payload: bytes) -> None:
        self.server.received += 1
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        kind, msg_id = msg.get("type"), msg.get("id")
        if kind == "ping":
            reply: Dict[str, Any] = {"type": "pong", "time": msg.get("time")}
            if msg_id is not None:
                reply["reply_to"] = msg_id
            self.send_json(reply)
        elif kind == "message" and msg_id is not None:
            self.server.ts += 1
            self.send_json({"ok": True, "reply_to": msg_id,
                            "ts": f"1700000001.{self.server.ts:06d}", "text": msg.get("text")})

    # ------------------------------------------------------------------ flooding
    def flood(self, n: int, pace: float) -> None:
        """Write ``n`` events (``pace`` events/s, 0 = unpaced), then the sentinel."""
        self.flood_gen += 1
        gen = self.flood_gen
        start_wall = time.time()
        start = time.monotonic()
        sent = 0
        batch = _BATCH if pace <= 0 else max(1, min(_BATCH, int(pace / 200)))
        while sent < n and gen == self.flood_gen:
            count = min(batch, n - sent)
            if pace > 0:
                due = start + sent / pace
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if not self.write(render_events(sent, count)):
                return
            sent += count
        self.send_json({"type": "bench_done", "seq": n, "sent": sent,
                        "flood_start": start_wall, "flood_end": time.time()})


class FloodServer:
    """The listening socket, the HTTP/WebSocket request router and the control commands."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", port), backlog=64)
        self.port: int = self.listener.getsockname()[1]
        self.conns: List[RTMConnection] = []
        self.conns_lock = threading.Lock()
        self.connects = 0
        self.received = 0
        self.ts = 0
        self.sm_apps: Dict[str, SMApp] = {}
        self.sm_tickets: Dict[str, SMApp] = {}

    def forget(self, conn: RTMConnection) -> None:
        with self.conns_lock:
            if conn in self.conns:
                self.conns.remove(conn)

    def serve_forever(self) -> None:
        while True:
            sock, _ = self.listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        sock.close()
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1]
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:])}
                if headers.get("upgrade", "").lower() == "websocket":
                    self._upgrade(sock, target, headers, buf)
                    return
                length = int(headers.get("content-length", "0"))
                while len(buf) < length:
                    buf += sock.recv(65536)
                body, buf = buf[:length], buf[length:]
                self._http(sock, target, headers, body)
        except (OSError, ValueError):
            sock.close()

    def _http(self, sock: socket.socket, target: str, headers: Dict[str, str],
              body: bytes) -> None:
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        form = {k: v[-1] for k, v in parse_qs(body.decode("latin-1")).items()}
        token = headers.get("authorization", "").partition("Bearer ")[2] or form.get("token", "")
        status, reply = "200 OK", self._route(url.path, query, token)
        if reply is None:
            status, reply = "404 Not Found", {"ok": False, "error": "unknown_method"}
        data = json.dumps(reply).encode()
        sock.sendall(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json"
                     b"\r\nConnection: keep-alive\r\nContent-Length: "
                     + str(len(data)).encode() + b"\r\n\r\n" + data)

    def _route(self, path: str, query: Dict[str, str], token: str) -> Optional[Dict[str, Any]]:
        if path.startswith("/api/rtm."):
            self.connects += 1
            tag = token.rpartition("-")[2]  # the worker's run id: control commands select by it
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/ws/{tag}/{self.connects}",
                    "self": {"id": "U0BENCH", "name": "bench"},
                    "team": {"id": "T0BENCH", "name": "bench", "domain": "bench"},
                    "channels": [], "groups": [], "users": [], "ims": []}
        if path == "/api/apps.connections.open":
            if not token.startswith("xapp-"):
                return {"ok": False, "error": "not_allowed_token_type"}
            tag = token.rpartition("-")[2]
            with self.conns_lock:
                self.connects += 1
                app = self.sm_apps.get(tag)
                if app is None:
                    app = self.sm_apps[tag] = SMApp(tag, len(self.sm_apps) + 1)
                ticket = uuid.uuid4().hex
                self.sm_tickets[ticket] = app
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket-mode/{ticket}"}
        if path == "/api/auth.test":
            return {"ok": True, "user_id": "U0BENCH", "bot_id": "B0BENCH", "team_id": "T0BENCH",
                    "user": "bench", "team": "bench", "url": "http://bench/"}
        if not path.startswith("/control/"):
            return None
        command = path[len("/control/"):]
        sm_app = self.sm_apps.get(query.get("tag", ""))
        if sm_app is not None:
            return sm_app.command(command, query)
        with self.conns_lock:
            conns = [c for c in self.conns if c.tag == query.get("tag", c.tag)]
        if command == "flood":
            n, pace = int(query.get("n", "100000")), float(query.get("pace", "0"))
            for conn in conns:
                threading.Thread(target=conn.flood, args=(n, pace), daemon=True).start()
        elif command == "drop":
            for conn in conns:
                conn.drop()
        elif command == "halfopen":
            for conn in conns:
                conn.halfopen = True
                conn.flood_gen += 1
        elif command != "stats":
            return None
        return {"ok": True, "connections": len(conns), "connects": self.connects,
                "received": self.received}

    def _upgrade(self, sock: socket.socket, target: str, headers: Dict[str, str],
                 rest: bytes) -> None:
        app: Optional[SMApp] = None
        if target.startswith("/socket-mode/"):
            with self.conns_lock:  # a ticket is good for one connection
                app = self.sm_tickets.pop(urlsplit(target).path.rsplit("/", 1)[1], None)
            if app is None:
                sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                sock.close()
                return
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        if app is not None:
            app.attach(sock, rest)
            return
        tag = target.split("/")[2] if target.count("/") > 2 else ""
        conn = RTMConnection(self, sock, rest, tag)
        with self.conns_lock:
            self.conns.append(conn)
        conn.run()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = FloodServer(args.port)
    print(f"READY {server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
