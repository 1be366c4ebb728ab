"""What a run needs of the client that starts it (:class:`RunContext`), and how the core's
effects are carried out: the bottom floor of the run's modules (``run``, ``attempts``,
``writer``, ``_protocols``). The run never sees the facade, only this context."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Optional, Protocol

from slackrtm._engine.core import Core, Resolve
from slackrtm._engine.dedupe import MemoryDedupe
from slackrtm._engine.dispatch import Registry
from slackrtm._engine.gate import Gate
from slackrtm._log import Log
from slackrtm._web.netconfig import ProxyConfig
from slackrtm.web import WebClient

__all__ = ["RunContext", "apply", "monotonic"]

monotonic = time.monotonic

#: The proxy for a WebSocket URL (HTTP CONNECT or SOCKS), or None to connect directly.
ProxyFor = Callable[[str], Optional[ProxyConfig]]


def apply(effects: List[Resolve]) -> None:
    """Complete futures (outside every lock: it runs their callbacks)."""
    for e in effects:
        fut = e.future
        if fut.done():
            continue
        try:
            if e.error is not None:
                fut.set_exception(e.error)
            else:
                fut.set_result(e.result)
        except Exception:  # InvalidStateError: cancelled meanwhile by its owner
            pass


class Counting(Protocol):
    """The client's health counters (``health()``)."""

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to ``name``."""


def _nothing(num_connections: Any) -> None:
    """No check of the app's connection count."""


@dataclass
class RunContext:
    """Everything a run needs of its client: made once by the client and handed to each
    of its runs. Settings are read-only; the two fields below ``ws_proxy`` change, under
    :attr:`lock`.

    Locking: :attr:`lock` is the client's one lock. It guards :attr:`core` (every call),
    :attr:`connect_data`, :attr:`authenticated`, and the run's shared fields (see
    ``Run``). Nothing slow happens under it: no I/O, no user callback, no wait.
    """

    #: The client's one lock (see above).
    lock: threading.Lock
    #: The sans-I/O core: state, sends, deadlines. Called only under :attr:`lock`, and
    #: changed only through its methods.
    core: Core
    #: The client's log (it redacts the token).
    log: Log
    #: The handlers, per event name; the run's dispatcher reads them.
    registry: Registry
    #: Calls the Web API method that hands out WebSocket URLs.
    web: WebClient
    #: Whether the run closes :attr:`web`'s pooled connections when it ends (the client
    #: made it; a caller's WebClient is left alone).
    owns_web: bool
    #: Events read but not yet handled before the reader pauses (``max_backlog``).
    max_backlog: int
    #: Whether a lost connection or a failed attempt is retried.
    auto_reconnect: bool
    #: Seconds for a WebSocket handshake and for ``hello`` (``hello_timeout``).
    hello_timeout: float
    #: The TLS settings for the WebSocket (the client's one trust store).
    ssl_context: ssl.SSLContext
    #: The proxy for a WebSocket URL (explicit, else the environment's), or None.
    ws_proxy: ProxyFor
    #: Posts messages with chat.postMessage (the run's poster), or None: the client
    #: cannot (set by the facades that can, after construction).
    post_web: Optional[WebClient] = None
    #: Makes the Web API calls the calling thread makes in the block abortable: the
    #: context manager yields a handle whose ``abort()`` ends them at once (from shutdown).
    abort_scope: Callable[[], ContextManager[Any]] = contextlib.nullcontext
    #: Called with hello's ``num_connections`` (the client warns near Slack's limit).
    note_hello: Callable[[Any], None] = _nothing
    #: The client's health counters, or None (set with the filters below).
    counters: Optional[Counting] = None
    #: The in-process duplicate memory (Socket Mode), or None.
    local_dedupe: Optional[MemoryDedupe] = None
    #: A shared duplicate filter's door, asked before dispatch, or None.
    gate: Optional[Gate] = None
    #: The answer of the last URL-handing call (plus Socket Mode's hello information);
    #: the facade's ``active_user_id``, ``app_id`` read it. Under :attr:`lock`.
    connect_data: Optional[Dict[str, Any]] = None
    #: What made the last connection or attempt fail (``client.last_error``), or None.
    last_error: Optional[BaseException] = None
    #: From ``authenticated`` until that connection is lost. Under :attr:`lock`.
    authenticated: bool = field(default=False)
