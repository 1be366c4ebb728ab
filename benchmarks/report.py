"""Turn a results JSON (from run.py) into the tables: medians, ratios, targets.

    python benchmarks/report.py benchmarks/results/latest.json
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any, Callable, Dict, List, Optional

from _report_sm import render_sm

Run = Dict[str, Any]
FLOOR, CEILING, US, RAW = "ws-bare", "ws-ceiling", "slackrtm", "raw-loop"


def _median(values: List[float]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: Optional[float], spec: str = "{:,.0f}", none: str = "n/a") -> str:
    return none if value is None else spec.format(value)


class Results:
    def __init__(self, data: Dict[str, Any]) -> None:
        self.data = data
        self.runs: List[Run] = data["runs"]
        self.clients: List[str] = list(dict.fromkeys(r["client"] for r in self.runs))
        self.pace = float(data["args"]["pace"])

    def select(self, client: str, kind: str) -> List[Run]:
        def is_kind(r: Run) -> bool:
            pace = float(r["opts"].get("pace", 0) or 0)
            if r["scenario"] != "inbound":
                return bool(r["scenario"] == kind)
            if r.get("ladder"):
                return kind == "ladder"
            return kind == ("paced" if pace else "burst")

        return [r for r in self.runs if r["client"] == client and is_kind(r)]

    def median(self, client: str, kind: str, key: str,
               ok: Callable[[Run], bool] = lambda r: True) -> Optional[float]:
        return _median([r.get(key) for r in self.select(client, kind)
                        if r["status"] == "ok" and ok(r)])

    def eps(self, client: str, kind: str = "burst") -> Optional[float]:
        return self.median(client, kind, "eps", clean)

    def paired(self, a: str, b: str, kind: str, key: str) -> Optional[float]:
        """Median over rounds of a/b, each ratio taken within one round (drift cancels)."""
        ratios = []
        for rnd in sorted({r["round"] for r in self.runs if r["round"]}):
            va = [r.get(key) for r in self.select(a, kind) if r["round"] == rnd and clean(r)]
            vb = [r.get(key) for r in self.select(b, kind) if r["round"] == rnd and clean(r)]
            if va and vb and va[0] and vb[0]:
                ratios.append(va[0] / vb[0])
        return _median(ratios)

    def faults(self, client: str, kind: str) -> str:
        runs = self.select(client, kind)
        if not runs:
            return "n/a"
        bad = [r for r in runs if not clean(r)]
        lost = max((r.get("lost", 0) for r in runs), default=0)
        dups = max((r.get("dups", 0) for r in runs), default=0)
        order = max((r.get("order", 0) for r in runs), default=0)
        text = f"{lost}/{dups}/{order}"
        statuses = {r["status"] for r in bad} - {"ok"}
        if any(not r.get("sentinel") for r in bad):
            statuses.add("stalled")
        if bad:
            text += f" ({len(bad)}/{len(runs)} runs bad: {','.join(sorted(statuses)) or 'faults'})"
        return text


def clean(r: Run) -> bool:
    return bool(r["status"] == "ok" and r.get("sentinel", True) and not r.get("lost")
                and not r.get("dups") and not r.get("order"))


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def _table(head: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |"
            for row in rows]
    return "\n".join([line, sep, *body])


def render(data: Dict[str, Any]) -> str:
    res = Results(data)
    rtm_clients = [c for c in res.clients if not c.endswith("-sm")]
    out: List[str] = []
    m = data["machine"]
    load = m.get("loadavg_start"), m.get("loadavg_end")
    out.append(f"\nMachine: {m['cpu']} x{m['nproc']}, Python {m['python']}, "
               f"slackrtm {m['slackrtm_commit']}, {m['date']}; "
               f"{data['args']['rounds']} rounds, medians; load average at start/end "
               + " / ".join("n/a" if x is None else f"{x[0]:.1f}" for x in load))

    rows = []
    for c in rtm_clients:
        eps = res.eps(c)
        ladder = [r for r in res.select(c, "ladder") if clean(r)]
        best = max((float(r["opts"]["pace"]) for r in ladder), default=None)
        rows.append([c, _fmt(eps), _fmt(res.paired(c, FLOOR, "burst", "eps"), "{:.2f}x"),
                     _fmt(res.paired(c, CEILING, "burst", "eps"), "{:.2f}x"),
                     _fmt(res.median(c, "burst", "cpu_us_per_event", clean), "{:.1f}"),
                     res.faults(c, "burst"),
                     _fmt(res.median(c, "paced", "eps")),
                     _fmt(_paced_cpu(res, c), "{:.0f}%"), res.faults(c, "paced"),
                     _fmt(best, "{:,.0f}", "-")])
    n = data["args"]["events"]
    out.append(f"\nInbound: {n:,} message events of ~300 B, hello..sentinel, one trivial handler"
               " (ratios: median over rounds of the ratio within each round)")
    out.append(_table(["client", "burst ev/s", "x floor", "x ceiling", "CPU us/ev",
                       "lost/dup/order", f"paced {res.pace:,.0f}/s: ev/s", "CPU",
                       "lost/dup/order", "max clean pace"], rows))

    rows = []
    for c in rtm_clients:
        p50 = res.median(c, "send", "p50_ms")
        bad = [r for r in res.select(c, "send") if r["status"] != "ok"]
        note = f" ({len(bad)}/{len(res.select(c, 'send'))} runs {bad[0]['status']})" if bad else ""
        rows.append([c, _fmt(p50, "{:.3f}") + note,
                     _fmt(res.median(c, "send", "p99_ms"), "{:.3f}"),
                     _fmt(res.paired(c, FLOOR, "send", "p50_ms"), "{:.2f}x"),
                     _sendmt(res, c),
                     _drop(res, c),
                     _halfopen(res, c),
                     _fmt(_median([r.get("ready_s") for r in res.runs
                                   if r["client"] == c and r["status"] == "ok"]), "{:.3f}"),
                     _fmt(data["imports"].get(c, {}).get("import_ms"), "{:.0f}")])
    out.append("\nSends, reconnects, startup (send: sequential send_message + wait for the reply;"
               " 8 threads: 10k pipelined sends)")
    out.append(_table(["client", "send p50 ms", "p99 ms", "p50 x bare", "8-thread sends/s",
                       "drop->ready s (CPU)", "half-open detect / ready s", "ready s", "import ms"],
                      rows))

    rows = []
    for c in rtm_clients:
        mem = [r for r in res.select(c, "memory") if r["status"] == "ok"]
        r0: Run = mem[0] if mem else {}
        pace = float(r0.get("opts", {}).get("pace", 0) or 0) if r0 else 0
        rows.append([c, _fmt(res.median(c, "idle", "cpu_pct"), "{:.4f}%"),
                     _fmt(r0.get("rss_connect_mb"), "{:.1f}"),
                     _fmt(r0.get("rss_warm_mb"), "{:.1f}"),
                     _fmt(r0.get("rss_end_mb"), "{:.1f}"), _fmt(r0.get("growth_mb"), "{:+.1f}"),
                     _fmt(r0.get("peak_mb"), "{:.1f}"),
                     f"{r0.get('lost', '-')}/{r0.get('dups', '-')}" + (f" @{pace:,.0f}/s" if pace
                                                                      else "")])
    out.append(f"\nIdle CPU ({data['sizes']['idle']:.0f} s connected, default keep-alive) and RSS"
               f" (MB) after connect, after a {data['sizes']['warm_events']:,}-event warm-up,"
               f" after {data['sizes']['mem_events']:,} more")
    out.append(_table(["client", "idle CPU", "RSS connect", "after warm-up", "after all",
                       "growth", "peak", "lost/dup"], rows))
    if rtm_clients:
        out.append("\n" + targets(res, data))
    out.append(render_sm(res, data, _table, res.faults))
    return "\n".join(out)


def _paced_cpu(res: Results, client: str) -> Optional[float]:
    vals = [r["cpu_s"] / r["seconds"] * 100 for r in res.select(client, "paced")
            if r["status"] == "ok" and r.get("seconds")]
    return _median(vals)


def _sendmt(res: Results, client: str) -> str:
    runs = res.select(client, "sendmt")
    if not runs:
        return "n/a"
    bad = [r for r in runs if r["status"] != "ok" or r.get("error")]
    text = _fmt(_median([r.get("sends_per_s") for r in runs if r not in bad]))
    return text + (f" ({len(bad)}/{len(runs)} runs stalled)" if bad else "")


def _drop(res: Results, client: str) -> str:
    runs = [r for r in res.select(client, "reconnect") if r["status"] == "ok"]
    if not runs:
        return "n/a"
    value = _median([r.get("drop_to_ready_s") for r in runs])
    cpu = _median([r.get("drop_cpu_s") for r in runs])
    return _fmt(value, "{:.3f}", f">{runs[0].get('timeout', 0):g} (never)") + \
        _fmt(cpu, " ({:.2f} CPU s)", "")


def _halfopen(res: Results, client: str) -> str:
    runs = [r for r in res.select(client, "reconnect") if r["status"] == "ok"]
    if not runs:
        return "n/a"
    r0 = runs[0]
    waited = r0["opts"].get("no_keepalive_wait") if "halfopen_detect_s" not in r0 \
        else r0.get("timeout")
    detect = _median([r.get("halfopen_detect_s") for r in runs])
    ready = _median([r.get("halfopen_to_ready_s") for r in runs])
    text = "-" if "halfopen_detect_s" not in r0 else _fmt(detect, "{:.2f}", f">{waited:g}")
    return f"{text} / " + _fmt(ready, "{:.2f}", f"never (>{waited:g})")


def targets(res: Results, data: Dict[str, Any]) -> str:
    idle = res.median(US, "idle", "cpu_pct")
    mem = [r for r in res.select(US, "memory") if r["status"] == "ok"]
    growth = mem[0]["growth_mb"] if mem else None
    ours = [r for r in res.runs if r["client"] == US and r["scenario"] in ("inbound", "memory")]
    faults = sum(r.get("lost", 0) + r.get("dups", 0) + r.get("order", 0) for r in ours)
    faults += sum(1 for r in ours if r["status"] != "ok" or not r.get("sentinel", True))

    def mark(ok: Optional[bool]) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "FAIL")

    def cmp(v: Optional[float], limit: float, ge: bool) -> Optional[bool]:
        return None if v is None else (v >= limit if ge else v <= limit)

    r_floor = res.paired(US, FLOOR, "burst", "eps")
    r_ceil = res.paired(US, CEILING, "burst", "eps")
    r_raw = res.paired(US, RAW, "burst", "eps")
    pairs = [r["ratio"] for r in res.select(US, "sendpair") if r["status"] == "ok"]
    r_send = _median(pairs) if pairs else res.paired(US, FLOOR, "send", "p50_ms")
    send_how = (f" (interleaved with the bare loop in one process, median of {len(pairs)} runs;"
                f" separate processes: {_fmt(res.paired(US, FLOOR, 'send', 'p50_ms'), '{:.2f}x')})"
                if pairs else "")
    lines = [
        ("inbound >= 4x the bare websocket-client loop", cmp(r_floor, 4.0, True),
         _fmt(r_floor, "{:.2f}x")),
        ("inbound >= 0.6x the ceiling loop", cmp(r_ceil, 0.6, True), _fmt(r_ceil, "{:.2f}x")),
        ("inbound >= 0.95x the raw loop (issue 16)", cmp(r_raw, 0.95, True),
         _fmt(r_raw, "{:.2f}x")),
        ("zero loss / duplicates / reordering (every slackrtm flood)",
         None if not ours else faults == 0, f"{faults} faults in {len(ours)} floods"),
        ("send p50 within 1.3x of the bare send+recv loop", cmp(r_send, 1.3, False),
         _fmt(r_send, "{:.2f}x") + send_how),
        ("idle CPU <= 0.1% of a core", cmp(idle, 0.1, False), _fmt(idle, "{:.4f}%")),
        (f"RSS growth <= 5 MB over {data['sizes']['mem_events']:,} events",
         cmp(growth, 5.0, False), _fmt(growth, "{:+.1f} MB")),
    ]
    r_cpu = res.paired(RAW, US, "burst", "cpu_us_per_event")
    return ("Targets for slackrtm (ratios: median over rounds of the ratio within each round)\n"
            + "\n".join(f"  {mark(ok)}  {name}: {value}" for name, ok, value in lines)
            + "\n  info  CPU per event, the raw loop's over slackrtm's (paired): "
            + _fmt(r_cpu, "{:.2f}x"))


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json") as f:
        print(render(json.load(f)))
