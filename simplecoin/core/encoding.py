"""Strict byte codec: little-endian integers and CompactSize lengths, as Bitcoin writes them.

Decoding is strict: a short read, a non-minimal length or bytes left over are all `DecodeError`.
"""

from __future__ import annotations

import struct

from simplecoin.core.errors import DecodeError

MAX_LIST_LENGTH = 1_000_000  # no message we accept can hold more items than bytes


class Writer:
    """Collects serialized fields."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u32(self, value: int) -> Writer:
        self._parts.append(struct.pack("<I", value))
        return self

    def i32(self, value: int) -> Writer:
        self._parts.append(struct.pack("<i", value))
        return self

    def i64(self, value: int) -> Writer:
        self._parts.append(struct.pack("<q", value))
        return self

    def raw(self, data: bytes) -> Writer:
        self._parts.append(data)
        return self

    def compact_size(self, n: int) -> Writer:
        # Bitcoin: WriteCompactSize
        if n < 0xFD:
            self._parts.append(bytes([n]))
        elif n <= 0xFFFF:
            self._parts.append(b"\xfd" + struct.pack("<H", n))
        elif n <= 0xFFFFFFFF:
            self._parts.append(b"\xfe" + struct.pack("<I", n))
        else:
            self._parts.append(b"\xff" + struct.pack("<Q", n))
        return self

    def var_bytes(self, data: bytes) -> Writer:
        return self.compact_size(len(data)).raw(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads fields from a byte string, refusing short or malformed input."""

    def __init__(self, data: bytes) -> None:
        self.buffer = bytes(data)  # for decoders that parse a common case straight from the bytes (primitives)
        self._data = memoryview(self.buffer)
        self._pos = 0

    @property
    def pos(self) -> int:
        return self._pos

    def skip_to(self, pos: int) -> None:
        """Continue at `pos`, which a decoder reading `buffer` directly has checked is within the data."""
        if not self._pos <= pos <= len(self._data):
            raise ValueError(f"cannot move from offset {self._pos} to {pos}")  # a decoder's bug, not bad input
        self._pos = pos

    def raw(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError(f"truncated: wanted {n} bytes at offset {self._pos}, {len(self._data) - self._pos} left")
        out = self._data[self._pos : end].tobytes()
        self._pos = end
        return out

    def u32(self) -> int:
        return struct.unpack("<I", self.raw(4))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.raw(4))[0]

    def i64(self) -> int:
        return struct.unpack("<q", self.raw(8))[0]

    def compact_size(self) -> int:
        first = self.raw(1)[0]
        if first < 0xFD:
            return first
        width, minimum = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}[first]
        n = int.from_bytes(self.raw(width), "little")
        if n < minimum:
            raise DecodeError(f"non-canonical length encoding {n}")  # Bitcoin: "non-canonical ReadCompactSize()"
        return n

    def length(self, limit: int = MAX_LIST_LENGTH) -> int:
        n = self.compact_size()
        if n > limit:
            raise DecodeError(f"length {n} exceeds {limit}")
        return n

    def var_bytes(self, limit: int = MAX_LIST_LENGTH) -> bytes:
        return self.raw(self.length(limit))

    def end(self) -> None:
        """Refuse leftover bytes."""
        left = len(self._data) - self._pos
        if left:
            raise DecodeError(f"{left} trailing bytes")
