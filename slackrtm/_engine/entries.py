"""What the reader hands the dispatcher: one entry per frame read (or lifecycle event),
in order. A Slack event is a plain ``(text, frame)`` tuple, the hot path; every other kind
is a small class of its own."""

from __future__ import annotations

from typing import Any, Dict, Optional, Protocol, Tuple, Union

__all__ = ["Duplicate", "Entry", "Envelope", "EnvelopeEntry", "EventEntry", "Frame",
           "Lifecycle", "Reply", "Unparsed"]

#: A parsed Slack event: a dict with a string ``type``.
Frame = Dict[str, Any]


class Envelope(Protocol):
    """A Socket Mode envelope as the dispatcher sees it (``SocketModeRequest``)."""

    @property
    def type(self) -> str:
        """The envelope type (``events_api``, ``slash_commands``, ...): an event name."""

    def finish(self) -> None:
        """Every handler of the envelope ran (acknowledge it if nobody did)."""


#: The common entry: a Slack event read from the socket, as ``(text, frame)``: the raw
#: text and the parsed event (a dict with a string ``type``). A plain tuple on purpose: the
#: reader makes one per event, and a tuple costs a quarter of the cheapest class instance.
#: Every other kind of entry is one of the small classes below.
EventEntry = Tuple[str, Frame]


class Unparsed:
    """A frame that is no Slack event (not JSON, not an object, no string ``type``): the
    ``raw_message`` handlers see it, then it is logged and dropped."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Reply:
    """A reply to a send (its future was settled on the reader): for ``raw_message``
    handlers only."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Duplicate:
    """An event another copy of the bot claimed (a shared duplicate filter, see
    ``_engine.gate``): the ``raw_message`` handlers and the observers see it (the store
    stays current), no other handler does."""

    __slots__ = ("frame", "text")

    def __init__(self, text: str, frame: Frame) -> None:
        self.text = text
        self.frame = frame


class EnvelopeEntry:
    """A Socket Mode envelope: its handlers get ``envelope``, then ``event`` (the inner
    Slack event, if any) goes out like an RTM event, then the envelope is finished."""

    __slots__ = ("envelope", "event", "text")

    def __init__(self, text: str, event: Optional[Frame], envelope: Envelope) -> None:
        self.text = text
        self.event = event
        self.envelope = envelope


class Lifecycle:
    """A lifecycle event (``connecting``, ``ready``, ``error``, ...) with its arguments;
    read from no socket, so it takes no room in the backlog."""

    __slots__ = ("args", "name")

    def __init__(self, name: str, args: Tuple[Any, ...] = ()) -> None:
        self.name = name
        self.args = args


#: What the reader hands the dispatcher, in order.
Entry = Union[EventEntry, Unparsed, Reply, Duplicate, EnvelopeEntry, Lifecycle]
