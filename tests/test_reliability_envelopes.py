"""Malformed Socket Mode envelopes: each is warned about, acknowledged when it carries a
usable id, and never handed to a handler as something other than documented."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, List

import pytest

from slackrtm import SocketModeClient, SocketModeRequest
from slackrtm._protocols.malformed import recover_envelope_id
from slackrtm.testing import FakeSlack
from tests.conftest import wait_until

Make = Callable[..., SocketModeClient]


class Seen:
    """Every call of every handler, with the type of what it was given."""

    def __init__(self, client: SocketModeClient) -> None:
        self.calls: List[tuple[str, Any]] = []
        for name in ("events_api", "slash_commands", "interactive", "envelope",
                     "reaction_added", "message"):
            client.on(name, self._record(name))

    def _record(self, name: str) -> Callable[[Any], None]:
        def record(arg: Any) -> None:
            self.calls.append((name, arg))
        return record


def _event(eid: str, **over: Any) -> Dict[str, Any]:
    envelope: Dict[str, Any] = {
        "envelope_id": eid, "type": "events_api", "accepts_response_payload": False,
        "payload": {"event_id": "Ev" + eid, "event": {"type": "reaction_added",
                                                     "reaction": "ok"}}}
    envelope.update(over)
    return {k: v for k, v in envelope.items() if v is not _DROP}


_DROP = object()

MALFORMED = {
    "no-type": (_event("e-no-type", type=_DROP), True),
    "type-not-a-string": (_event("e-type-num", type=7), True),
    "no-payload": (_event("e-no-payload", payload=_DROP), True),
    "payload-a-list": (_event("e-payload-list", payload=[1, 2]), True),
    "payload-a-string": (_event("e-payload-str", payload="x"), True),
    "event-without-type": (_event("e-event-notype", payload={"event": {"x": 1}}), False),
    "no-event": (_event("e-no-event", payload={"event_id": "Ev1"}), False),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("ack", ["auto", "manual"])
def test_malformed_envelopes_are_warned_about_acked_and_never_mistyped(
        slack: FakeSlack, smake: Make, all_logs: List[logging.LogRecord], name: str,
        ack: str) -> None:
    envelope, dropped = MALFORMED[name]
    client = smake(ack=ack)
    seen = Seen(client)
    client.start().result(timeout=30)
    slack.send_envelope(envelope)
    eid = envelope["envelope_id"]
    wait_until(lambda: slack.acked(eid), 30, f"the ack of {eid}")
    # a good envelope after it is handled: the bad one was read before
    good = slack.events_api({"type": "reaction_added", "reaction": "after"})
    wait_until(lambda: slack.acked(good["envelope_id"]), 30, "the good envelope's ack")
    wait_until(lambda: any(n == "reaction_added" and a.get("reaction") == "after"
                           for n, a in seen.calls), 30, "the good event dispatched")
    warned = [r.getMessage() for r in all_logs if r.levelno == logging.WARNING
              and eid in r.getMessage() and "no handler acknowledged" not in r.getMessage()]
    assert len(warned) == 1, warned
    for handler, arg in seen.calls:
        if handler in ("events_api", "slash_commands", "interactive", "envelope"):
            assert isinstance(arg, SocketModeRequest), (handler, arg)
        else:
            assert isinstance(arg, dict) and isinstance(arg.get("type"), str), arg
    mine = [a for _, a in seen.calls
            if isinstance(a, SocketModeRequest) and a.envelope_id == eid]
    assert (mine == []) is dropped
    assert not any(n == "reaction_added" and a.get("reaction") == "ok" for n, a in seen.calls)
    assert len([a for a in slack.acks if a.envelope_id == eid]) == 1


@pytest.mark.parametrize("eid, acked", [
    (12345, True), (1.5, True), (None, False), ("", False), (True, False), ([1], False),
    ("<missing>", False)])
def test_envelopes_without_a_usable_string_id(slack: FakeSlack, smake: Make,
                                              all_logs: List[logging.LogRecord],
                                              eid: Any, acked: bool) -> None:
    client = smake()
    seen = Seen(client)
    client.start().result(timeout=30)
    envelope = _event("x")
    if eid == "<missing>":
        del envelope["envelope_id"]
    else:
        envelope["envelope_id"] = eid
    slack.send_envelope(envelope)
    good = slack.events_api({"type": "reaction_added", "reaction": "after"})
    wait_until(lambda: slack.acked(good["envelope_id"]), 30, "the good envelope's ack")
    wait_until(lambda: len(seen.calls) >= 2, 30, "the good envelope dispatched")
    # nothing but the good envelope reached a handler, and as a request
    assert [n for n, _ in seen.calls] == ["events_api", "reaction_added"], seen.calls
    assert seen.calls[0][1].envelope_id == good["envelope_id"]
    ids = [a.envelope_id for a in slack.acks]
    assert (eid in ids if acked else ids == [good["envelope_id"]]), ids
    warned = [r.getMessage() for r in all_logs if r.levelno == logging.WARNING
              and "envelope_id" in r.getMessage()]
    assert len(warned) == 1, warned


@pytest.mark.parametrize("shape", ["list", "object"])
def test_an_envelope_nested_5000_levels_deep_is_acked_by_its_id(
        slack: FakeSlack, smake: Make, all_logs: List[logging.LogRecord], shape: str) -> None:
    client = smake()
    seen = Seen(client)
    client.start().result(timeout=30)
    inner = "[" * 5000 + "]" * 5000 if shape == "list" else '{"a":' * 5000 + "1" + "}" * 5000
    text = ('{"envelope_id":"deep-1","type":"events_api","payload":{"event":'
            '{"type":"reaction_added","deep":' + inner + '}},"accepts_response_payload":false}')
    try:  # Python 3.13's json reads this depth; older ones raise RecursionError
        json.loads(text)
        parsable = True
    except RecursionError:
        parsable = False
    assert slack.send_raw(text) == 1
    wait_until(lambda: slack.acked("deep-1"), 30, "the deep envelope's ack")
    good = slack.events_api({"type": "reaction_added", "reaction": "after"})
    wait_until(lambda: slack.acked(good["envelope_id"]), 30, "the good envelope's ack")
    # where it parses, the deep envelope is an ordinary one, dispatched before the good one
    expected = ["events_api", "reaction_added"] * (2 if parsable else 1)
    wait_until(lambda: len(seen.calls) >= len(expected), 30, "the good envelope dispatched")
    assert [n for n, _ in seen.calls] == expected
    warned = [r.getMessage() for r in all_logs if r.levelno == logging.WARNING
              and "deep-1" in r.getMessage()]
    if parsable:
        assert warned == [], warned
    else:
        assert len(warned) == 1 and "nested too deep" in warned[0], warned
    assert client.ready


def test_recover_envelope_id_reads_only_the_top_level() -> None:
    deep = "[" * 5000
    assert recover_envelope_id('{"payload":{"envelope_id":"inner"},"envelope_id":"top",'
                               '"x":' + deep) == "top"
    assert recover_envelope_id('{"payload":{"envelope_id":"inner"},"x":' + deep) is None
    assert recover_envelope_id('{"envelope_id":7,"x":' + deep) == 7
    assert recover_envelope_id('{"envelope_id":null,"x":' + deep) is None
    assert recover_envelope_id('{"envelope_id":{"a":"b"},"x":' + deep) is None
    assert recover_envelope_id('{"envelope_id":"a\\"b","x":' + deep) == 'a"b'
    assert recover_envelope_id('{"text":"\\"envelope_id\\":\\"no\\"","x":' + deep) is None
