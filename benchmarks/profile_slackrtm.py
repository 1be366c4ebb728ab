"""Profile slackrtm in the benchmark scenarios: where the time goes per frame and per send.

    python benchmarks/profile_slackrtm.py [--events 300000] [--sends 5000] [--out DIR]

For an inbound burst and for sequential sends it records (1) CPU seconds per thread,
(2) a py-spy sampling profile of every thread (nonblocking, so the process is never
paused) summarised per thread role and per function, and (3) a cProfile of every thread
(deterministic, slower, exact call counts). Raw outputs land in ``--out``
(default benchmarks/results/profile-raw/); the summary is printed and written to
``--out``/summary.txt.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pstats
import re
import subprocess
import sys
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from run import Server, ensure_venv, snapshot  # noqa: E402

ROLES = {"_reader_main": "reader", "_dispatcher_main": "dispatcher",
         "_keepalive_main": "keepalive", "_writer_main": "writer"}
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:]+):\d+\)$")


SOURCE = REPO


def worker(python: str, api_url: str, scenario: str, extra: List[str],
           prefix: List[str]) -> Dict[str, object]:
    cmd = [*prefix, python, os.path.join(HERE, "worker.py"), "--client", "slackrtm",
           "--scenario", scenario, "--api-url", api_url, *extra]
    env = dict(os.environ, PYTHONPATH=SOURCE)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"worker failed: {res.stderr[-2000:]}")
    result: Dict[str, object] = json.loads(lines[-1][7:])
    return result


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "python3.11/", "/work/main/", "benchmarks/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group('func')} ({path})"


def summarise_pyspy(path: str, top: int = 14) -> List[str]:
    """Per thread role: share of samples, and the functions with the most self and
    inclusive samples (inclusive only for slackrtm's own functions)."""
    by_role: Dict[str, int] = collections.Counter()
    leaf: Dict[str, Dict[str, int]] = collections.defaultdict(collections.Counter)
    incl: Dict[str, Dict[str, int]] = collections.defaultdict(collections.Counter)
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count_s = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")[1:]
            count = int(count_s)
            if not frames:
                continue
            role = "main"
            for fr in frames:
                for key, name in ROLES.items():
                    if key in fr:
                        role = name
            if any("_profile_all_threads" in fr or "importlib" in fr for fr in frames):
                continue
            total += count
            by_role[role] += count
            leaf[role][_short(frames[-1])] += count
            for fr in dict.fromkeys(_short(x) for x in frames):
                if "(slackrtm/" in fr or "(websocket/" in fr or "(json/" in fr:
                    incl[role][fr] += count
    out = [f"  {total} samples"]
    for role, n in sorted(by_role.items(), key=lambda kv: -kv[1]):
        out.append(f"  thread {role}: {n / total:.0%} of samples")
        out.append("    self time:")
        out += [f"      {c / total:6.1%}  {fn}" for fn, c in leaf[role].most_common(top)]
        out.append("    inclusive (slackrtm, websocket, json):")
        out += [f"      {c / total:6.1%}  {fn}" for fn, c in incl[role].most_common(top)]
    return out


def summarise_cprofile(path: str, top: int = 18) -> List[str]:
    stats = pstats.Stats(path)
    rows: List[Tuple[float, int, float, str]] = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = file
        for marker in ("site-packages/", "python3.11/", "/work/main/", "benchmarks/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        rows.append((tt, nc, ct, f"{func} ({where}:{line})"))
    total = sum(r[0] for r in rows)
    out = [f"  total {total:.2f} s of profiled time (all threads; waits included in C calls)"]
    out.append("      tottime  calls      cumtime  function")
    for tt, nc, ct, name in sorted(rows, reverse=True)[:top]:
        out.append(f"    {tt:8.3f} s {nc:9d} {ct:8.3f} s  {name}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--sends", type=int, default=20000)
    p.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    p.add_argument("--out", default=os.path.join(HERE, "results", "profile-raw"))
    p.add_argument("--commit", metavar="REV", help="profile slackrtm as committed at REV")
    args = p.parse_args()
    global SOURCE
    if args.commit:
        SOURCE, commit = snapshot(args.commit)
        print(f"profiling slackrtm {commit}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    python = ensure_venv("main")
    pyspy = os.path.join(os.path.dirname(python), "py-spy")
    server = Server(python)
    report: List[str] = []
    try:
        for scenario, extra, unit, n in (
                ("inbound", ["--events", str(args.events)], "frame", args.events),
                ("send", ["--sends", str(args.sends)], "send", args.sends + 50)):
            plain = worker(python, server.api_url, scenario, extra, [])
            report.append(f"== {scenario}: plain run (no profiler)")
            report.append("  " + json.dumps({k: v for k, v in plain.items()
                                             if k in ("eps", "p50_ms", "p99_ms", "cpu_s",
                                                      "cpu_us_per_event", "thread_cpu_s")}))
            threads = plain.get("thread_cpu_s")
            if isinstance(threads, dict):
                per = ", ".join(f"{name} {sec / n * 1e6:.1f} us" for name, sec in threads.items())
                report.append(f"  CPU per {unit} by thread: {per}")
            raw = os.path.join(args.out, f"pyspy-{scenario}.txt")
            worker(python, server.api_url, scenario, extra,
                   [pyspy, "record", "--gil", "--nonblocking", "-r", str(args.rate), "-f", "raw",
                    "-o", raw, "--threads", "--"])
            report.append(f"== {scenario}: py-spy --gil ({args.rate} Hz; only the thread holding"
                          " the GIL is sampled: where Python time goes)")
            report += summarise_pyspy(raw)
            prof = os.path.join(args.out, f"cprofile-{scenario}.prof")
            worker(python, server.api_url, scenario, [*extra, "--cprofile", prof], [])
            report.append(f"== {scenario}: cProfile, every thread merged")
            report += summarise_cprofile(prof)
    finally:
        server.stop()
    text = "\n".join(report)
    print(text)
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
