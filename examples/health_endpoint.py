"""Liveness and readiness over HTTP, for a container orchestrator (Kubernetes probes, a
load balancer's health check), on the standard library alone.

Usage: SLACK_APP_TOKEN=xapp-... python examples/health_endpoint.py
(HEALTH_PORT sets the port, default 8080; 0 picks a free one. Ctrl-C to stop.)

GET /livez  200 while the client is running: connecting and reconnecting count as alive
            (it retries by itself; restarting the process would not help), a connection
            silent far longer than the keep-alive allows does not. When the run ends for
            good (a revoked token, Socket Mode turned off) the process exits with status 1.
GET /readyz 200 when it is connected and keeping up (its backlog of unhandled events is
            small); 503 otherwise, so an orchestrator sends no traffic its way.
GET /health client.health() as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Tuple

from slackrtm import SocketModeClient

MAX_BACKLOG = 1_000
#: Seconds without any frame after which a ready connection is not alive: the client's
#: keep-alive (a ping after 10 s of silence, 5 s for its answer) should have acted long
#: before.
SILENCE = 60.0

app_token = os.environ.get("SLACK_APP_TOKEN")
if not app_token:
    print(f"usage: SLACK_APP_TOKEN=xapp-... python {sys.argv[0]}", file=sys.stderr)
    sys.exit(2)
client = SocketModeClient(app_token, max_backlog=MAX_BACKLOG)


def live(health: Dict[str, Any]) -> bool:
    if health["state"] == "disconnected":
        return False
    silent = health["seconds_since_last_frame"]
    return not (health["ready"] and silent is not None and silent > SILENCE)


def ready(health: Dict[str, Any]) -> bool:
    return bool(health["ready"]) and health["backlog"] < MAX_BACKLOG // 2


class Probes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls
        health = client.health()
        checks = {"/livez": live, "/readyz": ready}
        if self.path == "/health":
            self.answer(200, health)
        elif self.path in checks:
            ok = checks[self.path](health)
            self.answer(200 if ok else 503, {"ok": ok, "state": health["state"]})
        else:
            self.answer(404, {"error": "not found"})

    def answer(self, status: int, body: Dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds:
        pass  # keep them out of the output


def serve(port: int) -> Tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("0.0.0.0", port), Probes)
    thread = threading.Thread(target=server.serve_forever, name="health", daemon=True)
    thread.start()
    return server, thread


server, thread = serve(int(os.environ.get("HEALTH_PORT", "8080")))
print(f"Health checks on http://127.0.0.1:{server.server_address[1]}/livez and /readyz. "
      "Press Ctrl-C to stop.")
try:
    client.run_forever()  # until Ctrl-C or SIGTERM, which disconnect cleanly
except Exception as exc:  # the run ended for good (a revoked token, Socket Mode off):
    print(f"stopped: {exc}", file=sys.stderr)  # exit, and let the orchestrator decide
    sys.exit(1)
finally:
    server.shutdown()
    server.server_close()
    thread.join(5)
