"""Socket Mode clients: slackrtm.SocketModeClient, slack_sdk.socket_mode (its builtin
client) and single-thread loops that read envelopes and acknowledge each one.

Every adapter hands the inner event of each ``events_api`` envelope to the benchmark's
handler (``message`` events and the ``bench_done`` sentinel) and acknowledges the
envelope: slackrtm on read (``ack="auto"``, its default), slack_sdk from its listener
before handling (what Bolt does), the loops right after decoding.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Tuple

from _common import Counter
from _loops import RawLoop, WSBare, WSCeiling
from _threaded import SlackRTM, _Hellos


def apps_connections_open(api_url: str, token: str) -> str:
    """apps.connections.open with the stdlib -> the one-time WebSocket URL."""
    req = urllib.request.Request(api_url + "apps.connections.open", data=b"",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        url: str = json.loads(resp.read())["url"]
    return url


class SlackRTMSM(SlackRTM):
    """slackrtm.SocketModeClient from this checkout (``ack="auto"``)."""

    name = "slackrtm-sm"
    features: Tuple[str, ...] = ()
    token_prefix = "xapp"
    socket_mode = True

    def connect(self, api_url: str, token: str, keepalive: Optional[Tuple[float, float]]) -> None:
        from slackrtm import SocketModeClient

        options: Dict[str, Any] = {}
        if keepalive is not None:
            options.update(client_ping_timeout=keepalive[0], server_pong_timeout=keepalive[1])
        self.hellos = _Hellos()
        self.rtm = SocketModeClient(token, slack_api_url=api_url, **options)  # type: ignore
        self.rtm.on("hello", self.hellos.hello)
        self.rtm.on("reconnecting", self.hellos.lost)
        self.rtm.start().result(timeout=15)


class SlackSDKSM:
    """slack_sdk.socket_mode.SocketModeClient (builtin WebSocket code; listeners run on a
    pool of 10 threads, so events can be handled out of order)."""

    name = "slack_sdk-sm"
    features: Tuple[str, ...] = ()
    token_prefix = "xapp"
    socket_mode = True
    concurrent_handlers = True

    def connect(self, api_url: str, token: str, keepalive: Optional[Tuple[float, float]]) -> None:
        from slack_sdk import WebClient
        from slack_sdk.socket_mode import SocketModeClient
        from slack_sdk.socket_mode.response import SocketModeResponse

        self.response = SocketModeResponse
        self.hellos = _Hellos()
        self.sink: Callable[[Dict[str, Any]], None] = lambda event: None
        options: Dict[str, Any] = {}
        if keepalive is not None:
            options["ping_interval"] = keepalive[0]
        self.client = SocketModeClient(app_token=token, web_client=WebClient(base_url=api_url),
                                       **options)
        self.client.message_listeners.append(self._on_message)
        self.client.socket_mode_request_listeners.append(self._on_request)
        self.client.connect()
        if not self.hellos.wait(1, 15):
            raise TimeoutError("no hello")

    def _on_message(self, client: Any, message: Dict[str, Any], raw: Optional[str]) -> None:
        if message.get("type") == "hello":
            self.hellos.hello()

    def _on_request(self, client: Any, request: Any) -> None:
        client.send_socket_mode_response(self.response(envelope_id=request.envelope_id))
        if request.type == "events_api":
            self.sink(request.payload["event"])

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        self.sink = counter.feed
        trigger()
        try:
            counter.wait(timeout)
        finally:
            self.sink = lambda event: None

    def wait_hello(self, count: int, timeout: float) -> bool:
        return self.hellos.wait(count, timeout)

    def alive(self) -> bool:
        return bool(self.client.is_connected())

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        self.client.close()


class _LoopSM:
    """Socket Mode for a single-thread loop: apps.connections.open, and each envelope
    acknowledged (``ws.send``) as soon as it is decoded, then its event handled."""

    token_prefix = "xapp"
    socket_mode = True
    ws: Any
    _next: Callable[[], Dict[str, Any]]

    def _ws_url(self, api_url: str, token: str) -> str:
        return apps_connections_open(api_url, token)

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        trigger()
        self.ws.settimeout(min(timeout, 5.0))  # 5 s without a frame: stalled
        nxt, feed, send = self._next, counter.feed, self.ws.send
        while counter.sentinel is None:
            frame = nxt()
            envelope_id = frame.get("envelope_id")
            if envelope_id is None:
                feed(frame)
                continue
            send('{"envelope_id":"' + envelope_id + '"}')
            event = frame["payload"].get("event")
            if event is not None:
                feed(event)


class WSBareSM(_LoopSM, WSBare):
    """The floor, in Socket Mode: websocket-client defaults, ``recv()`` + ``send(ack)``."""

    name = "ws-bare-sm"


class WSCeilingSM(_LoopSM, WSCeiling):
    """The ceiling loop (``recv_data``, 256 KiB reads, C UTF-8 check) plus ``send(ack)``."""

    name = "ws-ceiling-sm"


def _ack_frames(envelope_ids: List[str]) -> bytes:
    """Client frames acknowledging ``envelope_ids``, masked with the all-zero key."""
    out = []
    for envelope_id in envelope_ids:
        body = ('{"envelope_id":"' + envelope_id + '"}').encode()
        out.append(bytes((0x81, 0x80 | len(body))) + b"\0\0\0\0" + body)  # ids are short
    return b"".join(out)


class RawLoopSM(_LoopSM, RawLoop):
    """Reference only: the raw loop, its acks written with one ``sendall`` per read."""

    name = "raw-loop-sm"

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        trigger()
        sock: socket.socket = self.sock
        sock.settimeout(min(timeout, 5.0))
        feed = counter.feed
        pending, self.events = self.events, []
        while counter.sentinel is None:
            acks: List[str] = []
            for frame in pending or self._read():
                envelope_id = frame.get("envelope_id")
                if envelope_id is None:
                    feed(frame)
                    continue
                acks.append(envelope_id)
                event = frame["payload"].get("event")
                if event is not None:
                    feed(event)
            pending = []
            if acks:
                sock.sendall(_ack_frames(acks))
