#!/bin/bash
# Builds the carry of tools/gpu/ray-core-remote.sh into .carry/rb (dev machine; 53 MiB, under the 56 MiB a
# device call carries next to the tree): a trimmed Ray 2.58 cp312 wheel with the wheels it needs, the
# core-bench bundles of this checkout (new) and of OLD_ROOT (old), and node 20. docs/gpu-runs.md,
# "Core suite with Ray on the GPU machine".
#   RAY_WHEEL   the ray-2.58.0-cp312-cp312-manylinux2014_x86_64.whl (pip download ray==2.58.0 --python-version 3.12
#               --platform manylinux2014_x86_64 --only-binary=:all: --no-deps)
#   OLD_ROOT    a built checkout of the old commit (git worktree add --detach /tmp/old f48e200; npm ci; nx build)
#   NODE_TARXZ  node v20 linux-x64 tarball (.tar.xz, as nodejs.org ships it)
# Removed from Ray: ray/jars (Java), rllib/tune/train/serve/data/llm, the dashboard's web files; none is
# imported by the suite's Ray processes (checked 2026-12-06 by logging imports in every Ray process).
set -eu
: "${RAY_WHEEL:?}" "${OLD_ROOT:?}" "${NODE_TARXZ:?}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUTD=$ROOT/.carry/rb W=$(mktemp -d)
mkdir -p "$OUTD" "$W/site" "$W/wheels" "$W/ts"
pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --no-deps -d "$W/wheels" \
  numpy==2.4.6 grpcio==1.85.3 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0 typing_extensions==4.16.0
(cd "$W/site" && unzip -q "$RAY_WHEEL" && rm -rf ray/{jars,rllib,tune,train,serve,data,llm,dashboard/client/build} &&
  strip --strip-unneeded ray/_raylet.so ray/core/src/ray/raylet/raylet ray/core/src/ray/gcs/gcs_server &&
  for w in "$W"/wheels/*.whl; do unzip -q -o "$w"; done && find numpy -type d -name tests -prune -exec rm -rf {} +)
tar -C "$W/site" -cf - . | xz --x86 --lzma2=preset=9e -T2 > "$OUTD/ray-site.tar.xz"
(cd "$ROOT" && node tools/gpu/bundle.mjs --shared-node-modules "$W/ts/new" core-bench=bench/tsray/core.bench.ts &&
  node tools/gpu/bundle.mjs --root "$OLD_ROOT" --shared-node-modules "$W/ts/old" core-bench=bench/tsray/core.bench.ts)
tar -C "$W/ts" -cf - . | xz --x86 --lzma2=preset=9e -T2 > "$OUTD/ts.tar.xz"
mkdir "$W/node" && tar -C "$W/node" --strip-components=1 -xJf "$NODE_TARXZ" && strip "$W/node/bin/node" &&
  tar -C "$W/node" -cf - bin/node LICENSE | xz --x86 --lzma2=preset=9e -T2 > "$OUTD/node.tar.xz"
rm -rf "$W"
du -sb "$OUTD"/*
