"""Chaos, briefly: the soak's mix of faults (``python -m tests.soak``) for about 20 s per
client, in this process, every invariant of the soak checked.

RTMClient: sender threads keep messages in flight through drops, goodbyes, half-open
connections, failing rtm.connect calls, junk, floods and restarts; every send ends with its
own reply or a documented error, Slack receives each once and in order.

SocketModeClient: sender threads post events through refreshes, drops, half-open
connections, redeliveries, malformed envelopes, junk and bursts; every event is handled
exactly once, every envelope is acknowledged, nothing is pending at the end.

Each fault is followed by a wait (with a deadline) for the client to be ready again, so the
number of faults done depends on the machine's speed, not whether the test passes.
"""

from __future__ import annotations

import threading

from tests.soak.runner import Soak
from tests.soak.server import ServerSide
from tests.soak.sm_runner import SmSoak
from tests.soak.sm_server import SmServerSide
from tests.test_reliability_support import slackrtm_threads

SECONDS = 20.0


def test_rtm_client_through_the_soak_mix() -> None:
    before = set(threading.enumerate())
    soak = Soak(SECONDS / 60, seed=11, senders=3, verbose=False)
    status = soak.run(server=ServerSide(11))
    assert not soak.violations, "\n".join(soak.violations)
    assert status == 0
    assert sum(soak.faults.values()) >= 5, soak.faults
    assert soak.sends["ok"] > 50, soak.sends
    assert not slackrtm_threads()
    assert [t.name for t in threading.enumerate() if t not in before
            and t.is_alive() and not t.daemon] == []


def test_socket_mode_client_through_the_soak_mix() -> None:
    server = SmServerSide(12)
    try:
        soak = SmSoak(SECONDS / 60, seed=12, senders=3, verbose=False, interval=0.005)
        status = soak.run(server)
    finally:
        server.close()
    assert not soak.violations, "\n".join(soak.violations)
    assert status == 0
    assert sum(soak.faults.values()) >= 5, soak.faults
    assert soak.handled.count > 500 and soak.handled.duplicates == []
    assert soak.server_counts["acks"] >= soak.handled.count
    assert not slackrtm_threads()
