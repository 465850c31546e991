"""Test setup: make sure tsray/_proto is generated from the current .proto before importing tsray; the
``cluster`` fixture the end-to-end driver tests share."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(_TOOLS))
try:
    import gen_proto
finally:
    sys.path.remove(str(_TOOLS))

# A no-op when current; regenerates when the proto changed since tools/setup-python.sh ran.
gen_proto.generate()

from tsray_cluster import TsrayCluster  # noqa: E402 (imports nothing of tsray; kept after the proto check all the same)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsrayCluster]:
    """A real one-head cluster (4 CPUs, 2 fake GPUs) per test module, stopped after its last test."""
    c = TsrayCluster(tmp_path_factory.mktemp("cluster"), num_cpus=4, num_gpus=2)
    try:
        yield c
    finally:
        c.stop()
