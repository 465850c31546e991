import type { NodeResources } from './node-resources.js';
import { WeightedRankScratch } from './policy/select.js';
import type { ResourceRequest } from './resource-request.js';
import { RESOURCE_UNIT } from './units.js';

/**
 * @internal Incremental index of a view's alive nodes by resource state, for the DEFAULT policy.
 *
 * Nodes of one shape (same totals and GPU capacities) whose available CPU, memory, object store, GPU
 * instance summary (wholly free count, largest free amount) and custom amounts are equal answer every
 * policy query alike: `canFit`, `isFeasible` and `scoreAfter` give the same result for any request. Such
 * nodes form one class; the policy scores classes, not nodes. A cluster of few node shapes running few
 * request shapes has few classes (tens to a few hundred for 1,000 nodes); at worst there is one class per
 * node and a decision costs what a plain scan does.
 *
 * Kept current through the nodes' watchers: `allocate`/`release` only mark the node dirty (O(1)); the next
 * {@link refresh} moves dirty nodes to their new class. Slots are the view's alive nodes in insertion
 * order; class ids are recycled, at most one per node.
 */
export class NodeClassIndex {
  /** Number of slots (alive nodes). */
  readonly n: number;
  /** Node of each slot. */
  readonly nodes: readonly NodeResources[];
  /** Class of each slot. */
  readonly classOf: Int32Array;
  /** Per class: members count (0 for an unused id). */
  readonly count: Int32Array;
  /** Per class: 1 when its nodes have GPUs. */
  readonly hasGpu: Uint8Array;
  /** Per class: critical totals and available units (copied from a member). */
  readonly totCpu: Float64Array;
  readonly avCpu: Float64Array;
  readonly totMem: Float64Array;
  readonly avMem: Float64Array;
  readonly totOsm: Float64Array;
  readonly avOsm: Float64Array;
  /** Per class: current memory and object store utilization ((total - available + 0) / total; 0 when no total). */
  readonly memNow: Float64Array;
  readonly osmNow: Float64Array;
  /** Per class: wholly free GPU instances, largest free amount on one instance (units). */
  readonly wholeFree: Float64Array;
  readonly maxFree: Float64Array;
  /** Per class: member slots, unordered. */
  readonly members: number[][];
  /** Slots of the nodes without GPUs, in slot order. */
  readonly nonGpuSlots: Int32Array;
  /** Classes in use: `active[0..nActive)`. */
  readonly active: Int32Array;
  nActive = 0;
  /** Scratch for the policy, sized for one entry per class: class ids, scores, counts, selection, flags. */
  readonly poolClass: Int32Array;
  readonly poolScore: Float64Array;
  readonly poolCount: Int32Array;
  readonly selIdx: Int32Array;
  readonly rank: WeightedRankScratch;
  readonly flag: Uint8Array;

  private readonly shapeOf: Int32Array;
  private readonly shapeGpu: boolean[] = [];
  /** Per class: its shape, state vector (see `NodeResources.writeState`), vector length, hash, next class of equal hash. */
  private readonly classShape: Int32Array;
  private readonly classState: Float64Array[];
  private readonly classLen: Int32Array;
  private readonly classHash: Int32Array;
  private readonly nextSameHash: Int32Array;
  private readonly scratch: Float64Array;
  private readonly activePos: Int32Array;
  private readonly posInClass: Int32Array;
  /** Hash -> first class with that hash (chained through `nextSameHash`). */
  private readonly byHash = new Map<number, number>();
  private readonly freeIds: number[] = [];
  private readonly dirty: Uint8Array;
  private readonly dirtyList: Int32Array;
  private nDirty = 0;
  private readonly watchers: (() => void)[];

  /** Indexes `nodes` (slot i = nodes[i]) and starts watching them; call {@link detach} when dropped. */
  constructor(nodes: readonly NodeResources[]) {
    const n = nodes.length;
    this.n = n;
    this.nodes = nodes;
    this.classOf = new Int32Array(n).fill(-1);
    this.count = new Int32Array(n);
    this.hasGpu = new Uint8Array(n);
    this.totCpu = new Float64Array(n);
    this.avCpu = new Float64Array(n);
    this.totMem = new Float64Array(n);
    this.avMem = new Float64Array(n);
    this.totOsm = new Float64Array(n);
    this.avOsm = new Float64Array(n);
    this.memNow = new Float64Array(n);
    this.osmNow = new Float64Array(n);
    this.wholeFree = new Float64Array(n);
    this.maxFree = new Float64Array(n);
    this.members = Array.from({ length: n }, () => []);
    this.active = new Int32Array(n);
    this.activePos = new Int32Array(n);
    let stateLen = 5;
    for (const node of nodes) stateLen = Math.max(stateLen, node.stateLength());
    this.classShape = new Int32Array(n);
    this.classState = Array.from({ length: n }, () => new Float64Array(stateLen));
    this.classLen = new Int32Array(n);
    this.classHash = new Int32Array(n);
    this.nextSameHash = new Int32Array(n);
    this.scratch = new Float64Array(stateLen);
    this.posInClass = new Int32Array(n);
    this.poolClass = new Int32Array(n);
    this.poolScore = new Float64Array(n);
    this.poolCount = new Int32Array(n);
    this.selIdx = new Int32Array(n);
    this.rank = new WeightedRankScratch(n);
    this.flag = new Uint8Array(n);
    this.dirty = new Uint8Array(n);
    this.dirtyList = new Int32Array(n);
    this.shapeOf = new Int32Array(n);
    for (let i = n - 1; i >= 0; i--) this.freeIds.push(i);
    const shapes = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const sk = nodes[i]!.shapeKey();
      let s = shapes.get(sk);
      if (s === undefined) {
        s = shapes.size;
        shapes.set(sk, s);
        this.shapeGpu.push(nodes[i]!.hasGpus());
      }
      this.shapeOf[i] = s;
      this.place(i);
    }
    this.nonGpuSlots = Int32Array.from(nodes.flatMap((node, i) => (node.hasGpus() ? [] : [i])));
    this.watchers = nodes.map((node, i) => {
      const w = () => this.touch(i);
      (node.watchers ??= []).push(w);
      return w;
    });
  }

  /** Stops watching the nodes (the view changed membership and built a new index). */
  detach(): void {
    for (let i = 0; i < this.n; i++) {
      const node = this.nodes[i]!;
      const ws = node.watchers;
      if (ws === null) continue;
      const at = ws.indexOf(this.watchers[i]!);
      if (at >= 0) ws.splice(at, 1);
      if (ws.length === 0) node.watchers = null;
    }
  }

  /** Moves the nodes changed since the last call to their current class. */
  refresh(): void {
    const list = this.dirtyList;
    for (let d = 0; d < this.nDirty; d++) {
      const slot = list[d]!;
      this.dirty[slot] = 0;
      this.place(slot);
    }
    this.nDirty = 0;
  }

  /** True when the class's nodes can fit `req` now (exactly `NodeResources.canFit`). */
  fits(c: number, req: ResourceRequest): boolean {
    if (req.cpu > this.avCpu[c]! || req.mem > this.avMem[c]! || req.osm > this.avOsm[c]!) return false;
    const g = req.gpu;
    if (g > 0 && (g >= RESOURCE_UNIT ? this.wholeFree[c]! * RESOURCE_UNIT < g : this.maxFree[c]! < g)) return false;
    if (req.customNames.length > 0) return this.nodes[this.members[c]![0]!]!.canFit(req);
    return true;
  }

  /** True when the class's nodes can hold `req` once idle. */
  feasible(c: number, req: ResourceRequest): boolean {
    return this.nodes[this.members[c]![0]!]!.isFeasible(req);
  }

  /**
   * The class's nodes' score after placing `req`: exactly `NodeResources.scoreAfter` (same operations, so
   * the same float).
   */
  score(c: number, req: ResourceRequest): number {
    let u = 0;
    const tc = this.totCpu[c]!;
    if (tc > 0) u = (tc - this.avCpu[c]! + req.cpu) / tc;
    // Without a request for it, a resource's term is its current utilization, computed once per class.
    if (req.mem === 0) {
      const x = this.memNow[c]!;
      if (x > u) u = x;
    } else {
      const tm = this.totMem[c]!;
      if (tm > 0) {
        const x = (tm - this.avMem[c]! + req.mem) / tm;
        if (x > u) u = x;
      }
    }
    if (req.osm === 0) {
      const x = this.osmNow[c]!;
      if (x > u) u = x;
    } else {
      const to = this.totOsm[c]!;
      if (to > 0) {
        const x = (to - this.avOsm[c]! + req.osm) / to;
        if (x > u) u = x;
      }
    }
    return u;
  }

  /** Checks the index against its nodes (tests): a description of the first inconsistency, or undefined. */
  check(): string | undefined {
    this.refresh();
    let members = 0;
    for (let a = 0; a < this.nActive; a++) {
      const c = this.active[a]!;
      if (this.activePos[c] !== a || this.count[c]! <= 0 || this.count[c] !== this.members[c]!.length) return `class ${c} bookkeeping`;
      members += this.count[c]!;
    }
    if (members !== this.n) return `${members} members for ${this.n} slots`;
    for (let i = 0; i < this.n; i++) {
      const c = this.classOf[i]!;
      const len = this.nodes[i]!.writeState(this.scratch);
      if (!this.same(c, this.shapeOf[i]!, len) || this.members[c]![this.posInClass[i]!] !== i) return `slot ${i} is in the wrong class`;
      const [tc, ac, tm, am, to, ao, wf, mf] = this.nodes[i]!.critical();
      const same = this.totCpu[c] === tc && this.avCpu[c] === ac && this.totMem[c] === tm && this.avMem[c] === am && this.totOsm[c] === to;
      if (!same || this.avOsm[c] !== ao || this.wholeFree[c] !== wf || this.maxFree[c] !== mf) {
        return `class ${c} state differs from slot ${i}`;
      }
      if ((this.hasGpu[c] === 1) !== this.nodes[i]!.hasGpus()) return `class ${c} GPU flag differs from slot ${i}`;
    }
    return undefined;
  }

  private touch(slot: number): void {
    if (this.dirty[slot] === 0) {
      this.dirty[slot] = 1;
      this.dirtyList[this.nDirty++] = slot;
    }
  }

  /** Hash of the shape and of `scratch[0..len)` (integers below 2^53), as a small integer. */
  private hash(shape: number, len: number): number {
    const x = this.scratch;
    let h = Math.imul(shape ^ 0x5bd1e995, 0x9e3779b1);
    for (let i = 0; i < len; i++) {
      const v = x[i]!;
      h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
      h = Math.imul(h ^ ((v / 4294967296) | 0) ^ (h >>> 15), 0xc2b2ae35);
    }
    return (h ^ (h >>> 16)) & 0x3fffffff;
  }

  /** True when class c has this shape and the state in `scratch[0..len)`. */
  private same(c: number, shape: number, len: number): boolean {
    if (this.classShape[c] !== shape || this.classLen[c] !== len) return false;
    const a = this.classState[c]!;
    const x = this.scratch;
    for (let i = 0; i < len; i++) if (a[i] !== x[i]) return false;
    return true;
  }

  private place(slot: number): void {
    const shape = this.shapeOf[slot]!;
    const len = this.nodes[slot]!.writeState(this.scratch);
    const h = this.hash(shape, len);
    const old = this.classOf[slot]!;
    if (old >= 0) {
      if (this.classHash[old] === h && this.same(old, shape, len)) return;
      this.leave(old, slot);
    }
    let c = this.byHash.get(h) ?? -1;
    while (c >= 0 && !this.same(c, shape, len)) c = this.nextSameHash[c]!;
    if (c < 0) c = this.open(h, shape, len, slot);
    const m = this.members[c]!;
    this.posInClass[slot] = m.length;
    m.push(slot);
    this.count[c] = m.length;
    this.classOf[slot] = c;
  }

  private open(h: number, shape: number, len: number, slot: number): number {
    const c = this.freeIds.pop()!;
    this.classShape[c] = shape;
    this.classLen[c] = len;
    this.classState[c]!.set(this.scratch.subarray(0, len));
    this.classHash[c] = h;
    this.nextSameHash[c] = this.byHash.get(h) ?? -1;
    this.byHash.set(h, c);
    const [tc, ac, tm, am, to, ao, wf, mf] = this.nodes[slot]!.critical();
    this.totCpu[c] = tc;
    this.avCpu[c] = ac;
    this.totMem[c] = tm;
    this.avMem[c] = am;
    this.totOsm[c] = to;
    this.avOsm[c] = ao;
    this.memNow[c] = tm > 0 ? (tm - am + 0) / tm : 0;
    this.osmNow[c] = to > 0 ? (to - ao + 0) / to : 0;
    this.wholeFree[c] = wf;
    this.maxFree[c] = mf;
    this.hasGpu[c] = this.shapeGpu[shape] ? 1 : 0;
    this.activePos[c] = this.nActive;
    this.active[this.nActive++] = c;
    return c;
  }

  private leave(c: number, slot: number): void {
    const m = this.members[c]!;
    const at = this.posInClass[slot]!;
    const last = m.pop()!;
    if (last !== slot) {
      m[at] = last;
      this.posInClass[last] = at;
    }
    this.count[c] = m.length;
    this.classOf[slot] = -1;
    if (m.length > 0) return;
    // Close the class: drop it from the active list and recycle its id.
    const h = this.classHash[c]!;
    const head = this.byHash.get(h)!;
    if (head === c) {
      const next = this.nextSameHash[c]!;
      if (next >= 0) this.byHash.set(h, next);
      else this.byHash.delete(h);
    } else {
      let p = head;
      while (this.nextSameHash[p] !== c) p = this.nextSameHash[p]!;
      this.nextSameHash[p] = this.nextSameHash[c]!;
    }
    const pos = this.activePos[c]!;
    const moved = this.active[--this.nActive]!;
    this.active[pos] = moved;
    this.activePos[moved] = pos;
    this.freeIds.push(c);
  }
}
