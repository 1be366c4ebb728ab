"""``slackrtm fake-slack post|react|slash``: drive a running FakeSlack from a script.

The verbs call the fake's control endpoint (``/_control/<action>`` on the port of
``$SLACK_API_URL``, loopback only) with the admin token ``fake-slack`` printed as
``$SLACK_FAKE_ADMIN_TOKEN``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from typing import Any, Dict
from urllib.parse import urlsplit

import requests

from slackrtm._cli.base import EXIT_OK, EXIT_USAGE, CliError, Console

#: The variable that carries the fake's admin token (printed by ``fake-slack``).
ADMIN_VARIABLE = "SLACK_FAKE_ADMIN_TOKEN"


def control_base() -> str:
    """``http://127.0.0.1:PORT`` from ``$SLACK_API_URL``; a usage error unless loopback."""
    url = os.environ.get("SLACK_API_URL", "").strip()
    if not url:
        raise CliError("no fake to talk to: set SLACK_API_URL as `python -m slackrtm "
                       "fake-slack` printed", EXIT_USAGE)
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback or parts.port is None:
        raise CliError(f"SLACK_API_URL must be a FakeSlack's loopback address such as "
                       f"http://127.0.0.1:PORT/api/, got {url!r}", EXIT_USAGE)
    return f"{parts.scheme}://{parts.netloc}"


def call(action: str, params: Dict[str, Any], timeout: float = 30.0) -> Dict[str, Any]:
    """POST ``params`` to the fake's ``/_control/<action>``; its answer, or CliError."""
    token = os.environ.get(ADMIN_VARIABLE, "").strip()
    if not token:
        raise CliError(f"no admin token: set {ADMIN_VARIABLE} as `python -m slackrtm "
                       "fake-slack` printed", EXIT_USAGE)
    base = control_base()
    with requests.Session() as http:
        http.trust_env = False  # loopback: no proxy from the environment
        try:
            answer = http.post(f"{base}/_control/{action}", json=params, timeout=timeout,
                               headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            reason = str(exc.__class__.__name__)
            raise CliError(f"cannot reach a FakeSlack at {base} ({reason}): is `python -m "
                           "slackrtm fake-slack` running?") from None
    try:
        data = answer.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if answer.status_code == 401:
        raise CliError(f"the FakeSlack at {base} refused {ADMIN_VARIABLE}: take it from "
                       "the fake-slack that serves SLACK_API_URL")
    if answer.status_code == 404 and not data:
        raise CliError(f"{base} has no control endpoint: is it a `python -m slackrtm "
                       "fake-slack`?")
    if not data.get("ok"):
        raise CliError(f"{action}: {data.get('error') or f'HTTP {answer.status_code}'}")
    return data


def cmd_verb(args: argparse.Namespace, console: Console) -> int:
    """Run ``fake-slack <verb>`` and print its result."""
    verb: str = args.verb
    if verb == "post":
        params: Dict[str, Any] = {"as": args.as_user, "channel": args.channel,
                                  "text": args.text}
        if args.thread_ts:
            params["thread_ts"] = args.thread_ts
        console.out(str(call("post", params)["ts"]))
    elif verb == "react":
        call("react", {"as": args.as_user, "channel": args.channel, "ts": args.ts,
                       "name": args.name, "remove": args.remove})
    else:
        answer = call("slash", {"as": args.as_user, "channel": args.channel,
                                "command": args.command, "text": " ".join(args.text)})
        console.out(str(answer["envelope_id"]))
        if not answer.get("socket_mode"):
            console.note("no Socket Mode connection is open: the command waits for one")
    return EXIT_OK
