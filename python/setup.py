"""Build hook for the tsray Python package (metadata lives in pyproject.toml).

Before collecting modules, generate tsray/_proto/tsray_pb2.py(.pyi) from the repository's
packages/protocol/proto/tsray/v1/tsray.proto with tools/gen_proto.py (a no-op when current).
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithProto(build_py):
    """build_py that generates the protobuf module first."""

    def run(self) -> None:
        sys.path.insert(0, str(HERE / "tools"))
        try:
            import gen_proto
        finally:
            sys.path.pop(0)
        if (gen_proto.PROTO_ROOT / gen_proto.PROTO_REL).is_file():
            gen_proto.generate()
        elif not all((gen_proto.OUT_DIR / f).is_file() for f in gen_proto.OUTPUTS):
            raise SystemExit("tsray: no generated protobuf code and no .proto to generate it from")
        super().run()


setup(cmdclass={"build_py": BuildPyWithProto})
