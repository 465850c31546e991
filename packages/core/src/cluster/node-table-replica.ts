/**
 * A node's copy of the GCS's node table, kept by versioned deltas: a whole table replaces it; a delta
 * applies when it follows from the version held (its base at most that version, same GCS
 * incarnation); otherwise the node has missed one and must ask for the whole table. Resource-only
 * entries of a delta are merged into the entry held, so the node runtime always sees whole entries.
 * @internal
 */
import type { tsray } from '@tsray/protocol';

/** What applying one NodeTable message did. */
export type ReplicaUpdate =
  /** Applied: the entries that changed (whole entries, `gpuFree` parallel), possibly none. */
  | { kind: 'applied'; changed: tsray.v1.INodeTable }
  /** The delta does not follow from what this node holds: ask for the whole table. */
  | { kind: 'missed'; held: number; base: number };

/** The node table a node holds. */
export class NodeTableReplica {
  /** The version held (0: none yet). */
  version = 0;
  private epoch = '';
  private readonly nodes = new Map<string, { info: tsray.v1.INodeInfo; gpuFree: number[] }>();

  /** Apply a NodeTable from the GCS. */
  apply(t: tsray.v1.INodeTable): ReplicaUpdate {
    const version = Number(t.version ?? 0);
    if (t.full) {
      this.nodes.clear();
      this.epoch = t.epoch ?? '';
      this.version = version;
      return { kind: 'applied', changed: this.merge(t) };
    }
    const base = Number(t.baseVersion ?? 0);
    if (this.version === 0 || (t.epoch ?? '') !== this.epoch || base > this.version) return { kind: 'missed', held: this.version, base };
    // Older than what is held (sent before the whole table this node asked for): nothing new in it.
    if (version < this.version) return { kind: 'applied', changed: { nodes: [], gpuFree: [] } };
    this.version = version;
    return { kind: 'applied', changed: this.merge(t) };
  }

  /** The whole table held, as a NodeTable (`gpuFree` parallel to `nodes`). */
  table(): tsray.v1.INodeTable {
    const nodes = [...this.nodes.values()];
    return { nodes: nodes.map((n) => n.info), gpuFree: nodes.map((n) => ({ units: n.gpuFree })) };
  }

  /** The entries held (whole entries), for tests and the state snapshot. */
  entries(): tsray.v1.INodeInfo[] {
    return [...this.nodes.values()].map((n) => n.info);
  }

  /** Take the entries of `t` (whole ones and resource-only ones); returns the changed entries whole. */
  private merge(t: tsray.v1.INodeTable): tsray.v1.INodeTable {
    const out: tsray.v1.INodeTable = { nodes: [], gpuFree: [] };
    const changed = (id: string) => {
      const n = this.nodes.get(id)!;
      out.nodes!.push(n.info);
      out.gpuFree!.push({ units: n.gpuFree });
    };
    const nodes = t.nodes ?? [];
    for (let i = 0; i < nodes.length; i++) {
      const info = nodes[i]!;
      const id = info.nodeId ?? '';
      this.nodes.set(id, { info, gpuFree: (t.gpuFree?.[i]?.units ?? []).map(Number) });
      changed(id);
    }
    for (const r of t.resources ?? []) {
      const id = r.nodeId ?? '';
      const held = this.nodes.get(id);
      // Resources of a node this table never named cannot come after a whole table; skip them.
      if (!held) continue;
      held.info = { ...held.info, available: r.available ?? [] };
      held.gpuFree = (r.gpuFree ?? []).map(Number);
      changed(id);
    }
    return out;
  }
}
