"""Socket Mode quick start: receive events with the app-level token, reply with the bot token.

Usage: SLACK_APP_TOKEN=xapp-... SLACK_TOKEN=xoxb-... python examples/socket_mode.py
(Ctrl-C to stop)

Apps made today cannot use RTM; they get the same events over Socket Mode. In the app's
settings: turn Socket Mode on, make an app-level token with the connections:write scope,
and subscribe to the bot events message.channels and reaction_added.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from slackrtm import SocketModeClient

app_token, token = os.environ.get("SLACK_APP_TOKEN"), os.environ.get("SLACK_TOKEN")
if not app_token or not token:
    print(f"usage: SLACK_APP_TOKEN=xapp-... SLACK_TOKEN=xoxb-... python {sys.argv[0]}",
          file=sys.stderr)
    sys.exit(2)

# The app-level token (xapp-...) opens the connection; the bot token (xoxb-...) posts the
# replies (chat.postMessage), paced per channel like RTMClient's sends.
client = SocketModeClient(app_token, bot_token=token)
web = client.bot_web_client  # the bot token's WebClient, for any other Web API call
assert web is not None
bot_user_id = web.auth.test()["user_id"]


# The same handlers an RTM bot registers: they get the event inside each events_api
# envelope. Envelopes are acknowledged as soon as they are read, before the handlers run,
# so a slow handler never makes Slack send an event again.
@client.on("message")
def on_message(event: dict[str, Any]) -> None:
    # Skip edits, joins, bots' messages... and our own (Slack sends those too).
    if event.get("subtype") or event.get("user") == bot_user_id:
        return
    if "hello" in str(event.get("text", "")).lower():
        client.send_message(f"Hello <@{event['user']}>!", event["channel"])


@client.on("reaction_added")
def on_reaction_added(event: dict[str, Any]) -> None:
    item = event["item"]
    if item.get("type") == "message":
        client.send_message(f"Thanks for the :{event['reaction']}:", item["channel"],
                            thread_ts=item["ts"])


@client.on("ready")
def on_ready() -> None:
    print(f"Connected over Socket Mode as app {client.app_id}. Press Ctrl-C to stop.")


# The client talks to $SLACK_API_URL when it is set (e.g. a FakeSlack), else to Slack.
# Connects, then blocks until Ctrl-C (or SIGTERM), which disconnects cleanly.
client.run_forever()
