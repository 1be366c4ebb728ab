"""The Web API: request decoding, authentication, recording, faults and the methods."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, quote

from slackrtm.testing._calls import REDACTED, ApiCall, Fault
from slackrtm.testing._conn import truthy
from slackrtm.testing._workspace import APP_ID, BOT_ID, CREATED, ApiError, Workspace, paginate

Params = Dict[str, Any]
Answer = Tuple[int, Dict[str, str], bytes]
JSON_TYPE = "application/json; charset=utf-8"
AUTH_FREE = {"api.test"}
SOCKET_MODE_METHOD = "apps.connections.open"


@dataclass(frozen=True)
class Desk:
    """Everything the Web API methods work with, handed over by FakeSlack: the tokens, the
    workspace and its lock, the record of calls and their queued faults, and the few
    changes a method makes beyond the workspace's own data (posting and reacting, which
    also send events; tickets for WebSocket URLs). The methods never see FakeSlack."""

    token: str
    app_token: str
    workspace: Workspace
    #: FakeSlack's lock: guards the workspace and every record.
    lock: threading.Condition
    #: Set when FakeSlack closes (a delayed answer gives up).
    stop: threading.Event
    record_call: Callable[[ApiCall], None]
    finish_call: Callable[[ApiCall, int, Optional[Dict[str, Any]]], None]
    take_fault: Callable[[str], Optional[Fault]]
    check_token: Callable[[Any, str], Optional[str]]
    issue_ticket: Callable[[Dict[str, Any], str], str]
    post: Callable[[str, str, str, Dict[str, Any]], Dict[str, Any]]
    join_channel: Callable[[str, str], Dict[str, Any]]
    add_reaction: Callable[..., Any]
    presence: Callable[[str], str]
    #: chat.update: edit a message (sends message_changed); returns the event.
    edit_message: Callable[..., Dict[str, Any]]
    #: chat.delete: delete a message (sends message_deleted).
    delete_message: Callable[..., Any]
    #: chat.postMessage's pacing: seconds to wait (HTTP 429) or None when it may post.
    post_limited: Callable[[Dict[str, Any]], Optional[int]]
    #: How many WebSocket connections are open (the bot's ``connection_count``).
    connection_count: Callable[[], int]
    #: apps.connections.open succeeded: Socket Mode is on for the app from now.
    socket_mode_opened: Callable[[], None]

    @property
    def bot_user_id(self) -> str:
        """The bot's user id."""
        return self.workspace.bot_user_id


def _json(status: int, data: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> Answer:
    out = {"Content-Type": JSON_TYPE}
    out.update(headers or {})
    return status, out, json.dumps(data).encode("utf-8")


def decode_params(query: str, body: bytes, content_type: str) -> Params:
    """Query string and body (form-encoded or JSON) merged, the body winning."""
    params: Params = dict(parse_qsl(query, keep_blank_values=True))
    if body:
        if "json" in content_type.lower():
            data = json.loads(body.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("JSON body is not an object")
            params.update(data)
        else:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def handle(desk: Desk, http_method: str, method: str, query: str, body: bytes,
           headers: Mapping[str, str]) -> Answer:
    """Answer one Web API request: record it, apply any queued fault, authenticate, run."""
    token, app_token = desk.token, desk.app_token
    auth = headers.get("authorization") or ""
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    try:
        params = decode_params(query, body, headers.get("content-type") or "")
        bad_body = None
    except (ValueError, UnicodeDecodeError):
        params, bad_body = dict(parse_qsl(query, keep_blank_values=True)), "invalid_json"
    presented = bearer if bearer is not None else params.get("token")
    secrets = [s for s in (token, app_token, presented) if isinstance(s, str) and s]
    shown = {k: (REDACTED if k == "token" else v) for k, v in params.items()}
    shown_headers = {k: v for k, v in headers.items()}
    if "authorization" in shown_headers:
        shown_headers["authorization"] = "Bearer " + REDACTED if bearer is not None else REDACTED
    shown_query = query
    for secret in secrets:
        shown_query = shown_query.replace(secret, REDACTED).replace(quote(secret), REDACTED)
    call = ApiCall(method=method, params=shown, headers=shown_headers, query=shown_query,
                   http_method=http_method, authorized=bearer in (token, app_token),
                   token_in_body=any(s.encode() in body for s in (token, app_token)),
                   token_in_url=any(s in query for s in (token, app_token)),
                   time=time.monotonic())
    desk.record_call(call)
    fault = desk.take_fault(method)
    if method == SOCKET_MODE_METHOD and fault is None:
        answer = _socket_mode_gate(http_method, bearer, params)
    else:
        answer = None
    if answer is None:
        answer = _answer(desk, fault, method, params, presented, bad_body)
    status, _, payload = answer
    is_json = answer[1].get("Content-Type") == JSON_TYPE
    desk.finish_call(call, status, json.loads(payload) if is_json else None)
    return answer


def _socket_mode_gate(http_method: str, bearer: Optional[str], params: Params) -> Optional[Answer]:
    """apps.connections.open as Slack documents it: POST only, the app token only in the
    ``Authorization: Bearer`` header. None: the request may go on."""
    if http_method != "POST":
        return _json(405, {"ok": False, "error": "method_not_allowed"}, {"Allow": "POST"})
    if bearer is None and params.get("token"):
        return _json(200, {"ok": False, "error": "invalid_auth"})  # a token in the form
    return None


def _answer(desk: Desk, fault: Optional[Fault], method: str, params: Params,
            presented: Any, bad_body: Optional[str]) -> Answer:
    if fault is not None:
        if fault.delay and desk.stop.wait(fault.delay):
            raise ConnectionAbortedError("FakeSlack closed during a delayed answer")
        if fault.error is not None:
            if fault.status >= 500:
                return fault.status, {"Content-Type": "text/plain; charset=utf-8"}, \
                    fault.error.encode("utf-8")
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return _json(fault.status, {"ok": False, "error": fault.error}, extra)
    if method not in METHODS:
        return _json(200, {"ok": False, "error": "unknown_method"})
    if bad_body is not None:
        return _json(200, {"ok": False, "error": bad_body})
    if method not in AUTH_FREE:
        error = desk.check_token(presented, method)
        if error is not None:
            return _json(200, {"ok": False, "error": error})
    if method == "chat.postMessage":
        retry_after = desk.post_limited(params)
        if retry_after is not None:
            return _json(429, {"ok": False, "error": "ratelimited"},
                         {"Retry-After": str(retry_after)})
    try:
        data = METHODS[method](desk, params)
    except ApiError as exc:
        data = {"ok": False, "error": exc.error}
    return _json(200, data)


# -- methods -----------------------------------------------------------------------------
def _self(desk: Desk) -> Dict[str, Any]:
    return {"id": desk.bot_user_id, "name": desk.workspace.users[desk.bot_user_id]["name"]}


def _channel(desk: Desk, params: Params) -> str:
    cid = desk.workspace.find_channel(params.get("channel"))
    if cid is None:
        raise ApiError("channel_not_found")
    return cid


def _page(desk: Desk, key: str, items: List[Any], params: Params) -> Dict[str, Any]:
    page, cursor = paginate(items, params)
    return {"ok": True, key: page, "response_metadata": {"next_cursor": cursor}}


def rtm_connect(desk: Desk, params: Params) -> Dict[str, Any]:
    url = desk.issue_ticket(params, "rtm.connect")
    return {"ok": True, "url": url, "team": dict(desk.workspace.team), "self": _self(desk)}


def rtm_start(desk: Desk, params: Params) -> Dict[str, Any]:
    url = desk.issue_ticket(params, "rtm.start")
    with desk.lock:
        ws = desk.workspace
        users = [ws.user_view(uid) for uid in ws.users]
        channels = [ws.channel_view(cid) for cid in ws.channels]
        bots = [{"id": u["profile"]["bot_id"], "deleted": False, "name": u["name"],
                 "updated": CREATED, "app_id": APP_ID, "icons": {}}
                for u in users if u.get("is_bot")]
        latest = ws.next_ts()
    ims = [c for c in channels if c.get("is_im")]
    channels = [c for c in channels if not c.get("is_im")]
    me = dict(_self(desk), prefs={}, created=CREATED, manual_presence="active")
    team = dict(desk.workspace.team, email_domain="", icon={"image_default": True},
                msg_edit_window_mins=-1, over_storage_limit=False, prefs={}, plan="std")
    return {"ok": True, "url": url, "self": me, "team": team, "users": users,
            "channels": [c for c in channels if not c["is_private"]],
            "groups": [c for c in channels if c["is_private"]], "ims": ims, "mpims": [],
            "bots": bots, "cache_ts": CREATED, "latest_event_ts": latest}


def auth_test(desk: Desk, params: Params) -> Dict[str, Any]:
    team = desk.workspace.team
    return {"ok": True, "url": f"https://{team['domain']}.desk.com/", "team": team["name"],
            "user": _self(desk)["name"], "team_id": team["id"], "user_id": desk.bot_user_id,
            "bot_id": BOT_ID, "is_enterprise_install": False}


def team_info(desk: Desk, params: Params) -> Dict[str, Any]:
    team = dict(desk.workspace.team, email_domain="", icon={"image_default": True})
    return {"ok": True, "team": team}


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def chat_post_message(desk: Desk, params: Params) -> Dict[str, Any]:
    with desk.lock:
        cid = _channel(desk, params)
        if desk.bot_user_id not in desk.workspace.members.get(cid, ()):
            raise ApiError("not_in_channel")  # as Slack: the bot posts where it is a member
        text = params.get("text")
        blocks, attachments = params.get("blocks"), params.get("attachments")
        if not text and not blocks and not attachments:
            raise ApiError("no_text")
        extra = {"thread_ts": params.get("thread_ts") or None, "bot_id": BOT_ID,
                 "blocks": _maybe_json(blocks) if blocks else None,
                 "attachments": _maybe_json(attachments) if attachments else None}
        msg = desk.post(cid, desk.bot_user_id, str(text or ""), extra)
    shown = {k: v for k, v in msg.items() if k != "channel"}
    return {"ok": True, "channel": cid, "ts": msg["ts"], "message": shown}


def _own_message(desk: Desk, params: Params, refused: str) -> Tuple[str, str]:
    """The channel and ts of a message the bot posted (Slack: a bot edits and deletes
    only its own messages)."""
    cid = _channel(desk, params)
    ts = str(params.get("ts") or "")
    msg = desk.workspace.find_message(cid, ts)
    if msg is None:
        raise ApiError("message_not_found")
    if msg.get("user") != desk.bot_user_id:
        raise ApiError(refused)
    return cid, ts


def chat_update(desk: Desk, params: Params) -> Dict[str, Any]:
    """Edit a message the bot posted: ``text`` and/or ``blocks``; sends message_changed."""
    with desk.lock:
        cid, ts = _own_message(desk, params, "cant_update_message")
        text, blocks = params.get("text"), params.get("blocks")
        if text is None and blocks is None:
            raise ApiError("no_text")
        fields: Dict[str, Any] = {}
        if blocks is not None:
            fields["blocks"] = _maybe_json(blocks) or None  # [] or "" removes them
        event = desk.edit_message(cid, ts, None if text is None else str(text), **fields)
    message = event["message"]
    return {"ok": True, "channel": cid, "ts": ts, "text": message.get("text", ""),
            "message": message}


def chat_delete(desk: Desk, params: Params) -> Dict[str, Any]:
    """Delete a message the bot posted; sends message_deleted."""
    with desk.lock:
        cid, ts = _own_message(desk, params, "cant_delete_message")
        desk.delete_message(cid, ts)
    return {"ok": True, "channel": cid, "ts": ts}


def _kind(channel: Dict[str, Any]) -> str:
    if channel.get("is_im"):
        return "im"
    if channel.get("is_mpim"):
        return "mpim"
    return "private_channel" if channel.get("is_private") else "public_channel"


def _filtered(desk: Desk, params: Params, member: Optional[str] = None
              ) -> List[Dict[str, Any]]:
    """Channel views of the wanted ``types`` (default public_channel), without archived
    ones on ``exclude_archived``, only those ``member`` is in when given."""
    types = set(str(params.get("types") or "public_channel").split(","))
    skip_archived = truthy(params.get("exclude_archived", False))
    with desk.lock:
        ws = desk.workspace
        views = [ws.channel_view(cid) for cid in ws.channels
                 if member is None or member in ws.members.get(cid, ())]
    return [c for c in views if _kind(c) in types
            and not (skip_archived and c.get("is_archived"))]


def conversations_list(desk: Desk, params: Params) -> Dict[str, Any]:
    return _page(desk, "channels", _filtered(desk, params), params)


def users_conversations(desk: Desk, params: Params) -> Dict[str, Any]:
    """The conversations ``user`` (default: the bot) is a member of."""
    with desk.lock:
        uid = _user(desk, params, desk.bot_user_id)
    return _page(desk, "channels", _filtered(desk, params, member=uid), params)


def channels_list(desk: Desk, params: Params) -> Dict[str, Any]:
    return conversations_list(desk, dict(params, types="public_channel"))


def conversations_info(desk: Desk, params: Params) -> Dict[str, Any]:
    with desk.lock:
        return {"ok": True, "channel": desk.workspace.channel_view(_channel(desk, params))}


def _ts_key(value: Any, default: Tuple[int, int]) -> Tuple[int, int]:
    if value in (None, ""):
        return default
    whole, _, frac = str(value).partition(".")
    try:
        return int(whole or 0), int((frac + "000000")[:6] or 0)
    except ValueError:
        raise ApiError("invalid_ts_latest") from None


def conversations_history(desk: Desk, params: Params) -> Dict[str, Any]:
    """Newest first, like Slack: ``oldest`` / ``latest`` bound the ``ts`` (exclusive unless
    ``inclusive``), ``limit`` and ``cursor`` page through, ``has_more`` says more follow."""
    oldest = _ts_key(params.get("oldest"), (0, 0))
    latest = _ts_key(params.get("latest"), (10**12, 0))
    inclusive = truthy(params.get("inclusive", False))
    with desk.lock:
        cid = _channel(desk, params)
        msgs = []
        for m in reversed(desk.workspace.history[cid]):
            ts = _ts_key(m["ts"], (0, 0))
            inside = oldest <= ts <= latest if inclusive else oldest < ts < latest
            if inside:
                msgs.append({k: v for k, v in m.items() if k != "channel"})
    data = _page(desk, "messages", msgs, params)
    data["has_more"] = bool(data["response_metadata"]["next_cursor"])
    return data


def conversations_members(desk: Desk, params: Params) -> Dict[str, Any]:
    with desk.lock:
        members = list(desk.workspace.members[_channel(desk, params)])
    return _page(desk, "members", members, params)


def conversations_join(desk: Desk, params: Params) -> Dict[str, Any]:
    with desk.lock:
        cid = _channel(desk, params)
        already = desk.bot_user_id in desk.workspace.members[cid]
    if not already:
        desk.join_channel(desk.bot_user_id, cid)
    with desk.lock:
        data = {"ok": True, "channel": desk.workspace.channel_view(cid)}
    if already:
        data["warning"] = "already_in_channel"
    return data


def _user(desk: Desk, params: Params, default: Optional[str] = None) -> str:
    uid = params.get("user") or default
    if not isinstance(uid, str) or uid not in desk.workspace.users:
        raise ApiError("user_not_found")
    return uid


def users_info(desk: Desk, params: Params) -> Dict[str, Any]:
    with desk.lock:
        return {"ok": True, "user": desk.workspace.user_view(_user(desk, params))}


def users_list(desk: Desk, params: Params) -> Dict[str, Any]:
    with desk.lock:
        users = [desk.workspace.user_view(uid) for uid in desk.workspace.users]
    data = _page(desk, "members", users, params)
    data["cache_ts"] = CREATED
    return data


def users_get_presence(desk: Desk, params: Params) -> Dict[str, Any]:
    with desk.lock:
        uid = _user(desk, params, desk.bot_user_id)
        presence = desk.presence(uid)
        count = desk.connection_count() if uid == desk.bot_user_id else int(presence == "active")
    return {"ok": True, "presence": presence, "online": presence == "active",
            "auto_away": False, "manual_away": presence == "away",
            "connection_count": count, "last_activity": CREATED}


def reactions_add(desk: Desk, params: Params) -> Dict[str, Any]:
    name = params.get("name")
    if not name:
        raise ApiError("invalid_name")
    with desk.lock:
        cid = _channel(desk, params)
        ts = str(params.get("timestamp") or "")
        if desk.workspace.find_message(cid, ts) is None:
            raise ApiError("message_not_found")
        desk.add_reaction(cid, ts, str(name), user=desk.bot_user_id)
    return {"ok": True}


def apps_connections_open(desk: Desk, params: Params) -> Dict[str, Any]:
    """A one-time Socket Mode URL (the app token was checked by the caller)."""
    url = desk.issue_ticket(params, "apps.connections.open")
    desk.socket_mode_opened()
    return {"ok": True, "url": url}


def api_test(desk: Desk, params: Params) -> Dict[str, Any]:
    args = {k: (REDACTED if k == "token" else v) for k, v in params.items()}
    if params.get("error"):
        return {"ok": False, "error": params["error"], "args": args}
    return {"ok": True, "args": args}


METHODS: Dict[str, Callable[[Desk, Params], Dict[str, Any]]] = {
    "api.test": api_test,
    "apps.connections.open": apps_connections_open,
    "auth.test": auth_test,
    "channels.list": channels_list,
    "chat.delete": chat_delete,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "conversations.history": conversations_history,
    "conversations.info": conversations_info,
    "conversations.join": conversations_join,
    "conversations.list": conversations_list,
    "conversations.members": conversations_members,
    "reactions.add": reactions_add,
    "rtm.connect": rtm_connect,
    "rtm.start": rtm_start,
    "team.info": team_info,
    "users.conversations": users_conversations,
    "users.getPresence": users_get_presence,
    "users.info": users_info,
    "users.list": users_list,
}
