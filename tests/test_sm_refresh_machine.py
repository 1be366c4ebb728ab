"""The Socket Mode refresh as a sans-I/O state machine: its table, written out here in
full, every (state, event) pair tried, and the races between the reader and the
refresher reached by calling the methods in the order the threads would."""

from __future__ import annotations

import itertools
from typing import List, Optional, Tuple

import pytest

from slackrtm._engine.states import IllegalTransition
from slackrtm._protocols.refresh import TRANSITIONS, Event, Refresh, RefreshState

S = RefreshState
E = Event

#: The expected table, written out by hand (not derived from the code under test).
EXPECTED = {
    ("detached", "attach"): "idle",
    ("detached", "ask"): "detached",
    ("detached", "detach"): "detached",
    ("idle", "ask"): "wanted",
    ("idle", "begin"): "opening",
    ("idle", "detach"): "detached",
    ("wanted", "ask"): "wanted",
    ("wanted", "drop"): "idle",
    ("wanted", "begin"): "opening",
    ("wanted", "detach"): "detached",
    ("opening", "ask"): "opening",
    ("opening", "opened"): "ready",
    ("opening", "failed"): "idle",
    ("opening", "refused"): "backoff",
    ("opening", "detach"): "detached",
    ("ready", "ask"): "ready",
    ("ready", "take"): "idle",
    ("ready", "detach"): "detached",
    ("backoff", "ask"): "backoff",
    ("backoff", "begin"): "opening",
    ("backoff", "detach"): "detached",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def machine(delays: Optional[List[float]] = None) -> Tuple[Refresh[str], Clock]:
    clock = Clock()
    table = delays or [1.0, 2.0, 4.0, 8.0]
    return Refresh(clock, lambda n: table[min(n, len(table)) - 1]), clock


def in_state(state: RefreshState) -> Tuple[Refresh[str], Clock, int]:
    """A machine brought to ``state`` through public methods only; the last ticket."""
    m, clock = machine()
    ticket = -1
    if state is S.DETACHED:
        return m, clock, ticket
    m.attach()
    if state is S.IDLE:
        return m, clock, ticket
    m.ask()
    if state is S.WANTED:
        return m, clock, ticket
    ticket = m.begin(client_ready=True)  # type: ignore[assignment]
    if state is S.OPENING:
        return m, clock, ticket
    if state is S.READY:
        assert m.opened(ticket, "next")
        return m, clock, ticket
    assert state is S.BACKOFF
    m.refused(ticket)
    return m, clock, ticket


def test_the_table_is_the_expected_one() -> None:
    assert {(s.value, e.value): t.value for (s, e), t in TRANSITIONS.items()} == EXPECTED


def fire(m: Refresh[str], clock: Clock, event: Event, ticket: int) -> None:
    """Drive ``event`` through the public method that causes it, as the run would."""
    if event is E.ATTACH:
        m.attach()
    elif event is E.ASK:
        m.ask()
    elif event is E.DROP:
        m.begin(client_ready=False)
    elif event is E.BEGIN:
        m.lifetime(10.0)  # due in 9 s (only IDLE looks at it)
        clock.now += 10_000  # past any due time or retry time
        m.begin(client_ready=True)
    elif event is E.OPENED:
        m.opened(ticket, "next")
    elif event is E.FAILED:
        m.failed(ticket)
    elif event is E.REFUSED:
        m.refused(ticket)
    elif event is E.TAKE:
        if m.ready:
            m.take()
        else:
            m._move(E.TAKE)  # the only way to try it where it is illegal
    elif event is E.DETACH:
        m.detach()


@pytest.mark.parametrize("state,event", list(itertools.product(RefreshState, Event)))
def test_every_pair_through_the_public_methods(state: RefreshState, event: Event) -> None:
    """Each (state, event): the expected next state, or no change where the method has
    nothing to do (a stale answer, nothing due), or IllegalTransition where only a bug
    could get there."""
    m, clock, ticket = in_state(state)
    expected = EXPECTED.get((state.value, event.value))
    guarded = {E.DROP, E.BEGIN, E.OPENED, E.FAILED, E.REFUSED}  # methods that look first
    if expected is None and event not in guarded:
        with pytest.raises(IllegalTransition):
            fire(m, clock, event, ticket)
        assert m.state is state
        return
    fire(m, clock, event, ticket)
    assert m.state.value == (expected or state.value)


def test_an_illegal_move_names_the_event_and_the_state() -> None:
    m, _ = machine()
    with pytest.raises(IllegalTransition, match="take is not allowed in state detached"):
        m._move(E.TAKE)
    m.attach()
    with pytest.raises(IllegalTransition, match="attach is not allowed in state idle"):
        m.attach()


# ---------------------------------------------------------------------- the lifetime
def test_a_refresh_is_due_before_the_lifetime_ends() -> None:
    m, clock = machine()
    m.attach()
    assert m.wait_time(30.0) == 30.0  # nothing known: sleep the longest
    m.lifetime(3600.0)
    assert m.due_at == clock.now + 3600.0 - 300.0  # 300 s early
    assert m.wait_time(30.0) == 30.0
    m.lifetime(360.0)  # debug_reconnects: a tenth early
    assert m.due_at == pytest.approx(clock.now + 324.0)
    assert m.wait_time(1e6) == pytest.approx(324.0)
    assert m.begin(client_ready=True) is None  # not yet
    clock.now += 324.0
    assert m.wait_time(30.0) == 0.0
    assert m.begin(client_ready=False) is None  # a connection still waiting for hello
    assert m.state is S.IDLE and m.due_at is not None  # still due once ready
    assert m.begin(client_ready=True) == 0
    assert m.state is S.OPENING and m.due_at is None
    m.lifetime(0)  # nonsense: ignored
    assert m.due_at is None


def test_a_refresh_asked_for_is_due_at_once_and_dropped_when_not_ready() -> None:
    m, _ = machine()
    m.attach()
    assert m.ask() is True  # the refresher must be woken
    assert m.wait_time(30.0) == 0.0
    assert m.ask() is False  # asked twice: one refresh
    assert m.begin(client_ready=False) is None
    assert m.state is S.IDLE  # forgotten: Slack asks again


def test_take_hands_over_the_opened_connection_once() -> None:
    m, _ = machine()
    m.attach()
    m.lifetime(100.0)
    m.ask()
    ticket = m.begin(client_ready=True)
    assert ticket is not None
    assert m.worth_waiting  # the old connection ending now: wait for the next one
    assert m.opened(ticket, "conn-2")
    assert m.ready and not m.worth_waiting
    assert m.take() == "conn-2"
    assert m.state is S.IDLE and m.due_at is None  # the new connection's hello sets it
    assert m.detach() is None


# ---------------------------------------------------------------------- races
def test_the_reader_gives_up_while_the_refresher_opens() -> None:
    """The old connection ends and the reader gives it up while the next one is being
    opened: the late connection is refused (closed by the caller), and no refresh may
    begin until a new connection is attached."""
    m, clock = machine()
    m.attach()
    m.ask()
    ticket = m.begin(client_ready=True)
    assert ticket is not None
    assert m.detach() is None
    assert m.opened(ticket, "late") is False
    assert m.state is S.DETACHED
    m.failed(ticket)
    assert m.refused(ticket) is None  # stale answers change nothing
    assert m.state is S.DETACHED
    m.ask()
    clock.now += 1e6
    assert m.begin(client_ready=True) is None  # nothing to refresh
    m.attach()
    m.ask()
    assert m.begin(client_ready=True) == ticket + 1


def test_a_stale_answer_does_not_touch_a_newer_refresh() -> None:
    m, _ = machine()
    m.attach()
    m.ask()
    first = m.begin(client_ready=True)
    assert first is not None
    m.detach()
    m.attach()
    m.ask()
    second = m.begin(client_ready=True)
    assert second is not None and second != first
    m.failed(first)
    assert m.refused(first) is None
    assert m.opened(first, "old") is False
    assert m.state is S.OPENING
    assert m.opened(second, "new")


def test_the_opened_connection_is_returned_when_the_run_stops() -> None:
    m, _ = machine()
    m.attach()
    m.ask()
    ticket = m.begin(client_ready=True)
    assert ticket is not None
    assert m.opened(ticket, "pending")
    assert m.detach() == "pending"  # shutdown closes it
    assert m.detach() is None  # the reader's own detach finds nothing left


def test_asked_again_while_opening_is_one_refresh() -> None:
    """Slack sends warning then refresh_requested: the second request finds the refresh
    under way (or ready) and does not start another."""
    m, _ = machine()
    m.attach()
    assert m.ask()
    ticket = m.begin(client_ready=True)
    assert ticket is not None
    assert m.ask() is False and m.state is S.OPENING
    assert m.opened(ticket, "next")
    assert m.ask() is False and m.state is S.READY
    assert m.begin(client_ready=True) is None


def test_a_failed_refresh_waits_for_slack_to_ask_again() -> None:
    m, clock = machine()
    m.attach()
    m.ask()
    ticket = m.begin(client_ready=True)
    assert ticket is not None
    m.failed(ticket)
    assert m.state is S.IDLE and not m.worth_waiting
    clock.now += 1e6
    assert m.begin(client_ready=True) is None
    assert m.ask()
    assert m.begin(client_ready=True) == ticket


# ---------------------------------------------------------------------- too_many_websockets
def test_a_refused_refresh_is_retried_with_growing_backoff() -> None:
    m, clock = machine([1.0, 2.0, 4.0])
    m.attach()
    m.ask()
    ticket = m.begin(client_ready=True)
    assert ticket is not None
    assert m.refused(ticket) == 1.0
    assert m.state is S.BACKOFF and m.retry_at == clock.now + 1.0
    assert not m.worth_waiting  # the old one ending now: reconnect normally
    assert m.ask() is False  # Slack asking meanwhile does not cut the backoff short
    assert m.wait_time(30.0) == pytest.approx(1.0)
    assert m.begin(client_ready=True) is None
    clock.now += 1.0
    ticket = m.begin(client_ready=True)  # type: ignore[assignment]
    assert ticket is not None and m.state is S.OPENING
    assert m.refused(ticket) == 2.0
    clock.now += 2.0
    ticket = m.begin(client_ready=True)  # type: ignore[assignment]
    assert ticket is not None
    assert m.refused(ticket) == 4.0
    clock.now += 4.0
    ticket = m.begin(client_ready=True)  # type: ignore[assignment]
    assert ticket is not None
    assert m.opened(ticket, "finally")
    assert m.take() == "finally"
    assert m.refusals == 0


def test_the_old_connection_ending_during_the_backoff_ends_the_retries() -> None:
    m, clock = machine()
    m.attach()
    m.ask()
    ticket = m.begin(client_ready=True)
    assert ticket is not None
    m.refused(ticket)
    assert m.detach() is None
    assert m.state is S.DETACHED and m.retry_at is None
    clock.now += 100
    assert m.begin(client_ready=True) is None
    assert m.refusals == 1  # the reconnect that follows backs off by the same count
    assert m.refused_current() == 2.0
    m.delivered()
    assert m.refusals == 0
