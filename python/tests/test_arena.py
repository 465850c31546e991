"""The Python side's arena mapping: writes land byte for byte, large ones split over threads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tsray._objects import Arena, ArenaError, copy_threads

MiB = 1 << 20


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[Arena]:
    path = tmp_path / "arena"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    yield Arena(str(path), 64 * MiB)


def test_a_large_write_is_split_over_threads_and_lands_every_byte(arena: Arena) -> None:
    # 33 MiB + 5 bytes from an odd offset of a random source: unequal, unaligned pieces.
    backing = np.random.default_rng(7).integers(0, 256, 33 * MiB + 12, dtype=np.uint8)
    src = memoryview(backing)[7 : 7 + 33 * MiB + 5]
    assert arena.write(3 * MiB + 1, src, 4) == 4
    assert bytes(arena._u8[3 * MiB + 1 : 3 * MiB + 1 + src.nbytes]) == bytes(src)
    assert arena._u8[3 * MiB] == 0 and arena._u8[36 * MiB + 6] == 0


def test_small_writes_and_one_thread_stay_one_copy(arena: Arena) -> None:
    data = os.urandom(8 * MiB - 1)
    assert arena.write(0, data, 8) == 1
    assert bytes(arena._u8[: len(data)]) == data
    assert arena.write(MiB, b"\x01\x02\x03", 8) == 1
    assert arena.write(0, os.urandom(16 * MiB), 1) == 1


def test_a_write_outside_the_arena_is_refused(arena: Arena) -> None:
    with pytest.raises(ArenaError, match="outside the arena"):
        arena.write(64 * MiB - 2, b"abc")


def test_copy_threads_follows_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSRAY_OBJECT_COPY_THREADS", "3")
    assert copy_threads() == 3
    monkeypatch.setenv("TSRAY_OBJECT_COPY_THREADS", "40")
    assert copy_threads() == 16
    monkeypatch.delenv("TSRAY_OBJECT_COPY_THREADS")
    assert copy_threads() == min(8, os.cpu_count() or 1)
