"""What-if only, no part of the harness: benchmarks/worker.py with SocketModeClient patched.

    PYTHONPATH=$PWD python sm_what_if.py PATCHES worker-args...
PATCHES: comma list of: batch (writer writes all queued acks in one sendall), nofuture
(acks on read create no Future), fasttext (ack text by concatenation), poll1 (POLL=1 ms),
none.
"""
import os
import runpy
import sys
from concurrent.futures import Future

import slackrtm._engine.run as run_mod
import slackrtm._protocols.envelope as env
import slackrtm._protocols.sm_run as sm
from slackrtm._engine.core import Resolve
from slackrtm._engine.transport import NotWritten, client_frame
from slackrtm.errors import WebsocketError

patches = set(sys.argv[1].split(","))
sys.argv = [os.path.join(os.getcwd(), "benchmarks", "worker.py"), *sys.argv[2:]]
if "poll1" in patches:
    sm.POLL = 0.001
if "fasttext" in patches:
    slow = env.ack_text

    def ack_text(envelope_id, payload=None):
        if payload is None and '"' not in envelope_id and "\\" not in envelope_id:
            return '{"envelope_id":"' + envelope_id + '"}'
        return slow(envelope_id, payload)
    env.ack_text = ack_text
if "nofuture" in patches:
    DONE = Future()
    DONE.set_result(None)

    def acked_on_read(self):
        self._future = DONE
        self._run.acknowledge(env.ack_text(self.envelope_id), self._via, None)
    env.SocketModeRequest.acked_on_read = acked_on_read
if "batch" in patches:
    def _write_bound(self, done):
        c = self.ctx
        while True:
            with c.lock:
                target = self._bound_target()
                if target is None:
                    return
                items = []
                while self.bound and len(items) < 512:
                    via = self.bound[0].via
                    if (via if via is not None and via.writable else self.transport) is not target:
                        break
                    items.append(self.bound.popleft())
            try:
                target._write_frame(b"".join(client_frame(i.text.encode(), 0x1) for i in items))
            except NotWritten:
                for i in items:
                    i.via = None
                with c.lock:
                    self.bound.extendleft(reversed(items))
                continue
            except WebsocketError:
                raise
            done.extend(Resolve(i.future, result=None) for i in items if i.future is not None)
    run_mod.Run._write_bound = _write_bound

runpy.run_path(sys.argv[0], run_name="__main__")
