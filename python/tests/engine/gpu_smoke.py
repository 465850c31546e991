"""GPU smoke run of the engine backends (not collected by pytest; run by hand on a GPU machine).

    python python/tests/engine/gpu_smoke.py [--model DIR] [--backends transformers,vllm]

Builds the tiny model (tools/build-tiny-model.py recipe) unless --model is given, then for each
backend: start on 1 GPU (gpu_fraction 0.5 → vLLM gpu_memory_utilization 0.45), 1 completion,
64 concurrent streams, an abort, stats, shutdown. Prints one JSON line per backend; exit 1 on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tsray.engine import SamplingParams, create_backend
from tsray.engine.tiny_model import build_tiny_model


async def smoke(name: str, model: str) -> dict:
    rep: dict = {"backend": name}
    b = create_backend(name)
    t = time.monotonic()
    await b.start(model, {}, num_gpus=1, gpu_fraction=0.5)
    rep["start_s"] = round(time.monotonic() - t, 1)
    rep["gpu_memory_utilization"] = getattr(b, "gpu_memory_utilization", None)
    rep["device"] = getattr(b, "device", "cuda")
    ds = [
        d async for d in b.generate("one", "hello world", SamplingParams(temperature=0, max_tokens=16, ignore_eos=True))
    ]
    rep["one"] = {
        "tokens": sum(len(d.token_ids) for d in ds),
        "deltas": len(ds),
        "finish": ds[-1].finish_reason,
        "text": "".join(d.text for d in ds)[:60],
    }

    async def one(i: int) -> int:
        stream = b.generate(f"c{i}", f"request {i}", SamplingParams(max_tokens=64, ignore_eos=True))
        return sum([len(d.token_ids) async for d in stream])

    t = time.monotonic()
    toks = await asyncio.gather(*(one(i) for i in range(64)))
    dt = time.monotonic() - t
    rep["concurrent64"] = {"tokens": sum(toks), "s": round(dt, 2), "tok_per_s": round(sum(toks) / dt)}
    got = []
    async for d in b.generate("ab", "abort me", SamplingParams(max_tokens=1000, ignore_eos=True)):
        got.append(d)
        if len(got) == 2:
            rep["stats_mid"] = (await b.stats()).to_dict()
            await b.abort("ab")
    rep["abort"] = {"deltas": len(got), "last": got[-1].finish_reason}
    rep["chat"] = b.apply_chat_template([{"role": "user", "content": "hi"}])
    await b.health()
    await b.shutdown()
    rep["ok"] = rep["one"]["tokens"] == 16 and sum(toks) == 64 * 64 and got[-1].finish_reason == "abort"
    return rep


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--backends", default="transformers,vllm")
    args = ap.parse_args()
    model = args.model or str(build_tiny_model(os.path.join(tempfile.gettempdir(), "tsray-tiny-model")))
    ok = True
    for name in args.backends.split(","):
        try:
            rep = asyncio.run(smoke(name, model))
        except Exception as e:  # noqa: BLE001
            rep = {
                "backend": name,
                "ok": False,
                "error": f"{type(e).__name__}: {e}",
                "trace": traceback.format_exc()[-2000:],
            }
        ok = ok and rep["ok"]
        print(json.dumps(rep), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
