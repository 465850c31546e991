#!/usr/bin/env python3
"""Build a tiny random-weight Llama model folder for tests and GPU smoke runs (no downloads).

Usage: python tools/build-tiny-model.py <out_dir> [--force]

Needs torch, transformers, tokenizers and safetensors (python/requirements-engine.txt). The folder
is reused when <out_dir>/.complete holds the current recipe hash; see tsray/engine/tiny_model.py
for the recipe (vocab 512 byte-level BPE, hidden 128, 2 layers, head_dim 64, 2048 positions,
bfloat16 weights, ChatML chat template).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run from a checkout without installing tsray: put python/ on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from tsray.engine.tiny_model import build_tiny_model, is_complete, recipe_hash


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="folder to create (its parent is created too)")
    ap.add_argument("--force", action="store_true", help="rebuild even when the folder is complete")
    args = ap.parse_args()
    start = time.monotonic()
    reused = not args.force and is_complete(args.out_dir)
    out = build_tiny_model(args.out_dir, force=args.force)
    what = "reused" if reused else "built"
    print(f"build-tiny-model: {what} {out} (recipe {recipe_hash()}, {time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
