"""A peer that stops reading (while it keeps sending, so the keep-alive stays happy): no
caller blocks, memory stays bounded, and the stalled connection is replaced."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import Future
from typing import Any, List

import pytest

from slackrtm import Backoff, NoReplyReceivedError, RTMClient, SocketModeClient, WebClient
from slackrtm._engine.writer import BOUND_HIGH
from tests.conftest import wait_until
from tests.peers import RawSlack, keep_sending
from tests.test_reliability_support import SEND_ERRORS, json_frame

QUICK = dict(client_ping_timeout=1.0, server_pong_timeout=0.5, hello_timeout=5.0,
             backoff=Backoff(initial=0.0, base=0.05, maximum=0.2))


def test_rtm_sends_never_block_on_a_peer_that_stopped_reading() -> None:
    with RawSlack(lambda conn: None, rcvbuf=4096) as raw:
        raw.behave = keep_sending(raw, lambda i: {"type": "noise", "n": i}, 0.05)
        # the stalled writer is found dead after client_ping_timeout (8 s): a send that
        # blocked on it would block that long, far above the bound below, which leaves a
        # loaded machine's scheduling room
        rtm = RTMClient("xoxb-1-2-abc", slack_api_url=raw.api_url, reply_timeout=600.0,
                        send_rate=None, **dict(QUICK, client_ping_timeout=8.0,
                                               server_pong_timeout=4.0))
        futures: List[Future[Any]] = []
        try:
            rtm.start().result(timeout=30)
            text = "x" * 3_900
            slowest = 0.0
            deadline = time.monotonic() + 60
            # ~4 MB queued: far more than the socket buffers take
            while raw.ws_count < 2 and time.monotonic() < deadline:
                for _ in range(200):
                    t0 = time.monotonic()
                    futures.append(rtm.send_message(text, "C1"))
                    slowest = max(slowest, time.monotonic() - t0)
                time.sleep(0.05)
            assert raw.ws_count >= 2, "the stalled connection was never replaced"
            assert slowest < 3.0, f"a send_message call blocked for {slowest:.2f} s"
            # the write in progress when the peer stopped reading failed as documented
            wait_until(lambda: any(f.done() and isinstance(f.exception(0),
                                                           NoReplyReceivedError)
                                   for f in futures), 30, "the stalled write's failure")
            assert isinstance(rtm.last_error, Exception)
            assert "stopped taking writes" in str(rtm.last_error)
        finally:
            rtm.disconnect()
        for fut in futures:  # nothing left pending after disconnect()
            assert fut.done()
            err = fut.exception(0)
            assert err is None or isinstance(err, SEND_ERRORS), repr(err)


def _envelope(i: int) -> Any:
    return {"envelope_id": f"env-{i}", "type": "events_api", "accepts_response_payload":
            False, "payload": {"event_id": f"Ev{i}", "event": {"type": "noise", "n": i}}}


def test_socket_mode_acks_stay_bounded_against_a_peer_that_stopped_reading() -> None:
    with RawSlack(lambda conn: None, rcvbuf=4096) as raw:
        def flood(conn: Any) -> None:
            conn.send_json({"type": "hello", "num_connections": 1})
            i = conn.n * 1_000_000
            while not raw.stopping() and not conn.closed.is_set():
                batch = b"".join(json_frame(_envelope(j)) for j in range(i, i + 200))
                i += 200
                try:
                    conn.sock.sendall(batch)
                except OSError:
                    return

        raw.behave = flood
        client = SocketModeClient("xapp-1-A1-2-abc", slack_api_url=raw.api_url, **QUICK)
        handled: List[int] = []
        client.on("noise", lambda e: handled.append(e["n"]))
        most = 0
        try:
            client.start().result(timeout=30)
            run = client._run
            assert run is not None
            deadline = time.monotonic() + 60
            while raw.ws_count < 2 and time.monotonic() < deadline:
                most = max(most, run.bound_frames, len(run.bound))
                time.sleep(0.01)
            assert raw.ws_count >= 2, "the stalled connection was never replaced"
            # the stalled write, or (reading stopped while the acks could not go out) the
            # unanswered ping: either way the connection was found dead and replaced
            reason = str(client.last_error)
            assert "stopped taking writes" in reason or "no pong" in reason, reason
        finally:
            client.disconnect()
        # bounded near BOUND_HIGH (reads overshoot it by what arrives before reading pauses,
        # more on a loaded machine); unbounded was 100,000+ within seconds
        assert most <= 2 * BOUND_HIGH, f"{most} acks queued: unbounded"
        assert len(handled) > 1_000  # it did read and dispatch meanwhile


class DripServer:
    """An HTTP server that answers the URL call one byte at a time, each byte well
    within the client's read timeout: no single read ever times out."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/api/"
        self.calls = 0
        self.stop = threading.Event()
        self.threads: List[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.calls += 1
            t = threading.Thread(target=self._drip, args=(sock,), daemon=True)
            self.threads.append(t)
            t.start()

    def _drip(self, sock: socket.socket) -> None:
        with sock:
            try:
                sock.recv(65536)
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000000\r\n\r\n{")
                while not self.stop.wait(0.2):
                    sock.sendall(b" ")
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for t in self.threads:
            t.join(10)
        self.thread.join(10)


@pytest.mark.parametrize("cls", [RTMClient, SocketModeClient])
def test_a_url_call_answered_a_byte_at_a_time_is_abandoned(cls: Any) -> None:
    drip = DripServer()
    token = "xoxb-1-2-abc" if cls is RTMClient else "xapp-1-A1-2-abc"
    web = WebClient(token, base_url=drip.url, timeout=1.0)  # the budget: 10 s a call
    client = cls(token, web_client=web, **QUICK)
    try:
        client.start()
        wait_until(lambda: client.last_error is not None, 60, "the slow call abandoned")
        assert "did not complete within 10 s" in str(client.last_error)
        wait_until(lambda: drip.calls >= 2, 60, "the next attempt")
    finally:
        client.disconnect()
        web.close()
        drip.close()
