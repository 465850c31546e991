"""Fixtures of the engine tests: the tiny model (built once per session into a temp dir, or taken
from $TSRAY_TINY_MODEL) and one started TransformersBackend shared by the tests that only read."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir() -> Iterator[str]:
    pytest.importorskip("torch", reason="engine tests need python/requirements-engine.txt")
    pytest.importorskip("transformers", reason="engine tests need python/requirements-engine.txt")
    from tsray.engine.tiny_model import build_tiny_model

    given = os.environ.get("TSRAY_TINY_MODEL")
    if given:
        yield str(build_tiny_model(given))
        return
    tmp = tempfile.mkdtemp(prefix="tsray-tiny-model-")
    try:
        yield str(build_tiny_model(os.path.join(tmp, "model")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def tf_backend(tiny_model_dir: str) -> Iterator[object]:
    from tsray.engine.transformers_backend import TransformersBackend

    backend = TransformersBackend()
    asyncio.run(backend.start(tiny_model_dir, {"seed": 0}))
    yield backend
    asyncio.run(backend.shutdown())
