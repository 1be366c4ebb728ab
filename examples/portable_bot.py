"""One bot, both clients: the same handlers over RTM or over Socket Mode.

Usage: SLACK_TOKEN=xoxb-... python examples/portable_bot.py [--socket-mode]
(with --socket-mode, also SLACK_APP_TOKEN=xapp-...; Ctrl-C to stop)

Mention the bot in a channel it is in: it reacts with :eyes: and answers in a thread,
calling people and channels by their names from the workspace store. Nothing below the
choice of client knows which one it runs on: both send with ``send_message`` (RTM over its
socket, Socket Mode through chat.postMessage with the bot token), keep a store, and give
the bot token's WebClient as ``bot_web_client``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Union

from slackrtm import RTMClient, SocketModeClient

Client = Union[RTMClient, SocketModeClient]


def make_client(socket_mode: bool) -> Client:
    """The only place that knows the difference: which token opens the connection."""
    if socket_mode:  # an app made today: the app-level token connects, the bot token posts
        return SocketModeClient(os.environ["SLACK_APP_TOKEN"],
                                bot_token=os.environ["SLACK_TOKEN"], store=True)
    return RTMClient(os.environ["SLACK_TOKEN"], store=True)  # a classic app's bot token


def register(client: Client) -> None:
    """The bot itself: the same handlers on either client."""

    @client.on("ready")
    def on_ready() -> None:
        kind = "Socket Mode" if isinstance(client, SocketModeClient) else "RTM"
        print(f"Ready as @{client.store.self['name']} over {kind}. Press Ctrl-C to stop.")

    @client.on("message")
    def on_message(event: dict[str, Any]) -> None:
        me = client.store.self["id"]
        text = str(event.get("text", ""))
        if event.get("subtype") or event.get("user") == me or f"<@{me}>" not in text:
            return
        web = client.bot_web_client
        assert web is not None  # both clients here have the bot token
        web.reactions.add(channel=event["channel"], timestamp=event["ts"], name="eyes")
        who = client.store.user(event["user"])["name"]
        where = "#" + client.store.channel(event["channel"])["name"]
        thread = event.get("thread_ts") or event["ts"]
        # a future: the handler does not wait for Slack's answer (it could: .result())
        reply = client.send_message(f"Hi {who}, I heard you in {where}.", event["channel"],
                                    thread_ts=thread)
        reply.add_done_callback(lambda f: print(f"Answered @{who} in {where}"
                                                if f.exception() is None else
                                                f"Could not answer: {f.exception()}"))


if __name__ == "__main__":
    socket_mode = "--socket-mode" in sys.argv[1:]
    needed = ["SLACK_TOKEN", "SLACK_APP_TOKEN"] if socket_mode else ["SLACK_TOKEN"]
    if not all(os.environ.get(name) for name in needed):
        print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]}, or SLACK_APP_TOKEN=xapp-... "
              f"SLACK_TOKEN=xoxb-... python {sys.argv[0]} --socket-mode", file=sys.stderr)
        sys.exit(2)
    bot = make_client(socket_mode)
    register(bot)
    # Connects ($SLACK_API_URL when set, e.g. a FakeSlack), then blocks until Ctrl-C.
    bot.run_forever()
