#!/usr/bin/env python3
"""Write a model folder with a real architecture's shape and no weights, for vLLM speed runs with
``load_format="dummy"`` (random weights; nothing is downloaded).

Usage: python tools/gpu/make-speed-model.py OUT_DIR [--shape qwen2-0.5b|qwen2-1.5b]

The folder holds ``config.json`` (Qwen2ForCausalLM with the published Qwen2-0.5B / 1.5B
dimensions), ``generation_config.json`` and a tokenizer built offline: a word-level vocabulary
with exactly ``vocab_size`` entries (``<unk>``, ``</s>``, then ``w2`` ... ``w<N-1>``), so every token id
the random-weight model samples decodes. Prompts are meant to be token ids (bench/llm).
Needs transformers and tokenizers only (no torch work).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

SHAPES = {
    # Published configs of Qwen/Qwen2-0.5B and Qwen/Qwen2-1.5B (dimensions only).
    "qwen2-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
}
VOCAB = 151936


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--shape", default="qwen2-0.5b", choices=sorted(SHAPES))
    a = ap.parse_args()
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "</s>": 1}
    vocab.update({f"w{i}": i for i in range(2, VOCAB)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>", pad_token="</s>", model_max_length=32768)
    hf.chat_template = (
        "{% for message in messages %}{{ message['role'] + ' ' + message['content'] + ' ' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant ' }}{% endif %}"
    )
    hf.save_pretrained(str(out))

    cfg = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": VOCAB,
        "max_position_embeddings": 32768,
        "max_window_layers": SHAPES[a.shape]["num_hidden_layers"],
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "hidden_act": "silu",
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "use_sliding_window": False,
        "sliding_window": 32768,
        "bos_token_id": 1,
        "eos_token_id": 1,
        "torch_dtype": "bfloat16",
        **SHAPES[a.shape],
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 1}, indent=2) + "\n")
    print(f"wrote {a.shape}-shaped model folder (no weights; load_format=dummy) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
