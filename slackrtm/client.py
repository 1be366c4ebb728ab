"""``RTMClient``: the facade users hold. What it shares with ``SocketModeClient`` lives in
``_client_base``; the machinery of a run in ``_run`` and ``_rtm_run``."""

from __future__ import annotations

import logging
import ssl
from concurrent.futures import Future
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Literal,
    Mapping,
    Optional,
    Tuple,
    Union,
    overload,
)

from slackrtm._client_base import DEFAULT_API_URL, WaitFuture
from slackrtm._engine.backoff import Backoff
from slackrtm._engine.dedupe import Dedupe
from slackrtm._engine.pacing import DEFAULT_SEND_RATE, SendRate
from slackrtm._log import LogLevel
from slackrtm._protocols.rtm_run import RTMRun
from slackrtm._sending import SendingClient, check_send_rate
from slackrtm._store.backfill import Backfill, attach
from slackrtm._store.store import Store
from slackrtm.web import WebClient

__all__ = ["DEFAULT_API_URL", "RTMClient"]


class RTMClient(SendingClient):
    """A Slack RTM API client: one WebSocket kept alive, events out, sends in.

    The manual (docs/rtm.rst and the pages beside it) is the full guide. Typical use::

        rtm = RTMClient(token)
        rtm.on("message", lambda event: print(event["text"]))
        rtm.start().result(timeout=30)
        print(rtm.send_message("hi", channel_id).result()["ts"])

    Besides the arguments of the API contract, ``max_backlog`` (default 1,000) bounds the
    events read but not yet handled: when handlers fall that far behind, the client stops
    reading the socket until they catch up (TCP back-pressure; nothing is dropped), and
    keep-alive and reply deadlines stand still meanwhile.

    ``send_rate`` (default ``SendRate(per_second=1.0, burst=3)``) paces sends that carry a
    channel (messages, typing), per channel, as Slack asks; ``None`` turns pacing off. With
    pacing, sends are written in the order they were made *per channel*; a send to one
    channel never waits behind another channel's. Text over 4,000 characters fails at once
    with :class:`~slackrtm.errors.MessageTooLongError` (``split=True`` sends it in parts).
    A message with fields only the Web API carries (``blocks``, ``attachments``, ...) is
    posted with chat.postMessage and this client's token, paced and ordered with the rest.

    ``store=True`` keeps a live workspace store (:attr:`store`); ``backfill=True`` delivers
    the messages missed while disconnected after each reconnect (at most
    ``backfill_limit`` per channel, marked ``backfilled``), ``backfill="count"`` only
    reports them through the ``missed`` event; ``backfill_since`` seeds :attr:`last_seen`.
    See docs/store.rst.

    ``dedupe`` (a :class:`~slackrtm.Dedupe`, e.g. ``slackrtm.redis.RedisDedupe``) runs
    several copies of a bot as one: every copy receives every event, and only the copy
    that claims an event first runs its handlers (the others' stores still see it). See
    docs/replicas.rst.
    """

    _token_kind = "rtm"

    def __init__(
        self,
        token: str,
        *,
        slack_api_url: Optional[str] = None,
        auto_reconnect: bool = True,
        use_rtm_connect: bool = True,
        client_ping_timeout: float = 10.0,
        server_pong_timeout: float = 5.0,
        reply_timeout: float = 30.0,
        hello_timeout: float = 10.0,
        backoff: Optional[Backoff] = None,
        log_level: int = LogLevel.INFO,
        logger: Union[logging.Logger, Callable[[str, str], None], None] = None,
        proxy: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        web_client: Optional[WebClient] = None,
        max_backlog: int = 1_000,
        send_rate: Optional[SendRate] = DEFAULT_SEND_RATE,
        store: bool = False,
        backfill: Union[bool, str] = False,
        backfill_limit: int = 100,
        backfill_since: Optional[Mapping[str, str]] = None,
        dedupe: Optional[Dedupe] = None,
    ) -> None:
        pacer = check_send_rate(send_rate)
        super().__init__(
            token, slack_api_url=slack_api_url, auto_reconnect=auto_reconnect,
            client_ping_timeout=client_ping_timeout, server_pong_timeout=server_pong_timeout,
            reply_timeout=reply_timeout, hello_timeout=hello_timeout, backoff=backoff,
            log_level=log_level, logger=logger, proxy=proxy, ssl_context=ssl_context,
            web_client=web_client, max_backlog=max_backlog, pacer=pacer)
        self._use_rtm_connect = use_rtm_connect
        self._setup_dedupe(dedupe, local_default=False)
        self._post_web = self._poster_client(token, proxy)
        self._store, self._backfill = attach(
            self._registry, self._web, self._log, store=store, backfill=backfill,
            backfill_limit=backfill_limit, backfill_since=backfill_since)

    def _new_run(self, args: Dict[str, Any]) -> RTMRun:
        return RTMRun(self._context, args, use_rtm_connect=self._use_rtm_connect)

    def __repr__(self) -> str:
        return (f"<RTMClient state={self.state} user={self.active_user_id} "
                f"team={self.active_team_id}>")

    @property
    def active_user_id(self) -> Optional[str]:
        """The bot's user id, from the last rtm.connect / rtm.start answer."""
        return _dig(self._connect_data, "self", "id")

    @property
    def active_team_id(self) -> Optional[str]:
        """The workspace id, from the last rtm.connect / rtm.start answer."""
        return _dig(self._connect_data, "team", "id")

    @property
    def store(self) -> Store:
        """The live workspace store (``RTMClient(..., store=True)``); see :class:`Store`."""
        if self._store is None:
            raise RuntimeError("the workspace store is off: create the client with "
                               "RTMClient(..., store=True)")
        return self._store

    @property
    def last_seen(self) -> Dict[str, str]:
        """Channel id -> ``ts`` of the newest message delivered there (with ``backfill``;
        persist it and pass it back as ``backfill_since`` to backfill across restarts)."""
        backfill: Optional[Backfill] = self._backfill
        return backfill.last_seen if backfill is not None else {}

    def start(self, **args: Any) -> Future[Dict[str, Any]]:
        """Connect in the background; the future resolves with the connect data at ready.

        ``args`` go to rtm.connect / rtm.start on every (re)connect (e.g.
        ``batch_presence_aware=True``).
        """
        return super().start(**args)

    def run_forever(self, **args: Any) -> None:
        """Start if needed (``args`` as for :meth:`start`), then block until disconnected.

        Ctrl-C or SIGTERM (on the main thread) disconnect cleanly and return. When the run
        ends for another reason than ``disconnect()``, the error that ended it is raised,
        also when it ended after ``start()``'s future resolved and before this call: that
        run is not started again (a later call starts a new one).
        """
        super().run_forever(**args)

    # ------------------------------------------------------------------ sending
    @overload
    def add_outgoing_event(self, type: str, body: Optional[Dict[str, Any]] = None, *,
                           await_reply: bool) -> Future[Any]: ...
    @overload
    def add_outgoing_event(self, await_reply: bool, type: str,
                           body: Optional[Dict[str, Any]] = None) -> Future[Any]: ...

    def add_outgoing_event(self, *args: Any, **kwargs: Any) -> Future[Any]:
        """Send any RTM event: ``add_outgoing_event("typing", {"channel": c},
        await_reply=False)``. The future resolves with Slack's reply (``await_reply``) or
        with None once the event is written.

        The older form with the flag first, ``add_outgoing_event(True, "message", body)``,
        is accepted too.
        """
        return self._send_event(*_outgoing_args(args, kwargs))

    def _send_event(self, type: str, body: Optional[Dict[str, Any]],
                    await_reply: bool) -> Future[Any]:
        future: Future[Any] = WaitFuture(self)
        return self._submit(future, lambda: self._core.submit(type, body, await_reply, future))

    @overload
    def send_message(self, text: str, conversation_id: str, *, thread_ts: Optional[str] = None,
                     split: Literal[False] = False, **fields: Any) -> Future[Dict[str, Any]]: ...
    @overload
    def send_message(self, text: str, conversation_id: str, *, thread_ts: Optional[str] = None,
                     split: Literal[True], **fields: Any) -> List[Future[Dict[str, Any]]]: ...
    @overload
    def send_message(self, text: str, conversation_id: str, *, thread_ts: Optional[str] = None,
                     split: bool, **fields: Any
                     ) -> Union[Future[Dict[str, Any]], List[Future[Dict[str, Any]]]]: ...

    def send_message(self, text: str, conversation_id: str, *, thread_ts: Optional[str] = None,
                     split: bool = False, **fields: Any) -> Any:
        """Post ``text``; resolves with Slack's reply (``ok``, ``ts``, ``text``) to it.

        ``conversation_id`` is an id (``C0123456789``); a channel name (``"#general"`` or
        ``"general"``) is looked up once with conversations.list and cached (``ValueError``
        if no channel of that name is visible to the token). Text over 4,000 characters
        fails the future at once (``MessageTooLongError``).
        With ``split=True``, returns a list of futures, one per part: the text is cut at
        newlines, else whitespace, else anywhere (see docs/sending.rst), and the parts are queued
        together, so they go in order with no other send of this client to that channel
        between them.

        ``fields`` are chat.postMessage arguments RTM cannot carry (``blocks``,
        ``attachments``, ``unfurl_links``, ``reply_broadcast``, ``metadata``, ...): such a
        message is posted through the Web API with this client's token, with the same
        future (chat.postMessage's answer plus ``text``; a refusal fails it with
        :class:`~slackrtm.errors.SlackApiError`), pacing and order per channel; with
        ``split=True`` every part carries them.
        """
        body = self._message_body(text, conversation_id, thread_ts, fields)
        return self._send_messages(body, split, web=bool(fields))

    def send_typing(self, conversation_id: str) -> Future[None]:
        """Show the typing indicator; resolves once written."""
        return self._send_event("typing", {"channel": conversation_id}, False)

    def subscribe_presence(self, user_ids: List[str]) -> Future[None]:
        """Subscribe to these users' presence (the complete list); re-sent on reconnect."""
        future: Future[Any] = WaitFuture(self)
        return self._submit(future, lambda: self._core.subscribe_presence(user_ids, future))


def _outgoing_args(args: Tuple[Any, ...], kwargs: Dict[str, Any]
                   ) -> Tuple[str, Optional[Dict[str, Any]], bool]:
    """``(type, body, await_reply)`` from either form of :meth:`RTMClient.add_outgoing_event`
    (a bool first is the older form: it is never an event type)."""
    names = ("await_reply", "type", "body") if args and isinstance(args[0], bool) \
        else ("type", "body")
    if len(args) > len(names):
        raise TypeError(f"add_outgoing_event() takes at most {len(names)} positional "
                        f"arguments ({len(args)} given)")
    given = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in ("await_reply", "type", "body"):
            raise TypeError(f"add_outgoing_event() got an unexpected keyword argument {key!r}")
        if key in given:
            raise TypeError(f"add_outgoing_event() got multiple values for {key!r}")
        given[key] = value
    if "type" not in given or "await_reply" not in given:
        raise TypeError("add_outgoing_event() needs the event type and await_reply, as in "
                        "add_outgoing_event('typing', {'channel': c}, await_reply=False)")
    if not isinstance(given["type"], str):
        raise TypeError(f"the event type must be a str, got {given['type']!r}")
    return given["type"], given.get("body"), bool(given["await_reply"])


def _dig(data: Optional[Dict[str, Any]], *keys: str) -> Optional[str]:
    value: Any = data
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, str) else None
