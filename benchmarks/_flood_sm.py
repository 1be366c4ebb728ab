"""Socket Mode for the flood server (stdlib only): one-time connection URLs, hello,
envelope floods routed to one connection at a time, acks counted, refreshes done the way
Slack does them.

Per app (the worker's tag): ``apps.connections.open`` hands out a one-time
``ws://.../socket-mode/<ticket>``; each connection gets a Socket Mode ``hello``. A flood
writes every envelope on exactly one connection: the newest open connection that has had
its hello and was not told to go, else the newest open one (a refresh in progress keeps
its old connection until the next one is up), else it waits for one. A refresh sends
``disconnect`` (``warning`` first, then ``refresh_requested`` after ``warning`` seconds,
or ``refresh_requested`` at once) and closes the old connection ``grace`` seconds after
``refresh_requested``. Nothing is ever delivered again (no retries): an envelope written
on a connection the client dropped is lost, where Slack would redeliver it later.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Any, Dict, List, Optional

from _wsframe import frame, parse_frames

_TEXT = "benchmark flood message " + "lorem ipsum dolor sit amet " * 6
# The RTM flood's message event plus "t": when the server's schedule sends it (wall clock).
_EVENT = ('{"type":"message","channel":"C024BE91L","user":"U2147483697","text":"' + _TEXT
          + '","ts":"1700000000.%06d","seq":%d,"t":%.6f,"team":"T024BE7LD",'
          '"client_msg_id":"bench"}')
_ENVELOPE_HEAD = '{"envelope_id":"%08x-%04x-4bec-8000-%012x","payload":{"token":"bench",' \
    '"team_id":"T024BE7LD","context_team_id":"T024BE7LD","api_app_id":"A0BENCH","event":'
_ENVELOPE_TAIL = ',"type":"event_callback","event_id":"Ev%04X%08d","event_time":1700000000,' \
    '"authorizations":[{"enterprise_id":null,"team_id":"T024BE7LD","user_id":"U0BENCH",' \
    '"is_bot":true,"is_enterprise_install":false}],"is_ext_shared_channel":false,' \
    '"event_context":"4-bench"},"type":"events_api","accepts_response_payload":false,' \
    '"retry_attempt":0,"retry_reason":""}'
_ENVELOPE = (_ENVELOPE_HEAD + _EVENT + _ENVELOPE_TAIL).encode()

# The realistic envelope (~1.9 KB): a channel message as Slack's Events API sends it today,
# with the rich_text ``blocks`` the text was typed as (a user mention, bold and italic
# runs, a link, an emoji, a bulleted list, non-ASCII text), ``client_msg_id``,
# ``channel_type`` and ``event_ts``; around it the event_callback's ``authorizations``,
# ``context_team_id`` / ``context_enterprise_id``, a base64 ``event_context`` and the
# envelope's fields. Written from Slack's documented shapes (Events API event wrapper,
# ``message`` event, rich text blocks), plus the benchmark's ``seq`` and ``t``.
_R_TEXT = ("<@U0BENCH> deploy report for *checkout-api*: _all green_ on "
           "<https://ci.example.com/builds/4711|build 4711> :rocket: caf\u00e9 "
           "d\u00e9j\u00e0 vu\\n\u2022 latency p99 212 ms\\n\u2022 error rate 0.02%")
_R_BLOCKS = (
    '[{"type":"rich_text","block_id":"Xq4rT","elements":['
    '{"type":"rich_text_section","elements":['
    '{"type":"user","user_id":"U0BENCH"},{"type":"text","text":" deploy report for "},'
    '{"type":"text","text":"checkout-api","style":{"bold":true}},'
    '{"type":"text","text":": "},{"type":"text","text":"all green","style":{"italic":true}},'
    '{"type":"text","text":" on "},'
    '{"type":"link","url":"https://ci.example.com/builds/4711","text":"build 4711"},'
    '{"type":"text","text":" "},{"type":"emoji","name":"rocket","unicode":"1f680"},'
    '{"type":"text","text":" caf\u00e9 d\u00e9j\u00e0 vu"}]},'
    '{"type":"rich_text_list","style":"bullet","indent":0,"border":0,"elements":['
    '{"type":"rich_text_section","elements":[{"type":"text","text":"latency p99 212 ms"}]},'
    '{"type":"rich_text_section","elements":[{"type":"text","text":"error rate 0.02%"}]}'
    ']}]}]')
_R_EVENT = ('{"user":"U2147483697","type":"message","ts":"1700000000.%06d","client_msg_id":'
            '"5b3e1c9a-8d2f-4e7b-9a61-0c4d2e8f7a13","text":"' + _R_TEXT.replace("%", "%%")
            + '","team":"T024BE7LD","blocks":' + _R_BLOCKS.replace("%", "%%")
            + ',"channel":"C024BE91L","event_ts":"1700000000.000100","channel_type":"channel",'
            '"seq":%d,"t":%.6f}')
_R_HEAD = '{"envelope_id":"%08x-%04x-4bec-8000-%012x","payload":{"token":"bench",' \
    '"team_id":"T024BE7LD","context_team_id":"T024BE7LD","context_enterprise_id":null,' \
    '"api_app_id":"A0BENCH","event":'
_R_TAIL = ',"type":"event_callback","event_id":"Ev%04X%08d","event_time":1700000000,' \
    '"authorizations":[{"enterprise_id":null,"team_id":"T024BE7LD","user_id":"U0BENCH",' \
    '"is_bot":true,"is_enterprise_install":false}],"is_ext_shared_channel":false,' \
    '"event_context":"4-eyJldCI6Im1lc3NhZ2UiLCJ0aWQiOiJUMDI0QkU3TEQiLCJhaWQiOiJBMEJF' \
    'TkNIIiwiY2lkIjoiQzAyNEJFOTFMIn0"},"type":"events_api","accepts_response_payload":' \
    'false,"retry_attempt":0,"retry_reason":""}'
#: Envelope kinds a flood can send: (head, whole envelope template, tail).
ENVELOPES = {
    "small": (_ENVELOPE_HEAD, _ENVELOPE, _ENVELOPE_TAIL),
    "realistic": (_R_HEAD, (_R_HEAD + _R_EVENT + _R_TAIL).encode(), _R_TAIL),
}
_ACK = re.compile(rb'"envelope_id"\s*:\s*"([0-9a-f]{8})-([0-9a-f]{4})-4bec-8000-([0-9a-f]{12})"')
_BATCH = 512  # burst floods: envelopes per write
CLOSE_AFTER = 1.0  # a connection we closed is dropped if the client does not answer in time


class SMConnection:
    """One server side Socket Mode connection: a reader thread and a locked writer."""

    def __init__(self, app: SMApp, sock: socket.socket, rest: bytes, cid: int) -> None:
        self.app = app
        self.sock = sock
        self.rest = rest
        self.cid = cid
        self.tag = app.tag
        self.lock = threading.Lock()
        self.ready = False  # hello written
        self.retiring = False  # told to go (disconnect sent)
        self.closed = False  # no more writes

    def write(self, data: bytes) -> Optional[bool]:
        """True: written; None: closed before (nothing written); False: the write failed."""
        with self.lock:
            if self.closed:
                return None
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self.closed = True
                return False

    def send_json(self, obj: Dict[str, Any]) -> Optional[bool]:
        return self.write(frame(json.dumps(obj, separators=(",", ":")).encode()))

    def close_gracefully(self) -> None:
        """A close frame, no more writes; dropped if the client does not answer it."""
        with self.lock:
            if self.closed:
                return
            try:
                self.sock.sendall(frame(b"\x03\xe8refresh", 0x8))
            except OSError:
                pass
            self.closed = True
        timer = threading.Timer(CLOSE_AFTER, self.drop)
        timer.daemon = True
        timer.start()

    def drop(self) -> None:
        with self.lock:
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def run(self) -> None:
        app = self.app
        with app.cond:
            count = sum(1 for c in app.conns if not c.closed)
        self.send_json({"type": "hello", "num_connections": count,
                        "debug_info": {"host": "bench-flood", "build_number": 1,
                                       "approximate_connection_time": 18060},
                        "connection_info": {"app_id": "A0BENCH"}})
        app.connected(self)
        buf = self.rest
        try:
            while True:
                chunk = self.sock.recv(262144)
                if not chunk:
                    break
                frames, buf = parse_frames(buf + chunk if buf else chunk)
                for opcode, payload in frames:
                    if opcode == 0x1:
                        app.on_text(payload)
                    elif opcode == 0x9:
                        self.write(frame(payload, 0xA))
                    elif opcode == 0x8:
                        self.write(frame(payload[:2], 0x8))  # no-op when we closed first
                        return
        except OSError:
            pass
        finally:
            app.forget(self)
            self.drop()


class SMApp:
    """One app's connections, floods, acks and refreshes (selected by the worker's tag)."""

    def __init__(self, tag: str, number: int) -> None:
        self.tag = tag
        self.number = number
        self.cond = threading.Condition()
        self.conns: List[SMConnection] = []
        self.cids = 0
        self.gen = 0
        self.acked = bytearray(0)
        self.acked_count = self.ack_dups = self.ack_unknown = self.other = 0
        self.sent = 0  # envelopes written in the current flood, sentinel included

    # ------------------------------------------------------------ connections
    def attach(self, sock: socket.socket, rest: bytes) -> None:
        with self.cond:
            self.cids += 1
            conn = SMConnection(self, sock, rest, self.cids)
            self.conns.append(conn)
        conn.run()

    def connected(self, conn: SMConnection) -> None:
        with self.cond:
            conn.ready = True
            self.cond.notify_all()

    def forget(self, conn: SMConnection) -> None:
        with self.cond:
            if conn in self.conns:
                self.conns.remove(conn)

    def _target(self) -> Optional[SMConnection]:
        live = [c for c in self.conns if c.ready and not c.closed]
        fresh = [c for c in live if not c.retiring]
        return (fresh or live or [None])[-1]

    def wait_target(self, timeout: float) -> Optional[SMConnection]:
        with self.cond:
            self.cond.wait_for(lambda: self._target() is not None, timeout)
            return self._target()

    # ------------------------------------------------------------ acks
    def on_text(self, payload: bytes) -> None:
        match = _ACK.search(payload)
        if match is None:
            self.other += 1
            return
        gen, seq = int(match.group(2), 16), int(match.group(3), 16)
        with self.cond:
            if gen != self.gen or seq >= len(self.acked):
                self.ack_unknown += 1
            elif self.acked[seq]:
                self.ack_dups += 1
            else:
                self.acked[seq] = 1
                self.acked_count += 1

    def stats(self) -> Dict[str, Any]:
        with self.cond:
            return {"sent": self.sent, "acked": self.acked_count, "ack_dups": self.ack_dups,
                    "ack_unknown": self.ack_unknown, "other_frames": self.other,
                    "open": sum(1 for c in self.conns if not c.closed), "opened": self.cids}

    # ------------------------------------------------------------ floods
    def render(self, gen: int, first: int, count: int, stamp: float,
               template: bytes = _ENVELOPE) -> bytes:
        parts: List[bytes] = []
        app = self.number
        for seq in range(first, first + count):
            body = template % (app, gen, seq, seq % 1000000, seq, stamp, gen, seq)
            parts.append(b"\x81\x7e" + len(body).to_bytes(2, "big") + body)
        return b"".join(parts)

    def refresh(self, warning: float, grace: float, seq_at: int) -> Dict[str, Any]:
        """Tell the connection envelopes go to now to go; return the record of it."""
        with self.cond:
            old = self._target()
            if old is None:
                return {"seq_at": seq_at, "skipped": True}
            old.retiring = True
        first = "warning" if warning > 0 else "refresh_requested"
        rec = {"seq_at": seq_at, "old": old.cid, "reason": first, "t_disconnect": time.time()}
        old.send_json({"type": "disconnect", "reason": first,
                       "debug_info": {"host": "bench-flood"}})

        def final() -> None:
            old.send_json({"type": "disconnect", "reason": "refresh_requested",
                           "debug_info": {"host": "bench-flood"}})
            later(grace, old.close_gracefully)

        if warning > 0:
            later(warning, final)
        else:
            later(grace, old.close_gracefully)
        return rec

    def flood(self, n: int, pace: float, interval: float = 0.005, refreshes: int = 0,
              every: float = 0.5, lead: float = 1.0, warning: float = 0.0,
              grace: float = 1.0, envelope: str = "small") -> None:
        """``n`` envelopes (``pace``/s in batches every ``interval`` s, or a burst), with
        ``refreshes`` refreshes ``every`` s from ``lead`` s on; then the sentinel.
        ``envelope`` picks the kind (``ENVELOPES``: ``small`` ~1 KB, ``realistic``)."""
        head_t, template, tail_t = ENVELOPES[envelope]
        with self.cond:
            self.gen += 1
            gen = self.gen
            self.acked = bytearray(n + 1)
            self.acked_count = self.ack_dups = self.ack_unknown = self.sent = 0
        routes: List[List[Any]] = []
        recs: List[Dict[str, Any]] = []
        start_wall, start = time.time(), time.monotonic()
        batch = _BATCH if pace <= 0 else max(1, round(pace * interval))
        next_refresh, failed, last = lead, 0, None
        sent = 0
        while sent < n and gen == self.gen:
            count = min(batch, n - sent)
            if pace > 0:
                delay = start + sent / pace - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                stamp = start_wall + sent / pace  # the schedule, whatever held the server up
            else:
                stamp = time.time()
            if len(recs) < refreshes and time.monotonic() - start >= next_refresh:
                recs.append(self.refresh(warning, grace, sent))
                next_refresh += every
            conn = self.wait_target(10.0)
            if conn is None:
                break
            if conn is not last:
                routes.append([sent, conn.cid, time.time()])
                last = conn
            written = conn.write(self.render(gen, sent, count, stamp, template))
            if written is None:
                continue  # closed meanwhile: nothing went out, send it on the next one
            failed += 0 if written else count
            sent += count
            with self.cond:
                self.sent = sent
        done = {"type": "bench_done", "seq": n, "sent": sent, "flood_start": start_wall,
                "flood_end": time.time(), "routes": routes, "refreshes": recs,
                "write_failed": failed, "interval": interval if pace > 0 else 0.0}
        head = (head_t % (self.number, gen, n)).encode()
        tail = (tail_t % (gen, n)).encode()
        body = head + json.dumps(done, separators=(",", ":")).encode() + tail
        for _ in range(3):
            conn = self.wait_target(10.0)
            if conn is not None and conn.write(frame(body)) is not None:
                break
        with self.cond:
            self.sent = sent + 1

    def command(self, command: str, query: Dict[str, str]) -> Optional[Dict[str, Any]]:
        """A control command for this app; None when unknown."""
        if command == "flood":
            kwargs: Dict[str, Any] = {k: float(v) for k, v in query.items()
                      if k in ("pace", "interval", "every", "lead", "warning", "grace")}
            args = (int(query.get("n", "100000")),)
            kwargs["refreshes"] = int(query.get("refreshes", "0"))
            envelope = query.get("envelope", "small")
            if envelope not in ENVELOPES:
                return {"ok": False, "error": f"unknown envelope kind {envelope!r}"}
            kwargs["envelope"] = envelope
            threading.Thread(target=self.flood, args=args, kwargs=kwargs, daemon=True).start()
        elif command == "drop":
            with self.cond:
                conns = list(self.conns)
            for conn in conns:
                conn.drop()
        elif command != "stats":
            return None
        return {"ok": True, "sm": self.stats()}


def later(delay: float, fn: Any) -> None:
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()
