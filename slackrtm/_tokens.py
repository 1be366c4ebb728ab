"""Token hygiene: every client strips a token and refuses one it can tell is unusable.

Tokens read from files or ``.env`` files often end in ``\\n`` or ``\\r\\n``; sent as they
are, they make an invalid ``Authorization`` header, whose error message quotes the whole
token. So surrounding whitespace is stripped, and a token with whitespace or control
characters inside, an empty one, a non-string, or one of the wrong kind is refused when
the client is made, with a message that never shows the token itself.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["APP_TOKEN_HELP", "BOT_TOKEN_HELP", "RTM_TOKEN_HELP", "clean_token", "token_hint"]

#: Where an app-level token comes from.
APP_TOKEN_HELP = (
    "an app-level token (xapp-...) with the connections:write scope: api.slack.com/apps > "
    "your app > Basic Information > App-Level Tokens")
#: Where an RTM token comes from.
RTM_TOKEN_HELP = (
    "a bot token (xoxb-...) or user token (xoxp-...) of a classic Slack app: "
    "api.slack.com/apps > your app > OAuth & Permissions")
#: Where a bot token comes from.
BOT_TOKEN_HELP = (
    "the app's bot token (xoxb-...): api.slack.com/apps > your app > OAuth & Permissions > "
    "Bot User OAuth Token")

_BOT_OR_USER = ("xoxb-", "xoxp-", "xoxa-", "xoxs-", "xoxe-", "xoxe.")


def clean_token(token: Any, *, owner: str, kind: Optional[str] = None) -> str:
    """``token`` without surrounding whitespace; raise when it cannot work.

    ``owner`` names the class for messages; ``kind`` is ``"rtm"``, ``"app"``, ``"bot"`` or None
    (any kind: the Web API). Raises TypeError for a non-string, ValueError for an empty
    token, one with whitespace or control characters inside, or one of the wrong kind.
    Tokens of a shape not recognised (a test server's, an enterprise's) are accepted.
    """
    if isinstance(token, bytes):
        raise TypeError(f"{owner}: token must be a str, got bytes (decode it first)")
    if not isinstance(token, str):
        raise TypeError(f"{owner}: token must be a str, got {type(token).__name__}")
    cleaned = token.strip()
    need = {"rtm": RTM_TOKEN_HELP, "app": APP_TOKEN_HELP, "bot": BOT_TOKEN_HELP}.get(
        kind or "", "a Slack token")
    if not cleaned:
        raise ValueError(f"{owner}: the token is empty (an unset environment variable?); "
                         f"it needs {need}")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in cleaned):
        raise ValueError(f"{owner}: the token has whitespace or control characters inside "
                         "it; a Slack token has none (was it pasted with a line break?)")
    if kind == "bot" and cleaned.startswith("xapp-"):
        raise ValueError(f"{owner} is an app-level token (xapp-...), which cannot post: it "
                         f"needs {BOT_TOKEN_HELP}")
    if kind == "rtm" and cleaned.startswith("xapp-"):
        raise ValueError(
            f"{owner} was given an app-level token (xapp-...), which only Socket Mode "
            "accepts: use slackrtm.SocketModeClient with it. RTMClient needs "
            f"{RTM_TOKEN_HELP}")
    if kind == "app" and cleaned.startswith(_BOT_OR_USER):
        raise ValueError(
            f"{owner} was given a bot or user token ({cleaned[:5]}...), but Socket Mode "
            f"needs {APP_TOKEN_HELP}. Keep the bot token for WebClient (chat.postMessage), "
            "or use it with RTMClient if it belongs to a classic app")
    return cleaned


def token_hint(error: str, method: str) -> str:
    """What to say after a Web API ``error`` of ``method`` about the token, or ``""``."""
    if error != "not_allowed_token_type":
        return ""
    if method == "apps.connections.open":
        return f" (Socket Mode needs {APP_TOKEN_HELP})"
    if method.startswith("rtm."):
        return (f" (RTM needs {RTM_TOKEN_HELP}; apps made today connect with an "
                "app-level token and SocketModeClient)")
    return " (this method takes another kind of token: see its page on api.slack.com)"
