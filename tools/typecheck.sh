#!/usr/bin/env bash
# Typecheck of sources AND tests (issue #15): `tsc --noEmit` over every package's tsconfig.lib.json
# (sources) and tsconfig.spec.json (tests, vitest config), then examples/tsconfig.json (strict), then the
# ```ts snippets of README.md and docs/*.md (tools/check-doc-snippets.mjs).
# The spec configs reference the lib projects, so tsc reads their built .d.ts: build first
# (`npx nx run-many -t build`; tools/test.sh does). Checks every project, then exits 1 if any failed.
#
# Usage: bash tools/typecheck.sh      (npm run typecheck)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TSC="$ROOT/node_modules/.bin/tsc"
failed=()

check() {
  local config="$1"
  if "$TSC" --noEmit -p "$config"; then
    echo "typecheck: ok      $config"
  else
    echo "typecheck: FAILED  $config" >&2
    failed+=("$config")
  fi
}

for pkg in packages/*/; do
  for config in "${pkg}tsconfig.lib.json" "${pkg}tsconfig.spec.json"; do
    [[ -f "$config" ]] && check "$config"
  done
done
check examples/tsconfig.json
check bench/tsconfig.json
# The ```ts snippets of README.md and docs/*.md, each as a module, under tsc --strict.
if node tools/check-doc-snippets.mjs; then
  echo "typecheck: ok      README.md + docs/*.md snippets"
else
  echo "typecheck: FAILED  README.md + docs/*.md snippets (tools/check-doc-snippets.mjs)" >&2
  failed+=("doc-snippets")
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "typecheck: ${#failed[@]} project(s) with type errors: ${failed[*]}" >&2
  exit 1
fi
echo "typecheck: all projects ok"
