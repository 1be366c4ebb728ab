"""The poster: the thread that sends messages with the Web API's chat.postMessage (Run's mixin).

Socket Mode has no way to send, and RTM cannot carry ``blocks``, ``attachments`` and the
other arguments only the Web API takes, so such messages go to ``chat.postMessage``. They
are queued, paced and ordered per channel by the core with every other send; the writer
hands each one over here when its turn comes, and this thread posts them one after the
other, in that order, over one keep-alive HTTP connection. The HTTP call never runs on the
dispatcher (a handler that sends and does not wait is not held up) nor on the caller's
thread, and futures are completed here, outside every lock.

An HTTP 429 slows the channel down by its ``Retry-After`` and sends the message again
once (with pacing, through the core, first of its channel; without, from a small list of
delayed posts kept here). Any other failure fails the future with the Web API's error.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

from slackrtm._engine.context import RunContext, apply, monotonic
from slackrtm._engine.core import Resolve, Send
from slackrtm._log import Log
from slackrtm.errors import (
    NoReplyReceivedError,
    RateLimitedError,
    SendWhileDisconnectedError,
    SlackHTTPError,
    SlackRTMError,
)
from slackrtm.web import WebClient

__all__ = ["POST_METHOD", "Poster"]

POST_METHOD = "chat.postMessage"


class Poster:
    """The posting half of a run; :class:`slackrtm._engine.run.Run` sets these attributes."""

    ctx: RunContext
    log: Log
    stop: threading.Event
    stopping: bool
    kick: threading.Event
    http_scopes: Set[Any]
    posts: Deque[Send]
    delayed: List[Tuple[float, Send]]  # resends after a 429 without pacing: (due, send)
    wake_poster: threading.Event

    def _init_poster(self) -> None:
        self.posts = deque()
        self.delayed = []
        self.wake_poster = threading.Event()

    def queue_post(self, send: Send) -> None:
        """Hand a web send over to the poster (the writer calls this, in channel order)."""
        with self.ctx.lock:
            stopping = self.stopping
            if not stopping:
                self.posts.append(send)
        if stopping:
            apply(self._drop_posts_of([send], "the client disconnected"))
            return
        self.wake_poster.set()

    def _poster_main(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    send = self._next_post()
                    if send is not None:
                        self._post(send)
                except BaseException as exc:
                    self.log.error("the poster thread failed unexpectedly", exc)
                    self.stop.wait(1.0)
        finally:
            with self.ctx.lock:
                effects = self._drop_posts("the client disconnected")
            apply(effects)

    def _next_post(self) -> Optional[Send]:
        """The next send to post, waiting for one (or for a delayed resend to come due)."""
        with self.ctx.lock:
            now = monotonic()
            if self.delayed and self.delayed[0][0] <= now:
                return self.delayed.pop(0)[1]
            if self.posts:
                return self.posts.popleft()
            wait = min(30.0, self.delayed[0][0] - now) if self.delayed else 30.0
            self.wake_poster.clear()
        self.wake_poster.wait(max(0.0, wait))
        return None

    def _post(self, send: Send) -> None:
        ctx = self.ctx
        web: Optional[WebClient] = ctx.post_web
        future = send.future
        if future is None or future.done():
            return
        if web is None:  # cannot happen: the facade refuses such sends
            apply([Resolve(future, error=SendWhileDisconnectedError(
                "this client has no token to post messages with"))])
            return
        scope_factory = getattr(web, "_abort_scope", None) or contextlib.nullcontext
        try:
            with scope_factory() as scope:
                with ctx.lock:
                    self.http_scopes.add(scope)
                if self.stop.is_set() and scope is not None:
                    scope.abort()
                try:
                    resp = web.call(POST_METHOD, send.body, rate_limit_retries=0)
                finally:
                    with ctx.lock:
                        self.http_scopes.discard(scope)
        except RateLimitedError as err:
            self._rate_limited(send, err)
            return
        except SlackRTMError as err:
            if self.stop.is_set() and isinstance(err, SlackHTTPError):
                err = NoReplyReceivedError(
                    f"the client disconnected while posting message {send.id} to "
                    f"{send.body.get('channel')}; it may or may not have been posted")
            apply([Resolve(future, error=err)])
            return
        except Exception as exc:  # anything else the HTTP stack raises
            apply([Resolve(future, error=SlackHTTPError(self.log.redact(
                f"{POST_METHOD} failed: {type(exc).__name__}: {exc}")))])
            return
        apply([Resolve(future, result=posted(resp.data, send.body))])

    def _rate_limited(self, send: Send, err: RateLimitedError) -> None:
        """HTTP 429: slow the channel down and post once more, or fail the send."""
        assert send.future is not None
        now = monotonic()
        ctx = self.ctx
        with ctx.lock:
            held = ctx.core.rate_limited(send, err.retry_after, now)
            local = not held and not send.retried and not self.stopping \
                and ctx.core.pacer is None
            if local:  # no pacing: wait Retry-After here, other channels go on meanwhile
                send.retried = True
                self.delayed.append((now + err.retry_after, send))
                self.delayed.sort(key=lambda item: (item[0], item[1].seq))
        if held:
            self.log.debug(f"{POST_METHOD} to {send.body.get('channel')} was rate limited: "
                           f"posting it again in {err.retry_after:g} s")
            self.kick.set()  # the timer recomputes when the channel's next token comes
        elif not local:
            apply([Resolve(send.future, error=err)])

    def _drop_posts(self, reason: str) -> List[Resolve]:
        """Fail every send handed over and not posted yet."""
        assert self.ctx.lock.locked()
        items = list(self.posts) + [send for _, send in self.delayed]
        self.posts.clear()
        self.delayed.clear()
        return self._drop_posts_of(items, reason)

    @staticmethod
    def _drop_posts_of(items: List[Send], reason: str) -> List[Resolve]:
        return [Resolve(send.future, error=SendWhileDisconnectedError(
            f"{reason} before this message could be posted"))
            for send in items if send.future is not None]


def posted(data: Dict[str, Any], body: Dict[str, Any]) -> Dict[str, Any]:
    """chat.postMessage's answer as a send's result: it has ``ok``, ``channel``, ``ts`` and
    ``text``, the keys of RTM's reply, plus the posted ``message``."""
    result = dict(data)
    message = result.get("message")
    text = message.get("text") if isinstance(message, dict) else None
    result.setdefault("text", text if isinstance(text, str) else body.get("text", ""))
    return result
