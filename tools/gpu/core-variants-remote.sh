#!/usr/bin/env bash
# On the GPU machine: one core-bench metric (M) under several variants, ROUNDS times in turn, with a
# per-thread CPU sample (top -H) every 4 s beside each run. A variant is "name:side[:VAR=value,...]"
# (side = a bundle under .carry/cb, the env applied to that run only). JSON lines into
# $OUT/<name>/core-<side>.jsonl, samples into $OUT/<name>/top.txt. Made for #15 point 4 (1_n on 16 cores).
# Example: VARIANTS="old:old new:new s0:new:TSRAY_WORKER_STREAM=0" M=1_n_actor_calls_async ROUNDS=2 bash $0
set -u
O=$OUT
for round in $(seq 1 ${ROUNDS:-2}); do
  for v in ${VARIANTS:?}; do
    IFS=: read -r name side envs <<<"$v"
    mkdir -p "$O/$name"
    (while sleep 4; do echo "-- $(date -u +%T)"; top -b -H -n1 -w 160 | sed -n 7,18p; done) >>"$O/$name/top.txt" 2>&1 &
    sampler=$!
    echo "== round $round $name ($side${envs:+, $envs})"
    env ${envs//,/ } OUT="$O/$name" SIDES="$side" SIDE_LIMIT=${SIDE_LIMIT:-45} M="${M:?}" \
      bash tools/gpu/core-bench-remote.sh 2>&1 | grep '^{' | cut -c1-240
    kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  done
done
