import { ResourceValidationError } from './errors.js';
import { ACCELERATOR_TYPE_PREFIX, CPU, GPU, MEMORY, OBJECT_STORE_MEMORY, RESOURCE_UNIT, fromUnits, toUnits } from './units.js';

/**
 * An immutable resource request (a task's or an actor's, or one placement-group bundle), in fixed-point
 * units. Only non-zero amounts are kept. Build one with {@link resourceRequestFromOptions} (Ray-style
 * task options), {@link ResourceRequest.of} (a float record such as a bundle `{CPU: 1, GPU: 0.5}`) or
 * {@link ResourceRequest.fromUnits}.
 */
export class ResourceRequest {
  /** Amounts in units, only non-zero ones, in name order. */
  readonly amounts: ReadonlyMap<string, number>;
  /** CPU units (hot path of the policies; the node reads it too). */
  readonly cpu: number;
  /** GPU units (the node reads it too). */
  readonly gpu: number;
  /** @internal memory units. */
  readonly mem: number;
  /** @internal object_store_memory units. */
  readonly osm: number;
  /** @internal names of the other (custom) resources. */
  readonly customNames: readonly string[];
  /** @internal units of the other resources, parallel to {@link customNames}. */
  readonly customUnits: readonly number[];
  #key: string | undefined;

  /** The request that asks for nothing. */
  static readonly EMPTY: ResourceRequest = new ResourceRequest(new Map());

  private constructor(amounts: Map<string, number>) {
    const sorted = new Map([...amounts.entries()].filter(([, u]) => u !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    this.amounts = sorted;
    this.cpu = sorted.get(CPU) ?? 0;
    this.gpu = sorted.get(GPU) ?? 0;
    this.mem = sorted.get(MEMORY) ?? 0;
    this.osm = sorted.get(OBJECT_STORE_MEMORY) ?? 0;
    const names: string[] = [];
    const units: number[] = [];
    for (const [n, u] of sorted) {
      if (n === CPU || n === GPU || n === MEMORY || n === OBJECT_STORE_MEMORY) continue;
      names.push(n);
      units.push(u);
    }
    this.customNames = names;
    this.customUnits = units;
  }

  /**
   * Builds a request from fixed-point units (integers >= 0). Throws {@link ResourceValidationError} on a
   * non-integer, negative or non-finite amount, an empty name, or a fractional GPU amount above 1.
   */
  static fromUnits(units: Iterable<readonly [string, number]> | Readonly<Record<string, number>>): ResourceRequest {
    const entries = isIterable(units) ? [...units] : Object.entries(units);
    const m = new Map<string, number>();
    for (const [name, u] of entries) {
      const option = `resources.${String(name)}`;
      checkName(option, name);
      if (typeof u !== 'number' || !Number.isInteger(u) || u < 0) {
        throw new ResourceValidationError(option, `${option} must be an integer number of units >= 0, got ${describe(u)}`);
      }
      m.set(name, (m.get(name) ?? 0) + u);
    }
    checkGpu('resources.GPU', m.get(GPU) ?? 0);
    return new ResourceRequest(m);
  }

  /**
   * Builds a request from float amounts keyed by resource name, e.g. a placement-group bundle
   * `{CPU: 1, GPU: 0.5, memory: 1e9}`. All names are allowed (CPU, GPU, memory included). Throws
   * {@link ResourceValidationError} (option `<prefix>.<name>`) on a bad amount or name.
   */
  static of(amounts: Readonly<Record<string, number>>, optionPrefix = 'resources'): ResourceRequest {
    if (amounts === null || typeof amounts !== 'object' || Array.isArray(amounts)) {
      throw new ResourceValidationError(optionPrefix, `${optionPrefix} must be an object of resource amounts, got ${describe(amounts)}`);
    }
    const m = new Map<string, number>();
    for (const [name, x] of Object.entries(amounts)) {
      const option = `${optionPrefix}.${name}`;
      checkName(option, name);
      checkAmount(option, x);
      m.set(name, toUnits(x));
    }
    checkGpu(`${optionPrefix}.GPU`, m.get(GPU) ?? 0);
    return new ResourceRequest(m);
  }

  /** The sum of several requests (e.g. all bundles of a STRICT_PACK group). */
  static sum(requests: Iterable<ResourceRequest>): ResourceRequest {
    const m = new Map<string, number>();
    for (const r of requests) for (const [n, u] of r.amounts) m.set(n, (m.get(n) ?? 0) + u);
    return new ResourceRequest(m);
  }

  /** True when the request asks for no resource at all. */
  isEmpty(): boolean {
    return this.amounts.size === 0;
  }

  /** Units of `name` requested (0 when absent). */
  get(name: string): number {
    return this.amounts.get(name) ?? 0;
  }

  /** A stable key of the request's shape (`CPU=10000,GPU=5000`), for grouping requests by scheduling class. */
  get key(): string {
    if (this.#key === undefined) this.#key = [...this.amounts].map(([n, u]) => `${n}=${u}`).join(',');
    return this.#key;
  }

  /** The request as float amounts (`{CPU: 1, GPU: 0.5}`). */
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [n, u] of this.amounts) out[n] = fromUnits(u);
    return out;
  }
}

/** Ray-style resource options of a task or actor (see {@link resourceRequestFromOptions}). */
export interface ResourceOptions {
  /** CPUs, default `defaults.numCpus` (1 when no default is given). */
  numCpus?: number;
  /** GPUs; a fraction in (0, 1) shares one GPU, amounts above 1 must be whole. */
  numGpus?: number;
  /** Heap memory in bytes (logical, for admission only). */
  memory?: number;
  /** Custom resources; `CPU`, `GPU` and `memory` are rejected here (use the dedicated options). */
  resources?: Record<string, number>;
  /** Accelerator type, e.g. `A100`: requests 0.001 of `accelerator_type:A100`. */
  acceleratorType?: string;
}

/**
 * Validates Ray-style resource options and builds a request.
 *
 * Defaults: `numCpus` = `defaults.numCpus` (1 when `defaults.numCpus` is not given, as Ray's tasks).
 * Rejects NaN, negative, non-finite and non-number amounts; `numGpus` above 1 must be whole; `resources`
 * keys `CPU`, `GPU`, `memory` are rejected ("use numCpus"), names must be non-empty strings; an
 * accelerator type becomes `accelerator_type:<T>` 0.001. Throws {@link ResourceValidationError} whose
 * `option` names the offending option.
 */
export function resourceRequestFromOptions(opts: ResourceOptions, defaults?: { numCpus?: number }): ResourceRequest {
  if (opts === null || typeof opts !== 'object') {
    throw new ResourceValidationError('options', `options must be an object, got ${describe(opts)}`);
  }
  const m = new Map<string, number>();
  const numCpus = opts.numCpus ?? defaults?.numCpus ?? 1;
  checkAmount('numCpus', numCpus);
  m.set(CPU, toUnits(numCpus));
  if (opts.numGpus !== undefined) {
    checkAmount('numGpus', opts.numGpus);
    if (opts.numGpus > 1 && !Number.isInteger(opts.numGpus)) {
      throw new ResourceValidationError('numGpus', `numGpus above 1 must be a whole number, got ${opts.numGpus}`);
    }
    m.set(GPU, toUnits(opts.numGpus));
  }
  if (opts.memory !== undefined) {
    checkAmount('memory', opts.memory);
    m.set(MEMORY, toUnits(opts.memory));
  }
  if (opts.resources !== undefined) {
    const res = opts.resources;
    if (res === null || typeof res !== 'object' || Array.isArray(res)) {
      throw new ResourceValidationError('resources', `resources must be an object of custom resource amounts, got ${describe(res)}`);
    }
    for (const [name, x] of Object.entries(res)) {
      const option = `resources.${name}`;
      checkName(option, name);
      if (name === CPU || name === GPU || name === MEMORY) {
        const use = name === CPU ? 'numCpus' : name === GPU ? 'numGpus' : 'memory';
        throw new ResourceValidationError(option, `${option} is not allowed: use ${use}`);
      }
      checkAmount(option, x);
      m.set(name, toUnits(x));
    }
  }
  if (opts.acceleratorType !== undefined) {
    if (typeof opts.acceleratorType !== 'string' || opts.acceleratorType === '') {
      throw new ResourceValidationError('acceleratorType', `acceleratorType must be a non-empty string, got ${describe(opts.acceleratorType)}`);
    }
    m.set(ACCELERATOR_TYPE_PREFIX + opts.acceleratorType, toUnits(0.001));
  }
  return ResourceRequest.fromUnits(m);
}

function checkAmount(option: string, x: unknown): asserts x is number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
    throw new ResourceValidationError(option, `${option} must be a finite number >= 0, got ${describe(x)}`);
  }
}

function checkName(option: string, name: unknown): void {
  if (typeof name !== 'string' || name === '') {
    throw new ResourceValidationError(option, `resource names must be non-empty strings, got ${describe(name)}`);
  }
}

function checkGpu(option: string, units: number): void {
  if (units > RESOURCE_UNIT && units % RESOURCE_UNIT !== 0) {
    throw new ResourceValidationError(option, `${option} above 1 must be a whole number, got ${fromUnits(units)}`);
  }
}

function isIterable(x: unknown): x is Iterable<readonly [string, number]> {
  return x !== null && typeof x === 'object' && typeof (x as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

/** Renders a bad value for an error message. */
export function describe(x: unknown): string {
  if (typeof x === 'string') return `'${x}'`;
  if (typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint' || x === undefined || x === null) return String(x);
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return Object.prototype.toString.call(x);
  }
}
