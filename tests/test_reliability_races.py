"""disconnect() racing start(), reconnects, sends and handlers, from several threads;
repeated start/disconnect cycles; nothing left behind (threads, sockets, descriptors)."""

from __future__ import annotations

import gc
import random
import threading
import time
import warnings
from concurrent.futures import Future
from typing import Any, Callable, Dict, List

import pytest

from slackrtm import Backoff, RTMClient, SlackHTTPError
from slackrtm.testing import FakeSlack
from tests.conftest import LIFECYCLE, Recorder, wait_until
from tests.test_reliability_support import FlakyRelay, LeakCheck, open_fds, slackrtm_threads

Make = Callable[..., RTMClient]


def outcome(fut: Future[Any]) -> str:
    assert fut.done(), "a future was left pending"
    if fut.cancelled():
        return "cancelled"
    err = fut.exception(0)
    return "ok" if err is None else type(err).__name__


def runs_of(names: List[str]) -> List[List[str]]:
    """Split a lifecycle stream into runs (each ends with ``disconnected``)."""
    runs: List[List[str]] = [[]]
    for name in names:
        runs[-1].append(name)
        if name == "disconnected":
            runs.append([])
    return [r for r in runs if r]


def check_runs(names: List[str]) -> int:
    """Each run: starts connecting, ends disconnecting then disconnected, once each."""
    runs = runs_of(names)
    for run in runs:
        assert run[0] == "connecting", run
        assert run[-2:] == ["disconnecting", "disconnected"], run
        assert run.count("disconnecting") == 1 and run.count("disconnected") == 1, run
    return len(runs)


def test_start_disconnect_sends_and_drops_race_from_many_threads(slack: FakeSlack,
                                                                 make: Make) -> None:
    """Rounds of: start() from two threads, disconnect() from two others at random
    moments, sends from two more, a drop, and a handler that sends (and sometimes
    disconnects). Every future ends (documented errors only), every run's lifecycle is
    whole, and the client always ends disconnected with no thread left."""
    leaks = LeakCheck()
    rtm = make(hello_timeout=0.5)
    rec = Recorder().attach(rtm, *LIFECYCLE)
    channel = slack.channel_id("general")
    futures: List[Future[Any]] = []
    starts: List[Future[Any]] = []
    lock = threading.Lock()
    rng = random.Random(7)
    disconnect_from_handler = threading.Event()

    @rtm.on("ready")
    def on_ready() -> None:
        with lock:
            futures.append(rtm.send_message("from handler", channel))
        if disconnect_from_handler.is_set():
            rtm.disconnect()

    raised: List[BaseException] = []

    def guarded(fn: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                fn(*args)
            except BaseException as exc:  # a thread's exception would not fail the test
                raised.append(exc)
        return run

    @guarded
    def starter() -> None:
        fut = rtm.start()
        with lock:
            starts.append(fut)

    @guarded
    def stopper(delay: float) -> None:
        time.sleep(delay)
        rtm.disconnect(timeout=5)

    @guarded
    def sender(n: int) -> None:
        for i in range(n):
            fut = rtm.send_message(f"race-{i}", channel)
            with lock:
                futures.append(fut)

    for round_ in range(25):
        if round_ % 5 == 4:
            disconnect_from_handler.set()
        threads = [threading.Thread(target=starter), threading.Thread(target=starter),
                   threading.Thread(target=stopper, args=(rng.uniform(0, 0.03),)),
                   threading.Thread(target=stopper, args=(rng.uniform(0, 0.06),)),
                   threading.Thread(target=sender, args=(20,)),
                   threading.Thread(target=sender, args=(20,))]
        if round_ % 3 == 0:
            threads.append(threading.Thread(target=lambda: slack.drop()))
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
            assert not t.is_alive()
        rtm.disconnect(timeout=5)
        disconnect_from_handler.clear()
        assert rtm.state == "disconnected" and rtm.wait(0)
        assert not slackrtm_threads(), slackrtm_threads()
    assert raised == []
    with lock:
        outcomes = [outcome(f) for f in futures]
        start_outcomes = [outcome(f) for f in starts]
    assert set(outcomes) <= {"ok", "NoReplyReceivedError", "SendWhileDisconnectedError"}
    assert set(start_outcomes) <= {"ok", "cancelled"}, start_outcomes
    assert "ok" in outcomes and "SendWhileDisconnectedError" in outcomes
    # the lifecycle is dispatched after disconnect() returns only up to "disconnected"
    wait_until(lambda: rec.names().count("disconnected") >= 1, what="a run")
    runs = check_runs([n for n in rec.names() if n != "error" and n != "unable_to_rtm_start"])
    # a run disconnected before its reader got to rtm.connect makes no call at all
    assert runs >= 25 and slack.call_count("rtm.connect") >= runs // 2
    assert rec.of("error") == []
    leaks.check(slack)


@pytest.mark.parametrize("when", ["at_once", "during_rtm_connect", "during_handshake",
                                  "before_hello", "when_ready", "during_backoff",
                                  "from_a_handler"])
def test_50_start_disconnect_cycles_leave_no_thread_or_descriptor(
        slack: FakeSlack, make: Make, when: str) -> None:
    # during_backoff: a long backoff, so that no next attempt (an rtm.connect FakeSlack may
    # still be answering after the abort) can use up the next cycle's fault
    backoff = Backoff(initial=0.0, base=5.0, jitter=False) if when == "during_backoff" else \
        Backoff(initial=0.0, base=0.01, maximum=0.05)
    rtm = make(hello_timeout=5.0, backoff=backoff)
    rec = Recorder().attach(rtm, "ready", "connected", "reconnecting", "disconnected")
    if when == "from_a_handler":
        rtm.on("ready", lambda: rtm.disconnect())
    baseline = -1
    cycles = 50 if when in ("at_once", "when_ready", "from_a_handler") else 10
    # a socket closed only by the garbage collector warns: count those too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        baseline = run_cycles(slack, rtm, rec, when, cycles)
        slack.wait_until(lambda: not slack.connections, 30, "server side closed")
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == [], unclosed[:3]
    LeakCheck().mark().check(slack)  # threads
    assert baseline < 0 or settle_fds(baseline), f"{open_fds()} descriptors, {baseline} before"


def run_cycles(slack: FakeSlack, rtm: RTMClient, rec: Recorder, when: str,
               cycles: int) -> int:
    baseline = -1
    for i in range(cycles):
        if when == "during_rtm_connect":
            slack.fail_next("rtm.connect", delay=1.0)
        elif when == "during_handshake":
            slack.hang_handshake = True
        elif when == "before_hello":
            slack.hold_hello = True
        elif when == "during_backoff":
            slack.fail_next("rtm.connect", "internal_error")
        start = rtm.start()
        sent = rtm.send_message(f"cycle-{i}", slack.channel_id("general"))
        if when == "during_rtm_connect":
            slack.wait_for_call("rtm.connect", i + 1)
        elif when == "during_handshake":
            slack.wait_until(lambda n=i + 1: slack.handshake_attempts >= n, 30, "handshake")
        elif when == "before_hello":
            slack.wait_for_connect_count(i + 1)
        elif when == "when_ready":
            start.result(timeout=30)
        elif when == "during_backoff":
            rec.wait_for("reconnecting", i + 1)
        elif when == "from_a_handler":
            rec.wait_for("disconnected", i + 1)
        t0 = time.monotonic()
        rtm.disconnect(timeout=5)
        assert time.monotonic() - t0 < 2.0, f"{when}: disconnect() took too long"
        slack.hang_handshake = slack.hold_hello = False
        assert rtm.state == "disconnected"
        assert not slackrtm_threads(), slackrtm_threads()
        assert outcome(start) in ("ok", "cancelled")
        assert outcome(sent) in ("ok", "NoReplyReceivedError", "SendWhileDisconnectedError")
        if i == 1:  # after a warm-up cycle (lazy imports, pools, FakeSlack threads)
            slack.wait_until(lambda: not slack.connections, 30, "server side closed")
            baseline = open_fds()
    return baseline


def settle_fds(limit: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if open_fds() <= limit:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@pytest.mark.parametrize("event", ["connecting", "authenticated", "connected", "ready",
                                   "reconnecting", "message", "unable_to_rtm_start"])
def test_disconnect_from_a_handler_of_every_event(slack: FakeSlack, make: Make,
                                                  event: str) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, *LIFECYCLE)
    order: List[str] = []

    @rtm.on(event)
    def stop(*args: Any) -> None:
        order.append("handler")
        rtm.disconnect(timeout=5)  # returns at once: disconnected runs after this handler
        order.append("returned")

    rtm.on("disconnected", lambda: order.append("disconnected"))
    if event == "reconnecting" or event == "unable_to_rtm_start":
        slack.fail_next("rtm.connect", "internal_error")
    start = rtm.start()
    if event == "message":
        start.result(timeout=30)
        slack.post_message("general", "hello")
    assert rtm.wait(30)
    wait_until(lambda: "disconnected" in order, what="disconnected")
    assert order[:3] == ["handler", "returned", "disconnected"]
    assert rec.names().count("disconnected") == 1
    assert outcome(start) in ("ok", "cancelled")
    wait_until(lambda: not slackrtm_threads(), what="threads to end")


def test_disconnect_returns_within_its_timeout_while_a_handler_blocks(
        slack: FakeSlack, make: Make) -> None:
    rtm = make()
    gate, inside = threading.Event(), threading.Event()

    @rtm.on("stuck")
    def stuck(event: Dict[str, Any]) -> None:
        inside.set()
        gate.wait(10)

    rtm.start().result(timeout=30)
    slack.inject({"type": "stuck"})
    assert inside.wait(30)
    queued = rtm.send_message("x", slack.channel_id("general"))
    t0 = time.monotonic()
    rtm.disconnect(timeout=0.3)
    assert time.monotonic() - t0 < 5.0  # (else: the handler's 10 s)
    assert rtm.state == "disconnected" and queued.done()
    assert outcome(queued) in ("ok", "NoReplyReceivedError", "SendWhileDisconnectedError")
    assert [t.name for t in slackrtm_threads()] == ["slackrtm-dispatcher"]
    gate.set()
    wait_until(lambda: not slackrtm_threads(), what="the dispatcher to finish")


def test_many_threads_disconnect_while_many_threads_send(slack: FakeSlack,
                                                         make: Make) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    futures: List[Future[Any]] = []
    lock = threading.Lock()
    go = threading.Barrier(16)

    def send(k: int) -> None:
        go.wait()
        for i in range(200):
            fut = rtm.send_message(f"t{k}-{i}", channel)
            with lock:
                futures.append(fut)

    def stop() -> None:
        go.wait()
        time.sleep(0.01)
        rtm.disconnect()

    threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
    threads += [threading.Thread(target=stop) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert rtm.state == "disconnected" and not slackrtm_threads()
    kinds = {outcome(f) for f in futures}
    assert kinds <= {"ok", "NoReplyReceivedError", "SendWhileDisconnectedError"}, kinds
    assert len(futures) == 1600
    texts = [f.get("text") for f in slack.received if f.get("type") == "message"]
    assert len(texts) == len(set(texts))  # nothing written twice
    answered = {f.result(0)["text"] for f in futures if outcome(f) == "ok"}
    assert answered <= set(texts)


def test_disconnect_closes_http_connections_even_while_errors_are_kept(
        slack: FakeSlack, make: Make) -> None:
    with FlakyRelay(slack) as relay:
        kept: List[BaseException] = []
        rtm = make(slack_api_url=relay.api_url)
        rtm.on("unable_to_rtm_start", kept.append)
        before = open_fds()
        relay.arm("request")
        rtm.start().result(timeout=30)
        rtm.disconnect()
        assert isinstance(kept[0], SlackHTTPError)
        assert settle_fds(before, timeout=1.0), f"{open_fds()} open, {before} before"
