"""Protobuf code generated from packages/protocol/proto/tsray/v1/tsray.proto.

``tsray_pb2`` is not committed: ``python python/tools/gen_proto.py`` (run by tools/setup-python.sh
and by the package build) generates it.
"""

try:
    from . import tsray_pb2 as tsray_pb2
except ModuleNotFoundError as e:  # pragma: no cover - only without generated code
    if e.name != f"{__name__}.tsray_pb2":
        raise
    raise ImportError(
        "tsray._proto.tsray_pb2 has not been generated: run `python python/tools/gen_proto.py` "
        "(or `bash tools/setup-python.sh`) in the tsray repository"
    ) from e

__all__ = ["tsray_pb2"]
