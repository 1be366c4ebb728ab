"""WebSocket framing shared by the flood server's RTM and Socket Mode sides (stdlib only)."""

from __future__ import annotations

import struct
from typing import List, Tuple

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked server frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + _U16.pack(n) + payload
    return bytes((0x80 | opcode, 127)) + _U64.pack(n) + payload


def unmask(mask: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte client ``mask`` (one big-int XOR, no per-byte loop)."""
    length = len(data)
    if not length or mask == b"\0\0\0\0":
        return data
    words = (length + 3) // 4
    key = int.from_bytes(mask * words, "big") >> (8 * (4 * words - length))
    return (int.from_bytes(data, "big") ^ key).to_bytes(length, "big")


def parse_frames(buf: bytes) -> Tuple[List[Tuple[int, bytes]], bytes]:
    """Every complete (masked or not) frame at the start of ``buf``, and the rest."""
    out: List[Tuple[int, bytes]] = []
    pos, end = 0, len(buf)
    while end - pos >= 2:
        b1 = buf[pos + 1]
        length, head = b1 & 0x7F, 2
        if length == 126:
            if end - pos < 4:
                break
            length, head = _U16.unpack_from(buf, pos + 2)[0], 4
        elif length == 127:
            if end - pos < 10:
                break
            length, head = _U64.unpack_from(buf, pos + 2)[0], 10
        masked = b1 & 0x80
        total = head + (4 if masked else 0) + length
        if end - pos < total:
            break
        start = pos + head + (4 if masked else 0)
        data = buf[start:start + length]
        if masked:
            data = unmask(buf[pos + head:pos + head + 4], data)
        out.append((buf[pos] & 0x0F, data))
        pos += total
    return out, buf[pos:]
