"""The playground's hub: what FakeSlack shows a browser, as a stream of numbered items.

FakeSlack hands the hub (its ``_tap``) every frame written or read, every workspace event
and every Web API call once answered. The hub keeps the last :data:`KEEP` items, each a
``(kind, data)`` pair: ``event`` (a workspace event, exactly as bots get it), ``log`` (one
line of the event log: a frame in or out, an ack, a call; tokens redacted), ``note`` (an
answer the page shows, such as a slash command's ack payload) and ``conns`` (the open
connections changed). Readers (the page's event streams) wait on the hub's condition: an
idle hub costs nothing.
"""

from __future__ import annotations

import json
import re
import struct
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from slackrtm.testing._calls import ApiCall
    from slackrtm.testing._conn import FakeConnection

#: How many items the hub keeps for a page that (re)connects.
KEEP = 2000
#: Longest frame text kept in a log line (the page shows the start of longer ones).
TEXT_LIMIT = 4000
Item = Tuple[int, str, Dict[str, Any]]
_TOKEN = re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+")


def server_frames(data: bytes) -> Iterable[Tuple[int, bytes]]:
    """The ``(opcode, payload)`` of each unmasked frame in ``data`` (what a server writes),
    skipping an HTTP handshake response at the start."""
    if data.startswith(b"HTTP/"):
        end = data.find(b"\r\n\r\n")
        data = data[end + 4:] if end >= 0 else b""
    pos, size = 0, len(data)
    while pos + 2 <= size:
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            if pos + 2 > size:
                return
            (length,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif length == 127:
            if pos + 8 > size:
                return
            (length,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        yield opcode, data[pos:pos + length]
        pos += length


class Hub:
    """Collects what happens in one FakeSlack for the playground's pages (thread-safe)."""

    def __init__(self, secrets: Callable[[], List[str]]) -> None:
        self._secrets = secrets
        self.cond = threading.Condition()
        self._items: Deque[Item] = deque(maxlen=KEEP)
        self._seq = 0
        self.closed = False
        #: Called with the text of each Socket Mode ack as it is read (reader thread).
        self.on_ack: Optional[Callable[[str], None]] = None

    # -- the tap FakeSlack calls (never blocks: appends under the hub's own lock) ---------
    def frame(self, conn: FakeConnection, direction: str, data: Any) -> None:
        """A frame written (``out``), read (``in``), or the connection ended (``closed``)."""
        if direction == "closed":
            self.push("log", {"time": time.time(), "conn": conn.id, "kind": conn.kind,
                              "dir": "out", "what": "closed",
                              "text": f"connection #{conn.id} closed"})
            self.push("conns", {"id": conn.id, "kind": conn.kind, "open": False})
            return
        if direction == "in":
            self._log(conn, "in", str(data))
            return
        for opcode, payload in server_frames(bytes(data)):
            if opcode == 0x1:
                self._log(conn, "out", payload.decode("utf-8", "replace"))
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                self._log(conn, "out", json.dumps({"close": code, "reason": reason}),
                          what="close")
            elif opcode in (0x9, 0xA):
                self._log(conn, "out", "", what="ping" if opcode == 0x9 else "pong")

    def event(self, event: Dict[str, Any]) -> None:
        """A workspace event FakeSlack sent (or would send) every client (a token in a
        message's text is redacted too: the page never shows one)."""
        self.push("event", json.loads(self.redact(json.dumps(event))))

    def call(self, call: ApiCall) -> None:
        """A Web API call, once answered."""
        answer = call.response or {}
        outcome = "ok" if answer.get("ok") else str(answer.get("error") or call.status)
        shown = {k: v for k, v in call.params.items() if k != "token"}
        self.push("log", {"time": time.time(), "conn": None, "kind": "api", "dir": "in",
                          "what": call.method, "text": self.redact(json.dumps(shown)),
                          "outcome": outcome})

    # -- the rest -------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """``text`` without FakeSlack's tokens (or anything shaped like a Slack token)."""
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "<redacted>")
        return _TOKEN.sub("<redacted>", text)

    def _log(self, conn: FakeConnection, direction: str, text: str,
             what: Optional[str] = None) -> None:
        if what is None:
            what = "?"
            try:
                frame = json.loads(text)
            except ValueError:
                frame = None
            if isinstance(frame, dict):
                what = str(frame.get("type") or ("ack" if "envelope_id" in frame else
                                                  "reply" if "reply_to" in frame else "?"))
                if "envelope_id" in frame and direction == "in":
                    what = "ack"
                elif "reply_to" in frame and direction == "out" and "type" not in frame:
                    what = "reply"
        shown = self.redact(text)
        if len(shown) > TEXT_LIMIT:
            shown = shown[:TEXT_LIMIT] + f"... ({len(shown)} characters)"
        self.push("log", {"time": time.time(), "conn": conn.id, "kind": conn.kind,
                          "dir": direction, "what": what, "text": shown})
        if direction == "in" and what == "ack" and self.on_ack is not None:
            self.on_ack(text)

    def push(self, kind: str, data: Dict[str, Any]) -> int:
        """Add an item; wakes every reader. Returns its number."""
        with self.cond:
            self._seq += 1
            self._items.append((self._seq, kind, data))
            self.cond.notify_all()
            return self._seq

    @property
    def last(self) -> int:
        """The number of the newest item (0: none yet)."""
        with self.cond:
            return self._seq

    def since(self, seq: int, kinds: Optional[Tuple[str, ...]] = None) -> List[Item]:
        """The items after number ``seq`` still kept, oldest first (of ``kinds`` only)."""
        with self.cond:
            return [i for i in self._items if i[0] > seq and (kinds is None or i[1] in kinds)]

    def wait(self, seq: int, timeout: float) -> bool:
        """Block until an item after ``seq`` exists or the hub closes (False: timed out)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._seq <= seq and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    def close(self) -> None:
        """Wake every reader for good."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
