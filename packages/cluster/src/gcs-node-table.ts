/**
 * The GCS's node table as versioned deltas: every change (a node joins or dies, a node reports new
 * free resources) bumps the table version and stamps the entry; a node gets the whole table once (at
 * registration, or when it asks because a delta did not follow from the version it holds) and then
 * only the entries changed since the last broadcast: at once after a join, at the GCS tick that
 * finds a death, once a second for free resources. An idle cluster
 * costs one empty delta per node per second (the keep-alive the nodes' head-loss check needs), so
 * the GCS's bytes per node do not grow with the number of nodes.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { tsray } from '@tsray/protocol';

/** One node of the table with the versions of its last changes. */
export interface VersionedNode {
  info: tsray.v1.INodeInfo;
  gpuFree: number[];
  /** Table version of its last membership change (join, death, registering again). */
  infoVersion: number;
  /** Table version of its last free-resources change. */
  resVersion: number;
}

/** The table's version counter, its incarnation and the broadcast bookkeeping. */
export class NodeTableLog {
  /** Bumped by every change. */
  version = 0;
  /** This GCS process's incarnation: nodes never apply a delta of another one. */
  readonly epoch = randomBytes(6).toString('hex');
  /** The version the last broadcast delta brought the nodes to. */
  private broadcastVersion = 0;
  private lastBroadcastAt = 0;
  /** A membership change waits for the next broadcast (resource-only changes may wait longer). */
  private membershipChanged = false;
  /** Whole tables and deltas sent (the GCS's stats). */
  readonly sent = { full: 0, deltas: 0, keepAlives: 0 };

  /** A node joined, died or registered again. */
  infoChanged(n: VersionedNode): void {
    n.infoVersion = ++this.version;
    this.membershipChanged = true;
  }

  /** A node reported new free resources. */
  resourcesChanged(n: VersionedNode): void {
    n.resVersion = ++this.version;
  }

  /** The whole table at the current version. */
  full(nodes: readonly VersionedNode[]): tsray.v1.INodeTable {
    this.sent.full++;
    return {
      full: true,
      version: this.version,
      baseVersion: 0,
      epoch: this.epoch,
      nodes: nodes.map((n) => n.info),
      gpuFree: nodes.map((n) => ({ units: n.gpuFree })),
    };
  }

  /**
   * The delta since the last broadcast (membership changes as whole entries, resource-only changes as
   * NodeResources), or undefined (nothing to send yet). A membership change goes out at once; changes
   * of free resources only are coalesced to one delta per `intervalMs`, and with no change at all an
   * empty delta (the keep-alive) goes out every `intervalMs` too. Under load every node's resources
   * change, so this is the cadence that bounds the N entries × N nodes of resource deltas (as the old
   * whole-table broadcast once a second did, with whole entries).
   */
  nextDelta(nodes: Iterable<VersionedNode>, now: number, intervalMs: number): tsray.v1.INodeTable | undefined {
    const base = this.broadcastVersion;
    if (!this.membershipChanged && now - this.lastBroadcastAt < intervalMs) return undefined;
    this.membershipChanged = false;
    const changed: VersionedNode[] = [];
    const resources: tsray.v1.INodeResources[] = [];
    if (this.version !== base) {
      for (const n of nodes) {
        if (n.infoVersion > base) changed.push(n);
        else if (n.resVersion > base) resources.push({ nodeId: n.info.nodeId ?? '', available: n.info.available ?? [], gpuFree: n.gpuFree });
      }
    }
    if (changed.length + resources.length === 0) this.sent.keepAlives++;
    else this.sent.deltas++;
    this.broadcastVersion = this.version;
    this.lastBroadcastAt = now;
    return {
      full: false,
      version: this.version,
      baseVersion: base,
      epoch: this.epoch,
      nodes: changed.map((n) => n.info),
      gpuFree: changed.map((n) => ({ units: n.gpuFree })),
      resources,
    };
  }
}
