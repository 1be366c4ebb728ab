"""Threaded clients: slackrtm and slack_sdk.rtm_v2 (handlers called from client threads)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional, Tuple

from _common import CHANNEL, Counter


class _Hellos:
    """Counts ``hello`` events and remembers when the client first noticed a lost link."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()
        self.lost_at: Optional[float] = None

    def hello(self, *_: Any) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def lost(self, *_: Any) -> None:
        if self.lost_at is None:
            self.lost_at = time.time()

    def wait(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= count, timeout)


class SlackRTM:
    """slackrtm.RTMClient from this checkout."""

    name = "slackrtm"
    features: Tuple[str, ...] = ("reconnect", "halfopen", "sendmt")
    concurrent_handlers = False

    def connect(self, api_url: str, token: str, keepalive: Optional[Tuple[float, float]]) -> None:
        from slackrtm import RTMClient

        options: Dict[str, Any] = {"send_rate": None}  # measure the client, not the pacing
        if keepalive is not None:
            options.update(client_ping_timeout=keepalive[0], server_pong_timeout=keepalive[1])
        self.hellos = _Hellos()
        self.rtm = RTMClient(token, slack_api_url=api_url, **options)
        self.rtm.on("hello", self.hellos.hello)
        self.rtm.on("reconnecting", self.hellos.lost)
        self.rtm.start().result(timeout=15)

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        self.rtm.on("message", counter.feed)
        self.rtm.on("bench_done", counter.feed)
        trigger()
        try:
            counter.wait(timeout)
        finally:
            self.rtm.off("message", counter.feed)
            self.rtm.off("bench_done", counter.feed)

    def request(self, msg_id: int, text: str, timeout: float) -> Dict[str, Any]:
        reply: Dict[str, Any] = self.rtm.send_message(text, CHANNEL).result(timeout)
        return reply

    def submit(self, text: str) -> Future[Dict[str, Any]]:
        return self.rtm.send_message(text, CHANNEL)

    def wait_hello(self, count: int, timeout: float) -> bool:
        return self.hellos.wait(count, timeout)

    def alive(self) -> bool:
        return bool(self.rtm.ready)

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        self.rtm.disconnect(timeout=5)


class SlackSDKv2:
    """slack_sdk.rtm_v2.RTMClient (its own WebSocket code; handlers on a pool of 10 threads).

    Keep-alive: a WebSocket ping every ``ping_interval`` seconds (an int); the connection
    is declared stale once no pong came for more than 4 intervals, and the monitor,
    which also runs every interval, reconnects.
    """

    name = "slack_sdk"
    features: Tuple[str, ...] = ("reconnect", "halfopen")
    concurrent_handlers = True

    def connect(self, api_url: str, token: str, keepalive: Optional[Tuple[float, float]]) -> None:
        from slack_sdk.rtm_v2 import RTMClient

        options: Dict[str, Any] = {}
        if keepalive is not None:
            options["ping_interval"] = max(1, round(keepalive[0]))
        self.hellos = _Hellos()
        self.sink: Callable[[Dict[str, Any]], None] = lambda event: None
        self.waiters: Dict[int, List[Any]] = {}
        self.replies_hooked = self.events_hooked = False
        self.rtm = RTMClient(token=token, base_url=api_url, **options)
        self.rtm.on("hello")(lambda client, event: self.hellos.hello())
        self.rtm.on_close_listeners.append(self.hellos.lost)
        self.rtm.connect()
        if not self.hellos.wait(1, 15):
            raise TimeoutError("no hello")

    def consume(self, counter: Counter, timeout: float, trigger: Callable[[], Any]) -> None:
        self.sink = counter.feed
        if not self.events_hooked:  # rtm_v2 cannot remove a listener: register once
            self.rtm.on("message")(lambda client, event: self.sink(event))
            self.rtm.on("bench_done")(lambda client, event: self.sink(event))
            self.events_hooked = True
        trigger()
        counter.wait(timeout)

    def _on_any(self, event: Dict[str, Any]) -> None:
        waiter = self.waiters.get(event.get("reply_to"))  # type: ignore[arg-type]
        if waiter is not None:
            waiter[1] = event
            waiter[0].set()

    def request(self, msg_id: int, text: str, timeout: float) -> Dict[str, Any]:
        if not self.replies_hooked:
            self.rtm.on("*")(lambda client, event: self._on_any(event))
            self.replies_hooked = True
        waiter: List[Any] = [threading.Event(), None]
        self.waiters[msg_id] = waiter
        self.rtm.send({"id": msg_id, "type": "message", "channel": CHANNEL, "text": text})
        if not waiter[0].wait(timeout):
            raise TimeoutError("no reply")
        del self.waiters[msg_id]
        reply: Dict[str, Any] = waiter[1]
        return reply

    def wait_hello(self, count: int, timeout: float) -> bool:
        return self.hellos.wait(count, timeout)

    def alive(self) -> bool:
        return bool(self.rtm.is_connected())

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        self.rtm.close()
