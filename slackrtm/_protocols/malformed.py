"""Socket Mode envelopes that are not what Slack documents: what is wrong with them, and
the ``envelope_id`` of one that cannot be parsed, so that it can still be acknowledged
(an unacknowledged envelope is delivered again, forever)."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from slackrtm._protocols.envelope import documented

__all__ = ["ENVELOPE_TYPES", "envelope_problems", "looks_like_envelope", "recover_envelope_id",
           "usable_id"]

#: The envelope types Slack sends over Socket Mode.
ENVELOPE_TYPES = frozenset({"events_api", "slash_commands", "interactive"})
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|-?[0-9][0-9.eE+-]*|true|false|null')


def looks_like_envelope(frame: Dict[str, Any]) -> bool:
    """Whether a frame is meant as an envelope (not ``hello`` or ``disconnect``)."""
    return "envelope_id" in frame or "payload" in frame or frame.get("type") in ENVELOPE_TYPES


def usable_id(value: Any) -> bool:
    """Whether an ``envelope_id`` can be echoed in an acknowledgement: a non-empty string
    (Slack's), or a number (echoed as it came)."""
    if type(value) is str:
        return bool(value)
    return type(value) in (int, float) and value == value  # not bool, not NaN


def envelope_problems(frame: Dict[str, Any]) -> Tuple[List[str], bool]:
    """What is wrong with an envelope, and whether it must be dropped (acknowledged, not
    dispatched) because no handler could be given something of the documented type.

    Nothing exactly when ``envelope.documented`` finds the envelope as Slack documents it:
    the rule is stated there once; this names what breaks it."""
    etype = frame.get("type")
    if documented(etype, frame.get("payload"))[0]:
        return [], False
    problems: List[str] = []
    drop = False
    if type(etype) is not str or not etype:
        problems.append("no type" if etype is None else f"a type that is not a string "
                                                        f"({type(etype).__name__})")
        drop = True
    payload = frame.get("payload")
    if "payload" not in frame:
        problems.append("no payload")
        drop = True
    elif not isinstance(payload, dict):
        problems.append(f"a payload that is not an object ({type(payload).__name__})")
        drop = True
    elif etype == "events_api":
        event = payload.get("event")
        if not isinstance(event, dict):
            problems.append("no event" if event is None else "an event that is not an object")
        elif type(event.get("type")) is not str:
            problems.append("an event with no type")
    if not problems:  # what documented() refuses is named above; never nothing
        problems.append("a shape Slack does not document")
    return problems, drop


def recover_envelope_id(text: str) -> Optional[Any]:
    """The top-level ``envelope_id`` of an envelope ``json.loads`` could not parse (nested
    too deep, or broken after the id), or None. Scans tokens without recursion."""
    depth = 0
    key: Optional[Any] = None
    expect_value = False
    for match in _TOKEN.finditer(text):
        tok = match.group()
        if expect_value:
            expect_value = False
            if depth == 1 and key == "envelope_id":
                if tok in "{[]},:":
                    return None
                try:
                    value = json.loads(tok)
                except ValueError:
                    return None
                return value if usable_id(value) else None
        if tok in "{[":
            depth += 1
            key = None
        elif tok in "}]":
            depth -= 1
            key = None
        elif tok == ":":
            expect_value = True
        elif tok == ",":
            key = None
        elif depth == 1 and tok.startswith('"'):
            try:
                key = json.loads(tok)
            except ValueError:
                key = None
        else:
            key = None
    return None
