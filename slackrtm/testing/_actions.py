"""What people do in the playground: post, react, edit, delete, presence, join and leave,
slash commands, button clicks, and the fault panel's switches.

Each action takes a JSON object and returns one; bad input raises :class:`ActionError`
(answered HTTP 400 with ``{"ok": false, "error": ...}``). The page and the command-line
verbs (``slackrtm fake-slack post ...``) call the same actions.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from slackrtm.testing._net import url_host
from slackrtm.testing._workspace import APP_ID

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm.testing._hub import Hub
    from slackrtm.testing._slack import FakeSlack

Params = Dict[str, Any]
#: Web API methods the fault panel can make answer ``ratelimited`` next.
RATE_LIMITABLE = ("chat.postMessage", "chat.update", "rtm.connect", "rtm.start",
                  "apps.connections.open", "conversations.list", "users.info", "auth.test")


class ActionError(Exception):
    """Bad input for an action: answered 400 with this message."""


class Actions:
    """The playground's actions on one FakeSlack; answers of bots shown through the hub."""

    def __init__(self, slack: FakeSlack, hub: Hub) -> None:
        self.slack = slack
        self.hub = hub
        self._lock = threading.Lock()
        #: envelope id -> (kind, channel id, user id) of commands and clicks sent from here
        self._envelopes: Dict[str, Tuple[str, str, str]] = {}
        #: response_url path -> (channel id, user id, message ts of a click or "")
        self._responses: Dict[str, Tuple[str, str, str]] = {}
        hub.on_ack = self.on_ack
        self.table: Dict[str, Callable[[Params], Params]] = {
            "post": self.post, "react": self.react, "edit": self.edit, "delete": self.delete,
            "presence": self.presence, "join": self.join, "leave": self.leave,
            "open_im": self.open_im, "slash": self.slash, "click": self.click,
            "fault": self.fault}

    def run(self, name: str, params: Params) -> Params:
        """Run action ``name``; KeyError-free: unknown actions and bad input raise
        :class:`ActionError`."""
        action = self.table.get(name)
        if action is None:
            raise ActionError(f"unknown action {name!r}; known: {', '.join(sorted(self.table))}")
        if not isinstance(params, dict):
            raise ActionError("the body must be a JSON object")
        try:
            return action(params)
        except KeyError as exc:  # FakeSlack's "no such user / channel / message"
            raise ActionError(str(exc.args[0]) if exc.args else str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise ActionError(str(exc)) from None

    # -- helpers -------------------------------------------------------------------------
    def _user(self, params: Params, key: str = "as") -> str:
        name = params.get(key) or params.get("user") or "alice"
        if not isinstance(name, str):
            raise ActionError(f"{key} must be a user name or id")
        return self.slack.user_id(name)

    def _channel(self, params: Params) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise ActionError("channel is required (#name or id)")
        return self.slack.channel_id(channel)

    @staticmethod
    def _text(params: Params, key: str = "text") -> str:
        text = params.get(key)
        if not isinstance(text, str) or not text.strip():
            raise ActionError(f"{key} is required")
        return text

    def mentions(self, text: str) -> str:
        """``@alice`` -> ``<@U0ALICE>``, ``#general`` -> ``<#C0GENERAL|general>``, as Slack
        writes them in message text (unknown names are left alone)."""
        users = {u["name"]: u["id"] for u in self.slack.users}
        channels = {c["name"]: c["id"] for c in self.slack.channels if c.get("name")}

        def user(match: re.Match[str]) -> str:
            uid = users.get(match.group(2))
            return f"{match.group(1)}<@{uid}>" if uid else match.group(0)

        def channel(match: re.Match[str]) -> str:
            cid = channels.get(match.group(2))
            return f"{match.group(1)}<#{cid}|{match.group(2)}>" if cid else match.group(0)

        text = re.sub(r"(^|[\s(])@([a-z0-9._-]+)", user, text)
        return re.sub(r"(^|[\s(])#([a-z0-9_-]+)", channel, text)

    def _base(self) -> str:
        server = self.slack._server
        return f"{'https' if self.slack._tls else 'http'}://{url_host(server.host)}:{server.port}"

    def _response_url(self, kind: str, context: Tuple[str, str, str]) -> str:
        team = self.slack.team_id
        path = f"/{kind}/{team}/{secrets.randbelow(10**12)}/{secrets.token_hex(12)}"
        with self._lock:
            self._responses[path] = context
        return self._base() + path

    # -- people --------------------------------------------------------------------------
    def post(self, params: Params) -> Params:
        """``{"as", "channel", "text", "thread_ts"?}``: a person posts (``@name`` mentions)."""
        uid, cid, text = self._user(params), self._channel(params), self._text(params)
        extra: Params = {}
        if params.get("thread_ts"):
            extra["thread_ts"] = str(params["thread_ts"])
        msg = self.slack.post_message(cid, self.mentions(text), user=uid, **extra)
        return {"ok": True, "channel": cid, "ts": msg["ts"], "message": msg}

    def react(self, params: Params) -> Params:
        """``{"as", "channel", "ts", "name", "remove"?}``: add (or remove) a reaction."""
        uid, cid = self._user(params), self._channel(params)
        name = self._text(params, "name").strip(":")
        ts = self._text(params, "ts")
        if params.get("remove"):
            event = self.slack.remove_reaction(cid, ts, name, user=uid)
        else:
            event = self.slack.add_reaction(cid, ts, name, user=uid)
        return {"ok": True, "event": event}

    def edit(self, params: Params) -> Params:
        """``{"as", "channel", "ts", "text"}``: the author edits a message."""
        uid, cid = self._user(params), self._channel(params)
        event = self.slack.edit_message(cid, self._text(params, "ts"),
                                        self.mentions(self._text(params)), user=uid)
        return {"ok": True, "event": event}

    def delete(self, params: Params) -> Params:
        """``{"channel", "ts"}``: delete a message."""
        event = self.slack.delete_message(self._channel(params), self._text(params, "ts"))
        return {"ok": True, "event": event}

    def presence(self, params: Params) -> Params:
        """``{"user", "presence": "active" | "away"}``."""
        uid = self._user(params, "user")
        presence = params.get("presence")
        self.slack.set_presence(uid, str(presence))
        self.hub.push("presence", {"user": uid, "presence": presence})
        return {"ok": True}

    def join(self, params: Params) -> Params:
        """``{"user", "channel"}``: a person joins a channel."""
        return {"ok": True, "event": self.slack.join_channel(self._user(params, "user"),
                                                             self._channel(params))}

    def leave(self, params: Params) -> Params:
        """``{"user", "channel"}``: a person leaves a channel."""
        return {"ok": True, "event": self.slack.leave_channel(self._user(params, "user"),
                                                              self._channel(params))}

    def open_im(self, params: Params) -> Params:
        """``{"user"}``: the direct-message conversation of the bot and that person."""
        return {"ok": True, "channel": self.slack.open_im(self._user(params, "user"))}

    # -- the app's side: slash commands and buttons --------------------------------------
    def slash(self, params: Params) -> Params:
        """``{"as", "channel", "command": "/echo", "text"?}`` (or ``"command": "/echo hi"``):
        a ``slash_commands`` envelope over Socket Mode; the ack's payload and anything
        posted to the ``response_url`` show in the conversation."""
        uid, cid = self._user(params), self._channel(params)
        line = self._text(params, "command").strip()
        command, _, rest = line.partition(" ")
        text = params.get("text")
        text = rest.strip() if text is None else str(text)
        envelope = self.slack.slash_command(command, text, user=uid, channel=cid)
        eid = str(envelope["envelope_id"])
        # answers to the command's own response_url (pointing at FakeSlack) show here too
        url = str(envelope["payload"].get("response_url", ""))
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else ""
        with self._lock:
            self._envelopes[eid] = ("slash_commands", cid, uid)
            if path:
                self._responses[path] = (cid, uid, "")
        self.hub.push("note", {"channel": cid, "user": uid, "kind": "command",
                               "text": f"{command} {text}".rstrip(), "envelope_id": eid})
        return {"ok": True, "envelope_id": eid, "socket_mode": bool(self.slack.socket_connections)}

    def click(self, params: Params) -> Params:
        """``{"as", "channel", "ts", "action_id", "block_id"?}``: click a button of a message's
        blocks: an ``interactive`` ``block_actions`` envelope, as Slack sends it."""
        uid, cid = self._user(params), self._channel(params)
        ts, action_id = self._text(params, "ts"), self._text(params, "action_id")
        with self.slack._cond:
            msg = self.slack._ws.find_message(cid, ts)
            if msg is None:
                raise ActionError(f"no message {ts} in {cid}")
            found = _find_action(msg.get("blocks") or [], action_id, params.get("block_id"))
            if found is None:
                raise ActionError(f"the message {ts} has no element with action_id "
                                  f"{action_id!r}")
            block_id, element = found
            user = self.slack._ws.users[uid]
            channel = self.slack._ws.channels[cid]
            team = self.slack._ws.team
            shown = copy.deepcopy({k: v for k, v in msg.items() if k != "channel"})
        action: Params = {"action_id": action_id, "block_id": block_id,
                          "type": element.get("type", "button"),
                          "action_ts": f"{time.time():.6f}"}
        for key in ("text", "value", "style"):
            if key in element:
                action[key] = copy.deepcopy(element[key])
        payload: Params = {
            "type": "block_actions",
            "user": {"id": uid, "username": user["name"], "name": user["name"],
                     "team_id": team["id"]},
            "api_app_id": APP_ID, "token": self.slack.verification_token,
            "container": {"type": "message", "message_ts": ts, "channel_id": cid,
                          "is_ephemeral": False},
            "trigger_id": f"{secrets.randbelow(10**12)}.{secrets.token_hex(16)}",
            "team": {"id": team["id"], "domain": team["domain"]},
            "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": cid, "name": channel.get("name") or cid},
            "message": shown, "state": {"values": {}},
            "response_url": self._response_url("actions", (cid, uid, ts)),
            "actions": [action]}
        envelope = self.slack.interactive(payload)
        eid = str(envelope["envelope_id"])
        with self._lock:
            self._envelopes[eid] = ("interactive", cid, uid)
        return {"ok": True, "envelope_id": eid}

    def on_ack(self, text: str) -> None:
        """A Socket Mode ack was read: a command's response payload shows in its channel."""
        try:
            frame = json.loads(text)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        with self._lock:
            context = self._envelopes.pop(str(frame.get("envelope_id")), None)
        if context is None:
            return
        kind, cid, uid = context
        payload = frame.get("payload")
        self.hub.push("note", {"channel": cid, "user": uid, "kind": "ack",
                               "envelope_id": frame.get("envelope_id"),
                               "text": "acknowledged" + (" with a payload" if payload else "")})
        if kind == "slash_commands" and isinstance(payload, dict) \
                and payload.get("response_type") != "in_channel":  # FakeSlack posts those
            self.respond(cid, uid, "", payload)

    def respond(self, cid: str, uid: str, ts: str, answer: Params) -> None:
        """Show a bot's answer to a person (ack payload or response_url POST) as Slack
        does: ``in_channel`` is posted, ``replace_original`` / ``delete_original`` change
        the clicked message, anything else is visible to that person only."""
        bot = self.slack.bot_user_id
        text = str(answer.get("text") or "")
        blocks = answer.get("blocks")
        if ts and answer.get("delete_original"):
            self.slack.delete_message(cid, ts)
        elif ts and answer.get("replace_original"):
            self.slack.edit_message(cid, ts, text, blocks=blocks or None)
        elif answer.get("response_type") == "in_channel":
            extra: Params = {"bot_id": self.slack.bot_id}
            if blocks:
                extra["blocks"] = blocks
            self.slack.post_message(cid, text, user=bot, **extra)
        else:
            self.hub.push("note", {"channel": cid, "user": uid, "kind": "ephemeral",
                                   "from": bot, "text": text, "blocks": blocks or None,
                                   "ts": f"{time.time():.6f}"})

    def command_response(self, path: str, body: bytes) -> None:
        """FakeSlack took an answer posted to a command's response_url (and posted it if
        ``in_channel``): show the others to their person."""
        with self._lock:
            context = self._responses.get(path)
        try:
            answer = json.loads(body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            return
        if context is not None and isinstance(answer, dict) \
                and answer.get("response_type") != "in_channel":
            cid, uid, ts = context
            self.respond(cid, uid, ts, answer)

    def response(self, path: str, body: bytes) -> Optional[Params]:
        """A POST to a response_url this playground handed out; None if unknown."""
        with self._lock:
            context = self._responses.get(path)
        if context is None:
            return None
        try:
            answer = json.loads(body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            raise ActionError("invalid_json") from None
        if not isinstance(answer, dict):
            raise ActionError("invalid_json")
        cid, uid, ts = context
        self.respond(cid, uid, ts, answer)
        return {"ok": True}

    # -- faults --------------------------------------------------------------------------
    def fault(self, params: Params) -> Params:
        """``{"what": "drop" | "freeze" | "unfreeze" | "refresh" | "goodbye" |
        "ratelimit", "method"?, "retry_after"?}``."""
        what = params.get("what")
        slack = self.slack
        conns: List[Any]
        if what == "drop":
            conns = slack.drop("reset")
        elif what == "freeze":
            conns = slack.freeze()
        elif what == "unfreeze":
            conns = slack.unfreeze()
        elif what == "refresh":
            conns = slack.refresh()
        elif what == "goodbye":
            conns = slack.goodbye()
        elif what == "ratelimit":
            method = str(params.get("method") or "chat.postMessage")
            retry_after = float(params.get("retry_after") or 1)
            if not 0 <= retry_after <= 3600:
                raise ActionError("retry_after must be between 0 and 3600 seconds")
            slack.fail_next(method, "ratelimited", status=429, retry_after=retry_after)
            self.hub.push("log", {"time": time.time(), "conn": None, "kind": "fault",
                                  "dir": "out", "what": "ratelimit",
                                  "text": f"the next {method} answers HTTP 429 ratelimited, "
                                          f"Retry-After {retry_after:g}"})
            return {"ok": True, "method": method}
        else:
            raise ActionError("what must be drop, freeze, unfreeze, refresh, goodbye or "
                              "ratelimit")
        ids = [c.id for c in conns]
        self.hub.push("log", {"time": time.time(), "conn": None, "kind": "fault", "dir": "out",
                              "what": str(what), "text": "connections: " + (
                                  ", ".join(f"#{i}" for i in ids) or "none open")})
        self.hub.push("conns", {"fault": what, "ids": ids})
        return {"ok": True, "connections": [c.id for c in conns]}


def _find_action(blocks: Any, action_id: str,
                 block_id: Any) -> Optional[Tuple[str, Dict[str, Any]]]:
    """``(block_id, element)`` of the interactive element ``action_id`` in ``blocks``."""
    if not isinstance(blocks, list):
        return None
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        bid = str(block.get("block_id") or f"b{index}")
        if block_id and bid != block_id:
            continue
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return bid, element
    return None
