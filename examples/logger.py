"""Log every message to a file; after a restart, log the ones posted meanwhile first.

Usage: SLACK_TOKEN=xoxb-... python examples/logger.py LOG_FILE   (Ctrl-C to stop)

Each line of LOG_FILE is one message as JSON. The newest ts logged per channel is saved in
LOG_FILE.seen.json and passed back as backfill_since on the next start: the client then
fetches what was posted while the logger was not running (conversations.history) and
delivers it, oldest first and marked "backfilled", before any new message. The same
happens by itself after every reconnect.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from slackrtm import RTMClient

token = os.environ.get("SLACK_TOKEN")
if not token or len(sys.argv) != 2:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]} LOG_FILE", file=sys.stderr)
    sys.exit(2)
log_path = Path(sys.argv[1])
seen_path = log_path.with_name(log_path.name + ".seen.json")
since = json.loads(seen_path.read_text()) if seen_path.exists() else {}

rtm = RTMClient(token, backfill=True, backfill_limit=500,
                backfill_since=since)


@rtm.once("ready")
def on_ready() -> None:
    print(f"Logging messages to {log_path}")


@rtm.on("message")
def log_message(event: dict[str, Any]) -> None:
    if "ts" not in event or "channel" not in event:
        return
    record = {key: event.get(key) for key in ("channel", "ts", "user", "text")}
    record["backfilled"] = bool(event.get("backfilled"))
    with log_path.open("a", encoding="utf-8") as log_file:
        log_file.write(json.dumps(record) + "\n")
    # rtm.last_seen already includes this message: save it once the message is logged.
    seen_path.with_suffix(".tmp").write_text(json.dumps(rtm.last_seen))
    seen_path.with_suffix(".tmp").replace(seen_path)
    print(f"logged {event['channel']} {event['ts']}"
          + (" (backfilled)" if record["backfilled"] else ""))


@rtm.on("missed")
def on_missed(channel: str, count: int) -> None:
    print(f"missed {count} message(s) in {channel} (more than backfill_limit)")


rtm.run_forever()
