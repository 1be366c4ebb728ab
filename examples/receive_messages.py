"""Print every message the bot can see, skipping bots and the bot's own messages.

Usage: SLACK_TOKEN=xoxb-... python examples/receive_messages.py   (Ctrl-C to stop)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from slackrtm import RTMClient

token = os.environ.get("SLACK_TOKEN")
if not token:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]}", file=sys.stderr)
    sys.exit(2)

rtm = RTMClient(token)


@rtm.on("message")
def on_message(event: dict[str, Any]) -> None:
    # For the fields of `event`, see https://api.slack.com/events/message
    subtype = event.get("subtype")
    # Skip messages posted by bots, and our own (Slack echoes what the bot posts).
    # rtm.active_user_id is the bot's user id, known once connected.
    if subtype == "bot_message" or (subtype is None and event.get("user") == rtm.active_user_id):
        return
    print(f"(channel:{event.get('channel')}) {event.get('user')} says: {event.get('text')}")


@rtm.on("ready")
def on_ready() -> None:
    print(f"Connected as {rtm.active_user_id}; listening. Press Ctrl-C to stop.")


# Connects, then blocks until Ctrl-C (or SIGTERM), which disconnects cleanly.
rtm.run_forever()
