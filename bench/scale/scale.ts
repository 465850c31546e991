/**
 * Control plane at scale (issue #16): one GCS (its own process, bench/scale/gcs-host.mjs) and N real
 * node daemons with tiny resources (1 CPU, 16 MiB object store, no workers until a task comes) on
 * this machine, for each N of `--nodes`. Per N it measures, from the GCS's counters: bytes/s in and out
 * and CPU % of the idle cluster (a `--window-s` window), GCS RSS; the time a driver on the first node
 * takes to run `--tasks` tiny SPREAD tasks over all nodes (after a warm-up batch that starts the
 * workers) and the GCS's traffic meanwhile; death detection (SIGKILL one node: until the GCS marks it
 * dead, and until the driver's node view drops its CPU); RSS per node daemon.
 *
 * `npx tsx bench/scale/scale.ts --nodes 10,50,100 [--tasks 10000] [--tasks-up-to N] [--window-s 10] [--root DIR] [--json FILE]`
 * `--root` runs another checkout's built daemons and GCS (e.g. the old main) with this harness;
 * `--wave` (default 1000) submits the tasks in waves, each waited for (10,000 at once stalled the
 * driver's node for over 30 s on the loaded 2-core machine); `--tasks-up-to` skips the task phase above that N (each node then starts a worker: memory);
 * `--task-death-timeout-s` (default 30) is the GCS's death limit during the task phase only (a node
 * busy with a burst on a loaded 2-core machine misses heartbeats for seconds); deaths are timed at 3 s.
 * One JSON line per N on stdout; progress on stderr.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}
const NS = arg('nodes', '10').split(',').map(Number);
const TASKS = Number(arg('tasks', '10000'));
const WINDOW_S = Number(arg('window-s', '10'));
const ROOT = resolve(arg('root', join(HERE, '../..')));
const JSON_OUT = arg('json', '');
/** Tasks are submitted in waves of this many (each waited for before the next). */
const WAVE = Number(arg('wave', '1000'));
/** The task phase runs only for N up to this (memory: every node starts a worker). */
const TASKS_UP_TO = Number(arg('tasks-up-to', '100000'));
/** The GCS's node death timeout while tasks run (the death phase uses the default 3 s). */
const TASK_PHASE_DEATH_TIMEOUT_S = Number(arg('task-death-timeout-s', '30'));
const log = (...a: unknown[]) =>
  process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ')}\n`);

/** The GCS host's answer to 'stats'. */
interface GcsSample {
  at: number;
  io: { bytesIn: number; bytesOut: number; messagesIn: number; messagesOut: number };
  cpuMs: number;
  rss: number;
  alive: number;
  deaths: Record<string, number>;
  own?: { traffic: { in: { bytes: number }; out: { bytes: number } }; tables?: unknown; resourceReports?: number };
}

async function until<T>(cond: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One request/answer over a child's IPC channel. */
function ask<T>(child: ChildProcess, msg: unknown, timeoutMs = 600_000): Promise<T> {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      child.off('message', on);
      rej(new Error(`no answer to ${JSON.stringify(msg)} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const on = (m: { error?: string; ok?: T } | T) => {
      clearTimeout(timer);
      child.off('message', on);
      if (m && typeof m === 'object' && 'error' in m && m.error) rej(new Error(m.error));
      else res(m && typeof m === 'object' && 'ok' in m ? (m.ok as T) : (m as T));
    };
    child.on('message', on);
    child.send(msg as object);
  });
}

function rssOf(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Workers (direct children) of a daemon. */
function childrenOf(pid: number | undefined): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Rate per second between two samples. */
function rates(a: GcsSample, b: GcsSample, n: number) {
  const s = (b.at - a.at) / 1000;
  const inB = (b.io.bytesIn - a.io.bytesIn) / s;
  const outB = (b.io.bytesOut - a.io.bytesOut) / s;
  return {
    seconds: +s.toFixed(1),
    bytesInPerS: Math.round(inB),
    bytesOutPerS: Math.round(outB),
    bytesPerSPerNode: Math.round((inB + outB) / n),
    messagesInPerS: Math.round((b.io.messagesIn - a.io.messagesIn) / s),
    messagesOutPerS: Math.round((b.io.messagesOut - a.io.messagesOut) / s),
    cpuPercent: +((100 * (b.cpuMs - a.cpuMs)) / (b.at - a.at)).toFixed(1),
    ...(a.own && b.own ? { ownCountersInOut: [b.own.traffic.in.bytes - a.own.traffic.in.bytes, b.own.traffic.out.bytes - a.own.traffic.out.bytes] } : {}),
  };
}

async function runOnce(n: number): Promise<Record<string, unknown>> {
  const tmp = mkdtempSync(join(process.env['TMPDIR'] ?? tmpdir(), 'tsray-scale-'));
  const sessionDir = join(tmp, `tsray-${process.getuid?.()}`, 'session-scale');
  mkdirSync(join(sessionDir, 'logs'), { recursive: true, mode: 0o700 });
  const token = `scale-${process.pid}-${Date.now()}`;
  const daemons: ChildProcess[] = [];
  let gcs: ChildProcess | undefined;
  let driver: ChildProcess | undefined;
  try {
    gcs = fork(join(HERE, 'gcs-host.mjs'), [ROOT, token], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, TSRAY_LOG_LEVEL: 'warn' } });
    started.add(gcs);
    const { address } = await new Promise<{ address: string }>((r) => gcs!.once('message', (m) => r(m as { address: string })));
    const sample = () => ask<GcsSample>(gcs!, 'stats');
    log(`N=${n}: GCS at ${address}; starting ${n} node daemons (${ROOT})`);
    const startAt = Date.now();
    const spawnNode = async (i: number) => {
      const readyFile = join(sessionDir, `node-${i}.ready.json`);
      const config = {
        role: 'node',
        sessionDir,
        token,
        host: '127.0.0.1',
        headAddress: address,
        numCpus: 1,
        resources: {},
        labels: {},
        objectStoreMemory: 16 * 1024 * 1024,
        readyFile,
      };
      const err = openSync(join(sessionDir, 'logs', `node-${i}.err`), 'a');
      const p = spawn(process.execPath, [join(ROOT, 'packages/cluster/dist/daemon-main.js'), JSON.stringify(config)], {
        stdio: ['ignore', 'ignore', err],
        env: { ...process.env, TMPDIR: tmp, TSRAY_LOG_LEVEL: 'warn' },
      });
      closeSync(err);
      daemons[i] = p;
      started.add(p);
      await until(() => existsSync(readyFile) || p.exitCode !== null, 300_000, `node ${i} to start`);
      if (p.exitCode !== null) throw new Error(`node ${i} exited: ${readFileSync(join(sessionDir, 'logs', `node-${i}.err`), 'utf8').slice(-1500)}`);
    };
    // The first node alone (it publishes the session file the driver attaches through), then batches.
    await spawnNode(0);
    for (let i = 1; i < n; i += 8) await Promise.all(Array.from({ length: Math.min(8, n - i) }, (_, k) => spawnNode(i + k)));
    await until(async () => (await sample()).alive === n, 120_000, `${n} nodes alive at the GCS`);
    const joinS = (Date.now() - startAt) / 1000;
    log(`N=${n}: all joined in ${joinS.toFixed(1)} s; idle window ${WINDOW_S} s`);
    // Let the join burst settle, then the idle window.
    await new Promise((r) => setTimeout(r, 3000));
    const i0 = await sample();
    await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
    const i1 = await sample();
    const idle = rates(i0, i1, n);
    const daemonRss = daemons.map((d) => rssOf(d.pid));
    log(`N=${n}: idle`, idle);

    driver = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'driver.ts')], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { ...process.env, TMPDIR: tmp, TSRAY_SCALE_DRIVER: '1', TSRAY_LOG_LEVEL: 'warn' },
    });
    started.add(driver);
    const seen = await new Promise<{ ready: number }>((r) => driver!.once('message', (m) => r(m as { ready: number })));
    log(`N=${n}: driver attached, its node sees ${seen.ready} CPUs`);
    let tasks: Record<string, unknown> | undefined;
    let busy: ReturnType<typeof rates> | undefined;
    if (TASKS > 0 && n <= TASKS_UP_TO) {
      await ask(gcs, { deathTimeoutMs: TASK_PHASE_DEATH_TIMEOUT_S * 1000 });
      log(`N=${n}: warm-up ${4 * n} tasks (node death timeout ${TASK_PHASE_DEATH_TIMEOUT_S} s in the task phase)`);
      const warm = await ask<{ ms: number; nodes: number }>(driver, { op: 'run', tasks: 4 * n, wave: WAVE });
      log(`N=${n}: warm-up`, warm);
      const t0 = await sample();
      const run = await ask<{ ms: number; nodes: number }>(driver, { op: 'run', tasks: TASKS, wave: WAVE }, Number(arg('task-timeout-s', '300')) * 1000);
      const t1 = await sample();
      busy = rates(t0, t1, n);
      tasks = {
        count: TASKS,
        wave: WAVE,
        ms: Math.round(run.ms),
        perS: Math.round((TASKS / run.ms) * 1000),
        nodesUsed: run.nodes,
        warmUpMs: Math.round(warm.ms),
      };
      log(`N=${n}: ${TASKS} SPREAD tasks`, tasks, busy);
      await ask(gcs, { deathTimeoutMs: 3000 });
    }
    const workerRss = daemons.flatMap((d) => childrenOf(d.pid)).map((p) => rssOf(p));

    // Death: SIGKILL the last node; the GCS marks it dead, the driver's node drops its CPU.
    await new Promise((r) => setTimeout(r, 2000));
    const watch = ask<{ at: number }>(driver, { op: 'watchCpus', below: n });
    await new Promise((r) => setTimeout(r, 200));
    const victim = daemons[n - 1]!;
    const killedAt = Date.now();
    for (const w of childrenOf(victim.pid)) process.kill(w, 'SIGKILL');
    victim.kill('SIGKILL');
    const gcsDead = await until(async () => Object.values((await sample()).deaths)[0], 30_000, 'the GCS to mark the node dead');
    const driverSaw = (await watch).at;
    const death = { gcsMs: gcsDead - killedAt, driverMs: driverSaw - killedAt };
    log(`N=${n}: death detection`, death);
    const end = await sample();
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    return {
      nodes: n,
      root: ROOT,
      joinS: +joinS.toFixed(1),
      idle,
      tasks,
      busy,
      death,
      gcsRssMiB: +(end.rss / 2 ** 20).toFixed(1),
      daemonRssMiB: +(mean(daemonRss) / 2 ** 20).toFixed(1),
      workerRssMiB: +(mean(workerRss) / 2 ** 20).toFixed(1),
      workers: workerRss.length,
      gcsOwn: end.own ? { tables: end.own.tables, resourceReports: end.own.resourceReports } : undefined,
      loadavg: loadavg().map((x) => +x.toFixed(2)),
    };
  } finally {
    if (driver && driver.exitCode === null) {
      driver.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      if (driver.exitCode === null) driver.kill('SIGKILL');
    }
    await Promise.all(
      daemons.map(async (d) => {
        if (!d || d.exitCode !== null || d.signalCode !== null) return;
        const exited = new Promise((r) => d.once('exit', r));
        d.kill('SIGTERM');
        const t = setTimeout(() => d.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }),
    );
    if (gcs && gcs.exitCode === null) {
      const exited = new Promise((r) => gcs!.once('exit', r));
      gcs.kill('SIGTERM');
      await exited;
    }
    if (process.env['SCALE_KEEP']) log(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

// Interrupted: every process this bench started goes with it (the finally blocks do not run on a signal).
const started = new Set<ChildProcess>();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    for (const c of started) if (c.exitCode === null) c.kill('SIGKILL');
    process.exit(130);
  });
}

const rows: Record<string, unknown>[] = [];
for (const n of NS) {
  const row = await runOnce(n);
  rows.push(row);
  process.stdout.write(`${JSON.stringify(row)}\n`);
  if (JSON_OUT) writeFileSync(JSON_OUT, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
}
