"""Which Socket Mode connection gets each envelope, when an app holds several.

Slack gives each envelope to ONE of the app's open connections (up to 10 per app), and a
retry of an envelope may land on another one. ``FakeSlack.socket_routing`` picks:

- ``"newest"`` (the default): the newest connection that got its hello and was not told
  to go (what one refreshing client sees).
- ``"round_robin"``: each in turn (several copies of a bot share the load).
- ``"random"``: any of them, at random (``socket_routing_seed`` makes it repeatable).

A retry goes to another connection than the attempt before it whenever there is one.
``duplicate_rate`` (0.0 to 1.0) sends that fraction of envelopes a second time at once,
as Slack's retry of an envelope whose ack it did not see in time: a new ``envelope_id``,
the same ``event_id``, ``retry_attempt`` + 1, on another connection when there is one.

Pure functions over the connections passed in: the caller holds the workspace lock.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypeVar

ROUTINGS = ("newest", "round_robin", "random")

C = TypeVar("C")


class Router:
    """The routing policy and its state (the round-robin position, the random source)."""

    def __init__(self) -> None:
        self.policy = "newest"
        self._next = 0
        self.rng = random.Random()

    def check(self, policy: Any) -> str:
        """``policy`` if it is one of :data:`ROUTINGS`; ValueError otherwise."""
        if policy not in ROUTINGS:
            raise ValueError(f"socket_routing must be one of {', '.join(ROUTINGS)}, "
                             f"got {policy!r}")
        return str(policy)

    def order(self, conns: Sequence[C], avoid: Optional[int] = None,
              key: Any = None) -> List[C]:
        """The open connections in the order to try them for one envelope: the chosen one
        first, the others after (a write that fails falls through). ``avoid`` (a connection
        id) goes last. ``key`` reads a connection's id (default ``.id``)."""
        conn_id = key or (lambda c: c.id)
        policy = self.check(self.policy)
        if policy == "newest":
            ordered = list(reversed(conns))
        elif policy == "round_robin":
            n = len(conns)
            start = self._next % n if n else 0
            self._next += 1
            ordered = list(conns[start:]) + list(conns[:start])
        else:
            ordered = list(conns)
            self.rng.shuffle(ordered)
        if avoid is not None and len(ordered) > 1:
            ordered = [c for c in ordered if conn_id(c) != avoid] + \
                      [c for c in ordered if conn_id(c) == avoid]
        return ordered

    def spread(self, items: Sequence[Any], conns: Sequence[C],
               avoid: Optional[int] = None) -> List[Tuple[List[C], List[Any]]]:
        """Split ``items`` (in order) into runs with the connection order for each: one run
        for ``newest``, one per item otherwise (consecutive items to the same connection
        are joined, so one write carries them)."""
        if self.policy == "newest" or not conns:
            return [(self.order(conns, avoid), list(items))]
        runs: List[Tuple[List[C], List[Any]]] = []
        for item in items:
            order = self.order(conns, avoid)
            if runs and runs[-1][0][:1] == order[:1]:
                runs[-1][1].append(item)
            else:
                runs.append((order, [item]))
        return runs


def by_previous(items: Sequence[Any]) -> Dict[Optional[int], List[Any]]:
    """Retries grouped by the connection their previous attempt went to (``conn_id``)."""
    groups: Dict[Optional[int], List[Any]] = {}
    for item in items:
        groups.setdefault(getattr(item, "conn_id", None), []).append(item)
    return groups
