"""The RTM side of a run: ``rtm.connect`` / ``rtm.start``, and what each RTM frame means."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from slackrtm._engine.core import RECONNECT_EVENTS
from slackrtm._engine.entries import Reply
from slackrtm._engine.reading import Batch
from slackrtm._engine.run import Run, RunContext
from slackrtm._engine.transport import Transport
from slackrtm.errors import ReconnectRequested, SlackRTMError, WebsocketError


class RTMRun(Run):
    """A run of an ``RTMClient``: replies resolve send futures; ``goodbye`` reconnects."""

    special_key = "reply_to"
    notable_types = RECONNECT_EVENTS

    def __init__(self, ctx: RunContext, args: Dict[str, Any], *,
                 use_rtm_connect: bool = True) -> None:
        #: rtm.connect (True) or rtm.start (False, for its workspace cache).
        self.use_rtm_connect = use_rtm_connect
        super().__init__(ctx, args)

    @property
    def source_method(self) -> str:  # type: ignore[override]
        """``rtm.connect``, or ``rtm.start`` when the client asked for its workspace cache."""
        return "rtm.connect" if self.use_rtm_connect else "rtm.start"

    def _read_loop(self, transport: Transport) -> Tuple[SlackRTMError, Transport]:
        # One connection, read until it ends. No lock is held here: take_batch takes the
        # client's lock once per read, for the replies it settles.
        while True:
            try:
                messages = transport.read()  # blocks; teardown (abort) wakes it
            except WebsocketError as err:  # closed, failed, or torn down by a deadline
                return err, transport
            outcome = self.take_batch(messages, transport)
            if outcome is not None:  # goodbye (closed by now), or the run is stopping
                return outcome, transport

    # ---------------------------------------------------------------- frames
    def _special(self, text: str, frame: Dict[str, Any], batch: Batch) -> bool:
        """A reply to a send: settled on this thread; the ``raw_message`` handlers see it,
        the others do not (skipped when nobody listens)."""
        batch.replies.append(frame)
        if self.ctx.registry.handlers("raw_message"):
            batch.entries.append(Reply(text))
        return True

    def _notable(self, etype: str, frame: Dict[str, Any], batch: Batch) -> None:
        """``goodbye`` / ``team_migration_started``: Slack closes the connection soon;
        reconnect at once, after what came before it was queued."""
        batch.outcome = ReconnectRequested(
            f"Slack sent {etype!r}: it closes this connection", event=etype)
