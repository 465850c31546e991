/**
 * The node provider interface (as Ray's `NodeProvider`): a few idempotent methods the autoscaler and
 * `tsray up/down` call — create nodes of a type, terminate one, list the ones not terminated with
 * their tags. Each provider (local processes, SSH hosts, Kubernetes pods) is one file under
 * `providers/`. A node carries the tags below; its tsray node gets the same values as node labels, so
 * the autoscaler matches a provider node to the GCS node it became.
 * @module
 */

/** Tag (and node label) of the cluster's name. */
export const TAG_CLUSTER = 'tsray-cluster';
/** Tag (and node label) of the node type. */
export const TAG_NODE_TYPE = 'tsray-node-type';
/** Tag (and node label) of the provider's node id. */
export const TAG_NODE_ID = 'tsray-provider-id';
/** Tag: `head` or `worker`. */
export const TAG_KIND = 'tsray-node-kind';

/** Where a provider node is. */
export type ProviderNodeStatus = 'launching' | 'up' | 'failed';

/** One node of the provider (not terminated). */
export interface ProviderNode {
  id: string;
  tags: Record<string, string>;
  status: ProviderNodeStatus;
  /** Where it runs (host, pod name, pid). */
  where: string;
  /** Why it failed to start (status `failed`). */
  error?: string;
  /** ms since epoch it was created. */
  createdAt: number;
}

/** A node provider. Every method is idempotent: creating an id that exists or terminating one that is gone does nothing. */
export interface NodeProvider {
  /**
   * Start a node of `nodeType` for each id in `ids` (ids that exist are left alone). Returns at once:
   * the nodes are `launching`, then `up` (joined) or `failed`.
   */
  createNodes(nodeType: string, ids: string[]): Promise<void>;
  /** Stop the node (its tsray processes, or pod) and forget it. */
  terminateNode(id: string): Promise<void>;
  /** Nodes not terminated whose tags include `filter`. */
  nonTerminatedNodes(filter?: Record<string, string>): Promise<ProviderNode[]>;
  /** The node's tags (empty when it is unknown). */
  nodeTags(id: string): Promise<Record<string, string>>;
  /** Stop background launches (the head is stopping); nodes already started stay. */
  close(): Promise<void>;
}
