"""Logging that honours the client's own threshold and never shows a secret."""

from __future__ import annotations

import enum
import logging
import re
from typing import Callable, Iterable, Union

LoggerLike = Union[logging.Logger, Callable[[str, str], None], None]

_URL_SECRET = re.compile(r"(wss?://[^/\s\"']+)/[^\s\"']*")
_TOKEN_LIKE = re.compile(r"xox[a-z]-[A-Za-z0-9-]+")
_APP_TOKEN_LIKE = re.compile(r"xapp-[A-Za-z0-9-]+")


class LogLevel(enum.IntEnum):
    """Thresholds for a client's ``log_level`` (same numbers as the stdlib's levels)."""

    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40


_NAMES = {LogLevel.DEBUG: "debug", LogLevel.INFO: "info", LogLevel.WARN: "warn",
          LogLevel.ERROR: "error"}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove tokens, the given secrets and WebSocket URL paths (one-time tickets) from text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    text = _TOKEN_LIKE.sub("xox?-<redacted>", text)
    text = _APP_TOKEN_LIKE.sub("xapp-<redacted>", text)
    return _URL_SECRET.sub(r"\1/<redacted>", text)


class Log:
    """A client's logger: filters by its own level, redacts, then writes to its sink."""

    def __init__(self, level: int = LogLevel.INFO, logger: LoggerLike = None,
                 secrets: Iterable[str] = (), name: str = "slackrtm") -> None:
        self.level = int(level)
        self._secrets = tuple(s for s in secrets if s)
        self._fn: Callable[[str, str], None] | None = None
        self._logger: logging.Logger
        if logger is None:
            self._logger = logging.getLogger(name)
        elif isinstance(logger, logging.Logger):
            self._logger = logger
        elif callable(logger):
            self._fn = logger
            self._logger = logging.getLogger(name)
        else:
            raise TypeError(f"logger must be a logging.Logger or a callable, got {logger!r}")

    def add_secret(self, secret: str) -> None:
        """Also redact ``secret`` from now on."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def redact(self, text: str) -> str:
        """``text`` without this client's secrets (for error messages built from server text)."""
        return redact(text, self._secrets)

    def enabled(self, level: int) -> bool:
        """Whether a record at ``level`` would be written."""
        return level >= self.level

    def _write(self, level: int, message: str, exc: BaseException | None) -> None:
        if level < self.level:
            return
        text = redact(message, self._secrets)
        if exc is not None:
            import traceback

            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            text = f"{text}\n{redact(tb, self._secrets)}"
        if self._fn is not None:
            try:
                self._fn(_NAMES.get(LogLevel(level), "info") if level in _NAMES else "info", text)
            except Exception:  # a broken user logger must not break the client
                logging.getLogger("slackrtm").exception("the logger callable raised")
            return
        self._logger.log(level, "%s", text)

    def debug(self, message: str) -> None:
        """Log at DEBUG."""
        self._write(LogLevel.DEBUG, message, None)

    def info(self, message: str) -> None:
        """Log at INFO."""
        self._write(LogLevel.INFO, message, None)

    def warn(self, message: str, exc: BaseException | None = None) -> None:
        """Log at WARN, with ``exc``'s traceback when given."""
        self._write(LogLevel.WARN, message, exc)

    def error(self, message: str, exc: BaseException | None = None) -> None:
        """Log at ERROR, with ``exc``'s traceback when given."""
        self._write(LogLevel.ERROR, message, exc)
