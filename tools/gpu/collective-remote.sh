#!/usr/bin/env bash
# On the GPU machine: the collective bench (bench/collective/collective.bench.ts: tsray allreduce vs
# torch.distributed gloo on CPU, 4 ranks) from a bundle; the machine has python3 with torch but no node,
# no node_modules and no internet.
#
# Carry (git-ignored, made on the dev machine by tools/gpu/make-collective-carry.sh; see its BUILD.txt):
#   .carry/col/node.tar.xz   node v20 linux x64 (bin/node, stripped; LICENSE)                 -> $NODE_DIR
#   .carry/col/col.tar.xz    js/ = tools/gpu/bundle.mjs bundle: bin/collective-bench.mjs, bin/daemon.mjs
#                            (the cluster mode's head and node daemons), bin/gloo_allreduce.py, worker/,
#                            build/Release/*.node, node_modules/zeromq                          -> $COL_DIR
#
# Call (repo root; $OUT = output folder):  bash tools/gpu/collective-remote.sh    with carry [".carry/col"]
# Environment:
#   BENCH_ARGS    the bench's arguments (default "--modes node,cluster --sizes-mib 4,100 --repeats 3 --iters 3")
#   BENCH_PYTHON  python with torch for the gloo side (default /opt/torch/.venv/bin/python3 when it exists,
#                 else python3)
#   BENCH_LIMIT   seconds for the bench (default 540; `timeout`, which signals the whole process group)
#   CARRY (default .carry/col), NODE_DIR (default /root/node), COL_DIR (default /tmp/col): where the carry
#   is read from and unpacked to
# Output: the markdown table on stdout (also $OUT/table.md), progress on stderr (also $OUT/bench.err), the
# JSON lines as $OUT/<UTC date-time>Z-collective.jsonl; when the bench fails, the tsray session logs of
# both modes (embedded node, cluster daemons and workers) as $OUT/logs.tar.gz.
set -u
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
C=${CARRY:-.carry/col}
NODE_DIR=${NODE_DIR:-/root/node}
COL=${COL_DIR:-/tmp/col}
LIMIT=${BENCH_LIMIT:-540}
ARGS=${BENCH_ARGS:---modes node,cluster --sizes-mib 4,100 --repeats 3 --iters 3}
if [[ -z ${BENCH_PYTHON:-} ]]; then
  if [[ -x /opt/torch/.venv/bin/python3 ]]; then BENCH_PYTHON=/opt/torch/.venv/bin/python3; else BENCH_PYTHON=python3; fi
fi

mkdir -p "$NODE_DIR" && tar -C "$NODE_DIR" -xJf "$C/node.tar.xz" || { echo "cannot unpack $C/node.tar.xz"; exit 2; }
rm -rf "$COL" && mkdir -p "$COL" && tar -C "$COL" -xJf "$C/col.tar.xz" || { echo "cannot unpack $C/col.tar.xz"; exit 2; }
export PATH=$NODE_DIR/bin:$PATH
# The tsray sessions (embedded node, cluster daemons) live here; kept for the logs.
export TMPDIR=/tmp/colbench
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
# The gloo script of this tree when it has one (it travels with the working tree), else the bundle's copy.
GLOO=$PWD/bench/collective/gloo_allreduce.py
[[ -f $GLOO ]] || GLOO=$COL/js/bin/gloo_allreduce.py

echo "nproc $(nproc)"; uptime; df -h /dev/shm | tail -n 1
echo "node $(node --version)"
"$BENCH_PYTHON" -c 'import sys, torch; print("torch", torch.__version__, "python", sys.version.split()[0], sys.executable)' 2>&1 | tail -n 3
[[ -f $C/BUILD.txt ]] && sed -n 2,5p "$C/BUILD.txt"
echo "== bench $ARGS $(date -u +%T)"

# shellcheck disable=SC2086  # ARGS is a word list
TSRAY_BENCH_PYTHON=$BENCH_PYTHON TSRAY_BENCH_GLOO_SCRIPT=$GLOO TSRAY_BENCH_RESULTS_DIR=$OUT \
  TSRAY_BENCH_DAEMON_MAIN=$COL/js/bin/daemon.mjs TSRAY_KEEP_TEST_CLUSTER=1 \
  timeout -k 20 "$LIMIT" node "$COL/js/bin/collective-bench.mjs" $ARGS 2> >(tee "$OUT/bench.err" >&2) | tee "$OUT/table.md"
rc=${PIPESTATUS[0]}
echo "== bench rc=$rc $(date -u +%T)"
if [[ $rc != 0 ]]; then
  (cd "$TMPDIR" && find . -type f -path '*/logs/*' -print0 | tar --null -czf "$OUT/logs.tar.gz" -T - 2>/dev/null)
  echo "session logs: $OUT/logs.tar.gz"
fi
exit "$rc"
