#!/usr/bin/env python3
"""Generate tsray/_proto/tsray_pb2.py (+ .pyi) from packages/protocol/proto/tsray/v1/tsray.proto.

The same .proto the TypeScript package generates from; the output is not committed. Runs
``python -m grpc_tools.protoc`` (grpcio-tools must be installed: it is in requirements-dev.txt).

It is a no-op when tsray/_proto/.stamp matches the hash of the proto, this script and the
grpcio-tools version, so callers (tools/setup-python.sh, python/tests/conftest.py, setup.py) can run
it every time. ``--force`` regenerates anyway; ``--check`` exits 1 when the code is stale.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PYTHON_DIR.parent
PROTO_ROOT = REPO_ROOT / "packages" / "protocol" / "proto"
PROTO_REL = "tsray/v1/tsray.proto"
OUT_DIR = PYTHON_DIR / "tsray" / "_proto"
OUTPUTS = ("tsray_pb2.py", "tsray_pb2.pyi")
STAMP = OUT_DIR / ".stamp"


class GenerateError(RuntimeError):
    """The proto source or grpcio-tools is missing, or protoc failed."""


def _stamp() -> str:
    proto = PROTO_ROOT / PROTO_REL
    if not proto.is_file():
        raise GenerateError(f"{proto} not found: gen_proto.py must run inside the tsray repository")
    try:
        tools_version = metadata.version("grpcio-tools")
    except metadata.PackageNotFoundError as e:
        raise GenerateError(
            "grpcio-tools is not installed in this Python; run tools/setup-python.sh (or pip install grpcio-tools)"
        ) from e
    h = hashlib.sha256()
    h.update(proto.read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(tools_version.encode())
    return h.hexdigest()


def is_current() -> bool:
    """True when the generated files exist and were made from the current proto."""
    if not STAMP.is_file() or not all((OUT_DIR / f).is_file() for f in OUTPUTS):
        return False
    return STAMP.read_text().strip() == _stamp()


def generate(force: bool = False) -> bool:
    """Generate the code if it is missing or stale. Returns True when it (re)generated."""
    stamp = _stamp()
    if not force and is_current():
        return False
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tsray-gen-proto-") as tmp:
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc",
            f"-I{PROTO_ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}", PROTO_REL,
        ]
        res = subprocess.run(cmd, cwd=PROTO_ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise GenerateError(f"protoc failed ({' '.join(cmd)}):\n{res.stdout}{res.stderr}")
        gen = Path(tmp) / "tsray" / "v1"
        for name in OUTPUTS:
            text = (gen / name).read_text()
            # The descriptor keeps its canonical name "tsray/v1/tsray.proto"; the module has no
            # imports of other generated modules, so it can live in tsray/_proto.
            part = OUT_DIR / f".{name}.{os.getpid()}.tmp"
            part.write_text(text)
            os.replace(part, OUT_DIR / name)
    part = OUT_DIR / f".stamp.{os.getpid()}.tmp"
    part.write_text(stamp + "\n")
    os.replace(part, STAMP)
    return True


def clean() -> None:
    """Remove the generated files."""
    for name in (*OUTPUTS, ".stamp"):
        (OUT_DIR / name).unlink(missing_ok=True)
    shutil.rmtree(OUT_DIR / "__pycache__", ignore_errors=True)


def main(argv: list[str]) -> int:
    try:
        if "--check" in argv:
            if is_current():
                return 0
            print("gen_proto: python/tsray/_proto is missing or stale; run python/tools/gen_proto.py", file=sys.stderr)
            return 1
        if "--clean" in argv:
            clean()
            return 0
        if generate(force="--force" in argv):
            print(f"gen_proto: generated {', '.join(str((OUT_DIR / f).relative_to(REPO_ROOT)) for f in OUTPUTS)}")
        return 0
    except GenerateError as e:
        print(f"gen_proto: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
