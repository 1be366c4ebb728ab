"""One handler module, registered unchanged on an RTMClient and on a SocketModeClient
(tests/test_socket_mode.py): handlers that take one event are the same on both."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Tuple

seen: List[Tuple[str, Any]] = []
_cond = threading.Condition()


def _note(kind: str, value: Any) -> None:
    with _cond:
        seen.append((kind, value))
        _cond.notify_all()


def on_message(event: Dict[str, Any]) -> None:
    _note("message", (event["channel"], event["text"]))


def on_reaction(event: Dict[str, Any]) -> None:
    _note("reaction_added", (event["reaction"], event["item"]["ts"]))


def on_channel_name(event: Dict[str, Any]) -> None:
    _note("message::channel_name", event["name"])


def on_member_joined(event: Dict[str, Any]) -> None:
    _note("member_joined_channel", (event["user"], event["channel"]))


HANDLERS = {"message": on_message, "reaction_added": on_reaction,
            "message::channel_name": on_channel_name,
            "member_joined_channel": on_member_joined}


def register(client: Any) -> None:
    """Register every handler of this module on ``client`` (either kind)."""
    for name, fn in HANDLERS.items():
        client.on(name, fn)


def take(count: int, timeout: float = 30.0) -> List[Tuple[str, Any]]:
    """Wait until ``count`` events were seen; return them and forget them."""
    with _cond:
        if not _cond.wait_for(lambda: len(seen) >= count, timeout):
            raise AssertionError(f"expected {count} events, got {seen}")
        out = list(seen)
        seen.clear()
        return out
