"""The RTM side of a run: ``rtm.connect`` / ``rtm.start``, and what each RTM frame means."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from slackrtm._engine.core import RECONNECT_EVENTS
from slackrtm._engine.dispatch import Entry, Lifecycle, Reply, Unparsed
from slackrtm._engine.run import Run, RunContext, monotonic
from slackrtm._engine.transport import Transport
from slackrtm.errors import ReconnectRequested, SlackRTMError, WebsocketError


class RTMRun(Run):
    """A run of an ``RTMClient``: replies resolve send futures; ``goodbye`` reconnects."""

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
        ctx = self.ctx
        core = ctx.core
        lock = ctx.lock
        loads = json.loads
        registry = ctx.registry

        def raw_handlers() -> bool:
            return bool(registry.handlers("raw_message"))

        while True:
            try:
                messages = transport.read()
            except WebsocketError as err:
                return err, transport
            now = monotonic()
            entries: List[Entry] = []
            ready_at = -1
            replies: List[Dict[str, Any]] = self.pongs_as_replies(transport) \
                if transport.pongs else []
            reconnect: Optional[str] = None
            for text, payload in messages:
                if text is None:
                    self.log.warn(f"dropped a binary frame of {len(payload or b'')} bytes")
                    continue
                try:
                    frame = loads(text)
                except (ValueError, RecursionError):  # RecursionError: nested too deep
                    entries.append(Unparsed(text))
                    continue
                if type(frame) is not dict:
                    entries.append(Unparsed(text))
                elif "reply_to" in frame:
                    replies.append(frame)
                    if raw_handlers():  # replies reach only raw_message: skip when unheard
                        entries.append(Reply(text))
                elif type(frame.get("type")) is not str:
                    entries.append(Unparsed(text))
                else:
                    entries.append((text, frame))
                    etype = frame["type"]
                    if etype == "hello":
                        if self.hello():
                            ready_at = len(entries)
                            entries.append(Lifecycle("ready"))
                    elif etype in RECONNECT_EVENTS:
                        reconnect = etype
            if replies:
                with lock:
                    core.heard(now)
                    effects: List[Any] = []
                    for frame in replies:
                        effects.extend(core.inbound(frame, now))
                self.settle(effects)
            else:
                core.heard(now)  # no lock needed: see Core.heard
            if entries:
                stop = self.deliver(entries, len(entries) - (ready_at >= 0), transport)
                if stop is not None:
                    return stop, transport
            if reconnect is not None:
                transport.close()
                return ReconnectRequested(f"Slack sent {reconnect!r}: it closes this connection",
                                          event=reconnect), transport
