"""Use the Web API to find a channel the bot is a member of, then post to it over RTM.

Usage: SLACK_TOKEN=xoxb-... python examples/with_web_client.py
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from slackrtm import RTMClient, WebClient

token = os.environ.get("SLACK_TOKEN")
if not token:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]}", file=sys.stderr)
    sys.exit(2)


def first_member_channel(web: WebClient) -> Optional[dict[str, Any]]:
    """The first channel the bot belongs to, or None."""
    # conversations.list is paginated: iterating the response fetches page after page.
    for page in web.conversations.list(exclude_archived=True, limit=200):
        for channel in page["channels"]:
            if channel.get("is_member"):
                return dict(channel)
    return None


with RTMClient(token) as rtm:
    # Connect in the background while the Web API call runs.
    rtm.start()

    channel = first_member_channel(WebClient(token))
    if channel is None:
        print("This bot is not in any channel: invite it to one and try again.")
        sys.exit(1)

    # Sends made before the connection is ready are queued and go out once it is.
    reply = rtm.send_message("Hello, world!", channel["id"]).result(timeout=30)
    print(f"Message sent to #{channel['name']} with ts {reply['ts']}")
