"""The engine actor's load report (tsray.engine.load_report): tokens/s, TTFT percentiles, the report
fields the node checks (packages/core/src/node/engine-stats.ts), and no reporting outside a worker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tsray.engine.load_report import RATE_WINDOW_S, TTFT_WINDOW, EngineLoad, build_report, report_loop

# The fields and types EngineStatsTable.record accepts (engine-stats.ts checkReport).
REPORT_FIELDS: dict[str, tuple[type, ...]] = {
    "actorId": (str,),
    "name": (str,),
    "model": (str,),
    "backend": (str,),
    "rank": (int,),
    "pid": (int,),
    "tensorParallelSize": (int,),
    "gpuIds": (list,),
    "running": (int,),
    "waiting": (int,),
    "kvCacheUsage": (float, int),
    "tokensPerS": (float, int),
    "ttftP50Ms": (float, type(None)),
    "ttftP99Ms": (float, type(None)),
    "requestsFinished": (int,),
}


class FakeEngine:
    def __init__(self) -> None:
        self._config: dict[str, Any] = {"model": "/models/" + "x" * 1000, "rank": 2}
        self._backend_name = "transformers"
        self.load = EngineLoad()

    async def stats(self) -> dict[str, Any]:
        return {"waiting": 3, "running": 1, "kv_cache_usage": 0.5}

    def tensor_parallel_size(self) -> int:
        return 1


def test_ttft_percentiles_over_the_recent_requests() -> None:
    load = EngineLoad()
    assert load.ttft_ms(0.5) is None
    for i in range(1, 101):
        load.ttft_s.append(i / 1000)
    assert load.ttft_ms(0.5) == 51.0
    assert load.ttft_ms(0.99) == 100.0
    for _ in range(TTFT_WINDOW):
        load.ttft_s.append(0.002)
    assert load.ttft_ms(0.99) == 2.0  # only the last TTFT_WINDOW requests count


def test_tokens_per_second_over_the_window() -> None:
    load = EngineLoad()
    assert load.tokens_per_s(100.0) == 0.0
    load.tokens = 50
    assert load.tokens_per_s(101.0) == 50.0
    load.tokens = 150
    assert load.tokens_per_s(102.0) == 75.0
    # Older samples leave the window: the rate is over the last RATE_WINDOW_S only.
    load.tokens = 160
    assert load.tokens_per_s(102.0 + RATE_WINDOW_S + 1) < 10.0


def test_report_has_the_fields_the_node_checks_and_fits_a_state_call(monkeypatch: Any) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,GPU-abc")
    engine = FakeEngine()
    engine.load.ttft_s.append(0.02)
    engine.load.finished = 4
    report = asyncio.run(build_report(engine, "actor-1"))
    assert set(report) == set(REPORT_FIELDS)
    for k, types in REPORT_FIELDS.items():
        assert isinstance(report[k], types), (k, report[k])
    assert report["gpuIds"] == [1, "GPU-abc"]
    assert (report["running"], report["waiting"], report["kvCacheUsage"], report["rank"]) == (1, 3, 0.5, 2)
    assert report["ttftP50Ms"] == 20.0
    assert report["requestsFinished"] == 4
    assert len("engine:" + json.dumps(report, separators=(",", ":"))) <= 1024


def test_report_loop_does_nothing_outside_a_worker() -> None:
    # No tsray worker runtime in this process: the loop returns at once instead of reporting.
    asyncio.run(asyncio.wait_for(report_loop(FakeEngine()), timeout=10))
