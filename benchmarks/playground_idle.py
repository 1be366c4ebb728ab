"""How much CPU an idle playground costs: a FakeSlack with a Playground, three pages'
event streams open and one Socket Mode bot connected, measured over a quiet period.

    python benchmarks/playground_idle.py [SECONDS]

Prints the process's CPU time over the period (server, streams and client threads all
count) as a share of one core. The streams wait on the hub's condition and the bot on its
socket: the target is well under 0.1% of a core.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import List

import requests

from slackrtm import SocketModeClient
from slackrtm.testing import FakeSlack, Playground


def main(seconds: float) -> None:
    with FakeSlack() as slack:
        pg = Playground(slack)
        bot = SocketModeClient(slack.app_token, slack_api_url=slack.api_url)
        bot.start().result(timeout=30)
        sessions: List[requests.Response] = []
        ready = threading.Barrier(4)

        def read(response: requests.Response) -> None:
            ready.wait()
            try:
                for _ in response.iter_lines(chunk_size=1):
                    pass
            except (requests.RequestException, OSError, ValueError):
                pass

        readers = []
        for _ in range(3):
            http = requests.Session()
            http.trust_env = False
            response = http.get(f"{pg.base_url}/playground/api/stream", stream=True,
                                cookies={f"fakeslack_{slack.port}": pg.admin_token},
                                timeout=(30, None))
            sessions.append(response)
            thread = threading.Thread(target=read, args=(response,), daemon=True)
            thread.start()
            readers.append(thread)
        ready.wait()
        time.sleep(2.0)  # let the snapshots and the bot's hello settle
        wall, cpu = time.monotonic(), time.process_time()
        time.sleep(seconds)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        bot.disconnect()
        for response in sessions:
            response.close()
    print(f"idle playground (3 streams, 1 Socket Mode bot) over {wall:.1f} s: "
          f"{cpu * 1000:.1f} ms CPU = {100 * cpu / wall:.3f}% of a core")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0)
