"""``slackrtm demo``: a small bot and a scripted conversation, all offline in a FakeSlack.

Everything the bot receives is printed as ``<-`` lines, everything it sends as ``->``,
the scripted people's actions as ``==`` headings. Each step waits (with a deadline) for
the bot to have reacted before the next one starts, so the demo is also a smoke test.

``--socket-mode`` connects the same bot over Socket Mode: it receives the same events and
replies with the same ``send_message``, which a ``SocketModeClient`` posts through the Web
API (``chat.postMessage`` with the bot token it is given: the Socket Mode WebSocket itself
only receives), and it answers a slash command with a response payload in the
acknowledgement.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Set, Tuple

from slackrtm._cli.base import EXIT_OK, CliError, Console
from slackrtm._cli.format import Names, envelope_line, event_line, paint
from slackrtm._client_base import BaseClient
from slackrtm._protocols.envelope import SocketModeRequest
from slackrtm.client import RTMClient
from slackrtm.errors import SendWhileDisconnectedError
from slackrtm.socket_mode import SocketModeClient

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm.testing import FakeSlack

#: ``post(channel, text)``: send a message, return Slack's answer (with its ``ts``).
Post = Callable[[str, str], Dict[str, Any]]

#: Seconds a step may take before the demo gives up (it normally takes milliseconds).
STEP_TIMEOUT = 10.0


class DemoBot:
    """Greets whoever says hello, welcomes newcomers, counts the reactions it gets; over
    Socket Mode it also answers ``/reactions``."""

    def __init__(self, client: BaseClient, say: Callable[[str], None], post: Post,
                 how: str, me: Callable[[], Any]) -> None:
        self.client = client
        self.say = say
        self.post, self.how, self.me = post, how, me
        self.reactions: Counter[str] = Counter()
        self.sent: List[Dict[str, Any]] = []
        self.commands: List[str] = []
        self.cond = threading.Condition()
        client.on("message", self.on_message)
        client.on("reaction_added", self.on_reaction_added)
        client.on("member_joined_channel", self.on_member_joined)
        client.on("slash_commands", self.on_slash_command)

    def reply(self, channel: str, text: str) -> None:
        self.say(f"-> {self.how} <#{channel}>: {text}")
        # Handlers may block on a send's result: replies are not resolved on this thread.
        try:
            answer = self.post(channel, text)
        except SendWhileDisconnectedError:
            return  # the demo is being stopped (Ctrl-C, SIGTERM): nothing left to say
        self.say(f"   Slack replied ok, ts {answer['ts']}")
        with self.cond:
            self.sent.append(answer)
            self.cond.notify_all()

    def on_message(self, event: Dict[str, Any]) -> None:
        if event.get("subtype") or event.get("user") == self.me():
            return  # edits, joins, renames... and our own messages
        text = str(event.get("text", "")).lower()
        if "hello" in text:
            self.reply(event["channel"], f"Hello <@{event['user']}>! React to this message "
                                         "and I will count it.")
        elif "reactions" in text:
            self.reply(event["channel"], self.count())

    def count(self) -> str:
        """The reactions counted so far, as the bot says them."""
        with self.cond:
            counted = sum(self.reactions.values())
            detail = ", ".join(f":{name}: {n}" for name, n in self.reactions.items())
        return f"{counted} reactions so far: {detail or 'none'}"

    def on_slash_command(self, request: SocketModeRequest) -> None:
        """Answer ``/reactions`` in the acknowledgement's response payload."""
        # Socket Mode only. The response payload goes in the acknowledgement: Slack shows
        # it to the user who ran the command.
        if request.payload.get("command") == "/reactions":
            answer = {"text": self.count()}
            self.say(f"-> ack with a response payload: {answer['text']}")
            request.ack(answer)
            with self.cond:
                self.commands.append(request.envelope_id)
                self.cond.notify_all()

    def on_reaction_added(self, event: Dict[str, Any]) -> None:
        with self.cond:
            self.reactions[event["reaction"]] += 1
            self.cond.notify_all()

    def on_member_joined(self, event: Dict[str, Any]) -> None:
        self.reply(event["channel"], f"Welcome, <@{event['user']}>!")

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, STEP_TIMEOUT):
                raise CliError(f"demo: the bot did not {what} within {STEP_TIMEOUT:g} s")


class Stream:
    """Prints what the bot receives, and lets the script wait for an event type."""

    def __init__(self, console: Console, names: Names) -> None:
        self.console, self.names = console, names
        self.seen: List[str] = []
        self.seen_ts: Set[str] = set()
        self.cond = threading.Condition()

    def mentions(self, line: str) -> str:
        line = re.sub(r"<@(\w+)>", lambda m: "@" + self.names.user(m.group(1)), line)
        return re.sub(r"<#(\w+)>", lambda m: self.names.channel(m.group(1)), line)

    def say(self, line: str) -> None:
        self.console.out(self.mentions(line))

    def on_event(self, event_type: str, event: Dict[str, Any]) -> None:
        self.say("<- " + event_line(event, names=self.names, color=self.console.color_out,
                                       stamp=False))
        self._seen(event_type, event)

    def on_envelope(self, request: SocketModeRequest) -> None:
        """A Socket Mode envelope without an inner event (a slash command...)."""
        self.say("<- " + envelope_line(request.type, request.payload, names=self.names,
                                       color=self.console.color_out, stamp=False))
        self._seen(request.type, {})

    def _seen(self, event_type: str, event: Dict[str, Any]) -> None:
        with self.cond:
            self.seen.append(event_type)
            if event_type == "message":
                self.seen_ts.add(str(event.get("ts")))
            self.cond.notify_all()

    def lifecycle(self, name: str) -> Callable[[], None]:
        """A handler for the client's lifecycle event ``name``: printed as ``-- name``."""

        def handler() -> None:
            self.console.out(paint(f"-- {name}", "dim", self.console.color_out))
            with self.cond:
                self.seen.append(f"-- {name}")
                self.cond.notify_all()

        return handler

    def wait_for(self, event_type: str) -> None:
        """Wait until an event of that type (or ``-- name`` lifecycle event) was printed."""
        self._wait(lambda: event_type in self.seen, f"no {event_type} event")

    def wait_for_echo(self, ts: str) -> None:
        """Wait until the ``message`` event with that ``ts`` was printed."""
        self._wait(lambda: ts in self.seen_ts, f"the message {ts} never came back")

    def _wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, STEP_TIMEOUT):
                raise CliError(f"demo: {what} within {STEP_TIMEOUT:g} s")


def _connect(slack: FakeSlack,
             socket_mode: bool) -> Tuple[BaseClient, Post, str, Callable[[], Any]]:
    """The bot's client, how it posts (and what that is called), and its own user id."""
    if not socket_mode:
        rtm = RTMClient(slack.token, slack_api_url=slack.api_url)
        return (rtm, lambda channel, text: rtm.send_message(text, channel).result(STEP_TIMEOUT),
                "send_message", lambda: rtm.active_user_id)
    # Socket Mode: the app-level token receives; send_message posts with the bot token
    # (chat.postMessage), which is also the bot's WebClient for other calls.
    client = SocketModeClient(slack.app_token, bot_token=slack.token,
                              slack_api_url=slack.api_url)
    web = client.bot_web_client
    if web is None:  # cannot happen: it was given a bot token
        raise CliError("demo: the Socket Mode client has no bot token")
    me = web.auth.test()["user_id"]
    return (client,
            lambda channel, text: client.send_message(text, channel).result(STEP_TIMEOUT),
            "chat.postMessage", lambda: me)


def demo(args: argparse.Namespace, console: Console) -> int:
    """Run the scripted demo; 0 when every step happened."""
    from slackrtm.testing import FakeSlack

    socket_mode: bool = args.socket_mode
    over = "Socket Mode" if socket_mode else "RTM"

    def answered(count: int, what: str) -> Dict[str, Any]:
        """Wait for the bot's ``count``-th reply and its echo (keeps the output in order)."""
        bot.wait(lambda: len(bot.sent) >= count, what)
        reply = bot.sent[count - 1]
        stream.wait_for_echo(str(reply["ts"]))
        return reply

    def step(title: str) -> None:
        time.sleep(args.delay)  # pacing for human eyes only; waits below are on conditions
        console.out(paint(f"== {title}", "bold", console.color_out))

    with FakeSlack() as slack:
        console.out(f"Started FakeSlack, an offline Slack workspace, at {slack.api_url}")
        general = slack.channel_id("general")
        alice, bob, carol = (slack.user_id(n) for n in ("alice", "bob", "carol"))
        names = Names({u["id"]: u["name"] for u in slack.users},
                      {c["id"]: c["name"] for c in slack.channels})
        stream = Stream(console, names)
        client, post, how, me = _connect(slack, socket_mode)
        # registered first: printed before the bot acts
        client.on("slack_event", stream.on_event)
        client.on("slash_commands", stream.on_envelope)
        for name in ("connecting", "connected", "ready", "disconnecting", "disconnected"):
            client.on(name, stream.lifecycle(name))
        bot = DemoBot(client, stream.say, post, how, me)
        console.out(f"Connecting a bot to it over {over} (the code: slackrtm/_cli/demo.py)")
        with client:
            client.start().result(STEP_TIMEOUT)
            stream.wait_for("-- ready")  # the future resolves before the handlers have run
            if isinstance(client, RTMClient):
                # presence_change events come only for users the bot subscribed to
                client.subscribe_presence([alice, bob, carol]).result(STEP_TIMEOUT)
                slack.wait_until(lambda: all(carol in c.presence_subscriptions
                                             for c in slack.connections),
                                 timeout=STEP_TIMEOUT, what="the presence subscription")

            step("alice says hello in #general")
            slack.post_message(general, "hello bot!", user=alice)
            answer_ts = answered(1, "answer alice")["ts"]

            step("bob and carol react to the bot's answer")
            slack.add_reaction(general, answer_ts, "tada", user=bob)
            slack.add_reaction(general, answer_ts, "+1", user=carol)
            bot.wait(lambda: sum(bot.reactions.values()) >= 2, "count two reactions")

            step("dave joins the workspace, then #general")
            dave = slack.add_user("dave", real_name="Dave Dawson")
            names.users[dave] = "dave"
            slack.join_channel(dave, general)
            answered(2, "welcome dave")

            step("bob asks how many reactions there were")
            slack.post_message(general, "how many reactions so far?", user=bob)
            answered(3, "answer bob")

            if socket_mode:
                step("carol runs /reactions in #general")
                command = slack.slash_command("/reactions", user="carol", channel="general")
                bot.wait(lambda: command["envelope_id"] in bot.commands,
                         "answer the slash command")
                slack.wait_until(lambda: slack.acked(command["envelope_id"]),
                                 timeout=STEP_TIMEOUT, what="the slash command's ack")
                (ack,) = [a for a in slack.acks if a.envelope_id == command["envelope_id"]]
                console.out(f"   Slack got the ack; it shows carol: {ack.payload['text']}")

            step("alice renames #random to #watercooler")
            slack.rename_channel("random", "watercooler", user=alice)
            stream.wait_for("channel_rename")
            names.channels[slack.channel_id("watercooler")] = "watercooler"

            if not socket_mode:  # the Events API has no presence_change
                step("carol goes away")
                slack.set_presence(carol, "away")
                stream.wait_for("presence_change")
            time.sleep(args.delay)
        counted = ", ".join(f":{k}: {v}" for k, v in bot.reactions.items())
        events = [e for e in stream.seen if not e.startswith("-- ")]
        commands = f", answered {len(bot.commands)} slash command" if socket_mode else ""
        console.out(f"Demo over: the bot received {len(events)} events, sent "
                    f"{len(bot.sent)} messages{commands} and counted {counted}.")
    if socket_mode:
        console.out("Next: `python -m slackrtm fake-slack` to run your own bot offline, or "
                    "`SLACK_APP_TOKEN=xapp-... python -m slackrtm tail --socket-mode` to "
                    "watch a real app's events.")
    else:
        console.out("Next: `python -m slackrtm fake-slack` to run your own bot offline, or "
                    "`SLACK_TOKEN=xoxb-... python -m slackrtm tail` to watch a real "
                    "workspace.")
    return EXIT_OK
