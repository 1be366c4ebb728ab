"""RTM replies matched strictly, odd ones logged once per kind; run_forever() from a
handler refused at once."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any, Callable, Dict, List

import pytest

from slackrtm import RTMClient, SendMessagePlatformError
from slackrtm.testing import FakeSlack
from tests.conftest import wait_until

Make = Callable[..., RTMClient]


def _answer(slack: FakeSlack, rtm: RTMClient, reply: Dict[str, Any]) -> Future[Any]:
    """Send a message the fake does not answer, then answer it with ``reply``."""
    channel = slack.channel_id("general")
    before = len([f for f in slack.received if f.get("type") == "message"])
    fut = rtm.send_message(f"m{before}", channel)
    frames = slack.wait_for_received("message", before + 1, timeout=30)
    mid = frames[-1]["id"]
    slack.inject(dict(reply, reply_to=mid))
    return fut


@pytest.mark.parametrize("reply", [
    {"ok": "false", "ts": "1.1", "text": "x"},
    {"ok": "true", "ts": "1.1", "text": "x"},
    {"ok": 1, "ts": "1.1", "text": "x"},
    {"ok": None, "ts": "1.1", "text": "x"},
    {"error": {"code": 2, "msg": "nope"}},
    {"ts": "1.1", "text": "x"},
], ids=["ok-string-false", "ok-string-true", "ok-one", "ok-null", "error-no-ok", "no-ok"])
def test_only_ok_true_is_a_success(slack: FakeSlack, make: Make, reply: Dict[str, Any],
                                   all_logs: List[logging.LogRecord]) -> None:
    slack.drop_replies = True
    rtm = make()
    rtm.start().result(timeout=30)
    fut = _answer(slack, rtm, reply)
    with pytest.raises(SendMessagePlatformError):
        fut.result(timeout=30)
    good = _answer(slack, rtm, {"ok": True, "ts": "2.2", "text": "y"})
    assert good.result(timeout=30)["ts"] == "2.2"
    warned = [r for r in all_logs if r.levelno == logging.WARNING and "reply" in
              r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in warned]


def test_a_users_ping_is_answered_by_its_pong(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    pong = rtm.add_outgoing_event(True, "ping", {"n": 7}).result(timeout=30)
    assert pong["type"] == "pong" and pong["n"] == 7


def test_odd_reply_to_values_are_logged_once_per_kind(
        slack: FakeSlack, make: Make, all_logs: List[logging.LogRecord]) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    odd: List[Any] = ["1", 1.0, True, None, [1], {"id": 1}]
    for value in odd * 3:
        slack.inject({"reply_to": value, "ok": True})
    # a frame after them, answered: every odd one was read before its reply
    channel = slack.channel_id("general")
    rtm.send_message("after", channel).result(timeout=30)
    warned = [r.getMessage() for r in all_logs if r.levelno == logging.WARNING
              and "reply_to" in r.getMessage()]
    assert len(warned) == len(odd), warned
    for shown in ("'1'", "1.0", "True", "None", "[1]", "{'id': 1}"):
        assert any(shown in line for line in warned), (shown, warned)
    assert rtm.ready


def test_run_forever_from_a_handler_raises_at_once(slack: FakeSlack, make: Make) -> None:
    rtm = make()
    caught: List[BaseException] = []
    after = threading.Event()

    @rtm.on("hi")
    def on_hi(event: Dict[str, Any]) -> None:
        try:
            rtm.run_forever()
        except RuntimeError as exc:
            caught.append(exc)
        after.set()

    rtm.on("later", lambda event: caught.append(RuntimeError("dispatch goes on")))
    rtm.start().result(timeout=30)
    slack.inject({"type": "hi"})
    assert after.wait(30), "run_forever() from a handler blocked"
    assert "handler" in str(caught[0])
    slack.inject({"type": "later"})
    wait_until(lambda: len(caught) == 2, 30, "the next event dispatched")
    assert rtm.ready


def test_run_forever_from_a_handler_that_restarted_the_client(slack: FakeSlack,
                                                              make: Make) -> None:
    """A handler that disconnects and starts again, then calls run_forever(): refused at
    once (the new run's dispatcher waits for this handler to return)."""
    rtm = make()
    caught: List[BaseException] = []
    done = threading.Event()

    @rtm.on("restart")
    def restart(event: Dict[str, Any]) -> None:
        rtm.disconnect()
        rtm.start()
        try:
            rtm.run_forever()
        except RuntimeError as exc:
            caught.append(exc)
        done.set()

    rtm.start().result(timeout=30)
    slack.inject({"type": "restart"})
    assert done.wait(30), "run_forever() from a handler blocked"
    assert caught and "handler" in str(caught[0])
    wait_until(lambda: rtm.ready, 30, "the restarted run ready")
