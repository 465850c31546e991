/**
 * tsray side of the two-node benchmarks (issue #5): Ray's `multi_client_tasks_async` and
 * `n_n_actor_calls_async` with their clients on two nodes, object transfer between two node managers
 * on loopback, and raw ZeroMQ PUSH/PULL of the same bytes as the transfer's baseline. Twin:
 * bench/ray/ray_cluster.py (the same shapes on a `ray.cluster_utils.Cluster`).
 *
 * Cluster: a head (node A) and one node manager (node B), separate processes started from
 * packages/cluster/dist/daemon-main.js by the test harness's `TestCluster` (reused, not vitest), each
 * `numCpus: 1` (the bench machine has 2 cores) and a custom resource naming it (`nodeA`/`nodeB`: 100)
 * that places the clients. This process is a driver attached to the head (`init({ address: 'auto' })`
 * with TMPDIR pointing at the cluster's temp dir).
 *
 * Usage (repo root, after `npx nx run-many -t build`):
 *   npx tsx bench/tsray/cluster.bench.ts [--quick] [--metrics a,b,c] [--list]
 *   TSRAY_BENCH_DAEMON_PROF=/tmp/prof npx tsx bench/tsray/cluster.bench.ts …   (daemon CPU profiles)
 *   TSRAY_KEEP_TEST_CLUSTER=1 npx tsx bench/tsray/cluster.bench.ts …           (keep the cluster's logs)
 *
 * Workers (on both nodes) import this module: remote functions stay at top level and everything else
 * sits behind `isMain(import.meta)`.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get, isMain, kill, put, remote, wait, type ActorHandle } from '@tsray/core';
import { RemoteActor } from './core.bench.js';
import { benchMain, Registry } from './harness.js';
import { startHelper } from './helper-process.js';
import type { TimeitResult } from './timeit.js';

/** Custom resources naming the two nodes (each node has 100 of its own). */
const NODE_A = 'nodeA';
const NODE_B = 'nodeB';
const NODES = [NODE_A, NODE_B] as const;
/** One node's worth of placement: `resources: { nodeX: 1 }` (Ray: the same custom resource). */
const on = (node: string) => ({ resources: { [node]: 1 } });

/** ray_perf.py's n and m of "multi client tasks async": m clients, each submits n small tasks. */
const MC_TASKS = 10_000;
const MC_CLIENTS = 4;
/** ray_perf.py's n and m of "n:n actor calls async". */
const NN_CALLS = 5000;
const NN_TASKS = 4;
/** `multiprocessing.cpu_count() // 2`: ray_perf.py's number of n:n server actors (1 on 2 cores). */
const N_CPU = Math.max(1, Math.floor(os.cpus().length / 2));

/** Object transfer: one object of this size per round. */
const TRANSFER_BYTES = 256 * 1024 * 1024;
/** ZeroMQ baseline frame size (tsray's node managers send 8 MiB chunks too). */
const ZMQ_FRAME = 8 * 1024 * 1024;

const QUICK = process.argv.includes('--quick');
/** One workload call that takes longer than this fails the metric (a hang must not stall the run). */
const CALL_TIMEOUT_S = 120;
/** Timed transfer rounds (after one untimed round that also checks the content). */
const TRANSFER_ROUNDS = QUICK ? 3 : 8;

/** ray_perf.py's `work` task of n:n (placed on one node by the caller); round-robin over the servers. */
const work = remote(async function work(actors: Server[]): Promise<void> {
  const refs: ReturnType<Server['smallValue']['remote']>[] = [];
  for (let i = 0; i < NN_CALLS; i++) refs.push(actors[i % actors.length]!.smallValue.remote());
  await get(refs);
});
/** A handle of ray_perf.py's `Actor` (core.bench.ts's `RemoteActor`). */
type Server = ReturnType<typeof RemoteActor.remote>;

/** Reads the transferred object on node B (the argument is resolved there: node B pulls it from A). */
const consume = remote(function consume(b: Buffer): number {
  return b.length;
}, on(NODE_B));

/** Content check of the transferred object, on node B. */
const digestOnB = remote(function digestOnB(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}, on(NODE_B));

/** A non-constant pattern (a zero buffer could be special-cased somewhere; this one cannot). */
function pattern(bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  let x = 12345;
  for (let i = 0; i < bytes; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

/** Mean and population std of per-round rates (the shape Ray's timeit returns). */
function stats(rates: number[]): TimeitResult {
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const variance = rates.reduce((a, b) => a + (b - mean) ** 2, 0) / rates.length;
  return { mean, std: Math.sqrt(variance), trials: rates };
}

const nowSec = (): number => performance.now() / 1000;

export const registry = new Registry();
// The driver attaches to the cluster started in main (TMPDIR points at it).
registry.sessions.set('default', { address: 'auto' });
registry.session('local', null);

registry.metric(
  'multi_client_tasks_async',
  {
    note: "4 Client actors (ray_perf.py's Actor, numCpus 0), 2 on each node, each submits 10,000 small_value tasks and gets them (its method returns get()'s promise where Ray's blocks in ray.get)",
  },
  async (t) => {
    const clients: ActorHandle<unknown>[] = [];
    const actors = Array.from({ length: MC_CLIENTS }, (_, i) => RemoteActor.options(on(NODES[i % 2]!)).remote());
    clients.push(...actors);
    try {
      return await t(
        () =>
          get(
            actors.map((a) => a.smallValueBatch.remote(MC_TASKS)),
            { timeout: CALL_TIMEOUT_S },
          ),
        MC_TASKS * MC_CLIENTS,
      );
    } finally {
      for (const h of clients) kill(h);
    }
  },
);

registry.metric(
  'n_n_actor_calls_async',
  {
    note: "ray_perf.py's n:n: 4 work tasks (1 CPU each), 2 on each node, each makes 5,000 small_value calls round-robin over n_cpu = cpus/2 = 1 server Actor (on node A) and awaits them (Ray's blocks in ray.get)",
  },
  async (t) => {
    const servers = Array.from({ length: N_CPU }, () => RemoteActor.options(on(NODE_A)).remote());
    try {
      return await t(
        () =>
          get(
            Array.from({ length: NN_TASKS }, (_, i) => work.options(on(NODES[i % 2]!)).remote(servers)),
            { timeout: CALL_TIMEOUT_S },
          ),
        NN_TASKS * NN_CALLS,
      );
    } finally {
      for (const h of servers) kill(h);
    }
  },
);

registry.metric(
  'object_transfer_gigabytes',
  {
    unit: 'GB/s',
    note: `a 256 MiB object put by the driver on node A, read by a task on node B (node B's manager pulls it from node A's over their data plane, a TCP connection on loopback: plain, as both ends are on one host; TSRAY_SEAL_LOOPBACK=1 seals it, as between hosts; 8 MiB chunks); per round: put, wait until sealed (untimed), then get(consume.remote(ref)) timed, ref released; ${TRANSFER_ROUNDS} rounds after one untimed round whose content is checked with sha256 on B; GB = 1e9 bytes; includes one task round trip`,
  },
  async () => {
    const big = pattern(TRANSFER_BYTES);
    const want = createHash('sha256').update(big).digest('hex');
    {
      const ref = put(big);
      const got = await get(digestOnB.remote(ref));
      ref.release();
      if (got !== want) throw new Error(`object_transfer: content differs on node B (sha256 ${got}, want ${want})`);
    }
    const rates: number[] = [];
    for (let r = 0; r < TRANSFER_ROUNDS; r++) {
      const ref = put(big);
      await wait([ref]);
      const t0 = nowSec();
      const n = await get(consume.remote(ref));
      const dt = nowSec() - t0;
      ref.release();
      if (n !== TRANSFER_BYTES) throw new Error(`object_transfer: node B saw ${n} bytes, want ${TRANSFER_BYTES}`);
      rates.push(TRANSFER_BYTES / 1e9 / dt);
    }
    return stats(rates);
  },
);

/**
 * A raw ZeroMQ baseline of the transfer: the same 256 MiB from a PUSH socket here to a PULL socket in a
 * second process (bench/tsray/zmq-sink.mjs) in 8 MiB frames, timed until the sink acknowledges the last
 * byte. `plain`: the raw link; `sealed`: plain sockets, each frame AES-256-GCM sealed here and opened there
 * into one buffer (the data plane's work between hosts, without tsray); `curve`: a CURVE socket (the
 * control link's).
 */
async function zmqBaseline(mode: 'plain' | 'sealed' | 'curve'): Promise<TimeitResult> {
  const zmq = await import('zeromq');
  const big = pattern(TRANSFER_BYTES);
  const sink = startHelper<{ pull: string; ack: string; serverKey?: string; key?: string }>(
    new URL('./zmq-sink.mjs', import.meta.url),
    mode === 'plain' ? [] : [`--${mode}`],
  );
  const ack = new zmq.Pull();
  let push: InstanceType<typeof zmq.Push> | undefined;
  try {
    const endpoints = await sink.ready;
    const client = zmq.curveKeyPair();
    const curve = endpoints.serverKey ? { curveServerKey: endpoints.serverKey, curvePublicKey: client.publicKey, curveSecretKey: client.secretKey } : {};
    const out = new zmq.Push({ sendHighWaterMark: 0, ...curve });
    push = out;
    out.connect(endpoints.pull);
    ack.connect(endpoints.ack);
    const key = endpoints.key ? Buffer.from(endpoints.key, 'hex') : undefined;
    let counter = 0;
    /** One frame as sent: `[iv ‖ tag][ciphertext]` when sealed, else the bytes. */
    const frame = (bytes: Buffer): Buffer[] => {
      if (!key) return [bytes];
      const head = Buffer.alloc(28);
      head.writeUInt32BE(++counter, 8);
      const c = createCipheriv('aes-256-gcm', key, head.subarray(0, 12));
      const sealedBytes = c.update(bytes);
      c.final();
      c.getAuthTag().copy(head, 12);
      return [head, sealedBytes];
    };
    const round = async (): Promise<number> => {
      const t0 = nowSec();
      for (let off = 0; off < big.length; off += ZMQ_FRAME) await out.send(frame(big.subarray(off, off + ZMQ_FRAME)));
      await out.send(Buffer.alloc(0));
      const [n] = await ack.receive();
      const dt = nowSec() - t0;
      if (Number(n!.toString()) !== big.length) throw new Error(`zmq sink got ${n!.toString()} bytes, want ${big.length}`);
      return dt;
    };
    await round();
    const rates: number[] = [];
    for (let r = 0; r < TRANSFER_ROUNDS; r++) rates.push(TRANSFER_BYTES / 1e9 / (await round()));
    return stats(rates);
  } finally {
    push?.close();
    ack.close();
    await sink.stop();
  }
}

registry.metric(
  'zmq_push_pull_gigabytes',
  {
    unit: 'GB/s',
    session: 'local',
    note: `baseline: the same 256 MiB buffer sent by a zeromq 6 PUSH socket in this process to a PULL socket in a second process (bench/tsray/zmq-sink.mjs) over tcp loopback, in 8 MiB frames, plain (the raw link; tsray's data plane between two nodes on one host's loopback is plain too); timed until the sink acknowledges the round's last byte; ${TRANSFER_ROUNDS} rounds after one untimed round`,
  },
  () => zmqBaseline('plain'),
);

registry.metric(
  'zmq_sealed_push_pull_gigabytes',
  {
    unit: 'GB/s',
    session: 'local',
    note: `baseline of the data plane between hosts: as zmq_push_pull_gigabytes, each 8 MiB frame AES-256-GCM sealed by the sender (node:crypto) and opened by the sink straight into one buffer (gcmOpenInto), as tsray's data plane does across a network (or with TSRAY_SEAL_LOOPBACK=1) without the rest of tsray`,
  },
  () => zmqBaseline('sealed'),
);

registry.metric(
  'zmq_curve_push_pull_gigabytes',
  {
    unit: 'GB/s',
    session: 'local',
    note: `reference: as zmq_push_pull_gigabytes on a CURVE-encrypted socket, as tsray's control links (what a transfer would get through them)`,
  },
  () => zmqBaseline('curve'),
);

if (isMain(import.meta)) {
  const listing = process.argv.includes('--list') || process.argv.includes('-h') || process.argv.includes('--help');
  if (listing) await benchMain(registry);
  else {
    const { TestCluster } = await import('../../packages/cluster/test/fixtures/cluster-harness.js');
    /** The harness's cluster, with daemons (and so their workers) loading tsx to import this .ts file. */
    class BenchCluster extends TestCluster {
      override env(): NodeJS.ProcessEnv {
        const opts = [process.env['NODE_OPTIONS'], '--import tsx'].filter(Boolean).join(' ');
        return { ...super.env(), NODE_OPTIONS: opts };
      }
    }
    // A private parent dir: cleanups of other runs' `tsray-cluster-test-*` dirs in /tmp must not
    // remove this cluster's sockets while it runs.
    const savedTmp = process.env['TMPDIR'];
    const parent = mkdtempSync(join(tmpdir(), 'tsray-bench-cluster-'));
    process.env['TMPDIR'] = parent;
    const c = new BenchCluster();
    const store = 2 * 1024 * 1024 * 1024;
    try {
      process.stderr.write(`[tsray] starting a 2-node cluster in ${c.tmp}\n`);
      // TSRAY_BENCH_DAEMON_PROF=<dir>: CPU profiles of both daemons (node --cpu-prof; NODE_OPTIONS refuses it).
      const prof = process.env['TSRAY_BENCH_DAEMON_PROF'];
      const wrap = prof ? ['sh', '-c', `shift; exec "$0" --cpu-prof --cpu-prof-dir='${prof}' "$@"`, process.execPath] : undefined;
      await c.startHead({ numCpus: 1, resources: { [NODE_A]: 100 }, objectStoreMemory: store, ...(wrap ? { wrap } : {}) });
      await c.addNode({ numCpus: 1, resources: { [NODE_B]: 100 }, objectStoreMemory: store, ...(wrap ? { wrap } : {}) });
      process.env['TMPDIR'] = c.tmp;
      await benchMain(registry);
    } finally {
      if (savedTmp === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = savedTmp;
      await c.stop();
      // TSRAY_KEEP_TEST_CLUSTER=1 keeps the daemons' logs (as the test harness does) to look at a failed metric.
      if (!process.env['TSRAY_KEEP_TEST_CLUSTER']) rmSync(parent, { recursive: true, force: true });
    }
  }
}
