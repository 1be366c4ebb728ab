"""Get a snapshot of the workspace on connect (rtm.start) and keep the part you need fresh.

Usage: SLACK_TOKEN=xoxb-... python examples/workspace_cache.py   (Ctrl-C to stop)

rtm.start answers with users, channels and more; on a large workspace that answer is big
and slow, which is why rtm.connect (no snapshot) is the default. The snapshot goes stale
as soon as something changes: keep only what you need and update it from events.
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

# use_rtm_connect=False: connect with rtm.start, whose answer carries the snapshot.
rtm = RTMClient(token, use_rtm_connect=False)

# The one piece of state this bot keeps: channel id -> name.
channel_names: dict[str, str] = {}


@rtm.on("authenticated")
def on_authenticated(connect_data: dict[str, Any]) -> None:
    channels = connect_data.get("channels", [])
    channel_names.clear()
    channel_names.update({c["id"]: c["name"] for c in channels})
    mine = sorted(c["name"] for c in channels if c.get("is_member"))
    print(f"snapshot: {len(connect_data.get('users', []))} users, {len(channels)} channels; "
          f"member of {', '.join('#' + name for name in mine) or 'none'}")


@rtm.on("channel_created")
@rtm.on("channel_rename")
def on_channel_changed(event: dict[str, Any]) -> None:
    channel = event["channel"]
    channel_names[channel["id"]] = channel["name"]
    print(f"channel {channel['id']} is now #{channel['name']}")


@rtm.on("message")
def on_message(event: dict[str, Any]) -> None:
    channel = event.get("channel", "")
    print(f"#{channel_names.get(channel, channel)} {event.get('user')}: {event.get('text')}")


rtm.run_forever()
