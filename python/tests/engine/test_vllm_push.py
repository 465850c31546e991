"""VllmBackend.open_stream (the engine actor's push path) against a fake AsyncLLM front end whose
``add_request`` returns a ``RequestOutputCollector`` like vLLM 0.26's: deltas are delivered by the
fake output handler calling ``queue.put`` (hooked), or, with the hook off, by one reader task."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace as NS
from typing import Any

import pytest

import tsray.engine.vllm_backend as vb
from tsray.engine import EngineDead, SamplingParams
from tsray.engine.vllm_backend import VllmBackend


class EngineDeadError(Exception):
    pass


class RequestOutputCollector:
    """vLLM's collector, reduced: put/get/get_nowait with an Event (no merging needed here)."""

    def __init__(self, request_id: str) -> None:
        self.request_id, self.output, self.ready = request_id, None, asyncio.Event()

    def put(self, output: Any) -> None:
        if self.output is None or isinstance(output, Exception):
            self.output = output
            self.ready.set()
        else:
            self.output.outputs.extend(output.outputs)
            self.output.finished |= output.finished

    async def get(self) -> Any:
        while (out := self.output) is None:
            await self.ready.wait()
        self.output = None
        self.ready.clear()
        if isinstance(out, Exception):
            raise out
        return out

    def get_nowait(self) -> Any:
        out = self.output
        if out is not None:
            self.output = None
            self.ready.clear()
        if isinstance(out, Exception):
            raise out
        return out


class FakeEngine:
    def __init__(self) -> None:
        self.reqs: dict[str, tuple[RequestOutputCollector, Any, list[int]]] = {}
        self.aborted: list[str] = []

    async def add_request(self, request_id: str, prompt: Any, params: Any) -> RequestOutputCollector:
        q = RequestOutputCollector(request_id)
        self.reqs[request_id] = (q, params, [0] * params.n)
        return q

    def step(self) -> None:
        """One engine step: one token per running sequence, put into each request's collector."""
        for rid, (q, sp, done) in list(self.reqs.items()):
            outs = []
            for k in range(sp.n):
                done[k] += 1
                last = done[k] >= sp.max_tokens
                lp = [{done[k]: NS(logprob=-0.5)}] if sp.logprobs is not None else None
                outs.append(NS(index=k, text=f" w{done[k]}", token_ids=[done[k]], logprobs=lp, finish_reason="length" if last else None))
            fin = all(d >= sp.max_tokens for d in done)
            q.put(NS(outputs=outs, finished=fin))
            if fin:
                del self.reqs[rid]

    async def abort(self, request_id: str, internal: bool = False) -> None:
        self.aborted.append(request_id)
        r = self.reqs.pop(request_id, None)
        if r is not None:
            r[0].put(NS(outputs=[NS(index=k, text="", token_ids=[], logprobs=None, finish_reason="abort") for k in range(r[1].n)], finished=True))

    def die(self) -> None:
        for q, _, _ in self.reqs.values():
            q.put(EngineDeadError("engine core died"))
        self.reqs.clear()


def backend(engine: FakeEngine) -> VllmBackend:
    b = VllmBackend()
    b._engine = engine
    b._vllm = NS(
        SamplingParams=lambda **kw: NS(**kw),
        TokensPrompt=lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids},
        RequestOutputKind=NS(DELTA=1),
        EngineDeadError=EngineDeadError,
    )
    b._max_model_len, b._vocab_size = 64, 100
    return b


@pytest.mark.parametrize("push", [True, False])
def test_open_stream_delivers_deltas_aborts_and_errors(push: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vb, "_PUSH", push)

    async def main() -> None:
        eng = FakeEngine()
        b = backend(eng)
        got: dict[str, list[tuple]] = {"a": [], "b": [], "c": []}
        errs: dict[str, BaseException] = {}

        def sink(name: str):
            return (lambda *d: got[name].append(d)), (lambda e: errs.__setitem__(name, e))

        async def settle() -> None:
            for _ in range(5):
                await asyncio.sleep(0)

        await b.open_stream("a", [1, 2, 3], SamplingParams(max_tokens=3, n=2, logprobs=0), *sink("a"))
        await b.open_stream("b", [1, 2], SamplingParams(max_tokens=50), *sink("b"))
        close_c = await b.open_stream("c", [1], SamplingParams(max_tokens=50), *sink("c"))
        assert b._active == {"a", "b", "c"}
        for _ in range(3):
            eng.step()
            await settle()
        # a: two sequences of 3 tokens, each ending once with 'length'
        a = got["a"]
        assert [(d[0], list(d[2]), d[3], d[4], d[5]) for d in a if d[3]] == [(0, [3], "length", 3, 3), (1, [3], "length", 3, 3)]
        assert "".join(d[1] for d in a if d[0] == 0) == " w1 w2 w3"
        assert a[0][6] == [{1: -0.5}]
        assert "a" not in b._active
        # b: abort ends it with 'abort'
        assert await b.abort("b") is True
        await settle()
        assert got["b"][-1][3] == "abort" and len(got["b"]) == 4 and "b" not in b._active
        # c: close() stops the stream (aborted in the engine, nothing emitted afterwards)
        n_c = len(got["c"])
        close_c()
        await settle()
        assert eng.aborted[-1] == "c" and len(got["c"]) == n_c and "c" not in b._active
        # an engine failure reaches fail() as EngineDead
        await b.open_stream("d", [1], SamplingParams(max_tokens=50), *sink("a"))
        eng.step()
        eng.die()
        await settle()
        assert isinstance(errs["a"], EngineDead) and "d" not in b._active

    asyncio.run(main())
