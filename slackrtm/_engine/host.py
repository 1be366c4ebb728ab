"""What a run needs of its client, and how effects are carried out: the bottom floor of
the run's modules (``_run``, ``_writer``, ``_rtm_run``, ``_sm_run``)."""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any, Dict, List, Optional, Protocol

from slackrtm._engine.core import Core, Resolve
from slackrtm._engine.dispatch import Registry
from slackrtm._log import Log
from slackrtm._web.netconfig import ProxyConfig
from slackrtm.web import WebClient

monotonic = time.monotonic


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


class Host(Protocol):
    """What a run needs of the client that started it."""

    _lock: threading.Lock
    _core: Core
    _log: Log
    _registry: Registry
    _max_backlog: int
    _auto_reconnect: bool
    _hello_timeout: float
    _ssl_context: ssl.SSLContext
    _web: WebClient
    _post_web: Optional[WebClient]  # posts messages (chat.postMessage); None: cannot
    _owns_web: bool
    _connect_data: Optional[Dict[str, Any]]
    _authenticated: bool
    _counters: Any  # _health.Counters
    _local_dedupe: Any  # Optional[MemoryDedupe]
    _gate: Any  # Optional[_gate.Gate]
    _last_error: Optional[BaseException]

    def _ws_proxy(self, url: str) -> Optional[ProxyConfig]: ...

    def _note_hello(self, num_connections: Any) -> None: ...
