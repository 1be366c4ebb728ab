"""``slackrtm send``: post one message over RTM and print the ``ts`` Slack gave it (with
``--split``, a long text as several messages: one ``ts`` per line)."""

from __future__ import annotations

import argparse
import concurrent.futures

from slackrtm._cli.base import (
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
from slackrtm.errors import SlackRTMError
from slackrtm.web import WebClient


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
        raise CliError("Socket Mode cannot send messages: post with the Web API "
                       "(chat.postMessage) and a bot token instead", EXIT_USAGE)
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
        with rtm:
            step = "connecting"
            rtm.start().result(timeout)
            step = "the reply"
            if not args.split:
                reply = rtm.send_message(args.text, channel, thread_ts=args.thread_ts).result(
                    timeout + 1.0)
                console.out(str(reply.get("ts")))
                return EXIT_OK
            futures = rtm.send_message(args.text, channel, thread_ts=args.thread_ts,
                                       split=True)
            for number, future in enumerate(futures, 1):
                step = f"the reply to part {number} of {len(futures)}"
                # the parts are paced as Slack asks (about one a second after a burst)
                console.out(str(future.result(timeout + number * 2.0).get("ts")))
    except concurrent.futures.TimeoutError:
        raise CliError(f"timed out after {timeout:g} s waiting for {step}") from None
    except SlackRTMError as exc:
        raise CliError(explain(exc, api_url)) from None
    except (TypeError, ValueError) as exc:  # a token of the wrong kind: says what to use
        raise CliError(str(exc), EXIT_USAGE) from None
    return EXIT_OK
