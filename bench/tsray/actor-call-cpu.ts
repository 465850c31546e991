/**
 * CPU per actor call, split by process: a client actor makes B batches of 5,000 calls to a server
 * actor (the 1:n pattern of the core suite, one server), and this prints calls/s and the CPU time per
 * call of the node (this process: driver + in-process node, `process.cpuUsage()`) and of the workers
 * (`/proc/<pid>/stat` of its children). CPU per call is steadier than a rate on a loaded machine, so it
 * is the number to compare two builds with (BENCHMARKS.md, issue #15). Workers exit on SIGTERM so that
 * `node --cpu-prof` writes their profiles too (workers inherit the driver's flags).
 *
 * S servers (default 1; the core suite's 1_n uses cores / 2), each getting 5,000 calls per batch. The node's
 * main thread is also counted alone: ZeroMQ's I/O threads run beside it on a machine with cores to spare.
 *
 * Run: B=30 S=1 node --import tsx bench/tsray/actor-call-cpu.ts   [--cpu-prof --cpu-prof-dir=DIR before --import]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { actor, get, init, isMain, shutdown, type ActorHandle } from '@tsray/core';

class Server {
  v(): string {
    return 'ok';
  }
}
export const RS = actor(Server, { numCpus: 0 });
class Client {
  constructor(readonly servers: ActorHandle<Server>[]) {}
  /** n calls to each server (the core suite's 1_n_actor_calls_async pattern). */
  batch(n: number): Promise<void> {
    const r: ReturnType<ActorHandle<Server>['v']['remote']>[] = [];
    for (const s of this.servers) for (let i = 0; i < n; i++) r.push(s.v.remote());
    return get(r).then(() => undefined);
  }
}
export const RC = actor(Client, { numCpus: 0 });

/** CPU ms of this process's main thread alone (the node's event loop; ZeroMQ's I/O threads excluded). */
function mainThreadCpuMs(): number {
  const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** CPU ms of this process's children (the workers), and of each child's main thread by pid. */
function childrenCpuMs(): { total: number; mainThreads: Map<string, number> } {
  let total = 0;
  const mainThreads = new Map<string, number>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(f[1]) !== process.pid) continue;
      total += (Number(f[11]) + Number(f[12])) * 10;
      const t = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      mainThreads.set(pid, (Number(t[11]) + Number(t[12])) * 10);
    } catch {
      // the process exited meanwhile
    }
  }
  return { total, mainThreads };
}

/** The largest main-thread CPU ms between two samples (the client actor's worker: the busiest). */
function busiestMainThreadMs(before: Map<string, number>, after: Map<string, number>): number {
  let most = 0;
  for (const [pid, ms] of after) most = Math.max(most, ms - (before.get(pid) ?? 0));
  return most;
}

if (isMain(import.meta)) {
  const B = Number(process.env.B ?? 20);
  const S = Number(process.env.S ?? 1);
  await init({ numCpus: 2 });
  const c = RC.remote(Array.from({ length: S }, () => RS.remote()));
  for (let i = 0; i < 4; i++) await get(c.batch.remote(5000));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const m0 = mainThreadCpuMs();
  const k0 = childrenCpuMs();
  for (let i = 0; i < B; i++) await get(c.batch.remote(5000));
  const dt = performance.now() - t0;
  const c1 = process.cpuUsage(c0);
  const m1 = mainThreadCpuMs() - m0;
  const kEnd = childrenCpuMs();
  const k1 = kEnd.total - k0.total;
  const busiest = busiestMainThreadMs(k0.mainThreads, kEnd.mainThreads);
  const n = B * 5000 * S;
  console.log(
    `1:n calls (${S} server(s)): ${((n * 1000) / dt).toFixed(0)} calls/s; CPU per call: node ${((c1.user + c1.system) / n).toFixed(1)} us (main thread ${((m1 * 1000) / n).toFixed(1)} us), workers ${((k1 * 1000) / n).toFixed(1)} us (busiest main thread ${((busiest * 1000) / n).toFixed(1)} us)`,
  );
  await shutdown();
}
// In workers (they import this module): exit on SIGTERM so that --cpu-prof writes the profile.
if (!isMain(import.meta)) process.once('SIGTERM', () => process.exit(0));
