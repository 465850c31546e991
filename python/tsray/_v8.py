"""A small reader of V8 structured-clone bytes (``node:v8`` ``serialize``), enough for error objects.

TypeScript stores task errors and the node's own errors (actor died, worker crashed, cancelled...)
as V8 bytes of a plain object (``ENCODING_ERROR`` with an empty ``raw_kind``). This reads plain
objects, arrays, strings, numbers, bigints, booleans, null/undefined, dates and back-references;
anything else raises :class:`V8DecodeError` (the caller then reports that the value is unreadable).
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["V8DecodeError", "read_v8"]


class V8DecodeError(ValueError):
    """Bytes that this reader cannot decode (not V8 data, or a type it does not support)."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.b = data
        self.i = 0
        self.objects: list[Any] = []

    def byte(self) -> int:
        if self.i >= len(self.b):
            raise V8DecodeError("truncated V8 data")
        v = self.b[self.i]
        self.i += 1
        return v

    def varint(self) -> int:
        shift = 0
        out = 0
        while True:
            c = self.byte()
            out |= (c & 0x7F) << shift
            if not c & 0x80:
                return out
            shift += 7

    def raw(self, n: int) -> bytes:
        if self.i + n > len(self.b):
            raise V8DecodeError("truncated V8 data")
        v = self.b[self.i : self.i + n]
        self.i += n
        return v

    def value(self) -> Any:
        while True:
            tag = self.byte()
            if tag != 0:  # padding
                break
        t = chr(tag)
        if t == "_":
            return None
        if t == "0":
            return None
        if t == "T":
            return True
        if t == "F":
            return False
        if t == "I":
            z = self.varint()
            return (z >> 1) ^ -(z & 1)
        if t == "U":
            return self.varint()
        if t == "N":
            return struct.unpack("<d", self.raw(8))[0]
        if t == "Z":
            return self.bigint()
        if t == '"':
            return self.raw(self.varint()).decode("latin-1")
        if t == "c":
            return self.raw(self.varint()).decode("utf-16-le")
        if t == "S":
            return self.raw(self.varint()).decode("utf-8")
        if t == "^":
            ref = self.varint()
            if ref >= len(self.objects):
                raise V8DecodeError(f"V8 back-reference {ref} to an unknown object")
            return self.objects[ref]
        if t == "o":
            obj: dict[str, Any] = {}
            self.objects.append(obj)
            self.properties(obj, ord("{"))
            return obj
        if t == "A":
            n = self.varint()
            arr: list[Any] = []
            self.objects.append(arr)
            for _ in range(n):
                arr.append(self.value())
            extra: dict[str, Any] = {}
            self.properties(extra, ord("$"))
            self.varint()  # length again
            return arr
        if t == "a":
            n = self.varint()
            sparse: list[Any] = [None] * n
            self.objects.append(sparse)
            props: dict[str, Any] = {}
            self.properties(props, ord("@"))
            self.varint()
            for k, v in props.items():
                if k.isdigit() and int(k) < n:
                    sparse[int(k)] = v
            return sparse
        if t == "D":
            ms = struct.unpack("<d", self.raw(8))[0]
            self.objects.append(ms)
            return ms
        raise V8DecodeError(f"V8 tag {t!r} (0x{tag:02x}) is not supported by this reader")

    def properties(self, obj: dict[str, Any], end: int) -> None:
        while True:
            while self.i < len(self.b) and self.b[self.i] == 0:
                self.i += 1
            if self.i < len(self.b) and self.b[self.i] == end:
                self.i += 1
                self.varint()  # property count
                return
            key = self.value()
            obj[str(int(key)) if isinstance(key, float) and key.is_integer() else str(key)] = self.value()

    def bigint(self) -> int:
        bits = self.varint()
        n = bits >> 1
        v = int.from_bytes(self.raw(n), "little")
        return -v if bits & 1 else v


def read_v8(data: bytes | bytearray | memoryview) -> Any:
    """Decode V8 structured-clone bytes of plain data; raises :class:`V8DecodeError` otherwise."""
    r = _Reader(bytes(data))
    if r.byte() != 0xFF:
        raise V8DecodeError("not V8 structured-clone data (no 0xFF header)")
    r.varint()  # format version
    return r.value()
