"""TransformersBackend on the tiny random Llama: streaming, limits, stop strings, concurrency
(batched), abort, seeds, chat template, errors, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tsray.engine import (
    Delta,
    DuplicateRequestId,
    EngineDead,
    InvalidPrompt,
    InvalidSamplingParams,
    PromptTooLong,
    SamplingParams,
)

pytest.importorskip("torch", reason="engine tests need python/requirements-engine.txt")
from tsray.engine.transformers_backend import TransformersBackend


async def collect(stream: AsyncIterator[Delta]) -> list[Delta]:
    return [d async for d in stream]


def joined(deltas: list[Delta], index: int = 0) -> tuple[str, list[int]]:
    ds = [d for d in deltas if d.index == index]
    return "".join(d.text for d in ds), [t for d in ds for t in d.token_ids]


def run(coro):
    return asyncio.run(coro)


def gen(backend: TransformersBackend, request_id: str, prompt: str | list[int], params: SamplingParams) -> list[Delta]:
    """Run one request to its end (generate() must be called inside a running event loop)."""

    async def main() -> list[Delta]:
        return await collect(backend.generate(request_id, prompt, params))

    return asyncio.run(main())


def test_completion_streams_token_by_token(tf_backend: TransformersBackend) -> None:
    prompt = "The quick brown fox"
    deltas = gen(tf_backend, "c1", prompt, SamplingParams(temperature=0, max_tokens=12))
    assert deltas, "no delta"
    assert all(len(d.token_ids) == 1 for d in deltas)  # one delta per produced token
    assert [d.completion_tokens for d in deltas] == list(range(1, len(deltas) + 1))
    assert {d.prompt_tokens for d in deltas} == {len(tf_backend.encode(prompt))}
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert deltas[-1].finish_reason in ("stop", "length")
    text, ids = joined(deltas)
    # streamed text concatenates to the detokenized completion
    assert text == tf_backend.decode(ids)
    assert tf_backend.encode(prompt)[0] == tf_backend.tokenizer_info().bos_token_id


def test_max_tokens_and_length(tf_backend: TransformersBackend) -> None:
    deltas = gen(tf_backend, "m1", "hello", SamplingParams(max_tokens=7, ignore_eos=True))
    assert sum(len(d.token_ids) for d in deltas) == 7
    assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 7


def test_stop_strings_cut_the_text(tf_backend: TransformersBackend) -> None:
    greedy = {"temperature": 0, "ignore_eos": True}
    full = gen(tf_backend, "s0", "tsray engine", SamplingParams(max_tokens=40, **greedy))
    full_text, _ = joined(full)
    assert len(full_text) > 20
    stop = full_text[12:15]
    cut = full_text.find(stop)
    deltas = gen(tf_backend, "s1", "tsray engine", SamplingParams(max_tokens=40, stop=[stop, "\x00never"], **greedy))
    text, _ = joined(deltas)
    assert deltas[-1].finish_reason == "stop"
    assert text == full_text[:cut]


def test_hundred_concurrent_requests_are_batched(tiny_model_dir: str) -> None:
    async def main() -> None:
        b = TransformersBackend()
        await b.start(tiny_model_dir, {"seed": 1})
        try:
            params = SamplingParams(max_tokens=16, ignore_eos=True)
            results = await asyncio.gather(*(collect(b.generate(f"c{i}", f"request {i}", params)) for i in range(100)))
            for deltas in results:
                assert deltas[-1].finish_reason == "length"
                assert sum(len(d.token_ids) for d in deltas) == 16
            assert b.max_observed_batch_size > 1
            assert b.max_observed_batch_size >= 50  # they arrive together, so most share the batch
            s = await b.stats()
            assert (s.waiting, s.running) == (0, 0)
        finally:
            await b.shutdown()

    run(main())


def test_waiting_queue_when_the_batch_is_full(tiny_model_dir: str) -> None:
    async def main() -> None:
        b = TransformersBackend()
        await b.start(tiny_model_dir, {"max_num_seqs": 2})
        try:
            params = SamplingParams(max_tokens=5, ignore_eos=True)
            rest = await asyncio.gather(*(collect(b.generate(f"q{i}", "hi", params)) for i in range(5)))
            assert all(r[-1].finish_reason == "length" for r in rest)
            assert b.max_observed_batch_size == 2
            # two endless requests fill the batch; the third waits until one is aborted
            endless = SamplingParams(max_tokens=None, ignore_eos=True)
            s0, s1 = b.generate("e0", "one", endless), b.generate("e1", "two", endless)
            s2 = b.generate("e2", "three", SamplingParams(max_tokens=3))
            await s0.__anext__()
            await s1.__anext__()
            st = await b.stats()
            assert (st.running, st.waiting) == (2, 1) and 0 < st.kv_cache_usage < 1
            s3 = b.generate("e3", "four", SamplingParams(max_tokens=3, n=2))
            assert (await b.stats()).waiting == 3  # e2 + both sequences of e3
            assert await b.abort("e3") is True  # still waiting: ends without a token
            aborted = await collect(s3)
            assert sorted((d.index, d.finish_reason, d.completion_tokens) for d in aborted) == [
                (0, "abort", 0),
                (1, "abort", 0),
            ]
            await b.abort("e0")
            third = await collect(s2)
            assert third[-1].finish_reason in ("length", "stop")
            assert (await collect(s0))[-1].finish_reason == "abort"
            await b.abort("e1")
            assert (await collect(s1))[-1].finish_reason == "abort"
        finally:
            await b.shutdown()

    run(main())


def test_abort_mid_stream(tf_backend: TransformersBackend) -> None:
    async def main() -> None:
        got: list[Delta] = []
        async for d in tf_backend.generate("a1", "abort me", SamplingParams(max_tokens=2000, ignore_eos=True)):
            got.append(d)
            if len(got) == 3:
                assert await tf_backend.abort("a1") is True
        assert got[-1].finish_reason == "abort"
        assert 3 <= len(got) < 2000
        assert await tf_backend.abort("a1") is False  # already gone
        # closing a stream early aborts the request as well
        stream = tf_backend.generate("a2", "close me", SamplingParams(max_tokens=2000, ignore_eos=True))
        await stream.__anext__()
        with pytest.raises(DuplicateRequestId):
            tf_backend.generate("a2", "again", SamplingParams())
        await stream.aclose()
        # the abort is queued before the next request, so once that one is done, a2 is gone
        await collect(tf_backend.generate("a3", "after", SamplingParams(max_tokens=2)))
        assert await tf_backend.abort("a2") is False
        assert await tf_backend.abort("never-existed") is False

    run(main())


def test_seed_reproducibility_and_n(tf_backend: TransformersBackend) -> None:
    async def main() -> None:
        p = SamplingParams(temperature=1.0, max_tokens=24, seed=7, ignore_eos=True)
        a = await collect(tf_backend.generate("seed-a", "once upon a time", p))
        # the same seed gives the same tokens even while other requests share the batch
        noise = [
            asyncio.ensure_future(collect(tf_backend.generate(f"noise{i}", f"x {i}", SamplingParams(max_tokens=24))))
            for i in range(8)
        ]
        b = await collect(tf_backend.generate("seed-b", "once upon a time", p))
        await asyncio.gather(*noise)
        c = await collect(
            tf_backend.generate(
                "seed-c", "once upon a time", SamplingParams(temperature=1.0, max_tokens=24, seed=8, ignore_eos=True)
            )
        )
        assert joined(a)[1] == joined(b)[1]
        assert joined(a)[1] != joined(c)[1]
        two = await collect(
            tf_backend.generate(
                "n2",
                "once upon a time",
                SamplingParams(temperature=1.0, max_tokens=10, seed=7, n=2, top_k=40, top_p=0.9, ignore_eos=True),
            )
        )
        assert sorted({d.index for d in two}) == [0, 1]
        assert [d.finish_reason for d in two if d.finish_reason] == ["length", "length"]
        assert joined(two, 0)[1] != joined(two, 1)[1]
        again = await collect(
            tf_backend.generate(
                "n2b",
                "once upon a time",
                SamplingParams(temperature=1.0, max_tokens=10, seed=7, n=2, top_k=40, top_p=0.9, ignore_eos=True),
            )
        )
        assert joined(two, 1) == joined(again, 1)

    run(main())


def test_top_k_1_is_greedy_and_logprobs(tf_backend: TransformersBackend) -> None:
    async def main() -> None:
        greedy = await collect(
            tf_backend.generate("g", "hello world", SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))
        )
        topk1 = await collect(
            tf_backend.generate(
                "k1", "hello world", SamplingParams(temperature=0.7, top_k=1, max_tokens=8, ignore_eos=True)
            )
        )
        assert joined(greedy)[1] == joined(topk1)[1]
        lp = await collect(
            tf_backend.generate(
                "lp", "hello world", SamplingParams(temperature=0, max_tokens=4, logprobs=3, ignore_eos=True)
            )
        )
        for d in lp:
            assert d.logprobs is not None and len(d.logprobs) == 1
            entry = d.logprobs[0]
            assert d.token_ids[0] in entry and len(entry) >= 3
            assert all(v <= 0 for v in entry.values())
            assert entry[d.token_ids[0]] == pytest.approx(max(entry.values()))  # greedy = most likely

    run(main())


def test_chat_template(tf_backend: TransformersBackend) -> None:
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    prompt = tf_backend.apply_chat_template(msgs)
    assert (
        prompt == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tf_backend.tokenizer_info().has_chat_template
    deltas = gen(tf_backend, "chat", prompt, SamplingParams(max_tokens=4))
    assert deltas[-1].finish_reason in ("stop", "length")
    im_end = tf_backend.encode("<|im_end|>", add_special_tokens=False)
    assert len(im_end) == 1 and im_end[0] in tf_backend.tokenizer_info().eos_token_ids


def test_invalid_requests(tf_backend: TransformersBackend) -> None:
    with pytest.raises(InvalidSamplingParams) as ei:
        tf_backend.generate("bad", "x", SamplingParams(temperature=-1))
    assert ei.value.field == "temperature"
    with pytest.raises(InvalidSamplingParams) as ei:
        tf_backend.generate("bad", "x", SamplingParams(top_p=2))
    assert ei.value.field == "top_p"
    with pytest.raises(PromptTooLong) as ei:
        tf_backend.generate("bad", [5] * 2048, SamplingParams())
    assert ei.value.limit == 2047 and ei.value.length == 2048
    assert "2047" in str(ei.value)
    with pytest.raises(InvalidPrompt):
        tf_backend.generate("bad", [512], SamplingParams())
    # generation stops at the context length
    d = gen(tf_backend, "edge", [5] * 2040, SamplingParams(max_tokens=50, ignore_eos=True))
    assert d[-1].finish_reason == "length" and d[-1].completion_tokens == 8
    with pytest.raises(InvalidPrompt):
        tf_backend.generate("bad", [], SamplingParams())


def test_shutdown_ends_streams_and_health(tiny_model_dir: str) -> None:
    async def main() -> None:
        b = TransformersBackend()
        await b.start(tiny_model_dir)
        await b.health()
        stream = b.generate("long", "x", SamplingParams(max_tokens=2000, ignore_eos=True))
        await stream.__anext__()
        await b.shutdown()
        rest = await collect(stream)
        assert rest[-1].finish_reason == "abort"
        with pytest.raises(EngineDead):
            await b.health()
        with pytest.raises(EngineDead):
            b.generate("late", "x", SamplingParams())
        await b.shutdown()  # idempotent

    run(main())


def test_batched_results_equal_unbatched(tf_backend: TransformersBackend) -> None:
    """Rows join and leave the batch at different times (cache merge, row selection, trimming of
    padding columns, buffer growth past the initial capacity): every request still gets exactly
    the tokens it gets when it runs alone."""

    def params(i: int) -> SamplingParams:
        return SamplingParams(
            temperature=0 if i % 2 else 0.9,
            seed=100 + i,
            max_tokens=6 + 9 * i,
            ignore_eos=True,
            top_k=20 if i % 3 == 0 else 0,
            top_p=0.8 if i % 4 == 0 else 1.0,
        )

    prompts = [f"req {i} " + "hello world " * (3 * i % 11) for i in range(10)]

    async def main() -> None:
        alone = [joined(await collect(tf_backend.generate(f"alone{i}", p, params(i)))) for i, p in enumerate(prompts)]
        together = await asyncio.gather(
            *(collect(tf_backend.generate(f"tog{i}", p, params(i))) for i, p in enumerate(prompts))
        )
        for i, deltas in enumerate(together):
            assert joined(deltas) == alone[i], f"request {i} differs when batched"
            assert len(alone[i][1]) == 6 + 9 * i

    run(main())
