"""Connect through a proxy (both the rtm.connect call and the WebSocket).

Usage: SLACK_TOKEN=xoxb-... SLACK_PROXY=http://proxy.example.com:3128 python examples/proxy.py
(or SLACK_PROXY=socks5h://proxy.example.com:1080, with pip install 'slackrtm[socks]')
"""

from __future__ import annotations

import os
import sys

from slackrtm import RTMClient

token = os.environ.get("SLACK_TOKEN")
if not token:
    print(f"usage: SLACK_TOKEN=xoxb-... python {sys.argv[0]}", file=sys.stderr)
    sys.exit(2)

# A proxy URL often holds a password: read it from the environment, never print it.
# http://, socks5:// and socks5h:// proxies are supported: scheme://[user:password@]host:port.
# An HTTP proxy tunnels both HTTPS and the WebSocket with CONNECT.
proxy = os.environ.get("SLACK_PROXY")

# With proxy=None both legs follow HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY from the
# environment, like `requests` does. An explicit proxy is used for every host, NO_PROXY
# notwithstanding.
with RTMClient(token, proxy=proxy) as rtm:
    connect_data = rtm.start().result(timeout=30)
    via = "through SLACK_PROXY" if proxy else "directly (or via HTTPS_PROXY)"
    print(f"Connected {via} as {connect_data['self']['name']} "
          f"to {connect_data['team'].get('name', connect_data['team']['id'])}")
