/**
 * WorkerPool alone: a fake node and fake worker processes (no sockets, no child processes). Checks
 * idle reuse per GPU set / language / job, the GPU environment of a worker, what a job's end stops,
 * the idle reaper, dead local drivers, and what an exit releases.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { NodeResources } from '@tsray/scheduler';
import type { EnvelopeBody } from '@tsray/protocol';
import type { SubmitSpec } from '../../src/runtime.js';
import { ObjectTable } from '../../src/node/object-table.js';
import { WorkerHandle, type Pool, type TaskRecord } from '../../src/node/records.js';
import type { SpawnWorkerOptions, WorkerProcess } from '../../src/node/worker-process.js';
import { WorkerPool, type WorkerPoolHost, type WorkerPoolOptions } from '../../src/node/worker-pool.js';

/** A worker process that never runs: records how it was started, exits when told. */
class FakeProcess {
  readonly proc = Object.assign(new EventEmitter(), { unref: () => undefined, kill: (signal: string) => this.exit(null, signal) });
  readonly pid: number;
  killedWith: string | undefined;
  constructor(
    readonly opts: SpawnWorkerOptions,
    pid: number,
  ) {
    this.pid = pid;
  }
  exit(code: number | null, signal: string | null): void {
    this.killedWith = signal ?? undefined;
    this.proc.emit('exit', code, signal);
  }
}

function setup(resources: Record<string, number>, opts: Partial<WorkerPoolOptions> = {}) {
  const procs: FakeProcess[] = [];
  const died: { w: WorkerHandle; detail: string }[] = [];
  const gone: { w: WorkerHandle; why: string }[] = [];
  const sent: { w: WorkerHandle; body: EnvelopeBody }[] = [];
  const objects = new ObjectTable(() => undefined);
  const nodePool: Pool = { key: '', resources: new NodeResources(resources), pg: undefined, bundleIndex: -1 };
  const freed: number[] = [];
  const host: WorkerPoolHost = {
    nodeId: 'node-1',
    address: 'ipc:///tmp/fake.sock',
    streamPath: '/tmp/fake.wsock',
    token: 'tok',
    objects,
    store: { arenaFd: 3, capacity: 1 << 20, allocator: { free: (off: number) => void freed.push(off) } as never },
    nodePool,
    runtimeEnvs: { launch: () => ({ env: {}, cwd: undefined, nodeArgs: [] }) as never, hold: () => undefined, drop: () => undefined },
    closed: false,
    send: (w, body) => void sent.push({ w, body }),
    scheduleDispatch: () => undefined,
    forgetWorker: () => undefined,
    workerDied: (w, detail) => void died.push({ w, detail }),
    clientGone: (w, why) => void gone.push({ w, why }),
  };
  const pool = new WorkerPool(host, {
    sessionDir: '/tmp/none',
    python: 'python3',
    logToDriver: false,
    hasGpus: (resources['GPU'] ?? 0) > 0,
    cpuSlots: Math.floor(resources['CPU'] ?? 1),
    spawn: (o) => {
      const p = new FakeProcess(o, 1000 + procs.length);
      procs.push(p);
      return p as unknown as WorkerProcess;
    },
    ...opts,
  });
  return { pool, procs, died, gone, sent, objects, freed, nodePool };
}

/** A queued task of `jobId` needing `resources` (what newLease reads of it). */
function task(jobId: string, resources: Record<string, number>, moduleUrl = 'file:///m.js'): TaskRecord {
  const spec = { taskId: `t-${Math.random()}`, fn: { moduleUrl, key: 'f', name: 'f' } } as unknown as SubmitSpec;
  const { ResourceRequest } = NodeResourcesRequest;
  return {
    spec,
    request: ResourceRequest.fromUnits(new Map(Object.entries(resources).map(([k, v]) => [k, v * 10_000]))),
    jobId,
    pool: undefined,
    env: undefined,
  } as unknown as TaskRecord;
}
const NodeResourcesRequest = await import('@tsray/scheduler');

/** A worker that registered (the pool tells registered workers to stop by message). */
function ready(w: WorkerHandle): WorkerHandle {
  w.state = 'ready';
  return w;
}

describe('WorkerPool', () => {
  it('reuses an idle worker only for the same GPU set, language and job', () => {
    const { pool, procs } = setup({ CPU: 4 });
    const a = pool.newLease('k', task('job-a', { CPU: 1 }))!;
    ready(a.worker);
    pool.releaseLease(a.worker);
    // Same job and kind: the idle worker comes back.
    const again = pool.newLease('k', task('job-a', { CPU: 1 }))!;
    expect(again.worker).toBe(a.worker);
    pool.releaseLease(again.worker);
    // Another job: a new worker, started for that job.
    const other = pool.newLease('k', task('job-b', { CPU: 1 }))!;
    expect(other.worker).not.toBe(a.worker);
    expect(procs.map((p) => p.opts.jobId)).toEqual(['job-a', 'job-b']);
    // Another language (Python): a new worker too.
    const py = pool.newLease('k', task('job-a', { CPU: 1 }, 'py:mod'))!;
    expect(py.worker).not.toBe(a.worker);
    expect(procs[2]!.opts.python).toBe('python3');
    // Every worker it starts gets the node's stream socket (TypeScript and Python alike).
    expect(procs.map((p) => p.opts.env['TSRAY_NODE_STREAM'])).toEqual(['/tmp/fake.wsock', '/tmp/fake.wsock', '/tmp/fake.wsock']);
  });

  it('gives a GPU worker CUDA_VISIBLE_DEVICES of its lease, and a CPU worker on a GPU node an empty one', () => {
    const { pool, procs } = setup({ CPU: 4, GPU: 2 });
    pool.newLease('g', task('j', { CPU: 1, GPU: 1 }));
    pool.newLease('g', task('j', { CPU: 1, GPU: 1 }));
    pool.newLease('c', task('j', { CPU: 1 }));
    expect(procs.map((p) => p.opts.env['CUDA_VISIBLE_DEVICES'])).toEqual(['0', '1', '']);
    // No free GPU left: no lease, nothing started.
    expect(pool.newLease('g', task('j', { CPU: 1, GPU: 1 }))).toBeUndefined();
    expect(procs).toHaveLength(3);
  });

  it("a job's end stops its idle workers and kills its busy ones (their tasks cancelled); other jobs' stay", () => {
    const { pool, procs, sent } = setup({ CPU: 4 });
    const busy = ready(pool.newLease('k', task('job-a', { CPU: 1 }))!.worker);
    const idle = ready(pool.newLease('k', task('job-a', { CPU: 1 }))!.worker);
    pool.releaseLease(idle);
    const t = task('job-a', { CPU: 1 });
    busy.pipeline.push(t);
    const otherJob = ready(pool.newLease('k', task('job-b', { CPU: 1 }))!.worker);
    pool.stopJobWorkers('job-a');
    expect(sent.filter((m) => 'shutdown' in m.body).map((m) => m.w)).toEqual([idle]);
    expect(procs[0]!.killedWith).toBe('SIGKILL');
    expect(t.cancelled).toEqual({ forced: true });
    expect(otherJob.state).toBe('ready');
    expect(procs[2]!.killedWith).toBeUndefined();
  });

  it('stops idle workers above the CPU count once idle past the timeout', () => {
    const { pool, sent } = setup({ CPU: 1 }, { idleWorkerTimeoutMs: 0 });
    const a = ready(pool.newLease('k', task('j', { CPU: 0.5 }))!.worker);
    const b = ready(pool.newLease('k', task('j', { CPU: 0.5 }))!.worker);
    pool.releaseLease(a);
    pool.releaseLease(b);
    a.idleSince = b.idleSince = Date.now() - 10;
    pool.reapIdle();
    // One worker per CPU stays warm; the oldest idle one above it is stopped.
    expect(sent.filter((m) => 'shutdown' in m.body).map((m) => m.w)).toEqual([a]);
  });

  it('reports a local client driver whose process is gone, and a remote one silent past the timeout; a silent local one whose process lives stays', () => {
    const { pool, gone } = setup({ CPU: 1 }, { clientTimeoutMs: 1000 });
    const dead = new WorkerHandle('c-dead', undefined, '', 'driver');
    dead.pid = 2 ** 22 + 12345; // no such pid
    const silent = new WorkerHandle('c-silent', undefined, '', 'driver');
    silent.pid = 2 ** 22 + 12346; // a remote driver's pid is of another machine: not checked
    silent.remote = true;
    silent.lastSeen = Date.now() - 5000;
    const busy = new WorkerHandle('c-busy', undefined, '', 'driver');
    busy.pid = process.pid; // alive, but its heartbeats stopped (synchronous work)
    busy.lastSeen = Date.now() - 5000;
    const alive = new WorkerHandle('c-alive', undefined, '', 'driver');
    alive.pid = process.pid;
    for (const w of [dead, silent, busy, alive]) pool.addClient(w);
    pool.reapIdle();
    expect(gone.map((g) => [g.w.id, g.why])).toEqual([
      ['c-dead', `its process ${dead.pid} exited`],
      ['c-silent', expect.stringMatching(/^silent for \d+ ms$/)],
    ]);
  });

  it("a worker's exit releases its lease, refs, pins and arena allocations, and reports it once", () => {
    const { pool, procs, died, objects, freed, nodePool } = setup({ CPU: 2 });
    const w = ready(pool.newLease('k', task('j', { CPU: 2 }))!.worker);
    expect(nodePool.resources.canFit(task('j', { CPU: 1 }).request)).toBe(false);
    objects.incRef('obj');
    objects.incRef('obj');
    w.heldRefs.add('obj');
    w.allocs.add(4096);
    procs[0]!.exit(1, null);
    procs[0]!.exit(1, null); // a second exit event changes nothing
    expect(died.map((d) => [d.w, d.detail])).toEqual([[w, 'exit code 1']]);
    expect(nodePool.resources.canFit(task('j', { CPU: 2 }).request)).toBe(true);
    expect(objects.get('obj')?.refs).toBe(1);
    expect(freed).toEqual([4096]);
    expect(pool.size).toBe(0);
  });
});
