"""Sending messages, as both clients' facades offer it: ``send_message`` and its futures.

A message goes over the RTM socket when it can (``RTMClient``, text only) and through the
Web API's chat.postMessage otherwise (every ``SocketModeClient`` message, and an RTM one
with fields only the Web API carries, such as ``blocks``). Either way it is one send of the
core: checked for length, paced per channel (``send_rate``), kept in order per channel, and
completed through a future; the run's poster (``_engine.poster``) posts the Web API ones.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional

import requests
import requests.utils

from slackrtm._client_base import BaseClient, WaitFuture
from slackrtm._engine.core import Resolve
from slackrtm._engine.pacing import Pacer, SendRate
from slackrtm._engine.run import apply
from slackrtm._engine.split import split_text
from slackrtm._names import ID, ConversationNames
from slackrtm.errors import SendWhileDisconnectedError
from slackrtm.web import WebClient

#: Arguments of chat.postMessage that ``send_message`` sets itself.
RESERVED_FIELDS = frozenset({"channel", "text", "thread_ts", "token"})


def check_send_rate(send_rate: Optional[SendRate]) -> Optional[Pacer[Any]]:
    """The core's pacer for ``send_rate`` (None: no pacing); TypeError for anything else."""
    if send_rate is not None and not isinstance(send_rate, SendRate):
        raise TypeError(f"send_rate must be a slackrtm.SendRate or None, got {send_rate!r}")
    return Pacer(send_rate) if send_rate is not None else None


class SendingClient(BaseClient):
    """A client that sends messages (both facades): the queueing shared by every send."""

    @property
    def bot_web_client(self) -> Optional[WebClient]:
        """The WebClient holding the bot token, which posts this client's messages: for any
        other Web API call as the bot (``reactions.add``, ...). ``RTMClient``: its token;
        ``SocketModeClient``: ``bot_token`` (None without one)."""
        return self._post_web

    def _poster_client(self, token: str, proxy: Optional[str]) -> WebClient:
        """The WebClient that posts messages with ``token`` (its secrets join the log's)."""
        web = WebClient(token, base_url=self._api_url, proxy=proxy,
                        ssl_context=self._ssl_context, logger=self._log)
        if proxy is None:
            settle_environment(web.session, web.base_url)
        return web

    def _message_body(self, text: str, conversation_id: str, thread_ts: Optional[str],
                      fields: Dict[str, Any]) -> Dict[str, Any]:
        reserved = sorted(RESERVED_FIELDS.intersection(fields))
        if reserved:
            raise TypeError(f"send_message() sets {', '.join(reserved)} itself: pass the "
                            "text and the conversation as its first two arguments (the "
                            "client's own token is used)")
        if not isinstance(text, str):
            raise TypeError(f"send_message(text, conversation_id): text must be a str, not "
                            f"{type(text).__name__}")
        if not isinstance(conversation_id, str):
            raise TypeError(f"send_message(text, conversation_id): conversation_id must be a "
                            f"str such as 'C0123456789', not {type(conversation_id).__name__}")
        body: Dict[str, Any] = {"channel": self._conversation_id(conversation_id),
                                "text": text}
        if thread_ts is not None:
            body["thread_ts"] = thread_ts
        body.update(fields)
        return body

    def _conversation_id(self, ref: str) -> str:
        """``ref`` if it is an id, else the id of the channel so named (looked up once with
        conversations.list, with the token that posts, and cached)."""
        if ID.match(ref):
            return ref
        with self._lock:
            names: Optional[ConversationNames] = getattr(self, "_names", None)
            if names is None:
                web = self._post_web if self._post_web is not None else self._web
                names = self._names = ConversationNames(web)
        return names.resolve(ref)  # outside the lock: it may call the Web API

    def _send_messages(self, body: Dict[str, Any], split: bool, web: bool) -> Any:
        """Queue ``body`` as one message, or (``split``) as the parts of its text, queued
        at once so that no other send of this client to that channel comes between them."""
        if not split:
            future: Future[Any] = WaitFuture(self)
            return self._submit(future, lambda: self._core.submit(
                "message", body, True, future, web=web))
        parts = split_text(body["text"])
        futures: List[Future[Any]] = [WaitFuture(self) for _ in parts]
        with self._lock:
            run = self._run
            failed = [f for f in (self._core.submit("message", {**body, "text": part}, True,
                                                    fut, web=web)
                                  for part, fut in zip(parts, futures)) if f is not None]
            writable = self._core.writable()
        apply(failed)
        if writable and run is not None:
            run.pump_or_wake()
        return futures

    def _submit(self, future: Future[Any], queue: Callable[[], Optional[Resolve]]) -> Future[Any]:
        with self._lock:
            run = self._run
            failed = queue()
            writable = self._core.writable()
        if failed is not None:
            apply([failed])
        elif writable and run is not None:
            run.pump_or_wake()
        elif run is None and not future.done():  # cannot happen: started means a run exists
            future.set_exception(SendWhileDisconnectedError("the client is not started"))
        return future


def settle_environment(session: requests.Session, url: str) -> None:
    """Read once what requests reads from the environment on every call (the proxy for
    ``url``'s host, honouring NO_PROXY, and a CA bundle): scanning the environment twice a
    call cost about a fifth of a loopback chat.postMessage round trip. This client talks to
    one host only, so the answer does not change between calls."""
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False
