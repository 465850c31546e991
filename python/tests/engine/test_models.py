"""tsray.models: the real default model (SmolLM2-135M-Instruct from its PyPI wheel), converted once.

The conversion test uses the shared model cache (TSRAY_MODEL_CACHE or ~/.cache/tsray/models), so the
~30 s conversion happens once per machine and every other test (and the examples) reuse it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tsray import models


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(models.UnknownModel, match="unknown model 'gpt-17'; known: smollm2-135m-instruct"):
        models.ensure("gpt-17")


def test_default_model_is_a_normal_hf_folder_that_answers_paris() -> None:
    folder = models.ensure()
    assert models.is_complete(folder, models.MODELS[models.DEFAULT_MODEL])
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["dtype"] == "bfloat16"
    assert "quantization_config" not in config  # plain bf16 weights: vLLM loads it like any folder
    assert (folder / "model.safetensors").stat().st_size > 200_000_000

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_concurrent_callers_convert_once_and_a_failed_conversion_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted: list[Path] = []
    first_inside = threading.Event()
    release = threading.Event()

    def fake_convert(gguf: Path, spec: models.ModelSpec, dest: Path) -> None:
        converted.append(dest)
        first_inside.set()
        assert release.wait(30)
        (dest / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_gguf_path", lambda spec: tmp_path / "x.gguf")
    monkeypatch.setattr(models, "_convert", fake_convert)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(models.ensure(cache_dir=tmp_path))) for _ in range(2)]
    threads[0].start()
    assert first_inside.wait(30)
    threads[1].start()  # waits on the lock while the first converts
    release.set()
    for t in threads:
        t.join(30)
    assert len(converted) == 1
    assert results == [tmp_path / models.DEFAULT_MODEL] * 2
    assert (results[0] / "config.json").exists() and models.is_complete(results[0], models.MODELS[models.DEFAULT_MODEL])

    def broken_convert(gguf: Path, spec: models.ModelSpec, dest: Path) -> None:
        (dest / "half-written").write_text("x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_convert", broken_convert)
    with pytest.raises(RuntimeError, match="disk full"):
        models.ensure(cache_dir=tmp_path / "other")
    assert not (tmp_path / "other" / models.DEFAULT_MODEL).exists()
    assert [p.name for p in (tmp_path / "other").iterdir()] == [f".{models.DEFAULT_MODEL}.lock"]
