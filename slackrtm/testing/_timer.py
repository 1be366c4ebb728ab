"""One named thread that runs callbacks at due times (delayed replies, goodbye grace)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable, List, Tuple

from slackrtm.testing._net import ThreadedServer


class Scheduler:
    """Runs ``call_later`` callbacks in due order on the thread ``fakeslack-timer``.

    Callbacks must not block: they only queue frames. Ties keep submission order.
    """

    def __init__(self, server: ThreadedServer) -> None:
        self._server = server
        self._cv = threading.Condition()
        self._heap: List[Tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stopped = False
        server.spawn(self._run, name="timer")

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the timer thread ``delay`` seconds from now."""
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
            self._cv.notify_all()

    def stop(self) -> None:
        """End the timer thread; callbacks not yet due are dropped."""
        with self._cv:
            self._stopped = True
            self._heap.clear()
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        fn = heapq.heappop(self._heap)[2]
                        break
                    self._cv.wait(self._heap[0][0] - now if self._heap else None)
            try:
                fn()
            except Exception as exc:  # a bug in a callback must not end the timer
                self._server.errors.append(exc)
