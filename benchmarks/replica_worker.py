"""One copy of a bot, as a process of its own, for the replica proof and benchmark
(``replicas_proof.py``, ``tests/test_replicas_proof.py``).

It connects to a FakeSlack, filters duplicates through Redis, and counts in Redis what
its handlers handled: ``<run>:handled`` (a hash: event key -> times handled) and
``<run>:by`` (copy name -> count). It prints ``ready`` once connected and runs until
SIGTERM (or SIGKILL, on purpose). Modes:

- ``sm``: a SocketModeClient with ``ack="manual"``; each handler counts and settles the
  claim in one Redis transaction, then acknowledges, so a copy killed at any moment
  leaves nothing half done.
- ``sm-auto``: the same with the default ``ack="auto"`` and a plain count (throughput).
- ``sm-local``: ``sm-auto`` with the in-process filter only (the baseline).
- ``rtm``: an RTMClient; every copy receives every message, one handles each.
- ``send``: an RTMClient that sends ``--sends`` messages to ``--channel`` with pacing
  shared through Redis, prints ``sent`` when all were answered, then waits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis

from slackrtm import Backoff, RTMClient, SendRate, SocketModeClient
from slackrtm.redis import RedisDedupe, RedisRate

FAST = dict(client_ping_timeout=5.0, server_pong_timeout=2.5, hello_timeout=10.0,
            backoff=Backoff(initial=0.0, base=0.05, maximum=0.5), max_backlog=200)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["sm", "sm-auto", "sm-local", "rtm", "send"])
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--run", default="proof")
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--channel", default="")
    parser.add_argument("--sends", type=int, default=0)
    parser.add_argument("--no-share", action="store_true", help="send: pace locally only")
    args = parser.parse_args()
    r = redis.Redis.from_url(args.redis)
    handled, by = f"{args.run}:handled", f"{args.run}:by"
    client: Any
    if args.mode in ("sm", "sm-auto", "sm-local"):
        dedupe = None if args.mode == "sm-local" else RedisDedupe(r, lease=args.lease)
        client = SocketModeClient(args.token, slack_api_url=args.api_url, dedupe=dedupe,
                                  ack="manual" if args.mode == "sm" else "auto", **FAST)

        @client.on("events_api")
        def on_envelope(request: Any) -> None:
            key = request.dedupe_key
            if args.mode == "sm":
                with r.pipeline(transaction=True) as pipe:
                    pipe.hincrby(handled, key, 1)
                    pipe.hincrby(by, args.name, 1)
                    assert dedupe is not None
                    dedupe.settle(key, pipeline=pipe)
                    pipe.execute()
                request.ack()
            else:
                with r.pipeline(transaction=False) as pipe:
                    pipe.hincrby(handled, key, 1)
                    pipe.hincrby(by, args.name, 1)
                    pipe.execute()
    else:
        shared = RedisRate(r) if args.mode == "send" and not args.no_share else None
        client = RTMClient(args.token, slack_api_url=args.api_url,
                           dedupe=RedisDedupe(r) if args.mode == "rtm" else None,
                           send_rate=SendRate(1.0, 3, shared=shared), reply_timeout=120.0,
                           **FAST)

        if args.mode == "rtm":
            @client.on("raw_message")
            def on_raw(text: str) -> None:  # every copy receives every event
                if '"proof ' in text:
                    r.hincrby(f"{args.run}:received", args.name, 1)

            @client.on("message")
            def on_message(event: Any) -> None:
                if event.get("subtype") is None and "proof" in str(event.get("text")):
                    with r.pipeline(transaction=False) as pipe:
                        pipe.hincrby(handled, f"{event['channel']}:{event['ts']}", 1)
                        pipe.hincrby(by, args.name, 1)
                        pipe.execute()

    client.start().result(timeout=60)
    print("ready", flush=True)
    if args.mode == "send":
        futures = [client.send_message(f"{args.name} says {i}", args.channel)
                   for i in range(args.sends)]
        failed = 0
        for future in futures:
            try:
                future.result(timeout=300)
            except Exception as exc:
                failed += 1
                print(f"send failed: {exc}", file=sys.stderr, flush=True)
        print(f"sent {len(futures) - failed} failed {failed}", flush=True)
    try:
        client.run_forever()
    finally:
        client.disconnect()
        time.sleep(0)


if __name__ == "__main__":
    main()
