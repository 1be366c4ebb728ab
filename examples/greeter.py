"""Welcome people who join a channel, by name, with the workspace store.

Usage: SLACK_TOKEN=xoxb-... python examples/greeter.py CHANNEL_ID   (Ctrl-C to stop)

With store=True, rtm.store knows the workspace's users and channels: an entry is fetched
from the Web API the first time it is asked for, then kept current from events (a user
who changes their name is greeted with the new one, without another call).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from slackrtm import RTMClient

token = os.environ.get("SLACK_TOKEN")
if not token or len(sys.argv) != 2:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]} CHANNEL_ID", file=sys.stderr)
    sys.exit(2)
channel_id = sys.argv[1]

rtm = RTMClient(token, store=True)


@rtm.once("ready")
def on_ready() -> None:
    print(f"Greeting the people who join {channel_id}")


@rtm.on("member_joined_channel")
def greet(event: dict[str, Any]) -> None:
    if event["channel"] != channel_id or event["user"] == rtm.active_user_id:
        return
    # store.user() calls users.info the first time only; store.users shows what is cached.
    user = rtm.store.user(event["user"])
    name = user.get("real_name") or user["name"]
    channel = rtm.store.channel(channel_id)["name"]
    rtm.send_message(f"Welcome to #{channel}, {name}!", channel_id)
    print(f"greeted {name} in #{channel}")


rtm.run_forever()
