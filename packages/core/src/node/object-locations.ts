/**
 * Where this node fetches objects it holds a reference to but has no copy of, and that no task of its
 * own will produce: refs nested in an object that arrived from a peer node before their own data existed
 * there (a task of that node still running, or a worker's large `put` sealed after the reply holding it).
 * The node subscribes to each such object at the peer it came from; if that peer dies first, the object
 * is sealed here as an `ObjectLostError` that names it, the task that made it (if any) and why it cannot
 * be rebuilt: its owner is the dead node, which held its lineage (Ray's rule: no owner failover), and a
 * `put` object has no lineage at all.
 * @internal
 */
import { logger } from '../logger.js';
import type { StoredObject } from './object-table.js';
import { errorObject, taskIdOf } from './node-support.js';

/** What the object locations need from their node. */
export interface ObjectLocationsHost {
  /** True when this node has the object's data or will have it (a task of its own produces it). */
  hasOrMakes(id: string): boolean;
  /** Ask node `nodeId` for `ids` (hold them there and send them here when sealed). */
  subscribeAt(nodeId: string, ids: string[]): void;
  /** Seal an object here (an error object for a lost one). */
  seal(id: string, data: StoredObject): void;
}

/** Objects this node waits for from other nodes, by node. */
export class ObjectLocations {
  private readonly byNode = new Map<string, Set<string>>();
  private readonly where = new Map<string, string>();

  constructor(private readonly host: ObjectLocationsHost) {}

  /** Number of objects waited for (for tests). */
  get size(): number {
    return this.where.size;
  }

  /**
   * An object arrived from `nodeId` holding refs to `contained`: subscribe at that node to those this
   * node has no copy of (before this node lets that node drop the containing object, which holds them).
   */
  arrivedFrom(nodeId: string, contained: readonly string[]): void {
    const missing = contained.filter((c) => isObjectId(c) && !this.where.has(c) && !this.host.hasOrMakes(c));
    if (missing.length === 0) return;
    let set = this.byNode.get(nodeId);
    if (!set) this.byNode.set(nodeId, (set = new Set()));
    for (const c of missing) {
      set.add(c);
      this.where.set(c, nodeId);
    }
    this.host.subscribeAt(nodeId, missing);
  }

  /** An object waited for arrived (or was sealed here otherwise). */
  sealed(id: string): void {
    const node = this.where.get(id);
    if (node === undefined) return;
    this.where.delete(id);
    this.byNode.get(node)?.delete(id);
  }

  /** Node `nodeId` died: every object waited for from it is lost; seal each as an `ObjectLostError`. */
  nodeDied(nodeId: string, reason: string): void {
    const set = this.byNode.get(nodeId);
    this.byNode.delete(nodeId);
    for (const id of set ?? []) {
      this.where.delete(id);
      const why = lostReason(id, nodeId, reason);
      logger().warn({ object: id, node: nodeId }, why);
      this.host.seal(id, errorObject({ type: 'ObjectLostError', objectId: id, reason: why }));
    }
  }
}

/**
 * True for ids of objects with data: task returns and generator items (`<taskId>.<n>`, `<taskId>.g<n>`)
 * and puts (`p…`, no dot). Refs also name actors (a handle counts as a ref to its actor id) and
 * placement groups' `<pgId>.ready`; those are never fetched from a peer.
 */
export function isObjectId(id: string): boolean {
  if (id.startsWith('t')) return /\.g?\d+$/.test(id);
  return id.startsWith('p') && !id.includes('.');
}

/** Why object `id`, whose only copy was to come from dead node `nodeId`, cannot be rebuilt. */
export function lostReason(id: string, nodeId: string, reason: string): string {
  const task = taskIdOf(id);
  const dead = `node ${nodeId} died (${reason}) before it sent the object`;
  if (task === undefined) return `${dead}; it was created by put() there, and put objects cannot be rebuilt (they have no lineage)`;
  return `${dead}; it was made by task ${task}, owned by that node, and its lineage died with its owner (not rebuilt)`;
}
