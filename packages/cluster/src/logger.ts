/**
 * Library logs of the cluster package: children of the core's one pino root (stderr; level from
 * `init({logLevel})` / TSRAY_LOG_LEVEL), each line tagged with its `component`.
 * @internal
 */
import { componentLogger } from '@tsray/core/internal';

/** The cluster's logger (`component: "cluster"`: GCS, daemon, CLI). */
export function logger(): ReturnType<typeof componentLogger> {
  return componentLogger('cluster');
}

/** A cluster part's own logger (`component: "cluster.<part>"`, e.g. `cluster.jobs`). */
export function partLogger(part: string): ReturnType<typeof componentLogger> {
  return componentLogger(`cluster.${part}`);
}
