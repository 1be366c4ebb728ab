"""Duplicate filters: the :class:`Dedupe` protocol, the in-process :class:`MemoryDedupe`,
and the keys events are claimed under.

A filter answers one question, ``claim(key, ttl) -> bool``: true for the first caller
only. The in-process memory answers it for one process (Socket Mode redeliveries to the
same client); a shared one (``slackrtm.redis.RedisDedupe``) answers it for every copy of
a bot, so that each event is handled by one copy. The dispatcher asks a shared filter
through :class:`~slackrtm._engine.gate.Gate`.

Keys (one per envelope or event):

- Messages, in both protocols: ``msg:<channel>:<ts>`` (``message_changed`` and the like
  have a ts of their own). The same key for a live message, Slack's retry of its envelope
  and the copy a backfill fetches, so one mechanism keeps all three to one handling.
- Socket Mode, other envelopes: ``sm:ev:<event_id>`` for an ``events_api`` envelope
  (Slack's retries carry a new ``envelope_id`` and the same ``event_id``), else
  ``sm:env:<envelope_id>``.
- RTM, other events: ``rtm:<type>:<event_ts>`` for events with an ``event_ts``, else
  ``rtm:h:<hash of the frame>`` claimed for at most :data:`HASH_TTL` seconds (a
  ``presence_change`` with the same content may come again later, legitimately).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

#: Seconds a claim lasts unless the filter says otherwise (its ``ttl`` attribute).
DEFAULT_TTL = 3600.0
#: Seconds a claim by a frame's hash lasts (frames with no ts or event_ts).
HASH_TTL = 60.0
#: RTM frames about the connection itself: every copy needs its own.
CONNECTION_FRAMES = frozenset({"hello", "goodbye", "reconnect_url", "team_migration_started",
                               "pong", "error"})


@runtime_checkable
class Dedupe(Protocol):
    """A duplicate filter: ``claim(key, ttl)`` is true for the first caller of ``key``
    within ``ttl`` seconds, false for every later one (a duplicate).

    Optional extras a filter may have, which the client uses when present:
    ``ttl`` (float: the window it passes to ``claim``), ``claim_many(items)`` (a list of
    ``(key, ttl)`` pairs, answered in one round trip), ``lease`` (float: while handlers
    still run, a claim lasts only this long, so that the claims of a copy killed before
    it finished run out and Slack's next retry is handled elsewhere), ``settle(key)``
    (the handlers finished: keep the claim for ``ttl``) and ``settled(key) -> bool``.
    """

    def claim(self, key: str, ttl: float) -> bool:
        """True when no one claimed ``key`` within the last ``ttl`` seconds (it is now
        this caller's); False for a duplicate."""


class MemoryDedupe:
    """The in-process duplicate filter: the keys of the last ``size`` envelopes or events.

    ``SocketModeClient`` keeps one by default (10,000 envelopes): Slack's redeliveries to
    the same process are acknowledged and not dispatched again. The window counts
    envelopes, whatever number of keys each has (an ``events_api`` envelope is known by
    its ``envelope_id`` and its ``event_id``), not seconds: ``ttl`` is accepted and
    ignored. One seen again becomes the newest. Thread-safe.
    """

    def __init__(self, size: int = 10_000) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}")
        self.size = size
        self._slot_of: Dict[str, int] = {}  # key -> the slot (envelope) it belongs to
        # slot number -> its keys; numbers grow, so the oldest slot is the smallest number
        # still present, found from _oldest up (each number is passed once: O(1) a claim)
        self._slots: Dict[int, Tuple[str, ...]] = {}
        self._next = 0
        self._oldest = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemoryDedupe {len(self._slots)}/{self.size} envelopes>"

    def __len__(self) -> int:
        """How many envelopes (or events) are remembered."""
        return len(self._slots)

    def claim(self, key: str, ttl: float = DEFAULT_TTL) -> bool:
        """True the first time ``key`` is claimed (among the last ``size`` ones)."""
        return self._claim((key,))

    def claim_many(self, items: Sequence[Tuple[str, float]]) -> List[bool]:
        """:meth:`claim` for each ``(key, ttl)``, in order."""
        return [self._claim((key,)) for key, _ in items]

    def check(self, envelope_id: str, event_id: Any) -> bool:
        """Remember one envelope by its id and, when it has one, its ``event_id``; True
        when either was remembered already (a duplicate)."""
        env = "sm:env:" + envelope_id
        if type(event_id) is str and event_id:
            ev = "sm:ev:" + event_id
            keys: Tuple[str, ...] = (env, ev)
        else:
            ev = env
            keys = (env,)
        slot_of = self._slot_of
        with self._lock:
            if env not in slot_of and ev not in slot_of:  # new: the common case, inline
                slot = self._next
                self._next = slot + 1
                for key in keys:
                    slot_of[key] = slot
                slots = self._slots
                slots[slot] = keys
                if len(slots) > self.size:  # full: the oldest goes (inline when it is there)
                    oldest = self._oldest
                    gone = slots.pop(oldest, None)
                    if gone is None:
                        self._evict()
                    else:
                        self._oldest = oldest + 1
                        for key in gone:
                            slot_of.pop(key, None)
                return False
        return not self._claim(keys)

    def forget(self, envelope_id: str, event_id: Any = None) -> None:
        """Forget an envelope (by either id), so that it is new again when it comes back."""
        keys = ["sm:env:" + envelope_id]
        if isinstance(event_id, str) and event_id:
            keys.append("sm:ev:" + event_id)
        with self._lock:
            for key in keys:
                slot = self._slot_of.get(key)
                if slot is not None:
                    for gone in self._slots.pop(slot, ()):
                        self._slot_of.pop(gone, None)

    def _claim(self, keys: Tuple[str, ...]) -> bool:
        slot_of, slots = self._slot_of, self._slots
        with self._lock:
            slot = self._next
            self._next = slot + 1
            group = keys
            first = True
            for key in keys:
                old = slot_of.get(key)
                if old is not None:  # seen: its group joins this one, as the newest
                    first = False
                    group = group + tuple(k for k in slots.pop(old, ()) if k not in group)
            for key in group:
                slot_of[key] = slot
            slots[slot] = group
            if len(slots) > self.size:
                self._evict()
            return first

    def _evict(self) -> None:
        """Forget the oldest envelopes until ``size`` are left (lock held)."""
        slot_of, slots = self._slot_of, self._slots
        oldest = self._oldest
        while len(slots) > self.size:
            gone = slots.pop(oldest, None)
            oldest += 1
            if gone is not None:
                for key in gone:
                    if slot_of.get(key, -1) < oldest:  # not taken over by a newer slot
                        slot_of.pop(key, None)
        self._oldest = oldest


#: The name the Socket Mode run knew it by.
Seen = MemoryDedupe


def message_key(event: Any) -> Optional[str]:
    """``msg:<channel>:<ts>`` for a message event, else None."""
    if isinstance(event, dict) and event.get("type") == "message":
        channel, ts = event.get("channel"), event.get("ts")
        if isinstance(channel, str) and isinstance(ts, str):
            return f"msg:{channel}:{ts}"
    return None


def envelope_key(envelope_id: str, event_id: Any, event: Any = None) -> str:
    """The key of a Socket Mode envelope: its inner message's key, else its ``event_id``
    when it has one, else its id."""
    key = message_key(event)
    if key is not None:
        return key
    if isinstance(event_id, str) and event_id:
        return "sm:ev:" + event_id
    return "sm:env:" + envelope_id


def event_key(frame: Dict[str, Any]) -> Optional[Tuple[str, float]]:
    """``(key, ttl cap)`` of an RTM event, or None for a frame every copy must see (hello,
    goodbye, ...). The cap is None-free: ``inf`` for keys made of ids, :data:`HASH_TTL`
    for a hash of the frame."""
    etype = frame.get("type")
    if not isinstance(etype, str) or etype in CONNECTION_FRAMES:
        return None
    key = message_key(frame)
    if key is not None:
        return key, float("inf")
    event_ts = frame.get("event_ts")
    if isinstance(event_ts, str) and event_ts:
        return f"rtm:{etype}:{event_ts}", float("inf")
    try:
        canon = json.dumps(frame, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None
    digest = hashlib.blake2b(canon.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"rtm:h:{digest}", HASH_TTL
