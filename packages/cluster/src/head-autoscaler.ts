/**
 * The head's autoscaler hook: with `tsray start --head --autoscaling-config FILE` (what `tsray up`
 * runs), the head daemon starts @tsray/autoscaler's loop on its own view of the GCS — nodes, pending
 * demand, tasks, actors, objects and placement groups from its state provider, and the latest
 * `requestResources()` bundles from the GCS's KV.
 * @module
 */
import { fileURLToPath } from 'node:url';
import { type Autoscaler, type ClusterStateSource, type Shape, sh, startHeadAutoscaler } from '@tsray/autoscaler';
import { REQUEST_RESOURCES_KEY } from '@tsray/core/internal';
import type { StateProvider } from './contracts.js';
import type { GcsServer } from './gcs.js';

/** The latest `requestResources()` bundles, from the GCS's KV (empty when none). */
async function requested(gcs: GcsServer): Promise<Shape[]> {
  const r = (await gcs.service.serve('head', { kvGet: { key: REQUEST_RESOURCES_KEY } })) as { value?: { value?: Uint8Array | null } };
  const bytes = r.value?.value;
  if (!bytes || bytes.length === 0) return [];
  try {
    const doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as { bundles?: Shape[] };
    return Array.isArray(doc.bundles) ? doc.bundles : [];
  } catch {
    return [];
  }
}

/** Start the autoscaler of `configPath` on this head. @throws ClusterConfigError when the config does not validate. */
export function startAutoscalerOnHead(configPath: string, gcs: GcsServer, state: StateProvider, gcsAddress: string, tokenFile: string): Autoscaler {
  const source: ClusterStateSource = {
    nodes: () => state.nodes(),
    pendingDemand: async () => (await state.status()).pendingDemand,
    placementGroups: () => state.placementGroups(),
    tasks: () => state.tasks(),
    actors: () => state.actors(),
    objects: () => state.objects(),
    requestedResources: () => requested(gcs),
  };
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  return startHeadAutoscaler({ configPath, gcsAddress, tokenFile, tsray: [process.execPath, cli].map(sh).join(' '), source });
}
