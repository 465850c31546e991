"""The cross-language value codec: msgpack as specified in docs/xlang.md.

=========================  =====================================================================
msgpack                    Python
=========================  =====================================================================
nil / bool / float64 / str ``None`` / ``bool`` / ``float`` / ``str``
int (int64 / uint64)       ``int`` (smallest encoding; positive ints use the unsigned forms)
bin                        ``bytes`` (``bytearray`` / ``memoryview`` accepted on encode)
array                      ``list`` (``tuple`` accepted on encode)
map (str keys)             ``dict``
ext 1                      :class:`~tsray.refs.ObjectRef`; payload = object id, UTF-8
ext 2                      ``numpy.ndarray``; payload = msgpack ``[dtype, shape, bytes]``, little endian
ext 3                      ``int`` outside int64/uint64; payload = decimal digits, ASCII
ext 4                      :class:`~tsray.refs.ActorHandle`; payload = msgpack ``[actorId, className, methods]``
=========================  =====================================================================

Anything else raises :class:`SerializationError` naming the path (``value[2].weights``) and the type.
Decoding an ndarray does not copy: the array is a read-only view of the input buffer (keep or
``.copy()`` it as needed).
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from .refs import ActorHandle, ObjectRef

__all__ = [
    "DTYPES",
    "EXT_OBJECT_REF",
    "EXT_NDARRAY",
    "EXT_BIGINT",
    "EXT_ACTOR_HANDLE",
    "SerializationError",
    "XlangDecodeError",
    "encode",
    "encode_with_refs",
    "decode",
    "Decoder",
]

EXT_OBJECT_REF = 1
EXT_NDARRAY = 2
EXT_BIGINT = 3
EXT_ACTOR_HANDLE = 4

#: The numpy dtypes that cross languages (each maps to a TypeScript TypedArray).
DTYPES: tuple[str, ...] = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")
_DTYPE_SET = frozenset(DTYPES)
_LE_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in DTYPES}

_INT_MIN = -(2**63)
_UINT_MAX = 2**64 - 1
_IDENT = re.compile(r"^[A-Za-z_$][\w$]*$")

_Ext = msgspec.msgpack.Ext
_encode_plain = msgspec.msgpack.Encoder().encode


class SerializationError(TypeError):
    """A value cannot be expressed in cross-language msgpack.

    ``path`` names where it is inside the value (``value``, ``value[3]``, ``value.config["a b"]``),
    ``type_name`` what it is.
    """

    def __init__(self, path: str, type_name: str, detail: str = "") -> None:
        super().__init__(
            f"cannot serialize {type_name} at {path}{f' ({detail})' if detail else ''}: values that cross "
            "between Python and TypeScript are None, bool, int, float, str, bytes, list/tuple, dict with str "
            "keys, numpy arrays of (u)int8..64/float32/float64, ObjectRef and ActorHandle (docs/xlang.md)"
        )
        self.path = path
        self.type_name = type_name
        self.detail = detail


class XlangDecodeError(ValueError):
    """Bytes that are not valid cross-language msgpack (bad ext payload, unknown ext type, truncation)."""


class _Unsupported(Exception):
    """Raised inside the walk; collects the path on the way up (no per-element path strings)."""

    def __init__(self, type_name: str, detail: str = "") -> None:
        super().__init__(type_name)
        self.type_name = type_name
        self.detail = detail
        self.keys: list[object] = []


def _type_name(v: object) -> str:
    if isinstance(v, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return f"function {getattr(v, '__qualname__', getattr(v, '__name__', '?'))}"
    t = type(v)
    mod = t.__module__
    return t.__qualname__ if mod in ("builtins", None) else f"{mod}.{t.__qualname__}"


def _format_path(root: str, keys: list[object]) -> str:
    out = root
    for k in reversed(keys):
        if isinstance(k, int):
            out += f"[{k}]"
        elif isinstance(k, str) and _IDENT.match(k):
            out += f".{k}"
        else:
            out += f"[{k!r}]" if not isinstance(k, str) else f'["{k}"]'
    return out


def _bin_header(n: int) -> bytes:
    if n < 0x100:
        return bytes((0xC4, n))
    if n < 0x10000:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _ndarray_payload(a: np.ndarray[Any, Any]) -> tuple[bytes, memoryview]:
    """(msgpack head ``[dtype, shape, <bin header>``, raw little-endian C-order data)."""
    name = a.dtype.name
    if name not in _DTYPE_SET or a.dtype.kind not in "iuf":
        raise _Unsupported(f"numpy.ndarray of dtype {a.dtype}", f"supported dtypes: {', '.join(DTYPES)}")
    if a.dtype.byteorder == ">":
        a = a.astype(_LE_DTYPES[name])
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    data = a.reshape(-1).data.cast("B") if a.size else memoryview(b"")
    head = b"\x93" + _encode_plain(name) + _encode_plain([int(d) for d in a.shape]) + _bin_header(data.nbytes)
    return head, data


def _ext_ndarray(a: np.ndarray[Any, Any]) -> msgspec.msgpack.Ext:
    head, data = _ndarray_payload(a)
    return _Ext(EXT_NDARRAY, head + data)


_SCALARS = (str, float, bool, bytes, type(None))


def _prep(v: Any, refs: list[str], stack: set[int]) -> Any:
    """Turn ``v`` into something msgspec encodes as specified; returns ``v`` itself when unchanged."""
    t = type(v)
    if t in _SCALARS:
        return v
    if t is int:
        return v if _INT_MIN <= v <= _UINT_MAX else _Ext(EXT_BIGINT, str(v).encode("ascii"))
    if t is list or t is tuple:
        return _prep_seq(v, refs, stack)
    if t is dict:
        return _prep_dict(v, refs, stack)
    if t is ObjectRef:
        refs.append(v.id)
        return _Ext(EXT_OBJECT_REF, v.id.encode("utf-8"))
    if t is ActorHandle:
        refs.append(v.actor_id)
        return _Ext(EXT_ACTOR_HANDLE, _encode_plain([v.actor_id, v.class_name, list(v.methods)]))
    if t is np.ndarray:
        return _ext_ndarray(v)
    if t is bytearray:
        return v
    if t is memoryview:
        return v if v.c_contiguous else v.tobytes()
    # Subclasses and numpy scalars.
    if isinstance(v, np.generic):
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.floating) and v.dtype.itemsize <= 8:
            return float(v)
        raise _Unsupported(_type_name(v))
    if isinstance(v, bool):  # pragma: no cover - bool cannot be subclassed
        return bool(v)
    if isinstance(v, int):
        return _prep(int(v), refs, stack)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, bytes):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        out = _prep_seq(v, refs, stack)
        return out if type(out) is list else list(out)
    if isinstance(v, dict):
        out = _prep_dict(v, refs, stack)
        return out if type(out) is dict else dict(out)
    if isinstance(v, ObjectRef):
        return _prep(ObjectRef(v.id), refs, stack)
    if isinstance(v, ActorHandle):
        return _prep(ActorHandle(v.actor_id, v.class_name, v.methods), refs, stack)
    if isinstance(v, np.ndarray):
        return _ext_ndarray(np.asarray(v))
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        # A dataclass crosses as a map of its fields (tsray gen-types declares it as an interface).
        return _prep_dict({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, refs, stack)
    raise _Unsupported(_type_name(v))


def _prep_seq(v: list[Any] | tuple[Any, ...], refs: list[str], stack: set[int]) -> Any:
    key = id(v)
    if key in stack:
        raise _Unsupported("cyclic structure", "msgpack cannot express cycles")
    stack.add(key)
    new: list[Any] | None = None
    i = 0
    try:
        for i, x in enumerate(v):  # noqa: B007 - i is read in the except clause
            tx = type(x)
            if tx in _SCALARS or (tx is int and _INT_MIN <= x <= _UINT_MAX):
                continue
            y = _prep(x, refs, stack)
            if y is not x:
                if new is None:
                    new = list(v)
                new[i] = y
    except _Unsupported as e:
        e.keys.append(i)
        raise
    finally:
        stack.discard(key)
    return new if new is not None else v


def _prep_dict(v: dict[Any, Any], refs: list[str], stack: set[int]) -> Any:
    key = id(v)
    if key in stack:
        raise _Unsupported("cyclic structure", "msgpack cannot express cycles")
    stack.add(key)
    new: dict[str, Any] | None = None
    k: Any = None
    try:
        for k, x in v.items():
            if type(k) is not str:
                if not isinstance(k, str):
                    raise _Unsupported(f"dict key of type {_type_name(k)}", "map keys must be str")
                k2 = str.__str__(k)
                if new is None:
                    new = dict(v)
                del new[k]
                new[k2] = x
                k = k2
            tx = type(x)
            if tx in _SCALARS or (tx is int and _INT_MIN <= x <= _UINT_MAX):
                continue
            y = _prep(x, refs, stack)
            if y is not x:
                if new is None:
                    new = dict(v)
                new[k] = y
    except _Unsupported as e:
        e.keys.append(k)
        raise
    finally:
        stack.discard(key)
    return new if new is not None else v


def encode_with_refs(value: Any, path: str = "value") -> tuple[bytes, list[str]]:
    """Encode ``value``; also return the ids it references (ObjectRef ids and actor ids, in order).

    Raises :class:`SerializationError` naming the path and type of the first unsupported part.
    """
    refs: list[str] = []
    if type(value) is np.ndarray:
        # Top level array: one copy of the data (no intermediate ext payload).
        try:
            head, data = _ndarray_payload(value)
        except _Unsupported as e:
            raise SerializationError(path, e.type_name, e.detail) from None
        n = len(head) + data.nbytes
        if n in (1, 2, 4, 8, 16):
            ext = bytes((0xD4 + (1, 2, 4, 8, 16).index(n), EXT_NDARRAY))
        elif n < 0x100:
            ext = bytes((0xC7, n, EXT_NDARRAY))
        elif n < 0x10000:
            ext = b"\xc8" + n.to_bytes(2, "big") + bytes((EXT_NDARRAY,))
        else:
            ext = b"\xc9" + n.to_bytes(4, "big") + bytes((EXT_NDARRAY,))
        return b"".join((ext, head, data)), refs
    try:
        prepared = _prep(value, refs, set())
    except _Unsupported as e:
        raise SerializationError(_format_path(path, e.keys), e.type_name, e.detail) from None
    return _encode_plain(prepared), refs


def encode(value: Any, path: str = "value") -> bytes:
    """Encode ``value`` as cross-language msgpack (docs/xlang.md).

    ``path`` names the value in error messages (``"argument 0 of f"``). Raises
    :class:`SerializationError` for values other languages cannot take.
    """
    return encode_with_refs(value, path)[0]


_nd_decoder = msgspec.msgpack.Decoder(tuple[str, list[int], memoryview])
_handle_decoder = msgspec.msgpack.Decoder(tuple[str, str, list[str]])


def _default_ref(object_id: str) -> ObjectRef:
    return ObjectRef(object_id)


def _default_handle(actor_id: str, class_name: str, methods: list[str]) -> ActorHandle:
    return ActorHandle(actor_id, class_name, methods)


def _decode_ndarray(data: memoryview) -> np.ndarray[Any, Any]:
    try:
        dtype, shape, buf = _nd_decoder.decode(data)
    except msgspec.DecodeError as e:
        raise XlangDecodeError(f"ext 2 (ndarray) payload is not msgpack [dtype, shape, bytes]: {e}") from None
    le = _LE_DTYPES.get(dtype)
    if le is None:
        raise XlangDecodeError(f"ext 2 (ndarray) has dtype {dtype!r}; supported: {', '.join(DTYPES)}")
    count = 1
    for d in shape:
        if d < 0:
            raise XlangDecodeError(f"ext 2 (ndarray) has a negative dimension in shape {shape}")
        count *= d
    if count * le.itemsize != buf.nbytes:
        raise XlangDecodeError(
            f"ext 2 (ndarray) shape {shape} of {dtype} needs {count * le.itemsize} bytes, payload has {buf.nbytes}"
        )
    arr = np.frombuffer(buf, dtype=le) if buf.nbytes else np.empty(0, dtype=le)
    if not buf.readonly and arr.flags.writeable:
        arr.flags.writeable = False
    return arr.reshape(shape)


class Decoder:
    """A reusable decoder; ``ref_factory`` / ``handle_factory`` build the ObjectRef / ActorHandle
    objects (a client passes its own to track references)."""

    def __init__(
        self,
        ref_factory: Callable[[str], Any] = _default_ref,
        handle_factory: Callable[[str, str, list[str]], Any] = _default_handle,
    ) -> None:
        self._ref = ref_factory
        self._handle = handle_factory
        #: The factories, for other decoders of the same process (V8 values).
        self.ref_factory = ref_factory
        self.handle_factory = handle_factory
        self._dec = msgspec.msgpack.Decoder(ext_hook=self._ext)

    def _ext(self, code: int, data: memoryview) -> Any:
        if code == EXT_NDARRAY:
            return _decode_ndarray(data)
        if code == EXT_OBJECT_REF:
            return self._ref(bytes(data).decode("utf-8"))
        if code == EXT_BIGINT:
            text = bytes(data).decode("ascii", errors="replace")
            try:
                return int(text, 10)
            except ValueError:
                raise XlangDecodeError(f"ext 3 (big int) payload {text!r} is not a decimal integer") from None
        if code == EXT_ACTOR_HANDLE:
            try:
                actor_id, class_name, methods = _handle_decoder.decode(data)
            except msgspec.DecodeError as e:
                raise XlangDecodeError(f"ext 4 (actor handle) payload is not msgpack [actorId, className, methods]: {e}") from None
            return self._handle(actor_id, class_name, methods)
        raise XlangDecodeError(f"unknown msgpack ext type {code} (docs/xlang.md defines 1..4)")

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """Decode one msgpack value. Arrays view ``data`` (no copy); refs and handles come from the factories."""
        try:
            return self._dec.decode(data)
        except msgspec.DecodeError as e:
            raise XlangDecodeError(f"not valid cross-language msgpack: {e}") from None


_default_decoder = Decoder()


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode cross-language msgpack bytes (numpy arrays are zero-copy, read-only views of ``data``)."""
    return _default_decoder.decode(data)
