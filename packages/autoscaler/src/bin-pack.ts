/**
 * The autoscaler's decision, as a pure function (unit tested): which nodes to add so the pending
 * demand fits, and which idle nodes to remove. Demand is bin-packed first onto what the cluster has
 * free (launching nodes counted whole), then onto new nodes of the configured types — as Ray's
 * autoscaler v2 does: tasks and actors one shape at a time, placement groups by strategy
 * (STRICT_SPREAD on distinct nodes, STRICT_PACK on one node, PACK/SPREAD bundle by bundle), and
 * `requestResources()` bundles against the cluster's totals (whether used or not).
 * @module
 */
import { type ClusterConfig, typeMax } from './config.js';

/** Resources by name. */
export type Shape = Record<string, number>;

/** Work waiting: `count` of one shape (tasks, actors). */
export interface ShapeDemand {
  shape: Shape;
  count: number;
}

/** A placement group waiting for its bundles. */
export interface GroupDemand {
  bundles: Shape[];
  strategy: string;
}

/** A node the plan may put work on. */
export interface CapacityNode {
  /** Node id, provider id, or `new:<type>:<n>`. */
  id: string;
  /** Its node type (undefined: not one of the config's, e.g. started by hand). */
  type: string | undefined;
  /** What it has free now (a launching node: its type's resources). */
  free: Shape;
  /** What it has in all (for requestResources). */
  total: Shape;
}

/** What the plan reads. */
export interface PlanInput {
  config: ClusterConfig;
  /** Alive and launching nodes, the head included. */
  nodes: CapacityNode[];
  /** Worker nodes per type that exist or are launching (the head not counted). */
  workers: Record<string, number>;
  /** How many are launching now (for the upscaling speed). */
  launching: number;
  shapes: ShapeDemand[];
  groups: GroupDemand[];
  /** requestResources() bundles. */
  requested: Shape[];
}

/** The plan: nodes to launch by type, and why; demand that no node type can ever hold. */
export interface Plan {
  launch: Record<string, number>;
  /** One line per decision (logged and shown in `tsray status`). */
  reasons: string[];
  /** Shapes no node type can hold, or that the limits (max_workers) leave out. */
  unfulfilled: string[];
}

const EPS = 1e-9;

function fits(shape: Shape, free: Shape): boolean {
  for (const [k, v] of Object.entries(shape)) {
    if (v <= EPS) continue;
    if ((free[k] ?? 0) + EPS < v) return false;
  }
  return true;
}

function take(shape: Shape, free: Shape): void {
  for (const [k, v] of Object.entries(shape)) if (v > 0) free[k] = (free[k] ?? 0) - v;
}

function sum(shapes: Shape[]): Shape {
  const out: Shape = {};
  for (const s of shapes) for (const [k, v] of Object.entries(s)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** `{CPU: 1, slot: 2}` for logs. */
export function shapeText(s: Shape): string {
  return `{${Object.entries(s)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ')}}`;
}

/** A planner over one round: the capacity it may still use, and the nodes it added. */
class Packer {
  readonly launch: Record<string, number> = {};
  readonly reasons: string[] = [];
  readonly unfulfilled: string[] = [];
  private readonly workers: Record<string, number>;
  private total: number;
  private budget: number;
  private seq = 0;

  constructor(
    private readonly config: ClusterConfig,
    readonly nodes: CapacityNode[],
    workers: Record<string, number>,
    launching: number,
  ) {
    this.workers = { ...workers };
    this.total = Object.values(workers).reduce((a, b) => a + b, 0);
    const running = Math.max(1, this.total - launching);
    // As Ray: at most max(5, upscaling_speed × nodes) launching at once.
    this.budget = Math.max(5, Math.ceil(config.upscaling_speed * running)) - launching;
  }

  /** Worker types (head type only when it allows workers), smallest first: the least waste for one shape. */
  private types(): string[] {
    return Object.entries(this.config.available_node_types)
      .filter(([name]) => typeMax(this.config, name) > 0)
      .sort((a, b) => Object.values(a[1].resources).reduce((x, y) => x + y, 0) - Object.values(b[1].resources).reduce((x, y) => x + y, 0))
      .map(([name]) => name);
  }

  /** Why no new node of any type can be added for `shape` (undefined: one can). */
  private blocked(shape: Shape): string | undefined {
    const types = this.types().filter((t) => fits(shape, this.config.available_node_types[t]!.resources));
    if (types.length === 0) return `no node type has ${shapeText(shape)}`;
    if (this.total >= this.config.max_workers) return `max_workers (${this.config.max_workers}) reached`;
    if (!types.some((t) => (this.workers[t] ?? 0) < typeMax(this.config, t))) return `every node type with ${shapeText(shape)} is at its max_workers`;
    if (this.budget <= 0) return 'upscaling speed: enough nodes are launching already';
    return undefined;
  }

  /** Add one node able to hold `shape`; undefined when none may be added (the reason noted). */
  addNode(shape: Shape, why: string): CapacityNode | undefined {
    const reason = this.blocked(shape);
    if (reason) {
      this.unfulfilled.push(`${why}: ${reason}`);
      return undefined;
    }
    const type = this.types().find((t) => fits(shape, this.config.available_node_types[t]!.resources) && (this.workers[t] ?? 0) < typeMax(this.config, t))!;
    const res = this.config.available_node_types[type]!.resources;
    const node: CapacityNode = { id: `new:${type}:${this.seq++}`, type, free: { ...res }, total: { ...res } };
    this.nodes.push(node);
    this.workers[type] = (this.workers[type] ?? 0) + 1;
    this.total++;
    this.budget--;
    this.launch[type] = (this.launch[type] ?? 0) + 1;
    this.reasons.push(`adding a ${type} node for ${why}`);
    return node;
  }

  /** Place one shape: on a node with room (not in `exclude`), else on a new node. */
  place(shape: Shape, why: string, exclude?: Set<string>, key: 'free' | 'total' = 'free'): CapacityNode | undefined {
    const node = this.nodes.find((n) => !exclude?.has(n.id) && fits(shape, n[key])) ?? this.addNode(shape, why);
    if (node) take(shape, node[key]);
    return node;
  }

  /** Launch up to each type's min_workers. */
  minimums(): void {
    for (const [type, t] of Object.entries(this.config.available_node_types)) {
      if (type === this.config.head_node_type) continue;
      while ((this.workers[type] ?? 0) < t.min_workers && this.total < this.config.max_workers) {
        const node: CapacityNode = { id: `new:${type}:${this.seq++}`, type, free: { ...t.resources }, total: { ...t.resources } };
        this.nodes.push(node);
        this.workers[type] = (this.workers[type] ?? 0) + 1;
        this.total++;
        this.budget--;
        this.launch[type] = (this.launch[type] ?? 0) + 1;
        this.reasons.push(`adding a ${type} node: min_workers is ${t.min_workers}`);
      }
    }
  }
}

/** Which nodes to add so the demand fits (see the module comment). */
export function planScaleUp(input: PlanInput): Plan {
  const nodes = input.nodes.map((n) => ({ ...n, free: { ...n.free }, total: { ...n.total } }));
  const p = new Packer(input.config, nodes, input.workers, input.launching);
  p.minimums();
  for (const d of input.shapes) {
    for (let i = 0; i < d.count; i++) {
      if (!p.place(d.shape, `pending ${shapeText(d.shape)}`)) break;
    }
  }
  for (const g of input.groups) {
    const why = `a ${g.strategy} placement group of ${g.bundles.length} bundle(s)`;
    if (g.strategy === 'STRICT_PACK') {
      p.place(sum(g.bundles), why);
    } else if (g.strategy === 'STRICT_SPREAD') {
      const used = new Set<string>();
      for (const b of g.bundles) {
        const n = p.place(b, why, used);
        if (!n) break;
        used.add(n.id);
      }
    } else {
      for (const b of g.bundles) if (!p.place(b, why)) break;
    }
  }
  for (const b of input.requested) p.place(b, `requestResources ${shapeText(b)}`, undefined, 'total');
  return { launch: p.launch, reasons: p.reasons, unfulfilled: [...new Set(p.unfulfilled)] };
}

/** A worker node as scale-down sees it. */
export interface IdleCandidate {
  /** Provider id. */
  id: string;
  type: string;
  /** ms since epoch it has been idle since; undefined: busy (work, objects in use or a bundle). */
  idleSince: number | undefined;
}

/**
 * Which workers to remove: idle longer than `idle_timeout_minutes`, while their type keeps its
 * min_workers; the longest idle first. A busy node (undefined idleSince) is never chosen.
 */
export function planScaleDown(config: ClusterConfig, workers: IdleCandidate[], now: number): IdleCandidate[] {
  const timeoutMs = config.idle_timeout_minutes * 60_000;
  const left: Record<string, number> = {};
  for (const w of workers) left[w.type] = (left[w.type] ?? 0) + 1;
  const out: IdleCandidate[] = [];
  const idle = workers.filter((w) => w.idleSince !== undefined && now - w.idleSince >= timeoutMs).sort((a, b) => a.idleSince! - b.idleSince!);
  for (const w of idle) {
    const min = config.available_node_types[w.type]?.min_workers ?? 0;
    if ((left[w.type] ?? 0) <= min) continue;
    left[w.type] = (left[w.type] ?? 0) - 1;
    out.push(w);
  }
  return out;
}

/**
 * The nodes `requestResources()` bundles are packed on (first fit over the nodes' totals, in order):
 * the autoscaler keeps them, idle or not, while the request stands.
 */
export function nodesHoldingRequest(requested: Shape[], nodes: { id: string; total: Shape }[]): Set<string> {
  const left = nodes.map((n) => ({ id: n.id, free: { ...n.total } }));
  const out = new Set<string>();
  for (const b of requested) {
    const n = left.find((x) => fits(b, x.free));
    if (!n) continue;
    take(b, n.free);
    out.add(n.id);
  }
  return out;
}
