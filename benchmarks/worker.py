"""Run one scenario for one client against a running flood server; print one JSON line.

Started by run.py, one process per (client, scenario), so that a crash or a hang of a
client ends only its own measurement. The last stdout line is ``RESULT {json}``.

    python worker.py --client slackrtm --scenario inbound --api-url http://127.0.0.1:PORT/api/
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the checkout goes last: run.py --commit REV puts an export of REV on PYTHONPATH, which
# must win (inserted first, the working tree was measured whatever --commit said)
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import Control, Counter, cpu_seconds, percentile, rss_mb, thread_cpu
from _loops import RawLoop, SlackClient1, WSBare, WSCeiling
from _sm_clients import RawLoopSM, SlackRTMSM, SlackSDKSM, WSBareSM, WSCeilingSM
from _sm_scenarios import acks, refresh
from _threaded import SlackRTM, SlackSDKv2

ADAPTERS: Dict[str, Any] = {a.name: a for a in
                            (WSBare, WSCeiling, RawLoop, SlackRTM, SlackSDKv2, SlackClient1,
                             SlackRTMSM, SlackSDKSM, WSBareSM, WSCeilingSM, RawLoopSM)}
IMPORTS = {"ws-bare": "websocket", "ws-ceiling": "websocket", "raw-loop": "websocket",
           "slackrtm": "slackrtm", "slack_sdk": "slack_sdk.rtm_v2", "slackclient1": "slackclient",
           "slackrtm-sm": "slackrtm", "slack_sdk-sm": "slack_sdk.socket_mode",
           "ws-bare-sm": "websocket", "ws-ceiling-sm": "websocket", "raw-loop-sm": "websocket"}
KEEPALIVE = (1.0, 0.5)  # ping after 1 s of silence, pong due within 0.5 s (where supported)
TEXT = "benchmark send " + "x" * 100


def inbound(client: Any, ctl: Control, args: argparse.Namespace) -> Dict[str, Any]:
    counter = Counter(args.events, lock=getattr(client, "concurrent_handlers", False))
    cpu0 = cpu_seconds()
    out: Dict[str, Any] = {}
    try:
        flood: Dict[str, Any] = {"n": args.events, "pace": args.pace}
        if getattr(client, "socket_mode", False):
            flood["envelope"] = args.envelope
        client.consume(counter, args.timeout, lambda: ctl("flood", **flood))
    except Exception as exc:  # a timeout or a client error: report what arrived
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    if getattr(client, "concurrent_handlers", False) or isinstance(client, SlackRTM):
        time.sleep(0.5)  # late duplicates still count
    if getattr(client, "socket_mode", False):
        out.update(acks(ctl, args.events + 1))
    out.update(counter.result())
    out["cpu_s"] = cpu_seconds() - cpu0
    out["cpu_us_per_event"] = out["cpu_s"] / max(1, out["unique"]) * 1e6
    out["pace"] = args.pace
    if getattr(client, "socket_mode", False):
        out["envelope"] = args.envelope
    return out


def send(client: Any, ctl: Control, args: argparse.Namespace) -> Dict[str, Any]:
    for i in range(50):  # warm-up
        client.request(i + 1, TEXT, args.timeout)
    lat: List[float] = []
    for i in range(args.sends):
        t0 = time.perf_counter()
        reply = client.request(i + 100, TEXT, args.timeout)
        lat.append(time.perf_counter() - t0)
        if not reply.get("ok") or reply.get("text") != TEXT:
            raise RuntimeError(f"bad reply {reply!r}")
    return {"sends": len(lat), "p50_ms": percentile(lat, 50) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3, "mean_ms": sum(lat) / len(lat) * 1e3}


def sendpair(client: Any, ctl: Control, args: argparse.Namespace) -> Dict[str, Any]:
    """Sequential sends of the client and of the bare loop, interleaved in blocks of 100
    in this one process, so both see the same moments of a noisy machine."""
    ref = WSBare()
    ref.connect(args.api_url, f"xoxb-bench-{args.tag}ref", None)
    ids = iter(range(1, 10**9))
    for _ in range(50):
        client.request(next(ids), TEXT, args.timeout)
        ref.request(next(ids), TEXT, args.timeout)
    lat: Dict[str, List[float]] = {"client": [], "ref": []}
    for k in range(max(2, args.sends // 100)):
        order = (("client", client), ("ref", ref)) if k % 2 == 0 else \
            (("ref", ref), ("client", client))
        for key, who in order:
            for _ in range(100):
                t0 = time.perf_counter()
                who.request(next(ids), TEXT, args.timeout)
                lat[key].append(time.perf_counter() - t0)
    ref.close()
    p50, ref50 = percentile(lat["client"], 50), percentile(lat["ref"], 50)
    return {"sends": len(lat["client"]), "p50_ms": p50 * 1e3, "ref_p50_ms": ref50 * 1e3,
            "p99_ms": percentile(lat["client"], 99) * 1e3,
            "ref_p99_ms": percentile(lat["ref"], 99) * 1e3, "ratio": p50 / ref50}


def sendmt(client: Any, ctl: Control, args: argparse.Namespace) -> Dict[str, Any]:
    threads, total = 8, args.mt_sends
    barrier = threading.Barrier(threads + 1)
    errors: List[str] = []
    ts: List[str] = []

    failures: Dict[str, int] = {}

    def worker(k: int) -> None:
        barrier.wait()
        futures = [client.submit(f"t{k} m{i}") for i in range(total // threads)]
        deadline = time.monotonic() + args.timeout
        for i, fut in enumerate(futures):
            try:
                reply = fut.result(max(0.0, deadline - time.monotonic()))
            except BaseException as exc:  # a timeout here: the future is still pending
                name = type(exc).__name__
                failures[name] = failures.get(name, 0) + 1
                continue
            if reply.get("text") != f"t{k} m{i}":
                errors.append(repr(reply))
            ts.append(reply["ts"])

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    out: Dict[str, Any] = {"sends": len(ts), "threads": threads, "seconds": elapsed,
                           "sends_per_s": len(ts) / elapsed, "bad_replies": len(errors),
                           "unique_ts": len(set(ts)), "failures": failures}
    if failures or len(ts) != total // threads * threads:
        out["error"] = f"{total - len(ts)} of {total} sends not answered: {failures}"
        out["server_received"] = ctl("stats").get("received")
    return out


def _until(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def reconnect(client: Any, ctl: Control, args: argparse.Namespace) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    time.sleep(0.3)
    t0, cpu0 = time.time(), cpu_seconds()
    ctl("drop")
    ok = client.wait_hello(2, args.timeout)
    out["drop_to_ready_s"] = time.time() - t0 if ok else None
    out["drop_cpu_s"] = cpu_seconds() - cpu0  # CPU burnt while reconnecting
    if not ok:
        return out
    time.sleep(0.5)
    if hasattr(client, "alive"):
        client.hellos.lost_at = None
    t0 = time.time()
    ctl("halfopen")
    if not hasattr(client, "alive"):  # no keep-alive at all: it can only wait
        ok = client.wait_hello(3, args.no_keepalive_wait)
        out["halfopen_to_ready_s"] = time.time() - t0 if ok else None
        return out
    lost = _until(lambda: client.hellos.lost_at is not None or not client.alive(), args.timeout)
    t_lost = client.hellos.lost_at or time.time()
    out["halfopen_detect_s"] = t_lost - t0 if lost else None
    ok = client.wait_hello(3, args.timeout)
    out["halfopen_to_ready_s"] = time.time() - t0 if ok else None
    return out


def idle(client: Any, ctl: Control, args: argparse.Namespace) -> Dict[str, Any]:
    time.sleep(1.0)
    t0, cpu0 = time.monotonic(), cpu_seconds()
    client.idle(args.idle)
    elapsed, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    return {"seconds": elapsed, "cpu_s": cpu, "cpu_pct": cpu / elapsed * 100.0,
            "threads": threading.active_count()}


def memory(client: Any, ctl: Control, args: argparse.Namespace) -> Dict[str, Any]:
    def flood(n: int) -> Dict[str, Any]:
        counter = Counter(n, lock=getattr(client, "concurrent_handlers", False))
        client.consume(counter, args.timeout, lambda: ctl("flood", n=n, pace=args.pace))
        return counter.result()

    gc.collect()
    out: Dict[str, Any] = {"rss_connect_mb": rss_mb()}
    warm = flood(args.warm_events)
    gc.collect()
    out["rss_warm_mb"] = rss_mb()
    big = flood(args.mem_events)
    time.sleep(0.5)
    gc.collect()
    out["rss_end_mb"] = rss_mb()
    out["growth_mb"] = out["rss_end_mb"] - out["rss_connect_mb"]
    out["growth_after_warm_mb"] = out["rss_end_mb"] - out["rss_warm_mb"]
    out["peak_mb"] = __import__("resource").getrusage(0).ru_maxrss / 1024.0
    out["events"] = args.mem_events
    out["lost"] = warm["lost"] + big["lost"]
    out["dups"] = warm["dups"] + big["dups"]
    out["eps"] = big.get("eps")
    return out


SCENARIOS: Dict[str, Callable[[Any, Control, argparse.Namespace], Dict[str, Any]]] = {
    "inbound": inbound, "send": send, "sendpair": sendpair, "sendmt": sendmt,
    "reconnect": reconnect, "idle": idle, "memory": memory, "refresh": refresh,
}


def _profile_all_threads(path: str) -> Callable[[], None]:
    """cProfile every thread (the client's own included); return a function that saves."""
    import pstats

    profiles: List[cProfile.Profile] = []

    def start(*_: Any) -> None:
        sys.setprofile(None)
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()

    threading.setprofile(start)
    main = cProfile.Profile()
    profiles.append(main)
    main.enable()

    def save() -> None:
        main.disable()
        stats = pstats.Stats(main)
        for prof in profiles[1:]:
            stats.add(prof)
        stats.dump_stats(path)

    return save


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--client", required=True, choices=sorted(ADAPTERS))
    p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    p.add_argument("--api-url", required=True)
    p.add_argument("--tag", default=str(os.getpid()))
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--pace", type=float, default=0.0)
    p.add_argument("--sends", type=int, default=2000)
    p.add_argument("--mt-sends", type=int, default=10_000)
    p.add_argument("--mem-events", type=int, default=1_000_000)
    p.add_argument("--warm-events", type=int, default=100_000)
    p.add_argument("--no-keepalive-wait", type=float, default=10.0,
                   help="how long to wait for a client without keep-alive to notice half-open")
    p.add_argument("--idle", type=float, default=30.0)
    p.add_argument("--interval", type=float, default=0.005, help="paced flood batch interval")
    p.add_argument("--refreshes", type=int, default=0)
    p.add_argument("--refresh-every", type=float, default=0.5)
    p.add_argument("--lead", type=float, default=1.0, help="seconds of flood before refreshes")
    p.add_argument("--warning", type=float, default=0.0,
                   help="send disconnect 'warning' this long before 'refresh_requested'")
    p.add_argument("--grace", type=float, default=1.0,
                   help="seconds from 'refresh_requested' to the server closing the connection")
    p.add_argument("--envelope", default="small", choices=("small", "realistic"),
                   help="Socket Mode floods: ~1 KB envelopes, or realistic ones (~1.9 KB,"
                        " rich_text blocks, authorizations, event_context)")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--cprofile", help="write a cProfile of all threads to this file")
    args = p.parse_args(argv)

    client = ADAPTERS[args.client]()
    scenario = SCENARIOS[args.scenario]
    if scenario in (sendmt,) and "sendmt" not in client.features:
        raise SystemExit(f"{args.client} does not support {args.scenario}")
    keepalive = KEEPALIVE if args.scenario == "reconnect" else None
    ctl = Control(args.api_url, args.tag)
    token = f"{getattr(client, 'token_prefix', 'xoxb')}-bench-{args.tag}"
    importlib.import_module(IMPORTS[args.client])  # ready_s excludes the import (timed apart)
    # the client's threads start in connect(): profiling must be armed before it
    save = _profile_all_threads(args.cprofile) if args.cprofile else None
    t0 = time.perf_counter()
    client.connect(args.api_url, token, keepalive)
    result: Dict[str, Any] = {"ready_s": time.perf_counter() - t0, "timeout": args.timeout}
    before = thread_cpu()
    result.update(scenario(client, ctl, args))
    if save is not None:
        save()
    result["thread_cpu_s"] = {name: round(cpu - before.get(name, 0.0), 3)
                              for name, cpu in thread_cpu().items()
                              if cpu - before.get(name, 0.0) > 0}
    result["rss_mb"] = rss_mb()
    module = sys.modules.get(IMPORTS[args.client].split(".")[0])
    result["imported_from"] = os.path.dirname(getattr(module, "__file__", None) or "?")
    print("RESULT " + json.dumps(result), flush=True)
    closer = threading.Thread(target=client.close, daemon=True)
    closer.start()
    closer.join(1.0)
    os._exit(0)  # a client thread that does not stop must not hang the harness


if __name__ == "__main__":
    main()
