"""Errors raised by slackrtm, each carrying an :class:`ErrorCode`."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm.web import SlackResponse


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


class PlatformError(SlackRTMError):
    """Slack answered with an error: rtm.connect/rtm.start ``ok: false`` or an RTM ``error`` frame.

    ``.error`` is the error string, ``.data`` the response or frame.
    """

    code = ErrorCode.PlatformError

    def __init__(self, message: str, *, error: str, data: Any = None) -> None:
        super().__init__(message)
        self.error = error
        self.data = data


class SendMessagePlatformError(SlackRTMError):
    """Slack's reply to a message sent over RTM had ``ok: false``.

    ``.data`` is the reply, ``.error`` its ``error`` object (``{"code": 2, "msg": ...}``).
    """

    code = ErrorCode.SendMessagePlatformError

    def __init__(self, message: str, *, data: dict[str, Any]) -> None:
        super().__init__(message)
        self.data = data
        self.error: Any = data.get("error")


class SendWhileDisconnectedError(SlackRTMError):
    """A send was made while the client was not started, or its queue was dropped."""

    code = ErrorCode.SendWhileDisconnectedError


class NoReplyReceivedError(SlackRTMError):
    """A written message got no reply in time, or the connection was lost before it came.

    The message may or may not have been posted; it is never resent automatically.
    """

    code = ErrorCode.NoReplyReceivedError


class WebsocketError(SlackRTMError):
    """The WebSocket connection failed: handshake, TLS, protocol violation or loss."""

    code = ErrorCode.WebsocketError


class KeepAliveConfigError(SlackRTMError, ValueError):
    """``server_pong_timeout`` must be smaller than ``client_ping_timeout``."""

    code = ErrorCode.KeepAliveConfigError


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


class SlackApiError(SlackRTMError):
    """A Web API call answered ``ok: false``: ``.error`` the error string, ``.response``."""

    code = ErrorCode.PlatformAPIError

    def __init__(self, message: str, response: SlackResponse) -> None:
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
