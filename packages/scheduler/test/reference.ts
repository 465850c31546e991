import { ResourceRequest, type ClusterView, type NodeEntry } from '../src/index.js';

/** Options of {@link referenceHybrid} (the DEFAULT policy's, with Ray's defaults). */
export interface ReferenceOptions {
  localNodeId?: string;
  rng: () => number;
  spreadThreshold?: number;
  topKFraction?: number;
  topKAbsolute?: number;
  avoidGpuNodes?: boolean;
  scoreAfterPlacement?: boolean;
}

/** What the reference decides: a node, a wait on a node, or infeasible (missing/reason not modelled). */
export type ReferenceDecision = { kind: 'node' | 'wait'; nodeId: string } | { kind: 'infeasible' };

/**
 * Brute-force DEFAULT (hybrid) policy, written from the description in `policy/hybrid.ts` with only the
 * public NodeResources queries: scores every node, sorts, and consumes the rng in the documented order.
 */
export function referenceHybrid(req: ResourceRequest, view: ClusterView, o: ReferenceOptions): ReferenceDecision {
  const threshold = o.spreadThreshold ?? 0.5;
  const alive = view.entries().filter((e) => e.alive);
  const n = alive.length;
  if (n === 0) return { kind: 'infeasible' };
  const k = Math.max(o.topKAbsolute ?? 1, Math.floor(n * (o.topKFraction ?? 0.2)), 1);
  const scoreReq = (o.scoreAfterPlacement ?? true) ? req : ResourceRequest.EMPTY;
  const raw = (e: NodeEntry) => e.resources.scoreAfter(scoreReq);
  const norm = (e: NodeEntry) => (raw(e) < threshold ? 0 : raw(e));

  const choose = (list: NodeEntry[], pool: NodeEntry[], j: number): NodeEntry => {
    if (j >= pool.length) j = Math.floor(o.rng() * pool.length);
    const sorted = pool.map(norm).sort((a, b) => a - b);
    const target = sorted[j]!;
    if (target === 0) {
      for (;;) {
        const e = list[Math.floor(o.rng() * list.length)]!;
        if (pool.includes(e) && norm(e) === 0) return e;
      }
    }
    const group = pool.filter((e) => norm(e) === target);
    return group[Math.floor(o.rng() * group.length)]!;
  };

  const pass = (list: NodeEntry[], requireAvailable: boolean): ReferenceDecision | null => {
    const local = list.find((e) => e.nodeId === o.localNodeId);
    let localScore = Infinity;
    if (local && local.resources.canFit(req)) {
      localScore = raw(local);
      if (localScore < threshold) return { kind: 'node', nodeId: local.nodeId };
    }
    const j = Math.floor(o.rng() * k);
    const pool = list.filter((e) => e.resources.canFit(req));
    if (pool.length > 0) {
      const best = Math.min(...pool.map(norm));
      if (localScore <= best) return { kind: 'node', nodeId: local!.nodeId };
      return { kind: 'node', nodeId: choose(list, pool, j).nodeId };
    }
    if (requireAvailable) return null;
    const busy = list.filter((e) => e.resources.isFeasible(req));
    if (busy.length === 0) return null;
    return { kind: 'wait', nodeId: choose(list, busy, j).nodeId };
  };

  const nonGpu = alive.filter((e) => !e.resources.hasGpus());
  if (req.get('GPU') === 0 && (o.avoidGpuNodes ?? true) && nonGpu.length > 0 && nonGpu.length < n) {
    const d = pass(nonGpu, true);
    if (d) return d;
  }
  return pass(alive, false) ?? { kind: 'infeasible' };
}
