"""The command line: ``python -m slackrtm`` (also installed as ``slackrtm``).

Subcommands: ``demo``, ``tail``, ``send``, ``fake-slack``; see ``--help``.
Exit codes: 0 success (and Ctrl-C for ``tail`` / ``fake-slack``, which run until stopped);
1 a failure at run time (Slack rejected the token or the message, the API is unreachable,
no reply in time); 2 a usage error (bad arguments, no token); 130 interrupted by Ctrl-C.
The token is read from ``$SLACK_TOKEN`` or ``--token-file`` (never from the command line,
where other users could see it) and never printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import signal
import sys
import threading
import traceback
from typing import IO, Any, Callable, Dict, List, NoReturn, Optional, Sequence

from slackrtm._cli_format import event_line, paint, use_color
from slackrtm._log import redact
from slackrtm._version import __version__
from slackrtm.client import DEFAULT_API_URL, RTMClient
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
from slackrtm.web import WebClient

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
AUTH_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "user_removed_from_team", "team_disabled", "not_allowed_token_type", "invalid_token"})


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


def explain(exc: BaseException, api_url: str) -> str:
    """One line saying what went wrong, for a user (no traceback, no token)."""
    if isinstance(exc, (PlatformError, SlackApiError)):
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
        return f"the RTM WebSocket failed: {exc.message}"
    if isinstance(exc, SlackRTMError):
        return exc.message
    return f"unexpected {type(exc).__name__}: {exc}"


# -- shared options ----------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr, exit code 2 (argparse would print the whole usage too)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def load_token(args: argparse.Namespace) -> str:
    """The token from ``--token-file`` (``-`` is stdin) or ``$SLACK_TOKEN``."""
    path: Optional[str] = args.token_file
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
        token, where = os.environ.get("SLACK_TOKEN", "").strip(), "SLACK_TOKEN"
        if not token:
            raise CliError("no token: set SLACK_TOKEN or pass --token-file PATH", EXIT_USAGE)
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


def run_until_stopped(rtm: RTMClient) -> None:
    """``run_forever()``; a Ctrl-C at any moment, even before it is entered, disconnects.

    The client's threads keep the process alive, so a KeyboardInterrupt must never leave
    this function with the client still running.
    """
    try:
        rtm.start()
        rtm.run_forever()
    except KeyboardInterrupt:
        rtm.disconnect()


# -- tail --------------------------------------------------------------------------------
def cmd_tail(args: argparse.Namespace, console: Console) -> int:
    token = load_token(args)
    console.secrets.append(token)
    api_url = api_url_of(args)
    try:  # fail fast, with a clear message, on a bad token or an unreachable API
        who = WebClient(token, base_url=api_url, timeout=args.timeout).auth.test()
    except SlackRTMError as exc:
        raise CliError(explain(exc, api_url)) from None
    rtm = RTMClient(token, slack_api_url=api_url, **client_options(args, console))
    wanted = set(args.type or ())

    @rtm.on("slack_event")
    def show(event_type: str, event: Dict[str, Any]) -> None:
        if wanted and event_type not in wanted:
            return
        if args.json:
            line = json.dumps(event, ensure_ascii=False)
        else:
            line = event_line(event, color=console.color_out)
        if not console.out(line):  # stdout closed, e.g. piped into `head`
            rtm.disconnect()

    was_ready = [False]  # handlers run one at a time: no lock needed
    rtm.once("connecting", lambda: console.note(f"connecting to {api_url}"))

    @rtm.on("ready")
    def on_ready() -> None:
        was_ready[0] = True
        console.note(f"connected to {who.get('team')} as {who.get('user')} "
                     f"({rtm.active_user_id}); listening, Ctrl-C to stop", "green")

    @rtm.on("reconnecting")
    def on_reconnecting() -> None:
        lost, was_ready[0] = was_ready[0], False
        console.note("connection lost: reconnecting" if lost
                     else "connection attempt failed: retrying", "yellow")

    rtm.on("unable_to_rtm_start", lambda exc: console.note(
        f"could not connect: {explain(exc, api_url)}", "yellow"))
    try:
        run_until_stopped(rtm)
    except SlackRTMError as exc:
        raise CliError(explain(exc, api_url)) from None
    console.note("disconnected")
    return EXIT_OK


# -- send --------------------------------------------------------------------------------
def resolve_channel(web: WebClient, name: str) -> str:
    """The id of the channel called ``name`` (without ``#``), via conversations.list."""
    for page in web.conversations.list(types="public_channel,private_channel",
                                       exclude_archived=True, limit=1000):
        for channel in page["channels"]:
            if channel.get("name") == name:
                return str(channel["id"])
    raise CliError(f"no channel named #{name} is visible to this token")


def cmd_send(args: argparse.Namespace, console: Console) -> int:
    token = load_token(args)
    console.secrets.append(token)
    api_url = api_url_of(args)
    timeout: float = args.timeout
    channel: str = args.channel
    try:
        if channel.startswith("#"):
            channel = resolve_channel(WebClient(token, base_url=api_url, timeout=timeout),
                                      channel[1:])
        rtm = RTMClient(token, slack_api_url=api_url, auto_reconnect=False,
                        reply_timeout=timeout, hello_timeout=min(timeout, 10.0),
                        **client_options(args, console))
        with rtm:
            step = "connecting"
            rtm.start().result(timeout)
            step = "the reply"
            reply = rtm.send_message(args.text, channel, thread_ts=args.thread_ts).result(
                timeout + 1.0)
    except concurrent.futures.TimeoutError:
        raise CliError(f"timed out after {timeout:g} s waiting for {step}") from None
    except SlackRTMError as exc:
        raise CliError(explain(exc, api_url)) from None
    console.out(str(reply.get("ts")))
    return EXIT_OK


# -- fake-slack --------------------------------------------------------------------------
def cmd_fake_slack(args: argparse.Namespace, console: Console) -> int:
    from slackrtm._cli_fake import serve

    return serve(args, console)


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from slackrtm._cli_demo import demo

    return demo(args, console)


# -- the parser --------------------------------------------------------------------------
def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``slackrtm`` argument parser."""
    parser = _Parser(
        prog="slackrtm", description="Slack RTM from the command line.",
        epilog="Exit codes: 0 ok, 1 failure (Slack said no, network, timeout), 2 usage "
               "error, 130 interrupted. The token comes from $SLACK_TOKEN or --token-file.")
    parser.add_argument("--version", action="version", version=f"slackrtm {__version__}")
    color = _Parser(add_help=False)
    color.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                       help="colored output (default: auto, i.e. on a terminal)")
    slack = _Parser(add_help=False)
    slack.add_argument("--token-file", metavar="PATH",
                       help="read the token from this file ('-': stdin) instead of "
                            "$SLACK_TOKEN")
    slack.add_argument("--api-url", metavar="URL",
                       help="Web API base URL (default: $SLACK_API_URL, else Slack's)")
    slack.add_argument("--timeout", type=_positive, default=30.0, metavar="SECONDS",
                       help="give up connecting or waiting for a reply after this long "
                            "(default: 30)")
    slack.add_argument("-v", "--verbose", action="store_true",
                       help="log what the client does (debug level) on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", parents=[color], help="watch a bot chat in an offline FakeSlack",
                       description="Start a FakeSlack, connect a small bot to it and play a "
                                   "short scripted conversation, printing every event.")
    p.add_argument("--delay", type=_non_negative, default=0.6, metavar="SECONDS",
                   help="pause between the scripted steps (default: 0.6)")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("tail", parents=[slack, color], help="print every event as it arrives",
                       description="Connect over RTM and print every event, one per line, "
                                   "until Ctrl-C. Connection notices go to stderr.")
    p.add_argument("--json", action="store_true", help="print each event as a JSON line")
    p.add_argument("--type", action="append", metavar="TYPE",
                   help="only events of this type (repeatable)")
    p.set_defaults(handler=cmd_tail)

    p = sub.add_parser("send", parents=[slack, color], help="send a message, print its ts",
                       description="Send TEXT to CHANNEL over RTM and print the ts Slack "
                                   "gave the message.")
    p.add_argument("channel", metavar="CHANNEL",
                   help="a conversation id (C0123...), or #name to look it up")
    p.add_argument("text", metavar="TEXT", help="the message")
    p.add_argument("--thread-ts", metavar="TS", help="reply in the thread of this message")
    p.set_defaults(handler=cmd_send)

    p = sub.add_parser("fake-slack", parents=[color], help="run a FakeSlack for your bot",
                       description="Serve an offline Slack workspace (Web API and RTM) on "
                                   "127.0.0.1 until Ctrl-C, and show what clients do.")
    p.add_argument("--port", type=_port, default=0, help="TCP port (default: a free one)")
    p.add_argument("--token", help="the bot token to accept (default: a random one)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="do not print the calls and frames clients send")
    p.set_defaults(handler=cmd_fake_slack)
    return parser


def main(argv: Optional[Sequence[str]] = None, *, stdout: Optional[IO[str]] = None,
         stderr: Optional[IO[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    console = Console(stdout or sys.stdout, stderr or sys.stderr, getattr(args, "color", "auto"))
    handler: Callable[[argparse.Namespace, Console], int] = args.handler
    previous = _terminate_as_interrupt()
    try:
        return handler(args, console)
    except CliError as exc:
        console.error(exc.message)
        return exc.code
    except KeyboardInterrupt:
        console.note("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line, the traceback with --verbose
        if getattr(args, "verbose", False):
            console.note("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        console.error(explain(exc, ""))
        return EXIT_FAILURE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_as_interrupt() -> Any:
    """Make SIGTERM stop the command like Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, on_term)
