"""The store's ``team`` and ``self`` for clients whose connect data lacks them (Socket Mode).

rtm.connect answers with the team and the bot's user; apps.connections.open does not. So a
``SocketModeClient`` with a store asks the Web API with its bot token: ``auth.test`` (the
bot's user id and name, the team's id, name and URL) and ``team.info`` (the whole team
object), once the first connection is authenticated, on the dispatcher thread before the
``authenticated`` handlers run (the ``ready`` handlers can rely on ``store.self``). Both
calls are aborted by the run's shutdown. Until both succeeded they are tried again at the
next connection.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

from slackrtm._engine.dispatch import Dispatcher, Observer
from slackrtm._log import Log
from slackrtm._store.store import Store
from slackrtm.errors import SlackRTMError


class Identity(Observer):
    """Loads ``store.team`` and ``store.self`` with ``auth.test`` and ``team.info``."""

    def __init__(self, web: Any, store: Store, log: Log) -> None:
        self._web = web
        self._store = store
        self._log = log
        self.loaded = False

    def before(self, name: str, args: Tuple[Any, ...], dispatcher: Dispatcher) -> None:
        """At ``authenticated``, until loaded once."""
        if name != "authenticated" or self.loaded or dispatcher.interrupted:
            return
        factory = getattr(self._web, "_abort_scope", None)
        with (factory() if factory is not None else contextlib.nullcontext()) as scope:
            abort = scope.abort if scope is not None else (lambda: None)
            with dispatcher.interruptible(abort):
                data = self._fetch(dispatcher)
        if data is not None:
            self._store.load_connect_data(data)
            self.loaded = True

    def _fetch(self, dispatcher: Dispatcher) -> Optional[Dict[str, Any]]:
        try:
            auth = self._web.call("auth.test", {})
            team: Dict[str, Any] = {"id": auth.get("team_id"), "name": auth.get("team")}
            url = auth.get("url")
            if isinstance(url, str) and urlsplit(url).hostname:
                team["domain"] = str(urlsplit(url).hostname).split(".")[0]
            info = self._web.call("team.info", {}).get("team")
            if isinstance(info, dict):
                team.update(info)
        except SlackRTMError as err:
            if not dispatcher.interrupted:
                self._log.warn(f"store: could not load the team and the bot's user with the "
                               f"bot token (auth.test, team.info): {err}")
            return None
        me = {"id": auth.get("user_id"), "name": auth.get("user")}
        if isinstance(auth.get("bot_id"), str):
            me["bot_id"] = auth.get("bot_id")
        return {"team": team, "self": me}
