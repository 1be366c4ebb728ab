"""slackrtm: a Slack Real Time Messaging (RTM) API client that never loses a message.

Quick start::

    from slackrtm import RTMClient

    rtm = RTMClient(token)

    @rtm.on("message")
    def on_message(event):
        print(event.get("text"))

    rtm.start().result(timeout=30)
    print(rtm.send_message("hello", "C123").result()["ts"])
"""

from slackrtm._engine.backoff import Backoff
from slackrtm._engine.dedupe import Dedupe, MemoryDedupe
from slackrtm._engine.pacing import SendRate
from slackrtm._log import LogLevel
from slackrtm._version import __version__
from slackrtm.client import RTMClient
from slackrtm.errors import (
    ErrorCode,
    KeepAliveConfigError,
    MessageTooLongError,
    NoReplyReceivedError,
    PlatformError,
    RateLimitedError,
    ReconnectRequested,
    SendMessagePlatformError,
    SendWhileDisconnectedError,
    SlackApiError,
    SlackHTTPError,
    SlackRTMError,
    TooManyWebsockets,
    WebsocketError,
)
from slackrtm.socket_mode import SocketModeClient, SocketModeRequest
from slackrtm.web import SlackResponse, WebClient

__all__ = [
    "Backoff",
    "Dedupe",
    "ErrorCode",
    "KeepAliveConfigError",
    "LogLevel",
    "MemoryDedupe",
    "MessageTooLongError",
    "NoReplyReceivedError",
    "PlatformError",
    "RTMClient",
    "RateLimitedError",
    "ReconnectRequested",
    "SendMessagePlatformError",
    "SendRate",
    "SendWhileDisconnectedError",
    "SlackApiError",
    "SlackHTTPError",
    "SlackRTMError",
    "SlackResponse",
    "SocketModeClient",
    "SocketModeRequest",
    "TooManyWebsockets",
    "WebClient",
    "WebsocketError",
    "__version__",
]
