"""The dispatcher's two paths for a Slack event give the same calls: the hot path that
``Dispatcher._dispatch`` inlines for frames read from the socket, and ``_frame``, which
serves observers, envelopes' inner events and frames an observer delivers (backfill)."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from slackrtm._engine.dispatch import Dispatcher, Observer, Registry
from slackrtm._engine.entries import EnvelopeEntry, Lifecycle, Reply, Unparsed
from slackrtm._log import Log

TYPES = ["message", "error", "reaction_added", "hello", "message::bot_message"]
SUBTYPES = st.one_of(st.none(), st.sampled_from(["bot_message", "changed", ""]),
                     st.integers(), st.booleans())
ERRORS = st.one_of(st.none(), st.text(max_size=5),
                   st.fixed_dictionaries({"code": st.integers(), "msg": st.text(max_size=5)}))


@st.composite
def frames(draw: Any) -> Dict[str, Any]:
    frame: Dict[str, Any] = {"type": draw(st.sampled_from([*TYPES, "other"]))}
    subtype = draw(SUBTYPES)
    if subtype is not None:
        frame["subtype"] = subtype
    error = draw(ERRORS)
    if error is not None:
        frame["error"] = error
    return frame


def recording() -> Tuple[Registry, List[Tuple[str, Any]]]:
    """A registry whose handlers of every name the frames can reach record their calls."""
    registry = Registry()
    calls: List[Tuple[str, Any]] = []
    names = ["slack_event", "error", "raw_message", "other", "other::bot_message",
             "message::changed", "message::"] + TYPES + [t + "::bot_message" for t in TYPES]

    def handler_for(name: str) -> Any:
        def record(*args: Any) -> None:
            shown = [str(a) if isinstance(a, BaseException) else a for a in args]
            calls.append((name, json.dumps(shown, sort_keys=True, default=repr)))
        return record

    for name in names:
        registry.on(name, handler_for(name))
    return registry, calls


def dispatcher(registry: Registry) -> Dispatcher:
    return Dispatcher(registry, Log(), max_backlog=1000)


@settings(max_examples=300, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=6))
def test_the_inlined_hot_path_calls_what_frame_calls(batch: List[Dict[str, Any]]) -> None:
    hot_registry, hot = recording()
    hot_disp = dispatcher(hot_registry)
    hot_disp._dispatch([(json.dumps(f), f) for f in batch])
    slow_registry, slow = recording()
    slow_disp = dispatcher(slow_registry)
    for frame in batch:
        slow_disp.deliver(frame)  # _frame: the path observers and backfill take
    assert [c for c in hot if c[0] != "raw_message"] == slow
    assert [c[0] for c in hot].count("raw_message") == len(batch)


@settings(max_examples=100, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=6))
def test_an_observer_changes_no_handler_call(batch: List[Dict[str, Any]]) -> None:
    """With an observer registered, _dispatch takes _frame for every event: same calls."""
    plain_registry, plain = recording()
    dispatcher(plain_registry)._dispatch([(json.dumps(f), f) for f in batch])
    observed_registry, observed = recording()
    seen: List[str] = []

    class Watch(Observer):
        def frame(self, frame: Dict[str, Any], dispatcher: Dispatcher) -> bool:
            seen.append(frame["type"])
            return True

    observed_registry.observe(Watch())
    dispatcher(observed_registry)._dispatch([(json.dumps(f), f) for f in batch])
    assert observed == plain
    assert seen == [f["type"] for f in batch]


class FakeEnvelope:
    type = "events_api"

    def __init__(self) -> None:
        self.finished = 0

    def finish(self) -> None:
        self.finished += 1


def test_every_kind_of_entry_and_the_backlog() -> None:
    registry, calls = recording()
    registry.on("events_api", lambda env: calls.append(("events_api", env.type)))
    registry.on("ready", lambda: calls.append(("ready", "")))
    disp = dispatcher(registry)
    envelope = FakeEnvelope()
    inner = {"type": "reaction_added"}
    batch = [Unparsed("not json"), Reply('{"reply_to":1}'), Lifecycle("ready"),
             EnvelopeEntry('{"envelope_id":"e"}', inner, envelope),
             ('{"type":"message"}', {"type": "message"})]
    assert disp.admit(4, lambda: False, lambda paused: None)  # 4 read from the socket
    disp._dispatch(batch)
    names = [c[0] for c in calls]
    assert names == ["raw_message", "raw_message", "ready", "raw_message", "events_api",
                     "slack_event", "reaction_added", "raw_message", "slack_event",
                     "message"]
    assert envelope.finished == 1
    assert disp.backlog == 0  # the lifecycle event took no room
