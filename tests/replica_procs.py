"""Replica processes for the proof (``tests/test_replicas_proof.py`` and
``benchmarks/replicas_proof.py``): start copies of ``benchmarks/replica_worker.py``, wait for
them to connect, kill and restart them, read what their handlers counted in Redis."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "benchmarks", "replica_worker.py")


class Replica:
    """One worker process."""

    def __init__(self, mode: str, name: str, api_url: str, token: str, redis_url: str,
                 *extra: str) -> None:
        self.argv = [sys.executable, WORKER, mode, "--api-url", api_url, "--token", token,
                     "--redis", redis_url, "--name", name, *extra]
        self.name = name
        self.proc: Optional[subprocess.Popen[str]] = None
        self.lines: List[str] = []

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=ROOT)

    def wait_for(self, word: str, timeout: float = 60.0) -> str:
        """The first stdout line starting with ``word`` (read with a deadline)."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if line.startswith(word):
                return line
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.lines.append(line.strip())
                if line.startswith(word):
                    return line.strip()
            elif self.proc.poll() is not None:
                break
        err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr \
            else ""
        raise AssertionError(f"replica {self.name} did not print {word!r} within {timeout} s "
                             f"(exit {self.proc.poll()}): {err[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no ack of what it held."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean disconnect), SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._close()

    def _close(self) -> None:
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


def counts(redis_url: str, run: str = "proof") -> Dict[str, Dict[str, int]]:
    """What the handlers counted: ``handled`` (event -> times), ``by`` (copy -> count),
    ``received`` (RTM: copy -> events received)."""
    r = redis.Redis.from_url(redis_url)
    out: Dict[str, Dict[str, int]] = {}
    for name in ("handled", "by", "received"):
        out[name] = {k.decode(): int(v) for k, v in r.hgetall(f"{run}:{name}").items()}
    r.close()
    return out
