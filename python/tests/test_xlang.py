"""The cross-language msgpack codec (tsray.xlang) against the shared vectors and its error paths."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tsray.refs import ActorHandle, ObjectRef
from tsray.xlang import SerializationError, XlangDecodeError, decode, encode, encode_with_refs

ROOT = Path(__file__).resolve().parents[2]
VECTOR_FILE = ROOT / "packages" / "protocol" / "test-vectors" / "xlang.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))

sys.path.insert(0, str(ROOT / "python" / "tools"))
try:
    import gen_xlang_vectors
finally:
    sys.path.pop(0)


def same(a: Any, b: Any) -> bool:
    """Deep equality that tells int from float, -0.0 from 0.0, NaN == NaN, and compares arrays."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, ActorHandle):
        return (a.actor_id, a.class_name, a.methods) == (b.actor_id, b.class_name, b.methods)
    return bool(a == b)


def test_vector_file_is_current() -> None:
    assert VECTOR_FILE.read_text(encoding="utf-8") == gen_xlang_vectors.render(), "run python/tools/gen_xlang_vectors.py"


def test_vectors_cover_the_brief() -> None:
    names = {v["name"] for v in VECTORS}
    for needed in ("nested", "str unicode", "bytes", "int 2^53", "int -2^53", "int 2^63", "int -2^63", "int 2^64-1",
                   "big int 2^64", "float -0.0", "float inf", "nil", "true", "ObjectRef", "ndarray float32 1-D",
                   "ndarray int64 2-D", "ActorHandle"):
        assert needed in names
    assert all(v["note"] for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_decode_vector(vector: dict[str, Any]) -> None:
    expected = gen_xlang_vectors.rebuild(vector["value"])
    got = decode(bytes.fromhex(vector["hex"]))
    assert same(got, expected), f"{got!r} != {expected!r}"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_encode_vector(vector: dict[str, Any]) -> None:
    expected = gen_xlang_vectors.rebuild(vector["value"])
    assert encode(expected).hex() == vector["hex"]
    # and what we decode encodes back to the same bytes
    assert encode(decode(bytes.fromhex(vector["hex"]))).hex() == vector["hex"]


def test_ext_payload_layouts() -> None:
    assert encode(ObjectRef("ab")).hex() == "d501" + b"ab".hex()
    assert encode(2**64).hex() == "c714" + "03" + b"18446744073709551616".hex()
    h = encode(ActorHandle("a", "Counter", ["m"]))
    assert h[0] == 0xC7 and h[2] == 4 and decode(h[3:]) == ["a", "Counter", ["m"]]
    nd = encode(np.array([1, 2], dtype=np.int16))
    assert nd[0] == 0xC7 and nd[2] == 2 and decode(nd[3:]) == ["int16", [2], b"\x01\x00\x02\x00"]


def test_tuples_encode_as_arrays_and_bytes_like_as_bin() -> None:
    assert decode(encode((1, (2, 3)))) == [1, [2, 3]]
    assert decode(encode([bytearray(b"ab"), memoryview(b"cd")])) == [b"ab", b"cd"]


def test_numpy_scalars_and_subclasses_become_plain_values() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 2

    class Name(str, enum.Enum):
        A = "alpha"

    got = decode(encode([np.int64(5), np.float32(0.5), np.bool_(True), Color.RED, Name.A]))
    assert same(got, [5, 0.5, True, 2, "alpha"])


def test_ndarray_decode_is_zero_copy_and_read_only() -> None:
    data = encode({"a": np.arange(1000, dtype=np.float64)})
    buf = bytearray(data)
    arr = decode(buf)["a"]
    assert not arr.flags.writeable
    assert np.shares_memory(arr, np.frombuffer(buf, dtype=np.uint8))
    assert arr[999] == 999.0


def test_ndarray_encode_normalizes_layout() -> None:
    big_endian = np.array([1, 2, 3], dtype=">i4")
    assert same(decode(encode(big_endian)), np.array([1, 2, 3], dtype="<i4"))
    strided = np.arange(12, dtype=np.uint16).reshape(3, 4).T
    assert same(decode(encode(strided)), np.ascontiguousarray(strided))
    empty = np.zeros((0, 3), dtype=np.float32)
    assert decode(encode(empty)).shape == (0, 3)
    scalar0d = np.array(7, dtype=np.int32)
    assert decode(encode(scalar0d)).shape == ()
    big = np.ones(100_000, dtype=np.float32)  # ext32 and the top-level fast path
    assert same(decode(encode(big)), big)
    assert same(decode(encode([big]))[0], big)


def test_refs_are_listed() -> None:
    _, refs = encode_with_refs({"x": [ObjectRef("o1"), {"h": ActorHandle("a1", "C", [])}], "y": ObjectRef("o2")})
    assert refs == ["o1", "a1", "o2"]


@pytest.mark.parametrize(
    ("value", "path", "type_name"),
    [
        ({"a": [1, {"b": {1, 2}}]}, "value.a[1].b", "set"),
        ([0, lambda: 1], "value[1]", "function <lambda>"),
        ({"weird key": object()}, 'value["weird key"]', "object"),
        ({3: "x"}, "value[3]", "dict key of type int"),
        (np.array([True, False]), "value", "numpy.ndarray of dtype bool"),
        ([np.zeros(2, dtype=np.complex64)], "value[0]", "numpy.ndarray of dtype complex64"),
        ({"t": (1, 2, Path("/x"))}, "value.t[2]", "pathlib.PosixPath"),
    ],
)
def test_serialization_error_names_path_and_type(value: Any, path: str, type_name: str) -> None:
    with pytest.raises(SerializationError) as info:
        encode(value)
    assert info.value.path == path
    assert info.value.type_name == type_name
    assert path in str(info.value) and type_name in str(info.value)
    assert isinstance(info.value, TypeError)


def test_serialization_error_uses_the_given_root() -> None:
    with pytest.raises(SerializationError, match=r"at argument 0 of f\[2\]"):
        encode([1, 2, {1}], path="argument 0 of f")


def test_cycles_are_rejected() -> None:
    a: list[Any] = [1]
    a.append({"back": a})
    with pytest.raises(SerializationError) as info:
        encode(a)
    assert info.value.path == "value[1].back" and info.value.type_name == "cyclic structure"
    shared = [1]
    assert decode(encode([shared, shared])) == [[1], [1]]  # repeated, not cyclic: fine


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("d40900"),  # unknown ext type 9
        bytes.fromhex("c7020302" + "2d"),  # truncated
        bytes.fromhex("c703037a7a7a"),  # ext 3 not digits
        b"\xc7\x0c\x02" + b"\x93\xa4bool\x91\x01\xc4\x01\x01" + b"\x00",  # bad dtype (and junk)
    ],
)
def test_bad_bytes_raise_decode_errors(data: bytes) -> None:
    with pytest.raises(XlangDecodeError):
        decode(data)


def test_ndarray_size_mismatch_is_a_decode_error() -> None:
    payload = encode(["float32", [3], b"\x00" * 8])
    data = bytes((0xC7, len(payload), 2)) + payload
    with pytest.raises(XlangDecodeError, match="needs 12 bytes, payload has 8"):
        decode(data)


def test_a_dataclass_crosses_as_a_map_of_its_fields() -> None:
    import dataclasses

    @dataclasses.dataclass
    class Point:
        x: int
        label: str | None

    assert decode(encode({"p": Point(1, None)})) == {"p": {"x": 1, "label": None}}
