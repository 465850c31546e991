"""The test-only scripted backend: deterministic deltas, stop strings, abort, failures, crash."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
from tsray.engine import (
    DuplicateRequestId,
    EngineDead,
    EngineNotStarted,
    InvalidEngineArgs,
    ModelLoadError,
    PromptTooLong,
    SamplingParams,
    create_backend,
)
from tsray.engine.scripted_backend import ScriptedBackend, ScriptedFailure


async def started(**engine_args: object) -> ScriptedBackend:
    b = create_backend("scripted")
    assert isinstance(b, ScriptedBackend)
    await b.start("/nowhere", engine_args, num_gpus=0.5, gpu_fraction=0.5)
    return b


def test_deterministic_deltas_and_lengths() -> None:
    async def main() -> None:
        b = await started()
        assert b.started_with["gpu_fraction"] == 0.5
        deltas = [d async for d in b.generate("r", "hello big world", SamplingParams(max_tokens=4))]
        assert [d.text for d in deltas] == ["tok0", " tok1", " tok2", " tok3"]
        assert [d.token_ids for d in deltas] == [[0], [1], [2], [3]]
        assert [d.finish_reason for d in deltas] == [None, None, None, "length"]
        assert {d.prompt_tokens for d in deltas} == {4}
        assert deltas[-1].completion_tokens == 4
        two = [d async for d in b.generate("n", "x", SamplingParams(max_tokens=2, n=2))]
        assert sorted((d.index, d.text) for d in two) == [(0, " tok1"), (0, "tok0"), (1, " tok1"), (1, "tok0")]
        stopped = [d async for d in b.generate("s", "x", SamplingParams(max_tokens=10, stop=["1 t"]))]
        assert "".join(d.text for d in stopped) == "tok0 tok" and stopped[-1].finish_reason == "stop"
        assert b.apply_chat_template([{"role": "user", "content": "hi"}]) == "user: hi\nassistant:"
        with pytest.raises(PromptTooLong):
            b.generate("long", " ".join(["w"] * 200), SamplingParams())
        await b.shutdown()
        with pytest.raises(EngineDead):
            await b.health()

    asyncio.run(main())


def test_abort_hang_and_duplicate() -> None:
    async def main() -> None:
        b = await started()
        stream = b.generate("h", "__hang__", SamplingParams())
        with pytest.raises(DuplicateRequestId):
            b.generate("h", "x", SamplingParams())
        task = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        assert (await b.stats()).running == 1
        assert await b.abort("h") is True
        d = await task
        assert d.finish_reason == "abort"
        assert await b.abort("h") is False
        assert (await b.stats()).running == 0

        # abort between tokens of a slow stream
        got = []
        async for d in b.generate("slow", "__slow__", SamplingParams(max_tokens=50)):
            got.append(d)
            if len(got) == 1:
                await b.abort("slow")
        assert [x.finish_reason for x in got] == [None, "abort"]

    asyncio.run(main())


def test_failure_and_bad_args() -> None:
    async def main() -> None:
        b = await started(fail_after=3)
        got = []
        with pytest.raises(ScriptedFailure, match="after 3 tokens"):
            async for d in b.generate("f", "__fail__", SamplingParams(max_tokens=10)):
                got.append(d)
        assert len(got) == 3
        with pytest.raises(InvalidEngineArgs):
            await started(bogus=1)
        with pytest.raises(ModelLoadError):
            await started(fail_start=True)
        with pytest.raises(EngineNotStarted):
            ScriptedBackend().generate("x", "y", SamplingParams())

    asyncio.run(main())


def test_crash_prompt_exits_the_process() -> None:
    code = textwrap.dedent(
        """
        import asyncio
        from tsray.engine import SamplingParams, create_backend
        async def main():
            b = create_backend("scripted")
            await b.start("/nowhere", {"crash_exit_code": 41})
            async for d in b.generate("c", "please __crash__ now", SamplingParams()):
                print("unexpected", d, flush=True)
        asyncio.run(main())
        print("survived", flush=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 41, proc.stderr
    assert proc.stdout == ""
