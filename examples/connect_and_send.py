"""Connect to Slack over RTM and send a message; print the ``ts`` Slack gave it.

Usage: SLACK_TOKEN=xoxb-... python examples/connect_and_send.py CHANNEL_ID
"""

from __future__ import annotations

import os
import sys

from slackrtm import RTMClient

# A bot token (xoxb-...) from your Slack app. Keep it out of your source code.
token = os.environ.get("SLACK_TOKEN")
if not token or len(sys.argv) != 2:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]} CHANNEL_ID", file=sys.stderr)
    sys.exit(2)

# A channel, DM or group id such as C0123456789; with_web_client.py shows how to find one.
conversation_id = sys.argv[1]

# The client talks to $SLACK_API_URL when it is set (e.g. a FakeSlack), else to Slack.
# Leaving the `with` block disconnects.
with RTMClient(token) as rtm:
    # start() connects in the background; its future resolves once Slack says "hello".
    rtm.start().result(timeout=30)

    # send_message() returns a Future that resolves with Slack's reply to this message.
    reply = rtm.send_message("Hello there", conversation_id).result(timeout=30)
    print("Message sent:", reply["ts"])
