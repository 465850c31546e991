"""The V8 structured-clone reader (tsray._v8) on bytes made by node:v8 serialize (tests/fixtures)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tsray._v8 import V8DecodeError, read_v8
from tsray.errors import (
    ActorDiedError,
    ObjectLostError,
    ObjectStoreFullError,
    RemoteError,
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
    error_from_payload,
)
from tsray.refs import ActorHandle, ObjectRef

FIX = Path(__file__).parent / "fixtures"
VALUES = {k: bytes.fromhex(v) for k, v in json.loads((FIX / "v8_values.json").read_text()).items()}
ERRORS = {k: bytes.fromhex(v) for k, v in json.loads((FIX / "v8_errors.json").read_text()).items()}


def test_plain_values() -> None:
    assert read_v8(VALUES["nested"]) == {"a": [1, "two", None, None, True, False], "b": {"c": -7}}
    nums = read_v8(VALUES["numbers"])
    assert nums[:7] == [0, -1, 2147483647, -2147483648, 2**40, -(2**53), 1.5]
    assert [type(x) for x in nums[:7]] == [int] * 6 + [float]
    assert math.copysign(1, nums[7]) == -1 and nums[7] == 0 and nums[8] == math.inf
    assert read_v8(VALUES["bigints"]) == [2**70, -5, 0]
    assert read_v8(VALUES["strings"]) == ["plain", "café", "✓ 日本 🎉", ""]
    assert read_v8(VALUES["holes"]) == [1, None, 3]
    assert read_v8(VALUES["shared"]) == [{"k": 1}, {"k": 1}]


def test_binary_values() -> None:
    assert read_v8(VALUES["buffer"]) == b"\x01\x02\xff"
    assert read_v8(VALUES["uint8"]) == b"\x09\x08"
    assert read_v8(VALUES["arraybuffer"]) == b"\x07\x07"
    f = read_v8(VALUES["float32"])
    assert f.dtype == np.float32 and f.tolist() == [1.5, -2.0] and not f.flags.writeable
    assert read_v8(VALUES["bigint64"]).tolist() == [-1, 2]


def test_refs_and_handles() -> None:
    assert read_v8(VALUES["ref"], ObjectRef) == ObjectRef("o1")
    h = read_v8(VALUES["handle"], ObjectRef, ActorHandle)
    assert isinstance(h, ActorHandle) and (h.actor_id, h.class_name, h.methods) == ("a1", "Counter", ["incr"])
    assert read_v8(VALUES["ref"]) == {"__tsray_object_ref__": "o1"}


@pytest.mark.parametrize(("name", "js"), [("date", "Date"), ("set", "Set")])
def test_unsupported_values_name_the_type(name: str, js: str) -> None:
    with pytest.raises(V8DecodeError, match=f"a JavaScript {js} cannot be read"):
        read_v8(VALUES[name])


def test_not_v8() -> None:
    with pytest.raises(V8DecodeError):
        read_v8(b"\x93\x01\x02\x03")
    with pytest.raises(V8DecodeError, match="truncated"):
        read_v8(VALUES["nested"][:-3])


@pytest.mark.parametrize(
    ("name", "cls", "text"),
    [
        ("task", TaskError, "task f (worker pid=1234) failed: Error: root (raised upstream in task g)"),
        ("plain_task", TaskError, "task f (worker pid=5) failed: RangeError: café"),
        ("actor_died", ActorDiedError, "actor Counter (a1) is dead: kill() was called"),
        ("worker_crashed", WorkerCrashedError, "the worker running task f died (exit code 1) after 4 attempt(s)"),
        ("cancelled", TaskCancelledError, "task f was cancelled (force: its worker was killed)"),
        ("store_full", ObjectStoreFullError, "cannot place 100 bytes (capacity 50, in use 40)"),
        ("lost", ObjectLostError, "object o1 is lost: spill file gone"),
        ("other", RemoteError, "PlacementGroupError: no room"),
        ("with_map", RemoteError, "could not be decoded from Python"),
    ],
)
def test_error_objects_from_typescript(name: str, cls: type, text: str) -> None:
    err: Any = error_from_payload(ERRORS[name], "", "obj-1")
    assert isinstance(err, cls)
    assert text in str(err)


def test_error_objects_from_python() -> None:
    import msgspec

    data = msgspec.msgpack.encode({"type": "TaskError", "info": {"name": "KeyError", "message": "'k'", "stack": "tb", "taskName": "t", "pid": 3}})
    err = error_from_payload(data, "msgpack")
    assert isinstance(err, TaskError) and err.remote_name == "KeyError" and err.remote_stack == "tb"
    assert isinstance(error_from_payload(b"\xc1", "msgpack", "x"), RemoteError)
