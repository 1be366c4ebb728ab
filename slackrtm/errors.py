"""Errors raised by slackrtm, each carrying an :class:`ErrorCode` as ``.code``.

The hierarchy::

    SlackRTMError                        every error of this package
    ├── connecting and staying connected
    │   ├── PlatformError                Slack refused the connection or ended the run
    │   ├── WebsocketError               the WebSocket failed or ended
    │   │   ├── ReconnectRequested       Slack announced the end (goodbye, disconnect)
    │   │   └── TooManyWebsockets        Slack refused one more connection for the app
    │   └── KeepAliveConfigError         (also ValueError) inconsistent keep-alive settings
    ├── sending over the WebSocket
    │   ├── SendWhileDisconnectedError   not started, or dropped by disconnect()
    │   ├── MessageTooLongError          (also ValueError) over 4,000 characters; not sent
    │   ├── NoReplyReceivedError         written, no reply in time (maybe delivered)
    │   └── SendMessagePlatformError     Slack's reply to a send says ``ok: false``
    └── the Web API (WebClient)
        ├── SlackApiError                a method answered ``ok: false``
        ├── SlackHTTPError               the HTTP request failed
        └── RateLimitedError             HTTP 429 after every retry

:class:`NotWritten` (a ``WebsocketError``) is the client's own: a send found its connection
torn down before a byte went out, and the client queues it again; it never reaches users.
"""

from __future__ import annotations

import enum
from typing import Any, Optional

from slackrtm._web.response import ApiResponse

__all__ = ["ErrorCode", "KeepAliveConfigError", "MessageTooLongError", "NoReplyReceivedError",
           "NotWritten", "PlatformError", "RateLimitedError", "ReconnectRequested",
           "SendMessagePlatformError", "SendWhileDisconnectedError", "SlackApiError",
           "SlackHTTPError", "SlackRTMError", "TooManyWebsockets", "WebsocketError"]


class ErrorCode(str, enum.Enum):
    """Machine-readable codes found on every error's ``.code``."""

    PlatformError = "slack_rtmapi_platform_error"
    SendWhileDisconnectedError = "slack_rtmapi_send_while_disconnected_error"
    SendMessagePlatformError = "slack_rtmapi_send_message_platform_error"
    WebsocketError = "slack_rtmapi_websocket_error"
    NoReplyReceivedError = "slack_rtmapi_no_reply_received_error"
    KeepAliveConfigError = "slack_rtmapi_keepalive_config_error"
    MessageTooLongError = "slack_rtmapi_message_too_long_error"
    HTTPError = "slack_webapi_http_error"
    RateLimitedError = "slack_webapi_rate_limited_error"
    PlatformAPIError = "slack_webapi_platform_error"

    def __str__(self) -> str:
        return str(self.value)


class SlackRTMError(Exception):
    """Base class of every error this package raises."""

    code: ErrorCode = ErrorCode.PlatformError

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


# ---------- connecting and staying connected -------------------------------------------

class PlatformError(SlackRTMError):
    """Slack refused the connection or ended the run: ``ok: false`` from the method that hands
    out WebSocket URLs (rtm.connect, rtm.start, apps.connections.open), an RTM ``error``
    frame, or Socket Mode's ``link_disabled``.

    ``.error`` is the error string, ``.data`` the response or frame.
    """

    code = ErrorCode.PlatformError

    def __init__(self, message: str, *, error: str, data: Any = None) -> None:
        super().__init__(message)
        self.error = error
        self.data = data


class WebsocketError(SlackRTMError):
    """The WebSocket connection failed or ended: handshake, TLS, protocol violation, loss."""

    code = ErrorCode.WebsocketError


class ReconnectRequested(WebsocketError):
    """Slack announced that it closes the connection (RTM ``goodbye`` or
    ``team_migration_started``, Socket Mode ``disconnect``): a planned end, not a failure.
    The client reconnects at once; with ``auto_reconnect=False`` the run ends with it.
    ``.event`` is what Slack sent (``"goodbye"``, ``"disconnect"``), ``.reason`` the
    ``disconnect`` frame's reason (else ``""``)."""

    def __init__(self, message: str, *, event: str, reason: str = "") -> None:
        super().__init__(message)
        self.event = event
        self.reason = reason


class TooManyWebsockets(WebsocketError):
    """Slack refused one more connection for the app (``too_many_websockets``); the client
    backs off longer with each refusal in a row."""


class NotWritten(WebsocketError):
    """The connection was already torn down: not a byte of the message was written (the
    client's own signal, caught where it is raised; never reaches users)."""


class KeepAliveConfigError(SlackRTMError, ValueError):
    """``server_pong_timeout`` must be smaller than ``client_ping_timeout``."""

    code = ErrorCode.KeepAliveConfigError


# ---------- sending over the WebSocket -------------------------------------------------

class SendWhileDisconnectedError(SlackRTMError):
    """A send was made while the client was not started, or its queue was dropped."""

    code = ErrorCode.SendWhileDisconnectedError


class MessageTooLongError(SlackRTMError, ValueError):
    """A message's text is longer than Slack accepts (4,000 characters); nothing was sent.

    ``.length`` is the text's length, ``.limit`` the most allowed. Slack would close the
    connection for it; ``send_message(..., split=True)`` sends it as several messages.
    """

    code = ErrorCode.MessageTooLongError

    def __init__(self, message: str, *, length: int, limit: int) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class NoReplyReceivedError(SlackRTMError):
    """A written message got no reply in time, or the connection was lost before it came.

    The message may or may not have been posted; it is never resent automatically.
    """

    code = ErrorCode.NoReplyReceivedError


class SendMessagePlatformError(SlackRTMError):
    """Slack's reply to a message sent over RTM had ``ok: false``.

    ``.data`` is the reply, ``.error`` its ``error`` object (``{"code": 2, "msg": ...}``).
    """

    code = ErrorCode.SendMessagePlatformError

    def __init__(self, message: str, *, data: dict[str, Any]) -> None:
        super().__init__(message)
        self.data = data
        self.error: Any = data.get("error")


# ---------- the Web API ----------------------------------------------------------------

class SlackApiError(SlackRTMError):
    """A Web API call answered ``ok: false``: ``.error`` the error string, ``.response``."""

    code = ErrorCode.PlatformAPIError

    def __init__(self, message: str, response: ApiResponse) -> None:
        super().__init__(message)
        self.response = response
        self.error: str = str(response.get("error", "unknown_error"))


class SlackHTTPError(SlackRTMError):
    """A Web API call failed at the HTTP level: ``.status_code`` (``None``: no response);
    ``.error``: the Slack error code the body carried anyway (``invalid_auth`` with HTTP
    401), else None."""

    code = ErrorCode.HTTPError

    def __init__(self, message: str, *, status_code: Optional[int] = None,
                 error: Optional[str] = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error


class RateLimitedError(SlackRTMError):
    """HTTP 429 after all retries: ``.retry_after`` seconds as Slack asked."""

    code = ErrorCode.RateLimitedError

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
