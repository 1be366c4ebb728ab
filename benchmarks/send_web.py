"""Send round trip through the Web API: ``SocketModeClient.send_message`` against
``slack_sdk``'s ``WebClient.chat_postMessage`` (and slackrtm's own ``WebClient`` as the
reference of a bare keep-alive call), on the same FakeSlack.

    PYTHONPATH=$PWD python benchmarks/send_web.py [--sends 1000] [--rounds 5]

FakeSlack runs in a process of its own (its CPU never shares the clients' GIL), with its
per-channel pace off; the clients run in this process, one after the other in blocks of
100 sequential sends (each waits for its answer), rotating the order every round, so a
noisy moment of the machine hits every client alike. ``send_rate=None``: pacing off.
Prints p50 / p99 per client and the p50 ratios (per round, then their median).

Needs the ``bench`` extra (``pip install slack_sdk psutil``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

SERVER = r"""
import json, sys
from slackrtm.testing import FakeSlack
with FakeSlack() as slack:
    slack.message_rate = None
    print(json.dumps({"api_url": slack.api_url, "token": slack.token,
                      "app_token": slack.app_token,
                      "channel": slack.channel_id("general")}), flush=True)
    sys.stdin.read()
"""

BLOCK = 100


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=1000, help="sends per client and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the per-round percentiles here")
    args = parser.parse_args()

    import psutil
    from slack_sdk import WebClient as SdkWebClient
    from slack_sdk.version import __version__ as sdk_version

    from slackrtm import SocketModeClient, WebClient

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        channel = info["channel"]
        sm = SocketModeClient(info["app_token"], bot_token=info["token"],
                              slack_api_url=info["api_url"], send_rate=None)
        sm.start().result(timeout=30)
        sdk = SdkWebClient(token=info["token"], base_url=info["api_url"])
        ours = WebClient(info["token"], base_url=info["api_url"])
        clients: Dict[str, Callable[[str], object]] = {
            "SocketModeClient.send_message": lambda t: sm.send_message(t, channel).result(30),
            "slack_sdk WebClient.chat_postMessage":
                lambda t: sdk.chat_postMessage(channel=channel, text=t),
            "slackrtm WebClient.chat.postMessage (reference)":
                lambda t: ours.chat.postMessage(channel=channel, text=t),
        }
        for send in clients.values():  # warm-up: connections, caches
            for i in range(50):
                send(f"warm-up {i}")
        times: Dict[str, List[List[float]]] = {name: [] for name in clients}
        names = list(clients)
        load = os.getloadavg()[0]
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            per_round: Dict[str, List[float]] = {name: [] for name in names}
            for _ in range(0, args.sends, BLOCK):
                for name in order:
                    send = clients[name]
                    for i in range(BLOCK):
                        t0 = time.perf_counter()
                        send(f"round {r} message {i}")
                        per_round[name].append(time.perf_counter() - t0)
            for name in names:
                times[name].append(per_round[name])
        sm.disconnect()
        ours.close()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)
    print(f"send round trip through the Web API, {args.rounds} rounds x {args.sends} "
          f"sends per client (pacing off), load average {load:.1f} at the start, "
          f"slack_sdk {sdk_version}, {psutil.cpu_count()} cores")
    print(f"{'client':52} {'p50 ms':>8} {'p99 ms':>8}")
    summary: Dict[str, Dict[str, float]] = {}
    for name in names:
        flat = [t for rnd in times[name] for t in rnd]
        summary[name] = {"p50": percentile(flat, 0.5) * 1e3, "p99": percentile(flat, 0.99) * 1e3}
        print(f"{name:52} {summary[name]['p50']:8.3f} {summary[name]['p99']:8.3f}")
    sm_name, sdk_name, ref_name = names
    for other in (sdk_name, ref_name):
        ratios = [percentile(a, 0.5) / percentile(b, 0.5)
                  for a, b in zip(times[sm_name], times[other])]
        print(f"p50 ratio send_message / {other.split(' (')[0]}: median "
              f"{statistics.median(ratios):.2f}x (rounds: "
              f"{', '.join(f'{x:.2f}' for x in ratios)})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"summary": summary, "load": load, "rounds": {
                name: [{"p50": percentile(rnd, 0.5) * 1e3, "p99": percentile(rnd, 0.99) * 1e3,
                        "n": len(rnd)} for rnd in times[name]] for name in names}}, out,
                      indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
