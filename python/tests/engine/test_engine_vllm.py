"""VllmBackend without vLLM: the import error is a clear BackendUnavailable, and the backend's
mapping onto the AsyncLLM API is checked against a small fake ``vllm`` package (same names and
call shapes as vLLM 0.26: AsyncLLM.from_engine_args/generate/abort/check_health/get_tokenizer,
SamplingParams(output_kind=DELTA), TokensPrompt, StatLoggerBase, EngineDeadError)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest
from tsray.engine import BackendUnavailable, EngineDead, PromptTooLong, SamplingParams
from tsray.engine.vllm_backend import VllmBackend

FAKE_FILES = {
    "vllm/__init__.py": """
        from vllm.sampling_params import SamplingParams
        class AsyncEngineArgs:
            FIELDS = {"model", "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager",
                      "disable_log_stats", "max_model_len", "kv_cache_memory_bytes"}
            def __init__(self, **kw):
                bad = set(kw) - self.FIELDS
                if bad:
                    raise TypeError(f"unexpected keyword argument {sorted(bad)[0]!r}")
                self.kw = kw
        def TokensPrompt(prompt_token_ids):
            return {"prompt_token_ids": prompt_token_ids}
    """,
    "vllm/sampling_params.py": """
        import enum
        class RequestOutputKind(enum.IntEnum):
            CUMULATIVE = 0
            DELTA = 1
            FINAL_ONLY = 2
        class SamplingParams:
            def __init__(self, **kw):
                self.__dict__.update(kw)
    """,
    "vllm/v1/__init__.py": "",
    "vllm/v1/engine/__init__.py": "",
    "vllm/v1/engine/exceptions.py": """
        class EngineDeadError(Exception):
            pass
    """,
    "vllm/v1/metrics/__init__.py": "",
    "vllm/v1/metrics/loggers.py": """
        class StatLoggerBase:
            pass
    """,
    "vllm/v1/engine/async_llm.py": """
        import asyncio
        from types import SimpleNamespace as NS
        from vllm.v1.engine.exceptions import EngineDeadError

        class Tok:
            bos_token_id, eos_token_id, pad_token_id, chat_template = 1, 2, None, "x"
            def encode(self, text, add_special_tokens=True):
                return [1] + [10 + len(w) for w in text.split()]
            def decode(self, ids, skip_special_tokens=True):
                return " ".join(f"w{i}" for i in ids)
            def apply_chat_template(self, messages, tokenize, add_generation_prompt):
                return "|".join(m["content"] for m in messages) + "|A:"

        class AsyncLLM:
            last = None
            def __init__(self, engine_args, stat_loggers):
                self.engine_args, self.aborted, self.dead = engine_args, [], False
                self.model_config = NS(max_model_len=32, get_vocab_size=lambda: 100)
                self.loggers = [f(None, 0) for f in stat_loggers]
                self.output_processor = NS(get_num_unfinished_requests=lambda: len(self.live))
                self.live, self.params, self.shut = {}, [], False
            @classmethod
            def from_engine_args(cls, engine_args, stat_loggers=None):
                cls.last = cls(engine_args, stat_loggers or [])
                return cls.last
            def get_tokenizer(self):
                return Tok()
            async def generate(self, prompt, sp, request_id):
                self.params.append(sp)
                ev = asyncio.Event()
                self.live[request_id] = ev
                try:
                    for i in range(sp.max_tokens):
                        if self.dead:
                            raise EngineDeadError()
                        if ev.is_set():
                            yield NS(finished=True, outputs=[NS(index=k, text="", token_ids=[], logprobs=None,
                                     finish_reason="abort") for k in range(sp.n)])
                            return
                        for lg in self.loggers:
                            lg.record(NS(num_running_reqs=1, num_waiting_reqs=0, kv_cache_usage=0.25), None)
                        last = i == sp.max_tokens - 1
                        lp = [{i: NS(logprob=-0.5)}] if sp.logprobs is not None else None
                        yield NS(finished=last, outputs=[NS(index=k, text=f" w{i}", token_ids=[i], logprobs=lp,
                                 finish_reason="length" if last else None) for k in range(sp.n)])
                        await asyncio.sleep(0)
                finally:
                    self.live.pop(request_id, None)
            async def abort(self, request_id):
                self.aborted.append(request_id)
                if request_id in self.live:
                    self.live[request_id].set()
            async def check_health(self):
                if self.dead:
                    raise EngineDeadError()
            def shutdown(self):
                self.shut = True
                # vLLM stops the engine core here; its output handler must already be stopped.
                handler = getattr(self, "output_handler", None)
                self.handler_done_at_shutdown = handler is None or handler.done()
    """,
}


def test_missing_vllm_is_backend_unavailable(tmp_path: Path) -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackendUnavailable) as ei:
        asyncio.run(VllmBackend().start(str(tmp_path), {}, num_gpus=1, gpu_fraction=1.0))
    msg = str(ei.value)
    assert "vllm" in msg and "0.26" in msg and "transformers" in msg


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "fake"
    for rel, text in FAKE_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(root))
    for k in ("VLLM_USE_FLASHINFER_SAMPLER", "VLLM_NO_USAGE_STATS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "generation_config.json").write_text('{"eos_token_id": [2, 7]}')
    yield str(model)
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


def test_vllm_backend_against_fake_asyncllm(fake_vllm: str) -> None:
    import os

    async def main() -> None:
        b = VllmBackend()
        await b.start(fake_vllm, {"max_model_len": 32}, num_gpus=2, gpu_fraction=0.5)
        assert os.environ["VLLM_USE_FLASHINFER_SAMPLER"] == "0" and os.environ["HF_HUB_OFFLINE"] == "1"
        from vllm.v1.engine.async_llm import AsyncLLM

        eng = AsyncLLM.last
        assert eng.engine_args.kw == {
            "model": fake_vllm,
            "tensor_parallel_size": 2,
            "gpu_memory_utilization": 0.45,
            "enforce_eager": False,
            "disable_log_stats": True,
            "max_model_len": 32,
        }
        assert b.gpu_memory_utilization == 0.45 and b.max_model_len == 32
        info = b.tokenizer_info()
        assert info.eos_token_ids == (2, 7) and info.vocab_size == 100 and info.has_chat_template
        assert b.apply_chat_template([{"role": "user", "content": "hi"}]) == "hi|A:"

        deltas = [d async for d in b.generate("r1", "a bb", SamplingParams(max_tokens=3, logprobs=0, n=2))]
        sp = eng.params[-1]
        assert int(sp.output_kind) == 1 and sp.n == 2 and sp.max_tokens == 3 and sp.stop is None
        assert [(d.index, d.token_ids, d.finish_reason, d.completion_tokens) for d in deltas[-2:]] == [
            (0, [2], "length", 3),
            (1, [2], "length", 3),
        ]
        assert all(d.prompt_tokens == 3 for d in deltas)
        assert deltas[0].logprobs == [{0: -0.5}]
        assert "".join(d.text for d in deltas if d.index == 0) == " w0 w1 w2"

        with pytest.raises(PromptTooLong) as ei:
            b.generate("r2", list(range(1, 40)), SamplingParams())
        assert ei.value.limit == 31

        # abort mid-stream: the stream ends with 'abort'
        got = []
        async for d in b.generate("r3", "x", SamplingParams(max_tokens=30)):
            got.append(d)
            if len(got) == 2:
                assert (await b.stats()).running == 1
                assert await b.abort("r3") is True
        assert got[-1].finish_reason == "abort" and eng.aborted == ["r3"]
        assert await b.abort("r3") is False
        assert (await b.stats()).running == 0

        # closing the stream early closes vLLM's generator (which aborts in vLLM)
        stream = b.generate("r4", "x", SamplingParams(max_tokens=30))
        async for d in stream:
            break
        await stream.aclose()
        assert "r4" not in eng.live and (await b.stats()).running == 0

        await b.health()
        eng.dead = True
        with pytest.raises(EngineDead):
            await b.health()
        with pytest.raises(EngineDead):
            async for _ in b.generate("r5", "x", SamplingParams()):
                pass
        async def until_cancelled() -> None:  # vLLM's output handler runs until it is cancelled
            await asyncio.get_running_loop().create_future()

        eng.output_handler = asyncio.get_running_loop().create_task(until_cancelled())
        await b.shutdown()
        assert eng.shut
        # Stopped before the core (else it logs "output_handler failed ... EngineDeadError").
        assert eng.handler_done_at_shutdown and eng.output_handler.cancelled()

    asyncio.run(main())
