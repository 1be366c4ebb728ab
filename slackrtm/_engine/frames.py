"""The WebSocket wire format as a client writes it (RFC 6455 5.2-5.3): opcodes, size
limits and masked client frames. Pure functions and constants, shared by the transport and
the benchmarks."""

from __future__ import annotations

import os
import struct
import threading

__all__ = ["MAX_MESSAGE", "OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG",
           "OP_TEXT", "U16", "U64", "client_frame"]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Largest message accepted; a bigger one fails the connection instead of eating memory.
MAX_MESSAGE = 64 * 1024 * 1024
U16 = struct.Struct("!H")
U64 = struct.Struct("!Q")


class _MaskKeys:
    """Masking keys from the OS's strong random source, fetched 4 KiB at a time (one
    getrandom call per 1,024 frames instead of one per frame)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._pos = 0

    def take(self) -> bytes:
        with self._lock:
            if self._pos >= len(self._pool):
                self._pool = os.urandom(4096)
                self._pos = 0
            key = self._pool[self._pos:self._pos + 4]
            self._pos += 4
            return key


_mask_keys = _MaskKeys()


def client_frame(payload: bytes, opcode: int) -> bytes:
    """A whole, masked client frame (RFC 6455 5.2-5.3) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + U16.pack(n)
    else:
        head = bytes((0x80 | opcode, 0xFF)) + U64.pack(n)
    key = _mask_keys.take()
    if n:
        # XOR with the repeated key as one big-integer operation: fast in C at any size
        stream = (key * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            n, "big")
    else:
        masked = b""
    return head + key + masked
