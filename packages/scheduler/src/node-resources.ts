import { DoubleReleaseError, ForeignAllocationError, ResourceValidationError } from './errors.js';
import { ResourceRequest, describe } from './resource-request.js';
import { CPU, GPU, MEMORY, OBJECT_STORE_MEMORY, RESOURCE_UNIT, fromUnits } from './units.js';

/** Resources taken by one {@link NodeResources.allocate} call; give it back with {@link NodeResources.release}. */
export interface Allocation {
  /** Units taken per resource (the request's amounts). */
  readonly amounts: ReadonlyMap<string, number>;
  /** GPU instance ids taken, in allocation order (empty when no GPU was requested). */
  readonly gpuIds: readonly string[];
  /** Units taken from each GPU instance, parallel to {@link gpuIds} (10,000 for a whole GPU). */
  readonly gpuUnits: readonly number[];
}

/** A point-in-time copy of a node's free resources, in units, for exact comparisons (tests, debugging). */
export interface NodeSnapshot {
  /** Available units per resource name (every resource the node has). */
  readonly available: Record<string, number>;
  /** Free units per GPU instance id. */
  readonly gpuFree: Record<string, number>;
}

class NodeAllocation implements Allocation {
  released = false;
  constructor(
    readonly owner: NodeResources,
    readonly request: ResourceRequest,
    readonly gpuIdx: readonly number[],
    readonly gpuIds: readonly string[],
    readonly gpuUnits: readonly number[],
  ) {}
  get amounts(): ReadonlyMap<string, number> {
    return this.request.amounts;
  }
}

const NO_GPUS: readonly never[] = Object.freeze([]);

/**
 * One node's resources: totals and what is available, in fixed-point units, with GPUs as unit instances
 * that have ids. Fractional GPU requests share one instance and pack one device before the next (Ray:
 * 0.5 + 0.5 -> GPU0, then GPU1); whole requests take wholly free instances, lowest ids first.
 *
 * Pure bookkeeping: no I/O. {@link allocate} and {@link release} are exact inverses.
 */
export class NodeResources {
  /** Total units per resource name. */
  readonly total: ReadonlyMap<string, number>;
  /** Node labels (`ray.io/node-id` is added by {@link ClusterView} when matching, not stored here). */
  readonly labels: ReadonlyMap<string, string>;
  /** GPU instance ids, in order. */
  readonly gpuIds: readonly string[];

  // Hot fields (units); the policies read them through the methods below.
  private totCpu = 0;
  private avCpu = 0;
  private totMem = 0;
  private avMem = 0;
  private totOsm = 0;
  private avOsm = 0;
  private avGpu = 0;
  private readonly customTot = new Map<string, number>();
  private readonly customAv = new Map<string, number>();
  private readonly gpuCap: number[];
  private readonly gpuFree: number[];
  private wholeCap = 0; // instances whose capacity is one whole GPU
  private maxCap = 0;
  private wholeFree = 0; // instances wholly free
  private maxFree = 0; // largest free amount on one instance
  /** @internal Called after every allocate/release (the indexes of the cluster views holding this node). */
  watchers: (() => void)[] | null = null;
  private shapeKeyCache: string | undefined;

  /**
   * @param total float amounts, e.g. `{CPU: 2, GPU: 8, memory: 1e9, custom: 3}`; GPU must be whole.
   * @param opts.labels node labels; opts.gpuIds GPU instance ids (default `'0'`..`'n-1'`), one per GPU.
   * @throws ResourceValidationError (option `total.<name>` or `gpuIds`) on a bad amount or id list.
   */
  constructor(total: Readonly<Record<string, number>>, opts?: { labels?: Readonly<Record<string, string>>; gpuIds?: readonly string[] }) {
    const req = ResourceRequest.of(total, 'total');
    const gpus = req.gpu / RESOURCE_UNIT;
    if (!Number.isInteger(gpus)) {
      throw new ResourceValidationError('total.GPU', `total.GPU must be a whole number of GPUs, got ${fromUnits(req.gpu)}`);
    }
    const ids = opts?.gpuIds ?? Array.from({ length: gpus }, (_, i) => String(i));
    if (!Array.isArray(ids) || ids.length !== gpus || new Set(ids).size !== ids.length || ids.some((x) => typeof x !== 'string' || x === '')) {
      throw new ResourceValidationError('gpuIds', `gpuIds must be ${gpus} distinct non-empty strings (one per GPU), got ${describe(ids)}`);
    }
    const labels = opts?.labels ?? {};
    if (labels === null || typeof labels !== 'object') {
      throw new ResourceValidationError('labels', `labels must be an object of strings, got ${describe(labels)}`);
    }
    for (const [k, v] of Object.entries(labels)) {
      if (typeof v !== 'string') throw new ResourceValidationError(`labels.${k}`, `labels.${k} must be a string, got ${describe(v)}`);
    }
    this.labels = new Map(Object.entries(labels));
    this.gpuIds = [...ids];
    this.gpuCap = ids.map(() => RESOURCE_UNIT);
    this.gpuFree = ids.map(() => RESOURCE_UNIT);
    this.total = new Map(Object.keys(total).map((n) => [n, req.get(n)]));
    this.setTotals();
  }

  /**
   * A node view whose capacity is exactly what `a` took (a placement-group bundle seen as a small node):
   * same GPU ids, each with the units the allocation took from it.
   */
  static fromAllocation(a: Allocation, opts?: { labels?: Readonly<Record<string, string>> }): NodeResources {
    const floats: Record<string, number> = {};
    for (const [n, u] of a.amounts) if (n !== GPU) floats[n] = fromUnits(u);
    const node = new NodeResources(floats, opts?.labels ? { labels: opts.labels } : undefined);
    node.installGpus(a.gpuIds, a.gpuUnits);
    return node;
  }

  /** A copy with the same totals and the same available amounts (allocations stay with the original). */
  clone(): NodeResources {
    const c = Object.create(NodeResources.prototype) as NodeResources;
    Object.assign(c, this);
    const w = c as unknown as Record<string, unknown>;
    w['customAv'] = new Map(this.customAv);
    w['watchers'] = null;
    w['gpuFree'] = [...this.gpuFree];
    w['gpuCap'] = [...this.gpuCap];
    return c;
  }

  /** A copy with the same totals and everything available (the node as if idle). */
  fresh(): NodeResources {
    const c = this.clone();
    c.avCpu = c.totCpu;
    c.avMem = c.totMem;
    c.avOsm = c.totOsm;
    for (const [n, u] of c.customTot) c.customAv.set(n, u);
    c.avGpu = 0;
    for (let i = 0; i < c.gpuFree.length; i++) c.avGpu += c.gpuFree[i] = c.gpuCap[i]!;
    c.refreshGpu();
    return c;
  }

  /** Available units per resource name (every resource the node has, zeros included); a new map. */
  available(): ReadonlyMap<string, number> {
    const m = new Map<string, number>();
    for (const n of this.total.keys()) m.set(n, this.availableOf(n));
    return m;
  }

  /** Available units of one resource (0 when the node does not have it). */
  availableOf(name: string): number {
    switch (name) {
      case CPU:
        return this.avCpu;
      case MEMORY:
        return this.avMem;
      case OBJECT_STORE_MEMORY:
        return this.avOsm;
      case GPU:
        return this.avGpu;
      default:
        return this.customAv.get(name) ?? 0;
    }
  }

  /** True when the node has a GPU instance (used to keep CPU-only work off GPU nodes). */
  hasGpus(): boolean {
    return this.gpuCap.length > 0;
  }

  /** True when the node's totals can hold the request (it could run once idle). */
  isFeasible(req: ResourceRequest): boolean {
    if (req.cpu > this.totCpu || req.mem > this.totMem || req.osm > this.totOsm) return false;
    if (req.gpu > 0) {
      if (req.gpu >= RESOURCE_UNIT ? this.wholeCap * RESOURCE_UNIT < req.gpu : this.maxCap < req.gpu) return false;
    }
    const names = req.customNames;
    for (let i = 0; i < names.length; i++) if ((this.customTot.get(names[i]!) ?? 0) < req.customUnits[i]!) return false;
    return true;
  }

  /** True when the node's available resources can hold the request now (GPU instances checked one by one). */
  canFit(req: ResourceRequest): boolean {
    if (req.cpu > this.avCpu || req.mem > this.avMem || req.osm > this.avOsm) return false;
    if (req.gpu > 0) {
      if (req.gpu >= RESOURCE_UNIT ? this.wholeFree * RESOURCE_UNIT < req.gpu : this.maxFree < req.gpu) return false;
    }
    const names = req.customNames;
    for (let i = 0; i < names.length; i++) if ((this.customAv.get(names[i]!) ?? 0) < req.customUnits[i]!) return false;
    return true;
  }

  /** Resource names whose TOTAL is too small for the request (why it is infeasible here), in name order. */
  missing(req: ResourceRequest): string[] {
    const out: string[] = [];
    for (const [n, u] of req.amounts) {
      if (n === GPU) {
        if (u >= RESOURCE_UNIT ? this.wholeCap * RESOURCE_UNIT < u : this.maxCap < u) out.push(n);
      } else if ((this.total.get(n) ?? 0) < u) out.push(n);
    }
    return out;
  }

  /**
   * Takes the request's resources, or returns null when they do not fit now. GPUs: a whole request takes
   * wholly free instances, lowest index first; a fraction goes to the most used instance that still fits
   * (lowest index on ties), so fractions fill one device before the next.
   */
  allocate(req: ResourceRequest): Allocation | null {
    if (!this.canFit(req)) return null;
    this.avCpu -= req.cpu;
    this.avMem -= req.mem;
    this.avOsm -= req.osm;
    const names = req.customNames;
    for (let i = 0; i < names.length; i++) {
      const n = names[i]!;
      this.customAv.set(n, this.customAv.get(n)! - req.customUnits[i]!);
    }
    if (req.gpu === 0) {
      if (this.watchers !== null) this.notify();
      return new NodeAllocation(this, req, NO_GPUS, NO_GPUS, NO_GPUS);
    }
    const idx: number[] = [];
    const units: number[] = [];
    if (req.gpu >= RESOURCE_UNIT) {
      let want = req.gpu / RESOURCE_UNIT;
      for (let i = 0; i < this.gpuFree.length && want > 0; i++) {
        if (this.gpuFree[i] === RESOURCE_UNIT) {
          this.gpuFree[i] = 0;
          idx.push(i);
          units.push(RESOURCE_UNIT);
          want--;
        }
      }
    } else {
      let best = -1;
      for (let i = 0; i < this.gpuFree.length; i++) {
        const f = this.gpuFree[i]!;
        if (f >= req.gpu && (best < 0 || f < this.gpuFree[best]!)) best = i;
      }
      this.gpuFree[best] = this.gpuFree[best]! - req.gpu;
      idx.push(best);
      units.push(req.gpu);
    }
    this.avGpu -= req.gpu;
    this.refreshGpu();
    if (this.watchers !== null) this.notify();
    return new NodeAllocation(
      this,
      req,
      idx,
      idx.map((i) => this.gpuIds[i]!),
      units,
    );
  }

  /**
   * Gives back what {@link allocate} took: the exact inverse.
   * @throws DoubleReleaseError when released twice; ForeignAllocationError when made by another node.
   */
  release(a: Allocation): void {
    if (!(a instanceof NodeAllocation) || a.owner !== this) throw new ForeignAllocationError();
    if (a.released) throw new DoubleReleaseError();
    a.released = true;
    const req = a.request;
    this.avCpu += req.cpu;
    this.avMem += req.mem;
    this.avOsm += req.osm;
    const names = req.customNames;
    for (let i = 0; i < names.length; i++) {
      const n = names[i]!;
      this.customAv.set(n, this.customAv.get(n)! + req.customUnits[i]!);
    }
    if (a.gpuIdx.length > 0) {
      for (let i = 0; i < a.gpuIdx.length; i++) {
        const g = a.gpuIdx[i]!;
        this.gpuFree[g] = this.gpuFree[g]! + a.gpuUnits[i]!;
      }
      this.avGpu += req.gpu;
      this.refreshGpu();
    }
    if (this.watchers !== null) this.notify();
  }

  /**
   * @internal Key of everything that decides feasibility for any request: totals of every resource (in
   * their order) and the GPU instance capacities. Nodes with equal keys are interchangeable shapes.
   */
  shapeKey(): string {
    if (this.shapeKeyCache === undefined) this.shapeKeyCache = `${[...this.total].map(([n, u]) => `${n}=${u}`).join(',')}|${this.gpuCap.join(',')}`;
    return this.shapeKeyCache;
  }

  /**
   * @internal Writes everything that decides {@link canFit} and {@link scoreAfter} for any request, given
   * the shape ({@link shapeKey}), into `out`: available CPU, memory, object store, wholly free GPUs,
   * largest free GPU amount, then the custom amounts in the shape's order. Returns the count written
   * ({@link stateLength}). Two nodes of one shape with equal states answer every policy query alike.
   */
  writeState(out: Float64Array): number {
    out[0] = this.avCpu;
    out[1] = this.avMem;
    out[2] = this.avOsm;
    out[3] = this.wholeFree;
    out[4] = this.maxFree;
    let i = 5;
    if (this.customAv.size > 0) for (const v of this.customAv.values()) out[i++] = v;
    return i;
  }

  /** @internal Length of {@link writeState}'s output. */
  stateLength(): number {
    return 5 + this.customAv.size;
  }

  /**
   * @internal Totals and available units of the critical resources, then the GPU summary that
   * {@link canFit} reads: [totCpu, avCpu, totMem, avMem, totOsm, avOsm, wholly free GPUs, largest free GPU].
   */
  critical(): [number, number, number, number, number, number, number, number] {
    return [this.totCpu, this.avCpu, this.totMem, this.avMem, this.totOsm, this.avOsm, this.wholeFree, this.maxFree];
  }

  /**
   * Overwrites the available amounts with a remote node's report (units per resource name; GPUs as
   * free units per instance, in `gpuIds` order). Totals do not change; amounts are clamped to them.
   * Used by the views other nodes keep of a node; allocations made on this view before the report are
   * forgotten (the report already counts them).
   */
  setAvailable(availableUnits: ReadonlyMap<string, number>, gpuFreeUnits?: readonly number[]): void {
    const clamp = (n: string, tot: number) => Math.max(0, Math.min(tot, availableUnits.get(n) ?? 0));
    this.avCpu = clamp(CPU, this.totCpu);
    this.avMem = clamp(MEMORY, this.totMem);
    this.avOsm = clamp(OBJECT_STORE_MEMORY, this.totOsm);
    for (const [n, tot] of this.customTot) this.customAv.set(n, clamp(n, tot));
    if (gpuFreeUnits && gpuFreeUnits.length === this.gpuFree.length) {
      let av = 0;
      for (let i = 0; i < this.gpuFree.length; i++) av += this.gpuFree[i] = Math.max(0, Math.min(this.gpuCap[i]!, gpuFreeUnits[i]!));
      this.avGpu = av;
      this.refreshGpu();
    }
    if (this.watchers !== null) this.notify();
  }

  /** Free units per GPU instance, in `gpuIds` order (a copy). */
  gpuFreeUnits(): number[] {
    return [...this.gpuFree];
  }

  private notify(): void {
    const w = this.watchers!;
    for (let i = 0; i < w.length; i++) w[i]!();
  }

  /** Ray's critical utilization: max over CPU, memory, object_store_memory (total > 0) of 1 - available/total. */
  utilization(): number {
    return this.scoreAfter(ResourceRequest.EMPTY);
  }

  /**
   * Critical utilization after taking `req`: max over CPU, memory, object_store_memory (total > 0) of
   * (used + requested) / total. The hybrid policy's node score.
   */
  scoreAfter(req: ResourceRequest): number {
    let u = 0;
    if (this.totCpu > 0) u = (this.totCpu - this.avCpu + req.cpu) / this.totCpu;
    if (this.totMem > 0) {
      const x = (this.totMem - this.avMem + req.mem) / this.totMem;
      if (x > u) u = x;
    }
    if (this.totOsm > 0) {
      const x = (this.totOsm - this.avOsm + req.osm) / this.totOsm;
      if (x > u) u = x;
    }
    return u;
  }

  /** Free units of every resource and GPU instance, for exact comparisons. */
  snapshot(): NodeSnapshot {
    const available: Record<string, number> = {};
    for (const n of this.total.keys()) available[n] = this.availableOf(n);
    const gpuFree: Record<string, number> = {};
    this.gpuIds.forEach((id, i) => {
      gpuFree[id] = this.gpuFree[i]!;
    });
    return { available, gpuFree };
  }

  /** Totals and available amounts as floats, with per-GPU free fractions. */
  toJSON(): { total: Record<string, number>; available: Record<string, number>; gpus: Record<string, number>; labels: Record<string, string> } {
    const total: Record<string, number> = {};
    const available: Record<string, number> = {};
    for (const [n, u] of this.total) {
      total[n] = fromUnits(u);
      available[n] = fromUnits(this.availableOf(n));
    }
    const gpus: Record<string, number> = {};
    this.gpuIds.forEach((id, i) => {
      gpus[id] = fromUnits(this.gpuFree[i]!);
    });
    return { total, available, gpus, labels: Object.fromEntries(this.labels) };
  }

  private setTotals(): void {
    for (const [n, u] of this.total) {
      switch (n) {
        case CPU:
          this.totCpu = this.avCpu = u;
          break;
        case MEMORY:
          this.totMem = this.avMem = u;
          break;
        case OBJECT_STORE_MEMORY:
          this.totOsm = this.avOsm = u;
          break;
        case GPU:
          this.avGpu = u;
          break;
        default:
          this.customTot.set(n, u);
          this.customAv.set(n, u);
      }
    }
    this.refreshGpu();
  }

  private installGpus(ids: readonly string[], units: readonly number[]): void {
    const w = this as unknown as { gpuIds: string[]; total: Map<string, number> };
    w.gpuIds = [...ids];
    this.shapeKeyCache = undefined;
    this.gpuCap.length = 0;
    this.gpuFree.length = 0;
    let sum = 0;
    for (const u of units) {
      this.gpuCap.push(u);
      this.gpuFree.push(u);
      sum += u;
    }
    if (ids.length > 0) {
      const total = new Map(this.total);
      total.set(GPU, sum);
      w.total = total;
    }
    this.avGpu = sum;
    this.refreshGpu();
  }

  private refreshGpu(): void {
    let wholeCap = 0;
    let maxCap = 0;
    let wholeFree = 0;
    let maxFree = 0;
    for (let i = 0; i < this.gpuCap.length; i++) {
      const c = this.gpuCap[i]!;
      const f = this.gpuFree[i]!;
      if (c === RESOURCE_UNIT) wholeCap++;
      if (c > maxCap) maxCap = c;
      if (f === RESOURCE_UNIT) wholeFree++;
      if (f > maxFree) maxFree = f;
    }
    this.wholeCap = wholeCap;
    this.maxCap = maxCap;
    this.wholeFree = wholeFree;
    this.maxFree = maxFree;
  }
}
