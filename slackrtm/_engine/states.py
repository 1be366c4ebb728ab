"""The vocabulary of the sans-I/O core: states and their transitions, outgoing sends, the
effects the core hands back to its caller, and the timing settings. No I/O, no logic
beyond the transition table: ``_core.Core`` applies the rules."""

from __future__ import annotations

import enum
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

from slackrtm.errors import SlackRTMError

__all__ = ["RECONNECT_EVENTS", "TRANSITIONS", "Effect", "IllegalTransition", "PingDue",
           "Resolve", "Send", "State", "Teardown", "Timeouts", "WakeWriter", "WriteDue"]


class State(str, enum.Enum):
    """Connection states, as reported by ``RTMClient.state``."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    READY = "ready"
    RECONNECTING = "reconnecting"
    DISCONNECTING = "disconnecting"

    def __str__(self) -> str:
        return str(self.value)


#: The only legal transitions. Anything else is a bug and raises IllegalTransition.
TRANSITIONS: Dict[State, frozenset[State]] = {
    State.DISCONNECTED: frozenset({State.CONNECTING}),
    State.CONNECTING: frozenset({State.CONNECTED, State.RECONNECTING, State.DISCONNECTING}),
    State.CONNECTED: frozenset({State.READY, State.RECONNECTING, State.DISCONNECTING}),
    State.READY: frozenset({State.RECONNECTING, State.DISCONNECTING}),
    State.RECONNECTING: frozenset({State.CONNECTING, State.DISCONNECTING}),
    State.DISCONNECTING: frozenset({State.DISCONNECTED}),
}

#: Events that make Slack close the connection soon: reconnect at once.
RECONNECT_EVENTS = frozenset({"goodbye", "team_migration_started"})


class IllegalTransition(RuntimeError):
    """A state change the state machine does not allow (a bug in the caller)."""


@dataclass
class Send:
    """One outgoing message: queued, then written, then (maybe) awaiting its reply."""

    type: str
    body: Dict[str, Any]
    await_reply: bool
    future: Optional[Future[Any]]  # None: internal (pings, presence re-subscription)
    id: int = 0
    deadline: float = 0.0
    seq: int = 0  # submission order (pacing keeps it per channel)
    retried: bool = False  # resent once after Slack's "slow down" (or an HTTP 429)
    web: bool = False  # posted with chat.postMessage by the poster, not written on the socket


@dataclass
class Resolve:
    """Effect: complete ``future`` with ``result``, or fail it with ``error``."""

    future: Future[Any]
    result: Any = None
    error: Optional[BaseException] = None


@dataclass
class Teardown:
    """Effect: the current connection is dead (``reason``): tear the socket down now."""

    reason: SlackRTMError


@dataclass
class WakeWriter:
    """Effect: the writer has something to write now: wake it (and the timer, which
    recomputes its next deadline)."""


class PingDue(WakeWriter):
    """Effect: a keep-alive ping was queued."""


class WriteDue(WakeWriter):
    """Effect: a send held back by its channel's send rate may go now (or a resend after
    ``slow down`` was queued)."""


Effect = Union[Resolve, Teardown, WakeWriter]


@dataclass
class Timeouts:
    """The client's timing settings, all in seconds."""

    client_ping: float = 10.0
    server_pong: float = 5.0
    reply: float = 30.0
    hello: float = 10.0
