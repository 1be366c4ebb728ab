"""The shared duplicate filter at the dispatcher's door: each batch of events is claimed
in one round trip before its handlers run; what another copy claimed first is not
dispatched.

It runs on the dispatcher thread, so the reader never waits for the filter, and a claim
is taken when handling starts (a backlog does not eat a lease). What happens to an event
another copy won:

- RTM: its ``raw_message`` handlers and the client's internal observers (the workspace
  store) see it, its event handlers do not.
- Socket Mode: not dispatched. Already acknowledged (``ack="auto"``): nothing more to do.
  Otherwise it is acknowledged when the winner has finished with it (``settled``) or the
  filter cannot tell; while the winner still holds a lease on it, it is left
  unacknowledged, so Slack retries it, and a retry after a dead copy's lease ran out is
  handled by whoever claims it then.

When the filter fails (Redis unreachable), the gate fails open by default (everything is
dispatched: at least once beats lost) and warns once per outage; a filter whose
``fail_open`` attribute is False fails closed (nothing is dispatched; unacknowledged
envelopes are left for Slack's retries).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from slackrtm._engine.dedupe import DEFAULT_TTL, Dedupe, event_key
from slackrtm._engine.entries import Duplicate, Entry, EnvelopeEntry, Reply
from slackrtm._log import Log

Item = Tuple[str, float]
#: Seconds between attempts to reach a failing filter: meanwhile events are let through (or
#: held back) at once instead of each batch waiting for the filter's timeout.
RETRY_EVERY = 2.0


class Gate:
    """Claims the events of each dispatcher batch from a shared :class:`Dedupe`."""

    def __init__(self, dedupe: Dedupe, log: Log) -> None:
        self.dedupe = dedupe
        self.log = log
        self.ttl = float(getattr(dedupe, "ttl", DEFAULT_TTL))
        lease = getattr(dedupe, "lease", None)
        self.lease: Optional[float] = float(lease) if lease else None
        self.fail_open = bool(getattr(dedupe, "fail_open", True))
        many = getattr(dedupe, "claim_many", None)
        self._many: Optional[Callable[[Sequence[Item]], List[bool]]] = \
            many if callable(many) else None
        self._settle = getattr(dedupe, "settle", None)
        self._settled = getattr(dedupe, "settled", None)
        self._lock = threading.Lock()
        self.outage = False
        self._retry_at = 0.0
        #: The client's in-process memory: an envelope left for Slack's retry is
        #: forgotten there, so that the retry is judged here again (set by the client).
        self.local: Any = None
        #: events claimed, duplicates dropped, events let through (or held back) unfiltered
        self.claimed = 0
        self.duplicates = 0
        self.unfiltered = 0

    # ------------------------------------------------------------------ claims
    def claim(self, items: Sequence[Item]) -> Optional[List[bool]]:
        """Claim ``(key, ttl)`` items; None when the filter failed (counted, logged)."""
        if self.outage and time.monotonic() < self._retry_at:
            with self._lock:
                self.unfiltered += len(items)
            return None
        try:
            if self._many is not None:
                won = list(self._many(items))
                if len(won) != len(items):
                    raise ValueError(f"claim_many answered {len(won)} of {len(items)} keys")
            else:
                won = [bool(self.dedupe.claim(key, ttl)) for key, ttl in items]
        except Exception as exc:
            with self._lock:
                self.unfiltered += len(items)
                first = not self.outage
                self.outage = True
                self._retry_at = time.monotonic() + RETRY_EVERY
            if first:
                how = ("dispatching without it (at least once) until it answers again"
                       if self.fail_open else "dispatching nothing (fail closed) until it "
                       "answers again")
                self.log.warn(f"the shared duplicate filter failed "
                              f"({type(exc).__name__}: {exc}): {how}")
            return None
        with self._lock:
            back = self.outage
            self.outage = False
            self.claimed += sum(won)
            self.duplicates += len(won) - sum(won)
        if back:
            self.log.warn("the shared duplicate filter works again: filtering resumed")
        return won

    def settle(self, key: str) -> None:
        """The handlers of ``key`` finished: keep its claim for the full ttl."""
        if self.lease is None or not callable(self._settle):
            return
        try:
            self._settle(key)
        except Exception as exc:  # the lease runs out instead: Slack's retry is handled
            self.log.debug(f"settling claim {key} failed: {exc}")

    def settled(self, key: str) -> bool:
        """Whether the copy that claimed ``key`` finished with it (True when unknown)."""
        if self.lease is None or not callable(self._settled):
            return True
        try:
            return bool(self._settled(key))
        except Exception:
            return True

    # ------------------------------------------------------------------ batches
    def filter(self, batch: List[Entry]) -> List[Entry]:
        """The batch with what another copy claimed turned into non-dispatching entries."""
        where: List[int] = []
        items: List[Item] = []
        for i, entry in enumerate(batch):
            if isinstance(entry, EnvelopeEntry):
                request: Any = entry.envelope
                key = getattr(request, "dedupe_key", None)
                if not isinstance(key, str):
                    continue
                leased = self.lease is not None and not request.acked
                if leased:
                    request._gate = self
                where.append(i)
                items.append((key, self.lease if leased and self.lease else self.ttl))
                continue
            if isinstance(entry, tuple):  # an event (other entries are never claimed)
                found = event_key(entry[1])
                if found is not None:
                    where.append(i)
                    items.append((found[0], min(self.ttl, found[1])))
        if not items:
            return batch
        won = self.claim(items)
        if won is None:
            if self.fail_open:
                return batch
            won = [False] * len(items)
            closed = True
        else:
            closed = False
        out = list(batch)
        for i, first in zip(where, won):
            if first:
                continue
            entry = batch[i]
            if isinstance(entry, EnvelopeEntry):
                out[i] = Reply(entry.text)  # raw_message handlers only
                request = entry.envelope
                request._gate = None
                if not closed and not request.acked and self.settled(request.dedupe_key):
                    request.ack()
                elif not request.acked:
                    if self.local is not None:
                        self.local.forget(request.envelope_id, request.payload.get("event_id"))
                    self.log.debug(f"envelope {request.envelope_id}: another copy holds it "
                                   "(or the filter is down): left for Slack's retry")
            elif isinstance(entry, tuple):
                out[i] = Duplicate(entry[0], entry[1])
        return out

    def claim_frame(self, frame: Dict[str, Any]) -> bool:
        """Claim one event made outside the read path (a backfilled message, which has
        the key of its live copy): True when this copy should dispatch it."""
        found = event_key(frame)
        if found is None:
            return True
        won = self.claim([(found[0], min(self.ttl, found[1]))])
        return self.fail_open if won is None else won[0]

    def counts(self) -> Dict[str, Any]:
        """Counters for ``health()``."""
        with self._lock:
            return {"claimed": self.claimed, "duplicates": self.duplicates,
                    "unfiltered": self.unfiltered, "outage": self.outage}
