"""What the facades add for running several copies of a bot: the ``dedupe=`` filter
and ``health()``.

A mixin of ``_client_base.BaseClient``; the counters it keeps live as long as the client
(across runs and reconnects), so a health endpoint sees totals since the client was made.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Dict, Optional

from slackrtm._engine.dedupe import Dedupe, MemoryDedupe
from slackrtm._engine.gate import Gate

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm._engine.core import Core
    from slackrtm._engine.run import Run
    from slackrtm._log import Log

#: hello's ``num_connections`` at which a warning is logged (Slack refuses past 10, and
#: each copy holds two connections during a refresh).
CONNECTIONS_WARNING = 8


class Counters:
    """Thread-safe counters of a client's life."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: Dict[str, int] = {"reconnects": 0, "refreshes": 0, "acked": 0,
                                       "duplicates_local": 0}

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to ``name``."""
        with self._lock:
            self.values[name] += n

    def snapshot(self) -> Dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self.values)


class Replicated:
    """The ``dedupe`` filter and ``health()`` of a client."""

    _log: Log
    _core: Core
    _run: Optional[Run]

    @property
    def _connect_data(self) -> Optional[Dict[str, Any]]:
        """The last connect data (the client's)."""
        raise NotImplementedError

    def _setup_dedupe(self, dedupe: Optional[Dedupe], *, local_default: bool) -> None:
        """``local_default``: the client keeps an in-process memory of its own (Socket
        Mode). A :class:`MemoryDedupe` given replaces it; any other filter is shared and
        asked at the dispatcher's door (:class:`Gate`), after the local one."""
        self._counters = Counters()
        self._local_dedupe: Optional[MemoryDedupe] = MemoryDedupe() if local_default else None
        self._gate: Optional[Gate] = None
        if dedupe is None:
            return
        if not callable(getattr(dedupe, "claim", None)):
            raise TypeError(f"dedupe must have a claim(key, ttl) method (a slackrtm.Dedupe), "
                            f"got {dedupe!r}")
        if isinstance(dedupe, MemoryDedupe) and local_default:
            self._local_dedupe = dedupe
        else:
            self._gate = Gate(dedupe, self._log)
            self._gate.local = self._local_dedupe
        secret = getattr(dedupe, "secret", None)
        if isinstance(secret, str) and secret:
            self._log.add_secret(secret)

    def _note_hello(self, num_connections: Any) -> None:
        """hello said how many connections the app holds: warn when close to Slack's 10."""
        if isinstance(num_connections, int) and not isinstance(num_connections, bool) \
                and num_connections >= CONNECTIONS_WARNING:
            self._log.warn(
                f"this app holds {num_connections} WebSocket connections (Slack refuses more "
                f"than 10, and each copy holds two while it refreshes): run fewer copies")

    def health(self) -> Dict[str, Any]:
        """A plain dict for a liveness or readiness check, safe to call from any thread.

        ``state`` (as :attr:`state`), ``ready`` (bool), ``seconds_since_last_frame``
        (None before the first; it stands still while the handlers are behind),
        ``backlog`` (events read, not yet handled), ``reconnects`` and ``refreshes`` since
        the client was made, ``num_connections`` (from the last hello, Socket Mode),
        ``acked`` (envelopes acknowledged), ``duplicates_local`` and
        ``duplicates_shared`` (dropped by the in-process and the shared filter),
        ``filter_outage`` (the shared filter is failing now), ``unfiltered`` (events let
        through or held back while it failed) and ``sends_delayed`` (sends held back by
        pacing).
        """
        from slackrtm._engine.context import monotonic
        from slackrtm._engine.core import State

        core = self._core
        run = self._run
        state = core.state
        last = core.last_inbound
        since = round(monotonic() - last, 3) if last and state is not State.DISCONNECTED \
            else None
        counts = self._counters.snapshot()
        gate = self._gate.counts() if self._gate is not None else {}
        pacer = core.pacer
        num = (self._connect_data or {}).get("num_connections")
        return {
            "state": state.value,
            "ready": state is State.READY,
            "seconds_since_last_frame": since,
            "backlog": run.dispatcher.backlog if run is not None else 0,
            "reconnects": counts["reconnects"],
            "refreshes": counts["refreshes"],
            "num_connections": num if isinstance(num, int) else None,
            "acked": counts["acked"],
            "duplicates_local": counts["duplicates_local"],
            "duplicates_shared": gate.get("duplicates", 0),
            "filter_outage": bool(gate.get("outage", False)),
            "unfiltered": gate.get("unfiltered", 0),
            "sends_delayed": getattr(pacer, "delayed", 0) if pacer is not None else 0,
        }
