"""``slackrtm tail``: print every event as it arrives, over RTM or (``--socket-mode``)
Socket Mode, until Ctrl-C.

Over Socket Mode the inner events of ``events_api`` envelopes are printed exactly as RTM
events are; slash commands and interactions get a line of their own. Connection notices
go to stderr.
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any, Dict, List, Optional

from slackrtm._cli.base import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Console,
    api_url_of,
    client_options,
    explain,
    load_token,
    run_until_stopped,
)
from slackrtm._cli.format import envelope_line, event_line
from slackrtm._client_base import BaseClient
from slackrtm._protocols.envelope import SocketModeRequest
from slackrtm.client import RTMClient
from slackrtm.errors import SlackRTMError
from slackrtm.socket_mode import SocketModeClient
from slackrtm.web import WebClient

#: Socket Mode envelope types printed on their own (events_api is printed as its event).
ENVELOPE_TYPES = ("slash_commands", "interactive")


def cmd_tail(args: argparse.Namespace, console: Console) -> int:
    """Print events until Ctrl-C; 0 then, 1 when Slack or the network ends the run."""
    if args.socket_mode:
        return _tail_socket_mode(args, console)
    token = load_token(args)
    console.secrets.append(token)
    api_url = api_url_of(args)
    try:  # fail fast, with a clear message, on a bad token or an unreachable API
        # One try: the command reports an unreachable API itself, at once.
        who = WebClient(token, base_url=api_url, timeout=args.timeout,
                        max_retries=0).auth.test()
    except SlackRTMError as exc:
        raise CliError(explain(exc, api_url)) from None
    try:
        rtm = RTMClient(token, slack_api_url=api_url, **client_options(args, console))
    except (TypeError, ValueError) as exc:  # a token of the wrong kind: says what to use
        raise CliError(str(exc), EXIT_USAGE) from None
    _print_events(rtm, args, console)
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


def _print_events(client: BaseClient, args: argparse.Namespace, console: Console) -> None:
    """Print every event (``--type``: only those), as a line or as JSON (``--json``)."""
    wanted = set(args.type or ())

    def out(line: str) -> None:
        if not console.out(line):  # stdout closed, e.g. piped into `head`
            client.disconnect()

    @client.on("slack_event")
    def show(event_type: str, event: Dict[str, Any]) -> None:
        if wanted and event_type not in wanted:
            return
        if args.json:
            out(json.dumps(event, ensure_ascii=False))
        else:
            out(event_line(event, color=console.color_out))

    def show_envelope(request: SocketModeRequest) -> None:
        if wanted and request.type not in wanted:
            return
        if args.json:
            out(json.dumps(request.envelope, ensure_ascii=False))
        else:
            out(envelope_line(request.type, request.payload, color=console.color_out))

    if isinstance(client, SocketModeClient):
        for name in ENVELOPE_TYPES:
            client.on(name, show_envelope)


def _tail_socket_mode(args: argparse.Namespace, console: Console) -> int:
    token = load_token(args, "SLACK_APP_TOKEN")
    console.secrets.append(token)
    api_url = api_url_of(args)
    timeout: float = args.timeout
    try:
        client = SocketModeClient(token, slack_api_url=api_url,
                                  hello_timeout=min(timeout, 10.0),
                                  **client_options(args, console))
    except (TypeError, ValueError) as exc:  # a token of the wrong kind: says what to use
        raise CliError(str(exc), EXIT_USAGE) from None
    _print_events(client, args, console)
    first = threading.Event()  # the first connection attempt succeeded or failed
    failed: List[BaseException] = []
    was_ready = [False]
    listening = [False]  # until the first ready, failures are the main thread's to report

    @client.on("ready")
    def on_ready() -> None:
        was_ready[0] = listening[0] = True
        console.note(f"connected over Socket Mode to {api_url} as app {client.app_id}; "
                     "listening, Ctrl-C to stop", "green")
        first.set()

    @client.on("unable_to_rtm_start")
    def on_unable(exc: BaseException) -> None:
        if not listening[0]:  # fail fast, as RTM's auth.test does, on the first attempt
            failed.append(exc)
            first.set()
        else:
            console.note(f"could not connect: {explain(exc, api_url, socket_mode=True)}",
                         "yellow")

    @client.on("reconnecting")
    def on_reconnecting() -> None:
        lost, was_ready[0] = was_ready[0], False
        if listening[0]:
            console.note("connection lost: reconnecting" if lost
                         else "connection attempt failed: retrying", "yellow")

    try:
        try:
            future = client.start()
            future.add_done_callback(lambda f: first.set())
            if not first.wait(timeout):
                raise CliError(f"timed out after {timeout:g} s connecting over Socket Mode")
            error: Optional[BaseException] = failed[0] if failed else None
            if error is None and future.done() and future.exception() is not None:
                error = future.exception()
            if error is not None:
                raise CliError(explain(error, api_url, socket_mode=True))
            client.run_forever()
        except KeyboardInterrupt:
            pass
        except SlackRTMError as exc:
            raise CliError(explain(exc, api_url, socket_mode=True)) from None
    finally:
        client.disconnect()
    console.note("disconnected")
    return EXIT_OK
