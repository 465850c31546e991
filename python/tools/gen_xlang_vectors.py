"""Generate packages/protocol/test-vectors/xlang.json: cross-language msgpack vectors (docs/xlang.md).

Each vector is ``{name, hex, note, value}``: ``hex`` is what :func:`tsray.xlang.encode` writes for the
value, ``note`` describes the value in words, and ``value`` is a machine-readable tagged JSON form
(so a TypeScript test can rebuild the value without parsing the note):

- JSON null / true / false / string: themselves; a JSON integer: an int (always within ±2^53-1)
- ``{"$int": "<decimal>"}``: an integer of any size (TS: number if |x| <= 2^53-1, else bigint)
- ``{"$float": "1.5" | "-0" | "Infinity" | "-Infinity" | "NaN"}``: a float64 (never written as a JSON number)
- ``{"$bytes": "<hex>"}``: bytes (TS: Buffer / Uint8Array)
- ``{"$ref": "<object id>"}``: an ObjectRef
- ``{"$ndarray": {"dtype": ..., "shape": [...], "hex": "<little-endian data>"}}``: a numpy array
  (TS: a TypedArray when 1-D, else NDArray)
- ``{"$handle": {"actorId": ..., "className": ..., "methods": [...]}}``: an ActorHandle
- a JSON array: a list; any other JSON object: a dict with those keys in that order (no key of a
  vector looks like an array index, so JavaScript keeps the order)

Run: ``.venv/bin/python python/tools/gen_xlang_vectors.py`` (``--check`` fails if the file is stale).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "packages" / "protocol" / "test-vectors" / "xlang.json"
sys.path.insert(0, str(ROOT / "python"))

import numpy as np  # noqa: E402

from tsray.refs import ActorHandle, ObjectRef  # noqa: E402
from tsray.xlang import encode  # noqa: E402


def _i(n: int) -> dict[str, str]:
    return {"$int": str(n)}


def _f(x: str) -> dict[str, str]:
    return {"$float": x}


# (name, note, tagged value)
VECTORS: list[tuple[str, str, Any]] = [
    ("nil", "None / null", None),
    ("true", "True / true", True),
    ("false", "False / false", False),
    ("int 0", "0 (positive fixint)", 0),
    ("int 127", "127 (positive fixint)", 127),
    ("int -1", "-1 (negative fixint)", -1),
    ("int -32", "-32 (negative fixint)", -32),
    ("int -33", "-33 (int8)", -33),
    ("int 200", "200 (uint8)", 200),
    ("int -200", "-200 (int16)", -200),
    ("int 65535", "65535 (uint16)", 65535),
    ("int 2^32-1", "4294967295 (uint32)", 4294967295),
    ("int -2^31", "-2147483648 (int32)", -2147483648),
    ("int 2^40", "1099511627776 = 2^40 (uint64: positive ints use the unsigned forms; TS number)", _i(2**40)),
    ("int -2^40", "-1099511627776 = -2^40 (int64; TS number)", _i(-(2**40))),
    ("int 2^53-1", "9007199254740991 = 2^53-1 (uint64; largest TS safe number)", _i(2**53 - 1)),
    ("int 2^53", "9007199254740992 = 2^53 (uint64; TS bigint)", _i(2**53)),
    ("int -2^53", "-9007199254740992 = -2^53 (int64; TS bigint)", _i(-(2**53))),
    ("int 2^63", "9223372036854775808 = 2^63 (uint64; TS bigint)", _i(2**63)),
    ("int -2^63", "-9223372036854775808 = -2^63 (int64; TS bigint)", _i(-(2**63))),
    ("int 2^64-1", "18446744073709551615 = 2^64-1 (uint64; TS bigint)", _i(2**64 - 1)),
    ("big int 2^64", "18446744073709551616 = 2^64 (ext 3, payload ASCII decimal digits; TS bigint)", _i(2**64)),
    ("big int -2^63-1", "-9223372036854775809 = -2^63-1 (ext 3; TS bigint)", _i(-(2**63) - 1)),
    ("big int 10^30", "10^30 = 1000000000000000000000000000000 (ext 3; TS bigint)", _i(10**30)),
    ("float 1.5", "1.5 (float64)", _f("1.5")),
    ("float -0.0", "-0.0 (float64 with the sign bit; TS -0, not int 0)", _f("-0")),
    ("float 1.0", "1.0 as a Python float (float64; decodes in TS as the number 1)", _f("1")),
    ("float inf", "+Infinity (float64)", _f("Infinity")),
    ("float -inf", "-Infinity (float64)", _f("-Infinity")),
    ("float nan", "NaN (float64, quiet NaN 0x7ff8000000000000)", _f("NaN")),
    ("float 0.1", "0.1 (float64)", _f("0.1")),
    ("str empty", "'' (fixstr)", ""),
    ("str unicode", "'héllo wörld ✓ 日本 🎉' (UTF-8 fixstr)", "héllo wörld ✓ 日本 🎉"),
    ("str 40", "'x' repeated 40 times (str8)", "x" * 40),
    ("str 300", "'ab' repeated 150 times (str16)", "ab" * 150),
    ("bytes", "bytes 00 01 02 ff (bin8)", {"$bytes": "000102ff"}),
    ("bytes empty", "empty bytes (bin8 of length 0)", {"$bytes": ""}),
    ("bytes 300", "300 bytes, byte i = i % 256 (bin16)", {"$bytes": bytes(i % 256 for i in range(300)).hex()}),
    ("list empty", "[] (fixarray)", []),
    ("dict empty", "{} (fixmap)", {}),
    (
        "nested",
        "{'name': 'tsray', 'list': [1, 'two', 3.5, None, True, [], {}], 'inner': {'deep': {'x': -7, 'ys': [[1, 2], [3]]}}}",
        {
            "name": "tsray",
            "list": [1, "two", _f("3.5"), None, True, [], {}],
            "inner": {"deep": {"x": -7, "ys": [[1, 2], [3]]}},
        },
    ),
    ("list 20", "[0, 1, ..., 19] (array16)", list(range(20))),
    ("ObjectRef", "ObjectRef('t1a2b3c.0') (ext 1, payload the id as UTF-8)", {"$ref": "t1a2b3c.0"}),
    (
        "ObjectRef nested",
        "{'refs': [ObjectRef('py0001t1.0'), ObjectRef('obj-ü')], 'n': 1}",
        {"refs": [{"$ref": "py0001t1.0"}, {"$ref": "obj-ü"}], "n": 1},
    ),
    (
        "ndarray float32 1-D",
        "numpy float32 array [1.0, -2.5, 3.25] (ext 2, payload msgpack ['float32', [3], <12 bytes LE>]; TS Float32Array)",
        {"$ndarray": {"dtype": "float32", "shape": [3], "hex": np.array([1.0, -2.5, 3.25], dtype="<f4").tobytes().hex()}},
    ),
    (
        "ndarray int64 2-D",
        "numpy int64 array [[1, -2, 3], [4, 5, -6]] shape (2, 3) (ext 2, payload msgpack ['int64', [2, 3], <48 bytes LE>]; TS NDArray{dtype:'int64', shape:[2,3], data: BigInt64Array})",
        {
            "$ndarray": {
                "dtype": "int64",
                "shape": [2, 3],
                "hex": np.array([[1, -2, 3], [4, 5, -6]], dtype="<i8").tobytes().hex(),
            }
        },
    ),
    (
        "ndarray uint8 in list",
        "[numpy uint8 array [1, 2, 255]] (ext 2 inside an array; TS [Uint8Array])",
        [{"$ndarray": {"dtype": "uint8", "shape": [3], "hex": "0102ff"}}],
    ),
    (
        "ActorHandle",
        "ActorHandle(actor_id='a7f3', class_name='Counter', methods=['incr', 'get']) (ext 4, payload msgpack ['a7f3', 'Counter', ['incr', 'get']])",
        {"$handle": {"actorId": "a7f3", "className": "Counter", "methods": ["incr", "get"]}},
    ),
]


_SPECIAL_FLOATS = {"-0": -0.0, "Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def rebuild(v: Any) -> Any:
    """The Python value a tagged JSON value stands for."""
    if isinstance(v, list):
        return [rebuild(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (tag, x), = v.items()
            if tag == "$int":
                return int(x)
            if tag == "$float":
                return _SPECIAL_FLOATS[x] if x in _SPECIAL_FLOATS else float(x)
            if tag == "$bytes":
                return bytes.fromhex(x)
            if tag == "$ref":
                return ObjectRef(x)
            if tag == "$ndarray":
                return np.frombuffer(bytes.fromhex(x["hex"]), dtype=np.dtype(x["dtype"]).newbyteorder("<")).reshape(x["shape"])
            if tag == "$handle":
                return ActorHandle(x["actorId"], x["className"], x["methods"])
        return {k: rebuild(x) for k, x in v.items()}
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    raise TypeError(f"untagged JSON value {v!r} in a vector (floats must be tagged $float)")


def vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, note, tagged in VECTORS:
        out.append({"name": name, "hex": encode(rebuild(tagged)).hex(), "note": note, "value": tagged})
    return out


def render() -> str:
    return json.dumps(vectors(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python/tools/gen_xlang_vectors.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(VECTORS)} vectors to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
