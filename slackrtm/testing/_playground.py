"""The playground: a FakeSlack workspace in the browser, and a control endpoint for scripts.

``Playground(slack)`` serves, on FakeSlack's own loopback port:

- ``/playground/`` (unless ``web=False``): one static page (HTML, script and style shipped
  in ``_playground_static``, no build step, nothing fetched from elsewhere) showing the
  workspace as a person sees it, live through server-sent events, with a composer, a
  fault panel and an event log;
- ``/_control/<action>``: the same actions for scripts (``slackrtm fake-slack post ...``),
  JSON in and out, authenticated with ``Authorization: Bearer <admin_token>``;
- the ``response_url`` of the commands and clicks sent from it.

The page is authenticated too: the URL printed by ``fake-slack`` carries the admin token
once (``?key=...``), which the server trades for an HttpOnly, SameSite=Strict cookie.
Requests must name this server in their ``Host`` header (no DNS rebinding), and the
page's own calls carry a header a cross-site form cannot send.
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional
from urllib.parse import parse_qs

from slackrtm.testing._actions import RATE_LIMITABLE, ActionError, Actions
from slackrtm.testing._hub import Hub
from slackrtm.testing._net import url_host

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm.testing._http import SlackHandler
    from slackrtm.testing._slack import FakeSlack

STATIC = Path(__file__).with_name("_playground_static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png"}
JSON = "application/json; charset=utf-8"
#: Seconds between keep-alive comments on an idle event stream (finds closed pages).
KEEPALIVE = 25.0
#: Log lines a page gets when it (re)connects.
LOG_BACKLOG = 400


class Playground:
    """Serves the playground page and the control endpoint of ``slack`` (see the module).

    ``admin_token``: the secret scripts and the page present (default: a random one).
    ``web=False`` serves only the control endpoint and response URLs. :meth:`close` (also
    called by ``slack.close()``) ends every event stream.
    """

    def __init__(self, slack: FakeSlack, *, admin_token: Optional[str] = None,
                 web: bool = True) -> None:
        if slack._tap is not None:
            raise RuntimeError("this FakeSlack already has a playground")
        #: The secret of the control endpoint and the page.
        self.admin_token: str = admin_token or "fsadmin-" + secrets.token_urlsafe(24)
        self.slack = slack
        self.web = web
        self.hub = Hub(lambda: [slack.token, slack.app_token, slack.verification_token,
                                self.admin_token])
        self.actions = Actions(slack, self.hub)
        self._cookie = f"fakeslack_{slack.port}"
        slack._tap = self.hub
        for prefix in ("/_control/", "/commands/", "/actions/") + (
                ("/playground",) if web else ()):
            slack._mounts[prefix] = self

    # -- addresses -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the page and the control endpoint live under it."""
        return (f"{'https' if self.slack._tls else 'http'}://{url_host(self.slack.host)}:"
                f"{self.slack.port}")

    @property
    def url(self) -> str:
        """The page's address with the admin token: open it once, it sets a cookie."""
        return f"{self.base_url}/playground/?key={self.admin_token}"

    def close(self) -> None:
        """End every event stream (the page reconnects if the server comes back)."""
        self.hub.close()

    # -- HTTP ----------------------------------------------------------------------------
    def serve(self, handler: SlackHandler, path: str, query: str) -> None:
        """Answer one request under a mounted prefix (called by FakeSlack's handler)."""
        body = handler._read_body()
        if not self._host_ok(handler):
            self._text(handler, 421, "this server answers requests to its own address only")
            return
        if path.startswith(("/commands/", "/actions/")) and handler.command == "POST":
            self._response_url(handler, path, body)
        elif path.startswith("/_control/"):
            self._control(handler, path[len("/_control/"):], body)
        elif path.startswith("/playground"):
            self._page(handler, path[len("/playground"):], query, body)
        else:
            self._text(handler, 404, "not found")

    def _host_ok(self, handler: SlackHandler) -> bool:
        host = (handler.headers.get("Host") or "").strip().lower()
        port = self.slack.port
        return host in {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}",
                        f"{url_host(self.slack.host)}:{port}"}

    def _response_url(self, handler: SlackHandler, path: str, body: bytes) -> None:
        if path.startswith("/commands/"):  # FakeSlack serves them; the page shows them too
            status, headers, payload = self.slack._response_post(path, body)
            if status == 200:
                self.actions.command_response(path, body)
            handler._reply(status, headers, payload)
            return
        try:
            answer = self.actions.response(path, body)
        except ActionError as exc:
            self._json(handler, 400, {"ok": False, "error": str(exc)})
            return
        if answer is None:
            self._json(handler, 404, {"ok": False, "error": "expired_url"})
        else:
            self._json(handler, 200, answer)

    def _control(self, handler: SlackHandler, action: str, body: bytes) -> None:
        auth = handler.headers.get("Authorization") or ""
        presented = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(presented.encode(), self.admin_token.encode()):
            self._json(handler, 401, {"ok": False, "error": "not_authed: send Authorization: "
                                      "Bearer $SLACK_FAKE_ADMIN_TOKEN"})
            return
        if handler.command == "GET" and action == "state":
            self._json(handler, 200, self.snapshot())
            return
        if handler.command != "POST":
            self._json(handler, 405, {"ok": False, "error": "POST a JSON object"})
            return
        self._act(handler, action, body)

    def _act(self, handler: SlackHandler, action: str, body: bytes) -> None:
        try:
            params = json.loads(body.decode("utf-8") or "{}")
            self._json(handler, 200, self.actions.run(action, params))
        except (UnicodeDecodeError, ValueError):
            self._json(handler, 400, {"ok": False, "error": "the body must be a JSON object"})
        except ActionError as exc:
            self._json(handler, 400, {"ok": False, "error": str(exc)})

    def _signed_in(self, handler: SlackHandler) -> bool:
        for part in (handler.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self._cookie and hmac.compare_digest(value.encode(),
                                                            self.admin_token.encode()):
                return True
        return False

    def _page(self, handler: SlackHandler, rest: str, query: str, body: bytes) -> None:
        if rest in ("", "/"):
            key = (parse_qs(query).get("key") or [""])[0]
            if key and hmac.compare_digest(key.encode(), self.admin_token.encode()):
                handler._reply(303, {
                    "Location": "/playground/", "Cache-Control": "no-store",
                    "Set-Cookie": f"{self._cookie}={self.admin_token}; Path=/; HttpOnly; "
                                  "SameSite=Strict"}, b"")
            elif self._signed_in(handler):
                self._static(handler, "index.html")
            else:
                self._text(handler, 403, "open the playground with the URL `python -m slackrtm "
                                         "fake-slack` printed (it carries a key)")
            return
        if rest.startswith("/static/"):
            self._static(handler, rest[len("/static/"):])
            return
        if not self._signed_in(handler):
            self._json(handler, 403, {"ok": False, "error": "not signed in: open the URL "
                                      "fake-slack printed"})
            return
        if rest == "/api/stream" and handler.command == "GET":
            self._stream(handler)
        elif rest.startswith("/api/") and handler.command == "POST":
            if handler.headers.get("X-Playground") != "1":  # a cross-site form cannot set it
                self._json(handler, 403, {"ok": False, "error": "missing X-Playground header"})
                return
            self._act(handler, rest[len("/api/"):], body)
        else:
            self._text(handler, 404, "not found")

    def _static(self, handler: SlackHandler, name: str) -> None:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            self._text(handler, 404, "not found")
            return
        handler._reply(200, {"Content-Type": _TYPES.get(path.suffix, "application/octet-stream"),
                             "Cache-Control": "no-store",
                             "Content-Security-Policy": "default-src 'self'; img-src 'self' "
                                                        "data:; connect-src 'self'"},
                       path.read_bytes())

    # -- the event stream ----------------------------------------------------------------
    def _stream(self, handler: SlackHandler) -> None:
        """Server-sent events until the page goes or FakeSlack closes: ``snapshot`` first,
        then every hub item as it comes. Waits on the hub: nothing runs while idle."""
        handler.close_connection = True
        handler.send_response(200)
        for name, value in (("Content-Type", "text/event-stream; charset=utf-8"),
                            ("Cache-Control", "no-store"), ("Connection", "close"),
                            ("X-Accel-Buffering", "no")):
            handler.send_header(name, value)
        handler.end_headers()
        snapshot = self.snapshot()
        cursor = int(snapshot["cursor"])
        try:
            self._send(handler, "snapshot", snapshot)
            while not self.hub.closed:
                items = self.hub.since(cursor)
                if not items:
                    if not self.hub.wait(cursor, KEEPALIVE):
                        handler.wfile.write(b": keep-alive\n\n")
                        handler.wfile.flush()
                    continue
                for seq, kind, data in items:
                    cursor = seq
                    self._send(handler, kind, data)
        except (OSError, ValueError):  # the page went away, or FakeSlack is closing
            pass

    @staticmethod
    def _send(handler: SlackHandler, kind: str, data: Dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        handler.wfile.write(f"event: {kind}\ndata: {text}\n\n".encode())
        handler.wfile.flush()

    def snapshot(self) -> Dict[str, Any]:
        """The workspace as the page starts from, and the hub number it is current at."""
        slack = self.slack
        with slack._cond:  # workspace events are pushed under this lock: none slips by
            ws = slack._ws
            cursor = self.hub.last
            users = [{"id": uid, "name": u["name"], "real_name": u.get("real_name", ""),
                      "is_bot": bool(u.get("is_bot")), "deleted": bool(u.get("deleted")),
                      "presence": slack.presence(uid)} for uid, u in ws.users.items()]
            channels = [{"id": cid, "name": c.get("name"), "is_im": bool(c.get("is_im")),
                         "user": c.get("user"), "is_private": bool(c.get("is_private")),
                         "is_archived": bool(c.get("is_archived")),
                         "members": list(ws.members.get(cid, []))}
                        for cid, c in ws.channels.items()]
            messages = {cid: [dict(m) for m in history] for cid, history in ws.history.items()}
            conns = [{"id": c.id, "kind": c.kind, "open": c.open, "frozen": c.frozen}
                     for c in slack._conns + slack._socket_conns]
            team = dict(ws.team)
        log = [data for _, _, data in self.hub.since(0, ("log",))][-LOG_BACKLOG:]
        return json.loads(self.hub.redact(json.dumps({  # type: ignore[no-any-return]
            "cursor": cursor, "team": team, "bot": slack.bot_user_id, "users": users,
            "channels": channels, "messages": messages, "conns": conns, "log": log,
            "rate_limitable": list(RATE_LIMITABLE), "web": self.web})))

    # -- answers -------------------------------------------------------------------------
    @staticmethod
    def _json(handler: SlackHandler, status: int, data: Dict[str, Any]) -> None:
        handler._reply(status, {"Content-Type": JSON, "Cache-Control": "no-store"},
                       json.dumps(data).encode("utf-8"))

    @staticmethod
    def _text(handler: SlackHandler, status: int, text: str) -> None:
        handler._reply(status, {"Content-Type": "text/plain; charset=utf-8"},
                       (text + "\n").encode("utf-8"))
