import { GPU, ResourceRequest, type ClusterView, type NodeResources } from '@tsray/scheduler';
import { validateBundles, validateStrategy, type BundleSpec, type PlacementStrategy } from './bundles.js';

/**
 * A placement plan.
 * - `placed`: `nodeIds[i]` is bundle i's node; apply it with {@link Reservation.prepare}.
 * - `wait`: the group fits the alive nodes once they are idle, but not now (not now: retry later).
 * - `infeasible`: it cannot fit even on idle nodes. `missing` lists resources some bundle needs more of
 *   than any alive node has in total (empty when the limit is the strategy: too few nodes for
 *   STRICT_SPREAD, no node big enough for the STRICT_PACK sum).
 */
export type PlacementPlan =
  | { readonly kind: 'placed'; readonly nodeIds: readonly string[] }
  | { readonly kind: 'wait'; readonly reason: string }
  | { readonly kind: 'infeasible'; readonly missing: readonly string[]; readonly reason: string };

/**
 * Plans where each bundle goes. Deterministic (no randomness): nodes are considered in node-id order,
 * bundles in index order, so the same cluster state always gives the same plan, and bundles that share
 * a node get its GPUs in bundle order when the plan is applied.
 *
 * - STRICT_PACK: every bundle on one node: the node with the lowest utilization after taking the sum
 *   that can hold the bundles (checked by allocating them in order on a copy, GPU instances included).
 * - PACK: STRICT_PACK when possible; otherwise each bundle goes to the first node already used by the
 *   group that fits it, else to the least-utilized new node that fits.
 * - SPREAD: each bundle goes to the least-utilized node not yet used by the group, else to the
 *   least-utilized used node that fits.
 * - STRICT_SPREAD: each bundle on its own node: greedy (least utilized unused node), then augmenting
 *   paths (bipartite matching) when the greedy choice blocks a later bundle, so it fails only when no
 *   assignment exists.
 *
 * Only alive nodes count. Reads the cluster, changes nothing.
 *
 * @throws EmptyBundleListError, InvalidBundleError, UnknownPlacementStrategyError, ResourceValidationError
 */
export function planPlacement(bundles: readonly BundleSpec[], strategy: PlacementStrategy, cluster: ClusterView): PlacementPlan {
  const reqs = validateBundles(bundles);
  const strat = validateStrategy(strategy);
  const entries = cluster
    .entries()
    .filter((e) => e.alive)
    .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  const ids = entries.map((e) => e.nodeId);
  const now = plan(
    reqs,
    strat,
    entries.map((e) => e.resources),
  );
  if (now) return { kind: 'placed', nodeIds: now.map((i) => ids[i]!) };
  const idleNodes = entries.map((e) => e.resources.fresh());
  if (plan(reqs, strat, idleNodes)) {
    return { kind: 'wait', reason: `the ${strat} group of ${reqs.length} bundle(s) fits the alive nodes once they free resources, not now` };
  }
  return infeasibleResult(reqs, strat, idleNodes);
}

function plan(reqs: ResourceRequest[], strategy: PlacementStrategy, nodes: NodeResources[]): number[] | null {
  switch (strategy) {
    case 'STRICT_PACK':
      return strictPack(reqs, nodes);
    case 'PACK':
      return strictPack(reqs, nodes) ?? pack(reqs, new Sim(nodes));
    case 'SPREAD':
      return spread(reqs, new Sim(nodes));
    case 'STRICT_SPREAD':
      return strictSpread(reqs, nodes);
  }
}

/** Copy-on-write simulation of allocations over the nodes. */
class Sim {
  private readonly scratch: (NodeResources | undefined)[];
  constructor(readonly nodes: NodeResources[]) {
    this.scratch = new Array(nodes.length);
  }
  view(i: number): NodeResources {
    return this.scratch[i] ?? this.nodes[i]!;
  }
  place(i: number, req: ResourceRequest): boolean {
    let s = this.scratch[i];
    if (s === undefined) {
      if (!this.nodes[i]!.canFit(req)) return false;
      s = this.scratch[i] = this.nodes[i]!.clone();
    }
    return s.allocate(req) !== null;
  }
  /** Index of the node with the lowest utilization after `req` among those passing `filter` that fit; -1 if none. */
  best(req: ResourceRequest, filter: (i: number) => boolean): number {
    let best = -1;
    let bestScore = Infinity;
    for (let i = 0; i < this.nodes.length; i++) {
      if (!filter(i)) continue;
      const v = this.view(i);
      if (!v.canFit(req)) continue;
      const s = v.scoreAfter(req);
      if (s < bestScore) {
        best = i;
        bestScore = s;
      }
    }
    return best;
  }
}

function strictPack(reqs: ResourceRequest[], nodes: NodeResources[]): number[] | null {
  if (reqs.length === 1) {
    // One bundle (the common group): the least-utilized node that fits it, lowest index on ties, the node the
    // general case below picks. `canFit` is exact for a single request, so no trial copy of each node is needed.
    const best = new Sim(nodes).best(reqs[0]!, () => true);
    return best < 0 ? null : [best];
  }
  const sum = ResourceRequest.sum(reqs);
  const gpu = sum.get(GPU);
  const noGpu = ResourceRequest.fromUnits([...sum.amounts].filter(([n]) => n !== GPU));
  const cands: { i: number; s: number }[] = [];
  nodes.forEach((n, i) => {
    if (n.canFit(noGpu) && n.availableOf(GPU) >= gpu) cands.push({ i, s: n.scoreAfter(sum) });
  });
  cands.sort((a, b) => a.s - b.s || a.i - b.i);
  for (const { i } of cands) {
    const copy = nodes[i]!.clone();
    if (reqs.every((r) => copy.allocate(r) !== null)) return reqs.map(() => i);
  }
  return null;
}

function pack(reqs: ResourceRequest[], sim: Sim): number[] | null {
  const out: number[] = [];
  const used: number[] = [];
  const usedSet = new Set<number>();
  for (const req of reqs) {
    let at = used.find((u) => sim.place(u, req)) ?? -1;
    if (at < 0) {
      at = sim.best(req, (i) => !usedSet.has(i));
      if (at < 0 || !sim.place(at, req)) return null;
      used.push(at);
      usedSet.add(at);
    }
    out.push(at);
  }
  return out;
}

function spread(reqs: ResourceRequest[], sim: Sim): number[] | null {
  const out: number[] = [];
  const used = new Set<number>();
  for (const req of reqs) {
    let at = sim.best(req, (i) => !used.has(i));
    if (at < 0) at = sim.best(req, () => true);
    if (at < 0 || !sim.place(at, req)) return null;
    used.add(at);
    out.push(at);
  }
  return out;
}

function strictSpread(reqs: ResourceRequest[], nodes: NodeResources[]): number[] | null {
  if (reqs.length > nodes.length) return null;
  const sim = new Sim(nodes);
  const bundleNode = new Array<number>(reqs.length).fill(-1);
  const nodeBundle = new Array<number>(nodes.length).fill(-1);
  reqs.forEach((req, b) => {
    const at = sim.best(req, (i) => nodeBundle[i] === -1);
    if (at >= 0) {
      bundleNode[b] = at;
      nodeBundle[at] = b;
    }
  });
  // Augmenting paths (Kuhn) for the bundles the greedy pass could not place.
  const fits = (b: number, i: number) => nodes[i]!.canFit(reqs[b]!);
  for (let b = 0; b < reqs.length; b++) {
    if (bundleNode[b] !== -1) continue;
    const visited = new Uint8Array(nodes.length);
    const augment = (x: number): boolean => {
      for (let i = 0; i < nodes.length; i++) {
        if (visited[i] || !fits(x, i)) continue;
        visited[i] = 1;
        if (nodeBundle[i] === -1 || augment(nodeBundle[i]!)) {
          nodeBundle[i] = x;
          bundleNode[x] = i;
          return true;
        }
      }
      return false;
    };
    if (!augment(b)) return null;
  }
  return bundleNode;
}

function infeasibleResult(reqs: ResourceRequest[], strategy: PlacementStrategy, idle: NodeResources[]): PlacementPlan {
  const missing = new Set<string>();
  reqs.forEach((req) => {
    let inter: string[] | undefined;
    for (const n of idle) {
      const m = n.missing(req);
      inter = inter === undefined ? m : inter.filter((x) => m.includes(x));
      if (inter.length === 0) break;
    }
    for (const x of inter ?? [...req.amounts.keys()]) missing.add(x);
  });
  const list = [...missing].sort();
  let why: string;
  if (idle.length === 0) why = 'there is no alive node';
  else if (list.length > 0) why = `some bundle needs more than any alive node has in total of: ${list.join(', ')}`;
  else if (strategy === 'STRICT_SPREAD')
    why = `STRICT_SPREAD needs ${reqs.length} distinct nodes that can each hold a bundle; ${idle.length} alive node(s) cannot`;
  else if (strategy === 'STRICT_PACK') why = 'no single alive node can hold all bundles together';
  else why = 'the bundles do not fit the alive nodes together';
  return { kind: 'infeasible', missing: list, reason: `${strategy} group of ${reqs.length} bundle(s) is infeasible: ${why}` };
}
