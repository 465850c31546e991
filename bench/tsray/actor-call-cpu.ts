/**
 * CPU per actor call, split by process: a client actor makes B batches of 5,000 calls to a server
 * actor (the 1:n pattern of the core suite, one server), and this prints calls/s and the CPU time per
 * call of the node (this process: driver + in-process node, `process.cpuUsage()`) and of the workers
 * (`/proc/<pid>/stat` of its children). CPU per call is steadier than a rate on a loaded machine, so it
 * is the number to compare two builds with (BENCHMARKS.md, issue #15). Workers exit on SIGTERM so that
 * `node --cpu-prof` writes their profiles too (workers inherit the driver's flags).
 *
 * Run: B=30 node --import tsx bench/tsray/actor-call-cpu.ts   [--cpu-prof --cpu-prof-dir=DIR before --import]
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
  constructor(readonly s: ActorHandle<Server>) {}
  batch(n: number): Promise<void> {
    const r: ReturnType<ActorHandle<Server>['v']['remote']>[] = [];
    for (let i = 0; i < n; i++) r.push(this.s.v.remote());
    return get(r).then(() => undefined);
  }
}
export const RC = actor(Client, { numCpus: 0 });

function childrenCpuMs(): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(f[1]) !== process.pid) continue;
      total += (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      // the process exited meanwhile
    }
  }
  return total;
}

if (isMain(import.meta)) {
  const B = Number(process.env.B ?? 20);
  await init({ numCpus: 2 });
  const s = RS.remote();
  const c = RC.remote(s);
  for (let i = 0; i < 4; i++) await get(c.batch.remote(5000));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const k0 = childrenCpuMs();
  for (let i = 0; i < B; i++) await get(c.batch.remote(5000));
  const dt = performance.now() - t0;
  const c1 = process.cpuUsage(c0);
  const k1 = childrenCpuMs() - k0;
  const n = B * 5000;
  console.log(
    `1:n calls: ${((n * 1000) / dt).toFixed(0)} calls/s; CPU per call: node ${((c1.user + c1.system) / n).toFixed(1)} us, workers ${((k1 * 1000) / n).toFixed(1)} us`,
  );
  await shutdown();
}
// In workers (they import this module): exit on SIGTERM so that --cpu-prof writes the profile.
if (!isMain(import.meta)) process.once('SIGTERM', () => process.exit(0));
