"""CPU profile of the engine actor's data plane (no GPU, no vLLM needed).

Drives ``tsray.engine.actor.EngineActor`` + ``VllmBackend`` exactly as the bridge does (a ZeroMQ
DEALER client in a child process sends ``GenerateRequest``s and reads ``GenerateDeltas``), but the
vLLM ``AsyncLLM`` under the backend is a fake (:class:`FakeAsyncLLM`) that mimics vLLM 0.26's
front end: an output-handler task that, once per engine "step" (``--step-ms``, the engine core's
pace), builds one ``RequestOutput`` (DELTA kind, one new token) per running request in chunks of
128 with ``await asyncio.sleep(0)`` between chunks, and puts it into that request's
``RequestOutputCollector`` (copied from vLLM: an ``asyncio.Event`` per request, outputs merged when
the consumer lags). ``generate()`` is vLLM's loop (``q.get_nowait() or await q.get()``).

Modes (same fake engine, same step pace):
  direct  ``engine.generate`` consumed by one task per request in this process (bench/llm/direct.py)
  bridge  EngineActor (ROUTER) in this process, the client in a child process (its CPU not counted)

It prints, per mode, the CPU time of this process (``time.process_time``) per engine step and per
delta; bridge minus direct = what the bridge costs on the engine actor's event loop, i.e. what
would lengthen a CPU-bound vLLM front end. ``--profile`` adds a cProfile top list.

Usage: python bench/llm/actor_profile.py [--requests 1000] [--concurrency 1000] [--tokens 128]
       [--step-ms 15] [--modes direct,bridge] [--profile] [--json]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

# ----------------------------------------------------------------------------- fake vLLM front end


class STREAM_FINISHED_T:  # noqa: N801 - placeholder like vLLM's sentinel
    pass


class FakeCompletionOutput:
    __slots__ = ("index", "text", "token_ids", "cumulative_logprob", "logprobs", "finish_reason", "stop_reason")

    def __init__(self, index: int, text: str, token_ids: list[int], finish_reason: str | None) -> None:
        self.index = index
        self.text = text
        self.token_ids = token_ids
        self.cumulative_logprob = None
        self.logprobs = None
        self.finish_reason = finish_reason
        self.stop_reason = None


class FakeRequestOutput:
    def __init__(self, request_id: str, prompt_token_ids: list[int], outputs: list[FakeCompletionOutput], finished: bool) -> None:
        self.request_id = request_id
        self.prompt = None
        self.prompt_token_ids = prompt_token_ids
        self.prompt_logprobs = None
        self.outputs = outputs
        self.finished = finished
        self.metrics = None
        self.num_cached_tokens = 0

    def add(self, next_output: FakeRequestOutput, aggregate: bool) -> None:
        """vLLM's RequestOutput.add (DELTA: concatenate)."""
        self.finished |= next_output.finished
        for n in next_output.outputs:
            for i, c in enumerate(self.outputs):
                if c.index == n.index:
                    if aggregate:
                        c.text += n.text
                        c.token_ids = list(c.token_ids) + list(n.token_ids)
                    else:
                        self.outputs[i] = n
                    c.finish_reason = n.finish_reason
                    break
            else:
                self.outputs.append(n)


class RequestOutputCollector:
    """vLLM 0.26 ``vllm/v1/engine/output_processor.py`` RequestOutputCollector, verbatim logic."""

    def __init__(self, output_kind: Any, request_id: str) -> None:
        self.aggregate = True
        self.request_id = request_id
        self.output: Any = None
        self.ready = asyncio.Event()

    def put(self, output: Any) -> None:
        if self.output is None or isinstance(output, Exception):
            self.output = output
            self.ready.set()
        elif isinstance(self.output, FakeRequestOutput) and isinstance(output, FakeRequestOutput):
            self.output.add(output, aggregate=self.aggregate)

    async def get(self) -> Any:
        while (output := self.output) is None:
            await self.ready.wait()
        self.output = None
        self.ready.clear()
        if isinstance(output, Exception):
            raise output
        return output

    def get_nowait(self) -> Any:
        output = self.output
        if output is not None:
            self.output = None
            self.ready.clear()
        if isinstance(output, Exception):
            raise output
        return output

    def close(self) -> None:
        pass


class _Req:
    __slots__ = ("rid", "ids", "max_tokens", "done", "queue")

    def __init__(self, rid: str, ids: list[int], max_tokens: int, queue: RequestOutputCollector) -> None:
        self.rid, self.ids, self.max_tokens, self.done, self.queue = rid, ids, max_tokens, 0, queue


class FakeAsyncLLM:
    """The parts of vLLM's AsyncLLM that VllmBackend uses, with a timed fake engine core."""

    CHUNK = 128  # VLLM_V1_OUTPUT_PROC_CHUNK_SIZE

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.reqs: dict[str, _Req] = {}
        self.steps = 0
        self.deltas = 0
        self.output_handler: asyncio.Task | None = None
        self.proc_s = 0.0  # CPU inside the fake output processor (same in both modes)

    class _OP:
        def __init__(self, outer: FakeAsyncLLM) -> None:
            self.outer = outer

        def get_num_unfinished_requests(self) -> int:
            return len(self.outer.reqs)

    @property
    def output_processor(self) -> Any:
        return FakeAsyncLLM._OP(self)

    async def add_request(self, request_id: str, prompt: Any, params: Any, **_: Any) -> RequestOutputCollector:
        if self.output_handler is None:
            self.output_handler = asyncio.get_running_loop().create_task(self._output_handler())
        q = RequestOutputCollector(params.output_kind, request_id)
        self.reqs[request_id] = _Req(request_id, list(prompt["prompt_token_ids"]), params.max_tokens, q)
        return q

    async def generate(self, prompt: Any, sampling_params: Any, request_id: str, **_: Any):
        q = None
        try:
            q = await self.add_request(request_id, prompt, sampling_params)
            finished = False
            while not finished:
                out = q.get_nowait() or await q.get()
                finished = out.finished
                yield out
        except (asyncio.CancelledError, GeneratorExit):
            if q is not None:
                await self.abort(q.request_id)
            raise
        finally:
            if q is not None:
                q.close()

    async def abort(self, request_id: Any, internal: bool = False) -> None:
        ids = [request_id] if isinstance(request_id, str) else list(request_id)
        for rid in ids:
            r = self.reqs.pop(rid, None)
            if r is not None:
                r.queue.put(FakeRequestOutput(rid, r.ids, [FakeCompletionOutput(0, "", [], "abort")], True))

    async def _output_handler(self) -> None:
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while True:
            nxt += self.step_s
            delay = nxt - loop.time()
            # The engine core runs at its own pace: when the front end is behind, the next step's
            # outputs are already waiting (no sleep); else wait for them.
            await asyncio.sleep(delay if delay > 0 else 0)
            if not self.reqs:
                nxt = loop.time()
                continue
            batch = list(self.reqs.values())
            self.steps += 1
            for start in range(0, len(batch), self.CHUNK):
                t0 = time.process_time()
                for r in batch[start : start + self.CHUNK]:
                    if r.rid not in self.reqs:
                        continue
                    r.done += 1
                    tok = 1000 + (r.done * 7919) % 50000
                    fin = r.done >= r.max_tokens
                    # detokenized text of one token, a new CompletionOutput and RequestOutput
                    # per request per step, as vLLM's OutputProcessor builds them (DELTA kind)
                    co = FakeCompletionOutput(0, f" w{tok}", [tok], "length" if fin else None)
                    r.queue.put(FakeRequestOutput(r.rid, r.ids, [co], fin))
                    if fin:
                        del self.reqs[r.rid]
                    self.deltas += 1
                self.proc_s += time.process_time() - t0
                if start + self.CHUNK < len(batch):
                    await asyncio.sleep(0)

    async def check_health(self) -> None:
        pass

    def shutdown(self) -> None:
        if self.output_handler is not None:
            self.output_handler.cancel()


class _FakeNames:
    class RequestOutputKind:
        DELTA = 1

    class SamplingParams:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)

    @staticmethod
    def TokensPrompt(prompt_token_ids: list[int]) -> dict[str, Any]:  # noqa: N802
        return {"prompt_token_ids": prompt_token_ids}

    class EngineDeadError(Exception):
        pass


def make_backend(step_s: float) -> Any:
    from tsray.engine.vllm_backend import VllmBackend

    class FakeVllmBackend(VllmBackend):
        async def start(self, model_dir, engine_args=None, num_gpus=0.0, gpu_fraction=1.0) -> None:  # type: ignore[override]
            self._engine = FakeAsyncLLM(step_s)
            self._vllm = _FakeNames
            self._model_dir = model_dir
            self._max_model_len = 2048
            self._vocab_size = 151936

    return FakeVllmBackend()


# ----------------------------------------------------------------------------------------- modes


def prompt_ids(i: int, n: int = 128) -> list[int]:
    return [10 + ((i * 977 + j * 131) % 150000) for j in range(n)]


async def run_direct(a: argparse.Namespace) -> dict[str, Any]:
    be = make_backend(a.step_ms / 1000)
    await be.start("fake")
    engine: FakeAsyncLLM = be._engine
    sp = _FakeNames.SamplingParams(max_tokens=a.tokens, output_kind=1)
    sem = asyncio.Semaphore(a.concurrency)
    produced = 0

    async def one(i: int) -> None:
        nonlocal produced
        async with sem:
            async for out in engine.generate({"prompt_token_ids": prompt_ids(i)}, sp, f"r{i}"):
                produced += sum(len(co.token_ids) for co in out.outputs)
                if out.finished:
                    break

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(a.requests)))
    return _result("direct", a, engine, produced, time.process_time() - c0, time.perf_counter() - t0)


async def run_bridge(a: argparse.Namespace) -> dict[str, Any]:
    import tsray.engine.actor as actor_mod

    actor_mod.create_backend = lambda name: make_backend(a.step_ms / 1000)  # type: ignore[assignment]
    actor = actor_mod.EngineActor({"model": "fake", "backend": "fake", "bind": "ipc"})
    address = await actor.address()
    engine: FakeAsyncLLM = actor._backend._engine  # type: ignore[attr-defined]
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", address, "--requests", str(a.requests), "--concurrency", str(a.concurrency),
        "--tokens", str(a.tokens), stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    line = await child.stdout.readline()  # "connected"
    assert line.strip() == b"connected", line
    c0, t0 = time.process_time(), time.perf_counter()
    child.stdin = None
    out = await child.stdout.readline()  # the client's result line when every request finished
    c1, t1 = time.process_time(), time.perf_counter()
    await child.wait()
    res = json.loads(out)
    await actor.shutdown()
    r = _result("bridge", a, engine, res["tokens"], c1 - c0, t1 - t0)
    r["client_deltas_msgs"] = res["messages"]
    return r


def _result(mode: str, a: argparse.Namespace, engine: FakeAsyncLLM, produced: int, cpu: float, wall: float) -> dict[str, Any]:
    steps = max(engine.steps, 1)
    return {
        "mode": mode, "requests": a.requests, "concurrency": a.concurrency, "tokens": a.tokens, "step_ms": a.step_ms,
        "output_tokens": produced, "steps": engine.steps, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        "cpu_ms_per_step": round(cpu / steps * 1000, 3),
        "cpu_us_per_delta": round(cpu / max(engine.deltas, 1) * 1e6, 2),
        "fake_output_processor_us_per_delta": round(engine.proc_s / max(engine.deltas, 1) * 1e6, 2),
        "tokens_per_s": round(produced / wall, 1),
    }


# ---------------------------------------------------------------------------------------- client


async def client(a: argparse.Namespace) -> None:
    import zmq
    import zmq.asyncio

    from tsray._proto import tsray_pb2 as pb
    from tsray.protocol import decode_message, encode_message

    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(a.client)
    print("connected", flush=True)
    nxt = 0
    tokens = 0
    msgs = 0
    open_ = 0

    def send_one() -> None:
        nonlocal nxt, open_
        req = pb.GenerateRequest(request_id=f"q{nxt}", prompt_token_ids=prompt_ids(nxt))
        req.params.temperature = 0.0
        req.params.max_tokens = a.tokens
        req.params.ignore_eos = True
        sock.send_multipart(encode_message(req))
        nxt += 1
        open_ += 1

    while nxt < min(a.concurrency, a.requests):
        send_one()
    done = 0
    while done < a.requests:
        frames = await sock.recv_multipart()
        m = decode_message(frames)
        msgs += 1
        if m.kind == "generate_deltas":
            for d in m.envelope.generate_deltas.deltas:
                tokens += len(d.token_ids)
                if d.finish_reason:
                    done += 1
                    open_ -= 1
                    if nxt < a.requests:
                        send_one()
        elif m.kind == "generate_error":
            raise SystemExit(f"error: {m.envelope.generate_error}")
    print(json.dumps({"tokens": tokens, "messages": msgs}), flush=True)
    sock.close(0)
    ctx.term()


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=0, help="default: all at once")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--step-ms", type=float, default=15.0)
    ap.add_argument("--modes", default="direct,bridge")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--client", default="")
    a = ap.parse_args()
    a.concurrency = a.concurrency or a.requests
    if a.client:
        asyncio.run(client(a))
        return
    results = []
    for mode in a.modes.split(","):
        fn = run_direct if mode == "direct" else run_bridge
        prof = cProfile.Profile() if a.profile else None
        if prof:
            prof.enable()
        r = asyncio.run(fn(a))
        if prof:
            prof.disable()
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(22)
            print(f"--- cProfile {mode} (tottime; profiling inflates times)\n" + "\n".join(s.getvalue().splitlines()[6:32]))
        results.append(r)
        print(json.dumps(r), flush=True)
    if len(results) == 2 and not a.profile:
        d, b = results
        print(json.dumps({
            "bridge_minus_direct_cpu_ms_per_step": round(b["cpu_ms_per_step"] - d["cpu_ms_per_step"], 3),
            "bridge_minus_direct_cpu_us_per_delta": round(b["cpu_us_per_delta"] - d["cpu_us_per_delta"], 2),
            "tokens_per_s_ratio": round(b["tokens_per_s"] / d["tokens_per_s"], 3),
        }))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
