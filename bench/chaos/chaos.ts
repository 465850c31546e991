/**
 * Chaos harness (issue #18): starts a multi-node cluster of real daemons, runs a workload from a driver
 * attached to the head, kills random non-head node daemons (or their workers) on a schedule and starts
 * replacements, then checks the invariants Ray's chaos tests check and prints a report.
 *
 *   npx tsx bench/chaos/chaos.ts --workload tasks  --tasks 10000 --nodes 4 --kill-every 5
 *   npx tsx bench/chaos/chaos.ts --workload actors --actors 20 --calls 20000 --kill-every 5
 *
 * `--max-kills N` stops injecting after N faults (the workload then has to finish on the cluster left).
 * `--kill nodes|workers|both` picks what dies; `--target actors` picks victims among the nodes hosting an
 * alive actor (so every fault hits one; default `any`: a random non-head node, as Ray's killer).
 *
 * Invariants: every result correct and seen exactly once by the driver (no failure, no loss, no
 * duplicate); actors: per-caller order kept (no call ran before an earlier one, per incarnation); after
 * the last fault, every node alive again and available == total resources within `--settle-s`.
 * Exit 0 when they all hold, 1 otherwise; `--json FILE` writes the report as JSON.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { availableResources, clusterResources, get, init, kill, listActors, nodes, shutdown, wait, type ObjectRef } from '@tsray/core';
import { ChaosCluster, until, type ChaosDaemon } from './cluster.js';
import { ChaosActor, combine, expectedCombine, produce } from './workloads.js';

/** One injected fault and how the cluster saw it. */
interface FaultEvent {
  kind: 'node' | 'worker';
  atS: number;
  victim: string;
  /** ms from the kill until the GCS listed the node dead (node kills). */
  detectedMs?: number;
  /** ms from the kill until its replacement was alive in the node table (node kills). */
  replacedMs?: number;
}

/** The harness's report. */
export interface ChaosReport {
  workload: string;
  nodes: number;
  killEveryS: number;
  submitted: number;
  completed: number;
  correct: number;
  wrong: number;
  failed: number;
  duplicates: number;
  lost: number;
  orderViolations: number;
  restartsSeen: number;
  faults: FaultEvent[];
  runtimeS: number;
  /** ms from the workload's end until every node was alive and available == total. */
  settleMs: number;
  settled: boolean;
  firstErrors: string[];
  ok: boolean;
}

const { values: opt } = parseArgs({
  options: {
    workload: { type: 'string', default: 'tasks' },
    tasks: { type: 'string', default: '10000' },
    actors: { type: 'string', default: '20' },
    calls: { type: 'string', default: '20000' },
    nodes: { type: 'string', default: '4' },
    cpus: { type: 'string', default: '1' },
    'kill-every': { type: 'string', default: '5' },
    'max-kills': { type: 'string', default: '0' },
    kill: { type: 'string', default: 'nodes' },
    target: { type: 'string', default: 'any' },
    'task-ms': { type: 'string', default: '1' },
    'call-ms': { type: 'string', default: '10' },
    'death-timeout-s': { type: 'string', default: '3' },
    'settle-s': { type: 'string', default: '10' },
    json: { type: 'string' },
    'stall-s': { type: 'string', default: '120' },
    keep: { type: 'boolean', default: false },
  },
});

/**
 * A state-API poll for until(): false (try again) when the call fails, as a head too busy to answer a
 * state call in time does on a loaded machine; the harness must not die of that.
 */
function poll<T>(cond: () => Promise<T>): () => Promise<T | false> {
  return () => cond().catch(() => false as const);
}

/** No result for this long while some are pending: the rest are counted lost. */
const stallS = Number(opt['stall-s']);
const t0 = Date.now();
const since = () => (Date.now() - t0) / 1000;
const log = (...a: unknown[]) => console.log(`[chaos ${since().toFixed(1)}s]`, ...a);

/** Kills a random non-head daemon (or one of its workers) every `everyS` until stopped; replaces killed daemons. */
class Killer {
  readonly faults: FaultEvent[] = [];
  /** What went wrong injecting faults (a replacement that never came up). */
  readonly errors: string[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly pending: Promise<void>[] = [];
  private wake: () => void = () => undefined;

  constructor(
    private readonly c: ChaosCluster,
    private readonly everyS: number,
    private readonly mode: string,
    /** Nodes to pick victims from when any is live (`--target actors`: nodes hosting an alive actor). */
    private readonly prefer?: () => Promise<Set<string>>,
    /** Faults to inject at most (0: no limit); daemons that exit by themselves are still replaced after. */
    private readonly maxKills = 0,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await new Promise<void>((r) => {
          this.wake = r;
          setTimeout(r, this.everyS * 1000);
        });
        if (this.stopped) break;
        for (const d of this.c.exitedByThemselves()) {
          this.faults.push({ kind: 'node', atS: since(), victim: `${d.nodeId} (exited by itself)` });
          log(`node ${d.nodeId.slice(0, 8)} exited by itself (declared dead while alive?); starting a replacement`);
          this.pending.push(
            this.c.addNode().then(
              () => undefined,
              (e: unknown) => void this.errors.push(`replacement: ${(e as Error).message}`),
            ),
          );
        }
        if (this.maxKills > 0 && this.faults.filter((f) => !f.victim.endsWith('(exited by itself)')).length >= this.maxKills) continue;
        const workers = this.mode === 'workers' || (this.mode === 'both' && Math.random() < 0.5);
        const live = this.c.liveNodes();
        const preferred = this.prefer ? await this.prefer().catch(() => undefined) : undefined;
        const victims = preferred && live.some((d) => preferred.has(d.nodeId)) ? live.filter((d) => preferred.has(d.nodeId)) : live;
        if (victims.length === 0) continue;
        const v = victims[Math.floor(Math.random() * victims.length)]!;
        if (workers) this.killWorker(v);
        else
          this.pending.push(
            this.killNode(v).catch((e: unknown) => {
              this.errors.push(`node kill ${v.nodeId.slice(0, 8)}: ${(e as Error).message}`);
            }),
          );
      }
    })();
  }

  private killWorker(v: ChaosDaemon): void {
    const pids = this.c.workerPids(v);
    if (pids.length === 0) return;
    const pid = pids[Math.floor(Math.random() * pids.length)]!;
    try {
      process.kill(pid, 'SIGKILL');
      this.faults.push({ kind: 'worker', atS: since(), victim: `pid ${pid} on ${v.nodeId.slice(0, 8)}` });
      log(`killed worker pid ${pid} of node ${v.nodeId.slice(0, 8)}`);
    } catch {
      /* it exited by itself */
    }
  }

  private async killNode(v: ChaosDaemon): Promise<void> {
    const ev: FaultEvent = { kind: 'node', atS: since(), victim: v.nodeId };
    this.faults.push(ev);
    const at = Date.now();
    this.c.kill(v);
    log(`killed node ${v.nodeId.slice(0, 8)}; starting a replacement`);
    const detected = until(
      poll(async () => (await nodes()).find((n) => n.nodeId === v.nodeId)?.alive === false),
      120_000,
      'the dead node declared dead',
    ).then(() => (ev.detectedMs = Date.now() - at));
    const fresh = await this.c.addNode();
    await until(
      poll(async () => (await nodes()).find((n) => n.nodeId === fresh.nodeId)?.alive),
      120_000,
      'the replacement node alive',
    );
    ev.replacedMs = Date.now() - at;
    await detected;
    log(`node ${v.nodeId.slice(0, 8)} declared dead after ${ev.detectedMs} ms; replacement ${fresh.nodeId.slice(0, 8)} alive after ${ev.replacedMs} ms`);
  }

  /** Stop injecting; wait for replacements under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loop;
    await Promise.all(this.pending);
  }
}

/**
 * Let the event loop turn between batches of submissions: on a loaded machine one long synchronous loop
 * would hold back this driver's heartbeats, and a driver silent for 10 s is taken as gone (its job ends).
 */
const yieldTurn = () => new Promise<void>((r) => setImmediate(r));

/** Waits for refs as they complete; `onValue` gets each exactly once (by index); errors are counted. */
async function collect<T>(refs: ObjectRef<T>[], onValue: (i: number, v: T) => void, r: ChaosReport): Promise<void> {
  const index = new Map<string, number>(refs.map((ref, i) => [ref.id, i]));
  const seen = new Set<string>();
  let pending = refs;
  let lastProgress = Date.now();
  while (pending.length > 0) {
    // A window of the oldest refs, not all of them: each wait() subscribes to what it is given.
    const window = pending.slice(0, 1000);
    const { ready, notReady: rest } = await wait(window, { numReturns: Math.min(64, window.length), timeout: 2 });
    const notReady = rest.concat(pending.slice(1000));
    if (ready.length > 0) {
      if (Date.now() - lastProgress > 10_000 || Math.floor((r.completed + r.failed) / 2000) !== Math.floor((r.completed + r.failed + ready.length) / 2000))
        log(`${r.completed + r.failed + ready.length} of ${r.submitted} results in`);
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > stallS * 1000) {
      r.lost += pending.length;
      r.firstErrors.push(`${pending.length} results never arrived (no progress for ${stallS} s), e.g. ${pending[0]!.id}`);
      return;
    }
    await Promise.all(
      ready.map(async (ref) => {
        if (seen.has(ref.id)) r.duplicates++;
        seen.add(ref.id);
        try {
          onValue(index.get(ref.id)!, await get(ref));
          r.completed++;
        } catch (e) {
          r.failed++;
          if (r.firstErrors.length < 5)
            r.firstErrors.push(
              String((e as Error).stack ?? e)
                .split('\n')
                .slice(0, 3)
                .join(' | '),
            );
        }
      }),
    );
    pending = notReady;
  }
}

/** Ray's test_chaos task shape: produced numbers, each combined with its neighbour by another task. */
async function tasksWorkload(r: ChaosReport, total: number, ms: number): Promise<void> {
  const n = Math.floor(total / 2);
  const spread = { schedulingStrategy: 'SPREAD' as const };
  const produced: ObjectRef<number>[] = [];
  for (let i = 0; i < n; i++) {
    produced.push(produce.options(spread).remote(i, ms));
    if (i % 500 === 499) await yieldTurn();
  }
  const combined: ObjectRef<number>[] = [];
  for (let i = 0; i < n; i++) {
    combined.push(combine.options(spread).remote(produced[i]!, produced[(i + n - 1) % n]!, ms));
    if (i % 500 === 499) await yieldTurn();
  }
  r.submitted = 2 * n;
  const check = (want: (i: number) => number) => (i: number, v: number) => {
    if (v === want(i)) r.correct++;
    else {
      r.wrong++;
      if (r.firstErrors.length < 5) r.firstErrors.push(`result ${i}: ${v}, expected ${want(i)}`);
    }
  };
  await collect(
    combined,
    check((i) => expectedCombine(i, (i + n - 1) % n)),
    r,
  );
  await collect(
    produced,
    check((i) => i),
    r,
  );
}

/** Restartable actors, each called `calls / actors` times in order by this driver. */
async function actorsWorkload(r: ChaosReport, numActors: number, calls: number, ms: number, started: () => void): Promise<void> {
  const actors = Array.from({ length: numActors }, () => ChaosActor.options({ schedulingStrategy: 'SPREAD', resources: { chaos_node: 0.001 } }).remote());
  const per = Math.floor(calls / numActors);
  await get(actors.map((a) => a.call.remote(-1, 0)));
  log(`${numActors} actors up`);
  // Faults start once every actor exists (on a busy 2-core machine, 20 actors killed while they are
  // first created may never all come up, which would measure start-up time, not fault tolerance).
  started();
  const refs: ObjectRef<[number, number, string]>[] = [];
  const owner: number[] = [];
  for (let s = 0; s < per; s++) {
    for (let a = 0; a < numActors; a++) {
      refs.push(actors[a]!.call.remote(s, ms));
      owner.push(a);
    }
    if (s % 25 === 24) await yieldTurn();
  }
  r.submitted = refs.length;
  const results: ([number, number, string] | undefined)[] = [];
  const got: boolean[] = [];
  await collect(
    refs,
    (i, v) => {
      results[i] = v;
      got[i] = true;
    },
    r,
  );
  log(`${refs.length} calls done`);
  // Out of scope now: the actors stop and give their resources back (checked by settle()).
  for (const a of actors) kill(a);
  const incarnations = new Set<string>();
  for (let i = 0; i < refs.length; i++) {
    if (!got[i]) continue;
    const v = results[i];
    const seq = Math.floor(i / numActors);
    // Anything but this call's own [seq, prev, incarnation] is wrong (a call once got its actor
    // constructor's result, undefined, when their task ids collided).
    if (!Array.isArray(v) || v[0] !== seq) {
      r.wrong++;
      if (r.firstErrors.length < 5) r.firstErrors.push(`actor ${owner[i]}: call ${seq} returned ${JSON.stringify(v)}`);
      continue;
    }
    incarnations.add(`${owner[i]}:${v[2]}`);
    r.correct++;
    // In one incarnation, the call executed before this one must be an earlier call of this caller.
    if (v[1] >= v[0]) {
      r.orderViolations++;
      if (r.firstErrors.length < 5) r.firstErrors.push(`actor ${owner[i]}: call ${v[0]} ran after call ${v[1]}`);
    }
  }
  r.restartsSeen = incarnations.size - numActors;
  log(`actor incarnations (id@node): ${[...incarnations].join(' ')}`);
}

/** After the last fault: every node alive again and available == total resources; ms it took. */
async function settle(r: ChaosReport, want: number, timeoutS: number): Promise<void> {
  const at = Date.now();
  let said = at;
  try {
    await until(
      poll(async () => {
        const alive = (await nodes()).filter((n) => n.alive).length;
        const [total, avail] = await Promise.all([clusterResources(), availableResources()]);
        const same = Object.entries(total).every(([k, v]) => Math.abs((avail[k] ?? 0) - v) < 1e-9);
        if (Date.now() - said > 5000) {
          said = Date.now();
          log(`settling: ${alive} of ${want} nodes alive; available ${JSON.stringify(avail)} of ${JSON.stringify(total)}`);
        }
        return alive === want && same;
      }),
      timeoutS * 1000 + 50_000,
      'available == total',
    );
    r.settleMs = Date.now() - at;
    r.settled = r.settleMs <= timeoutS * 1000;
  } catch {
    r.settleMs = Date.now() - at;
    const [avail, total] = await Promise.all([availableResources(), clusterResources()]).catch(() => ['?', '?']);
    r.firstErrors.push(`resources never settled: ${JSON.stringify(avail)} of ${JSON.stringify(total)}`);
  }
}

async function main(): Promise<void> {
  const numNodes = Number(opt.nodes);
  const c = new ChaosCluster({ numCpus: Number(opt.cpus), nodeDeathTimeoutS: Number(opt['death-timeout-s']) });
  const r: ChaosReport = {
    workload: opt.workload!,
    nodes: numNodes,
    killEveryS: Number(opt['kill-every']),
    ...{ submitted: 0, completed: 0, correct: 0, wrong: 0, failed: 0, duplicates: 0, lost: 0, orderViolations: 0, restartsSeen: 0 },
    ...{ faults: [], runtimeS: 0, settleMs: -1, settled: false, firstErrors: [], ok: false },
  };
  let initDone = false;
  // Interrupted: reap the cluster (its daemons do not die with this process).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping the cluster`);
      void c.stop(opt.keep).finally(() => process.exit(130));
    });
  }
  try {
    await c.startHead();
    await Promise.all(Array.from({ length: numNodes - 1 }, () => c.addNode()));
    c.attachHere();
    await init({ address: 'auto', namespace: 'chaos' });
    initDone = true;
    await until(async () => (await nodes()).filter((n) => n.alive).length === numNodes, 30_000, `${numNodes} nodes alive`);
    log(`cluster up: ${numNodes} nodes (head ${c.head.nodeId.slice(0, 8)}); workload ${opt.workload}; a ${opt.kill} kill every ${opt['kill-every']} s`);
    const actorNodes = async () => new Set((await listActors()).filter((a) => a.state === 'ALIVE').map((a) => a.nodeId));
    const killer = new Killer(c, Number(opt['kill-every']), opt.kill!, opt.target === 'actors' ? actorNodes : undefined, Number(opt['max-kills']));
    const started = Date.now();
    if (opt.workload === 'actors') await actorsWorkload(r, Number(opt.actors), Number(opt.calls), Number(opt['call-ms']), () => killer.start());
    else {
      killer.start();
      await tasksWorkload(r, Number(opt.tasks), Number(opt['task-ms']));
    }
    r.runtimeS = (Date.now() - started) / 1000;
    await killer.stop();
    r.faults = killer.faults;
    r.firstErrors.push(...killer.errors);
    log(`workload done in ${r.runtimeS.toFixed(1)} s; waiting for the cluster to settle`);
    await settle(r, numNodes, Number(opt['settle-s']));
  } catch (e) {
    r.firstErrors.push(`harness: ${(e as Error).stack ?? e}`);
  } finally {
    if (initDone) await shutdown();
    await c.stop(opt.keep);
  }
  r.ok =
    r.wrong === 0 &&
    r.failed === 0 &&
    r.duplicates === 0 &&
    r.lost === 0 &&
    r.orderViolations === 0 &&
    r.completed === r.submitted &&
    r.settled &&
    r.submitted > 0;
  print(r);
  if (opt.json) writeFileSync(opt.json, JSON.stringify(r, null, 2));
  process.exit(r.ok ? 0 : 1);
}

function print(r: ChaosReport): void {
  const nodeKills = r.faults.filter((f) => f.kind === 'node');
  const max = (xs: (number | undefined)[]) => Math.max(0, ...xs.filter((x): x is number => x !== undefined));
  console.log(`\nchaos report (${r.workload}, ${r.nodes} nodes, a kill every ${r.killEveryS} s)`);
  console.log(`  submitted ${r.submitted}  completed ${r.completed}  correct ${r.correct}  wrong ${r.wrong}  failed ${r.failed}`);
  console.log(`  lost ${r.lost}  duplicates ${r.duplicates}  order violations ${r.orderViolations}  actor restarts seen ${r.restartsSeen}`);
  console.log(`  faults: ${nodeKills.length} node kills, ${r.faults.length - nodeKills.length} worker kills; runtime ${r.runtimeS.toFixed(1)} s`);
  console.log(
    `  node death detected within ${max(nodeKills.map((f) => f.detectedMs))} ms (max); replacement alive within ${max(nodeKills.map((f) => f.replacedMs))} ms (max)`,
  );
  console.log(`  available == total ${r.settled ? 'within' : 'NOT within'} the limit: after ${r.settleMs} ms`);
  for (const e of r.firstErrors) console.log(`  error: ${e}`);
  console.log(`  ${r.ok ? 'OK: every invariant held' : 'FAILED'}`);
}

await main();
