#!/usr/bin/env bash
# Creates (or reuses) the benchmark virtualenv at bench/.venv with Ray 2.58 from PyPI.
#
# Usage: bench/setup-venv.sh [--force]
#   --force   remove bench/.venv and install again
#
# The venv is reused when its marker file records the same requirement set, so run.sh can call this
# on every invocation at no cost. Prints the venv's python path on the last line of stdout.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${BENCH_DIR}/.venv"
PYTHON="${PYTHON:-python3}"
# Pinned set (the versions that installed on the bench machine with Python 3.11). numpy: ray_perf.py's
# put_gigabytes puts a numpy array; grpcio: Ray's runtime dependency, pinned so runs stay comparable.
REQUIREMENTS=("ray==2.58.0" "numpy==2.4.6" "grpcio==1.85.3")
MARKER="${VENV}/.tsray-bench-ok"
WANT="$(printf '%s\n' "${REQUIREMENTS[@]}")"

if [[ "${1:-}" == "--force" ]]; then
  rm -rf "${VENV}"
fi

if [[ -f "${MARKER}" ]] && [[ "$(head -n "${#REQUIREMENTS[@]}" "${MARKER}")" == "${WANT}" ]] \
   && "${VENV}/bin/python" -c 'import ray, numpy' >/dev/null 2>&1; then
  echo "bench venv ok: ${VENV}" >&2
  echo "${VENV}/bin/python"
  exit 0
fi

if [[ -x "${VENV}/bin/python" ]]; then
  # An existing venv with another requirement set: pip only changes what differs.
  echo "updating bench venv at ${VENV} (${REQUIREMENTS[*]})" >&2
else
  echo "creating bench venv at ${VENV} (${REQUIREMENTS[*]})" >&2
  rm -rf "${VENV}"
  "${PYTHON}" -m venv "${VENV}"
  "${VENV}/bin/python" -m pip install --quiet --upgrade pip >&2
fi
"${VENV}/bin/python" -m pip install "${REQUIREMENTS[@]}" >&2
"${VENV}/bin/python" -c 'import ray, numpy, grpc; print("ray", ray.__version__, "numpy", numpy.__version__, "grpcio", grpc.__version__)' >&2
{
  echo "${WANT}"
  echo "# installed $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  "${VENV}/bin/python" -m pip freeze
} > "${MARKER}"
echo "${VENV}/bin/python"
