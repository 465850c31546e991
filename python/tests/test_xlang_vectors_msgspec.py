"""The cross-language msgpack vectors (packages/protocol/test-vectors/xlang.json) against an independent
msgpack implementation, msgspec (docs/testing.md, rule 7).

The vectors are written by tsray's own Python encoder (python/tools/gen_xlang_vectors.py) and read by
both languages' decoders, so on their own they would only show that tsray agrees with itself. Here each
vector's tagged ``value`` is rebuilt without tsray (the extension types from docs/xlang.md's table),
encoded by msgspec and compared byte for byte with ``hex``, and ``hex`` is decoded by msgspec and
compared with the value: a vector that is not the msgpack its note says fails here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

VECTORS_FILE = Path(__file__).resolve().parents[2] / "packages" / "protocol" / "test-vectors" / "xlang.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text())

# docs/xlang.md: ext 1 ObjectRef, 2 ndarray, 3 big int, 4 ActorHandle.
EXT_REF, EXT_NDARRAY, EXT_BIGINT, EXT_HANDLE = 1, 2, 3, 4
INT64_MIN, UINT64_MAX = -(2**63), 2**64 - 1


def rebuild(tagged: Any) -> Any:
    """The Python value a tagged JSON value stands for, with extension types as msgspec Ext (no tsray)."""
    if isinstance(tagged, list):
        return [rebuild(x) for x in tagged]
    if not isinstance(tagged, dict):
        return tagged
    if len(tagged) == 1:
        ((tag, body),) = tagged.items()
        if tag == "$int":
            n = int(body)
            return n if INT64_MIN <= n <= UINT64_MAX else msgspec.msgpack.Ext(EXT_BIGINT, body.encode())
        if tag == "$float":
            return float(body.replace("Infinity", "inf"))
        if tag == "$bytes":
            return bytes.fromhex(body)
        if tag == "$ref":
            return msgspec.msgpack.Ext(EXT_REF, body.encode())
        if tag == "$ndarray":
            payload = [body["dtype"], body["shape"], bytes.fromhex(body["hex"])]
            return msgspec.msgpack.Ext(EXT_NDARRAY, msgspec.msgpack.encode(payload))
        if tag == "$handle":
            payload = [body["actorId"], body["className"], body["methods"]]
            return msgspec.msgpack.Ext(EXT_HANDLE, msgspec.msgpack.encode(payload))
    return {k: rebuild(v) for k, v in tagged.items()}


def same(a: Any, b: Any) -> bool:
    """Equality that tells -0.0 from 0.0, NaN equal to NaN, and bool from int."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, msgspec.msgpack.Ext):
        return a.code == b.code and bytes(a.data) == bytes(b.data)
    return bool(a == b)


def test_the_vectors_cover_every_type_of_the_table() -> None:
    text = VECTORS_FILE.read_text()
    for tag in ("$int", "$float", "$bytes", "$ref", "$ndarray", "$handle"):
        assert f'"{tag}"' in text, tag
    assert len(VECTORS) >= 40


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_msgspec_encodes_the_value_to_the_vector_bytes(vector: dict[str, Any]) -> None:
    assert msgspec.msgpack.encode(rebuild(vector["value"])).hex() == vector["hex"], vector["note"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_msgspec_decodes_the_vector_bytes_to_the_value(vector: dict[str, Any]) -> None:
    decoded = msgspec.msgpack.decode(bytes.fromhex(vector["hex"]))
    assert same(decoded, rebuild(vector["value"])), (vector["note"], decoded)
