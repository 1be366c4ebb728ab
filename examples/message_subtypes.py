"""Listen for one message subtype: channel renames (``message::channel_name``).

Usage: SLACK_TOKEN=xoxb-... python examples/message_subtypes.py   (Ctrl-C to stop)
Then rename a channel the bot is a member of.
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


# "{type}::{subtype}" handlers get only the events of that type and subtype.
@rtm.on("message::channel_name")
def on_channel_renamed(event: dict[str, Any]) -> None:
    # See https://api.slack.com/events/message/channel_name
    print(f"A channel was renamed from {event['old_name']} to {event['name']}")


@rtm.on("ready")
def on_ready() -> None:
    print("Waiting for channel renames. Press Ctrl-C to stop.")


rtm.run_forever()
