"""Golden vectors shared with the TypeScript side (packages/protocol/test/golden.spec.ts).

Both directions are checked: proto3 JSON -> bytes must equal the golden hex, and the golden hex
must decode to the golden JSON. The vectors are generated once by
packages/protocol/scripts/gen-golden.mjs; if the two languages ever disagree, one of these fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tsray.protocol import BODY_KINDS, decode_message, pb

GOLDEN = Path(__file__).resolve().parents[2] / "packages" / "protocol" / "test-vectors" / "golden.json"
VECTORS: list[dict[str, Any]] = json.loads(GOLDEN.read_text(encoding="utf-8"))
# ErrorInfo: the bytes of error objects (ENCODING_ERROR), made by the same script.
ERROR_VECTORS: list[dict[str, Any]] = json.loads((GOLDEN.parent / "error-info.json").read_text(encoding="utf-8"))


def test_vectors_exist() -> None:
    assert len(VECTORS) >= len(BODY_KINDS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_encode_matches_golden_bytes(vector: dict[str, Any]) -> None:
    msg = json_format.ParseDict(vector["message"], pb.Envelope())
    assert msg.SerializeToString(deterministic=True).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_decode_matches_golden_json(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    msg = pb.Envelope.FromString(raw)
    assert json_format.MessageToDict(msg) == vector["message"]
    decoded = decode_message([raw])
    assert json_format.MessageToDict(decoded.envelope) == vector["message"]


def _is_message(f: FieldDescriptor) -> bool:
    return f.type == FieldDescriptor.TYPE_MESSAGE


def _is_repeated(f: FieldDescriptor) -> bool:
    # protobuf >= 5 has FieldDescriptor.is_repeated; older versions only .label
    rep = getattr(f, "is_repeated", None)
    if rep is not None:
        return bool(rep)
    return f.label == FieldDescriptor.LABEL_REPEATED  # pragma: no cover


def _fields_not_covered(root: Any, vectors: list[dict[str, Any]]) -> list[str]:
    """Fields of ``root`` and every message reachable from it that no vector sets to a non-default value."""
    seen: set[str] = set()

    def walk(msg: Any) -> None:
        for f, value in msg.ListFields():  # only fields with a non-default value (or a set oneof member)
            seen.add(f.full_name)
            if _is_message(f) and f.message_type.GetOptions().map_entry:
                continue  # a map: its entries are plain key/value pairs
            if _is_message(f):
                for item in value if _is_repeated(f) else [value]:
                    walk(item)

    for v in vectors:
        walk(json_format.ParseDict(v["message"], root()))

    missing: list[str] = []
    visited: set[str] = set()

    def expect_all(d: Descriptor) -> None:
        if d.full_name in visited:
            return
        visited.add(d.full_name)
        for f in d.fields:
            if f.full_name not in seen:
                missing.append(f.full_name)
            if _is_message(f) and f.message_type.GetOptions().map_entry:
                continue
            if _is_message(f):
                expect_all(f.message_type)

    expect_all(root.DESCRIPTOR)
    return missing


def test_vectors_cover_every_field_with_a_non_default_value() -> None:
    missing = _fields_not_covered(pb.Envelope, VECTORS)
    assert missing == [], "fields no golden vector sets: add them in packages/protocol/scripts/gen-golden.mjs"


@pytest.mark.parametrize("vector", ERROR_VECTORS, ids=[v["name"] for v in ERROR_VECTORS])
def test_error_info_matches_golden_bytes_both_ways(vector: dict[str, Any]) -> None:
    msg = json_format.ParseDict(vector["message"], pb.ErrorInfo())
    assert msg.SerializeToString(deterministic=True).hex() == vector["hex"]
    assert json_format.MessageToDict(pb.ErrorInfo.FromString(bytes.fromhex(vector["hex"]))) == vector["message"]


def test_error_vectors_cover_every_error_info_field() -> None:
    missing = _fields_not_covered(pb.ErrorInfo, ERROR_VECTORS)
    assert missing == [], "ErrorInfo fields no vector sets: add them in packages/protocol/scripts/gen-golden.mjs"
