"""Send the client's log, at DEBUG level, to a file through a logger function.

Usage: SLACK_TOKEN=xoxb-... python examples/custom_logger.py [LOG_FILE]

Connects, disconnects, and leaves the client's debug log in LOG_FILE (default
slackrtm-debug.log). The token never appears in it.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import datetime

from slackrtm import LogLevel, RTMClient

token = os.environ.get("SLACK_TOKEN")
if not token:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]} [LOG_FILE]", file=sys.stderr)
    sys.exit(2)

path = sys.argv[1] if len(sys.argv) > 1 else "slackrtm-debug.log"
lock = threading.Lock()

with open(path, "a", encoding="utf-8") as log_file:

    def write_log(level: str, message: str) -> None:
        # `level` is "debug", "info", "warn" or "error". The client calls this from its
        # own threads, so writes take a lock.
        with lock:
            log_file.write(f"{datetime.now().isoformat(timespec='milliseconds')} "
                           f"[{level}] {message}\n")
            log_file.flush()

    # By default the client logs to the stdlib logger "slackrtm" at INFO: silent unless
    # something goes wrong. Here: everything, to our function.
    rtm = RTMClient(token, log_level=LogLevel.DEBUG, logger=write_log)
    rtm.start().result(timeout=30)
    rtm.disconnect()  # once it returns, the client's threads are done logging

print(f"Wrote the client's debug log to {path}")
