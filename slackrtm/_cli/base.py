"""What every subcommand of the command line shares: exit codes, :class:`CliError`, the
:class:`Console`, one-line explanations of errors, the token and the API URL.

``main`` (the parser) and the subcommands (``tail``, ``send``, ``demo``, ``fake``) import
from here; this module imports none of them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
from typing import IO, Any, Dict, List, Optional

from slackrtm._cli.format import paint, use_color
from slackrtm._client_base import DEFAULT_API_URL, BaseClient
from slackrtm._log import redact
from slackrtm.errors import (
    NoReplyReceivedError,
    PlatformError,
    RateLimitedError,
    SendMessagePlatformError,
    SendWhileDisconnectedError,
    SlackApiError,
    SlackHTTPError,
    SlackRTMError,
    WebsocketError,
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
AUTH_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "user_removed_from_team", "team_disabled", "not_allowed_token_type", "invalid_token"})


_HINTS = {
    ("not_allowed_token_type", True):
        "Slack refused this token for Socket Mode (not_allowed_token_type): Socket Mode "
        "needs an app-level token (xapp-...) with the connections:write scope, not a bot "
        "or user token",
    ("not_allowed_token_type", False):
        "Slack refused this token for RTM (not_allowed_token_type): RTM takes only the "
        "tokens of classic apps; for an app-level token (xapp-...) set SLACK_APP_TOKEN and "
        "use --socket-mode",
    ("missing_scope", True):
        "the app-level token lacks the connections:write scope (missing_scope)",
    ("link_disabled", True):
        "Socket Mode is turned off for this app (link_disabled): turn it on in the app's "
        "settings",
}


class CliError(Exception):
    """Ends the command with a one-line message on stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Console:
    """Thread-safe line output: results on stdout, notices and errors on stderr.

    Every line is scrubbed of the given secrets and of anything that looks like a token.
    A closed stdout (``| head``) is noticed once; later writes are dropped and
    :attr:`closed` is true.
    """

    def __init__(self, out: IO[str], err: IO[str], color: str = "auto") -> None:
        self._out, self._err = out, err
        self.color_out = use_color(color, out)
        self.color_err = use_color(color, err)
        self.secrets: List[str] = []
        self.scrub = True  # remove anything token-like; off only to show FakeSlack's token
        self.closed = False
        self._lock = threading.Lock()

    def _write(self, stream: IO[str], line: str) -> bool:
        text = redact(line, self.secrets) if self.scrub else line
        with self._lock:
            if self.closed and stream is self._out:
                return False
            try:
                stream.write(text + "\n")
                stream.flush()
            except BrokenPipeError:
                if stream is self._out:
                    self.closed = True
                    _silence_stdout()
                return False
            except ValueError:  # written to after the stream was closed at exit
                return False
        return True

    def out(self, line: str) -> bool:
        """Write a result line to stdout; False once stdout is closed."""
        return self._write(self._out, line)

    def note(self, line: str, color: Optional[str] = "dim") -> None:
        """Write a notice to stderr."""
        self._write(self._err, paint(f"slackrtm: {line}", color, self.color_err))

    def error(self, message: str) -> None:
        """Write ``slackrtm: error: message`` to stderr."""
        self._write(self._err, paint(f"slackrtm: error: {message}", "red", self.color_err))


def _silence_stdout() -> None:
    try:  # keep the interpreter's final flush from complaining about the broken pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# -- errors ------------------------------------------------------------------------------
def _reason(message: str) -> str:
    found = re.search(r"\[Errno -?\d+\] ([^\"')\]]+)", message)
    if found:
        return found.group(1).strip()
    for pattern, reason in (("certificate verify failed", "certificate verify failed"),
                            ("timed out", "timed out"),
                            ("Name or service not known", "unknown host name"),
                            ("nodename nor servname", "unknown host name"),
                            ("RemoteDisconnected", "the server closed the connection"),
                            ("Connection aborted", "the connection was aborted"),
                            ("Connection reset", "the connection was reset")):
        if pattern.lower() in message.lower():
            return reason
    inner = re.search(r"\((.+)\)$", message)
    return (inner.group(1) if inner else message)[:160]


def explain(exc: BaseException, api_url: str, *, socket_mode: bool = False) -> str:
    """One line saying what went wrong, for a user (no traceback, no token)."""
    if isinstance(exc, (PlatformError, SlackApiError)):
        hint = _HINTS.get((exc.error, socket_mode))
        if hint is not None:
            return hint
        if exc.error in AUTH_ERRORS:
            return f"Slack rejected the token ({exc.error})"
        return f"Slack answered {exc.error!r} ({exc.message})"
    if isinstance(exc, RateLimitedError):
        return f"rate limited by Slack: try again in {exc.retry_after:g} s"
    if isinstance(exc, SlackHTTPError):
        if exc.status_code is None:
            return f"cannot reach the Slack API at {api_url}: {_reason(exc.message)}"
        return f"the Slack API at {api_url} answered HTTP {exc.status_code}"
    if isinstance(exc, SendMessagePlatformError):
        detail = exc.error.get("msg") if isinstance(exc.error, dict) else exc.error
        return f"Slack refused the message: {detail}"
    if isinstance(exc, NoReplyReceivedError):
        return "no reply from Slack in time: the message may or may not have been posted"
    if isinstance(exc, SendWhileDisconnectedError):
        return "the connection ended before the message could be sent"
    if isinstance(exc, WebsocketError):
        return f"the {'Socket Mode' if socket_mode else 'RTM'} WebSocket failed: {exc.message}"
    if isinstance(exc, SlackRTMError):
        return exc.message
    return f"unexpected {type(exc).__name__}: {exc}"


# -- shared options --------------------------------------------------------------------
def load_token(args: argparse.Namespace, variable: str = "SLACK_TOKEN", *,
               option: str = "--token-file", missing: Optional[str] = None) -> str:
    """The token from the file ``option`` names (``--token-file``; ``-`` is stdin) or the
    environment ``variable`` (``SLACK_TOKEN``; ``SLACK_APP_TOKEN`` for Socket Mode).
    ``missing`` is the error when neither is given (by default: set one or the other)."""
    path: Optional[str] = getattr(args, option.lstrip("-").replace("-", "_"))
    if path is not None:
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as file:
                    text = file.read()
        except OSError as exc:
            raise CliError(f"cannot read the token file {path}: {exc.strerror or exc}",
                           EXIT_USAGE) from None
        token, where = text.strip(), f"the token file {path}"
    else:
        token, where = os.environ.get(variable, "").strip(), variable
        if not token:
            raise CliError(missing or f"no token: set {variable} or pass {option} PATH",
                           EXIT_USAGE)
    if not token:
        raise CliError(f"{where} is empty", EXIT_USAGE)
    if any(ch.isspace() for ch in token):
        raise CliError(f"{where} holds more than one word; it should hold just the token",
                       EXIT_USAGE)
    return token


def api_url_of(args: argparse.Namespace) -> str:
    """``--api-url``, else ``$SLACK_API_URL``, else Slack's; always ending in ``/``."""
    url = args.api_url or os.environ.get("SLACK_API_URL") or DEFAULT_API_URL
    if not re.match(r"^https?://[^/\s]+", url):
        source = "--api-url" if args.api_url else "SLACK_API_URL"
        raise CliError(f"{source} must be an http:// or https:// URL, got {url!r}", EXIT_USAGE)
    return url if url.endswith("/") else url + "/"


def client_options(args: argparse.Namespace, console: Console) -> Dict[str, Any]:
    """Logging for a client: silent, or every line on stderr with ``--verbose``."""
    if args.verbose:
        return {"log_level": 10, "logger": lambda level, msg: console.note(f"[{level}] {msg}")}
    return {"logger": lambda level, msg: None}  # failures are reported as one error line


def run_until_stopped(client: BaseClient) -> None:
    """``run_forever()``; a Ctrl-C at any moment, even before it is entered, disconnects.

    The client's threads keep the process alive, so a KeyboardInterrupt must never leave
    this function with the client still running.
    """
    try:
        client.start()
        client.run_forever()
    except KeyboardInterrupt:
        client.disconnect()


