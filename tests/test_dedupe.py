"""The duplicate filters: the in-process memory's window, and the keys events get."""

from __future__ import annotations

import pytest

from slackrtm import MemoryDedupe
from slackrtm._engine.dedupe import Dedupe, envelope_key, event_key
from slackrtm._protocols.envelope import Seen


def test_the_window_counts_envelopes_not_ids() -> None:
    """Issue 15 item 10: an envelope with an event_id took two slots, so the promised
    10,000-envelope window held about 5,000."""
    seen = Seen()
    for i in range(10_000):
        assert not seen.check(f"env-{i}", f"Ev{i:05d}")
    assert len(seen) == 10_000
    # the oldest of the last 10,000 envelopes is still known, by either id
    assert seen.check("retry-of-0", "Ev00000")
    assert seen.check("env-1", None)
    # 10,000 more: the first ones are forgotten, the last ones are not
    for i in range(10_000, 20_000):
        seen.check(f"env-{i}", f"Ev{i:05d}")
    assert not seen.check("env-5000", None)
    assert seen.check("again", "Ev19999")


def test_exactly_size_envelopes_are_kept_and_one_seen_again_is_refreshed() -> None:
    seen = MemoryDedupe(size=3)
    for key in "abc":
        assert seen.claim(key, 60)
    assert not seen.claim("a", 60)  # a duplicate: refreshed, now the newest
    assert seen.claim("d", 60)  # pushes out b, the oldest
    assert not seen.claim("a", 60) and not seen.claim("c", 60)
    assert seen.claim("b", 60)
    assert len(seen) == 3


def test_a_duplicate_by_one_id_keeps_both_ids_known() -> None:
    seen = MemoryDedupe(size=2)
    assert not seen.check("e1", "Ev1")
    assert seen.check("e2", "Ev1")  # a retry: new envelope id, same event id
    assert not seen.check("e3", "Ev3")
    # e1, e2 and Ev1 are one envelope (one slot): all still known after e3
    assert seen.check("e1", None) and seen.check("e2", None)


def test_memory_dedupe_is_a_dedupe_and_checks_its_size() -> None:
    assert isinstance(MemoryDedupe(), Dedupe)
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="size"):
            MemoryDedupe(bad)  # type: ignore[arg-type]


def test_keys() -> None:
    assert envelope_key("e1", "Ev1") == "sm:ev:Ev1"
    message = {"type": "message", "channel": "C1", "ts": "1.2"}
    assert envelope_key("e1", "Ev1", message) == "msg:C1:1.2"  # as its backfilled copy
    assert envelope_key("e1", None) == envelope_key("e1", "") == "sm:env:e1"
    assert event_key({"type": "message", "channel": "C1", "ts": "1.2"}) == \
        ("msg:C1:1.2", float("inf"))
    assert event_key({"type": "reaction_added", "event_ts": "3.4"}) == \
        ("rtm:reaction_added:3.4", float("inf"))
    for frame in ({"type": "hello"}, {"type": "goodbye"}, {"type": "reconnect_url"}):
        assert event_key(frame) is None
    a = event_key({"type": "presence_change", "user": "U1", "presence": "away"})
    b = event_key({"presence": "away", "user": "U1", "type": "presence_change"})
    c = event_key({"type": "presence_change", "user": "U1", "presence": "active"})
    assert a is not None and a == b and a != c and a[1] == 60.0


def test_a_forgotten_envelope_is_new_again() -> None:
    seen = MemoryDedupe(size=3)
    assert not seen.check("e1", "Ev1")
    assert not seen.check("e2", "Ev2")
    seen.forget("e1", "Ev1")
    assert len(seen) == 1
    assert not seen.check("e1-retry", "Ev1")
    assert seen.check("e2", None)
