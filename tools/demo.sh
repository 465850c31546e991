#!/usr/bin/env bash
# README command 1: install everything (Node deps, the Python venv), build, and run the main demo (the
# seed's data-parallel inference) on an embedded local cluster. Safe to run again: installs are skipped when they are up to date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export NX_DAEMON="${NX_DAEMON:-false}" NX_NO_CLOUD="${NX_NO_CLOUD:-true}"

stamp=node_modules/.tsray-lock-hash
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
echo "== Python venv"
bash tools/setup-python.sh
echo "== build"
npx nx run-many -t build --output-style=static >/dev/null
echo "== demo: the seed's data-parallel inference (examples/05-data-parallel; vLLM on GPUs, else a CPU engine)"
TSRAY_PYTHON="${TSRAY_PYTHON:-$ROOT/.venv/bin/python}" npx tsx examples/05-data-parallel/main.ts
