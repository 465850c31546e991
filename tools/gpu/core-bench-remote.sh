#!/usr/bin/env bash
# On the GPU machine: runs the core bench of the bundles under .carry/cb/<side> (made by
# tools/gpu/bundle.mjs --shared-node-modules; node 20 as .carry/cb/node.tar.xz) one after the other, JSON lines into
# $OUT/core-<side>.jsonl. SIDES (default "old new") and M (metric list) choose what runs.
set -u
mkdir -p /root/node && tar -C /root/node -xJf .carry/cb/node.tar.xz && export PATH=/root/node/bin:$PATH
node --version; nproc; uptime
export TMPDIR=/tmp/cb; mkdir -p $TMPDIR
M=${M:-single_client_get_calls,single_client_put_calls,single_client_put_gigabytes,single_client_get_gigabytes,single_client_tasks_and_get_batch,single_client_wait_1k_refs,single_client_tasks_sync,single_client_tasks_async,1_1_actor_calls_sync,1_1_actor_calls_async,1_1_actor_calls_concurrent,1_n_actor_calls_async,n_n_actor_calls_async,1_1_async_actor_calls_async,placement_group_create_removal}
for side in ${SIDES:-old new}; do
  echo "== $side $(date -u +%T)"
  timeout ${SIDE_LIMIT:-280} node .carry/cb/$side/bin/core-bench.mjs --metrics "$M" 2>&1 | grep '^{' | sed "s/^{/{\"side\":\"$side\",/" | tee -a $OUT/core-$side.jsonl
done
