"""The command line: ``python -m slackrtm`` (also installed as ``slackrtm``).

Subcommands: ``demo``, ``tail``, ``send``, ``fake-slack``; see ``--help``. This module
only parses and routes: the subcommands live in ``tail``, ``send``, ``demo``, ``fake`` and
``fake_verbs``, what they share in ``base``.
Exit codes: 0 success (and Ctrl-C for ``tail`` / ``fake-slack``, which run until stopped);
1 a failure at run time (Slack rejected the token or the message, the API is unreachable,
no reply in time); 2 a usage error (bad arguments, no token); 130 interrupted by Ctrl-C.
The token is read from ``$SLACK_TOKEN`` (``$SLACK_APP_TOKEN`` with ``--socket-mode``) or
``--token-file`` (never from the command line, where other users could see it) and never
printed; ``send --socket-mode`` takes the bot token as well, from ``$SLACK_TOKEN`` or
``--bot-token-file``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from typing import IO, Any, Callable, NoReturn, Optional, Sequence

from slackrtm._cli.base import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Console,
    explain,
)
from slackrtm._cli.send import cmd_send
from slackrtm._cli.tail import cmd_tail
from slackrtm._version import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr, exit code 2 (argparse would print the whole usage too)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


# -- subcommands (in tail, send, demo, fake; the last two start a FakeSlack, imported only
# when needed) ----------------------------------------------------------------------------
def cmd_fake_slack(args: argparse.Namespace, console: Console) -> int:
    if args.verb is not None:
        from slackrtm._cli.fake_verbs import cmd_verb

        return cmd_verb(args, console)
    from slackrtm._cli.fake import serve

    return serve(args, console)


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from slackrtm._cli.demo import demo

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


def _slack_options(token_from: str) -> _Parser:
    """The options of the commands that talk to Slack; ``token_from`` names the variable."""
    slack = _Parser(add_help=False)
    slack.add_argument("--token-file", metavar="PATH",
                       help=f"read the token from this file ('-': stdin) instead of "
                            f"{token_from}")
    slack.add_argument("--api-url", metavar="URL",
                       help="Web API base URL (default: $SLACK_API_URL, else Slack's)")
    slack.add_argument("--timeout", type=_positive, default=30.0, metavar="SECONDS",
                       help="give up connecting or waiting for a reply after this long "
                            "(default: 30)")
    slack.add_argument("-v", "--verbose", action="store_true",
                       help="log what the client does (debug level) on stderr")
    return slack


def build_parser() -> argparse.ArgumentParser:
    """The ``slackrtm`` argument parser."""
    parser = _Parser(
        prog="slackrtm", description="Slack RTM and Socket Mode from the command line.",
        epilog="Exit codes: 0 ok, 1 failure (Slack said no, network, timeout), 2 usage "
               "error, 130 interrupted. The token comes from $SLACK_TOKEN ($SLACK_APP_TOKEN "
               "with --socket-mode) or --token-file; send --socket-mode also takes the bot "
               "token, from $SLACK_TOKEN or --bot-token-file.")
    parser.add_argument("--version", action="version", version=f"slackrtm {__version__}")
    color = _Parser(add_help=False)
    color.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                       help="colored output (default: auto, i.e. on a terminal)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", parents=[color], help="watch a bot chat in an offline FakeSlack",
                       description="Start a FakeSlack, connect a small bot to it and play a "
                                   "short scripted conversation, printing every event.")
    p.add_argument("--delay", type=_non_negative, default=0.6, metavar="SECONDS",
                   help="pause between the scripted steps (default: 0.6)")
    p.add_argument("--socket-mode", action="store_true",
                   help="play it over Socket Mode: the bot receives with the app-level "
                        "token, replies with send_message (chat.postMessage with the bot "
                        "token) and answers a slash command")
    p.set_defaults(handler=cmd_demo)

    tail_token = "$SLACK_TOKEN ($SLACK_APP_TOKEN with --socket-mode)"
    p = sub.add_parser("tail", parents=[_slack_options(tail_token), color],
                       help="print every event as it arrives",
                       description="Connect over RTM (or Socket Mode) and print every event, "
                                   "one per line, until Ctrl-C. Connection notices go to "
                                   "stderr. Over Socket Mode, Slack hands each envelope to "
                                   "one of the app's connections and tail acknowledges what "
                                   "it gets: while the app itself runs, each sees only part "
                                   "of the traffic.")
    p.add_argument("--socket-mode", action="store_true",
                   help="connect over Socket Mode with the app-level token (xapp-...) in "
                        "$SLACK_APP_TOKEN: events print as over RTM, slash commands and "
                        "interactions get a line too")
    p.add_argument("--json", action="store_true", help="print each event as a JSON line")
    p.add_argument("--type", action="append", metavar="TYPE",
                   help="only events of this type (repeatable)")
    p.set_defaults(handler=cmd_tail)

    p = sub.add_parser("send", parents=[_slack_options(tail_token), color],
                       help="send a message, print its ts",
                       description="Send TEXT to CHANNEL over RTM with the bot token (with "
                                   "--socket-mode: as a Socket Mode app sends, with "
                                   "chat.postMessage and the bot token) and print the ts "
                                   "Slack gave the message (one line per part with "
                                   "--split).")
    p.add_argument("channel", metavar="CHANNEL",
                   help="a conversation id (C0123...), or #name to look it up")
    p.add_argument("text", metavar="TEXT", help="the message")
    p.add_argument("--thread-ts", metavar="TS", help="reply in the thread of this message")
    p.add_argument("--split", action="store_true",
                   help="send a text over 4,000 characters as several messages, cut at line "
                        "breaks (else it is refused); prints each part's ts")
    p.add_argument("--socket-mode", action="store_true",
                   help="connect over Socket Mode with the app-level token (xapp-...) in "
                        "$SLACK_APP_TOKEN and post with chat.postMessage and the bot token "
                        "(xoxb-...) in $SLACK_TOKEN, as SocketModeClient.send_message does. "
                        "Slack may hand the connection, open for a moment, some of the "
                        "app's events: they are acknowledged, not handled")
    p.add_argument("--bot-token-file", metavar="PATH",
                   help="with --socket-mode: read the bot token from this file ('-': stdin) "
                        "instead of $SLACK_TOKEN")
    p.set_defaults(handler=cmd_send)

    p = sub.add_parser("fake-slack", parents=[color], help="run a FakeSlack for your bot",
                       description="Serve an offline Slack workspace (Web API, RTM and "
                                   "Socket Mode) on 127.0.0.1 until Ctrl-C, with a web page "
                                   "to play in it, and show what clients do. The verbs post, "
                                   "react and slash drive a running one from a script "
                                   "(they read $SLACK_API_URL and $SLACK_FAKE_ADMIN_TOKEN).")
    p.add_argument("--port", type=_port, default=0, help="TCP port (default: a free one)")
    p.add_argument("--token", help="the bot token to accept (default: a random one)")
    p.add_argument("--app-token", metavar="TOKEN",
                   help="the app-level token (xapp-...) to accept for Socket Mode "
                        "(default: a random one)")
    p.add_argument("--no-web", action="store_true",
                   help="do not serve the playground page (the control endpoint the verbs "
                        "use stays)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="do not print the calls, frames and acks clients send")
    p.set_defaults(handler=cmd_fake_slack, verb=None)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    who = _Parser(add_help=False)
    who.add_argument("--as", dest="as_user", default="alice", metavar="USER",
                     help="who does it (a user name or id; default: alice)")
    v = verbs.add_parser("post", parents=[who], help="post a message as a person; prints its ts",
                         description="Post TEXT in CHANNEL as a person of the running fake.")
    v.add_argument("channel", metavar="CHANNEL", help="#name or id")
    v.add_argument("text", metavar="TEXT", help="the message (@alice mentions her)")
    v.add_argument("--thread-ts", metavar="TS", help="reply in the thread of this message")
    v = verbs.add_parser("react", parents=[who], help="react to a message as a person",
                         description="Add (or remove) the reaction NAME to message TS.")
    v.add_argument("channel", metavar="CHANNEL", help="#name or id")
    v.add_argument("ts", metavar="TS", help="the message's ts")
    v.add_argument("name", metavar="NAME", help="the emoji name, such as tada or +1")
    v.add_argument("--remove", action="store_true", help="remove the reaction instead")
    v = verbs.add_parser("slash", parents=[who],
                         help="run a slash command over Socket Mode; prints the envelope id",
                         description="Run COMMAND (such as /echo) with TEXT in CHANNEL as a "
                                     "person: the app gets a slash_commands envelope.")
    v.add_argument("channel", metavar="CHANNEL", help="#name or id")
    v.add_argument("command", metavar="COMMAND", help="the command, such as /echo")
    v.add_argument("text", metavar="TEXT", nargs="*", help="its text")
    return parser


def main(argv: Optional[Sequence[str]] = None, *, stdout: Optional[IO[str]] = None,
         stderr: Optional[IO[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    previous = _terminate_as_interrupt()
    try:
        return _run(argv, stdout, stderr)
    except Terminated:  # before the command started
        return EXIT_INTERRUPTED
    finally:
        _restore(previous)


def _run(argv: Optional[Sequence[str]], stdout: Optional[IO[str]],
         stderr: Optional[IO[str]]) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stdout or sys.stdout, stderr or sys.stderr, getattr(args, "color", "auto"))
    handler: Callable[[argparse.Namespace, Console], int] = args.handler
    try:
        return handler(args, console)
    except CliError as exc:
        console.error(exc.message)
        return exc.code
    except Terminated:  # SIGTERM: how service managers stop a server
        if args.command in STOP_WITH_SIGTERM:
            console.note("stopped")
            return EXIT_OK
        console.note("terminated")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        console.note("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line, the traceback with --verbose
        if getattr(args, "verbose", False):
            console.note("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        console.error(explain(exc, ""))
        return EXIT_FAILURE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread where Ctrl-C raises KeyboardInterrupt."""


#: Commands that run until they are stopped: SIGTERM is their normal end (exit 0).
STOP_WITH_SIGTERM = frozenset({"fake-slack", "demo", "tail"})


def _terminate_as_interrupt() -> Any:
    """Make SIGTERM stop the command like Ctrl-C does (main thread only). Only the first
    SIGTERM raises: later ones are ignored, so the cleanup it started runs to its end."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    return signal.signal(signal.SIGTERM, on_term)


def _restore(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
