"""Hand each event to a job queue (RQ, on the same Redis), for handlers slower than a
second or that need retries; acknowledge the envelope only once its job is stored.

Usage: SLACK_APP_TOKEN=xapp-... REDIS_URL=redis://localhost:6379/0 python examples/enqueue_rq.py
(run as many copies as you like; Ctrl-C to stop each)

Workers run the jobs (they post with SLACK_TOKEN=xoxb-...), one per queue so that each
channel's events are handled in order:
    cd examples && rq worker --url $REDIS_URL slack-0    # and slack-1, slack-2, slack-3

Why the ack comes after the enqueue: with ack="manual", an envelope is acknowledged only
once its job is in Redis, so a copy that dies before that leaves the envelope to Slack's
retry, which another copy handles. The job and the claim of the shared duplicate filter
are written in one transaction, so a retry of an event whose job is stored is dropped:
every event becomes exactly one job, whichever copy dies when.
"""

from __future__ import annotations

import os
import re
import sys
import zlib
from typing import Any, Dict, List

from redis import Redis
from rq import Queue

from slackrtm import SocketModeClient, SocketModeRequest, WebClient
from slackrtm.redis import RedisDedupe

#: Each channel always goes to the same one of K queues: one worker per queue keeps the
#: channel's order; K queues let K workers run at once.
K = 4


def handle_event(event: Dict[str, Any]) -> None:
    """The job, run by an RQ worker: the slow part of the bot."""
    if event.get("type") == "message" and not event.get("subtype") \
            and "report" in str(event.get("text", "")):
        web = WebClient(os.environ["SLACK_TOKEN"])
        web.chat.postMessage(channel=event["channel"], text=f"report for <@{event['user']}>",
                             thread_ts=event["ts"])


def channel_of(event: Dict[str, Any]) -> str:
    item = event.get("item")
    channel = event.get("channel") or (item.get("channel") if isinstance(item, dict) else "")
    return channel if isinstance(channel, str) else ""


def main() -> None:
    app_token, url = os.environ.get("SLACK_APP_TOKEN"), os.environ.get("REDIS_URL")
    if not app_token or not url:
        print(f"usage: SLACK_APP_TOKEN=xapp-... REDIS_URL=redis://... python {sys.argv[0]}",
              file=sys.stderr)
        sys.exit(2)
    redis = Redis.from_url(url)
    queues: List[Queue] = [Queue(f"slack-{i}", connection=redis) for i in range(K)]
    dedupe = RedisDedupe(redis)
    client = SocketModeClient(app_token, ack="manual", dedupe=dedupe)

    @client.on("events_api")
    def enqueue(request: SocketModeRequest) -> None:
        event = request.event
        if event is None:
            request.ack()
            return
        queue = queues[zlib.crc32(channel_of(event).encode()) % K]
        with redis.pipeline(transaction=True) as pipe:  # MULTI ... EXEC: both or neither
            queue.enqueue_call("enqueue_rq.handle_event", args=(event,), pipeline=pipe,
                               job_id=re.sub(r"[^\w-]", "-", request.dedupe_key))
            dedupe.settle(request.dedupe_key, pipeline=pipe)
            pipe.execute()
        request.ack()  # only now: the job is stored

    @client.on("ready")
    def on_ready() -> None:
        print(f"Queueing events to {K} RQ queues. Press Ctrl-C to stop.")

    client.run_forever()


if __name__ == "__main__":  # RQ workers import this file for handle_event
    main()
