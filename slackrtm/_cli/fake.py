"""``slackrtm fake-slack``: serve a FakeSlack until Ctrl-C and show what clients do: Web
API calls, RTM frames, Socket Mode acknowledgements, connections opened and closed."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, Dict, List

from slackrtm._cli.base import EXIT_OK, CliError, Console
from slackrtm._cli.fake_verbs import ADMIN_VARIABLE
from slackrtm._cli.format import Names

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm.testing import FakeSlack, Playground


def banner(slack: FakeSlack, playground: Playground) -> List[str]:
    """What a user needs to point a bot at ``slack`` (and to play in it)."""
    lines = [
        f"FakeSlack: an offline workspace ({slack.team_id}) is serving on "
        f"{slack.host}:{slack.port}.",
        "Point your bot (or slackrtm tail / send) at it with:",
        "",
        f"  export SLACK_API_URL={slack.api_url}",
        f"  export SLACK_TOKEN={slack.token}",
        f"  export SLACK_APP_TOKEN={slack.app_token}",
        f"  export {ADMIN_VARIABLE}={playground.admin_token}",
        "",
    ]
    if playground.web:
        lines += ["Play in it (post as alice, click buttons, drop connections) at:",
                  f"  {playground.url}", ""]
    lines += [
        "SLACK_TOKEN is the bot token (RTM, Web API); SLACK_APP_TOKEN the app-level token",
        "for Socket Mode (slackrtm tail --socket-mode, SocketModeClient);",
        f"{ADMIN_VARIABLE} lets `slackrtm fake-slack post|react|slash` drive this fake.",
        "",
        "Channels:",
    ]
    for channel in slack.channels:
        mark = "  (the bot is a member)" if channel["is_member"] else ""
        lines.append(f"  {channel['id']:<12} #{channel['name']}{mark}")
    lines.append("Users:")
    for user in slack.users:
        mark = "  (the bot: this token's user)" if user["id"] == slack.bot_user_id else ""
        lines.append(f"  {user['id']:<12} {user['name']}{mark}")
    lines.append("")
    return lines


def _frame_line(frame: Dict[str, Any], names: Names) -> str:
    kind = frame.get("type")
    if kind == "message":
        return f"rtm <- message to {names.channel(frame.get('channel'))}: {frame.get('text')}"
    rest = {k: v for k, v in frame.items() if k != "type"}
    return f"rtm <- {kind} {json.dumps(rest, separators=(',', ':'))}"


def _ack_line(envelope_id: Any, payload: Any) -> str:
    with_payload = "" if payload is None else \
        f" with payload {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}"
    return f"socket mode <- ack {envelope_id}{with_payload}"


def serve(args: argparse.Namespace, console: Console) -> int:
    """Run until Ctrl-C (or SIGTERM); 0 then, 1 if the port cannot be bound."""
    from slackrtm.testing import FakeSlack, Playground

    try:
        slack = FakeSlack(port=args.port, token=args.token, app_token=args.app_token)
    except OSError as exc:
        raise CliError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") \
            from None
    with slack:
        playground = Playground(slack, web=not args.no_web)
        try:  # Ctrl-C is how a server stops, at any moment: while printing the banner too
            console.scrub = False  # the fake token is meant to be copied
            for line in banner(slack, playground):
                console.out(line)
            console.note("serving; Ctrl-C to stop")
            names = Names({u["id"]: u["name"] for u in slack.users},
                          {c["id"]: c["name"] for c in slack.channels})
            _watch(slack, console, names, quiet=args.quiet)
        except KeyboardInterrupt:
            pass
    console.note("stopped")
    return EXIT_OK


def _watch(slack: FakeSlack, console: Console, names: Names, quiet: bool) -> None:
    """Print each Web API call once answered, each client frame (pings aside), each Socket
    Mode ack, and the number of open connections when it changes, forever."""
    calls_done = frames_done = acks_done = opened = sockets = 0

    def news() -> bool:
        calls = slack.calls
        finished = calls_done < len(calls) and calls[calls_done].status is not None
        return finished or frames_done < len(slack.received) \
            or opened != len(slack.connections) or acks_done < len(slack.acks) \
            or sockets != len(slack.socket_connections)

    while True:
        try:
            slack.wait_until(news, timeout=1.0)
        except TimeoutError:
            continue
        if quiet:
            calls_done, frames_done = len(slack.calls), len(slack.received)
            opened, sockets = len(slack.connections), len(slack.socket_connections)
            acks_done = len(slack.acks)
            continue
        calls = slack.calls
        while calls_done < len(calls) and calls[calls_done].status is not None:
            call = calls[calls_done]
            answer = call.response or {}
            outcome = "ok" if answer.get("ok") else answer.get("error", f"HTTP {call.status}")
            console.out(f"api {call.method} -> {outcome}")
            calls_done += 1
        frames = slack.received
        for frame in frames[frames_done:]:
            if frame.get("type") != "ping":
                console.out(_frame_line(frame, names))
        frames_done = len(frames)
        acks = slack.acks
        for ack in acks[acks_done:]:
            console.out(_ack_line(ack.envelope_id, ack.payload))
        acks_done = len(acks)
        now_open = len(slack.connections)
        if now_open != opened:
            console.out(f"rtm: {now_open} connection(s) open")
            opened = now_open
        now_open = len(slack.socket_connections)
        if now_open != sockets:
            console.out(f"socket mode: {now_open} connection(s) open")
            sockets = now_open
