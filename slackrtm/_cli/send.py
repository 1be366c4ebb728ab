"""``slackrtm send``: post one message and print the ``ts`` Slack gave it (with
``--split``, a long text as several messages: one ``ts`` per line).

Over RTM (the default) the bot token connects and the message goes over the socket. With
``--socket-mode`` a :class:`SocketModeClient` connects with the app-level token and sends
as it always does: ``chat.postMessage`` with the bot token it is given.
"""

from __future__ import annotations

import argparse
import concurrent.futures
from typing import Optional, Union

from slackrtm._cli.base import (
    AUTH_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Console,
    api_url_of,
    client_options,
    explain,
    load_token,
)
from slackrtm.client import RTMClient
from slackrtm.errors import PlatformError, SlackApiError, SlackRTMError
from slackrtm.socket_mode import SocketModeClient
from slackrtm.web import WebClient

#: Said when ``send --socket-mode`` has no bot token to post with.
NO_BOT_TOKEN = ("send --socket-mode posts with chat.postMessage, which needs the bot token "
                "(xoxb-..., the app's 'Bot User OAuth Token') besides the app-level token: "
                "set SLACK_TOKEN or pass --bot-token-file PATH")


def resolve_channel(web: WebClient, name: str) -> str:
    """The id of the channel called ``name`` (without ``#``), via conversations.list."""
    for page in web.conversations.list(types="public_channel,private_channel",
                                       exclude_archived=True, limit=1000):
        for channel in page["channels"]:
            if channel.get("name") == name:
                return str(channel["id"])
    raise CliError(f"no channel named #{name} is visible to this token")


def cmd_send(args: argparse.Namespace, console: Console) -> int:
    """Send ``args.text`` to ``args.channel``; print its ts."""
    if args.socket_mode:
        return _send_socket_mode(args, console)
    if args.bot_token_file is not None:
        raise CliError("--bot-token-file goes with --socket-mode: over RTM the one token "
                       "($SLACK_TOKEN or --token-file) connects and sends", EXIT_USAGE)
    token = load_token(args)
    console.secrets.append(token)
    api_url = api_url_of(args)
    timeout: float = args.timeout
    channel: str = args.channel
    try:
        if channel.startswith("#"):
            channel = resolve_channel(WebClient(token, base_url=api_url, timeout=timeout,
                                                max_retries=0),
                                      channel[1:])
        rtm = RTMClient(token, slack_api_url=api_url, auto_reconnect=False,
                        reply_timeout=timeout, hello_timeout=min(timeout, 10.0),
                        **client_options(args, console))
    except SlackRTMError as exc:
        raise CliError(explain(exc, api_url)) from None
    except (TypeError, ValueError) as exc:  # a token of the wrong kind: says what to use
        raise CliError(str(exc), EXIT_USAGE) from None
    return _connect_and_send(rtm, channel, args, console, api_url)


def _send_socket_mode(args: argparse.Namespace, console: Console) -> int:
    """Connect a SocketModeClient (app-level token) and send with its bot token."""
    if args.token_file == "-" and args.bot_token_file == "-":
        raise CliError("--token-file and --bot-token-file cannot both read stdin ('-'): "
                       "give one of them a file, or set its variable", EXIT_USAGE)
    app_token = load_token(args, "SLACK_APP_TOKEN")
    console.secrets.append(app_token)
    bot_token = load_token(args, "SLACK_TOKEN", option="--bot-token-file",
                           missing=NO_BOT_TOKEN)
    console.secrets.append(bot_token)
    if bot_token.startswith("xapp-"):
        raise CliError("the bot token ($SLACK_TOKEN or --bot-token-file) is an app-level "
                       "token (xapp-...), which cannot post: send --socket-mode connects "
                       "with the app-level token ($SLACK_APP_TOKEN or --token-file) and "
                       "posts with the bot token (xoxb-...)", EXIT_USAGE)
    api_url = api_url_of(args)
    timeout: float = args.timeout
    channel: str = args.channel
    try:
        client = SocketModeClient(app_token, bot_token=bot_token, slack_api_url=api_url,
                                  auto_reconnect=False, hello_timeout=min(timeout, 10.0),
                                  **client_options(args, console))
    except (TypeError, ValueError) as exc:  # a token of the wrong kind: says what to use
        raise CliError(str(exc), EXIT_USAGE) from None
    if channel.startswith("#"):  # looked up before connecting: a wrong name costs no socket
        try:
            channel = resolve_channel(WebClient(bot_token, base_url=api_url,
                                                timeout=timeout, max_retries=0),
                                      channel[1:])
        except SlackRTMError as exc:
            raise CliError(_explain_sm(exc, api_url, "bot token", looking_up=True)) from None
    return _connect_and_send(client, channel, args, console, api_url)


def _explain_sm(exc: BaseException, api_url: str, whose: str, looking_up: bool = False) -> str:
    """:func:`explain` for Socket Mode, saying which of the two tokens Slack rejected, and
    (unless ``looking_up`` a channel's name) that a refusal was chat.postMessage's."""
    if isinstance(exc, (PlatformError, SlackApiError)) and exc.error in AUTH_ERRORS \
            and exc.error != "not_allowed_token_type":
        return f"Slack rejected the {whose} ({exc.error})"
    if isinstance(exc, SlackApiError) and whose == "bot token" and not looking_up:
        return f"Slack refused the message: {exc.error}"
    return explain(exc, api_url, socket_mode=whose == "app-level token")


def _connect_and_send(client: Union[RTMClient, SocketModeClient], channel: str,
                      args: argparse.Namespace, console: Console, api_url: str) -> int:
    """Start ``client``, send the message (or its parts), print each ts, disconnect."""
    timeout: float = args.timeout
    socket_mode = isinstance(client, SocketModeClient)
    step = "connecting"
    whose: Optional[str] = None  # over Socket Mode: which token the current step uses
    try:
        with client:
            whose = "app-level token"
            client.start().result(timeout)
            step, whose = "the reply", "bot token"
            if not args.split:
                reply = client.send_message(args.text, channel, thread_ts=args.thread_ts
                                            ).result(timeout + 1.0)
                console.out(str(reply.get("ts")))
                return EXIT_OK
            futures = client.send_message(args.text, channel, thread_ts=args.thread_ts,
                                          split=True)
            for number, future in enumerate(futures, 1):
                step = f"the reply to part {number} of {len(futures)}"
                # the parts are paced as Slack asks (about one a second after a burst)
                console.out(str(future.result(timeout + number * 2.0).get("ts")))
    except concurrent.futures.TimeoutError:
        raise CliError(f"timed out after {timeout:g} s waiting for {step}") from None
    except SlackRTMError as exc:
        if socket_mode and whose is not None:
            raise CliError(_explain_sm(exc, api_url, whose)) from None
        raise CliError(explain(exc, api_url)) from None
    except (TypeError, ValueError) as exc:  # a bad channel or text: says what to use
        raise CliError(str(exc), EXIT_USAGE) from None
    return EXIT_OK
