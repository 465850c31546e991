#!/usr/bin/env bash
# Flakiness measured, not assumed (docs/testing.md): run `.ci/run` on N fresh clones of a commit, one
# after another, each with `stress-ng --cpu <cores>` running beside it, and print one line per run
# (the test summary, the exit status, the wall time). Stops at the first failed run unless --all.
#   bash tools/ci-under-stress.sh [--runs 3] [--cpu 2] [--all] [--dir /tmp/stress] [REPO]
# REPO defaults to this checkout (its HEAD is what is cloned). Needs stress-ng (Debian: stress-ng).
set -euo pipefail

runs=3 cpu=2 all=0 dir=/tmp/tsray-stress
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --cpu) cpu="$2"; shift 2 ;;
    --all) all=1; shift ;;
    --dir) dir="$2"; shift 2 ;;
    -*) echo "ci-under-stress: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
repo="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
command -v stress-ng >/dev/null || { echo "ci-under-stress: stress-ng is missing (apt-get install stress-ng)" >&2; exit 2; }

mkdir -p "$dir"
commit="$(git -C "$repo" rev-parse --short HEAD)"
echo "ci-under-stress: $runs run(s) of .ci/run on fresh clones of $repo at $commit, stress-ng --cpu $cpu beside each; logs in $dir"
failed=0
for i in $(seq 1 "$runs"); do
  clone="$dir/run$i"
  rm -rf "$clone"
  git clone -q "$repo" "$clone"
  stress-ng --cpu "$cpu" --timeout 0 --quiet &
  stress=$!
  start=$(date +%s)
  rc=0
  (cd "$clone" && CI=true bash .ci/run) >"$dir/run$i.log" 2>&1 || rc=$?
  kill "$stress" 2>/dev/null || true
  wait "$stress" 2>/dev/null || true
  summary="$(grep -E '^tests: ' "$dir/run$i.log" | tail -n 1 || true)"
  echo "run $i: ${summary:-no summary line} rc=$rc $(( $(date +%s) - start )) s ($(date -u +%T) UTC)"
  if [[ $rc -ne 0 ]]; then
    failed=$((failed + 1))
    grep -E 'FAIL|AssertionError|Error:' "$dir/run$i.log" | head -n 20 || true
    [[ $all -eq 1 ]] || break
  fi
done
echo "ci-under-stress: $failed of $runs run(s) failed"
[[ $failed -eq 0 ]]
