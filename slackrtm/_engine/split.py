"""Slack's message length limit: the check, and splitting a long text into parts.

Slack asks RTM clients to keep a message's text to 4,000 characters and disconnects a
client whose frame passes 16 kilobytes; 4,000 characters of 4-byte UTF-8 stay under that.
Characters are counted as Python's ``len`` counts them (code points).
"""

from __future__ import annotations

from typing import List

#: The longest ``text`` a message may have, in characters (``len(text)``).
MAX_MESSAGE_LENGTH = 4000


def split_text(text: str, limit: int = MAX_MESSAGE_LENGTH) -> List[str]:
    """Split ``text`` into parts of at most ``limit`` characters, in order.

    Each cut goes after the last newline that fits, else after the last whitespace, else
    at ``limit`` characters (a word longer than a message is cut); a cut that would leave
a part of whitespace alone is not taken. Separators are kept at
    the end of the part before the cut, so ``"".join(parts) == text``. No part is empty; a
    text that fits is returned as the only part (also an empty one: Slack refuses it as
    it would any empty message).
    """
    if not isinstance(text, str):
        raise TypeError(f"only a str can be split, got {type(text).__name__}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit!r}")
    parts: List[str] = []
    start, end = 0, len(text)
    while end - start > limit:
        window = text[start:start + limit]
        cut = window.rfind("\n") + 1
        if cut == 0 or window[:cut].isspace():  # a part of whitespace alone is no part
            cut = _last_space(window) + 1
        if cut == 0 or window[:cut].isspace():
            cut = limit
        rest = text[start + cut:end]
        if rest.isspace():  # blanks alone would be the last part: it takes a character more
            keep = len(window[:cut].rstrip()) - 1  # up to the last non-blank, exclusive
            if keep > 0 and not window[:keep].isspace() and end - start - keep <= limit:
                cut = keep
        parts.append(window[:cut])
        start += cut
    parts.append(text[start:])
    return parts


def _last_space(window: str) -> int:
    """Index of the last whitespace character of ``window``, or -1."""
    for i in range(len(window) - 1, -1, -1):
        if window[i].isspace():
            return i
    return -1


def unencodable(exc: UnicodeEncodeError) -> str:
    """Why a text cannot be written, for a user (the text itself is not shown)."""
    bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
    points = ", ".join(f"U+{ord(ch):04X}" for ch in bad[:3])
    return (f"it holds a lone surrogate ({points}) at character {exc.start}, which UTF-8 "
            "cannot encode (a broken \\ud800-style escape, or text cut inside a pair)")
