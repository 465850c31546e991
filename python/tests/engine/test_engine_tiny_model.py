"""tools/build-tiny-model.py and tsray.engine.tiny_model: reuse, rebuild on a stale marker,
determinism, loadability."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tsray.engine.tiny_model import MARKER, RECIPE, build_tiny_model, is_complete, recipe_hash

TOOL = Path(__file__).resolve().parents[3] / "tools" / "build-tiny-model.py"


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_model_folder_contents(tiny_model_dir: str) -> None:
    d = Path(tiny_model_dir)
    assert is_complete(d)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["head_dim"] == 64 and cfg["head_dim"] % 8 == 0
    assert cfg["hidden_size"] == 128 and cfg["num_hidden_layers"] == 2
    assert cfg["max_position_embeddings"] == 2048 and cfg["vocab_size"] == 512
    assert cfg["dtype"] == "bfloat16"
    gen = json.loads((d / "generation_config.json").read_text())
    assert len(gen["eos_token_id"]) == 2
    assert (d / "model.safetensors").stat().st_size < 2_000_000
    tok = json.loads((d / "tokenizer.json").read_text())
    assert len(tok["model"]["vocab"]) + len(tok["added_tokens"]) <= RECIPE["vocab_size"] + 5


def test_reuse_and_deterministic_rebuild(tiny_model_dir: str, tmp_path: Path) -> None:
    d = Path(tiny_model_dir)
    before = (d / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(d) == d.resolve()
    assert (d / "model.safetensors").stat().st_mtime_ns == before  # reused, not rebuilt

    # the tool reuses a complete folder without importing torch
    out = subprocess.run([sys.executable, str(TOOL), str(d)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert f"reused {d.resolve()}" in out.stdout and recipe_hash() in out.stdout

    # a stale marker makes it rebuild, byte for byte the same (seeded)
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    (copy / MARKER).write_text("old-recipe\n")
    assert not is_complete(copy)
    build_tiny_model(copy)
    assert is_complete(copy)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert digest(copy / name) == digest(d / name), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.build-")]


def test_both_backends_name_the_same_files(tiny_model_dir: str) -> None:
    # what vLLM needs from a local folder: config, weights in safetensors, tokenizer files
    names = {p.name for p in Path(tiny_model_dir).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    assert tok.chat_template and tok.bos_token_id == 1 and tok.eos_token_id == 2
