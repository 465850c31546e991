#!/usr/bin/env bash
# Runs Ray 2.58 (bench venv) and tsray on the same metrics, one after the other, and prints the
# comparison table.
#
# Usage: bench/run.sh [--suite core|cluster] [--quick] [--metrics a,b,c] [--only ray|tsray] [--no-build] [--update-md]
#   --suite       core (default): one node, ray_perf_core.py / core.bench.ts;
#                 cluster: two nodes on this machine, ray_cluster.py / cluster.bench.ts
#                 (results *-cluster.jsonl, BENCHMARKS.md section "cluster")
#   --quick       shorter timing phases on both sides (smoke runs; not comparable with Ray's numbers)
#   --metrics     comma-separated metric names (default: all); each side runs the names it knows
#                 (memcpy_gigabytes and memcpy_zeros_gigabytes are added when a *_gigabytes metric
#                 is chosen: they are its reference)
#   --only        run one side only
#   --no-build    skip `nx run-many -t build` (Nx caches the build, so it is cheap when nothing changed)
#   --update-md   also write the table into the suite's section of BENCHMARKS.md
#
# Output: bench/results/<UTC date-time>-<suite>.jsonl (both systems' JSON lines), then the table.
# The two systems never run at the same time (the bench machine has 2 cores).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${BENCH_DIR}/.." && pwd)"
cd "${ROOT}"

QUICK=()
METRICS=""
SUITE="core"
ONLY="both"
BUILD=1
UPDATE_MD=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=(--quick) ;;
    --metrics) METRICS="${2:?--metrics needs a list}"; shift ;;
    --metrics=*) METRICS="${1#--metrics=}" ;;
    --suite) SUITE="${2:?--suite needs core or cluster}"; shift ;;
    --suite=*) SUITE="${1#--suite=}" ;;
    --only) ONLY="${2:?--only needs ray or tsray}"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    --no-build) BUILD=0 ;;
    --update-md) UPDATE_MD=(--update-md "${ROOT}/BENCHMARKS.md") ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "${ONLY}" in both|ray|tsray) ;; *) echo "run.sh: --only takes ray or tsray" >&2; exit 2 ;; esac
case "${SUITE}" in core|cluster) ;; *) echo "run.sh: --suite takes core or cluster" >&2; exit 2 ;; esac
RUN_RAY=0; RUN_TS=0
[[ "${ONLY}" != tsray ]] && RUN_RAY=1
[[ "${ONLY}" != ray ]] && RUN_TS=1

if [[ ${SUITE} == cluster && -n "${METRICS}" && ",${METRICS}," == *,object_transfer_gigabytes,* && ",${METRICS}," != *,zmq_push_pull_gigabytes,* ]]; then
  METRICS="${METRICS},zmq_push_pull_gigabytes,zmq_sealed_push_pull_gigabytes,zmq_curve_push_pull_gigabytes"  # the transfer's baselines
elif [[ ${SUITE} == core && -n "${METRICS}" && ",${METRICS}," == *_gigabytes,* ]]; then
  for ref in memcpy_gigabytes memcpy_zeros_gigabytes; do
    [[ ",${METRICS}," == *",${ref},"* ]] || METRICS="${METRICS},${ref}"
  done
fi

TSX=(npx --no-install tsx)
if [[ ${SUITE} == cluster ]]; then
  RAY_SCRIPT="${BENCH_DIR}/ray/ray_cluster.py"
  TS_SCRIPT="${BENCH_DIR}/tsray/cluster.bench.ts"
else
  RAY_SCRIPT="${BENCH_DIR}/ray/ray_perf_core.py"
  TS_SCRIPT="${BENCH_DIR}/tsray/core.bench.ts"
fi

if [[ ${RUN_RAY} == 1 ]]; then
  PY="$("${BENCH_DIR}/setup-venv.sh" | tail -n 1)"
fi
if [[ ${RUN_TS} == 1 && ${BUILD} == 1 ]]; then
  echo "building tsray (nx run-many -t build)" >&2
  NX_DAEMON=false npx --no-install nx run-many -t build --outputStyle=static >&2
fi

# Keep from a comma list the names that one side knows ($1: file with that side's names).
pick() {
  local known="$1" out=() m
  IFS=',' read -r -a want <<< "${METRICS}"
  for m in "${want[@]}"; do
    [[ -z "${m}" ]] && continue
    if grep -qxF "${m}" "${known}"; then out+=("${m}"); fi
  done
  (IFS=','; echo "${out[*]:-}")
}

TMPDIR_LISTS="$(mktemp -d)"
trap 'rm -rf "${TMPDIR_LISTS}"' EXIT

RAY_ARGS=("${QUICK[@]}")
TS_ARGS=("${QUICK[@]}")
if [[ -n "${METRICS}" ]]; then
  [[ ${RUN_RAY} == 1 ]] && "${PY}" "${RAY_SCRIPT}" --list > "${TMPDIR_LISTS}/ray"
  [[ ${RUN_TS} == 1 ]] && "${TSX[@]}" "${TS_SCRIPT}" --list > "${TMPDIR_LISTS}/tsray"
  cat "${TMPDIR_LISTS}"/* 2>/dev/null | sort -u > "${TMPDIR_LISTS}/all"
  IFS=',' read -r -a want <<< "${METRICS}"
  for m in "${want[@]}"; do
    if [[ -n "${m}" ]] && ! grep -qxF "${m}" "${TMPDIR_LISTS}/all"; then
      echo "run.sh: no side knows metric ${m}; known:" >&2; cat "${TMPDIR_LISTS}/all" >&2; exit 2
    fi
  done
  [[ ${RUN_RAY} == 1 ]] && RAY_ARGS+=(--metrics "$(pick "${TMPDIR_LISTS}/ray")")
  [[ ${RUN_TS} == 1 ]] && TS_ARGS+=(--metrics "$(pick "${TMPDIR_LISTS}/tsray")")
fi

mkdir -p "${BENCH_DIR}/results"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
OUT="${BENCH_DIR}/results/${STAMP}-${SUITE}.jsonl"
TMP="${OUT}.tmp"  # renamed to OUT at the end; an interrupted run leaves the .tmp (gitignored)
: > "${TMP}"

STATUS=0
if [[ ${RUN_RAY} == 1 && ! ( -n "${METRICS}" && "${RAY_ARGS[-1]}" == "" ) ]]; then
  echo "== Ray $("${PY}" -c 'import ray; print(ray.__version__)') ==" >&2
  "${PY}" "${RAY_SCRIPT}" "${RAY_ARGS[@]}" | tee -a "${TMP}" || { echo "run.sh: Ray side exited with an error" >&2; STATUS=1; }
fi
if [[ ${RUN_TS} == 1 && ! ( -n "${METRICS}" && "${TS_ARGS[-1]}" == "" ) ]]; then
  echo "== tsray ==" >&2
  "${TSX[@]}" "${TS_SCRIPT}" "${TS_ARGS[@]}" | tee -a "${TMP}" || { echo "run.sh: tsray side exited with an error" >&2; STATUS=1; }
fi
mv "${TMP}" "${OUT}"
echo >&2
echo "results: ${OUT#"${ROOT}"/}" >&2
CMD="bench/run.sh"
if [[ ${SUITE} != core ]]; then CMD+=" --suite ${SUITE}"; fi
CMD+="${QUICK[*]:+ ${QUICK[*]}}${METRICS:+ --metrics ${METRICS}}"
if [[ ${ONLY} != both ]]; then CMD+=" --only ${ONLY}"; fi
"${TSX[@]}" "${BENCH_DIR}/report.ts" "${OUT}" --command "${CMD}" --section "${SUITE}" "${UPDATE_MD[@]}"
exit "${STATUS}"
