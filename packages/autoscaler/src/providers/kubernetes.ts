/**
 * The `kubernetes` provider: each worker node is a pod the head's autoscaler creates and deletes by
 * name (so scale-down removes exactly the idle node it chose, as KubeRay manages pods directly).
 * Pods carry the node tags as labels; a pod's phase is its node's status (Pending → launching,
 * Running → up, Failed/Succeeded → failed).
 * @module
 */
import type { ClusterConfig } from '../config.js';
import type { K8sApi } from '../k8s-api.js';
import { podName, workerPod } from '../k8s-manifests.js';
import { type NodeProvider, type ProviderNode, TAG_CLUSTER, TAG_NODE_ID } from '../node-provider.js';

/** Worker pods; see the module comment. */
export class KubernetesProvider implements NodeProvider {
  private readonly created = new Map<string, number>();

  constructor(
    private readonly config: ClusterConfig,
    private readonly api: () => Promise<K8sApi>,
  ) {}

  private get namespace(): string {
    return this.config.provider.type === 'kubernetes' ? this.config.provider.namespace : 'default';
  }

  async createNodes(nodeType: string, ids: string[]): Promise<void> {
    const api = await this.api();
    for (const id of ids) {
      await api.create(workerPod(this.config, nodeType, id));
      this.created.set(id, Date.now());
    }
  }

  async terminateNode(id: string): Promise<void> {
    await (await this.api()).delete('Pod', this.namespace, podName(id));
    this.created.delete(id);
  }

  async nonTerminatedNodes(filter: Record<string, string> = {}): Promise<ProviderNode[]> {
    const selector = Object.entries({ [TAG_CLUSTER]: this.config.cluster_name, ...filter })
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const pods = await (await this.api()).listPods(this.namespace, selector);
    return pods
      .filter((p) => p.labels[TAG_NODE_ID])
      .map((p) => {
        const id = p.labels[TAG_NODE_ID]!;
        const status = p.phase === 'Running' ? 'up' : p.phase === 'Pending' || p.phase === 'Unknown' ? 'launching' : 'failed';
        return {
          id,
          tags: p.labels,
          status,
          where: `pod ${p.name}`,
          createdAt: this.created.get(id) ?? 0,
          ...(status === 'failed' ? { error: `pod ${p.name} ${p.phase}${p.message ? `: ${p.message}` : ''}` } : {}),
        };
      });
  }

  async nodeTags(id: string): Promise<Record<string, string>> {
    return (await this.nonTerminatedNodes({ [TAG_NODE_ID]: id }))[0]?.tags ?? {};
  }

  async close(): Promise<void> {}
}
