"""Readable one-line renderings of Slack events for the command line (``tail``, ``demo``):
RTM events, the inner events of Socket Mode ``events_api`` envelopes (the same), and the
other Socket Mode envelopes (``slash_commands``, ``interactive``) via :func:`envelope_line`."""

from __future__ import annotations

import json
import os
import time
from typing import IO, Any, Callable, Dict, Mapping, Optional

#: Width of the event-type column: the longest common type, ``member_joined_channel``.
TYPE_WIDTH = 21
MAX_DETAIL = 300

_RESET = "\033[0m"
COLORS = {
    "dim": "\033[2m", "red": "\033[31m", "green": "\033[32m", "yellow": "\033[33m",
    "blue": "\033[34m", "magenta": "\033[35m", "cyan": "\033[36m", "bold": "\033[1m",
}
_TYPE_COLORS = {
    "message": "cyan", "reaction_added": "magenta", "reaction_removed": "magenta",
    "member_joined_channel": "green", "member_left_channel": "green",
    "presence_change": "blue", "hello": "dim", "goodbye": "yellow", "error": "red",
    "disconnect": "yellow", "slash_commands": "bold", "interactive": "bold",
}


def use_color(choice: str, stream: IO[str]) -> bool:
    """``--color auto|always|never``: auto means a terminal, without NO_COLOR, not dumb."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ \
        and os.environ.get("TERM") != "dumb"


def paint(text: str, color: Optional[str], enabled: bool) -> str:
    """``text`` wrapped in the ANSI codes of ``color`` when ``enabled``."""
    if not enabled or not color:
        return text
    return f"{COLORS[color]}{text}{_RESET}"


class Names:
    """Renders user and channel ids, with names where known (``#general``, ``alice``)."""

    def __init__(self, users: Optional[Mapping[str, str]] = None,
                 channels: Optional[Mapping[str, str]] = None) -> None:
        self.users: Dict[str, str] = dict(users or {})
        self.channels: Dict[str, str] = dict(channels or {})

    def user(self, uid: Any) -> str:
        if not isinstance(uid, str) or not uid:
            return "?"
        return self.users.get(uid, uid)

    def channel(self, cid: Any) -> str:
        if not isinstance(cid, str) or not cid:
            return "?"
        return "#" + self.channels.get(cid, cid)


def _one_line(text: Any) -> str:
    return str(text if text is not None else "").replace("\r", "").replace("\n", "\\n")


def _message(event: Dict[str, Any], names: Names) -> str:
    where = names.channel(event.get("channel"))
    subtype = event.get("subtype")
    inner = event.get("message") if subtype == "message_changed" else None
    source = inner if isinstance(inner, dict) else event
    who = source.get("user") or source.get("username") or source.get("bot_id")
    tag = f" [{subtype}]" if subtype else ""
    if subtype == "message_deleted":
        return f"{where}{tag} ts={event.get('deleted_ts')}"
    thread = event.get("thread_ts")
    in_thread = f" (in thread {thread})" if thread and thread != event.get("ts") else ""
    return f"{where}{tag} {names.user(who)}: {_one_line(source.get('text'))}{in_thread}"


def _reaction(event: Dict[str, Any], names: Names) -> str:
    item = event.get("item") or {}
    verb = "reacted" if event.get("type") == "reaction_added" else "removed"
    return (f"{names.user(event.get('user'))} {verb} :{event.get('reaction')}: on "
            f"{names.channel(item.get('channel'))} {item.get('ts')}")


def _membership(event: Dict[str, Any], names: Names) -> str:
    verb = "joined" if event.get("type") == "member_joined_channel" else "left"
    return f"{names.user(event.get('user'))} {verb} {names.channel(event.get('channel'))}"


def _presence(event: Dict[str, Any], names: Names) -> str:
    users = event.get("users") or [event.get("user")]
    return f"{', '.join(names.user(u) for u in users)} is {event.get('presence')}"


def _rename(event: Dict[str, Any], names: Names) -> str:
    channel = event.get("channel") or {}
    return f"{names.channel(channel.get('id'))} is now #{channel.get('name')}"


def _team_join(event: Dict[str, Any], names: Names) -> str:
    user = event.get("user") or {}
    real = f" ({user['real_name']})" if user.get("real_name") else ""
    return f"{user.get('name')}{real} joined the workspace as {user.get('id')}"


def _channel_created(event: Dict[str, Any], names: Names) -> str:
    channel = event.get("channel") or {}
    creator = names.user(channel.get("creator"))
    return f"#{channel.get('name')} ({channel.get('id')}) created by {creator}"


def _typing(event: Dict[str, Any], names: Names) -> str:
    return f"{names.user(event.get('user'))} is typing in {names.channel(event.get('channel'))}"


def _error(event: Dict[str, Any], names: Names) -> str:
    error = event.get("error") or {}
    return f"code {error.get('code')}: {error.get('msg')}" if isinstance(error, dict) \
        else str(error)


def _hello(event: Dict[str, Any], names: Names) -> str:
    count = event.get("num_connections")  # Socket Mode's hello; RTM's has nothing
    if count is None:
        return ""
    info = event.get("connection_info") or {}
    return f"app {info.get('app_id')}, {count} connection(s) open"


def _disconnect(event: Dict[str, Any], names: Names) -> str:
    return f"reason: {event.get('reason')}"


def _slash_command(envelope: Dict[str, Any], names: Names) -> str:
    p = envelope.get("payload") or {}
    text = f" {_one_line(p.get('text'))}" if p.get("text") else ""
    return (f"{names.user(p.get('user_id'))} ran {p.get('command')}{text} in "
            f"{names.channel(p.get('channel_id'))}")


def _interactive(envelope: Dict[str, Any], names: Names) -> str:
    p = envelope.get("payload") or {}
    user = p.get("user") or {}
    who = names.user(user.get("id")) if isinstance(user, dict) else "?"
    actions = p.get("actions")
    view = p.get("view")
    if isinstance(actions, list) and actions:
        detail = ", ".join(str(a.get("action_id")) for a in actions if isinstance(a, dict))
    elif isinstance(view, dict) and view.get("callback_id"):
        detail = str(view["callback_id"])
    else:
        detail = str(p.get("callback_id") or "")
    return f"{p.get('type')} by {who}" + (f": {detail}" if detail else "")


_RENDERERS: Dict[str, Callable[[Dict[str, Any], Names], str]] = {
    "message": _message, "reaction_added": _reaction, "reaction_removed": _reaction,
    "member_joined_channel": _membership, "member_left_channel": _membership,
    "presence_change": _presence, "channel_rename": _rename, "user_typing": _typing,
    "team_join": _team_join, "channel_created": _channel_created,
    "error": _error, "hello": _hello, "disconnect": _disconnect,
    # Socket Mode envelopes that carry no event: rendered from {"type": ..., "payload": ...}
    "slash_commands": _slash_command, "interactive": _interactive,
}


def describe(event: Dict[str, Any], names: Optional[Names] = None) -> str:
    """The event's details on one line, without its type (empty for ``hello``)."""
    names = names or Names()
    etype = str(event.get("type", "?"))
    render = _RENDERERS.get(etype)
    try:
        if render is not None:
            text = render(event, names)
        else:
            rest = {k: v for k, v in event.items() if k != "type"}
            text = json.dumps(rest, ensure_ascii=False, separators=(",", ":")) if rest else ""
    except Exception:  # an odd event must not break the stream: show it raw
        text = json.dumps(event, ensure_ascii=False, default=str)
    if len(text) > MAX_DETAIL:
        text = text[:MAX_DETAIL - 3] + "..."
    return text


def event_line(event: Dict[str, Any], *, names: Optional[Names] = None, color: bool = False,
               stamp: bool = True, clock: Callable[[], float] = time.time) -> str:
    """``HH:MM:SS type  details`` for one event (without the time if not ``stamp``)."""
    etype = str(event.get("type", "?"))
    kind = paint(f"{etype:<{TYPE_WIDTH}}", _TYPE_COLORS.get(etype), color)
    line = f"{kind} {describe(event, names)}".rstrip()
    if stamp:
        line = paint(time.strftime("%H:%M:%S", time.localtime(clock())), "dim", color) + " " + line
    return line


def envelope_line(envelope_type: str, payload: Dict[str, Any], *,
                  names: Optional[Names] = None, color: bool = False, stamp: bool = True,
                  clock: Callable[[], float] = time.time) -> str:
    """:func:`event_line` for a Socket Mode envelope without an inner event (a slash
    command, an interaction): the envelope type, then what the payload says."""
    return event_line({"type": envelope_type, "payload": payload}, names=names, color=color,
                      stamp=stamp, clock=clock)
