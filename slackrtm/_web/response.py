"""What an error needs of a Web API response: the shape :class:`slackrtm.web.SlackResponse`
has. It sits below ``errors`` so that ``SlackApiError`` can name the type of its
``.response`` without importing the Web API client (which raises those errors)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Protocol

__all__ = ["ApiResponse"]


class ApiResponse(Protocol):
    """A Web API response: its method, parsed body, HTTP status and headers."""

    method: str
    data: Dict[str, Any]
    status_code: int
    headers: Mapping[str, str]

    def get(self, key: str, default: Any = None) -> Any:
        """``data.get(key, default)``."""
        ...  # pragma: no cover

    def __getitem__(self, key: str) -> Any:
        ...  # pragma: no cover
