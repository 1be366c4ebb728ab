"""Post a report longer than one Slack message allows, split into several messages.

Usage: SLACK_TOKEN=xoxb-... python examples/long_report.py CHANNEL_ID
"""

from __future__ import annotations

import os
import sys

from slackrtm import RTMClient

token = os.environ.get("SLACK_TOKEN")
if not token or len(sys.argv) != 2:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]} CHANNEL_ID", file=sys.stderr)
    sys.exit(2)
conversation_id = sys.argv[1]

# About 12,500 characters: Slack takes at most 4,000 in one message (and closes an RTM
# connection that sends more), so send_message() alone would fail with MessageTooLongError.
rows = [f"{n:>4}. build-{n:04d}: {'passed' if n % 9 else 'FAILED'}" for n in range(1, 501)]
report = "Nightly builds\n" + "\n".join(rows)

with RTMClient(token) as rtm:
    rtm.start().result(timeout=30)

    # split=True cuts the text at line breaks into parts of at most 4,000 characters and
    # returns one future per part. The parts go out in order, paced as Slack asks (three
    # at once, then one a second per channel, by default).
    futures = rtm.send_message(report, conversation_id, split=True)
    for number, future in enumerate(futures, 1):
        reply = future.result(timeout=30)
        print(f"Part {number} of {len(futures)} posted: ts {reply['ts']}, "
              f"{len(reply['text'])} characters")
