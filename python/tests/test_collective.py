"""tsray.collective's local parts: chunking, reductions and their agreement with @tsray/collective,
argument checks and the typed errors of coordinator failures. The collectives themselves run between
real rank processes in packages/collective/test (Python-only and mixed TypeScript/Python groups)."""

from __future__ import annotations

import numpy as np
import pytest

from tsray import TsrayError
from tsray import collective as col


def test_chunk_bounds_cover_the_array_in_near_equal_parts() -> None:
    assert col.chunk_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert col.chunk_bounds(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]
    for n in (0, 1, 7, 300_007):
        for parts in (1, 2, 3, 8):
            b = col.chunk_bounds(n, parts)
            assert b[0][0] == 0 and b[-1][1] == n
            assert all(b[i][1] == b[i + 1][0] for i in range(parts - 1))
            assert max(e - s for s, e in b) - min(e - s for s, e in b) <= 1


def test_mean_matches_typescript_rounding() -> None:
    # TypeScript divides in float64 and stores into the typed array: floats round, integers truncate.
    ints = np.array([7, -7, 5], dtype=np.int32)
    col._finish_mean(ints, 2)
    assert ints.tolist() == [3, -3, 2]
    floats = np.array([1.0, 2.0], dtype=np.float32)
    col._finish_mean(floats, 3)
    assert floats.tolist() == [np.float32(1 / 3), np.float32(2 / 3)]


@pytest.mark.parametrize("op, want", [("sum", [5, 1, 9]), ("min", [1, -2, 4]), ("max", [4, 3, 5])])
def test_reduce_into(op: str, want: list[int]) -> None:
    acc = np.array([1, 3, 4], dtype=np.int32)
    col._reduce_into(acc, np.array([4, -2, 5], dtype=np.int32), op)
    assert acc.tolist() == want


def test_bad_arrays_and_ops_are_typed_errors() -> None:
    with pytest.raises(col.CollectiveUsageError, match="op must be one of"):
        col.allreduce(np.zeros(3, np.float32), "g", op="prod")
    with pytest.raises(col.CollectiveUsageError, match="dtype int64"):
        col._as_numpy("g", "allreduce()", np.zeros(3, np.int64))
    with pytest.raises(col.CollectiveUsageError, match="expected a numpy array"):
        col._as_numpy("g", "allreduce()", [1.0, 2.0])
    with pytest.raises(col.CollectiveUsageError, match="C-contiguous"):
        col._as_numpy("g", "allreduce()", np.zeros((4, 4), np.float32)[:, 1])
    with pytest.raises(col.CollectiveUsageError, match="rank must be in 0..1"):
        col.init_collective_group(2, 2, "g")


def test_a_torch_tensor_is_viewed_without_copy() -> None:
    import torch  # in the venv (python/requirements-engine.txt)

    t = torch.zeros(4, dtype=torch.float32)
    col._as_numpy("g", "allreduce()", t)[:] = 2.0
    assert t.tolist() == [2.0, 2.0, 2.0, 2.0]


def test_failures_from_the_coordinator_become_typed_errors() -> None:
    died = col._error("g", {"kind": "rank_died", "rank": 3, "message": "actor X is DEAD"})
    assert isinstance(died, col.CollectiveRankDiedError) and isinstance(died, TsrayError)
    assert died.rank == 3 and "rank 3 died" in str(died) and "group 'g'" in str(died)
    timeout = col._error("g", {"kind": "timeout", "missing": [1, 2], "timeoutMs": 500})
    assert isinstance(timeout, col.CollectiveTimeoutError) and timeout.missing_ranks == [1, 2]
    assert isinstance(col._error("g", {"kind": "usage", "message": "x"}), col.CollectiveUsageError)


class _LateDirectory:
    """A connection whose ``get_actor`` finds the group only from its ``found_at``-th lookup on."""

    def __init__(self, found_at: int | None) -> None:
        self.found_at = found_at
        self.lookups = 0

    def get_actor(self, name: str, namespace: str) -> str:
        self.lookups += 1
        if self.found_at is None or self.lookups < self.found_at:
            raise col.ActorNotFoundError(name, namespace)
        return f"handle:{namespace}/{name}"


def test_a_group_not_visible_yet_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    late = _LateDirectory(found_at=3)
    monkeypatch.setattr(col, "_connection", lambda: late)
    monkeypatch.setattr(col, "_groups", {})
    st = col._find("late", col.GROUP_WAIT_S)
    assert (late.lookups, st.coord) == (3, "handle:tsray-collective/collective:late")


def test_a_group_that_never_appears_is_a_typed_error_after_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    never = _LateDirectory(found_at=None)
    monkeypatch.setattr(col, "_connection", lambda: never)
    monkeypatch.setattr(col, "_groups", {})
    with pytest.raises(col.CollectiveGroupNotFoundError, match=r"'never': no such group \(waited 200 ms") as e:
        col.allreduce(np.ones(4, np.float32), group_name="never", timeout_ms=200)
    assert isinstance(e.value, col.CollectiveUsageError) and never.lookups > 1
