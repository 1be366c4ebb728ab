"""The Socket Mode part of the report: inbound envelopes, acks, refresh gaps, targets."""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional

SM_US, SM_FLOOR, SM_CEILING, RTM_US = "slackrtm-sm", "ws-bare-sm", "ws-ceiling-sm", "slackrtm"
SM_RAW = "raw-loop-sm"
SIZES = {"small": "~1 KB", "realistic": "realistic, ~1.9 KB: rich_text blocks, authorizations,"
         " event_context"}
Run = Dict[str, Any]


def _fmt(value: Optional[float], spec: str = "{:,.0f}", none: str = "n/a") -> str:
    return none if value is None else spec.format(value)


def _median(values: List[Any]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def variant(r: Run) -> str:
    opts = r["opts"]
    if not opts.get("refreshes"):
        return "no refresh (baseline)"
    if opts.get("warning"):
        return f"{opts['refreshes']} x warning, {opts['warning']:g} s later refresh_requested"
    return f"{opts['refreshes']} x refresh_requested"


def excess(res: Any, r: Run) -> Optional[int]:
    """Late events in this run's refresh windows minus the late events of the same
    client's baseline run of the same round at the same sequence numbers."""
    base = [b for b in res.select(r["client"], "refresh") if b["round"] == r["round"]
            and not b["opts"].get("refreshes") and b["status"] == "ok"]
    if not base or r["status"] != "ok" or not r.get("sentinel") or "late_in_windows" not in r:
        return None
    windows = r.get("windows", [])
    base_late = sum(1 for s in base[0].get("late_seqs", [])
                    if any(lo <= s < hi for lo, hi in windows))
    return int(r["late_in_windows"]) - base_late


def render_sm(res: Any, data: Dict[str, Any], table: Any, faults: Any) -> str:
    clients = [c for c in res.clients if c.endswith("-sm")]
    if not clients:
        return ""
    out: List[str] = []
    rows = []
    for c in clients:
        burst = res.select(c, "burst")
        unacked = max((r.get("unacked") or 0 for r in burst), default=None)
        ack_dups = max((r.get("ack_dups") or 0 for r in burst), default=None)
        rows.append([c, _fmt(res.eps(c)), _fmt(res.paired(c, RTM_US, "burst", "eps"), "{:.2f}x"),
                     _fmt(res.paired(c, SM_FLOOR, "burst", "eps"), "{:.2f}x"),
                     _fmt(res.paired(c, SM_CEILING, "burst", "eps"), "{:.2f}x"),
                     _fmt(res.paired(c, SM_RAW, "burst", "eps"), "{:.2f}x"),
                     _fmt(res.median(c, "burst", "cpu_us_per_event", _clean), "{:.1f}"),
                     faults(c, "burst"), f"{_fmt(unacked, '{}')}/{_fmt(ack_dups, '{}')}",
                     _fmt(res.median(c, "idle", "cpu_pct"), "{:.4f}%")])
    size = SIZES.get(data["args"].get("envelope", "small"), "?")
    out.append(f"\nSocket Mode inbound: {data['args']['events']:,} events_api envelopes ({size}),"
               " each acknowledged (x RTM: this client's envelopes/s over slackrtm RTMClient's"
               " events/s, paired per round)")
    out.append(table(["client", "burst env/s", "x slackrtm RTM", "x floor-sm", "x ceiling-sm",
                      "x raw-loop-sm", "CPU us/env", "lost/dup/order", "unacked/ack dups",
                      "idle CPU"], rows))

    rows = []
    for c in clients:
        runs = res.select(c, "refresh")
        for name in dict.fromkeys(variant(r) for r in runs):
            group = [r for r in runs if variant(r) == name]
            ok = [r for r in group if r["status"] == "ok" and r.get("sentinel")]
            gaps = [g for r in ok for g in r.get("gaps_ms", []) if g is not None]
            never = sum(1 for r in ok for g in r.get("gaps_ms", []) if g is None)
            ex = [excess(res, r) for r in group] if group[0]["opts"].get("refreshes") else []
            rows.append([
                c, name, f"{len(ok)}/{len(group)}",
                "{} / {} / {}".format(_fmt(_median([r.get("lat_p50_ms") for r in ok]), "{:.1f}"),
                                      _fmt(_median([r.get("lat_p99_ms") for r in ok]), "{:.1f}"),
                                      _fmt(max((r["lat_max_ms"] for r in ok), default=None),
                                           "{:.0f}")),
                _fmt(max((r["win_max_ms"] for r in ok if "win_max_ms" in r), default=None),
                     "{:.0f}", "-") if ex else "-",
                ", ".join(str(r.get("late_count", "-")) for r in group),
                ", ".join("n/a" if e is None else str(e) for e in ex) or "-",
                (_fmt(_median(gaps), "{:.1f}") + " / " + _fmt(max(gaps, default=None), "{:.0f}")
                 + (f" ({never} never)" if never else "")) if ex else "-",
                _fmt(_median([s for r in ok for s in r.get("switch_ms", []) if s is not None]),
                     "{:.1f}", "-"),
                "/".join(str(_worst(group, k)) for k in ("lost", "dups", "order")),
                str(_worst(group, "unacked")),
                _fmt(_median([r.get("connections_opened") for r in ok]), "{:.0f}")])
    pace = data["args"].get("refresh_pace", 1000)
    interval = data["args"].get("interval", 0.005)
    out.append(f"\nSocket Mode refreshes: paced flood of {pace:,.0f} envelopes/s in batches every"
               f" {interval * 1e3:g} ms (the flood interval); lateness = handled - scheduled send"
               " time; late = lateness > one flood interval; per-round values are comma lists")
    out.append(table(["client", "refreshes", "runs ok", "lateness p50/p99/max ms",
                      "max in windows ms", "late (per round)", "excess late in windows",
                      "gap ms median/max", "switch ms", "lost/dup/order", "unacked",
                      "connections"], rows))
    out.append("\n" + targets_sm(res, data))
    return "\n".join(out)


def _worst(runs: List[Run], key: str) -> int:
    return max((int(r.get(key) or 0) for r in runs), default=0)


def _clean(r: Run) -> bool:
    return bool(r["status"] == "ok" and r.get("sentinel", True) and not r.get("lost")
                and not r.get("dups") and not r.get("order"))


def targets_sm(res: Any, data: Dict[str, Any]) -> str:
    def mark(ok: Optional[bool]) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "FAIL")

    ours = [r for r in res.runs if r["client"] == SM_US
            and r["scenario"] in ("inbound", "refresh", "memory")]
    faults = sum((r.get("lost") or 0) + (r.get("dups") or 0) + (r.get("order") or 0)
                 + (r.get("unacked") or 0) + (r.get("ack_dups") or 0) for r in ours)
    faults += sum(1 for r in ours if r["status"] != "ok" or not r.get("sentinel", True))
    refresh = [r for r in res.select(SM_US, "refresh") if r["opts"].get("refreshes")]
    ex = [excess(res, r) for r in refresh]
    r_floor = res.paired(SM_US, SM_FLOOR, "burst", "eps")
    r_ceil = res.paired(SM_US, SM_CEILING, "burst", "eps")
    r_rtm = res.paired(SM_US, RTM_US, "burst", "eps")
    r_raw = res.paired(SM_US, SM_RAW, "burst", "eps")
    r_cpu = res.paired(SM_RAW, SM_US, "burst", "cpu_us_per_event")
    idle = res.median(SM_US, "idle", "cpu_pct")
    lines = [
        ("inbound >= 4x the bare websocket-client loop (acking)",
         None if r_floor is None else r_floor >= 4, _fmt(r_floor, "{:.2f}x")),
        ("inbound >= 0.6x the ceiling loop (acking)",
         None if r_ceil is None else r_ceil >= 0.6, _fmt(r_ceil, "{:.2f}x")),
        ("inbound >= 0.8x the raw acking loop (raw-loop-sm; issue 16: realistic envelopes)",
         None if r_raw is None else r_raw >= 0.8, _fmt(r_raw, "{:.2f}x")),
        ("zero loss / duplicates / reordering, every envelope acked once (every flood)",
         None if not ours else faults == 0, f"{faults} faults in {len(ours)} floods"),
        ("0 events late by more than one flood interval across refreshes, beyond the"
         " no-refresh baseline (every refresh run)",
         None if not ex or None in ex else all(e <= 0 for e in ex),
         "excess per run: " + ", ".join("n/a" if e is None else str(e) for e in ex)),
        ("idle CPU <= 0.1% of a core", None if idle is None else idle <= 0.1,
         _fmt(idle, "{:.4f}%")),
    ]
    text = "\n".join(f"  {mark(ok)}  {name}: {value}" for name, ok, value in lines)
    return ("Targets for slackrtm-sm (ratios: median over rounds of the ratio within each round)\n"
            + text + f"\n  info  inbound vs slackrtm RTMClient: {_fmt(r_rtm, '{:.2f}x')}"
            + "\n  info  CPU per envelope, raw acking loop's over slackrtm-sm's (paired; the"
            f" load-proof form of the 0.8x target): {_fmt(r_cpu, '{:.2f}x')}")
