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
type Command = { op: 'run'; tasks: number } | { op: 'watchCpus'; below: number } | { op: 'stop' };

async function serve(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'run': {
      const start = performance.now();
      // Submitted in slices with a turn of the event loop between them, so they reach the node as
      // several messages: one message of 10,000 tasks keeps the node's loop (and its heartbeat) busy
      // for seconds on a loaded 2-core machine.
      const refs = [];
      for (let i = 0; i < cmd.tasks; i++) {
        refs.push(tiny.options({ schedulingStrategy: 'SPREAD', numCpus: 1 }).remote());
        if (i % 250 === 249) await new Promise((r) => setTimeout(r, 0));
      }
      const where = await get(refs);
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
