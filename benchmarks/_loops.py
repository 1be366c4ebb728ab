"""Single-thread loop peers: the websocket-client floor and ceiling, a raw loop, slackclient 1.x.

Each adapter runs its read loop in the calling thread (no reader thread, no queue), the way
a minimal bot written directly against the library would. The slackclient adapter imports
slackclient, which lives in its own venv (it pins websocket-client<0.55).
"""

from __future__ import annotations

import errno
import json
import select
import socket
import struct
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from _common import CHANNEL, Counter

_U16 = struct.Struct("!H")


def rtm_connect(api_url: str, token: str) -> str:
    """Call rtm.connect with the stdlib (the bare loops have no Web API client) -> ws URL."""
    import urllib.request

    req = urllib.request.Request(api_url + "rtm.connect", data=b"",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        url: str = json.loads(resp.read())["url"]
    return url


class ChunkReader:
    """Serve websocket-client's small ``recv(n)`` calls from 256 KiB socket reads."""

    def __init__(self, sock: socket.socket, size: int = 262144) -> None:
        self.sock = sock
        self.size = size
        self.buf = b""
        self.pos = 0

    def recv(self, n: int) -> bytes:
        if self.pos >= len(self.buf):
            self.buf = self.sock.recv(self.size)
            self.pos = 0
            if not self.buf:
                import websocket

                raise websocket.WebSocketConnectionClosedException("connection closed")
        start = self.pos
        self.pos = start + n
        return self.buf[start:self.pos]


class WSBare:
    """websocket-client defaults: ``ws.recv()`` (pure-Python UTF-8 check) + ``json.loads``."""

    name = "ws-bare"
    features: Tuple[str, ...] = ()
    skip_utf8 = False

    def connect(self, api_url: str, token: str, keepalive: Optional[Tuple[float, float]]) -> None:
        import websocket

        self.ws = websocket.create_connection(self._ws_url(api_url, token),
                                              skip_utf8_validation=self.skip_utf8)
        self.ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._prepare()
        hello = self._next()
        assert hello.get("type") == "hello", hello

    def _ws_url(self, api_url: str, token: str) -> str:
        return rtm_connect(api_url, token)

    def _prepare(self) -> None:
        pass

    def _next(self) -> Dict[str, Any]:
        event: Dict[str, Any] = json.loads(self.ws.recv())
        return event

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        trigger()
        self.ws.settimeout(min(timeout, 5.0))  # 5 s without a frame: stalled
        recv, loads, feed = self.ws.recv, json.loads, counter.feed
        while counter.sentinel is None:
            feed(loads(recv()))

    def request(self, msg_id: int, text: str, timeout: float) -> Dict[str, Any]:
        self.ws.settimeout(timeout)
        self.ws.send(json.dumps({"id": msg_id, "type": "message", "channel": CHANNEL,
                                 "text": text}))
        while True:
            event = self._next()
            if event.get("reply_to") == msg_id:
                return event

    def idle(self, seconds: float) -> None:
        self.ws.settimeout(seconds)
        try:
            while True:
                self._next()
        except Exception as exc:  # the read timing out is the expected end
            if "timed out" not in str(exc):
                raise

    def close(self) -> None:
        self.ws.close()


class WSCeiling(WSBare):
    """websocket-client at its best: no Python UTF-8 check, 256 KiB reads, ``recv_data``."""

    name = "ws-ceiling"
    skip_utf8 = True

    def _prepare(self) -> None:
        self.ws.frame_buffer.recv = ChunkReader(self.ws.sock).recv

    def _next(self) -> Dict[str, Any]:
        event: Dict[str, Any] = json.loads(self.ws.recv_data()[1].decode("utf-8"))
        return event

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        trigger()
        self.ws.settimeout(min(timeout, 5.0))  # 5 s without a frame: stalled
        recv_data, loads, feed = self.ws.recv_data, json.loads, counter.feed
        while counter.sentinel is None:
            feed(loads(recv_data()[1].decode("utf-8")))


class RawLoop(WSBare):
    """No WebSocket library on the read side: 256 KiB reads, slice frames, decode, loads.

    An informational reference (not a target): what one Python thread can do at all.
    """

    name = "raw-loop"

    def _prepare(self) -> None:
        self.sock: socket.socket = self.ws.sock
        self.buf = b""
        self.events: List[Dict[str, Any]] = []

    def _read(self) -> List[Dict[str, Any]]:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("closed")
        buf = self.buf + chunk if self.buf else chunk
        pos, end, out, loads = 0, len(buf), [], json.loads
        while end - pos >= 4:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                length, head = _U16.unpack_from(buf, pos + 2)[0], 4
            elif length == 127:
                raise ValueError("frame too large for this loop")
            if end - pos < head + length:
                break
            if buf[pos] & 0x0F == 0x1:
                out.append(loads(buf[pos + head:pos + head + length].decode("utf-8")))
            pos += head + length
        self.buf = buf[pos:]
        return out

    def _next(self) -> Dict[str, Any]:
        while not self.events:
            self.events = self._read()
        return self.events.pop(0)

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        trigger()
        self.sock.settimeout(min(timeout, 5.0))
        feed = counter.feed
        for event in self.events:
            feed(event)
        self.events = []
        while counter.sentinel is None:
            for event in self._read():
                feed(event)


class SlackClient1:
    """slackclient 1.3.2: ``rtm_connect()`` then an ``rtm_read()`` loop.

    Its Web API host is hard-coded (``https://slack.com/api/``): only that URL is redirected
    to the flood server. Its socket is non-blocking; on ws:// an empty socket raises
    EAGAIN out of ``rtm_read()`` (on wss:// it returns ``[]``): both mean "nothing yet", and
    the loop then waits in ``select`` rather than ``time.sleep`` so it is never the sleep
    that limits it.
    """

    name = "slackclient1"
    features: Tuple[str, ...] = ("reconnect",)

    def connect(self, api_url: str, token: str, keepalive: Optional[Tuple[float, float]]) -> None:
        import requests
        from slackclient import SlackClient, slackrequest

        real_post = requests.post

        class _Requests:
            @staticmethod
            def post(url: str, **kwargs: Any) -> Any:
                return real_post(url.replace("https://slack.com/api/", api_url), **kwargs)

        slackrequest.requests = _Requests  # type: ignore[assignment]
        self.sc = SlackClient(token)
        self.hellos = 0
        if not self.sc.rtm_connect(with_team_state=False, auto_reconnect=True):
            raise RuntimeError("slackclient rtm_connect failed")
        self.wait_hello(1, 10.0)

    def _read(self, wait: float) -> List[Dict[str, Any]]:
        try:
            events: List[Dict[str, Any]] = self.sc.rtm_read()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise
            events = []
        if not events:
            sock = self.sc.server.websocket.sock
            if sock is not None:
                select.select([sock], [], [], wait)
        for event in events:
            if event.get("type") == "hello":
                self.hellos += 1
        return events

    def _loop(self, until: Callable[[], bool], feed: Callable[[Dict[str, Any]], None],
              timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                return False
            for event in self._read(0.05):
                feed(event)
        return True

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        trigger()
        if not self._loop(lambda: counter.sentinel is not None, counter.feed, timeout):
            raise TimeoutError("no sentinel")

    def request(self, msg_id: int, text: str, timeout: float) -> Dict[str, Any]:
        self.sc.server.send_to_websocket({"id": msg_id, "type": "message",
                                          "channel": CHANNEL, "text": text})
        replies: List[Dict[str, Any]] = []

        def feed(event: Dict[str, Any]) -> None:
            if event.get("reply_to") == msg_id:
                replies.append(event)

        if not self._loop(lambda: bool(replies), feed, timeout):
            raise TimeoutError("no reply")
        return replies[0]

    def wait_hello(self, count: int, timeout: float) -> bool:
        return self._loop(lambda: self.hellos >= count, lambda e: None, timeout)

    def idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(min(1.0, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        self.sc.server.websocket.close()
