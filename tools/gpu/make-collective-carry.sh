#!/bin/bash
# Builds the carry of tools/gpu/collective-remote.sh into .carry/col (dev machine; git-ignored; ≈ 25 MB,
# under the 56 MiB a device call carries next to the tree). docs/gpu-runs.md, "Collective bench on the
# GPU machine".
#   .carry/col/node.tar.xz  node v20 linux x64 (bin/node, stripped; LICENSE): a copy of NODE_TARXZ
#   .carry/col/col.tar.xz   js/ = node tools/gpu/bundle.mjs of
#                             collective-bench=bench/collective/collective.bench.ts (+ the cluster harness it imports)
#                             daemon=packages/cluster/src/daemon-main.ts (the daemons of its cluster mode)
#                           with worker/, build/Release/{tsray_shm,tsray_reduce}.node, node_modules/{zeromq,cmake-ts},
#                           and bin/gloo_allreduce.py
#   .carry/col/BUILD.txt    what was built from what
# Environment:
#   NODE_TARXZ  a .tar.xz with bin/node at its top (default .carry/rb/node.tar.xz, made by make-ray-carry.sh;
#               or as .carry/cb/node.tar.xz)
#   OUTD        output folder (default .carry/col)
# The @tsray/* packages are bundled from their dist/ (bundle.mjs): run `NX_DAEMON=false npx nx run-many -t build`
# first; packages whose src/ is newer than their dist/ are listed as a warning (and in BUILD.txt).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUTD=${OUTD:-$ROOT/.carry/col}
NODE_TARXZ=${NODE_TARXZ:-$ROOT/.carry/rb/node.tar.xz}
[[ -f $NODE_TARXZ ]] || { echo "NODE_TARXZ=$NODE_TARXZ is missing (a .tar.xz with bin/node)" >&2; exit 1; }
tar -tJf "$NODE_TARXZ" | grep -qx 'bin/node' || { echo "$NODE_TARXZ has no bin/node at its top" >&2; exit 1; }

stale=""
for p in packages/*/; do
  [[ -f $p/dist/index.js ]] || continue
  # tsc --build rewrites only the outputs that changed: compare with the newest file of dist/.
  newest=$(ls -t "$p"/dist/*.js | head -n 1)
  if [[ -n $(find "$p/src" -name '*.ts' ! -name '*.spec.ts' -newer "$newest" -print -quit) ]]; then stale+=" ${p%/}"; fi
done
[[ -n $stale ]] && echo "warning: src/ newer than dist/ in:$stale (the bundle has their dist/; rebuild to include the changes)" >&2

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
node tools/gpu/bundle.mjs "$W/js" collective-bench=bench/collective/collective.bench.ts daemon=packages/cluster/src/daemon-main.ts
cp bench/collective/gloo_allreduce.py "$W/js/bin/"
mkdir -p "$OUTD"
rm -f "$OUTD/col.tar.xz" "$OUTD/node.tar.xz" "$OUTD/BUILD.txt"
tar -C "$W" -cf - js | xz --x86 --lzma2=preset=9e -T2 > "$OUTD/col.tar.xz"
cp "$NODE_TARXZ" "$OUTD/node.tar.xz"
{
  echo "Made on the dev machine ($(date -u +%FT%TZ)) by tools/gpu/make-collective-carry.sh for tools/gpu/collective-remote.sh:"
  echo "col.tar.xz   js/: bundle.mjs collective-bench=bench/collective/collective.bench.ts daemon=packages/cluster/src/daemon-main.ts"
  echo "             + bin/gloo_allreduce.py; working tree of $ROOT at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- || echo ' + uncommitted changes')"
  echo "             @tsray/* from dist/${stale:+; src/ newer than dist/ in:$stale}"
  echo "             build/Release: $(ls "$W/js/build/Release" | tr '\n' ' ')"
  echo "node.tar.xz  copy of $NODE_TARXZ"
} > "$OUTD/BUILD.txt"
cat "$OUTD/BUILD.txt"
du -b "$OUTD"/*
du -cb "$OUTD" | tail -n 1
