"""Several copies of a bot, measured: the replica proof at full size, throughput of one to
three Socket Mode copies with the Redis filter against one with the in-process filter, and
the cost of a claim.

Usage: python benchmarks/replicas_proof.py [--events 10000] [--only proof,rtm,pace,throughput,claim]

Starts its own redis-server (no persistence, a free loopback port) and FakeSlack; each copy
is a process (benchmarks/replica_worker.py). Writes benchmarks/results/replicas-<commit>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import redis  # noqa: E402

from slackrtm.redis import RedisDedupe  # noqa: E402
from slackrtm.testing import FakeSlack  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.replica_procs import Replica, counts  # noqa: E402


def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def flush(url: str) -> None:
    r = redis.Redis.from_url(url)
    r.flushall()
    r.close()


def start(replicas: List[Replica]) -> None:
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.wait_for("ready", timeout=120)


def proof_sm(url: str, n: int) -> Dict[str, Any]:
    flush(url)
    with FakeSlack() as slack:
        slack.socket_routing = "round_robin"
        slack.duplicate_rate = 0.05
        slack.ack_timeout = 5.0
        slack.max_retries = 100
        replicas = [Replica("sm", f"r{i}", slack.api_url, slack.app_token, url, "--lease", "4")
                    for i in range(3)]
        try:
            start(replicas)
            began = time.monotonic()
            for i in range(n):
                slack.events_api({"type": "app_mention", "text": f"proof {i}"})
                if i == n // 2:
                    replicas[1].kill()
            restarted = Replica("sm", "r1b", slack.api_url, slack.app_token, url,
                                "--lease", "4")
            replicas.append(restarted)
            start([restarted])

            def all_acked() -> bool:
                events = {e["envelope_id"]: e["payload"]["event_id"]
                          for _, e in slack.delivered}
                return len({events.get(a.envelope_id) for a in slack.acks} - {None}) == n

            wait(all_acked, 900, "every event acknowledged")
            wait(lambda: sum(counts(url)["by"].values()) >= n, 120, "every event counted")
            elapsed = time.monotonic() - began
        finally:
            for replica in replicas:
                replica.stop()
        got = counts(url)
        retries = sum(1 for _, e in slack.delivered if e["retry_attempt"] > 0)
        return {"events": n, "handled": len(got["handled"]),
                "handled_twice": sum(1 for v in got["handled"].values() if v > 1),
                "lost": n - len(got["handled"]), "by_copy": got["by"],
                "deliveries": slack.delivered_count, "retries": retries,
                "seconds": round(elapsed, 1)}


def proof_rtm(url: str, n: int) -> Dict[str, Any]:
    flush(url)
    with FakeSlack() as slack:
        slack.message_rate = None
        replicas = [Replica("rtm", f"r{i}", slack.api_url, slack.token, url) for i in range(3)]
        try:
            start(replicas)
            began = time.monotonic()
            for i in range(n):
                slack.post_message("general", f"proof {i}")
            wait(lambda: sum(counts(url)["by"].values()) >= n
                 and len(counts(url)["received"]) == 3
                 and all(v >= n for v in counts(url)["received"].values()), 900,
                 "every event received and handled")
            elapsed = time.monotonic() - began
        finally:
            for replica in replicas:
                replica.stop()
        got = counts(url)
        return {"events": n, "handled": len(got["handled"]),
                "handled_twice": sum(1 for v in got["handled"].values() if v > 1),
                "received_by_copy": got["received"], "by_copy": got["by"],
                "seconds": round(elapsed, 1)}


def pace(url: str, sends: int) -> Dict[str, Any]:
    flush(url)
    with FakeSlack() as slack:
        slack.message_rate = (1.0, 4)
        slack.message_rate_scope = "channel"
        general = slack.channel_id("general")
        replicas = [Replica("send", f"s{i}", slack.api_url, slack.token, url, "--channel",
                            general, "--sends", str(sends)) for i in range(3)]
        try:
            start(replicas)
            began = time.monotonic()
            for replica in replicas:
                replica.wait_for("sent", timeout=900)
            elapsed = time.monotonic() - began
        finally:
            for replica in replicas:
                replica.stop()
        stored = [m for m in slack.messages("general") if " says " in m.get("text", "")]
        return {"copies": 3, "sends_each": sends, "stored": len(stored),
                "rate_limited": len(slack.rate_limited), "seconds": round(elapsed, 1),
                "messages_per_second": round(len(stored) / elapsed, 2)}


def throughput(url: str, copies: int, mode: str, n: int) -> Dict[str, Any]:
    flush(url)
    with FakeSlack() as slack:
        slack.socket_routing = "round_robin"
        replicas = [Replica(mode, f"t{i}", slack.api_url, slack.app_token, url)
                    for i in range(copies)]
        try:
            start(replicas)
            began = time.monotonic()
            for i in range(n):
                slack.events_api({"type": "app_mention", "text": f"t {i}"})
            posted = time.monotonic() - began
            wait(lambda: sum(counts(url)["by"].values()) >= n, 600, "every event handled")
            elapsed = time.monotonic() - began
        finally:
            for replica in replicas:
                replica.stop()
        return {"copies": copies, "filter": "redis" if mode == "sm-auto" else "in-process",
                "events": n, "seconds": round(elapsed, 2), "posting_seconds": round(posted, 2),
                "events_per_second": round(n / elapsed)}


def claim_cost(url: str, samples: int = 5000) -> Dict[str, Any]:
    flush(url)
    dedupe = RedisDedupe(url)
    single = []
    for i in range(samples):
        t = time.perf_counter()
        dedupe.claim(f"bench:{i}", 60.0)
        single.append(time.perf_counter() - t)
    batched = []
    for b in range(samples // 100):
        items = [(f"batch:{b}:{i}", 60.0) for i in range(100)]
        t = time.perf_counter()
        dedupe.claim_many(items)
        batched.append((time.perf_counter() - t) / 100)
    ms = 1000.0
    return {"claim_p50_ms": round(statistics.median(single) * ms, 4),
            "claim_p99_ms": round(sorted(single)[int(len(single) * 0.99)] * ms, 4),
            "claim_many_per_key_p50_ms": round(statistics.median(batched) * ms, 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--sends", type=int, default=30)
    parser.add_argument("--only", default="proof,rtm,pace,throughput,claim")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    server = RedisServer()
    server.start()
    results: Dict[str, Any] = {}
    try:
        if "claim" in parts:
            results["claim"] = claim_cost(server.url)
            print("claim", results["claim"], flush=True)
        if "throughput" in parts:
            rows = [throughput(server.url, 1, "sm-local", args.events)]
            rows += [throughput(server.url, k, "sm-auto", args.events) for k in (1, 2, 3)]
            results["throughput"] = rows
            for row in rows:
                print("throughput", row, flush=True)
        if "proof" in parts:
            results["proof_socket_mode"] = proof_sm(server.url, args.events)
            print("proof socket mode", results["proof_socket_mode"], flush=True)
        if "rtm" in parts:
            results["proof_rtm"] = proof_rtm(server.url, args.events)
            print("proof rtm", results["proof_rtm"], flush=True)
        if "pace" in parts:
            results["pacing"] = pace(server.url, args.sends)
            print("pacing", results["pacing"], flush=True)
    finally:
        server.stop()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    path = os.path.join(ROOT, "benchmarks", "results", f"replicas-{commit}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"commit": commit, "cpus": os.cpu_count(), **results}, fh, indent=2)
    print("written", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
