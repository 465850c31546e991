"""Metric registry, timing and JSON-line output for the Ray side of the tsray benchmarks.

Mirrors bench/tsray/harness.ts: a metric is one decorated function that receives a ``timeit``
callable, sets up its workload exactly as Ray's ``python/ray/_private/ray_perf.py`` does, and returns
``timeit(fn, multiplier)``. Metrics run in registration order (which follows ray_perf.py), grouped by
"session" (the ``ray.init`` arguments they need), one ``ray.init()``/``ray.shutdown()`` per session.

Timing: in full mode the timing function is Ray's own ``ray._private.ray_microbenchmark_helpers.timeit``
from the installed wheel (10 s sleep, 1 s warm-up, 4 trials of 2 s, mean and population std of
``multiplier * calls / s``). ``--quick`` uses ``quick_timeit`` below: the same algorithm with shorter
phases (QUICK). bench/tsray/timeit.ts ports the same algorithm with the same parameters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

# Ray's timeit phases, and the shorter ones used by --quick (keep in sync with bench/tsray/timeit.ts).
RAY_TIMEIT = {"sleep_sec": 10.0, "warmup_sec": 1.0, "trials": 4, "trial_sec": 2.0}
QUICK_TIMEIT = {"sleep_sec": 1.0, "warmup_sec": 0.5, "trials": 3, "trial_sec": 1.0}

Timeit = Callable[..., Tuple[float, float]]


@dataclass
class Metric:
    name: str
    fn: Callable[[Timeit], Tuple[float, float]]
    unit: str
    session: str
    note: str = ""


@dataclass
class Registry:
    metrics: Dict[str, Metric] = field(default_factory=dict)
    sessions: Dict[str, dict] = field(default_factory=lambda: {"default": {}})

    def metric(self, name: str, unit: str = "ops/s", session: str = "default", note: str = ""):
        """Decorator: register ``fn(timeit) -> (mean, std)`` as metric ``name``."""

        def deco(fn):
            if name in self.metrics:
                raise ValueError(f"metric {name!r} registered twice")
            self.metrics[name] = Metric(name, fn, unit, session, note)
            return fn

        return deco

    def session(self, name: str, **init_args) -> None:
        """Declare the ``ray.init(**init_args)`` a group of metrics runs under."""
        self.sessions[name] = init_args


def quick_timeit(fn, multiplier=1, *, sleep_sec, warmup_sec, trials, trial_sec):
    """Ray's timeit algorithm with configurable phases (used by --quick)."""
    import numpy as np

    time.sleep(sleep_sec)
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < warmup_sec:
        fn()
        count += 1
    step = count // 10 + 1
    stats = []
    for _ in range(trials):
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < trial_sec:
            for _ in range(step):
                fn()
            count += step
        end = time.perf_counter()
        stats.append(multiplier * count / (end - start))
    return float(np.mean(stats)), float(np.std(stats))


def make_timeit(metric_name: str, quick: bool) -> Timeit:
    if quick:

        def t(fn, multiplier=1):
            return quick_timeit(fn, multiplier, **QUICK_TIMEIT)

        return t

    from ray._private import ray_microbenchmark_helpers as helpers

    def t(fn, multiplier=1):
        # Ray's own timeit prints "<name> per second X +- Y" on stdout; stdout is for JSON lines only.
        with contextlib.redirect_stdout(sys.stderr):
            res = helpers.timeit(metric_name, fn, multiplier)
        if not res or res[0] is None:
            raise RuntimeError(
                f"Ray's timeit skipped {metric_name}: unset TESTS_TO_RUN / TESTS_TO_SKIP"
            )
        _, mean, sd = res[0]
        return float(mean), float(sd)

    return t


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(registry: Registry, argv: Optional[List[str]] = None) -> int:
    import ray

    ap = argparse.ArgumentParser(description="Ray side of the tsray benchmarks (JSON lines on stdout)")
    ap.add_argument("--metrics", default="", help="comma-separated metric names (default: all)")
    ap.add_argument("--quick", action="store_true", help="shorter timing phases (not comparable to Ray's published numbers)")
    ap.add_argument("--list", action="store_true", help="print the metric names and exit")
    args = ap.parse_args(argv)

    if args.list:
        for m in registry.metrics.values():
            print(m.name)
        return 0
    wanted = [s.strip() for s in args.metrics.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in registry.metrics]
    if unknown:
        print(f"unknown metric(s): {', '.join(unknown)}; known: {', '.join(registry.metrics)}", file=sys.stderr)
        return 2
    selected = [m for m in registry.metrics.values() if not wanted or m.name in wanted]

    emit(
        {
            "system": "ray",
            "kind": "meta",
            "version": ray.__version__,
            "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "timeit": QUICK_TIMEIT if args.quick else dict(RAY_TIMEIT, source="ray._private.ray_microbenchmark_helpers.timeit"),
            "quick": args.quick,
            "pid": os.getpid(),
        }
    )
    failed = 0
    for session_name, init_args in registry.sessions.items():
        group = [m for m in selected if m.session == session_name]
        if not group:
            continue
        ray.init(**init_args)
        try:
            for m in group:
                print(f"[ray] {m.name} ...", file=sys.stderr, flush=True)
                try:
                    mean, sd = m.fn(make_timeit(m.name, args.quick))
                except Exception as e:  # report and go on with the next metric
                    failed += 1
                    emit({"system": "ray", "metric": m.name, "error": f"{type(e).__name__}: {e}", "unit": m.unit})
                    continue
                line = {"system": "ray", "metric": m.name, "value": mean, "std": sd, "unit": m.unit}
                if m.note:
                    line["note"] = m.note
                emit(line)
        finally:
            ray.shutdown()
    return 1 if failed else 0
