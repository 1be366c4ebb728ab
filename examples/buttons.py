"""Post a message with buttons and update it when someone clicks one (Socket Mode).

Usage: SLACK_APP_TOKEN=xapp-... SLACK_TOKEN=xoxb-... python examples/buttons.py

Say "deploy" in a channel the bot is in: it answers with Approve and Cancel buttons. A
click comes over Socket Mode as an interactive envelope (block_actions); the bot then
edits its message with chat.update to say who decided. Turn on Interactivity in the
app's settings (with Socket Mode, no request URL is needed).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from slackrtm import SocketModeClient, SocketModeRequest, WebClient

app_token, token = os.environ.get("SLACK_APP_TOKEN"), os.environ.get("SLACK_TOKEN")
if not app_token or not token:
    print(f"usage: SLACK_APP_TOKEN=xapp-... SLACK_TOKEN=xoxb-... python {sys.argv[0]}",
          file=sys.stderr)
    sys.exit(2)

client = SocketModeClient(app_token)
web = WebClient(token)
bot_user_id = web.auth.test()["user_id"]


@client.on("message")
def on_message(event: dict[str, Any]) -> None:
    if event.get("subtype") or event.get("user") == bot_user_id:
        return
    if "deploy" in str(event.get("text", "")).lower():
        question = f"<@{event['user']}> wants to deploy *build 42* to production."
        web.chat.postMessage(channel=event["channel"], text=question, blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": question}},
            {"type": "actions", "block_id": "deploy", "elements": [
                {"type": "button", "action_id": "approve", "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"}, "value": "build-42"},
                {"type": "button", "action_id": "cancel",
                 "text": {"type": "plain_text", "text": "Cancel"}, "value": "build-42"}]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": "Only someone in #ops should approve."}]}])


@client.on("interactive")
def on_click(request: SocketModeRequest) -> None:
    # Acknowledged as soon as it was read; the answer is an edit of the message clicked.
    payload = request.payload
    if payload.get("type") != "block_actions":
        return
    action, user = payload["actions"][0], payload["user"]["id"]
    verdict = "approved" if action["action_id"] == "approve" else "cancelled"
    text = f"Deploy of {action.get('value')} {verdict} by <@{user}>."
    web.chat.update(channel=payload["channel"]["id"], ts=payload["message"]["ts"], text=text,
                    blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
    print(f"{user} {verdict} {action.get('value')}")


@client.on("ready")
def on_ready() -> None:
    print("Say 'deploy' in a channel the bot is in. Press Ctrl-C to stop.")


client.run_forever()
