"""``SocketModeClient``: the same handlers as ``RTMClient``, for apps made today.

RTM accepts only the tokens of classic Slack apps, which can no longer be created. Apps
made today receive the same events over Socket Mode: ``apps.connections.open`` with an
app-level token (``xapp-...``) hands out a WebSocket URL, and events arrive in envelopes
that the client acknowledges. The run, its threads, keep-alive, backoff, logging and the
dispatcher are the ones RTMClient uses (``_client_base``, ``_run``); what differs lives in
``_sm_run`` and ``_envelope``.
"""

from __future__ import annotations

import logging
import ssl
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Union, overload

from slackrtm._engine.backoff import Backoff
from slackrtm._engine.dedupe import Dedupe
from slackrtm._engine.pacing import DEFAULT_SEND_RATE, SendRate
from slackrtm._log import LogLevel
from slackrtm._protocols.envelope import SocketModeRequest
from slackrtm._protocols.sm_run import SocketModeRun
from slackrtm._sending import SendingClient, check_send_rate
from slackrtm._store.backfill import Backfill, attach
from slackrtm._store.store import Store
from slackrtm._tokens import clean_token
from slackrtm.web import WebClient

__all__ = ["SocketModeClient", "SocketModeRequest"]

#: How envelopes are acknowledged: at once by the client (``"auto"``) or by the handlers.
AckMode = Literal["auto", "manual"]
ACK_MODES = ("auto", "manual")


class SocketModeClient(SendingClient):
    """A Slack Socket Mode client: one WebSocket kept alive and refreshed with no gap,
    envelopes acknowledged, events out to the same handlers as :class:`RTMClient`.

    Typical use::

        client = SocketModeClient(os.environ["SLACK_APP_TOKEN"],
                                  bot_token=os.environ["SLACK_TOKEN"])

        @client.on("app_mention")             # the inner event of events_api envelopes
        def on_mention(event):
            client.send_message("hi!", event["channel"], thread_ts=event["ts"])

        @client.on("slash_commands")          # the envelope type: gets the request
        def on_command(request): request.ack({"text": "done"})

        client.start().result(timeout=30)     # resolves at hello

    ``token`` is an app-level token (``xapp-...``) with the ``connections:write`` scope.
    ``ack="auto"`` (default) acknowledges every envelope as soon as it is read, before any
    handler runs, so a slow handler never makes Slack redeliver; envelopes that accept a
    response payload and have handlers of their type are left to ``request.ack(payload)``
    (or acknowledged empty once the handlers return). ``ack="manual"`` leaves every
    acknowledgement to the handlers; one left unacknowledged when its handlers return is
    acknowledged empty, with a warning. Envelopes Slack delivers again (same
    ``envelope_id``, or the same ``event_id``) are acknowledged and not dispatched again:
    the client remembers the last 10,000 envelopes (``dedupe=MemoryDedupe(size)`` sets
    another size). With several copies of a bot, ``dedupe=RedisDedupe(...)``
    (``slackrtm.redis``) lets one copy handle each event; see ``health()`` too.

    With ``bot_token`` (``xoxb-...``), :meth:`send_message` posts with chat.postMessage as
    ``RTMClient.send_message`` sends: a future per message, the 4,000-character check,
    ``split``, per-channel pacing (``send_rate``) with order kept per channel, one resend
    after an HTTP 429. Socket Mode has no typing indicator nor presence subscription.
    Lifecycle events and states are RTMClient's; a refresh keeps the client ``ready`` and
    emits none.

    ``store=True`` and ``backfill=True | "count"`` (``backfill_limit``, ``backfill_since``,
    :attr:`last_seen`, the ``missed`` event) work as for RTMClient, with the bot token:
    after a lost connection (never after a refresh, which loses nothing) the messages
    posted meanwhile are delivered (``backfilled: True``) or counted. Each message is
    delivered once, whether it comes by backfill, live, or again in one of Slack's
    retried envelopes.

    ``debug_reconnects=True`` adds ``debug_reconnects=true`` to each WebSocket URL: Slack
    then ends connections after about 360 seconds instead of hours, so the refresh
    handling can be watched against real Slack within minutes. For testing only.
    """

    _token_kind = "app"

    def __init__(
        self,
        token: str,
        *,
        slack_api_url: Optional[str] = None,
        auto_reconnect: bool = True,
        ack: AckMode = "auto",
        client_ping_timeout: float = 10.0,
        server_pong_timeout: float = 5.0,
        hello_timeout: float = 10.0,
        backoff: Optional[Backoff] = None,
        log_level: int = LogLevel.INFO,
        logger: Union[logging.Logger, Callable[[str, str], None], None] = None,
        proxy: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        web_client: Optional[WebClient] = None,
        max_backlog: int = 1_000,
        bot_token: Optional[str] = None,
        send_rate: Optional[SendRate] = DEFAULT_SEND_RATE,
        store: bool = False,
        backfill: Union[bool, str] = False,
        backfill_limit: int = 100,
        backfill_since: Optional[Mapping[str, str]] = None,
        dedupe: Optional[Dedupe] = None,
        debug_reconnects: bool = False,
    ) -> None:
        if ack not in ACK_MODES:
            raise ValueError(f"ack must be 'auto' or 'manual', got {ack!r}")
        if bot_token is not None:
            bot_token = clean_token(bot_token, owner="SocketModeClient's bot_token",
                                    kind="bot")
        pacer = check_send_rate(send_rate)
        if bot_token is None and (store or backfill is not False):
            raise ValueError("store and backfill need a bot token: SocketModeClient(app_token, "
                             "bot_token='xoxb-...', store=True); the app-level token cannot "
                             "read the workspace")
        super().__init__(
            token, slack_api_url=slack_api_url, auto_reconnect=auto_reconnect,
            client_ping_timeout=client_ping_timeout, server_pong_timeout=server_pong_timeout,
            reply_timeout=30.0, hello_timeout=hello_timeout, backoff=backoff,
            log_level=log_level, logger=logger, proxy=proxy, ssl_context=ssl_context,
            web_client=web_client, max_backlog=max_backlog, pacer=pacer)
        self._manual_ack = ack == "manual"
        self._setup_dedupe(dedupe, local_default=True)
        self._debug_reconnects = bool(debug_reconnects)
        if bot_token is not None:
            self._log.add_secret(bot_token)
            self._post_web = self._poster_client(bot_token, proxy)
        self._store, self._backfill = attach(
            self._registry, self._post_web, self._log, store=store, backfill=backfill,
            backfill_limit=backfill_limit, backfill_since=backfill_since, identify=True)

    def _new_run(self, args: Dict[str, Any]) -> SocketModeRun:
        return SocketModeRun(self._context, args, manual_ack=self._manual_ack,
                             debug_reconnects=self._debug_reconnects)

    def __repr__(self) -> str:
        return f"<SocketModeClient state={self.state} app={self.app_id}>"

    @property
    def app_id(self) -> Optional[str]:
        """The app's id, from the last ``hello`` (``connection_info.app_id``)."""
        info = (self._connect_data or {}).get("connection_info")
        app = info.get("app_id") if isinstance(info, dict) else None
        return app if isinstance(app, str) else None

    def start(self, **args: Any) -> Future[Dict[str, Any]]:
        """Connect in the background. The future resolves at ``hello`` with the
        apps.connections.open answer plus hello's ``num_connections``,
        ``connection_info`` and ``debug_info``; it fails with the error that ended the
        run (``PlatformError`` for ``invalid_auth`` or ``link_disabled``)."""
        return super().start(**args)

    @property
    def store(self) -> Store:
        """The live workspace store (``store=True``, with ``bot_token``); see :class:`Store`.
        ``team`` and ``self`` come from auth.test and team.info."""
        if self._store is None:
            raise RuntimeError("the workspace store is off: create the client with "
                               "SocketModeClient(app_token, bot_token=..., store=True)")
        return self._store

    @property
    def last_seen(self) -> Dict[str, str]:
        """Channel id -> ``ts`` of the newest message delivered there (with ``backfill``;
        persist it and pass it back as ``backfill_since`` to backfill across restarts)."""
        backfill: Optional[Backfill] = self._backfill
        return backfill.last_seen if backfill is not None else {}

    # ------------------------------------------------------------------ sending
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
        """Post ``text`` with chat.postMessage and the bot token, as ``RTMClient`` sends.

        Returns a future (a list of futures with ``split=True``) resolving with Slack's
        answer: ``ok``, ``channel``, ``ts``, ``text`` and the posted ``message``. Text over
        4,000 characters fails it at once (``MessageTooLongError``); a refusal fails it
        with :class:`~slackrtm.errors.SlackApiError` (``not_in_channel``, ...). Sends made
        while not ready wait for ready, and a ``disconnect()`` fails those not yet posted
        (``SendWhileDisconnectedError``). ``fields`` are further chat.postMessage arguments
        (``blocks``, ``attachments``, ``unfurl_links``, ``metadata``, ...). Raises
        ``ValueError`` when the client has no ``bot_token``.
        """
        if self._post_web is None:
            raise ValueError(
                "send_message needs a bot token: SocketModeClient(app_token, "
                "bot_token='xoxb-...'); the app-level token cannot post. The bot token is "
                "the app's 'Bot User OAuth Token' (OAuth & Permissions page, needs the "
                "chat:write scope)")
        body = self._message_body(text, conversation_id, thread_ts, fields)
        return self._send_messages(body, split, web=True)

    def send_typing(self, conversation_id: str) -> Future[None]:
        """Not in Socket Mode: raises :class:`NotImplementedError` (RTM only)."""
        raise NotImplementedError(
            "Socket Mode has no typing indicator: send_typing() exists only on RTMClient")

    def subscribe_presence(self, user_ids: List[str]) -> Future[None]:
        """Not in Socket Mode: raises :class:`NotImplementedError` (RTM only)."""
        raise NotImplementedError(
            "Socket Mode has no presence subscription: subscribe_presence() exists only on "
            "RTMClient (with Socket Mode, poll users.getPresence with the bot web client)")
