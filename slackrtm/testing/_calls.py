"""Records of Web API calls (with secrets redacted) and queued Web API faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

#: What replaces a token (or an Authorization header) in anything recorded.
REDACTED = "<redacted>"


@dataclass
class ApiCall:
    """One Web API request as FakeSlack received it. Never holds a token.

    ``params`` merges the query string and the body (form or JSON), with any ``token``
    value replaced by ``"<redacted>"``; ``headers`` has lower-case names and its
    ``authorization`` value redacted; ``query`` is the raw query string (tokens redacted).
    ``authorized`` says whether an ``Authorization: Bearer`` header carried the workspace's
    bot token or app-level token; ``token_in_body`` / ``token_in_url`` whether one of those
    tokens appeared anywhere in the body / request target (a leak for clients that promise
    header-only auth). ``time`` is ``time.monotonic()`` on arrival; ``status`` and
    ``response`` (the JSON answer, None for a non-JSON answer) are filled in once the
    answer is decided.
    """

    method: str
    params: Dict[str, Any]
    headers: Dict[str, str]
    query: str
    http_method: str
    authorized: bool
    token_in_body: bool
    token_in_url: bool
    time: float
    status: Optional[int] = None
    response: Optional[Dict[str, Any]] = field(default=None, repr=False)


@dataclass
class Fault:
    """A queued answer for the next ``times`` calls of one Web API method."""

    error: Optional[str]
    status: int = 200
    retry_after: Optional[str] = None
    delay: Optional[float] = None
    times: int = 1


def format_retry_after(value: Union[int, float, str]) -> str:
    """``Retry-After`` as given: ``1`` -> ``"1"``, ``2.0`` -> ``"2"``, ``0.2`` -> ``"0.2"``."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return str(int(value))
