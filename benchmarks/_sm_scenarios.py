"""Socket Mode scenarios of the benchmark worker: the acks check after a flood, and the
refresh-gap scenario (a paced flood across refreshes, lateness of every envelope)."""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, List, Optional

from _common import Control, TimedCounter, cpu_seconds, percentile

#: After each refresh, events scheduled up to this long after the first envelope routed to
#: the next connection still count as "across the refresh" (the refresh window).
WINDOW_TAIL = 0.25
MAX_LATE_SEQS = 5000


def acks(ctl: Control, expected: int, wait: float = 3.0) -> Dict[str, Any]:
    """Wait (up to ``wait`` s) until the server counted ``expected`` acks; its ack counts."""
    deadline = time.monotonic() + wait
    while True:
        stats = ctl("stats").get("sm", {})
        if stats.get("acked", 0) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return {"acked": stats.get("acked"), "unacked": expected - stats.get("acked", 0),
            "ack_dups": stats.get("ack_dups"), "ack_unknown": stats.get("ack_unknown"),
            "server_sent": stats.get("sent"), "connections_opened": stats.get("opened")}


def refresh(client: Any, ctl: Control, args: argparse.Namespace) -> Dict[str, Any]:
    """A paced flood (``args.pace``/s in batches every ``args.interval`` s) across
    ``args.refreshes`` refreshes; lateness = handled time - the schedule's send time."""
    n = args.events
    counter = TimedCounter(n, lock=getattr(client, "concurrent_handlers", False))
    params = {"n": n, "pace": args.pace, "interval": args.interval,
              "refreshes": args.refreshes, "every": args.refresh_every, "lead": args.lead,
              "warning": args.warning, "grace": args.grace}
    out: Dict[str, Any] = {"refreshes_asked": args.refreshes, "warning": args.warning,
                           "interval": args.interval, "pace": args.pace}
    cpu0 = cpu_seconds()
    try:
        client.consume(counter, args.timeout, lambda: ctl("flood", **params))
    except Exception as exc:  # a timeout or a client error: report what arrived
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    out.update(acks(ctl, n + 1))
    out.update(counter.result())
    out["cpu_s"] = cpu_seconds() - cpu0
    out.update(lateness(counter, args.interval, args.pace))
    return out


def lateness(counter: TimedCounter, interval: float, pace: float) -> Dict[str, Any]:
    """Lateness statistics, the refresh windows and the per-refresh gaps."""
    seen, handled, stamp = counter.seen, counter.handled, counter.stamp
    late_by = [handled[s] - stamp[s] for s in range(counter.n) if seen[s]]
    late_seqs = [s for s in range(counter.n) if seen[s] and handled[s] - stamp[s] > interval]
    sentinel = counter.sentinel or {}
    routes: List[List[Any]] = sentinel.get("routes", [])
    windows: List[List[int]] = []
    gaps: List[Optional[float]] = []
    switches: List[Optional[float]] = []
    for rec in sentinel.get("refreshes", []):
        if rec.get("skipped"):
            continue
        t_disc = float(rec["t_disconnect"])
        route = next((r for r in routes if r[0] >= rec["seq_at"] and r[1] != rec["old"]), None)
        if route is None:  # envelopes never moved to another connection
            switches.append(None)
            gaps.append(None)
            windows.append([rec["seq_at"], counter.n])
            continue
        first = int(route[0])
        switches.append(float(route[2]) - t_disc)
        gaps.append(handled[first] - t_disc if first < counter.n and seen[first] else None)
        windows.append([rec["seq_at"], min(counter.n, first + int(WINDOW_TAIL * pace))])
    in_windows = [handled[s] - stamp[s] for lo, hi in windows for s in range(lo, hi) if seen[s]]
    out: Dict[str, Any] = {
        "lat_p50_ms": percentile(late_by, 50) * 1e3, "lat_p99_ms": percentile(late_by, 99) * 1e3,
        "lat_max_ms": max(late_by, default=float("nan")) * 1e3,
        "late_count": len(late_seqs), "late_seqs": late_seqs[:MAX_LATE_SEQS],
        "windows": windows, "refreshes_done": len(windows),
        "win_p99_ms": percentile(in_windows, 99) * 1e3,
        "win_max_ms": max(in_windows, default=float("nan")) * 1e3,
        "late_in_windows": sum(1 for s in late_seqs if any(lo <= s < hi for lo, hi in windows)),
        "gaps_ms": [None if g is None else g * 1e3 for g in gaps],
        "switch_ms": [None if s is None else s * 1e3 for s in switches],
        "write_failed": sentinel.get("write_failed"),
    }
    return out
