/**
 * The scale bench's driver (a separate process, attached to the cluster's first node through
 * TMPDIR): runs batches of tiny SPREAD tasks and watches its node's cluster view for a death, on
 * commands from bench/scale/scale.ts over IPC. Tasks are defined at top level (workers import this file).
 */
import { clusterResources, get, getRuntimeContext, init, remote, shutdown } from '@tsray/core';

/** The smallest task: says where it ran. */
export const tiny = remote(function tiny(): string {
  return getRuntimeContext().nodeId;
});

/** A command from the bench. */
type Command = { op: 'run'; tasks: number; wave: number } | { op: 'watchCpus'; below: number } | { op: 'stop' };

async function serve(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'run': {
      const start = performance.now();
      // In waves of `wave` tasks (each waited for): with 10,000 queued at once the driver's node
      // stalled for over 30 s on this loaded 2-core machine (no heartbeat: declared dead).
      const where: string[] = [];
      for (let done = 0; done < cmd.tasks; done += cmd.wave) {
        const n = Math.min(cmd.wave, cmd.tasks - done);
        where.push(...(await get(Array.from({ length: n }, () => tiny.options({ schedulingStrategy: 'SPREAD', numCpus: 1 }).remote()))));
      }
      return { ms: performance.now() - start, nodes: new Set(where).size };
    }
    case 'watchCpus': {
      // This node's view of the cluster (live nodes' totals): the death is seen when the CPUs drop.
      for (;;) {
        const cpus = (await clusterResources())['CPU'] ?? 0;
        if (cpus < cmd.below) return { at: Date.now(), cpus };
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    case 'stop':
      await shutdown();
      process.exit(0);
  }
}

// Only the process the bench started (workers import this file too, without this variable).
if (process.env['TSRAY_SCALE_DRIVER'] === '1' && process.send) {
  await init({ address: 'auto', namespace: 'scale' });
  process.on('message', (m: Command) => {
    serve(m).then(
      (r) => process.send!({ ok: r }),
      (e: Error) => process.send!({ error: String(e?.stack ?? e) }),
    );
  });
  process.on('disconnect', () => void shutdown().finally(() => process.exit(0)));
  process.send({ ready: (await clusterResources())['CPU'] ?? 0 });
}
