#!/usr/bin/env bash
# On the GPU machine: the single-node core bench three ways, one side after the other: Ray 2.58
# (bench/ray/ray_perf_core.py), tsray "old" and tsray "new" (core-bench bundles of two checkouts).
# core-bench-remote.sh plus a Ray side; the machine has python3 (3.12, with Ray's base deps click,
# filelock, msgpack, packaging, protobuf, pyyaml, requests) but no node, no Ray, no internet.
#
# Carry (git-ignored, made on the dev machine; see the BUILD.txt next to them):
#   .carry/rb/node.tar.xz      node v20 linux x64 (bin/node, stripped; LICENSE)        -> /root/node
#   .carry/rb/ts.tar.xz        new/ old/ (tools/gpu/bundle.mjs --shared-node-modules bundles of
#                              bench/tsray/core.bench.ts) + node_modules/ (zeromq)       -> /tmp/rbts
#   .carry/rb/ray-site.tar.xz  Ray 2.58.0 cp312 wheel, trimmed, + numpy, grpcio, jsonschema and
#                              its deps, unzipped                                         -> /tmp/raysite
#
# Call (repo root; $OUT = output folder):  bash tools/gpu/ray-core-remote.sh    with carry [".carry/rb"]
# Environment:
#   SIDES       sides in order, each ray|old|new (default "ray new old")
#   M           comma-separated metrics (default: the 15 of core-bench-remote.sh); each side runs
#               the ones its --list knows
#   SIDE_LIMIT  seconds per side (default 280; `timeout`). A full-timing side (Ray's 10 s sleep per
#               metric) needs ~20 s a metric, so 15 metrics take ~300-330 s
#   QUICK=1     pass --quick to every side (short timing phases; not comparable with full runs)
#   RAY_PYTHON  python for the Ray side (default python3); CARRY (default .carry/rb)
# Output: $OUT/core-<side>.jsonl (the side's JSON lines with "side" added, also echoed), $OUT/<side>.err
# (its stderr); Ray's session logs as $OUT/ray-logs.tar.gz when the Ray side fails.
# A failing or timed-out side does not stop the next.
set -u
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
C=${CARRY:-.carry/rb}
LIMIT=${SIDE_LIMIT:-280}
RAY_PYTHON=${RAY_PYTHON:-python3}
Q=(); [[ -n "${QUICK:-}" && "${QUICK}" != 0 ]] && Q=(--quick)
M=${M:-single_client_get_calls,single_client_put_calls,single_client_put_gigabytes,single_client_get_gigabytes,single_client_tasks_and_get_batch,single_client_wait_1k_refs,single_client_tasks_sync,single_client_tasks_async,1_1_actor_calls_sync,1_1_actor_calls_async,1_1_actor_calls_concurrent,1_n_actor_calls_async,n_n_actor_calls_async,1_1_async_actor_calls_async,placement_group_create_removal}
SIDES=${SIDES:-ray new old}
export TMPDIR=/tmp/rb; mkdir -p "$TMPDIR"

TS=/tmp/rbts RAYSITE=/tmp/raysite
# The Ray side's environment (only its commands get it).
ray_env=(env "PYTHONPATH=$RAYSITE${PYTHONPATH:+:$PYTHONPATH}" RAY_USAGE_STATS_ENABLED=0 RAY_TMPDIR=/tmp)
need_ts=0 need_ray=0
for side in $SIDES; do case $side in old|new) need_ts=1 ;; ray) need_ray=1 ;; esac; done
if [[ $need_ts == 1 ]]; then
  mkdir -p /root/node && tar -C /root/node -xJf "$C/node.tar.xz" && export PATH=/root/node/bin:$PATH
  rm -rf "$TS" && mkdir -p "$TS" && tar -C "$TS" -xJf "$C/ts.tar.xz"
  node --version
fi
if [[ $need_ray == 1 ]]; then
  rm -rf "$RAYSITE" && mkdir -p "$RAYSITE" && tar -C "$RAYSITE" -xJf "$C/ray-site.tar.xz"
  "${ray_env[@]}" "$RAY_PYTHON" -c 'import ray, numpy, grpc, sys; print("ray", ray.__version__, "numpy", numpy.__version__, "grpcio", grpc.__version__, "python", sys.version.split()[0])' \
    2>&1 | tail -n 3
fi
echo "nproc $(nproc)"; uptime; df -h /dev/shm | tail -n 1

side_cmd() {  # the command line of one side, without arguments
  case $1 in
    ray) echo "${ray_env[*]} $RAY_PYTHON bench/ray/ray_perf_core.py" ;;
    old|new) echo "node $TS/$1/bin/core-bench.mjs" ;;
    *) return 1 ;;
  esac
}

for side in $SIDES; do
  echo "== $side $(date -u +%T)"
  if ! cmd=$(side_cmd "$side"); then echo "unknown side $side (ray|old|new)"; continue; fi
  # The metrics of M this side knows (as bench/run.sh does; an unknown name makes a side run nothing).
  known=$(timeout 60 $cmd --list 2>>"$OUT/$side.err")
  want=()
  IFS=',' read -r -a all <<< "$M"
  for m in "${all[@]}"; do
    [[ -z $m ]] && continue
    if grep -qxF -- "$m" <<< "$known"; then want+=("$m"); else echo "$side: skips $m (not in its --list)"; fi
  done
  if [[ ${#want[@]} == 0 ]]; then echo "$side: no metric to run"; continue; fi
  sel=$(IFS=','; echo "${want[*]}")
  # timeout signals the whole process group (Ray's raylet, gcs_server, workers; tsray's workers).
  timeout -k 20 "$LIMIT" $cmd "${Q[@]}" --metrics "$sel" 2>>"$OUT/$side.err" \
    | grep --line-buffered '^{' | sed -u "s/^{/{\"side\":\"$side\",/" | tee -a "$OUT/core-$side.jsonl"
  rc=${PIPESTATUS[0]}
  echo "== $side rc=$rc $(date -u +%T)"
  if [[ $side == ray ]]; then
    if [[ $rc != 0 && -d /tmp/ray/session_latest/logs ]]; then
      tar -C /tmp/ray/session_latest -czf "$OUT/ray-logs.tar.gz" logs 2>/dev/null
    fi
    # Ray processes left behind (a killed driver): those started from this site only, by pid.
    sleep 2
    left=$(pgrep -f "$RAYSITE/ray/" || true)
    if [[ -n $left ]]; then echo "ray: killing leftover pids $(echo $left)"; kill -9 $left 2>/dev/null; fi
  fi
done
