"""Handle any other Slack event by its type, here ``reaction_added``.

Usage: SLACK_TOKEN=xoxb-... python examples/other_events.py   (Ctrl-C to stop)
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


# Every event type Slack sends (https://api.slack.com/rtm#events) can be listened to by name.
@rtm.on("reaction_added")
def on_reaction_added(event: dict[str, Any]) -> None:
    # See https://api.slack.com/events/reaction_added
    item = event.get("item", {})
    print(f"User {event['user']} reacted with :{event['reaction']}: "
          f"to {item.get('ts')} in {item.get('channel')}")


@rtm.on("ready")
def on_ready() -> None:
    print("Waiting for reactions. Press Ctrl-C to stop.")


rtm.run_forever()
