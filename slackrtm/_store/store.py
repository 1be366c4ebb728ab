"""The workspace store: the team, the bot, users, channels and IMs, kept current from events.

One :class:`Store` per client (``RTMClient(..., store=True)``). It is an internal
:class:`~slackrtm._engine.dispatch.Observer`: the dispatcher applies every event to it before any
user handler of that event runs, so a handler always reads a store that already includes
its own event. Entries are loaded lazily through the Web API (``users.info``,
``conversations.info``; ``users.list`` and ``conversations.list`` in :meth:`Store.load_all`)
and cached: one entry per object, in memory, no history.

Every entry is an immutable snapshot (nested dicts are read-only mappings, lists are
tuples): an update replaces the entry, so a reader on any thread sees either the old or
the new one, never a half-applied change.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from slackrtm._engine.dispatch import Dispatcher, Frame, Observer
from slackrtm._log import Log
from slackrtm._store.view import Entry, View, freeze, thaw
from slackrtm.errors import SlackApiError

_NOT_FOUND = frozenset({"user_not_found", "channel_not_found", "users_not_found"})
_LIST_TYPES = "public_channel,private_channel,mpim,im"


class Store(Observer):
    """The live workspace store of one client: ``team``, ``self``, ``users``, ``channels``
    and ``ims`` (read-only), lazy lookups and a full load.

    ``users``, ``channels`` (public and private channels, MPIMs) and ``ims`` show only
    what is cached; :meth:`user`, :meth:`channel` and :meth:`im` fetch a missing entry
    through the Web API on the calling thread and cache it. Safe to use from any thread.
    A user's ``presence`` key is present once a ``presence_change`` said it.
    """

    def __init__(self, call: Callable[[str, Dict[str, Any]], Any], log: Log) -> None:
        #: ``call(method, params)`` -> a response with ``.get()`` / iteration over pages.
        self._call = call
        self._log = log
        self._lock = threading.Lock()
        self._users: Dict[str, Entry] = {}
        self._channels: Dict[str, Entry] = {}
        self._ims: Dict[str, Entry] = {}
        self._team: Optional[Entry] = None
        self._self: Optional[Entry] = None
        self._presence: Dict[str, str] = {}  # said by events for users not cached yet
        self._seq = 0
        self._changed: Dict[str, int] = {}  # id -> seq of the last change an event made
        self.users = View(self._lock, self._users, "users")
        self.channels = View(self._lock, self._channels, "channels")
        self.ims = View(self._lock, self._ims, "ims")

    def __repr__(self) -> str:
        return (f"<slackrtm Store: {len(self._users)} users, {len(self._channels)} channels, "
                f"{len(self._ims)} ims>")

    # ------------------------------------------------------------------ reading
    @property
    def team(self) -> Optional[Entry]:
        """The workspace (``id``, ``name``, ``domain``, ...) from rtm.connect / rtm.start,
        kept current by ``team_rename`` and ``team_domain_change``; None before that."""
        return self._team

    @property
    def self(self) -> Optional[Entry]:
        """The bot's own user (``id``, ``name``, ...) from rtm.connect / rtm.start."""
        return self._self

    def user(self, user_id: str) -> Entry:
        """The user ``user_id``: cached, else fetched with ``users.info`` and cached.

        Raises ``KeyError`` when Slack knows no such user, and the Web API's errors
        (``SlackHTTPError``, ``RateLimitedError``, ...) when the call fails.
        """
        found = self._users.get(user_id)
        return found if found is not None else self._fetch(
            "users.info", {"user": user_id}, "user", user_id)

    def channel(self, channel_id: str) -> Entry:
        """The conversation ``channel_id``: cached (in ``channels`` or ``ims``), else fetched
        with ``conversations.info`` and cached. Errors as for :meth:`user`."""
        found = self._channels.get(channel_id) or self._ims.get(channel_id)
        return found if found is not None else self._fetch(
            "conversations.info", {"channel": channel_id}, "channel", channel_id)

    def im(self, channel_id: str) -> Entry:
        """The direct-message conversation ``channel_id`` (same as :meth:`channel`)."""
        return self.channel(channel_id)

    def name_of(self, object_id: str) -> str:
        """A display name for a user or conversation id, from the cache only: ``@name`` for
        a user, ``#name`` for a channel, the id itself when nothing is cached."""
        user = self._users.get(object_id)
        if user is not None:
            return "@" + str(user.get("name", object_id))
        channel = self._channels.get(object_id)
        if channel is not None and channel.get("name"):
            return "#" + str(channel["name"])
        return object_id

    def load_all(self) -> None:
        """Load every user (``users.list``) and conversation (``conversations.list``, all
        types) page by page, and drop cached conversations that no longer exist. Blocks;
        call it from any thread (not from a handler if the workspace is big). Entries an
        event changed while the pages were loading keep the event's version."""
        since = self._seq
        users = [u for page in self._call("users.list", {"limit": 200})
                 for u in page.get("members") or []]
        channels = [c for page in self._call("conversations.list",
                                             {"types": _LIST_TYPES, "limit": 200})
                    for c in page.get("channels") or []]
        with self._lock:
            for user in users:
                if isinstance(user, dict) and isinstance(user.get("id"), str) and \
                        self._changed.get(user["id"], 0) <= since:
                    self._put_user(user, touch=False)
            listed = set()
            for channel in channels:
                if isinstance(channel, dict) and isinstance(channel.get("id"), str):
                    listed.add(channel["id"])
                    if self._changed.get(channel["id"], 0) <= since:
                        self._put_channel(channel, touch=False)
            for table in (self._channels, self._ims):
                for cid in [c for c in table if c not in listed
                            and self._changed.get(c, 0) <= since]:
                    del table[cid]

    def _fetch(self, method: str, params: Dict[str, Any], key: str, object_id: str) -> Entry:
        since = self._seq
        try:
            data = self._call(method, params).get(key)
        except SlackApiError as exc:
            if exc.error in _NOT_FOUND:
                raise KeyError(object_id) from None
            raise
        if not isinstance(data, dict):
            raise KeyError(object_id)
        with self._lock:
            table = self._users if key == "user" else (
                self._ims if data.get("is_im") else self._channels)
            current = table.get(object_id)
            if current is not None or self._changed.get(object_id, 0) > since:
                return current if current is not None else freeze(data)  # an event won
            if key == "user":
                return self._put_user(data, touch=False)
            return self._put_channel(data, touch=False)

    # ------------------------------------------------------------------ observer hooks
    def frame(self, frame: Frame, dispatcher: Dispatcher) -> bool:
        """Apply a Slack event before its handlers run (never drops it)."""
        self.apply(frame)
        return True

    def before(self, name: str, args: Tuple[Any, ...], dispatcher: Dispatcher) -> None:
        """Take ``team`` and ``self`` (and rtm.start's cache) from the connect data."""
        if name == "authenticated" and args and isinstance(args[0], dict):
            self.load_connect_data(args[0])

    def load_connect_data(self, data: Mapping[str, Any]) -> None:
        """Apply an rtm.connect / rtm.start answer: ``team``, ``self``, and rtm.start's
        ``users``, ``channels``, ``groups``, ``mpims`` and ``ims`` (newer than the cache)."""
        with self._lock:
            team, me = data.get("team"), data.get("self")
            if isinstance(team, dict):
                self._team = freeze({**thaw(self._team or {}), **team})
            if isinstance(me, dict):
                self._self = freeze({**thaw(self._self or {}), **me})
            for user in data.get("users") or ():
                if isinstance(user, dict):
                    self._put_user(user)
            for key in ("channels", "groups", "mpims", "ims"):
                for channel in data.get(key) or ():
                    if isinstance(channel, dict):
                        if key == "ims":
                            channel = {"is_im": True, **channel}
                        self._put_channel(channel)

    # ------------------------------------------------------------------ applying events
    def apply(self, event: Mapping[str, Any]) -> None:
        """Apply one Slack event to the store (the client does this for every event;
        events of other types are ignored)."""
        apply = _APPLY.get(event.get("type"))  # type: ignore[arg-type]
        if apply is not None:
            with self._lock:
                try:
                    apply(self, event)
                except (KeyError, TypeError, AttributeError, ValueError) as exc:
                    self._log.debug(f"store: ignored a malformed {event.get('type')} "
                                    f"event ({type(exc).__name__}: {exc})")

    def _touch(self, object_id: str) -> None:
        self._seq += 1
        self._changed[object_id] = self._seq

    def _put_user(self, user: Mapping[str, Any], touch: bool = True) -> Entry:
        uid = user["id"]
        fields = dict(user)
        old = self._users.get(uid)
        presence = self._presence.pop(uid, None) or (old.get("presence") if old else None)
        if presence is not None and "presence" not in fields:
            fields["presence"] = presence
        entry: Entry = freeze(fields)
        self._users[uid] = entry
        if self._self is not None and self._self.get("id") == uid and "name" in fields:
            self._self = freeze({**thaw(self._self), "name": fields["name"]})
        if touch:
            self._touch(uid)
        return entry

    def _put_channel(self, channel: Mapping[str, Any], touch: bool = True) -> Entry:
        cid = channel["id"]
        entry: Entry = freeze(dict(channel))
        if channel.get("is_im"):
            self._ims[cid] = entry
        else:
            self._channels[cid] = entry
        if touch:
            self._touch(cid)
        return entry

    def _update(self, cid: Any, **changes: Any) -> None:
        """Change fields of a cached conversation (nothing when it is not cached)."""
        if not isinstance(cid, str):
            return
        table = self._ims if cid in self._ims else self._channels
        old = table.get(cid)
        if old is None:
            return
        fields = thaw(old)
        fields.update(changes)
        table[cid] = freeze(fields)
        self._touch(cid)

    def _user_joined(self, event: Mapping[str, Any]) -> None:
        self._put_user(event["user"])

    def _presence_change(self, event: Mapping[str, Any]) -> None:
        presence = event["presence"]
        ids = event.get("users") or [event.get("user")]
        for uid in ids:
            if not isinstance(uid, str):
                continue
            old = self._users.get(uid)
            if old is None:
                self._presence[uid] = presence
                continue
            self._users[uid] = freeze({**thaw(old), "presence": presence})
            self._touch(uid)

    def _manual_presence(self, event: Mapping[str, Any]) -> None:
        if self._self is not None:
            self._self = freeze({**thaw(self._self), "manual_presence": event["presence"]})

    def _channel_object(self, event: Mapping[str, Any], **defaults: Any) -> None:
        channel = event["channel"]
        if not isinstance(channel, dict):
            return
        old = self._channels.get(channel["id"]) or self._ims.get(channel["id"])
        base = thaw(old) if old is not None else dict(defaults)
        self._put_channel({**base, **channel})

    def _created(self, event: Mapping[str, Any]) -> None:
        channel = event["channel"]
        private = event["type"] == "group_created" or channel.get("is_private", False)
        mine = self._self is not None and channel.get("creator") == self._self.get("id")
        self._channel_object(event, is_channel=not private, is_group=private, is_im=False,
                             is_mpim=False, is_private=private, is_archived=False,
                             is_member=mine)  # whoever creates a channel is in it

    def _joined(self, event: Mapping[str, Any]) -> None:
        self._channel_object(event, is_archived=False)
        self._update(event["channel"]["id"], is_member=True)

    def _renamed(self, event: Mapping[str, Any]) -> None:
        channel = event["channel"]
        cid, name = channel["id"], channel["name"]
        old = self._channels.get(cid)
        if old is None or old.get("name") == name:
            return
        changes: Dict[str, Any] = {"name": name,
                                   "name_normalized": channel.get("name_normalized", name)}
        if "previous_names" in old:
            changes["previous_names"] = [old.get("name"), *list(old["previous_names"])]
        self._update(cid, **changes)

    def _archive(self, event: Mapping[str, Any]) -> None:
        self._update(event["channel"], is_archived=not event["type"].endswith("unarchive"))

    def _deleted(self, event: Mapping[str, Any]) -> None:
        cid = event["channel"]
        self._channels.pop(cid, None)
        self._touch(cid)

    def _left(self, event: Mapping[str, Any]) -> None:
        self._update(event["channel"], is_member=False)

    def _member(self, event: Mapping[str, Any]) -> None:
        joined = event["type"] == "member_joined_channel"
        uid, cid = event["user"], event["channel"]
        old = self._channels.get(cid)
        if old is None:
            return
        changes: Dict[str, Any] = {}
        members = old.get("members")
        if members is not None:
            members = [m for m in members if m != uid] + ([uid] if joined else [])
            changes["members"] = members
        if "num_members" in old:
            changes["num_members"] = len(members) if members is not None else max(
                0, int(old["num_members"]) + (1 if joined else -1))
        if self._self is not None and uid == self._self.get("id"):
            changes["is_member"] = joined
        if changes:
            self._update(cid, **changes)

    def _im_created(self, event: Mapping[str, Any]) -> None:
        channel = event["channel"]
        if isinstance(channel, dict):
            self._put_channel({"is_im": True, "is_open": True, **channel})

    def _im_open(self, event: Mapping[str, Any]) -> None:
        self._update(event["channel"], is_open=event["type"] == "im_open")

    def _team_change(self, event: Mapping[str, Any]) -> None:
        if self._team is None:
            return
        if event["type"] == "team_rename":
            changes = {"name": event["name"]}
        else:
            changes = {k: event[k] for k in ("domain", "url") if k in event}
        self._team = freeze({**thaw(self._team), **changes})


_APPLY: Dict[str, Callable[[Store, Mapping[str, Any]], None]] = {
    "user_change": Store._user_joined,
    "team_join": Store._user_joined,
    "presence_change": Store._presence_change,
    "manual_presence_change": Store._manual_presence,
    "channel_created": Store._created,
    "group_created": Store._created,
    "channel_joined": Store._joined,
    "group_joined": Store._joined,
    "channel_rename": Store._renamed,
    "group_rename": Store._renamed,
    "channel_archive": Store._archive,
    "group_archive": Store._archive,
    "channel_unarchive": Store._archive,
    "group_unarchive": Store._archive,
    "channel_deleted": Store._deleted,
    "group_deleted": Store._deleted,
    "channel_left": Store._left,
    "group_left": Store._left,
    "member_joined_channel": Store._member,
    "member_left_channel": Store._member,
    "im_created": Store._im_created,
    "im_open": Store._im_open,
    "im_close": Store._im_open,
    "team_rename": Store._team_change,
    "team_domain_change": Store._team_change,
}
