"""The anchor of the bridge benchmark: the same engine backend driven directly in Python (no tsray).

Usage: .venv/bin/python bench/llm/direct.py --backend scripted|transformers --model DIR --requests N --tokens T --concurrency C
Prints one JSON line: per-request latency (p50/p99), time to first token (p50/p99), per-token time, tokens/s.
"""
import argparse
import asyncio
import json
import statistics
import time

from tsray.engine import SamplingParams, create_backend


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="scripted")
    ap.add_argument("--model", default="scripted")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=1)
    a = ap.parse_args()
    be = create_backend(a.backend)
    await be.start(a.model, {"torch_threads": 1} if a.backend == "transformers" else {}, 0, 1.0)
    params = SamplingParams(temperature=0.0, max_tokens=a.tokens, ignore_eos=True)
    lat, ttft, tokens = [], [], 0
    sem = asyncio.Semaphore(a.concurrency)

    async def one(i: int) -> None:
        nonlocal tokens
        async with sem:
            t0 = time.perf_counter()
            first = None
            async for d in be.generate(f"r{i}", f"prompt number {i}", params):
                if first is None:
                    first = time.perf_counter() - t0
                tokens += len(d.token_ids)
            lat.append(time.perf_counter() - t0)
            ttft.append(first or 0.0)

    for i in range(min(10, a.requests)):  # warm-up
        await one(-1 - i)
    lat.clear(), ttft.clear()
    tokens = 0
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(a.requests)))
    el = time.perf_counter() - t0
    await be.shutdown()
    print(json.dumps({
        "system": "python-direct", "backend": a.backend, "requests": a.requests, "tokens": a.tokens, "concurrency": a.concurrency,
        "latency_p50_ms": round(pct(lat, 50) * 1000, 3), "latency_p99_ms": round(pct(lat, 99) * 1000, 3),
        "ttft_p50_ms": round(pct(ttft, 50) * 1000, 3), "ttft_p99_ms": round(pct(ttft, 99) * 1000, 3),
        "tokens_per_s": round(tokens / el, 1), "ms_per_token": round(statistics.mean(lat) / a.tokens * 1000, 4),
    }))


asyncio.run(main())
