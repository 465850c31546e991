/**
 * The provider of a config (`provider.type`), built for the head's autoscaler (which launches) or for
 * `tsray down` (which only terminates).
 * @module
 */
import type { ClusterConfig } from '../config.js';
import { clusterStateDir } from '../head-record.js';
import type { JoinTarget } from '../launch-command.js';
import type { NodeProvider } from '../node-provider.js';
import { LocalProvider } from './local.js';
import { SshProvider } from './ssh.js';
import { KubernetesProvider } from './kubernetes.js';
import { clientNodeApi, type K8sApi } from '../k8s-api.js';

/** How the provider starts tsray on a node. */
export interface ProviderContext {
  /** The head to join (absent: terminate only). */
  join?: JoinTarget;
  /** The tsray CLI command on this machine (local provider). */
  tsray: string;
  /** The Kubernetes API (default: @kubernetes/client-node with the default kubeconfig). */
  k8s?: () => Promise<K8sApi>;
}

/** The provider named by `config.provider.type`. */
export function makeProvider(config: ClusterConfig, ctx: ProviderContext): NodeProvider {
  switch (config.provider.type) {
    case 'local':
      return new LocalProvider(config, { stateDir: clusterStateDir(config.cluster_name), tsray: ctx.tsray, ...(ctx.join ? { join: ctx.join } : {}) });
    case 'ssh':
      return new SshProvider(config, { stateDir: clusterStateDir(config.cluster_name), ...(ctx.join ? { join: ctx.join } : {}) });
    case 'kubernetes': {
      let api: Promise<K8sApi> | undefined;
      return new KubernetesProvider(config, ctx.k8s ?? (() => (api ??= clientNodeApi())));
    }
  }
}
