"""Loading a local HF model folder for the transformers engine backend, engine arguments checked.

Split from :mod:`tsray.engine.transformers_backend`: :func:`load_model` picks the device and dtype,
loads the tokenizer and ``AutoModelForCausalLM`` (``local_files_only``), validates the engine
arguments (:data:`~tsray.engine.transformers_backend.TRANSFORMERS_ENGINE_ARGS`) and refuses models
whose cache the batching loop cannot pad and merge. Runs in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import BackendUnavailable, InvalidEngineArgs, ModelLoadError

__all__ = ["DEFAULT_MAX_BATCHED_TOKENS", "DEFAULT_MAX_NUM_SEQS", "LoadedModel", "load_model"]

log = logging.getLogger("tsray.engine.transformers")

DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_MAX_BATCHED_TOKENS = 8192


@dataclass
class LoadedModel:
    """A model ready to serve and the engine settings taken from the engine arguments."""

    torch: Any
    model: Any
    tokenizer: Any
    #: The fast tokenizer's own ``decode`` (skips the Python wrapper), or None.
    fast_decode: Any
    model_dir: str
    device: str
    max_model_len: int
    max_num_seqs: int
    max_batched_tokens: int
    #: Seeds the random streams of unseeded requests.
    rng: random.Random
    vocab_size: int
    eos_ids: tuple[int, ...]


def load_model(model_dir: str, args: dict[str, Any], num_gpus: float, gpu_fraction: float) -> LoadedModel:
    """Load ``model_dir`` on the device the arguments ask for; raises the engine's typed errors."""
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise BackendUnavailable(
            "transformers", f"{e} (install python/requirements-engine.txt: torch, transformers)"
        ) from e
    transformers.utils.logging.disable_progress_bar()
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelLoadError(model_dir, "no config.json in that folder (a local model folder is needed)")

    dev = _device(torch, args, num_gpus, gpu_fraction)
    dtype = _dtype(torch, args, dev)

    attn = args.get("attn_implementation", "sdpa")
    if attn not in ("sdpa", "eager"):
        raise InvalidEngineArgs("attn_implementation", f"'sdpa' or 'eager', got {attn!r}")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        backend_tok = getattr(tok, "_tokenizer", None)
        fast_decode = getattr(backend_tok, "decode", None) if backend_tok is not None else None
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=dtype, attn_implementation=attn
        )
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(model_dir, f"{type(e).__name__}: {e}") from e
    model.to(dev)
    model.eval()

    cfg = model.config
    cfg_len = int(getattr(cfg, "max_position_embeddings", 0) or 0) or 2048
    mml = args.get("max_model_len", cfg_len)
    if not isinstance(mml, int) or mml < 2 or mml > cfg_len:
        raise InvalidEngineArgs("max_model_len", f"must be an integer in [2, {cfg_len}], got {mml!r}")
    limits = {"max_num_seqs": DEFAULT_MAX_NUM_SEQS, "max_num_batched_tokens": DEFAULT_MAX_BATCHED_TOKENS}
    for key in limits:
        if key in args:
            v = args[key]
            if not isinstance(v, int) or v < 1:
                raise InvalidEngineArgs(key, f"must be an integer >= 1, got {v!r}")
            limits[key] = v
    rng = random.Random(args["seed"]) if "seed" in args else random.Random()


    # Refuse caches this loop cannot pad and merge (sliding window, linear attention, ...).
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([[0, 0]], device=dev), use_cache=True)
    layers = getattr(out.past_key_values, "layers", None)
    from transformers.cache_utils import DynamicLayer

    if layers is None or not all(type(layer) is DynamicLayer for layer in layers):
        kinds = sorted({type(layer).__name__ for layer in layers or []})
        raise ModelLoadError(
            model_dir,
            f"cache layers {kinds or ['?']}: the transformers backend supports full-attention "
            "decoder models only (use the vllm backend for this model)",
        )
    log.info(
        "transformers engine ready: %s on %s (%s), max_model_len %d, max_num_seqs %d",
        path.name,
        str(dev),
        next(model.parameters()).dtype,
        mml,
        limits["max_num_seqs"],
    )
    return LoadedModel(
        torch=torch,
        model=model,
        tokenizer=tok,
        fast_decode=fast_decode,
        model_dir=str(path),
        device=str(dev),
        max_model_len=mml,
        max_num_seqs=limits["max_num_seqs"],
        max_batched_tokens=limits["max_num_batched_tokens"],
        rng=rng,
        vocab_size=int(cfg.vocab_size),
        eos_ids=_eos_ids(model, tok),
    )


def _device(torch: Any, args: dict[str, Any], num_gpus: float, gpu_fraction: float) -> Any:
    """The torch device (``device`` argument, else CUDA when GPUs were given), its memory share and threads."""
    device = args.get("device")
    if device is None:
        device = "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidEngineArgs("device", str(e)) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidEngineArgs("device", f"{device!r} asked for but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type == "cuda" and 0 < gpu_fraction < 1:
        torch.cuda.set_per_process_memory_fraction(gpu_fraction, dev)
    threads = args.get("torch_threads", 1 if dev.type == "cpu" else None)
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise InvalidEngineArgs("torch_threads", f"must be an integer >= 1, got {threads!r}")
        torch.set_num_threads(threads)
    return dev


def _dtype(torch: Any, args: dict[str, Any], dev: Any) -> Any:
    """The ``dtype`` argument as torch's dtype (``'auto'``: float32 on CPU, the config's on GPU)."""
    dtype_name = args.get("dtype", "auto")
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype_name == "auto":
        dtype = torch.float32 if dev.type == "cpu" else "auto"
    elif dtype_name in dtypes:
        dtype = dtypes[dtype_name]
    else:
        raise InvalidEngineArgs("dtype", f"one of auto, {', '.join(dtypes)}; got {dtype_name!r}")
    return dtype


def _eos_ids(model: Any, tok: Any) -> tuple[int, ...]:
    """Every end-of-sequence token id the generation config, model config and tokenizer name."""
    eos: set[int] = set()
    for src in (getattr(model, "generation_config", None), model.config):
        e = getattr(src, "eos_token_id", None) if src is not None else None
        if isinstance(e, int):
            eos.add(e)
        elif isinstance(e, (list, tuple)):
            eos.update(int(x) for x in e)
    if tok.eos_token_id is not None:
        eos.add(int(tok.eos_token_id))
    return tuple(sorted(eos))
