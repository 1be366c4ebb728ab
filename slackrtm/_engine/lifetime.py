"""How a client's threads end with the script that started them.

Every client thread is a daemon, so none of them can hold the process open on its own.
What keeps a script alive is one hook that Python's ``threading`` runs in the main thread
when the main code has ended, before the interpreter winds down (the same hook
``concurrent.futures`` uses):

- the main code ended normally (its last line): the hook waits while any client is
  running, as a Node process waits while its socket is open. Ctrl-C or SIGTERM meanwhile
  disconnect every client, and the process exits;
- the main code raised (an error, ``start().result(timeout)`` timing out, Ctrl-C outside
  ``run_forever()``): Python has printed the traceback; every client is disconnected,
  its handlers get :data:`EXIT_GRACE` seconds to return, and the process exits.

A client that is already disconnecting (``run_forever()`` after Ctrl-C, with a handler
still busy) also gets :data:`EXIT_GRACE` seconds, no more.
"""

from __future__ import annotations

import signal
import sys
import threading
import weakref
from typing import Any, Callable, List, Optional, Protocol

__all__ = ["EXIT_GRACE", "Lifetime", "track"]

#: Seconds handlers may still run once the process is exiting (its main code ended with
#: an error, or the client was told to stop), before the interpreter exits anyway.
EXIT_GRACE = 2.0


class Lifetime(Protocol):
    """What the exit hook needs of a client."""

    def _running(self) -> bool: ...
    def _stopping(self) -> bool: ...
    def _grace_left(self) -> float: ...
    def _wait_run(self, timeout: float) -> bool: ...
    def disconnect(self, timeout: Optional[float] = 10.0) -> None: ...


_clients: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()
_hooked = False


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM while the exit hook waits."""


def track(client: Lifetime) -> None:
    """Remember a started client for the exit hook (installed on first use)."""
    global _hooked
    with _lock:
        _clients.add(client)
        if _hooked:
            return
        _hooked = True
    register: Optional[Callable[[Callable[[], None]], None]] = getattr(
        threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading._register_atexit")
        register(_at_main_end)
    except RuntimeError:  # interpreter shutting down already, or an old Python
        import atexit
        atexit.register(_at_main_end)


def _main_raised() -> bool:
    """Whether the main code ended with an uncaught exception (Python keeps it in
    ``sys.last_value`` / ``sys.last_exc`` once it printed its traceback)."""
    return getattr(sys, "last_value", None) is not None or \
        getattr(sys, "last_exc", None) is not None


def _live() -> List[Lifetime]:
    with _lock:
        return [c for c in list(_clients) if c._running()]


def _stop_all(clients: List[Lifetime]) -> None:
    for client in clients:
        try:
            client.disconnect(timeout=EXIT_GRACE)
        except BaseException:  # exiting: one client's trouble must not keep the others
            pass


def _at_main_end() -> None:
    """The main code ended: keep the process while clients run, or stop them all."""
    if _main_raised():
        _stop_all(_live())
        return
    previous: Any = None
    try:
        def on_term(signum: int, frame: Any) -> None:
            raise _Stop()
        previous = signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):  # not the main thread, or no signals here
        previous = None
    try:
        while True:
            live = _live()
            if not live:
                return
            stopping = [c for c in live if c._stopping()]
            if stopping:  # told to stop already: what is left of their handlers' grace
                for c in stopping:
                    c._wait_run(c._grace_left())
                with _lock:
                    for c in stopping:
                        _clients.discard(c)
                continue
            live[0]._wait_run(1.0)
    except (KeyboardInterrupt, _Stop):
        _stop_all(_live())
    finally:
        if previous is not None:
            try:
                signal.signal(signal.SIGTERM, previous)
            except (ValueError, OSError):
                pass
