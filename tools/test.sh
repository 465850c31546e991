#!/usr/bin/env bash
# The project's test command (`npm test` runs it): build every package, the static checks
# (typecheck, lint, format check, mypy, check-size, check-tests), every vitest project, then
# the Python tests. Stops at the first failing step with a non-zero exit, and always ends with one
# summary line: `tests: N passed, M failed, K skipped` (vitest + pytest counts together), after one
# `skipped: <where>: <reason>` line per skipped test (docs/testing.md: no silent skips).
#
# Under CI=true a skip is a failure (CI installs uv, has root for the netns tests, enlarges /dev/shm
# and reaches PyPI: every suite runs there), except a skip whose `<where>: <reason>` matches a line of
# tools/ci-allowed-skips.txt. A skip without a reason fails everywhere.
#
# Flags (env): `check-size` (tools/check-size.mjs: files <= 800 lines, functions <= 120 lines) and the
# format check (`biome format`, check only) run by default; TSRAY_CHECK_SIZE=0 / TSRAY_FORMAT_CHECK=0
# leave them out.
# TSRAY_SKIP_STATIC=1 skips the static checks (a quick local test run). TSRAY_VITEST_ARGS / TSRAY_PYTEST_ARGS
# (word-split) narrow the run, e.g. TSRAY_VITEST_ARGS='--project placement' TSRAY_PYTEST_ARGS=python/tests/test_golden.py.
#
# Needs the Python venv: run `bash tools/setup-python.sh` once first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export NX_DAEMON="${NX_DAEMON:-false}"
# The venv is shared between checkouts (cached by requirements hash): this checkout's Python package
# comes first on the path of pytest and of every Python worker the tests start.
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
export NX_NO_CLOUD="${NX_NO_CLOUD:-true}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tsray-test.XXXXXX")"
PASSED=0
FAILED=0
SKIPPED=0
NOTE=""
# One JSON line per skipped test: vitest's through tools/vitest-skips-reporter.mjs, pytest's from its XML.
export TSRAY_SKIPS_FILE="$WORK/skips.jsonl"
: >"$TSRAY_SKIPS_FILE"
summary() {
  local rc=$?
  # Each skip with its reason; under CI=true the ones CI must not skip turn the run into a failure.
  local verdict
  verdict="$(node tools/skips.mjs "$TSRAY_SKIPS_FILE" tools/ci-allowed-skips.txt 2>&1)" || {
    [[ $rc -ne 0 ]] || rc=1
    NOTE="${NOTE:+$NOTE; }skips that must not happen"
  }
  [[ -z "$verdict" ]] || printf '%s\n' "$verdict"
  SKIPPED=$(grep -c . "$TSRAY_SKIPS_FILE" || true)
  rm -rf "$WORK"
  echo
  echo "tests: $PASSED passed, $FAILED failed, $SKIPPED skipped${NOTE:+ ($NOTE)}"
  exit "$rc"
}
trap summary EXIT

if [[ ! -x .venv/bin/python ]]; then
  NOTE="no Python venv"
  echo "tools/test.sh: .venv/bin/python not found; set up the Python environment first: bash tools/setup-python.sh" >&2
  exit 1
fi

echo "== build: npx nx run-many -t build"
if ! npx nx run-many -t build; then
  NOTE="build failed"
  exit 1
fi
# tsc writes new files without the exec bit: the package bins (tsray, tsray-serve) need it.
chmod +x packages/cluster/dist/cli.js packages/vllm-bridge/dist/serve-cli.js

# One static check: prints its name, runs, and on failure ends the run with a clear message.
static_check() {
  local name="$1"
  shift
  echo "== $name: $*"
  if ! "$@"; then
    NOTE="$name failed"
    echo "tools/test.sh: step '$name' failed (command: $*); fix the errors above" >&2
    exit 1
  fi
}

if [[ "${TSRAY_SKIP_STATIC:-0}" != 1 ]]; then
  static_check typecheck bash tools/typecheck.sh
  static_check lint npx biome lint .
  if [[ "${TSRAY_FORMAT_CHECK:-1}" == 1 ]]; then
    static_check format-check npx biome format .
  fi
  # mypy with python/pyproject.toml's [tool.mypy] (strict; its files and the modules they import).
  static_check mypy bash -c 'cd python && ../.venv/bin/python -m mypy'
  if [[ "${TSRAY_CHECK_SIZE:-1}" == 1 ]]; then
    static_check check-size node tools/check-size.mjs
  fi
  # No duration thresholds, no sleeps as waits, no skip without a reason (docs/testing.md).
  static_check check-tests node tools/check-tests.mjs
fi

echo "== vitest: npx vitest run ${TSRAY_VITEST_ARGS:-(all projects)}"
vitest_rc=0
# shellcheck disable=SC2086 # TSRAY_VITEST_ARGS is a list of arguments
npx vitest run ${TSRAY_VITEST_ARGS:-} --reporter=default --reporter=json --reporter=./tools/vitest-skips-reporter.mjs --outputFile.json="$WORK/vitest.json" || vitest_rc=$?
if [[ -f "$WORK/vitest.json" ]]; then
  read -r p f < <(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(r.numPassedTests ?? 0, (r.numFailedTests ?? 0) + (r.numRuntimeErrors ?? 0));
  ' "$WORK/vitest.json")
  PASSED=$((PASSED + ${p:-0}))
  FAILED=$((FAILED + ${f:-0}))
fi
if [[ $vitest_rc -ne 0 ]]; then
  NOTE="vitest failed; pytest not run"
  [[ $FAILED -gt 0 ]] || FAILED=1  # vitest failed without a failed test (e.g. a suite that did not load)
  exit "$vitest_rc"
fi

echo "== pytest: .venv/bin/python -m pytest ${TSRAY_PYTEST_ARGS:-python/tests} -q"
pytest_rc=0
# shellcheck disable=SC2086 # TSRAY_PYTEST_ARGS is a list of arguments
.venv/bin/python -m pytest ${TSRAY_PYTEST_ARGS:-python/tests} -q -rs --junitxml="$WORK/pytest.xml" || pytest_rc=$?
if [[ -f "$WORK/pytest.xml" ]]; then
  read -r p f < <(.venv/bin/python -c '
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - bad - skipped, bad)
# Each skipped case, with its reason, for the skips list (tools/skips.mjs).
with open(sys.argv[2], "a") as out:
    for case in root.iter("testcase"):
        for sk in case.findall("skipped"):
            where = "python/" + (case.get("classname") or "").replace(".", "/") + ".py > " + (case.get("name") or "")
            out.write(json.dumps({"runner": "pytest", "where": where, "reason": sk.get("message", "")}) + "\n")
' "$WORK/pytest.xml" "$TSRAY_SKIPS_FILE")
  PASSED=$((PASSED + ${p:-0}))
  FAILED=$((FAILED + ${f:-0}))
fi
if [[ $pytest_rc -ne 0 ]]; then
  NOTE="pytest failed"
  [[ $FAILED -gt 0 ]] || FAILED=1
  exit "$pytest_rc"
fi
