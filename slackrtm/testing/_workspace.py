"""The fake workspace's data: seeded users and channels, message history, timestamps.

Plain data, no locking and no I/O: :class:`FakeSlack` holds its lock around every use.
Everything is deterministic: the same ids, names and timestamps on every run.
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any, Dict, List, Optional, Tuple

TEAM = {"id": "T0FAKE", "name": "Fake Workspace", "domain": "fakeslack"}
BOT_ID = "B0BOT"
APP_ID = "A0FAKE"
CREATED = 1600000000
FIRST_TS = 1700000000_000100  # microseconds: "1700000000.000100"
TS_STEP = 100

_SEED_USERS: List[Tuple[str, str, Dict[str, Any]]] = [
    # name, real name, extra fields
    ("fakebot", "Fake Bot", {"is_bot": True, "id": "U0BOT"}),
    ("alice", "Alice Archer", {"is_admin": True}),
    ("bob", "Bob Baker", {}),
    ("carol", "Carol Cooper", {}),
]
_SEED_CHANNELS = [
    # name, purpose, members (by user name)
    ("general", "Company-wide announcements", ["fakebot", "alice", "bob", "carol"]),
    ("random", "Non-work banter", ["alice", "bob", "carol"]),
    ("timecard", "Clock in, clock out", ["fakebot", "alice"]),
    ("dev", "Code talk", ["alice", "bob"]),
    ("design", "Pixels", ["carol"]),
    ("ops", "Pager duty", ["fakebot", "bob"]),
    ("support", "Customer questions", ["alice", "carol"]),
]


class ApiError(Exception):
    """A Web API / RTM failure answered as ``{"ok": false, "error": error}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Workspace:
    """Users, channels, memberships, presence and message history of the fake team."""

    def __init__(self) -> None:
        self.team: Dict[str, Any] = dict(TEAM)
        self.users: Dict[str, Dict[str, Any]] = {}
        self.channels: Dict[str, Dict[str, Any]] = {}
        self.members: Dict[str, List[str]] = {}
        self.presence: Dict[str, str] = {}
        self.history: Dict[str, List[Dict[str, Any]]] = {}
        self._ts = FIRST_TS
        for name, real_name, extra in _SEED_USERS:
            self.add_user(name, real_name=real_name, **extra)
        self.bot_user_id = self.user_id("fakebot")
        self.presence[self.user_id("carol")] = "away"
        for name, purpose, members in _SEED_CHANNELS:
            self.add_channel(name, members=[self.user_id(m) for m in members],
                             purpose={"value": purpose, "creator": "", "last_set": 0},
                             is_general=name == "general")

    # -- ids and timestamps --------------------------------------------------------------
    def next_ts(self) -> str:
        """A new message timestamp, unique and increasing: ``"1700000000.000100"``, ..."""
        value = self._ts
        self._ts += TS_STEP
        return f"{value // 1_000_000}.{value % 1_000_000:06d}"

    @staticmethod
    def _new_id(prefix: str, name: str, taken: Dict[str, Any]) -> str:
        stem = prefix + "0" + re.sub(r"[^A-Z0-9]", "", name.upper())[:9]
        candidate, n = stem, 1
        while candidate in taken or candidate == prefix + "0":
            n += 1
            candidate = f"{stem}{n}"
        return candidate

    # -- users ---------------------------------------------------------------------------
    def add_user(self, name: str, **fields: Any) -> Dict[str, Any]:
        """Create a user (``fields`` override the defaults; ``presence`` sets presence)."""
        uid = fields.pop("id", None) or self._new_id("U", name, self.users)
        presence = fields.pop("presence", "active")
        real_name = fields.pop("real_name", name.capitalize())
        is_bot = bool(fields.get("is_bot", False))
        profile: Dict[str, Any] = {
            "real_name": real_name, "real_name_normalized": real_name,
            "display_name": name, "display_name_normalized": name, "team": TEAM["id"],
        }
        if is_bot:
            profile.update(bot_id=BOT_ID if not self.users else f"B{uid[1:]}", api_app_id=APP_ID)
        else:
            profile["email"] = f"{name}@fakeslack.test"
        user: Dict[str, Any] = {
            "id": uid, "team_id": TEAM["id"], "name": name, "deleted": False,
            "color": "9f69e7", "real_name": real_name, "tz": "UTC",
            "tz_label": "Coordinated Universal Time", "tz_offset": 0, "profile": profile,
            "is_admin": False, "is_owner": False, "is_primary_owner": False,
            "is_restricted": False, "is_ultra_restricted": False, "is_bot": is_bot,
            "is_app_user": False, "updated": CREATED,
        }
        user.update(fields)
        self.users[uid] = user
        self.presence[uid] = presence
        return user

    def user_id(self, name: str) -> str:
        """The id of the user called ``name`` (``"@alice"`` works too); KeyError if none."""
        wanted = name.lstrip("@")
        for uid, user in self.users.items():
            if user["name"] == wanted or uid == wanted:
                return uid
        raise KeyError(f"FakeSlack has no user {name!r}")

    def user_view(self, uid: str) -> Dict[str, Any]:
        """A copy of the user object as the Web API returns it."""
        return copy.deepcopy(self.users[uid])

    # -- channels ------------------------------------------------------------------------
    def add_channel(self, name: str, *, is_member: bool = False,
                    members: Optional[List[str]] = None, **fields: Any) -> Dict[str, Any]:
        """Create a public channel (``is_private=True`` for a private one)."""
        cid = fields.pop("id", None) or self._new_id("C", name, self.channels)
        member_list = list(members or [])
        if is_member and self.bot_user_id not in member_list:
            member_list.insert(0, self.bot_user_id)
        channel: Dict[str, Any] = {
            "id": cid, "name": name, "name_normalized": name, "is_channel": True,
            "is_group": False, "is_im": False, "is_mpim": False, "is_private": False,
            "is_archived": False, "is_general": False, "is_shared": False,
            "is_org_shared": False, "is_ext_shared": False, "created": CREATED,
            "creator": member_list[0] if member_list else "", "unlinked": 0,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0}, "previous_names": [],
        }
        channel.update(fields)
        self.channels[cid] = channel
        self.members[cid] = member_list
        self.history[cid] = []
        return self.channel_view(cid)

    def channel_id(self, name: str) -> str:
        """The id of channel ``name`` (``"#general"`` or an id work too); KeyError if none."""
        found = self.find_channel(name)
        if found is None:
            raise KeyError(f"FakeSlack has no channel {name!r}")
        return found

    def find_channel(self, ref: Any) -> Optional[str]:
        """The id of the channel given by id, name or ``#name``; None if there is none."""
        if not isinstance(ref, str) or not ref:
            return None
        if ref in self.channels:
            return ref
        wanted = ref.lstrip("#")
        for cid, channel in self.channels.items():
            if channel.get("name") == wanted:  # IMs have no name
                return cid
        return None

    def channel_view(self, cid: str) -> Dict[str, Any]:
        """A copy of the channel object with ``is_member`` and ``num_members`` filled in."""
        view = copy.deepcopy(self.channels[cid])
        view["is_member"] = self.bot_user_id in self.members[cid]
        view["num_members"] = len(self.members[cid])
        return view

    # -- messages ------------------------------------------------------------------------
    def store(self, channel: str, user: str, text: str, **extra: Any) -> Dict[str, Any]:
        """Append a message to the channel's history and return the stored dict."""
        msg: Dict[str, Any] = {"type": "message", "channel": channel, "user": user,
                               "text": text, "ts": self.next_ts(), "team": TEAM["id"]}
        msg.update({k: v for k, v in extra.items() if v is not None})
        self.history[channel].append(msg)
        return msg

    def find_message(self, channel: str, ts: str) -> Optional[Dict[str, Any]]:
        """The stored message of that channel with that ``ts``, if any."""
        for msg in self.history.get(channel, []):
            if msg.get("ts") == ts:
                return msg
        return None


def paginate(items: List[Any], params: Dict[str, Any]) -> Tuple[List[Any], str]:
    """Slice ``items`` by ``limit`` (default 100, at most 1000) and ``cursor``.

    Returns the page and the next cursor (``""`` at the end). Raises ``ApiError``
    ``invalid_limit`` / ``invalid_cursor`` for malformed values.
    """
    raw_limit = params.get("limit")
    try:
        limit = int(raw_limit) if raw_limit not in (None, "") else 100
    except (TypeError, ValueError):
        raise ApiError("invalid_limit")
    limit = 100 if limit <= 0 else min(limit, 1000)
    cursor = params.get("cursor") or ""
    offset = 0
    if cursor:
        try:
            kind, _, num = base64.b64decode(str(cursor), validate=True).decode().partition(":")
            offset = int(num)
            if kind != "next" or offset < 0:
                raise ValueError(cursor)
        except ValueError:
            raise ApiError("invalid_cursor")
    end = offset + limit
    next_cursor = base64.b64encode(f"next:{end}".encode()).decode() if end < len(items) else ""
    return items[offset:end], next_cursor
