"""Backfill: deliver (or count) the messages that arrived while the client was disconnected.

An internal :class:`~slackrtm._engine.dispatch.Observer`. It remembers the newest message ``ts``
delivered in each channel (``last_seen``) and the newest ``ts`` / ``event_ts`` of any event
(the *mark*: roughly when the client last heard from Slack). When a ``ready`` is dispatched
and such a point is known (an earlier connection of this client, or ``backfill_since``), it
runs on the dispatcher thread, after the ``ready`` handlers and before any event of the new
connection:

1. ``users.conversations`` lists the conversations the bot is in;
2. for each, ``conversations.history`` since its last-seen ``ts`` (else since the mark),
   page by page (newest first, as Slack answers);
3. ``"deliver"``: the newest ``limit`` of them go to the handlers oldest first, each with
   ``backfilled: True``; older ones beyond the limit are reported as ``missed(channel,
   count)`` first. ``"count"``: none is delivered, all are reported as ``missed``.

A backfilled (or counted) message that then also arrives live is dropped, however late
and however often it comes (Socket Mode: Slack retries an envelope it could not deliver
while the client was away, possibly after newer messages): the channel and ``ts`` of the
last :data:`REMEMBERED` backfilled or counted messages are kept. So each message is
delivered once, or counted once. The HTTP calls are aborted by the run's shutdown, and
Web API rate limits are waited out (abortable too).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from slackrtm._engine.dispatch import Dispatcher, Frame, Observer, Registry
from slackrtm._log import Log
from slackrtm._store.identity import Identity
from slackrtm._store.store import Store
from slackrtm.errors import RateLimitedError, SlackRTMError

_MEMBER_TYPES = "public_channel,private_channel,mpim,im"
_PAGE = 200
#: Counting stops after this many pages past the delivered ones (the count is then a
#: lower bound, and a warning says so).
MAX_COUNT_PAGES = 50
#: Rounds of ``RateLimitedError`` (after the WebClient's own retries) waited out per call.
MAX_RATE_LIMIT_ROUNDS = 5
#: Backfilled or counted messages remembered to drop their live copies (the newest ones).
REMEMBERED = 10_000


def ts_key(ts: str) -> Tuple[int, int]:
    """Order Slack timestamps (``"1700000000.000100"``) exactly, without float rounding."""
    whole, _, frac = ts.partition(".")
    try:
        return int(whole or 0), int((frac + "000000")[:6] or 0)
    except ValueError:
        return (0, 0)


def _newer(a: Optional[str], b: str) -> str:
    return b if a is None or ts_key(b) > ts_key(a) else a


class Backfill(Observer):
    """Tracks what was seen and backfills after each reconnect (see the module docstring).

    ``mode`` is ``"deliver"`` or ``"count"``; ``limit`` the most messages delivered per
    channel and backfill; ``since`` seeds ``last_seen`` (e.g. persisted by an earlier run).
    """

    def __init__(self, web: Any, log: Log, mode: str, limit: int,
                 since: Optional[Mapping[str, str]] = None) -> None:
        self._web = web
        self._log = log
        self.mode = mode
        self.limit = limit
        self._lock = threading.Lock()
        self._seen: Dict[str, str] = {}
        self._mark: Optional[str] = None
        self._dedup: OrderedDict[Tuple[str, str], None] = OrderedDict()
        for channel, ts in (since or {}).items():
            if not isinstance(channel, str) or not isinstance(ts, str) or ts_key(ts) == (0, 0):
                raise ValueError(f"backfill_since: expected {{channel_id: ts}} with Slack "
                                 f"timestamps, got {channel!r}: {ts!r}")
            self._seen[channel] = ts
            self._mark = _newer(self._mark, ts)

    @property
    def last_seen(self) -> Dict[str, str]:
        """Channel id -> ``ts`` of the newest message delivered there (a copy)."""
        with self._lock:
            return dict(self._seen)

    # ------------------------------------------------------------------ observer hooks
    def frame(self, frame: Frame, dispatcher: Dispatcher) -> bool:
        """Drop a live duplicate of a backfilled message; note what was seen."""
        channel, ts = frame.get("channel"), frame.get("ts")
        if frame.get("type") == "message" and isinstance(channel, str) and isinstance(ts, str):
            with self._lock:
                if self._dedup and not frame.get("backfilled") \
                        and (channel, ts) in self._dedup:
                    self._log.debug(f"backfill: dropped the live copy of {ts} in {channel}")
                    return False
                self._seen[channel] = _newer(self._seen.get(channel), ts)
                self._mark = _newer(self._mark, ts)
            return True
        stamp = frame.get("event_ts") or frame.get("ts")
        if isinstance(stamp, str) and ts_key(stamp) != (0, 0):
            with self._lock:
                self._mark = _newer(self._mark, stamp)
        return True

    def after(self, name: str, args: Tuple[Any, ...], dispatcher: Dispatcher) -> None:
        """Backfill once the ``ready`` handlers ran, before the new connection's events."""
        if name == "ready":
            self.run(dispatcher)

    # ------------------------------------------------------------------ the backfill
    def run(self, dispatcher: Dispatcher) -> None:
        """Backfill every conversation the bot is in (on the dispatcher thread)."""
        with self._lock:
            seen, mark = dict(self._seen), self._mark
        if mark is None or dispatcher.interrupted:
            return  # nothing seen yet: nothing can have been missed
        scope_factory = getattr(self._web, "_abort_scope", None)
        if scope_factory is None:  # a WebClient look-alike: calls cannot be aborted
            self._run(dispatcher, seen, mark)
            return
        with scope_factory() as scope, dispatcher.interruptible(scope.abort):
            self._run(dispatcher, seen, mark, scope.wait)

    def _run(self, dispatcher: Dispatcher, seen: Dict[str, str], mark: str,
             sleep: Optional[Callable[[float], bool]] = None) -> None:
        try:
            channels = [c["id"] for page in self._call("users.conversations", {
                "types": _MEMBER_TYPES, "exclude_archived": True, "limit": _PAGE}, sleep)
                for c in page.get("channels") or () if isinstance(c, dict) and "id" in c]
        except SlackRTMError as err:
            self._failed(dispatcher, "users.conversations", err)
            return
        self._log.debug(f"backfill: {len(channels)} conversation(s) since {mark}")
        for channel in channels:
            if dispatcher.interrupted:
                return
            oldest = seen.get(channel, mark)
            try:
                newest, more, exact, top = self._fetch(channel, oldest, sleep)
            except SlackRTMError as err:
                self._failed(dispatcher, f"conversations.history of {channel}", err)
                continue
            if dispatcher.interrupted:
                return
            if more and self.mode == "count":
                with self._lock:  # counted once: the next backfill starts after them, and
                    # one that also arrives live (posted just after the reconnect) is
                    # dropped: each message is delivered or counted, never both
                    self._seen[channel] = _newer(self._seen.get(channel), top)
                    self._remember(channel, [m["ts"] for m in newest])
                newest = []
            self._deliver(dispatcher, channel, newest, more, exact)

    def _fetch(self, channel: str, oldest: str, sleep: Optional[Callable[[float], bool]]
               ) -> Tuple[List[Dict[str, Any]], int, bool, str]:
        """``(messages to deliver, newest first; how many more; whether that count is
        exact; the newest ts fetched)``."""
        counting = self.mode == "count"
        keep = self.limit if not counting else 0
        got: List[Dict[str, Any]] = []
        more = 0
        params: Dict[str, Any] = {"channel": channel, "oldest": oldest, "inclusive": False,
                                  "limit": min(_PAGE, keep) if keep else _PAGE}
        pages_past = 0
        top = oldest
        for page in self._call("conversations.history", params, sleep):
            for msg in page.get("messages") or ():
                if not isinstance(msg, dict) or not isinstance(msg.get("ts"), str):
                    continue
                if ts_key(msg["ts"]) <= ts_key(oldest):
                    continue  # inclusive by mistake: seen already
                top = _newer(top, msg["ts"])
                if len(got) < keep:
                    got.append(msg)
                else:
                    more += 1
                    if counting:  # kept (their ts) to drop live copies
                        got.append({"ts": msg["ts"]})
            if len(got) >= keep:
                pages_past += 1
                if pages_past > MAX_COUNT_PAGES and page.next_cursor:
                    self._log.warn(f"backfill: stopped counting the messages missed in "
                                   f"{channel} at {more}")
                    return got, more, False, top
            if not page.get("has_more"):
                break
        return got, more, True, top

    def _deliver(self, dispatcher: Dispatcher, channel: str, newest: List[Dict[str, Any]],
                 more: int, exact: bool) -> None:
        if more:
            self._log.info(f"backfill: {more}{'' if exact else '+'} message(s) missed in "
                           f"{channel}")
            dispatcher.emit("missed", (channel, more))
        if not newest:
            return
        ordered = sorted(newest, key=lambda m: ts_key(m["ts"]))
        with self._lock:
            self._remember(channel, [m["ts"] for m in ordered])
        self._log.debug(f"backfill: delivering {len(ordered)} message(s) of {channel}")
        for msg in ordered:
            if dispatcher.interrupted:
                return  # the rest stays after last_seen: a later backfill fetches it
            frame = dict(msg)
            frame.setdefault("type", "message")
            frame["channel"] = channel
            frame["backfilled"] = True
            dispatcher.deliver(frame)

    def _remember(self, channel: str, stamps: List[str]) -> None:
        """Drop live copies of these messages (with the lock held)."""
        for ts in stamps:
            self._dedup[(channel, ts)] = None
        while len(self._dedup) > REMEMBERED:
            self._dedup.popitem(last=False)

    def _call(self, method: str, params: Dict[str, Any],
              sleep: Optional[Callable[[float], bool]]) -> _Pages:
        return _Pages(self, method, params, sleep)

    def _failed(self, dispatcher: Dispatcher, what: str, err: SlackRTMError) -> None:
        if dispatcher.interrupted:
            return  # aborted by disconnect(): not an error
        self._log.warn(f"backfill: {what} failed: {err}")
        dispatcher.emit("error", (err,))


class _Pages:
    """Iterates the pages of one paginated call; each page's call waits out rate limits."""

    def __init__(self, owner: Backfill, method: str, params: Dict[str, Any],
                 sleep: Optional[Callable[[float], bool]]) -> None:
        self._owner = owner
        self._method = method
        self._params = params
        self._sleep = sleep
        self._first = self._page(None)

    def _page(self, cursor: Optional[str]) -> Any:
        # after the first page (sized to what is delivered), full pages: counting the rest
        # takes as few calls as it can
        params = dict(self._params, cursor=cursor, limit=_PAGE) if cursor else self._params
        # the WebClient waits out 429s itself (max_rate_limit_retries); a RateLimitedError
        # that still comes through is waited out here, a few more rounds
        for _ in range(MAX_RATE_LIMIT_ROUNDS):
            try:
                return self._owner._web.call(self._method, params)
            except RateLimitedError as err:
                self._owner._log.warn(f"backfill: {self._method} rate limited, waiting "
                                      f"{err.retry_after:g} s")
                if self._sleep is None or self._sleep(err.retry_after):
                    raise
        return self._owner._web.call(self._method, params)

    def __iter__(self) -> Any:
        page = self._first
        seen: Set[str] = set()
        while True:
            yield page
            cursor = page.next_cursor
            if not cursor or cursor in seen:
                return
            seen.add(cursor)
            page = self._page(cursor)


def attach(registry: Registry, web: Any, log: Log, *, store: bool,
           backfill: Union[bool, str], backfill_limit: int,
           backfill_since: Optional[Mapping[str, str]], identify: bool = False
           ) -> Tuple[Optional[Store], Optional[Backfill]]:
    """Validate the options and add the store and backfill observers to ``registry``.

    Any client class that dispatches Slack events through a :class:`Registry` enables both
    with this call (the run's shutdown interrupts the dispatcher's observers). ``web``
    needs a token the Web API methods accept: a bot token, not Socket Mode's app token.
    ``identify``: the connect data lacks ``team`` and ``self`` (Socket Mode), the store
    gets them from auth.test and team.info (:class:`~slackrtm._store.identity.Identity`).
    """
    if backfill not in (False, True, "count"):
        raise ValueError(f"backfill must be False, True or 'count', got {backfill!r}")
    if not isinstance(backfill_limit, int) or backfill_limit < 1:
        raise ValueError(f"backfill_limit must be an int >= 1, got {backfill_limit!r}")
    the_store = Store(web.call, log) if store else None
    the_backfill = None
    if backfill is not False:
        the_backfill = Backfill(web, log, "count" if backfill == "count" else "deliver",
                                backfill_limit, backfill_since)
    elif backfill_since:
        raise ValueError("backfill_since needs backfill=True or backfill='count'")
    if the_backfill is not None:  # first: a dropped duplicate never reaches the store
        registry.observe(the_backfill)
    if the_store is not None:
        registry.observe(the_store)
        if identify:
            registry.observe(Identity(web, the_store, log))
    return the_store, the_backfill
