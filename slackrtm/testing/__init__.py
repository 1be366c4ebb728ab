"""Offline Slack for tests, demos and bot development: :class:`FakeSlack`, :class:`FakeProxy`,
:class:`FakeSocksProxy`.

``FakeSlack`` serves the Web API, the RTM API and Socket Mode (real WebSockets) on loopback,
with a seeded workspace, recording of everything clients send, and fault injection::

    from slackrtm.testing import FakeSlack

    with FakeSlack() as slack:
        rtm = RTMClient(slack.token, slack_api_url=slack.api_url)
        ...
        slack.wait_for_received("message")

Standard library only, and independent of the rest of slackrtm: it is a witness of the
protocol, not a reflection of the client. Run ``python -m slackrtm fake-slack`` (or
``python -m slackrtm.testing``, the same command) to serve one for bot development.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slackrtm.testing._calls import ApiCall
    from slackrtm.testing._conn import FakeConnection
    from slackrtm.testing._envelopes import Ack as Ack
    from slackrtm.testing._envelopes import MissedAck as MissedAck
    from slackrtm.testing._playground import Playground
    from slackrtm.testing._proxy import FakeProxy
    from slackrtm.testing._responses import ResponsePost as ResponsePost
    from slackrtm.testing._slack import FakeSlack
    from slackrtm.testing._socks import FakeSocksProxy

__all__ = ["Ack", "ApiCall", "FakeConnection", "FakeProxy", "FakeSlack", "FakeSocksProxy",
           "MissedAck", "Playground", "ResponsePost"]

# Imported on first use, so loading the pytest plugin (which imports this package) is cheap.
_WHERE = {"Ack": "_envelopes", "ApiCall": "_calls", "FakeConnection": "_conn",
          "FakeProxy": "_proxy", "FakeSlack": "_slack", "FakeSocksProxy": "_socks",
          "MissedAck": "_envelopes", "Playground": "_playground",
          "ResponsePost": "_responses"}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'slackrtm.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"slackrtm.testing.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
