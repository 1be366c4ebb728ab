"""Print the client's lifecycle events as it connects, reconnects and disconnects.

Usage: SLACK_TOKEN=xoxb-... python examples/lifecycle_events.py   (Ctrl-C to stop)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from slackrtm import RTMClient

token = os.environ.get("SLACK_TOKEN")
if not token:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]}", file=sys.stderr)
    sys.exit(2)

rtm = RTMClient(token)


def on_state_change(state: str) -> None:
    """Register a handler for the lifecycle event named after the state it announces."""

    def handler() -> None:
        # The event carries the state the client entered. Handlers run on the dispatcher
        # thread, a moment later: by then rtm.state may have moved on (shown if so).
        now = rtm.state
        print(f"{state:<14} state={state}" + (f" (now {now})" if now != state else ""))

    rtm.on(state, handler)


# Events without arguments.
for name in ("connecting", "connected", "ready", "reconnecting", "disconnecting",
             "disconnected"):
    on_state_change(name)


@rtm.on("authenticated")
def on_authenticated(connect_data: dict[str, Any]) -> None:
    # connect_data is the rtm.connect answer: who we are and which workspace.
    me, team = connect_data["self"], connect_data["team"]
    print(f"authenticated  as {me['name']} ({me['id']}) in {team.get('name', team['id'])}")


@rtm.on("unable_to_rtm_start")
def on_unable_to_start(error: Exception) -> None:
    # rtm.connect failed; unless the error is fatal (e.g. invalid_auth), a retry follows.
    print(f"unable_to_rtm_start: {error}")


@rtm.on("error")
def on_error(error: Exception) -> None:
    # error.code, where there is one, is an slackrtm.ErrorCode.
    print(f"error          {getattr(error, 'code', None)}: {error}")


rtm.run_forever()
