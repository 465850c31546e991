/**
 * `tsray status` / `tsray list` for a cluster started with `init()` (or by `tsray serve` without
 * `--address`) on this machine: such a cluster has no HTTP API, so the CLI attaches to its node as a
 * client driver (`init({ address: 'auto' })`, token from the session's token file, as Ray's
 * `ray status` connects to the local cluster), reads the state API, and detaches.
 * @module
 */
import { init, listActors, listJobs, listObjects, listPlacementGroups, listTasks, nodes, pendingDemand, shutdown } from '@tsray/core';
import type { ClusterStatus, JobInfo } from '../contracts.js';
import type { StateLists } from '../http/client.js';
import { readPrivateFile } from '@tsray/core/internal';
import { pidAlive } from './session.js';

/** What `status` and `list` read: the head's HTTP API, or an embedded cluster's node. */
export interface StateSource {
  clusterStatus(): Promise<ClusterStatus>;
  listState<K extends keyof StateLists>(kind: K): Promise<StateLists[K][]>;
  listJobs(): Promise<JobInfo[]>;
  /** Detach (embedded clusters only). */
  close?(): Promise<void>;
}

/** The running embedded cluster of this machine (`$TMPDIR/tsray-<uid>/current.json` of a live `init()` driver), if any. */
export function embeddedCluster(): { address: string; pid: number } | undefined {
  try {
    // Only from this user's private runtime directory (see core's runtime-dir.ts).
    const cur = JSON.parse(readPrivateFile('current.json') ?? '') as { address?: string; pid?: number; gcsAddress?: string };
    // A daemon's entry carries its GCS address; those are found through their ready files instead.
    if (!cur.address || !cur.pid || cur.gcsAddress || !pidAlive(cur.pid)) return undefined;
    return { address: cur.address, pid: cur.pid };
  } catch {
    return undefined;
  }
}

/** Attach to the embedded cluster as a client driver; `close()` detaches. */
export async function embeddedStateSource(): Promise<StateSource> {
  await init({ address: 'auto', namespace: '_tsray_cli', logLevel: 'error' });
  const lists: { [K in keyof StateLists]: () => Promise<StateLists[K][]> } = {
    nodes: () => nodes(),
    actors: () => listActors(),
    tasks: () => listTasks(),
    objects: () => listObjects(),
    placement_groups: () => listPlacementGroups(),
    // No head: task events are gathered by the head only.
    timeline: async () => [],
  };
  return {
    clusterStatus: async () => ({ nodes: await nodes(), pendingDemand: await pendingDemand(), placementGroups: await listPlacementGroups() }),
    listState: <K extends keyof StateLists>(kind: K) => lists[kind]() as Promise<StateLists[K][]>,
    listJobs: async () => (await listJobs()).map((j) => ({ ...j, metadata: {} }) as JobInfo),
    close: () => shutdown(),
  };
}
