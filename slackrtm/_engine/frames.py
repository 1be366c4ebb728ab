"""The WebSocket wire format as a client writes it (RFC 6455 5.2-5.3): opcodes, size
limits and masked client frames. Pure functions and constants, shared by the transport and
the benchmarks."""

from __future__ import annotations

import os
import struct
import threading
from typing import List

__all__ = ["MAX_MESSAGE", "OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG",
           "OP_TEXT", "U16", "U64", "client_frame", "client_frames"]

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

    def take_many(self, count: int) -> bytes:
        """``count`` keys in one call, as one string of ``4 * count`` bytes."""
        want = 4 * count
        with self._lock:
            keys = self._pool[self._pos:self._pos + want]
            self._pos += len(keys)
            if len(keys) < want:
                more = want - len(keys)
                self._pool = os.urandom(max(4096, more))
                keys += self._pool[:more]
                self._pos = more
            return keys


_mask_keys = _MaskKeys()


def _head(n: int, opcode: int) -> bytes:
    """The header of a masked client frame of ``n`` payload bytes."""
    if n < 126:
        return bytes((0x80 | opcode, 0x80 | n))
    if n < 65536:
        return bytes((0x80 | opcode, 0xFE)) + U16.pack(n)
    return bytes((0x80 | opcode, 0xFF)) + U64.pack(n)


def client_frame(payload: bytes, opcode: int) -> bytes:
    """A whole, masked client frame (RFC 6455 5.2-5.3) carrying ``payload``."""
    n = len(payload)
    head = _head(n, opcode)
    key = _mask_keys.take()
    if n:
        # XOR with the repeated key as one big-integer operation: fast in C at any size
        stream = (key * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            n, "big")
    else:
        masked = b""
    return head + key + masked


#: Headers of short frames (payload under 126 bytes, an ack's), by opcode then length.
_SHORT_HEADS = {op: [bytes((0x80 | op, 0x80 | n)) for n in range(126)]
                for op in (OP_TEXT, OP_BINARY)}
_ZEROS = bytes(14)  # the longest header and a key: left as they are by the mask


def client_frames(payloads: List[bytes], opcode: int = OP_TEXT) -> bytes:
    """Several whole, masked client frames, one after the other, ready for one write:
    the same bytes as joining :func:`client_frame` of each, with a masking key of its
    own per frame, but masked by one XOR over the whole batch (Socket Mode writes its
    acknowledgements dozens at a time)."""
    if len(payloads) == 1:
        return client_frame(payloads[0], opcode)
    keys = _mask_keys.take_many(len(payloads))
    heads = _SHORT_HEADS.get(opcode)
    plain: List[bytes] = []
    stream: List[bytes] = []
    for i, payload in enumerate(payloads):
        n = len(payload)
        key = keys[4 * i:4 * i + 4]
        # the header and the key stay as they are; the payload is XORed with its key
        if n < 126 and heads is not None:
            plain += (heads[n], key, payload)
            stream += (_ZEROS[:6], (key * 32)[:n])
        else:
            head = _head(n, opcode)
            plain += (head, key, payload)
            stream += (_ZEROS[:len(head) + 4], (key * (n // 4 + 1))[:n])
    data = b"".join(plain)
    return (int.from_bytes(data, "big") ^ int.from_bytes(b"".join(stream), "big")).to_bytes(
        len(data), "big")
