"""Side-by-side benchmark: slackrtm and its peers against one local flood server.

    python benchmarks/run.py            # full run (~15 min): 5 rounds, 100k-event floods
    python benchmarks/run.py --quick    # smoke run (~2 min)
    python benchmarks/run.py --only slackrtm,ws-ceiling --rounds 3 --events 200000
    python benchmarks/run.py --commit HEAD     # measure a commit, not the working tree

Creates the benchmark venvs on first use (benchmarks/.venv from requirements.txt and
benchmarks/.venv-slackclient from requirements-slackclient.txt), starts flood_server.py
in its own process, then runs every (client, scenario) in a fresh worker process,
alternating clients within each round. Prints medians and ratios and writes
benchmarks/results/latest.json. See README.md for the method.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import venv
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from report import render  # noqa: E402
from worker import IMPORTS  # noqa: E402

CLIENTS = ["ws-bare", "ws-ceiling", "raw-loop", "slackrtm", "slack_sdk", "slackclient1",
           "ws-bare-sm", "ws-ceiling-sm", "raw-loop-sm", "slackrtm-sm", "slack_sdk-sm"]
SM_CLIENTS = {c for c in CLIENTS if c.endswith("-sm")}
VENVS = {"main": (".venv", "requirements.txt"),
         "slackclient": (".venv-slackclient", "requirements-slackclient.txt")}
SCENARIOS = ["inbound", "paced", "send", "sendpair", "sendmt", "reconnect", "refresh", "idle",
             "memory", "ladder"]
SUPPORTS = {"sendmt": {"slackrtm"}, "sendpair": {"slackrtm"},
            "send": {c for c in CLIENTS if c not in SM_CLIENTS},
            "reconnect": {"slackrtm", "slack_sdk", "slackclient1"},
            "refresh": {"slackrtm-sm", "slack_sdk-sm"}}
LADDER = [5000, 10000, 20000, 30000, 40000, 60000, 80000, 120000, 160000]


def ensure_venv(key: str) -> str:
    """Create (or refresh when its requirements changed) one benchmark venv; its python."""
    dirname, req = VENVS[key]
    path, req_path = os.path.join(HERE, dirname), os.path.join(HERE, req)
    with open(req_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(path, ".requirements.sha256")
    python = os.path.join(path, "bin", "python")
    if os.path.exists(stamp):
        with open(stamp) as f:
            if f.read() == digest:
                return python
    print(f"setting up {dirname} from {req} ...", flush=True)
    if not os.path.exists(python):
        venv.create(path, with_pip=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", req_path], check=True)
    with open(stamp, "w") as f:
        f.write(digest)
    return python


def python_for(client: str, pythons: Dict[str, str]) -> str:
    return pythons["slackclient" if client == "slackclient1" else "main"]


def pin_to(cpu: Optional[int]) -> Optional[Callable[[], None]]:
    """A preexec_fn keeping a child process on one CPU (--pin), or None."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class Server:
    """flood_server.py in a process of its own (its CPU never shares the client's GIL)."""

    def __init__(self, python: str, cpu: Optional[int] = None) -> None:
        self.proc = subprocess.Popen([python, os.path.join(HERE, "flood_server.py")],
                                     stdout=subprocess.PIPE, text=True,
                                     preexec_fn=pin_to(cpu))
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"flood server did not start: {line!r}")
        self.api_url = f"http://127.0.0.1:{int(line.split()[1])}/api/"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Runner:
    def __init__(self, args: argparse.Namespace, pythons: Dict[str, str], server: Server,
                 source: str) -> None:
        self.args = args
        self.source = source
        self.pythons = pythons
        self.server = server
        self.count = 0
        self.runs: List[Dict[str, Any]] = []

    def start(self, client: str, scenario: str, timeout: float, rnd: int,
              **opts: Any) -> Dict[str, Any]:
        """Start one worker process; ``finish`` collects it."""
        self.count += 1
        cmd = [python_for(client, self.pythons), os.path.join(HERE, "worker.py"),
               "--client", client, "--scenario", scenario, "--api-url", self.server.api_url,
               "--tag", f"w{self.count}", "--timeout", str(timeout)]
        for key, value in opts.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        env = dict(os.environ, PYTHONPATH=self.source, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, preexec_fn=pin_to(1 if self.args.pin else None))
        return {"proc": proc, "t0": time.monotonic(), "timeout": timeout, "client": client,
                "scenario": scenario, "round": rnd, "opts": opts}

    def finish(self, job: Dict[str, Any]) -> Dict[str, Any]:
        """Wait for a worker; its result, with a status of ok, crash or hang (killed)."""
        proc: subprocess.Popen[str] = job["proc"]
        remaining = job["t0"] + job["timeout"] + 30 - time.monotonic()
        try:
            out, err = proc.communicate(timeout=max(1.0, remaining))
            status = "ok" if proc.returncode == 0 else "crash"
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            status = "hang"
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        result: Dict[str, Any] = json.loads(lines[-1][7:]) if lines else {}
        if status == "ok" and not lines:
            status = "crash"
        if status != "ok":
            result["stderr"] = err.strip().splitlines()[-3:]
        result.update(status=status, client=job["client"], scenario=job["scenario"],
                      round=job["round"], wall_s=time.monotonic() - job["t0"], opts=job["opts"])
        self.runs.append(result)
        flag = "" if status == "ok" else f"  [{status}] {' | '.join(result['stderr'])[:200]}"
        opts = job["opts"]
        label = job["scenario"] if not opts.get("pace") else f"@{opts['pace']:g}/s"
        if job["scenario"] == "refresh":
            label = f"refresh{opts['refreshes']}" + ("w" if opts.get("warning") else "")
        print(f"  r{job['round']} {label:9} {job['client']:12} {_brief(result)}{flag}", flush=True)
        return result

    def worker(self, client: str, scenario: str, timeout: float, rnd: int,
               **opts: Any) -> Dict[str, Any]:
        """Run one worker process to its end."""
        return self.finish(self.start(client, scenario, timeout, rnd, **opts))


def _brief(r: Dict[str, Any]) -> str:
    keys = [("eps", "{:,.0f} ev/s"), ("lost", "lost {}"), ("dups", "dups {}"),
            ("order", "order {}"), ("p50_ms", "p50 {:.3f} ms"), ("ref_p50_ms", "bare {:.3f} ms"),
            ("sends_per_s", "{:,.0f} sends/s"),
            ("drop_to_ready_s", "drop->ready {:.3f} s"),
            ("halfopen_to_ready_s", "half-open {:.3f} s"),
            ("cpu_pct", "cpu {:.4f}%"), ("growth_mb", "rss +{:.1f} MB"),
            ("unacked", "unacked {}"), ("lat_p99_ms", "lateness p99 {:.1f} ms"),
            ("lat_max_ms", "max {:.1f} ms"), ("late_count", "late {}"),
            ("late_in_windows", "in windows {}"), ("error", "{}")]
    if r.get("gaps_ms"):
        gaps = [g for g in r["gaps_ms"] if g is not None]
        keys.append(("refreshes_done", f"{{}} refreshes, gap max {max(gaps, default=0):.0f} ms"))
    return ", ".join(fmt.format(r[k]) for k, fmt in keys if r.get(k) is not None)


def import_times(clients: List[str], pythons: Dict[str, str], repeat: int,
                 source: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    code = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
    env = dict(os.environ, PYTHONPATH=source, PYTHONDONTWRITEBYTECODE="1")
    for client in clients:
        module, py = IMPORTS[client], python_for(client, pythons)
        subprocess.run([py, "-c", f"import {module}"], env=env, check=True)  # warm the disk cache
        times = [float(subprocess.run([py, "-c", code.format(m=module)], env=env, check=True,
                                      capture_output=True, text=True).stdout)
                 for _ in range(repeat)]
        out[client] = {"module": module, "import_ms": statistics.median(times) * 1e3}
    res = subprocess.run([pythons["main"], "-X", "importtime", "-c", "import slackrtm"], env=env,
                         capture_output=True, text=True)
    rows: List[Tuple[int, str]] = []
    for line in res.stderr.splitlines()[1:]:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            rows.append((int(parts[1]), parts[2]))
    out["slackrtm_importtime_top"] = [f"{us / 1e3:.1f} ms {name}"
                                      for us, name in sorted(rows, reverse=True)[:12]]
    return out


def snapshot(rev: str) -> Tuple[str, str]:
    """Export the slackrtm package at git revision ``rev`` into a temporary directory: the
    run then measures exactly that commit, whatever is being edited in the checkout."""
    import tarfile
    import tempfile

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev], check=True,
                            capture_output=True, text=True).stdout.strip()
    dest = tempfile.mkdtemp(prefix=f"slackrtm-{commit}-")
    archive = os.path.join(dest, "src.tar")
    subprocess.run(["git", "-C", REPO, "archive", "-o", archive, commit, "slackrtm"],
                   check=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4; our own repository's archive
            tar.extractall(dest)
    os.remove(archive)
    return dest, commit


def machine(pythons: Dict[str, str]) -> Dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: Dict[str, str] = {}
    for key, py in pythons.items():
        res = subprocess.run([py, "-m", "pip", "list", "--format", "json"], capture_output=True,
                             text=True)
        for pkg in json.loads(res.stdout or "[]"):
            if pkg["name"].lower() in {"websocket-client", "slack-sdk", "slack_sdk",
                                       "slackclient", "requests", "blinker"}:
                versions[f"{pkg['name']} ({key} venv)"] = pkg["version"]
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "slackrtm"],
                           capture_output=True, text=True).stdout.split("\n")
    if any(line.strip() for line in dirty):
        commit += " + uncommitted changes"
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "packages": versions, "slackrtm_commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg_start": os.getloadavg()}


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run, ~2 minutes")
    p.add_argument("--rounds", type=int, help="rounds of every per-round scenario (default 5)")
    p.add_argument("--events", type=int, help="events per inbound flood (default 100000)")
    p.add_argument("--pace", type=float, default=20000, help="events/s of the paced flood")
    p.add_argument("--only", default="", help="comma list of clients and/or scenarios")
    p.add_argument("--commit", metavar="REV",
                   help="measure slackrtm as committed at REV (e.g. HEAD) instead of the"
                        " working tree")
    p.add_argument("--refreshes", type=int, default=20, help="refreshes per refresh run")
    p.add_argument("--refresh-pace", type=float, default=1000,
                   help="envelopes/s of the refresh scenario's paced flood")
    p.add_argument("--interval", type=float, default=0.005,
                   help="the refresh flood's batch interval (the 'flood interval'), s")
    p.add_argument("--warning", type=float, default=0.3,
                   help="seconds between disconnect 'warning' and 'refresh_requested'")
    p.add_argument("--grace", type=float, default=1.0,
                   help="seconds from 'refresh_requested' until the server closes the old"
                        " connection")
    p.add_argument("--envelope", default="small", choices=("small", "realistic"),
                   help="Socket Mode inbound floods: the ~1 KB envelope, or a realistic"
                        " events_api message envelope (~1.9 KB: rich_text blocks,"
                        " authorizations, event_context)")
    p.add_argument("--python", help="use this interpreter (with websocket-client, requests,"
                   " blinker, slack_sdk, psutil) instead of creating benchmarks/.venv")
    p.add_argument("--pin", action="store_true",
                   help="pin the flood server to CPU 0 and each client process to CPU 1 "
                        "(sched_setaffinity): the client's threads share one core, as on a "
                        "machine with other work on the rest; less noise from the scheduler")
    p.add_argument("--output", default=os.path.join(HERE, "results", "latest.json"))
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (2 if q else 5)
    args.events = args.events or (30_000 if q else 100_000)
    sizes = {"sends": 300 if q else 2000, "mt_sends": 10_000, "idle": 5.0 if q else 30.0,
             "mem_events": 60_000 if q else 1_000_000, "warm_events": 20_000 if q else 100_000,
             "paced_events": 10_000 if q else 60_000}
    only = {s for s in args.only.split(",") if s}
    clients = [c for c in CLIENTS if not (only & set(CLIENTS)) or c in only]
    scenarios = [s for s in SCENARIOS if not (only & set(SCENARIOS)) or s in only]

    pythons = {key: ensure_venv(key) for key in VENVS
               if (key == "main" and not args.python)
               or (key == "slackclient" and "slackclient1" in clients)}
    if args.python:
        pythons["main"] = args.python
    info = machine(pythons)
    source = REPO
    if args.commit:
        source, info["slackrtm_commit"] = snapshot(args.commit)
    server = Server(pythons["main"], 0 if args.pin else None)
    runner = Runner(args, pythons, server, source)
    print(f"flood server at {server.api_url}; {info['cpu']} x{info['nproc']}, "
          f"Python {info['python']}", flush=True)
    flood_timeout = 10.0 if q else 30.0
    try:
        for rnd in range(1, args.rounds + 1):
            print(f"round {rnd}/{args.rounds}", flush=True)
            order = clients[rnd - 1:] + clients[:rnd - 1]  # alternate who goes first
            for scenario in ("inbound", "paced", "send", "sendpair", "sendmt", "reconnect",
                             "refresh"):
                if scenario not in scenarios:
                    continue
                for client in order:
                    if scenario in SUPPORTS and client not in SUPPORTS[scenario]:
                        continue
                    if scenario == "inbound":
                        slow = client in SM_CLIENTS and not q  # ws-bare-sm: ~4,000 env/s
                        extra = {"envelope": args.envelope} if client in SM_CLIENTS else {}
                        runner.worker(client, "inbound", 60.0 if slow else flood_timeout, rnd,
                                      events=args.events, **extra)
                    elif scenario == "paced":
                        n = sizes["paced_events"]
                        runner.worker(client, "inbound", n / args.pace + flood_timeout, rnd,
                                      events=n, pace=args.pace)
                    elif scenario in ("send", "sendpair"):
                        runner.worker(client, scenario, 10.0, rnd, sends=sizes["sends"])
                    elif scenario == "sendmt":
                        runner.worker(client, "sendmt", 30.0, rnd, mt_sends=sizes["mt_sends"])
                    elif scenario == "refresh":
                        refresh_runs(runner, client, rnd, args)
                    elif rnd == 1 or not q:
                        runner.worker(client, "reconnect", 15.0, rnd,
                                      no_keepalive_wait=3.0 if q else 10.0)
        once(runner, clients, scenarios, sizes, args)
        imports = import_times(clients, pythons, 3 if q else 7, source)
    finally:
        server.stop()
    info["loadavg_end"] = os.getloadavg()
    results = {"machine": info, "args": vars(args), "sizes": sizes, "imports": imports,
               "runs": runner.runs}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1)
    print(render(results))
    print(f"\nresults written to {args.output}")


def refresh_runs(runner: Runner, client: str, rnd: int, args: argparse.Namespace) -> None:
    """The paced Socket Mode flood without refreshes (the baseline), then across
    ``--refreshes`` refreshes, then across as many refreshes each announced by a warning."""
    every, lead = 0.5, 1.0
    n = int((lead + args.refreshes * every + 1.0) * args.refresh_pace)
    timeout = n / args.refresh_pace + 20
    for refreshes, warning in ((0, 0.0), (args.refreshes, 0.0), (args.refreshes, args.warning)):
        runner.worker(client, "refresh", timeout, rnd, events=n, pace=args.refresh_pace,
                      interval=args.interval, refreshes=refreshes, refresh_every=every,
                      lead=lead, warning=warning, grace=args.grace)


def once(runner: Runner, clients: List[str], scenarios: List[str], sizes: Dict[str, Any],
         args: argparse.Namespace) -> None:
    """Scenarios run once per client: idle CPU, RSS over many events, the paced ladder."""
    q = args.quick
    failed = {r["client"] for r in runner.runs if r["scenario"] == "inbound"
              and not r["opts"].get("pace") and (r["status"] != "ok" or r.get("lost")
                                                 or r.get("dups") or not r.get("sentinel"))}
    if "idle" in scenarios:
        print("idle CPU (all clients at once: idle processes do not compete)", flush=True)
        jobs = [runner.start(client, "idle", sizes["idle"] + 10, 0, idle=sizes["idle"])
                for client in clients]
        for job in jobs:
            runner.finish(job)
    if "memory" in scenarios:
        print("RSS over a long flood (burst; paced at half the paced rate for clients that"
              " lose events in bursts)")
        for client in clients:
            pace = args.pace / 2 if client in failed else 0
            runner.worker(client, "memory", sizes["mem_events"] / 5000 + 60, 0,
                          mem_events=sizes["mem_events"], warm_events=sizes["warm_events"],
                          pace=pace)
    if "ladder" in scenarios and not (q and "ladder" not in args.only):
        n = 20_000 if q else 50_000
        for client in sorted(failed):
            print(f"paced ladder for {client} (it failed the burst)", flush=True)
            for pace in LADDER:
                r = runner.worker(client, "inbound", n / pace + 10, 0, events=n, pace=pace)
                r["ladder"] = True
                if r["status"] != "ok" or r.get("lost") or not r.get("sentinel"):
                    break


if __name__ == "__main__":
    main()
