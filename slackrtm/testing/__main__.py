"""Serve a FakeSlack until Ctrl-C: ``python -m slackrtm.testing [--port N]``.

Point a bot at the printed API URL with the printed token to develop it offline.
"""

from __future__ import annotations

import argparse
import threading
from typing import List, Optional

from slackrtm.testing import FakeSlack


def main(argv: Optional[List[str]] = None) -> int:
    """Run the server in the foreground; returns 0 after Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m slackrtm.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    parser.add_argument("--token", default=None, help="bot token to accept (default: random)")
    args = parser.parse_args(argv)
    with FakeSlack(port=args.port, token=args.token) as slack:
        try:
            print(f"SLACK_API_URL={slack.api_url}")
            print(f"SLACK_TOKEN={slack.token}")
            print("channels:", ", ".join(f"#{c['name']} ({c['id']})" for c in slack.channels))
            print("Ctrl-C to stop.", flush=True)
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
