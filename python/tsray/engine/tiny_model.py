"""Build a tiny random-weight Llama model folder (for tests and GPU smoke runs, no downloads).

The folder holds ``config.json``, ``generation_config.json``, ``model.safetensors`` and the tokenizer
files (a 512-token byte-level BPE trained on a built-in corpus, with a ChatML chat template), and is
loadable by HF transformers (``AutoModelForCausalLM``/``AutoTokenizer``, local files only) and by
vLLM (``model=<folder>``): head_dim 64 (FlashAttention needs ``head_size % 8 == 0``), 2 attention
heads and 2 KV heads (tensor-parallel 2 divides them), ``max_position_embeddings`` 2048, config
dtype bfloat16 (weights are saved in bfloat16; the transformers backend runs them in float32 on CPU).

Building is deterministic (seeded) and idempotent: ``<out_dir>/.complete`` holds the recipe hash,
and a folder whose marker matches is reused without work. The command-line entry point is
``tools/build-tiny-model.py <out_dir>``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "RECIPE", "build_tiny_model", "is_complete", "recipe_hash"]

MARKER = ".complete"

# Changing anything here (or the corpus, or the template) changes the recipe hash, so every cached
# folder is rebuilt on next use.
RECIPE: dict[str, Any] = {
    "version": 1,
    "seed": 1234,
    "vocab_size": 512,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 2048,
    "rope_theta": 10000.0,
    "initializer_range": 0.08,
    "dtype": "bfloat16",
    "special_tokens": ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"],
}

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = """\
The quick brown fox jumps over the lazy dog. Hello world, hello tsray, hello engine.
A task is a function that runs somewhere in the cluster; an actor is a stateful worker.
Objects live in a shared-memory store and are passed by reference between processes.
The scheduler places work on nodes with enough CPUs, GPUs and memory for it to run.
Large language models generate text one token at a time; each step reads the key-value cache.
Batching many requests into one forward pass keeps the accelerator busy and the latency low.
Streaming returns each new piece of text as soon as it is produced, so users see progress.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 42 100 1000 2048 65536.
Punctuation and symbols: ( ) [ ] { } < > + - * / = _ : ; , . ! ? ' " @ # $ % ^ & | ~ `.
user assistant system message content role: what is the capital of France? Paris is.
Once upon a time there was a small model that knew only a few hundred words, and that was enough.
"""


def recipe_hash() -> str:
    """Hash of the recipe, corpus and chat template (the marker's content)."""
    blob = json.dumps({"recipe": RECIPE, "corpus": _CORPUS, "template": CHAT_TEMPLATE}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def is_complete(out_dir: str | os.PathLike[str]) -> bool:
    """True when ``out_dir`` holds a finished build of the current recipe."""
    marker = Path(out_dir) / MARKER
    try:
        return marker.read_text().strip() == recipe_hash()
    except OSError:
        return False


def _build_into(dest: Path) -> None:
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    transformers.utils.logging.disable_progress_bar()

    r = RECIPE
    specials: list[str] = r["special_tokens"]

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=r["vocab_size"],
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line]
    tok.train_from_iterator(lines * 8, trainer=trainer)
    bos_id = tok.token_to_id("<s>")
    eos_id = tok.token_to_id("</s>")
    im_end_id = tok.token_to_id("<|im_end|>")
    # Prepend BOS to every encoded text, as Llama tokenizers do.
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    vocab_size = tok.get_vocab_size()
    if vocab_size > r["vocab_size"]:
        raise RuntimeError(f"tokenizer has {vocab_size} tokens, more than the recipe's {r['vocab_size']}")

    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=r["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(str(dest))

    cfg = LlamaConfig(
        vocab_size=r["vocab_size"],
        hidden_size=r["hidden_size"],
        intermediate_size=r["intermediate_size"],
        num_hidden_layers=r["num_hidden_layers"],
        num_attention_heads=r["num_attention_heads"],
        num_key_value_heads=r["num_key_value_heads"],
        head_dim=r["head_dim"],
        max_position_embeddings=r["max_position_embeddings"],
        rope_theta=r["rope_theta"],
        initializer_range=r["initializer_range"],
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        tie_word_embeddings=False,
        dtype=r["dtype"],
    )
    torch.manual_seed(r["seed"])
    model = LlamaForCausalLM(cfg)
    model = model.to(torch.bfloat16)
    model.generation_config.eos_token_id = [eos_id, im_end_id]
    model.generation_config.bos_token_id = bos_id
    model.generation_config.pad_token_id = eos_id
    model.generation_config.do_sample = True
    model.save_pretrained(str(dest), safe_serialization=True)


def build_tiny_model(out_dir: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Build the tiny model into ``out_dir`` (created; replaced when its marker is stale or
    ``force``) and return its path. Concurrent callers for the same folder are serialized with a
    lock on the parent folder; a finished folder is reused without importing torch."""
    out = Path(out_dir).resolve()
    if not force and is_complete(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not force and is_complete(out):
            return out
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
        try:
            _build_into(tmp)
            (tmp / MARKER).write_text(recipe_hash() + "\n")
            # mkdtemp makes a private folder; the model is meant to be shared (other users, vLLM).
            os.chmod(tmp, 0o755)
            for f in tmp.iterdir():
                os.chmod(f, 0o644)
            if out.exists():
                shutil.rmtree(out)
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
