"""SocketModeClient's refresh: the handover to the next connection, the drain of the old
one, keep-alive and shutdown across them, and bad input on the way.

A test headed by "guards against a defect once found" reproduces that defect (the comment
says which). Some tests widen a narrow race window by wrapping one private method
(documented in each test): the interleaving they force is one the scheduler can produce
on its own.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List

import pytest

from slackrtm import Backoff, PlatformError, SocketModeClient
from slackrtm._protocols import sm_run as _sm_run
from slackrtm._protocols.refresh import RefreshState
from slackrtm._protocols.sm_run import SocketModeRun
from slackrtm.testing import FakeSlack
from slackrtm.testing._conn import FakeConnection
from tests.conftest import SM_FAST, Recorder, client_threads, wait_until

#: Keep-alive slow enough that no pong wakes the reader during a test.
QUIET = dict(SM_FAST, client_ping_timeout=6.0, server_pong_timeout=3.0)
Make = Callable[..., SocketModeClient]



def texts(rec: Recorder) -> List[str]:
    return [args[0]["text"] for args in rec.of("message")]


def run_of(client: SocketModeClient) -> SocketModeRun:
    run = client._run
    assert isinstance(run, SocketModeRun)
    return run


def wake_reader(slack: FakeSlack, client: SocketModeClient, old: FakeConnection) -> None:
    """Send a frame on the old connection so that a reader blocked on it takes a pending
    handover (keeps the handover-stall tests clear of the pending-handover shutdown case
    at teardown)."""
    run = run_of(client)
    if run.refresh.ready:
        slack.send_raw('{"type": "test_wake_up"}', to=old)
        wait_until(lambda: not run.refresh.ready, timeout=30, what="the handover taken")


def second_connection_ready(slack: FakeSlack) -> FakeConnection:
    """Wait until a second Socket Mode connection is open and got its hello."""
    slack.wait_until(lambda: len(slack.socket_connections) >= 2
                     and slack.socket_connections[-1].hello_sent,
                     what="the refresh's connection to get its hello")
    return slack.socket_connections[-1]


# ====================================================================== handover stalls
# guards against a defect once found:
#  the reader blocks in read() on the old connection without a timeout;
#  a refresh started by the connection's lifetime (no frame arrives on the old connection)
#  is only taken over when the keep-alive pong wakes the reader (client_ping_timeout)
def test_lifetime_refresh_is_taken_over_at_once(slack: FakeSlack, smake: Make) -> None:
    slack.connection_time = 1  # the client refreshes ~0.9 s after hello
    client = smake(**QUIET)
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=30)
    old = slack.socket_connections[0]
    second_connection_ready(slack)
    try:
        slack.post_message("general", "on the new connection")  # routed to the newest
        rec.wait_for("message", timeout=30)  # fails: waits for the pong, ~6 s
        assert slack.wait_for_acks(1, timeout=0.5)[0].late is False
    finally:
        wake_reader(slack, client, old)


# guards against a defect once found:
#  after a 'warning' the reader goes back to a blocking read() before
#  the refresher set `refreshing`; the handover waits for the next frame on the old
#  connection (Slack's refresh_requested, seconds later)
def test_warning_refresh_is_taken_over_at_once(slack: FakeSlack, smake: Make,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # the refresher thread is scheduled a little after the reader (forced, else racy)
    original = SocketModeRun._refresh

    def late_refresh(self: SocketModeRun) -> None:
        time.sleep(0.1)
        original(self)

    monkeypatch.setattr(SocketModeRun, "_refresh", late_refresh)
    client = smake(**QUIET)
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=30)
    old = slack.socket_connections[0]
    slack.refresh(warning_first=True, grace=5.0)
    second_connection_ready(slack)
    try:
        slack.post_message("general", "after the warning")  # routed to the new connection
        rec.wait_for("message", timeout=30)  # fails: waits for refresh_requested at 5 s
        assert rec.of("reconnecting") == []
    finally:
        wake_reader(slack, client, old)


# ====================================================================== bad input
# guards against a defect once found:
#  Seen.check does 'event:' + event_id: a non-string event_id (int,
#  list) raises TypeError in the reader, which ends the whole run
def test_a_non_string_event_id_does_not_end_the_run(slack: FakeSlack,
                                                           smake: Make) -> None:
    client = smake()
    rec = Recorder().attach(client, "message", "error", "disconnected")
    client.start().result(timeout=30)
    general = slack.channel_id("general")
    slack.send_envelope({"envelope_id": "bad-1", "type": "events_api",
                         "accepts_response_payload": False,
                         "payload": {"event_id": 12345, "event": {
                             "type": "message", "channel": general, "text": "odd id"}}})
    slack.post_message("general", "next")
    rec.wait_for("message", 2, timeout=30)
    assert texts(rec) == ["odd id", "next"]
    assert client.state == "ready" and rec.of("disconnected") == []


# ====================================================================== shutdown
# guards against a defect once found:
#  disconnect() while a handover is pending: shutdown aborts only
#  self.transport (the old connection); the reader's read fails, _await_handover takes the
#  pending handover although the run is stopping, and blocks reading the new connection
#  forever: the reader outlives disconnect() and the new socket stays open
def test_disconnect_with_a_pending_handover(slack: FakeSlack, smake: Make,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # the reader has not got round to the handover yet when disconnect() comes (with the
    # handover stall above that lasted up to client_ping_timeout; this pins it for any fix)
    original = SocketModeRun._take_handover

    def not_yet(self: SocketModeRun) -> Any:
        return original(self) if self.stop.is_set() else None

    monkeypatch.setattr(SocketModeRun, "_take_handover", not_yet)
    client = smake()
    client.start().result(timeout=30)
    slack.refresh(warning_first=False)
    run = run_of(client)
    wait_until(lambda: run.refresh.ready, timeout=30, what="a pending handover")
    t0 = time.monotonic()
    client.disconnect(timeout=1.0)
    took = time.monotonic() - t0
    try:
        assert took < 1.5, took
        assert not client_threads(), client_threads()
        slack.wait_until(lambda: not slack.socket_connections, timeout=30,
                         what="every Socket Mode connection closed by the client")
    finally:  # let the stuck reader go, so that later tests see no stray thread
        for conn in slack.socket_connections:
            conn.drop("reset")


# guards against a defect once found:
#  while draining the old connection the read loop never looks at
#  `stop`: disconnect() aborts only the new connection, and the reader reads the old one
#  until DRAIN_TIMEOUT (2 s), outliving disconnect(timeout=0.5)
def test_disconnect_during_the_drain(slack: FakeSlack, smake: Make,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # the old connection never answers the client's close frame (a lost close, a slow
    # peer): here the close frame is simply not written
    draining = threading.Event()

    def silent_begin_close(self: Any, wait: float = 1.0) -> None:
        self.close_sent = True
        draining.set()

    monkeypatch.setattr("slackrtm._engine.transport.Transport.begin_close", silent_begin_close)
    slack.close_delay = 30.0
    client = smake()
    client.start().result(timeout=30)
    slack.refresh(warning_first=True, grace=0.2)
    assert draining.wait(30), "no handover"
    t0 = time.monotonic()
    client.disconnect(timeout=0.5)
    assert time.monotonic() - t0 < 10.0  # (else: the 30 s close delay)
    assert not client_threads(), client_threads()


# guards against a defect once found:
#  the drain deadline counts time the reader spent paused on a full
#  backlog: envelopes the old connection delivered before its close are dropped unread
#  (never acked, redelivered later out of order, or lost when Slack stops retrying)
def test_a_slow_drain_loses_nothing(slack: FakeSlack, smake: Make,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sm_run, "DRAIN_TIMEOUT", 0.5)  # 2 s in production: same story
    slack.close_delay = 30.0
    slack.ack_timeout = 30.0  # no redelivery within the test: a dropped envelope is missing
    client = smake(max_backlog=1, **QUIET)
    gate = threading.Event()
    blocked = threading.Event()
    rec = Recorder()

    @client.on("message")
    def handler(event: Dict[str, Any]) -> None:
        if event["text"] == "block":
            blocked.set()
            gate.wait(5)
        elif event["text"].startswith("big"):
            time.sleep(0.35)  # a slow handler
        rec.handler("message")(event)

    client.start().result(timeout=30)
    old = slack.socket_connections[0]
    slack.post_message("general", "block")
    assert blocked.wait(30)
    slack.disconnect("refresh_requested", to=old)  # the reader pauses on the full backlog
    run = run_of(client)
    wait_until(lambda: run.refresh.ready, timeout=30, what="the next connection")
    general = slack.channel_id("general")
    bigs = [f"big{i} " + "x" * 100_000 for i in range(4)]  # one read each (64 KiB reads)
    for text in bigs:
        slack.events_api({"type": "message", "channel": general, "text": text}, to=old)
    slack.post_message("general", "after")  # on the new connection
    gate.set()
    rec.wait_for("message", 6, timeout=30)  # fails: big3 was dropped with the old socket
    assert texts(rec) == ["block", *bigs, "after"]


# guards against a defect once found:
#  teardown_reason is not reset when a handover makes another connection
#  current; a teardown of the old connection (failed ping while waiting for the refresh)
#  later replaces link_disabled of the new one, and the run reconnects instead of ending
def test_link_disabled_after_a_handover_ends_the_run(slack: FakeSlack,
                                                            smake: Make) -> None:
    slack.close_delay = 30.0
    client = smake(hello_timeout=4.0, client_ping_timeout=0.6, server_pong_timeout=0.3)
    rec = Recorder().attach(client, "error", "disconnected", "reconnecting")
    client.start().result(timeout=30)
    run = run_of(client)
    first = run.transport
    old = slack.socket_connections[0]
    slack.hold_hello = True
    slack.refresh(warning_first=False)
    slack.wait_for_socket_connect_count(2)
    slack.drop("reset", to=old)  # the old one dies before the new one is ready
    wait_until(lambda: run.teardown_reason is not None, timeout=30,
               what="the keep-alive to give the dead old connection up")
    slack.hold_hello = False
    slack.release_hello()
    wait_until(lambda: run.refresh.state is RefreshState.IDLE
               and run.transport not in (None, first), timeout=30, what="the handover")
    slack.disconnect("link_disabled")
    rec.wait_for("disconnected", timeout=30)  # fails: it reconnects
    (err,) = rec.of("error")[0]
    assert isinstance(err, PlatformError) and err.error == "link_disabled"
    assert rec.of("reconnecting") == []


# guards against a defect once found:
#  _await_handover waits only while `refreshing`; a refresh Slack asked
#  for whose refresher has not started yet (refresh_now) is not waited for when the old
#  connection closes right after its disconnect frame: a full reconnect follows
def test_old_connection_closing_at_once_after_refresh_requested(
        slack: FakeSlack, smake: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    original = SocketModeRun._refresh

    def late_refresh(self: SocketModeRun) -> None:  # the refresher is scheduled late
        time.sleep(0.2)
        original(self)

    monkeypatch.setattr(SocketModeRun, "_refresh", late_refresh)
    slack.close_delay = 0.0
    client = smake()
    rec = Recorder().attach(client, "message", "reconnecting")
    client.start().result(timeout=30)
    slack.disconnect("refresh_requested")
    slack.post_message("general", "held meanwhile")
    rec.wait_for("message", timeout=30)
    assert rec.of("reconnecting") == []
    assert slack.call_count("apps.connections.open") == 2


# guards against a defect once found:
#  a handshake that starts after shutdown took its snapshot is 'aborted'
#  in publish() before websocket-client made its socket (ws.sock is None: a no-op); it then
#  runs to hello_timeout and the thread outlives disconnect()
def test_disconnect_just_before_the_refresh_handshake(
        slack: FakeSlack, smake: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    original = SocketModeRun.open_transport
    stopper: List[threading.Thread] = []

    def racing_open(self: SocketModeRun, url: str) -> Any:
        if threading.current_thread().name == "slackrtm-refresher":
            # disconnect() lands between apps.connections.open's answer and the handshake
            t = threading.Thread(target=lambda: client.disconnect(timeout=1.0),
                                 name="test-disconnect")
            t.start()  # before the test's main thread can see it (and join it)
            stopper.append(t)
            self.stop.wait(2)
        return original(self, url)

    monkeypatch.setattr(SocketModeRun, "open_transport", racing_open)
    client = smake(hello_timeout=3.0)
    client.start().result(timeout=30)
    slack.hang_handshake = True
    slack.refresh(warning_first=False)
    wait_until(lambda: stopper, timeout=30, what="the refresh")
    stopper[0].join(3)
    assert not client_threads(), client_threads()


# guards against a defect once found:
#  _discard_handover runs before _supervise clears self.transport: a
#  refresh that starts in between (state still ready) stores a handover no read loop will
#  take or discard; when the run then ends outside a read loop (backoff) the socket leaks
def test_a_handover_stored_after_the_reader_gave_up_is_closed(
        slack: FakeSlack, smake: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    original = SocketModeRun._discard_handover
    widened: List[bool] = []

    def discard_then_refresh(self: SocketModeRun) -> None:
        original(self)
        if not widened:  # the refresher runs in the window (forced here, rare for real)
            widened.append(True)
            with self.ctx.lock:
                wake = self.refresh.ask()
            if wake:
                self.refresh_wanted.set()
            wait_until(lambda: not self.refresh.worth_waiting, timeout=30,
                       what="the refresh to be done (or refused)")

    monkeypatch.setattr(SocketModeRun, "_discard_handover", discard_then_refresh)
    client = smake(backoff=Backoff(initial=5.0))
    rec = Recorder().attach(client, "reconnecting")
    client.start().result(timeout=30)
    slack.drop("reset")
    rec.wait_for("reconnecting", timeout=30)  # waiting out 5 s of backoff
    client.disconnect(timeout=2)
    slack.wait_until(lambda: not slack.socket_connections, timeout=30,
                     what="the refresher's connection closed")  # fails: it stays open


# guards against a defect once found:
#  poll_every() sets the socket timeout, which also bounds the writer's
#  sendall: while a refresh is under way any write to the old connection that waits more
#  than 20 ms for buffer space fails, failing the ack and tearing the connection down
def test_a_slow_write_during_a_refresh_is_not_a_failure(slack: FakeSlack,
                                                               smake: Make) -> None:
    slack.close_delay = 30.0
    client = smake(ack="manual", hello_timeout=3.0, **{
        k: v for k, v in QUIET.items() if k != "hello_timeout"})
    go = threading.Event()
    arrived = threading.Event()
    futures: List[Any] = []

    @client.on("slash_commands")
    def on_command(request: Any) -> None:
        arrived.set()
        go.wait(5)
        futures.append(request.ack({"text": "x" * 14_000_000}))  # more than the buffers

    client.start().result(timeout=30)
    old = slack.socket_connections[0]
    slack.hold_hello = True  # the refresh stays under way
    slack.refresh(warning_first=False)
    slack.wait_for_socket_connect_count(2)
    slack.slash_command("/big", to=old)  # wakes the reader: it polls the old connection
    assert arrived.wait(30)
    slack.freeze(to=old)  # Slack reads nothing for a moment
    go.set()
    wait_until(lambda: futures, what="the ack")
    time.sleep(0.3)  # the writer is blocked on the full socket by now
    slack.unfreeze(to=old)
    try:
        assert futures[0].result(timeout=30) is None  # fails: NoReplyReceivedError
    finally:
        slack.hold_hello = False
        slack.release_hello()
