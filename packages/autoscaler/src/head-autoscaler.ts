/**
 * The autoscaler inside the head daemon: `tsray start --head --autoscaling-config FILE` (what
 * `tsray up` runs) loads the config, builds its provider and runs the {@link Autoscaler} loop on the
 * head's own view of the GCS until the head stops.
 * @module
 */
import { Autoscaler, type ClusterStateSource } from './autoscaler.js';
import { loadClusterConfig } from './config.js';
import { logger } from './logger.js';
import { makeProvider } from './providers/index.js';

/** What the head hands its autoscaler. */
export interface HeadAutoscalerOptions {
  /** The cluster config file (validated again here). */
  configPath: string;
  /** The GCS address nodes join. */
  gcsAddress: string;
  /** The token file on this machine (the local provider's nodes read it). */
  tokenFile: string;
  /** The tsray CLI command on this machine, quoted for sh. */
  tsray: string;
  /** The head's state (nodes, demand, tasks, objects, placement groups, requested resources). */
  source: ClusterStateSource;
  intervalMs?: number;
}

/** Start the head's autoscaler. @throws ClusterConfigError when the config does not validate. */
export function startHeadAutoscaler(opts: HeadAutoscalerOptions): Autoscaler {
  const config = loadClusterConfig(opts.configPath);
  const provider = makeProvider(config, { join: { headAddress: opts.gcsAddress, tokenFile: opts.tokenFile }, tsray: opts.tsray });
  const a = new Autoscaler(config, provider, opts.source, opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {});
  a.start();
  logger().info({ cluster: config.cluster_name, provider: config.provider.type, intervalMs: a.intervalMs }, 'autoscaler started');
  return a;
}
