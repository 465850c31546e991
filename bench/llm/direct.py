"""The anchor of the bridge benchmark: the same engine driven directly in Python (no tsray).

Usage:
  python bench/llm/direct.py --backend scripted|transformers|vllm --model DIR
      [--requests N --concurrency C]  or  [--workloads 1000x1000,50x1]
      [--tokens T] [--input-tokens I] [--engine-args JSON] [--num-gpus G] [--warmup W]

- scripted / transformers: the tsray engine backend (``create_backend``) driven in-process.
- vllm: vLLM's ``AsyncLLM`` itself (``AsyncLLM.from_engine_args``) with the engine arguments that
  the tsray vLLM backend would use (``build_engine_args``: same TP, gpu_memory_utilization,
  enforce_eager, stat logging), requests as ``TokensPrompt`` + ``SamplingParams(output_kind=DELTA)``.
  This is the baseline the bridge is compared with.

Prompts: with ``--input-tokens I`` every request i (warm-up: 0.., workload k: 10000*(k+1)..) is a list of I token ids (the formula in
``prompt_ids``, ids 10 .. 10+``--prompt-vocab``-1, shared with bench/llm/bridge.bench.ts); else
the text ``prompt number {i}``.
Each workload ``RxC`` sends R requests with at most C in flight, greedy, ``ignore_eos``.
Prints one JSON line per workload (``"system": "python-direct"``) and, for vLLM, an ``engine`` line.
``--greedy-check N``: then the first N of ``GREEDY_PROMPTS`` at once, temperature 0, up to ``--tokens``
tokens (stopping at EOS), printed as a ``"greedy"`` line of token ids; bridge.bench.ts sends the same
prompts through the bridge and checks that the tokens are identical.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

from tsray.engine import SamplingParams, create_backend  # noqa: E402


# The same list in bench/llm/bridge.bench.ts (GREEDY_PROMPTS).
GREEDY_PROMPTS = [
    "The capital of France is",
    "Hello, my name is",
    "The president of the United States is",
    "The future of AI is",
    "Once upon a time",
    "The quick brown fox",
    "To be or not to be",
    "In a galaxy far away",
]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else 0.0


def prompt_ids(i: int, n: int, lo: int, span: int) -> list[int]:
    """Token ids of request i (same formula as bridge.bench.ts): distinct first token per request,
    so the prefix cache does not share prompts."""
    return [lo + ((i * 977 + j * 131) % span) for j in range(n)]


def parse_workloads(a) -> list[tuple[int, int]]:
    if a.workloads:
        out = []
        for w in a.workloads.split(","):
            r, c = w.lower().split("x")
            out.append((int(r), int(c)))
        return out
    return [(a.requests, a.concurrency)]


def summarize(name, backend, tokens, input_tokens, requests, concurrency, lat, ttft, itl, produced, elapsed):
    return {
        "system": name, "backend": backend, "requests": requests, "tokens": tokens, "input_tokens": input_tokens,
        "concurrency": concurrency, "elapsed_s": round(elapsed, 3), "output_tokens": produced,
        "latency_p50_ms": round(pct(lat, 50) * 1000, 3), "latency_p99_ms": round(pct(lat, 99) * 1000, 3),
        "ttft_p50_ms": round(pct(ttft, 50) * 1000, 3), "ttft_p99_ms": round(pct(ttft, 99) * 1000, 3),
        "itl_mean_ms": round(statistics.mean(itl) * 1000, 4) if itl else 0.0,
        "itl_p50_ms": round(pct(itl, 50) * 1000, 4), "itl_p99_ms": round(pct(itl, 99) * 1000, 4),
        "tokens_per_s": round(produced / elapsed, 1),
        "ms_per_token": round(statistics.mean(lat) / tokens * 1000, 4) if lat else 0.0,
    }


class _Runner:
    """Runs workloads against a ``submit(i, ids_or_text) -> async iterator of token counts``."""

    def __init__(self, submit, a, vocab: tuple[int, int]):
        self.submit, self.a, self.vocab = submit, a, vocab

    def prompt(self, i: int):
        if self.a.input_tokens:
            return prompt_ids(i, self.a.input_tokens, *self.vocab)
        return f"prompt number {i}"

    async def run(self, requests: int, concurrency: int, base: int):
        lat, ttft, itl = [], [], []
        produced = 0
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            nonlocal produced
            async with sem:
                t0 = time.perf_counter()
                first = None
                n = 0
                async for k in self.submit(f"r{base + i}", self.prompt(base + i)):
                    if first is None and k > 0:
                        first = time.perf_counter() - t0
                    n += k
                t = time.perf_counter() - t0
                lat.append(t)
                ttft.append(first or 0.0)
                if n > 1 and first is not None:
                    itl.append((t - first) / (n - 1))
                produced += n

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return lat, ttft, itl, produced, time.perf_counter() - t0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="scripted")
    ap.add_argument("--model", default="scripted")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--workloads", default="")
    ap.add_argument("--input-tokens", type=int, default=0)
    ap.add_argument("--engine-args", default="")
    ap.add_argument("--num-gpus", type=float, default=0.0)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--prompt-vocab", type=int, default=400, help="token-id prompts use ids 10 .. 10+N-1")
    ap.add_argument("--greedy-check", type=int, default=0, help="print greedy token ids of the first N GREEDY_PROMPTS")
    a = ap.parse_args()
    workloads = parse_workloads(a)
    engine_args = json.loads(a.engine_args) if a.engine_args else ({"torch_threads": 1} if a.backend == "transformers" else {})

    if a.backend == "vllm":
        submit, close, engine_line, greedy_ids = await _start_vllm(a, engine_args)
    else:
        be = create_backend(a.backend)
        await be.start(a.model, engine_args, a.num_gpus, 1.0)
        params = SamplingParams(temperature=0.0, max_tokens=a.tokens, ignore_eos=True)

        async def submit(rid, prompt):
            async for d in be.generate(rid, prompt, params):
                yield len(d.token_ids)

        async def close():
            await be.shutdown()

        async def greedy_ids(rid, prompt):
            ids: list[int] = []
            greedy = SamplingParams(temperature=0.0, max_tokens=a.tokens)
            async for d in be.generate(rid, prompt, greedy):
                ids.extend(d.token_ids)
            return ids

        engine_line = None

    runner = _Runner(submit, a, (10, a.prompt_vocab))
    # Warm-up (not measured): a few requests at once.
    await runner.run(a.warmup, a.warmup, 0)
    if engine_line:
        print(json.dumps(engine_line), flush=True)
    for k, (requests, concurrency) in enumerate(workloads):
        lat, ttft, itl, produced, el = await runner.run(requests, concurrency, 10_000 * (k + 1))
        print(json.dumps(summarize("python-direct", a.backend, a.tokens, a.input_tokens, requests, concurrency, lat, ttft, itl, produced, el)), flush=True)
    if a.greedy_check:
        prompts = GREEDY_PROMPTS[: a.greedy_check]
        ids = await asyncio.gather(*(greedy_ids(f"g{i}", p) for i, p in enumerate(prompts)))
        print(json.dumps({"system": "python-direct", "greedy": [{"prompt": p, "token_ids": t} for p, t in zip(prompts, ids)]}), flush=True)
    await close()


async def _start_vllm(a, engine_args):
    """vLLM's AsyncLLM with the engine arguments of the tsray vLLM backend."""
    import os

    from tsray.engine.vllm_backend import VLLM_ENV_DEFAULTS, build_engine_args

    for k, v in VLLM_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    from vllm import AsyncEngineArgs, SamplingParams as VSP, TokensPrompt
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM
    from vllm.v1.metrics.loggers import StatLoggerBase

    class _NoopLogger(StatLoggerBase):  # the bridge's backend plugs one stat logger in; so does this
        def __init__(self, vllm_config, engine_index=0):
            self.last = None

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx=0):
            if scheduler_stats is not None:
                self.last = scheduler_stats

        def log_engine_initialized(self):
            pass

    kwargs = build_engine_args(a.model, engine_args, a.num_gpus or 1, 1.0)
    t0 = time.perf_counter()
    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs), stat_loggers=[lambda c, i: _NoopLogger(c, i)])
    start_s = time.perf_counter() - t0
    cc = engine.vllm_config.cache_config
    vocab_size = int(engine.model_config.get_vocab_size())
    sp = VSP(temperature=0.0, max_tokens=a.tokens, ignore_eos=True, output_kind=RequestOutputKind.DELTA)

    async def submit(rid, prompt):
        p = TokensPrompt(prompt_token_ids=prompt) if isinstance(prompt, list) else prompt
        async for out in engine.generate(p, sp, rid):
            yield sum(len(co.token_ids) for co in out.outputs)
            if out.finished:
                break

    async def close():
        engine.shutdown()

    greedy_sp = VSP(temperature=0.0, max_tokens=a.tokens, output_kind=RequestOutputKind.DELTA)

    async def greedy_ids(rid, prompt):
        ids: list[int] = []
        async for out in engine.generate(prompt, greedy_sp, rid):
            ids.extend(out.outputs[0].token_ids)
            if out.finished:
                break
        return ids

    line = {
        "system": "python-direct", "engine": "vllm AsyncLLM", "engine_args": kwargs, "start_s": round(start_s, 1),
        "num_gpu_blocks": cc.num_gpu_blocks, "block_size": cc.block_size,
        "kv_cache_tokens": (cc.num_gpu_blocks or 0) * (cc.block_size or 0),
        "max_model_len": engine.model_config.max_model_len, "vocab_size": vocab_size,
    }
    return submit, close, line, greedy_ids


asyncio.run(main())
