"""A lone surrogate (which UTF-8 cannot encode) in an outgoing frame fails only its own
item, at once and clearly; everything else in the same write batch is written."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from typing import Any, Callable, Dict, List

import pytest

from slackrtm import RTMClient, SocketModeClient, SocketModeRequest
from slackrtm.testing import FakeSlack
from tests.conftest import wait_until

BAD = "bad \ud800 text"


def test_send_message_with_a_lone_surrogate_returns_a_failed_future(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make()
    rtm.start().result(timeout=30)
    general = slack.channel_id("general")
    fut = rtm.send_message(BAD, general)  # never raises
    assert fut.done()
    err = fut.exception(0)
    assert isinstance(err, ValueError) and "lone surrogate" in str(err) and "U+D800" in str(err)
    parts = rtm.send_message("ok " + BAD, general, split=True)
    assert all(isinstance(p.exception(0), ValueError) for p in parts)
    assert rtm.send_message("after", general).result(timeout=30)["ok"] is True


def test_a_bad_send_in_a_queued_batch_fails_alone(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    """Sends queued before ready go out in one flush: the bad one (a surrogate in a field
    that is not the text) fails, those before and after it are written."""
    slack.hold_hello = True
    rtm = make()
    rtm.start()
    slack.wait_for_connections(1, timeout=30)
    general = slack.channel_id("general")
    typing = rtm.send_typing(general)
    bad = rtm.add_outgoing_event(True, "message", {"channel": general, "text": "x",
                                                   "thread_ts": "1.\udfff"})
    good = rtm.send_message("after the bad one", general)
    slack.release_hello()
    err = bad.exception(timeout=30)
    assert isinstance(err, ValueError) and "U+DFFF" in str(err)
    assert typing.result(timeout=30) is None
    assert good.result(timeout=30)["text"] == "after the bad one"
    assert rtm.ready
    rtm.disconnect()
    for fut in (typing, bad, good):
        assert fut.done()


def _envelope_text(eid_json: str, n: int) -> str:
    return ('{"envelope_id":' + eid_json + ',"type":"events_api",'
            '"accepts_response_payload":false,"payload":{"event_id":"EvS' + str(n) + '",'
            '"event":{"type":"reaction_added","n":' + str(n) + '}}}')


@pytest.mark.parametrize("ack", ["auto", "manual"])
def test_an_envelope_id_with_a_lone_surrogate_is_acked_as_it_came(
        slack: FakeSlack, smake: Callable[..., SocketModeClient], ack: str) -> None:
    client = smake(ack=ack)
    got: List[Dict[str, Any]] = []
    client.on("reaction_added", got.append)
    if ack == "manual":
        client.on("events_api", lambda request: request.ack())
    client.start().result(timeout=30)
    frames = [_envelope_text('"before-1"', 1), _envelope_text('"\\ud800-odd"', 2),
              _envelope_text('"after-3"', 3)]
    conn = slack.socket_connections[0]
    assert slack.send_frames(frames, to=conn) == 1  # one burst: their acks share a write
    for eid in ("before-1", "\ud800-odd", "after-3"):
        wait_until(lambda eid=eid: slack.acked(eid), 30, f"the ack of {eid!r}")
    wait_until(lambda: len(got) == 3, 30, "three events dispatched")
    assert client.ready


def test_an_ack_payload_with_a_lone_surrogate_raises_at_once(
        slack: FakeSlack, smake: Callable[..., SocketModeClient]) -> None:
    client = smake()
    raised: List[BaseException] = []
    done = threading.Event()

    @client.on("slash_commands")
    def on_command(request: SocketModeRequest) -> None:
        try:
            request.ack({"text": BAD})
        except ValueError as exc:
            raised.append(exc)
        done.set()

    client.start().result(timeout=30)
    env = slack.slash_command("/x", "hi")
    assert done.wait(30)
    assert raised and "lone surrogate" in str(raised[0])
    # left unacknowledged by the handler: acknowledged empty once it returned
    wait_until(lambda: slack.acked(env["envelope_id"]), 30, "the empty ack")
    ack = [a for a in slack.acks if a.envelope_id == env["envelope_id"]]
    assert len(ack) == 1 and ack[0].payload is None


def test_a_bad_ack_in_a_batch_fails_alone(slack: FakeSlack,
                                          smake: Callable[..., SocketModeClient]) -> None:
    """Straight at the writer: a queued ack text that cannot be encoded fails its own
    future; the acks queued with it are written."""
    client = smake(ack="manual")
    requests: List[SocketModeRequest] = []
    client.on("events_api", requests.append)
    client.start().result(timeout=30)
    for n in range(3):
        slack.events_api({"type": "reaction_added", "n": n})
    wait_until(lambda: len(requests) == 3, 30, "three envelopes")
    run = client._run
    assert run is not None
    from slackrtm._engine.writer import Bound

    futures: List[Future[None]] = [Future() for _ in range(3)]
    texts = [json.dumps({"envelope_id": requests[0].envelope_id}),
             '{"envelope_id":"\ud800"}',
             json.dumps({"envelope_id": requests[2].envelope_id})]
    run.write_bound_many([Bound(t, None, f) for t, f in zip(texts, futures)])
    assert futures[0].result(timeout=30) is None and futures[2].result(timeout=30) is None
    assert isinstance(futures[1].exception(timeout=30), ValueError)
    assert slack.acked(requests[0].envelope_id) and slack.acked(requests[2].envelope_id)
