"""Workspace changes a test makes happen: users edited, channels archived or deleted, IMs
opened, the team renamed. Each one changes the stored workspace (so the Web API answers
agree) and sends the event Slack sends for it.

A mixin of :class:`FakeSlack` (next to :class:`Driving`, which has ``add_user``,
``add_channel``, ``rename_channel``, ``join_channel``, ``leave_channel``, ``set_presence``).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional

from slackrtm.testing._driving import Driving
from slackrtm.testing._workspace import CREATED


class Changes(Driving):
    """Workspace changes with their events (mixed into :class:`FakeSlack`)."""

    def _someone(self) -> str:
        """Alice's id (by id: she may have been renamed), else the first human's."""
        return "U0ALICE" if "U0ALICE" in self._ws.users else next(
            uid for uid, u in self._ws.users.items() if not u.get("is_bot"))

    def update_user(self, user: str, **fields: Any) -> Dict[str, Any]:
        """Change fields of ``user`` (id or name); ``profile=`` is merged into the profile.
        Sends ``user_change`` with the whole user, as Slack does. Returns the user."""
        with self._cond:
            uid = self._ws.user_id(user)
            record = self._ws.users[uid]
            profile = fields.pop("profile", None)
            record.update(copy.deepcopy(fields))
            if profile:
                record["profile"].update(copy.deepcopy(profile))
            record["updated"] = int(record.get("updated", CREATED)) + 1
            view = self._ws.user_view(uid)
            self._broadcast({"type": "user_change", "user": view,
                             "event_ts": self._ws.next_ts()})
            self._cond.notify_all()
            return view

    def rename_user(self, user: str, new_name: str) -> Dict[str, Any]:
        """Give ``user`` a new ``name`` (and display name); sends ``user_change``."""
        return self.update_user(user, name=new_name,
                                profile={"display_name": new_name,
                                         "display_name_normalized": new_name})

    def deactivate_user(self, user: str) -> Dict[str, Any]:
        """Mark ``user`` deleted (deactivated); sends ``user_change``."""
        return self.update_user(user, deleted=True)

    def archive_channel(self, channel: str, user: Optional[str] = None) -> Dict[str, Any]:
        """Archive ``channel``; sends ``channel_archive`` (``group_archive`` if private)."""
        return self._set_archived(channel, user, True)

    def unarchive_channel(self, channel: str, user: Optional[str] = None) -> Dict[str, Any]:
        """Unarchive ``channel``; sends ``channel_unarchive`` (``group_unarchive``)."""
        return self._set_archived(channel, user, False)

    def _set_archived(self, channel: str, user: Optional[str], archived: bool
                      ) -> Dict[str, Any]:
        with self._cond:
            cid = self._ws.channel_id(channel)
            record = self._ws.channels[cid]
            record["is_archived"] = archived
            prefix = "group" if record.get("is_private") else "channel"
            event = {"type": f"{prefix}_{'archive' if archived else 'unarchive'}",
                     "channel": cid, "user": self._ws.user_id(user) if user else self._someone(),
                     "event_ts": self._ws.next_ts()}
            self._broadcast(event)
            self._cond.notify_all()
            return event

    def delete_channel(self, channel: str) -> Dict[str, Any]:
        """Delete ``channel`` with its history; sends ``channel_deleted`` (``group_deleted``
        if private). Returns the event."""
        with self._cond:
            cid = self._ws.channel_id(channel)
            record = self._ws.channels.pop(cid)
            self._ws.members.pop(cid, None)
            self._ws.history.pop(cid, None)
            prefix = "group" if record.get("is_private") else "channel"
            event = {"type": f"{prefix}_deleted", "channel": cid,
                     "event_ts": self._ws.next_ts()}
            self._broadcast(event)
            self._cond.notify_all()
            return event

    def open_im(self, user: str) -> str:
        """Open a direct-message conversation between the bot and ``user``: sends
        ``im_created`` the first time (then ``im_open``). Returns its id (``D...``)."""
        with self._cond:
            uid = self._ws.user_id(user)
            bot = self._ws.bot_user_id
            for cid, record in self._ws.channels.items():
                if record.get("is_im") and record.get("user") == uid:
                    record["is_open"] = True
                    self._broadcast({"type": "im_open", "user": bot, "channel": cid,
                                     "event_ts": self._ws.next_ts()})
                    return cid
            cid = "D" + uid[1:]
            record = {"id": cid, "created": CREATED, "is_im": True, "is_org_shared": False,
                      "user": uid, "is_user_deleted": False, "priority": 0, "is_open": True}
            self._ws.channels[cid] = record
            self._ws.members[cid] = [bot, uid] if uid != bot else [bot]
            self._ws.history[cid] = []
            self._broadcast({"type": "im_created", "user": bot,
                             "channel": copy.deepcopy(record)})
            self._cond.notify_all()
            return cid

    def close_im(self, channel: str) -> Dict[str, Any]:
        """Close the bot's IM ``channel`` (it stays, ``is_open`` false); sends ``im_close``."""
        with self._cond:
            cid = self._ws.channel_id(channel)
            self._ws.channels[cid]["is_open"] = False
            event = {"type": "im_close", "user": self._ws.bot_user_id, "channel": cid,
                     "event_ts": self._ws.next_ts()}
            self._broadcast(event)
            return event

    def rename_team(self, name: str) -> Dict[str, Any]:
        """Rename the workspace; sends ``team_rename``."""
        with self._cond:
            self._ws.team["name"] = name
            event = {"type": "team_rename", "name": name}
            self._broadcast(event)
            return event

    def change_team_domain(self, domain: str) -> Dict[str, Any]:
        """Change the workspace's domain; sends ``team_domain_change`` (``url``, ``domain``)."""
        with self._cond:
            self._ws.team["domain"] = domain
            event = {"type": "team_domain_change", "url": f"https://{domain}.slack.com",
                     "domain": domain, "team_id": self._ws.team["id"]}
            self._broadcast(event)
            return event

    # -- messages edited and deleted -------------------------------------------------------
    def edit_message(self, channel: str, ts: str, text: Optional[str] = None,
                     user: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """Change the stored message ``ts`` of ``channel``: its ``text`` and any ``fields``
        (``blocks=...``; None removes a field), marked ``edited`` by ``user`` (default: its
        author). Sends a ``message`` with ``subtype: "message_changed"`` (``message``,
        ``previous_message``), as Slack does. KeyError for an unknown message. Returns the
        event."""
        with self._cond:
            cid = self._ws.channel_id(channel)
            msg = self._ws.find_message(cid, ts)
            if msg is None:
                raise KeyError(f"FakeSlack has no message {ts!r} in {cid}")
            previous = copy.deepcopy(msg)
            if text is not None:
                fields["text"] = text
            for key, value in fields.items():
                if value is None:
                    msg.pop(key, None)
                else:
                    msg[key] = copy.deepcopy(value)
            editor = self._ws.user_id(user) if user else str(msg.get("user", ""))
            event_ts = self._ws.next_ts()
            msg["edited"] = {"user": editor, "ts": event_ts}
            shown = {k: v for k, v in msg.items() if k != "channel"}
            event = {"type": "message", "subtype": "message_changed", "hidden": True,
                     "channel": cid, "ts": event_ts, "event_ts": event_ts,
                     "message": copy.deepcopy(shown),
                     "previous_message": {k: v for k, v in previous.items() if k != "channel"}}
            self._broadcast(event)
            self._cond.notify_all()
            return event

    def delete_message(self, channel: str, ts: str) -> Dict[str, Any]:
        """Delete the stored message ``ts`` of ``channel``; sends a ``message`` with
        ``subtype: "message_deleted"`` (``deleted_ts``, ``previous_message``). KeyError for
        an unknown message. Returns the event."""
        with self._cond:
            cid = self._ws.channel_id(channel)
            msg = self._ws.find_message(cid, ts)
            if msg is None:
                raise KeyError(f"FakeSlack has no message {ts!r} in {cid}")
            self._ws.history[cid].remove(msg)
            event_ts = self._ws.next_ts()
            event = {"type": "message", "subtype": "message_deleted", "hidden": True,
                     "channel": cid, "ts": event_ts, "deleted_ts": ts, "event_ts": event_ts,
                     "previous_message": {k: v for k, v in msg.items() if k != "channel"}}
            self._broadcast(event)
            self._cond.notify_all()
            return event
