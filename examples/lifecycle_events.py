"""Print the client's lifecycle events as it connects, reconnects and disconnects.

Usage: SLACK_TOKEN=xoxb-... python examples/lifecycle_events.py   (Ctrl-C to stop)
"""

from __future__ import annotations

import os
from typing import Any

from slackrtm import RTMClient

rtm = RTMClient(os.environ["SLACK_TOKEN"])


def on_state_change(name: str) -> None:
    """Register a handler that prints the event's name and the client's state."""

    def handler() -> None:
        print(f"{name:<14} state={rtm.state}")

    rtm.on(name, handler)


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
