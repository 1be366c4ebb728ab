"""The Web API: request decoding, authentication, recording, faults and the methods."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, quote

from slackrtm.testing._calls import REDACTED, ApiCall, Fault
from slackrtm.testing._conn import truthy
from slackrtm.testing._workspace import APP_ID, BOT_ID, CREATED, ApiError, paginate

if TYPE_CHECKING:
    from slackrtm.testing._slack import FakeSlack

Params = Dict[str, Any]
Answer = Tuple[int, Dict[str, str], bytes]
JSON_TYPE = "application/json; charset=utf-8"
AUTH_FREE = {"api.test"}
SOCKET_MODE_METHOD = "apps.connections.open"


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


def handle(slack: FakeSlack, http_method: str, method: str, query: str, body: bytes,
           headers: Mapping[str, str]) -> Answer:
    """Answer one Web API request: record it, apply any queued fault, authenticate, run."""
    token, app_token = slack.token, slack.app_token
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
    slack._record_call(call)
    fault = slack._take_fault(method)
    if method == SOCKET_MODE_METHOD and fault is None:
        answer = _socket_mode_gate(http_method, bearer, params)
    else:
        answer = None
    if answer is None:
        answer = _answer(slack, fault, method, params, presented, bad_body)
    status, _, payload = answer
    is_json = answer[1].get("Content-Type") == JSON_TYPE
    slack._finish_call(call, status, json.loads(payload) if is_json else None)
    return answer


def _socket_mode_gate(http_method: str, bearer: Optional[str], params: Params) -> Optional[Answer]:
    """apps.connections.open as Slack documents it: POST only, the app token only in the
    ``Authorization: Bearer`` header. None: the request may go on."""
    if http_method != "POST":
        return _json(405, {"ok": False, "error": "method_not_allowed"}, {"Allow": "POST"})
    if bearer is None and params.get("token"):
        return _json(200, {"ok": False, "error": "invalid_auth"})  # a token in the form
    return None


def _answer(slack: FakeSlack, fault: Optional[Fault], method: str, params: Params,
            presented: Any, bad_body: Optional[str]) -> Answer:
    if fault is not None:
        if fault.delay and slack._stop.wait(fault.delay):
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
        error = slack._check_token(presented, method)
        if error is not None:
            return _json(200, {"ok": False, "error": error})
    if method == "chat.postMessage":
        retry_after = slack._post_limited(params)
        if retry_after is not None:
            return _json(429, {"ok": False, "error": "ratelimited"},
                         {"Retry-After": str(retry_after)})
    try:
        data = METHODS[method](slack, params)
    except ApiError as exc:
        data = {"ok": False, "error": exc.error}
    return _json(200, data)


# -- methods -----------------------------------------------------------------------------
def _self(slack: FakeSlack) -> Dict[str, Any]:
    return {"id": slack.bot_user_id, "name": slack._ws.users[slack.bot_user_id]["name"]}


def _channel(slack: FakeSlack, params: Params) -> str:
    cid = slack._ws.find_channel(params.get("channel"))
    if cid is None:
        raise ApiError("channel_not_found")
    return cid


def _page(slack: FakeSlack, key: str, items: List[Any], params: Params) -> Dict[str, Any]:
    page, cursor = paginate(items, params)
    return {"ok": True, key: page, "response_metadata": {"next_cursor": cursor}}


def rtm_connect(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    url = slack._issue_ticket(params, "rtm.connect")
    return {"ok": True, "url": url, "team": dict(slack._ws.team), "self": _self(slack)}


def rtm_start(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    url = slack._issue_ticket(params, "rtm.start")
    with slack._cond:
        ws = slack._ws
        users = [ws.user_view(uid) for uid in ws.users]
        channels = [ws.channel_view(cid) for cid in ws.channels]
        bots = [{"id": u["profile"]["bot_id"], "deleted": False, "name": u["name"],
                 "updated": CREATED, "app_id": APP_ID, "icons": {}}
                for u in users if u.get("is_bot")]
        latest = ws.next_ts()
    ims = [c for c in channels if c.get("is_im")]
    channels = [c for c in channels if not c.get("is_im")]
    me = dict(_self(slack), prefs={}, created=CREATED, manual_presence="active")
    team = dict(slack._ws.team, email_domain="", icon={"image_default": True},
                msg_edit_window_mins=-1, over_storage_limit=False, prefs={}, plan="std")
    return {"ok": True, "url": url, "self": me, "team": team, "users": users,
            "channels": [c for c in channels if not c["is_private"]],
            "groups": [c for c in channels if c["is_private"]], "ims": ims, "mpims": [],
            "bots": bots, "cache_ts": CREATED, "latest_event_ts": latest}


def auth_test(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    team = slack._ws.team
    return {"ok": True, "url": f"https://{team['domain']}.slack.com/", "team": team["name"],
            "user": _self(slack)["name"], "team_id": team["id"], "user_id": slack.bot_user_id,
            "bot_id": BOT_ID, "is_enterprise_install": False}


def team_info(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    team = dict(slack._ws.team, email_domain="", icon={"image_default": True})
    return {"ok": True, "team": team}


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def chat_post_message(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    with slack._cond:
        cid = _channel(slack, params)
        if slack.bot_user_id not in slack._ws.members.get(cid, ()):
            raise ApiError("not_in_channel")  # as Slack: the bot posts where it is a member
        text = params.get("text")
        blocks, attachments = params.get("blocks"), params.get("attachments")
        if not text and not blocks and not attachments:
            raise ApiError("no_text")
        extra = {"thread_ts": params.get("thread_ts") or None, "bot_id": BOT_ID,
                 "blocks": _maybe_json(blocks) if blocks else None,
                 "attachments": _maybe_json(attachments) if attachments else None}
        msg = slack._post(cid, slack.bot_user_id, str(text or ""), extra)
    shown = {k: v for k, v in msg.items() if k != "channel"}
    return {"ok": True, "channel": cid, "ts": msg["ts"], "message": shown}


def _own_message(slack: FakeSlack, params: Params, refused: str) -> Tuple[str, str]:
    """The channel and ts of a message the bot posted (Slack: a bot edits and deletes
    only its own messages)."""
    cid = _channel(slack, params)
    ts = str(params.get("ts") or "")
    msg = slack._ws.find_message(cid, ts)
    if msg is None:
        raise ApiError("message_not_found")
    if msg.get("user") != slack.bot_user_id:
        raise ApiError(refused)
    return cid, ts


def chat_update(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    """Edit a message the bot posted: ``text`` and/or ``blocks``; sends message_changed."""
    with slack._cond:
        cid, ts = _own_message(slack, params, "cant_update_message")
        text, blocks = params.get("text"), params.get("blocks")
        if text is None and blocks is None:
            raise ApiError("no_text")
        fields: Dict[str, Any] = {}
        if blocks is not None:
            fields["blocks"] = _maybe_json(blocks) or None  # [] or "" removes them
        event = slack.edit_message(cid, ts, None if text is None else str(text), **fields)
    message = event["message"]
    return {"ok": True, "channel": cid, "ts": ts, "text": message.get("text", ""),
            "message": message}


def chat_delete(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    """Delete a message the bot posted; sends message_deleted."""
    with slack._cond:
        cid, ts = _own_message(slack, params, "cant_delete_message")
        slack.delete_message(cid, ts)
    return {"ok": True, "channel": cid, "ts": ts}


def _kind(channel: Dict[str, Any]) -> str:
    if channel.get("is_im"):
        return "im"
    if channel.get("is_mpim"):
        return "mpim"
    return "private_channel" if channel.get("is_private") else "public_channel"


def _filtered(slack: FakeSlack, params: Params, member: Optional[str] = None
              ) -> List[Dict[str, Any]]:
    """Channel views of the wanted ``types`` (default public_channel), without archived
    ones on ``exclude_archived``, only those ``member`` is in when given."""
    types = set(str(params.get("types") or "public_channel").split(","))
    skip_archived = truthy(params.get("exclude_archived", False))
    with slack._cond:
        ws = slack._ws
        views = [ws.channel_view(cid) for cid in ws.channels
                 if member is None or member in ws.members.get(cid, ())]
    return [c for c in views if _kind(c) in types
            and not (skip_archived and c.get("is_archived"))]


def conversations_list(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    return _page(slack, "channels", _filtered(slack, params), params)


def users_conversations(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    """The conversations ``user`` (default: the bot) is a member of."""
    with slack._cond:
        uid = _user(slack, params, slack.bot_user_id)
    return _page(slack, "channels", _filtered(slack, params, member=uid), params)


def channels_list(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    return conversations_list(slack, dict(params, types="public_channel"))


def conversations_info(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    with slack._cond:
        return {"ok": True, "channel": slack._ws.channel_view(_channel(slack, params))}


def _ts_key(value: Any, default: Tuple[int, int]) -> Tuple[int, int]:
    if value in (None, ""):
        return default
    whole, _, frac = str(value).partition(".")
    try:
        return int(whole or 0), int((frac + "000000")[:6] or 0)
    except ValueError:
        raise ApiError("invalid_ts_latest") from None


def conversations_history(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    """Newest first, like Slack: ``oldest`` / ``latest`` bound the ``ts`` (exclusive unless
    ``inclusive``), ``limit`` and ``cursor`` page through, ``has_more`` says more follow."""
    oldest = _ts_key(params.get("oldest"), (0, 0))
    latest = _ts_key(params.get("latest"), (10**12, 0))
    inclusive = truthy(params.get("inclusive", False))
    with slack._cond:
        cid = _channel(slack, params)
        msgs = []
        for m in reversed(slack._ws.history[cid]):
            ts = _ts_key(m["ts"], (0, 0))
            inside = oldest <= ts <= latest if inclusive else oldest < ts < latest
            if inside:
                msgs.append({k: v for k, v in m.items() if k != "channel"})
    data = _page(slack, "messages", msgs, params)
    data["has_more"] = bool(data["response_metadata"]["next_cursor"])
    return data


def conversations_members(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    with slack._cond:
        members = list(slack._ws.members[_channel(slack, params)])
    return _page(slack, "members", members, params)


def conversations_join(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    with slack._cond:
        cid = _channel(slack, params)
        already = slack.bot_user_id in slack._ws.members[cid]
    if not already:
        slack.join_channel(slack.bot_user_id, cid)
    with slack._cond:
        data = {"ok": True, "channel": slack._ws.channel_view(cid)}
    if already:
        data["warning"] = "already_in_channel"
    return data


def _user(slack: FakeSlack, params: Params, default: Optional[str] = None) -> str:
    uid = params.get("user") or default
    if not isinstance(uid, str) or uid not in slack._ws.users:
        raise ApiError("user_not_found")
    return uid


def users_info(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    with slack._cond:
        return {"ok": True, "user": slack._ws.user_view(_user(slack, params))}


def users_list(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    with slack._cond:
        users = [slack._ws.user_view(uid) for uid in slack._ws.users]
    data = _page(slack, "members", users, params)
    data["cache_ts"] = CREATED
    return data


def users_get_presence(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    with slack._cond:
        uid = _user(slack, params, slack.bot_user_id)
        presence = slack.presence(uid)
        count = len(slack._conns) if uid == slack.bot_user_id else int(presence == "active")
    return {"ok": True, "presence": presence, "online": presence == "active",
            "auto_away": False, "manual_away": presence == "away",
            "connection_count": count, "last_activity": CREATED}


def reactions_add(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    name = params.get("name")
    if not name:
        raise ApiError("invalid_name")
    with slack._cond:
        cid = _channel(slack, params)
        ts = str(params.get("timestamp") or "")
        if slack._ws.find_message(cid, ts) is None:
            raise ApiError("message_not_found")
        slack.add_reaction(cid, ts, str(name), user=slack.bot_user_id)
    return {"ok": True}


def apps_connections_open(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    """A one-time Socket Mode URL (the app token was checked by the caller)."""
    url = slack._issue_ticket(params, "apps.connections.open")
    with slack._cond:
        slack.socket_mode_active = True
    return {"ok": True, "url": url}


def api_test(slack: FakeSlack, params: Params) -> Dict[str, Any]:
    args = {k: (REDACTED if k == "token" else v) for k, v in params.items()}
    if params.get("error"):
        return {"ok": False, "error": params["error"], "args": args}
    return {"ok": True, "args": args}


METHODS: Dict[str, Callable[[FakeSlack, Params], Dict[str, Any]]] = {
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
