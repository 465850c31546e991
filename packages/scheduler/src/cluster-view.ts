import { DuplicateNodeError, ResourceValidationError, UnknownNodeError } from './errors.js';
import type { NodeResources } from './node-resources.js';
import { NodeClassIndex } from './node-classes.js';

/** One node as the scheduler sees it. */
export interface NodeEntry {
  /** Node id (also its implicit `ray.io/node-id` label). */
  readonly nodeId: string;
  /** Its resource view; allocate and release on it directly. */
  readonly resources: NodeResources;
  /** False once the node is marked dead; dead nodes are never chosen. */
  readonly alive: boolean;
}

/** @internal Mutable entry. */
export interface MutableNodeEntry extends NodeEntry {
  alive: boolean;
}

/** @internal Scratch buffers and derived lists of a view, rebuilt lazily when membership changes. */
export interface ViewIndex {
  /** Alive nodes in insertion order. */
  readonly all: MutableNodeEntry[];
  /** Alive nodes without GPUs. */
  readonly nonGpu: MutableNodeEntry[];
  /** Alive nodes sorted by id (SPREAD round robin). */
  readonly sorted: MutableNodeEntry[];
  /** Slot (index in `all`) of each alive node id. */
  readonly slotOf: ReadonlyMap<string, number>;
  /** Alive nodes grouped by resource state (DEFAULT policy), built on first use by {@link ClusterView.classIndex}. */
  classes: NodeClassIndex | undefined;
}

/**
 * The scheduler's table of nodes: node id -> resources, liveness and labels. Pure data, no I/O; the
 * caller adds nodes when they register and marks them dead when they fail.
 */
export class ClusterView {
  private readonly byId = new Map<string, MutableNodeEntry>();
  private idx: ViewIndex | undefined;
  /** @internal Round-robin position of the SPREAD policy (index into the id-sorted alive nodes). */
  spreadCursor = 0;

  /**
   * Adds a node. @throws DuplicateNodeError when the id is already present;
   * ResourceValidationError when the id is not a non-empty string.
   */
  addNode(nodeId: string, resources: NodeResources, opts?: { alive?: boolean }): void {
    if (typeof nodeId !== 'string' || nodeId === '') throw new ResourceValidationError('nodeId', 'nodeId must be a non-empty string');
    if (this.byId.has(nodeId)) throw new DuplicateNodeError(nodeId);
    this.byId.set(nodeId, { nodeId, resources, alive: opts?.alive ?? true });
    this.invalidate();
  }

  /** Removes a node; returns false when it was not there. */
  removeNode(nodeId: string): boolean {
    const had = this.byId.delete(nodeId);
    if (had) this.invalidate();
    return had;
  }

  /** Marks a node alive or dead. @throws UnknownNodeError */
  setAlive(nodeId: string, alive: boolean): void {
    const e = this.byId.get(nodeId);
    if (!e) throw new UnknownNodeError(nodeId);
    if (e.alive !== alive) {
      e.alive = alive;
      this.invalidate();
    }
  }

  /** The node's resources, or undefined. */
  get(nodeId: string): NodeResources | undefined {
    return this.byId.get(nodeId)?.resources;
  }

  /** The node's entry, or undefined. */
  entry(nodeId: string): NodeEntry | undefined {
    return this.byId.get(nodeId);
  }

  /** True when the node is present and alive. */
  isAlive(nodeId: string): boolean {
    return this.byId.get(nodeId)?.alive ?? false;
  }

  /** Every node id (alive or not), in insertion order. */
  nodeIds(): string[] {
    return [...this.byId.keys()];
  }

  /** Every entry (alive or not), in insertion order. */
  entries(): NodeEntry[] {
    return [...this.byId.values()];
  }

  /** Number of alive nodes. */
  get aliveCount(): number {
    return this.index().all.length;
  }

  /** Drops the derived lists (membership or liveness changed); the class index stops watching the nodes. */
  private invalidate(): void {
    this.idx?.classes?.detach();
    this.idx = undefined;
  }

  /** @internal The derived lists, rebuilt after membership or liveness changed. */
  index(): ViewIndex {
    if (this.idx) return this.idx;
    const all = [...this.byId.values()].filter((e) => e.alive);
    const nonGpu = all.filter((e) => !e.resources.hasGpus());
    const sorted = [...all].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
    this.idx = {
      all,
      nonGpu,
      sorted,
      slotOf: new Map(all.map((e, i) => [e.nodeId, i])),
      classes: undefined,
    };
    if (this.spreadCursor >= sorted.length) this.spreadCursor = 0;
    return this.idx;
  }

  /**
   * @internal The alive nodes grouped by resource state (slot i = `index().all[i]`), brought up to date
   * with every allocate/release since the last call. Built on first use; it watches the nodes until the
   * view's membership or liveness changes.
   */
  classIndex(): NodeClassIndex {
    const ix = this.index();
    const cx = (ix.classes ??= new NodeClassIndex(ix.all.map((e) => e.resources)));
    cx.refresh();
    return cx;
  }
}
