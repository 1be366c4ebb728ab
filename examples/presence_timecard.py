"""Keep a timecard of when the members of one channel are active or away.

Usage: SLACK_TOKEN=xoxb-... python examples/presence_timecard.py CHANNEL_ID   (Ctrl-C to stop)

Members of the channel are tracked: the bot subscribes to their presence and records
every change. Users joining the channel are added, users leaving it are dropped.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from slackrtm import RTMClient, WebClient

token = os.environ.get("SLACK_TOKEN")
if not token or len(sys.argv) != 2:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]} CHANNEL_ID", file=sys.stderr)
    sys.exit(2)

tracked_channel = sys.argv[1]

rtm = RTMClient(token)
web = WebClient(token)

# user id -> [(unix time, "active" or "away"), ...]. Use a database to survive restarts.
timecards: dict[str, list[tuple[float, str]]] = {}


def punch(user_id: str, presence: str) -> None:
    timecards.setdefault(user_id, []).append((time.time(), presence))
    print(f"timecard: {user_id} is {presence}")


def update_subscriptions() -> None:
    # The list is complete every time: users left out are unsubscribed. The client
    # re-sends the last list by itself after every reconnect.
    rtm.subscribe_presence(sorted(timecards))


# Handlers run one at a time on the client's dispatcher thread, so `timecards` needs no lock.
@rtm.once("ready")
def load_members() -> None:
    for page in web.conversations.members(channel=tracked_channel):
        for user_id in page["members"]:
            if user_id != rtm.active_user_id:
                punch(user_id, web.users.getPresence(user=user_id)["presence"])
    update_subscriptions()


@rtm.on("presence_change")
def on_presence_change(event: dict[str, Any]) -> None:
    # With batch_presence_aware=True one event carries a list of users in "users".
    for user_id in event.get("users") or [event["user"]]:
        if user_id in timecards:
            punch(user_id, event["presence"])


@rtm.on("member_joined_channel")
def on_member_joined(event: dict[str, Any]) -> None:
    if event["channel"] == tracked_channel:
        # Start the newcomer's timecard with their current presence, from the Web API.
        punch(event["user"], web.users.getPresence(user=event["user"])["presence"])
        update_subscriptions()


@rtm.on("member_left_channel")
def on_member_left(event: dict[str, Any]) -> None:
    if event["channel"] == tracked_channel and timecards.pop(event["user"], None) is not None:
        print(f"timecard: {event['user']} left, timecard removed")
        update_subscriptions()


# rtm.start() arguments go to rtm.connect on every (re)connect.
rtm.start(batch_presence_aware=True)
rtm.run_forever()

for user_id, punches in sorted(timecards.items()):
    print(f"{user_id}: {' '.join(presence for _, presence in punches)}")
