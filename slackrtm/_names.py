"""Conversation names to ids for ``send_message("#general", ...)``: one conversations.list
walk per name not yet known, the answers cached for the client's life."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Dict

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm.web import WebClient

#: What a conversation id looks like (C..., G..., D...): upper case and digits, where
#: channel names are lower case.
ID = re.compile(r"^[A-Z0-9]+$")

HOW_TO_FIND = ("find ids with WebClient.conversations.list(), in the channel field of the "
               "events `python -m slackrtm tail` prints, or in Slack (the channel's details, "
               "at the bottom)")


class ConversationNames:
    """Resolves ``#name`` / ``name`` to a conversation id through the Web API (cached)."""

    def __init__(self, web: WebClient) -> None:
        self._web = web
        self._lock = threading.Lock()
        self._ids: Dict[str, str] = {}

    def resolve(self, ref: str, caller: str = "send_message()") -> str:
        """``ref`` itself when it looks like an id, else the id of the channel so named.

        Raises ``ValueError`` (saying an id is needed and how to find one) when no channel
        of that name is visible to the token; Web API failures raise as the WebClient's do.
        """
        if ID.match(ref):
            return ref
        name = ref[1:] if ref.startswith("#") else ref
        if not name or name.startswith("#") or any(ch.isspace() for ch in name):
            raise ValueError(f"{caller} needs a conversation id such as C0123456789, not "
                             f"{ref!r}: {HOW_TO_FIND}")
        with self._lock:
            known = self._ids.get(name)
        if known is not None:
            return known
        found: Dict[str, str] = {}
        for page in self._web.conversations.list(types="public_channel,private_channel",
                                                 exclude_archived=True, limit=1000):
            for channel in page.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name") and channel.get("id"):
                    found[str(channel["name"])] = str(channel["id"])
        with self._lock:
            self._ids.update(found)
        if name not in found:
            raise ValueError(f"{caller} needs a conversation id such as C0123456789: no "
                             f"channel named #{name} is visible to this token; "
                             f"{HOW_TO_FIND}")
        return found[name]
