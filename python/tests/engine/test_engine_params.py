"""SamplingParams validation, GPU memory derivation and vLLM engine-argument building (no torch)."""

from __future__ import annotations

import pytest
from tsray.engine import (
    BackendUnavailable,
    InvalidEngineArgs,
    InvalidSamplingParams,
    PromptTooLong,
    SamplingParams,
    create_backend,
    derive_gpu_memory_utilization,
)
from tsray.engine.backend import InvalidPrompt, check_prompt, check_prompt_ids
from tsray.engine.vllm_backend import build_engine_args


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"top_k": 1.5}, "top_k"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"stop": ["ok", 3]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"seed": -1}, "seed"),
        ({"n": 0}, "n"),
        ({"n": 65}, "n"),
        ({"logprobs": 21}, "logprobs"),
        ({"ignore_eos": 1}, "ignore_eos"),
    ],
)
def test_invalid_sampling_params_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidSamplingParams) as ei:
        SamplingParams(**kwargs).validate()
    assert ei.value.field == field
    assert field in str(ei.value)


def test_sampling_params_from_dict() -> None:
    p = SamplingParams.from_dict({"temperature": 0, "stop": ["a", "b"], "max_tokens": None, "top_k": None})
    assert p.stop == ("a", "b") and p.max_tokens is None and p.top_k == 0 and p.temperature == 0
    assert SamplingParams.from_dict(p.to_dict()) == p
    with pytest.raises(InvalidSamplingParams) as ei:
        SamplingParams.from_dict({"temprature": 1})
    assert ei.value.field == "temprature"
    with pytest.raises(InvalidSamplingParams) as ei:
        SamplingParams.from_dict({"stop": 5})
    assert ei.value.field == "stop"
    assert SamplingParams(stop="x").stop == ("x",)


def test_prompt_checks() -> None:
    assert check_prompt("hi") == "hi"
    assert check_prompt((1, 2)) == [1, 2]
    for bad in ([], [1, -1], [1, "a"], 5, None):
        with pytest.raises(InvalidPrompt):
            check_prompt(bad)
    with pytest.raises(InvalidPrompt):
        check_prompt_ids([1, 600], vocab_size=512, max_model_len=10)
    check_prompt_ids(list(range(9)), vocab_size=512, max_model_len=10)
    with pytest.raises(PromptTooLong) as ei:
        check_prompt_ids(list(range(10)), vocab_size=512, max_model_len=10)
    assert (ei.value.limit, ei.value.length) == (9, 10)
    assert "limit is 9" in str(ei.value)


def test_gpu_memory_utilization_is_fraction_times_0_9() -> None:
    assert derive_gpu_memory_utilization(1.0) == 0.9
    assert derive_gpu_memory_utilization(0.5) == 0.45
    assert derive_gpu_memory_utilization(1 / 3) == 0.3
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError):
            derive_gpu_memory_utilization(bad)


def test_vllm_engine_args() -> None:
    a = build_engine_args("/m", {}, num_gpus=2, gpu_fraction=1.0)
    assert a == {
        "model": "/m",
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.9,
        "enforce_eager": False,
        "disable_log_stats": True,
    }
    a = build_engine_args("/m", {"enforce_eager": True, "max_model_len": 512}, num_gpus=0.5, gpu_fraction=0.5)
    assert a["tensor_parallel_size"] == 1 and a["gpu_memory_utilization"] == 0.45
    assert a["enforce_eager"] is True and a["max_model_len"] == 512
    a = build_engine_args("/m", {"gpu_memory_utilization": 0.3}, num_gpus=1, gpu_fraction=0.5)
    assert a["gpu_memory_utilization"] == 0.3
    a = build_engine_args("/m", {"kv_cache_memory_bytes": 1 << 30}, num_gpus=1, gpu_fraction=0.5)
    assert "gpu_memory_utilization" not in a
    with pytest.raises(InvalidEngineArgs) as ei:
        build_engine_args("/m", {"tensor_parallel_size": 0}, num_gpus=1, gpu_fraction=1)
    assert ei.value.key == "tensor_parallel_size"
    with pytest.raises(InvalidEngineArgs):
        build_engine_args("/m", {"gpu_memory_utilization": 1.2}, num_gpus=1, gpu_fraction=1)


def test_unknown_backend_name() -> None:
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        create_backend("tensorrt")
