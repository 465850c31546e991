"""A reader of V8 structured-clone bytes (``node:v8`` ``serialize``) for plain data.

TypeScript stores task errors and the node's own errors (actor died, worker crashed, cancelled...)
as V8 bytes of a plain object (``ENCODING_ERROR`` with an empty ``raw_kind``), and values that no
Python process was expected to read (a TypeScript ``put``) as ``ENCODING_V8``. This reads what maps
onto the cross-language value model (docs/xlang.md): plain objects (dict), arrays (list), strings,
numbers (integral values within 2^53 as int), bigints, booleans, null/undefined (None), Buffers and
Uint8Arrays / ArrayBuffers / DataViews (bytes), other TypedArrays (read-only 1-D numpy arrays), and
tsray ObjectRefs / actor handles (by their marker properties). Anything else (Map, Set, Date,
RegExp, Error objects, ...) raises :class:`V8DecodeError` naming the type.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["V8DecodeError", "read_v8"]


class V8DecodeError(ValueError):
    """Bytes that this reader cannot decode (not V8 data, or a type it does not support)."""


REF_MARKER = "__tsray_object_ref__"
ACTOR_MARKER = "__tsray_actor__"

# node:v8 DefaultSerializer host objects (ArrayBufferViews): type index -> numpy dtype (None: bytes).
_VIEW_TYPES: dict[int, str | None] = {
    0: "<i1",  # Int8Array
    1: None,  # Uint8Array
    2: "<u1",  # Uint8ClampedArray
    3: "<i2",
    4: "<u2",
    5: "<i4",
    6: "<u4",
    7: "<f4",
    8: "<f8",
    9: None,  # DataView
    10: None,  # Buffer
    11: "<i8",  # BigInt64Array
    12: "<u8",  # BigUint64Array
}
_TAG_NAMES = {
    ";": "Map", "'": "Set", "D": "Date", "R": "RegExp", "r": "Error", "y": "Boolean object", "x": "Boolean object",
    "n": "Number object", "z": "BigInt object", "s": "String object", "B": "ArrayBuffer", "u": "SharedArrayBuffer",
    "V": "ArrayBufferView", "w": "WebAssembly.Module", "m": "WebAssembly.Memory",
}


class _Reader:
    def __init__(
        self,
        data: bytes,
        ref: Callable[[str], Any] | None,
        handle: Callable[[str, str, list[str]], Any] | None,
    ) -> None:
        self.b = data
        self.i = 0
        self.objects: list[Any] = []
        self.ref = ref
        self.handle = handle

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
            x: float = struct.unpack("<d", self.raw(8))[0]
            # JavaScript has one number type: integral values cross as ints (as msgpack does).
            if x.is_integer() and abs(x) <= 2**53 and not (x == 0 and str(x).startswith("-")):
                return int(x)
            return x
        if t == "Z":
            return self.bigint()
        if t == '"':
            return self.raw(self.varint()).decode("latin-1")
        if t == "c":
            return self.raw(self.varint()).decode("utf-16-le", errors="surrogatepass")
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
            marker = obj.get(REF_MARKER)
            if isinstance(marker, str):
                info = obj.get(ACTOR_MARKER)
                if isinstance(info, dict):
                    methods = [str(m) for m in info.get("methods") or []]
                    cls = str(info.get("className", ""))
                    return self.handle(marker, cls, methods) if self.handle else {"actorId": marker, "className": cls, "methods": methods}
                return self.ref(marker) if self.ref else {REF_MARKER: marker}
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
        if t == "\\":  # host object: node's ArrayBufferView encoding
            kind = self.varint()
            n = self.varint()
            data = self.raw(n)
            if kind not in _VIEW_TYPES:
                raise V8DecodeError(f"V8 host object of view type {kind} is not supported")
            dtype = _VIEW_TYPES[kind]
            value: Any = data if dtype is None else np.frombuffer(data, dtype=dtype)
            self.objects.append(value)
            return value
        if t == "B":
            data = self.raw(self.varint())
            self.objects.append(data)
            return data
        raise V8DecodeError(f"a JavaScript {_TAG_NAMES.get(t, f'value with V8 tag {t!r}')} cannot be read from Python")

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


def read_v8(
    data: bytes | bytearray | memoryview,
    ref_factory: Callable[[str], Any] | None = None,
    handle_factory: Callable[[str, str, list[str]], Any] | None = None,
) -> Any:
    """Decode V8 structured-clone bytes of plain data; raises :class:`V8DecodeError` otherwise.

    ``ref_factory`` / ``handle_factory`` build ObjectRefs / actor handles from their marker objects
    (without them the marker objects stay dicts).
    """
    r = _Reader(bytes(data), ref_factory, handle_factory)
    if r.byte() != 0xFF:
        raise V8DecodeError("not V8 structured-clone data (no 0xFF header)")
    r.varint()  # format version
    return r.value()
