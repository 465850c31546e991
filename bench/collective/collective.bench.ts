/**
 * Allreduce of float32 over 4 ranks: tsray (`@tsray/collective`, through the object store) and
 * torch.distributed gloo on CPU (bench/collective/gloo_allreduce.py), side by side in one run, samples
 * alternating between the two (tsray, gloo, tsray, gloo, ...) so both see the same machine load.
 *
 * Modes: `node` — one tsray node (embedded in this driver), 4 rank actors; `cluster` — two tsray nodes
 * on this machine (head + node daemons, the cluster tests' `TestCluster`), 2 ranks on each, the chunks
 * crossing between the nodes over loopback TCP. gloo always runs 4 processes over loopback TCP (its
 * transport either way), alternated with each tsray mode.
 *
 * Each sample: `iters` allreduces after one warm-up; per iteration every rank refills its array,
 * barriers, then times one allreduce; the iteration's time is the slowest rank's. Reported: the
 * median over all samples' iterations, and bus bandwidth as nccl-tests defines it
 * (2(n-1)/n · bytes / time).
 *
 * Usage (repo root, after `npx nx run-many -t build`):
 *   npx tsx bench/collective/collective.bench.ts [--modes node,cluster] [--sizes-mib 4,100] [--repeats 3] [--iters 5] [--no-gloo]
 * Prints a markdown table on stdout, JSON lines to bench/results/<UTC date-time>-collective.jsonl.
 *
 * Environment (for a bundled run with no checkout around it, as tools/gpu/collective-remote.sh does it):
 *   TSRAY_BENCH_PYTHON        python with torch for the gloo side (default <repo>/.venv/bin/python)
 *   TSRAY_BENCH_GLOO_SCRIPT   gloo_allreduce.py (default: next to this file)
 *   TSRAY_BENCH_RESULTS_DIR   folder of the JSONL (default <repo>/bench/results)
 *   TSRAY_BENCH_DAEMON_MAIN   cluster mode: the daemon entry to run with plain node (a tools/gpu/bundle.mjs
 *                             bundle of packages/cluster/src/daemon-main.ts) instead of the harness's
 *                             packages/cluster/dist/daemon-main.js under `--import tsx`
 *   TSRAY_KEEP_TEST_CLUSTER   cluster mode: keep the daemons' temp folder (session logs) after the run
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { actor, get, init, isMain, kill, shutdown, type ActorHandle } from '@tsray/core';
import { allreduce, barrier, createGroup } from '@tsray/collective';

const RANKS = 4;

/** One benchmark rank: times `iters` allreduces of `n` float32 (after a warm-up). */
export class BenchRank {
  private x: Float32Array | undefined;
  async run(n: number, iters: number, group: string): Promise<number[]> {
    if (this.x?.length !== n) this.x = new Float32Array(n);
    const x = this.x;
    const times: number[] = [];
    for (let i = 0; i <= iters; i++) {
      x.fill(1);
      await barrier({ group });
      const t0 = performance.now();
      await allreduce(x, { group });
      const dt = performance.now() - t0;
      if (i > 0) times.push(dt);
    }
    if (x[0] !== RANKS || x[n - 1] !== RANKS) throw new Error(`wrong allreduce result ${x[0]} ${x[n - 1]}`);
    return times;
  }
}
export const RemoteBenchRank = actor(BenchRank);

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The gloo side: one long-lived process group; `sample(n, iters)` runs one sample in it. */
async function startGloo(repo: string) {
  process.stderr.write('[gloo] starting 4 ranks (torch import takes a while)\n');
  const python = process.env['TSRAY_BENCH_PYTHON'] || join(repo, '.venv/bin/python');
  const script = process.env['TSRAY_BENCH_GLOO_SCRIPT'] || fileURLToPath(new URL('./gloo_allreduce.py', import.meta.url));
  const child = spawn(python, [script, String(RANKS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const l = await lines.next();
    if (l.done) throw new Error('gloo process ended');
    return JSON.parse(l.value) as { times_ms?: number[]; torch?: string };
  };
  const ready = await next();
  return {
    torch: ready.torch ?? '',
    async sample(n: number, iters: number): Promise<number[]> {
      child.stdin!.write(`${n} ${iters}\n`);
      return (await next()).times_ms!;
    },
    async stop(): Promise<void> {
      child.stdin!.end('\n');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

interface Row {
  mode: string;
  mib: number;
  tsrayMs: number;
  glooMs: number;
}

async function runMode(
  mode: 'node' | 'cluster',
  sizes: number[],
  repeats: number,
  iters: number,
  gloo: Awaited<ReturnType<typeof startGloo>>,
  out: { push(line: string): void },
): Promise<Row[]> {
  const place = (r: number) => (mode === 'cluster' ? { resources: { [r < RANKS / 2 ? 'nodeA' : 'nodeB']: 1 } } : {});
  const ranks: ActorHandle<BenchRank>[] = Array.from({ length: RANKS }, (_, r) => RemoteBenchRank.options({ numCpus: 0, ...place(r) }).remote());
  const group = `bench-${mode}`;
  process.stderr.write(`[${mode}] creating the group\n`);
  await createGroup(ranks, { name: group });
  process.stderr.write(`[${mode}] group ready\n`);
  const rows: Row[] = [];
  for (const mib of sizes) {
    const n = (mib * 1024 * 1024) / 4;
    const ts: number[] = [];
    const gl: number[] = [];
    for (let rep = 0; rep < repeats; rep++) {
      const perRank = await get(ranks.map((a) => a.run.remote(n, iters, group)));
      const t = perRank[0]!.map((_, i) => Math.max(...perRank.map((p) => p[i]!)));
      ts.push(...t);
      const g = await gloo.sample(n, iters);
      gl.push(...g);
      process.stderr.write(`[${mode} ${mib} MiB rep ${rep + 1}/${repeats}] tsray ${median(t).toFixed(1)} ms, gloo ${median(g).toFixed(1)} ms\n`);
      out.push(JSON.stringify({ kind: 'sample', mode, mib, rep, tsray_ms: t, gloo_ms: g }));
    }
    rows.push({ mode, mib, tsrayMs: median(ts), glooMs: median(gl) });
    out.push(JSON.stringify({ kind: 'result', mode, mib, tsray_ms: median(ts), gloo_ms: median(gl) }));
  }
  for (const a of ranks) kill(a);
  return rows;
}

if (isMain(import.meta)) {
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  const modes = arg('modes', 'node,cluster').split(',') as ('node' | 'cluster')[];
  const sizes = arg('sizes-mib', '4,100').split(',').map(Number);
  const repeats = Number(arg('repeats', '3'));
  const iters = Number(arg('iters', '5'));
  const started = new Date();
  const resultsDir = process.env['TSRAY_BENCH_RESULTS_DIR'] || join(repo, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${started.toISOString().replace(/[-:]/g, '').slice(0, 15)}Z-collective.jsonl`);
  // Lines are appended as they come, so a run cut short keeps its samples.
  const out = { push: (line: string) => appendFileSync(file, `${line}\n`) };
  out.push(
    JSON.stringify({
      kind: 'meta',
      date: started.toISOString(),
      host: os.hostname(),
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      loadavg: os.loadavg(),
      node: process.version,
      argv: process.argv.slice(2),
    }),
  );
  // --no-gloo: tsray only (a quick check of the tsray side; the table then has no gloo column values).
  const gloo = process.argv.includes('--no-gloo') ? { torch: '-', sample: async () => [Number.NaN], stop: async () => {} } : await startGloo(repo);
  const rows: Row[] = [];
  try {
    for (const mode of modes) {
      if (mode === 'node') {
        await init({ numCpus: RANKS, objectStoreMemory: 2 * 1024 ** 3, logToDriver: false });
        try {
          rows.push(...(await runMode('node', sizes, repeats, iters, gloo, out)));
        } finally {
          await shutdown();
        }
      } else {
        rows.push(...(await withCluster(() => runMode('cluster', sizes, repeats, iters, gloo, out))));
      }
    }
  } finally {
    await gloo.stop();
  }
  out.push(JSON.stringify({ kind: 'meta_end', loadavg: os.loadavg(), torch: gloo.torch }));
  const bw = (mib: number, ms: number) => (((2 * (RANKS - 1)) / RANKS) * ((mib * 1024 * 1024) / (ms / 1000))) / 1e9;
  console.log(
    `allreduce float32, ${RANKS} ranks, median of ${repeats}×${iters} iterations per side (${started.toISOString()}, ${os.cpus().length} CPUs, torch ${gloo.torch})\n`,
  );
  console.log('| mode | size | tsray ms | gloo ms | tsray busbw GB/s | gloo busbw GB/s | tsray / gloo speed |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.mode} | ${r.mib} MiB | ${r.tsrayMs.toFixed(1)} | ${r.glooMs.toFixed(1)} | ${bw(r.mib, r.tsrayMs).toFixed(2)} | ${bw(r.mib, r.glooMs).toFixed(2)} | ${(r.glooMs / r.tsrayMs).toFixed(2)}× |`,
    );
  }
  console.log(`\nresults: ${file}`);
}

/** Two tsray nodes on this machine (head A, node B, each 2 GiB of store), this driver attached to A. */
async function withCluster<T>(fn: () => Promise<T>): Promise<T> {
  const { TestCluster } = await import('../../packages/cluster/test/fixtures/cluster-harness.js');
  type Spawn = InstanceType<typeof TestCluster>['spawn'];
  const daemonMain = process.env['TSRAY_BENCH_DAEMON_MAIN'];
  class BenchCluster extends TestCluster {
    override env(): NodeJS.ProcessEnv {
      // A bundled daemon runs with plain node: no `--import tsx` (where bundles run, there is no tsx).
      if (daemonMain) return super.env();
      const opts = [process.env['NODE_OPTIONS'], '--import tsx'].filter(Boolean).join(' ');
      return { ...super.env(), NODE_OPTIONS: opts };
    }
    override spawn(...[role, spec, extra]: Parameters<Spawn>): ReturnType<Spawn> {
      if (!daemonMain) return super.spawn(role, spec, extra);
      // The harness runs `[...wrap, node, DAEMON_MAIN, config]`; this wrap (sh -c with the positional
      // parameters node, daemonMain, node, DAEMON_MAIN, config) execs `node daemonMain config` instead.
      return super.spawn(role, { ...spec, wrap: ['/bin/sh', '-c', 'exec "$1" "$2" "$5"', 'sh', process.execPath, daemonMain] }, extra);
    }
  }
  const savedTmp = process.env['TMPDIR'];
  const parent = mkdtempSync(join(tmpdir(), 'tsray-bench-collective-'));
  process.env['TMPDIR'] = parent;
  const c = new BenchCluster();
  try {
    await c.startHead({ numCpus: RANKS, resources: { nodeA: 100 }, objectStoreMemory: 2 * 1024 ** 3 });
    await c.addNode({ numCpus: RANKS, resources: { nodeB: 100 }, objectStoreMemory: 2 * 1024 ** 3 });
    process.env['TMPDIR'] = c.tmp;
    await init({ address: 'auto', logToDriver: false });
    try {
      return await fn();
    } finally {
      await shutdown();
    }
  } finally {
    if (savedTmp === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = savedTmp;
    await c.stop();
    if (!process.env['TSRAY_KEEP_TEST_CLUSTER']) rmSync(parent, { recursive: true, force: true });
  }
}
