"""The Socket Mode refresh as a sans-I/O state machine: when to open the next connection,
what happens to it, and when the reader may take it over.

Everything that changes the refresh's state lives in this file (the rule of the engine's
core: one table, one place). It owns no socket, thread or lock: ``SocketModeRun`` calls
it with the client's lock held, and carries out what it answers (open a connection,
close one, wake a thread). Time comes from the injected ``clock``, so tests drive every
interleaving of the reader and the refresher by calling the methods in that order.

States::

    DETACHED --attach--> IDLE --ask--> WANTED --begin--> OPENING --opened--> READY
                          ^  \\___________begin (lifetime due)___^  |   |          |
                          |                                       |   |          |
                          +------------------ failed ------------+   |          |
                          +------------------ take ---------------------------- +
                                    BACKOFF <--refused------------+
                                    BACKOFF --begin (retry due)--> OPENING

    any state --detach--> DETACHED (the reader gave the connection up)

- DETACHED: no connection to refresh (before the first one is read, after one was
  given up). No refresh may begin.
- IDLE: one connection is read; a refresh begins when its lifetime is near its end.
- WANTED: Slack asked for a refresh (``warning``, ``refresh_requested``); the refresher
  has not begun it yet.
- OPENING: the refresher is opening the next connection (Web API call, handshake, hello).
- READY: the next connection got its hello; the reader takes it over (``take``).
- BACKOFF: Slack refused the next connection (``too_many_websockets`` before its hello);
  the refresh is tried again at ``retry_at`` while the current connection lives.
"""

from __future__ import annotations

import enum
from typing import Callable, Dict, Generic, Optional, Tuple, TypeVar

from slackrtm._engine.states import IllegalTransition

__all__ = ["TRANSITIONS", "Event", "Refresh", "RefreshState"]

H = TypeVar("H")

#: Before the connection's announced lifetime runs out, refresh this many seconds early
#: (a tenth of the lifetime for short ones).
EARLY = 300.0


class RefreshState(str, enum.Enum):
    """Where the refresh of the current connection stands."""

    DETACHED = "detached"
    IDLE = "idle"
    WANTED = "wanted"
    OPENING = "opening"
    READY = "ready"
    BACKOFF = "backoff"

    def __str__(self) -> str:
        return str(self.value)


class Event(str, enum.Enum):
    """What happens to a refresh."""

    ATTACH = "attach"  # the supervisor made a new connection the one being read
    ASK = "ask"  # Slack asked for a refresh
    DROP = "drop"  # a refresh was asked for while the client is not ready: forgotten
    BEGIN = "begin"  # the refresher starts opening the next connection
    OPENED = "opened"  # the next connection got its hello
    FAILED = "failed"  # opening it failed (Web API error, handshake, no hello)
    REFUSED = "refused"  # Slack refused it: too_many_websockets before any hello
    TAKE = "take"  # the reader made the next connection the current one
    DETACH = "detach"  # the reader gave the connection up (it ended, or the run stops)

    def __str__(self) -> str:
        return str(self.value)


S = RefreshState
E = Event

#: The only legal transitions; anything else raises :class:`IllegalTransition`. A request
#: for a refresh while one is under way (or backing off, or with no connection) is
#: absorbed: the refresh under way answers it.
TRANSITIONS: Dict[Tuple[RefreshState, Event], RefreshState] = {
    (S.DETACHED, E.ATTACH): S.IDLE,
    (S.DETACHED, E.ASK): S.DETACHED,
    (S.DETACHED, E.DETACH): S.DETACHED,
    (S.IDLE, E.ASK): S.WANTED,
    (S.IDLE, E.BEGIN): S.OPENING,
    (S.IDLE, E.DETACH): S.DETACHED,
    (S.WANTED, E.ASK): S.WANTED,
    (S.WANTED, E.DROP): S.IDLE,
    (S.WANTED, E.BEGIN): S.OPENING,
    (S.WANTED, E.DETACH): S.DETACHED,
    (S.OPENING, E.ASK): S.OPENING,
    (S.OPENING, E.OPENED): S.READY,
    (S.OPENING, E.FAILED): S.IDLE,
    (S.OPENING, E.REFUSED): S.BACKOFF,
    (S.OPENING, E.DETACH): S.DETACHED,
    (S.READY, E.ASK): S.READY,
    (S.READY, E.TAKE): S.IDLE,
    (S.READY, E.DETACH): S.DETACHED,
    (S.BACKOFF, E.ASK): S.BACKOFF,
    (S.BACKOFF, E.BEGIN): S.OPENING,
    (S.BACKOFF, E.DETACH): S.DETACHED,
}


class Refresh(Generic[H]):
    """The refresh of one run's Socket Mode connection.

    ``clock`` gives the current time (``time.monotonic`` in the run); ``delay(n)`` the
    seconds to wait before trying again after ``n`` refusals in a row (the run passes its
    ``Backoff.delay``). ``H`` is whatever the run keeps of an opened connection; the
    machine only holds it between ``opened`` and ``take``.

    Each refresh the refresher begins gets a ticket; an answer about it (``opened``,
    ``failed``, ``refused``) carrying the ticket of a connection since given up is
    stale: ignored (``opened`` then returns False and the caller closes what it opened).
    """

    def __init__(self, clock: Callable[[], float], delay: Callable[[int], float]) -> None:
        self._clock = clock
        self._delay = delay
        self.state = RefreshState.DETACHED
        #: When the current connection's announced lifetime calls for a refresh.
        self.due_at: Optional[float] = None
        #: When a refused refresh is tried again (BACKOFF only).
        self.retry_at: Optional[float] = None
        #: Connections Slack refused in a row (too_many_websockets), refreshes or not.
        self.refusals = 0
        self._ticket = 0
        self._opened: Optional[H] = None

    def __repr__(self) -> str:
        return (f"<Refresh {self.state} due_at={self.due_at} retry_at={self.retry_at} "
                f"refusals={self.refusals}>")

    def _move(self, event: Event) -> None:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise IllegalTransition(f"refresh: {event} is not allowed in state {self.state}")
        self.state = new

    # -- the reader ------------------------------------------------------------------------
    def attach(self) -> None:
        """A new connection (not a refresh's) is now read: refreshes may begin."""
        self._move(E.ATTACH)
        self.due_at = None
        self.retry_at = None

    def lifetime(self, seconds: float) -> None:
        """The current connection's hello announced it lasts about ``seconds``: a refresh
        becomes due a little before it ends."""
        if seconds > 0:
            self.due_at = self._clock() + seconds - min(EARLY, seconds * 0.1)

    def ask(self) -> bool:
        """Slack asked for a refresh. True when the refresher should be woken (nothing
        was under way)."""
        before = self.state
        self._move(E.ASK)
        return before is S.IDLE

    def take(self) -> H:
        """The reader makes the opened connection the current one; returns it. The new
        connection's hello announces its own lifetime."""
        opened = self._opened
        assert opened is not None
        self._move(E.TAKE)
        self._opened = None
        self.due_at = None
        self.refusals = 0
        return opened

    def detach(self) -> Optional[H]:
        """The reader gives the current connection up: a refresh under way is for nothing.
        Returns a connection opened for it and not taken (the caller closes it)."""
        self._move(E.DETACH)
        self._ticket += 1
        opened, self._opened = self._opened, None
        self.due_at = None
        self.retry_at = None
        return opened

    def delivered(self) -> None:
        """An envelope arrived: Slack accepts the connection, refusals are behind."""
        self.refusals = 0

    def refused_current(self) -> float:
        """Slack refused the connection being set up (not a refresh's): count it; returns
        the least delay before the next attempt."""
        self.refusals += 1
        return self._delay(self.refusals)

    @property
    def worth_waiting(self) -> bool:
        """The current connection ended while a refresh is asked for or under way: its
        next connection may be moments away, so wait for it instead of reconnecting."""
        return self.state in (S.WANTED, S.OPENING)

    @property
    def ready(self) -> bool:
        """An opened connection waits for the reader (READY)."""
        return self.state is S.READY

    # -- the refresher -----------------------------------------------------------------------
    def wait_time(self, longest: float) -> float:
        """Seconds the refresher may sleep before something may be due (at most
        ``longest``; 0 when something is due now)."""
        now = self._clock()
        at: Optional[float] = None
        if self.state is S.WANTED:
            return 0.0
        if self.state is S.IDLE:
            at = self.due_at
        elif self.state is S.BACKOFF:
            at = self.retry_at
        return longest if at is None else max(0.0, min(longest, at - now))

    def begin(self, client_ready: bool) -> Optional[int]:
        """The refresher looks: when a refresh is due, it begins (OPENING) and this returns
        its ticket; else None. A refresh asked for while the client is not ready (a
        connection still waiting for its hello) is forgotten, as Slack will ask again."""
        now = self._clock()
        state = self.state
        if state is S.WANTED:
            if not client_ready:
                self._move(E.DROP)
                return None
        elif state is S.IDLE:
            if self.due_at is None or now < self.due_at or not client_ready:
                return None
        elif state is S.BACKOFF:
            if self.retry_at is not None and now < self.retry_at:
                return None
            if not client_ready:
                return None
        else:
            return None
        self._move(E.BEGIN)
        self.due_at = None
        self.retry_at = None
        return self._ticket

    def opened(self, ticket: int, connection: H) -> bool:
        """The refresh ``ticket`` opened ``connection`` (hello read). False when the
        ticket is stale: the caller closes the connection."""
        if ticket != self._ticket or self.state is not S.OPENING:
            return False
        self._move(E.OPENED)
        self._opened = connection
        return True

    def failed(self, ticket: int) -> None:
        """The refresh ``ticket`` failed: the current connection is used to its end (a
        later request from Slack begins another refresh)."""
        if ticket == self._ticket and self.state is S.OPENING:
            self._move(E.FAILED)

    def refused(self, ticket: int) -> Optional[float]:
        """Slack refused the refresh ``ticket``'s connection (too_many_websockets): it is
        tried again after a backoff while the current connection lives. Returns the delay
        (None when the ticket is stale)."""
        if ticket != self._ticket or self.state is not S.OPENING:
            return None
        self._move(E.REFUSED)
        self.refusals += 1
        delay = self._delay(self.refusals)
        self.retry_at = self._clock() + delay
        return delay
