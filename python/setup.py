"""Build hook for the tsray Python package (metadata lives in pyproject.toml).

Before collecting modules, generate tsray/_proto/tsray_pb2.py(.pyi) from the repository's
packages/protocol/proto/tsray/v1/tsray.proto with tools/gen_proto.py (a no-op when current) when the
proto, that script and grpcio-tools are there. An sdist carries the generated module instead
(MANIFEST.in), so it builds a wheel without the rest of the repository and without grpcio-tools.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
OUTPUTS = [HERE / "tsray" / "_proto" / f for f in ("tsray_pb2.py", "tsray_pb2.pyi")]
PROTO = HERE.parent / "packages" / "protocol" / "proto" / "tsray" / "v1" / "tsray.proto"
GEN = HERE / "tools" / "gen_proto.py"


class BuildPyWithProto(build_py):
    """build_py that generates the protobuf module first when it can, else packages the one there."""

    def run(self) -> None:
        if PROTO.is_file() and GEN.is_file() and importlib.util.find_spec("grpc_tools") is not None:
            sys.path.insert(0, str(GEN.parent))
            try:
                import gen_proto

                gen_proto.generate()
            finally:
                sys.path.pop(0)
        elif not all(p.is_file() for p in OUTPUTS):
            raise SystemExit(
                "tsray: no generated protobuf code (tsray/_proto/tsray_pb2.py) and no way to generate it: build "
                "inside the tsray repository with grpcio-tools installed (tools/setup-python.sh), or from an sdist"
            )
        super().run()


setup(cmdclass={"build_py": BuildPyWithProto})
