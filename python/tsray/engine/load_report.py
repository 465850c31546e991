"""An engine actor's load as the dashboard's LLM-engines page shows it (issue #20).

The engine actor counts generated tokens and measures each request's time to first token (two
attribute updates per delta on the hot path, nothing else), and :func:`report_loop` sends the
numbers to the actor's node once a second as the state call ``engine:<json>``
(``packages/core/src/node/engine-stats.ts`` checks and keeps them; the head gathers every node's).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Seconds between two reports (the dashboard shows an engine as gone after 10 s without one).
REPORT_INTERVAL_S = 1.0
#: Recent requests whose time to first token the percentiles are taken over.
TTFT_WINDOW = 512
#: Seconds over which tokens/s is measured.
RATE_WINDOW_S = 5.0
#: Longest model string sent (a report must fit the node's 1024-character state call).
MAX_MODEL_CHARS = 256


class EngineLoad:
    """Counters the engine actor updates while serving."""

    def __init__(self) -> None:
        self.tokens = 0
        self.finished = 0
        self.ttft_s: deque[float] = deque(maxlen=TTFT_WINDOW)
        # (monotonic time, tokens so far) samples for tokens/s over RATE_WINDOW_S.
        self._samples: deque[tuple[float, int]] = deque()

    def tokens_per_s(self, now: float) -> float:
        """Tokens generated per second over the last :data:`RATE_WINDOW_S` (0 before two samples)."""
        self._samples.append((now, self.tokens))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        return (self.tokens - n0) / (now - t0) if now > t0 else 0.0

    def ttft_ms(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of recent times to first token, in ms (None before any)."""
        if not self.ttft_s:
            return None
        xs = sorted(self.ttft_s)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000.0


class _Engine(Protocol):
    """What the report reads from the engine actor."""

    _config: dict[str, Any]
    _backend_name: str
    load: EngineLoad

    async def stats(self) -> dict[str, Any]: ...

    def tensor_parallel_size(self) -> int: ...


def _gpu_ids() -> list[int | str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") or ""
    return [int(d) if d.isdigit() else d for d in visible.split(",") if d]


async def build_report(engine: _Engine, actor_id: str) -> dict[str, Any]:
    """One report (the fields of ``EngineReport`` in engine-stats.ts)."""
    s = await engine.stats()
    load = engine.load
    return {
        "actorId": actor_id,
        "name": "",
        "model": str(engine._config.get("model"))[-MAX_MODEL_CHARS:],
        "backend": engine._backend_name,
        "rank": int(engine._config.get("rank") or 0),
        "pid": os.getpid(),
        "tensorParallelSize": engine.tensor_parallel_size(),
        "gpuIds": _gpu_ids(),
        "running": int(s["running"]),
        "waiting": int(s["waiting"]),
        "kvCacheUsage": float(s["kv_cache_usage"]),
        "tokensPerS": round(load.tokens_per_s(time.monotonic()), 3),
        "ttftP50Ms": load.ttft_ms(0.5),
        "ttftP99Ms": load.ttft_ms(0.99),
        "requestsFinished": load.finished,
    }


async def report_loop(engine: _Engine) -> None:
    """Report ``engine``'s load to its node every :data:`REPORT_INTERVAL_S` until cancelled. Does
    nothing outside a tsray worker (an engine run by hand, in tests of the backend)."""
    from ..worker.runtime import current_actor_id, report_state

    actor_id = current_actor_id()
    if not actor_id:
        return
    warned = False
    while True:
        try:
            report = await build_report(engine, actor_id)
            if not report_state("engine:" + json.dumps(report, separators=(",", ":"))):
                return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a failed report must not stop the engine
            if not warned:
                log.warning("engine load report failed (the dashboard will not show this engine's load): %s", e)
                warned = True
        await asyncio.sleep(REPORT_INTERVAL_S)
