"""RFC 6455 server side, by hand: handshake arithmetic, frame encoding and an incremental parser.

No I/O here. The parser takes bytes read from the socket and gives complete messages and
control frames back; the encoder builds unmasked server frames.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

MAX_MESSAGE = 16 * 1024 * 1024


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering a client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_client_key(key: Optional[str]) -> bool:
    """Whether ``key`` is base64 of exactly 16 bytes, as RFC 6455 section 4.1 requires."""
    if not key:
        return False
    try:
        return len(base64.b64decode(key.strip().encode("ascii"), validate=True)) == 16
    except (ValueError, UnicodeEncodeError):
        return False


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked (server to client) frame, choosing the 7, 16 or 64-bit length form."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


def encode_close(code: Optional[int] = CLOSE_NORMAL, reason: str = "") -> bytes:
    """A close frame; ``code=None`` sends an empty close payload."""
    if code is None:
        return encode_frame(OP_CLOSE, b"")
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask``, using big-integer arithmetic (done in C)."""
    n = len(payload)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(n, "big")


class ProtocolError(Exception):
    """The peer broke RFC 6455; ``code`` is the close code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Message:
    """A complete data message (``opcode`` text or binary, fragments joined) or control frame."""

    opcode: int
    payload: bytes


class FrameParser:
    """Incremental parser of client frames: feed bytes, get complete messages.

    Enforces what a server must: every client frame masked, no RSV bits, control frames
    short and unfragmented, continuation frames only inside a fragmented message.
    """

    def __init__(self, require_mask: bool = True, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._require_mask = require_mask
        self._max = max_message
        self._frag_opcode: Optional[int] = None
        self._frag_parts: List[bytes] = []
        self._frag_size = 0

    def feed(self, data: bytes) -> List[Message]:
        """Add received bytes; return every message completed by them, in order."""
        self._buf += data
        out: List[Message] = []
        pos = 0
        buf = self._buf
        while True:
            frame = self._next_frame(buf, pos)
            if frame is None:
                break
            pos, fin, opcode, payload = frame
            msg = self._assemble(fin, opcode, payload)
            if msg is not None:
                out.append(msg)
        if pos:
            del buf[:pos]
        return out

    def _next_frame(self, buf: bytearray, pos: int) -> Optional[Tuple[int, bool, int, bytes]]:
        avail = len(buf) - pos
        if avail < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        if b0 & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV bits set without an extension")
        fin = bool(b0 & 0x80)
        opcode = b0 & 0x0F
        masked = bool(b1 & 0x80)
        length = b1 & 0x7F
        head = 2
        if length == 126:
            head = 4
            if avail < head:
                return None
            length = struct.unpack_from("!H", buf, pos + 2)[0]
        elif length == 127:
            head = 10
            if avail < head:
                return None
            length = struct.unpack_from("!Q", buf, pos + 2)[0]
        if opcode >= 0x8 and (length > 125 or not fin):
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "invalid control frame")
        if length > self._max:
            raise ProtocolError(CLOSE_TOO_BIG, "frame too big")
        if self._require_mask and not masked:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frame not masked")
        mask_len = 4 if masked else 0
        total = head + mask_len + length
        if avail < total:
            return None
        start = pos + head + mask_len
        payload = bytes(buf[start:start + length])
        if masked:
            payload = unmask(payload, bytes(buf[pos + head:pos + head + 4]))
        return pos + total, fin, opcode, payload

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> Optional[Message]:
        if opcode >= 0x8:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            return Message(opcode, payload)
        if opcode == OP_CONT:
            if self._frag_opcode is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation without a start")
            self._frag_parts.append(payload)
            self._frag_size += len(payload)
            if self._frag_size > self._max:
                raise ProtocolError(CLOSE_TOO_BIG, "message too big")
            if not fin:
                return None
            msg = Message(self._frag_opcode, b"".join(self._frag_parts))
            self._frag_opcode, self._frag_parts, self._frag_size = None, [], 0
            return msg
        if opcode not in (OP_TEXT, OP_BINARY):
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        if self._frag_opcode is not None:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        if fin:
            return Message(opcode, payload)
        self._frag_opcode, self._frag_parts, self._frag_size = opcode, [payload], len(payload)
        return None


def parse_close(payload: bytes) -> Tuple[Optional[int], str]:
    """The (code, reason) of a close frame's payload; (None, "") when it is empty."""
    if len(payload) < 2:
        return None, ""
    code = struct.unpack("!H", payload[:2])[0]
    return code, payload[2:].decode("utf-8", "replace")


def text_frame(data: Union[str, bytes]) -> bytes:
    """A text frame carrying ``data`` (``bytes`` are sent as they are, valid UTF-8 or not)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return encode_frame(OP_TEXT, raw)
