"""Answer slash commands over Socket Mode, with a response payload in the acknowledgement.

Usage: SLACK_APP_TOKEN=xapp-... python examples/slash_command.py   (Ctrl-C to stop)

Create the command (here /echo) in the app's settings. With Socket Mode on, Slack sends it
to this script as a slash_commands envelope instead of to a Request URL.
"""

from __future__ import annotations

import os
import sys

from slackrtm import SocketModeClient, SocketModeRequest

app_token = os.environ.get("SLACK_APP_TOKEN")
if not app_token:
    print(f"usage: SLACK_APP_TOKEN=xapp-... python {sys.argv[0]}", file=sys.stderr)
    sys.exit(2)

# With the default ack="auto", events are acknowledged as soon as they are read. Envelopes
# that take a response payload, as slash commands do, are left to their handlers:
# request.ack(payload) sends the answer; one not acknowledged by the time its handlers
# return is acknowledged without a payload. With ack="manual" every acknowledgement,
# events' too, is up to the handlers (to acknowledge an event only once it is saved, say).
client = SocketModeClient(app_token)


@client.on("slash_commands")
def on_command(request: SocketModeRequest) -> None:
    # The payload holds Slack's fields: command, text, user_id, channel_id, response_url...
    command, text = request.payload["command"], request.payload.get("text", "")
    user = request.payload["user_id"]
    print(f"{user} ran {command} {text}".rstrip())
    # Acknowledge within 3 seconds, or Slack tells the user the command failed. The payload
    # is the message Slack shows them (only them, unless "response_type": "in_channel").
    if command == "/echo":
        request.ack({"text": f"<@{user}> said: {text}", "response_type": "in_channel"})
    else:
        request.ack({"text": f"Sorry, I do not know {command}."})


@client.on("ready")
def on_ready() -> None:
    print("Waiting for slash commands. Press Ctrl-C to stop.")


client.run_forever()
