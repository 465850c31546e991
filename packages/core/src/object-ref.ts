/**
 * ObjectRef: a typed reference to an object in the cluster, and per-process reference tracking.
 * @module
 */
import { inspect } from 'node:util';
import { state } from './state.js';

/**
 * The own enumerable property that carries a ref's id. Being an own data property, it survives
 * structured clone, which is how refs nested inside values travel between processes.
 * @internal
 */
export const REF_MARKER = '__tsray_object_ref__';
/** The own enumerable property that carries an actor handle's info (handles also carry REF_MARKER). @internal */
export const ACTOR_MARKER = '__tsray_actor__';

/** Live ObjectRef instances per id in this process. @internal */
const liveCounts = new Map<string, number>();

const registry = new FinalizationRegistry<string>((id) => releaseLocal(id));
const released = new WeakSet<object>();

function retainLocal(id: string): void {
  const n = liveCounts.get(id);
  if (n === undefined) {
    liveCounts.set(id, 1);
    state().runtime?.refAdded(id);
  } else {
    liveCounts.set(id, n + 1);
  }
}

function releaseLocal(id: string): void {
  const n = liveCounts.get(id);
  if (n === undefined) return;
  if (n <= 1) {
    liveCounts.delete(id);
    state().runtime?.refRemoved(id);
  } else {
    liveCounts.set(id, n - 1);
  }
}

/** Forget every local ref (after shutdown). @internal */
export function resetLocalRefs(): void {
  liveCounts.clear();
}

/**
 * A reference to a (possibly not yet computed) value of type `T` stored in the cluster. Returned by
 * `fn.remote()` and `put()`; read with `get()`; pass it to other tasks as an argument (a top-level
 * ref argument is resolved to its value before the task runs; refs nested in arrays or objects arrive
 * as refs). The object is freed when no ref to it remains anywhere.
 */
export class ObjectRef<T = unknown> {
  /** Phantom field carrying the value type (type-only: it makes `ObjectRef<A>` and `ObjectRef<B>` differ; never set). */
  declare readonly __valueType?: T;
  /** @internal */
  readonly [REF_MARKER]: string;

  /** Made by tsray: use `put()` or `fn.remote()` to get refs. */
  constructor(id: string) {
    this[REF_MARKER] = id;
    retainLocal(id);
    registry.register(this, id, this);
  }

  /**
   * Drop this ref now instead of when it is garbage collected (JavaScript has no reference counting,
   * so without this a dropped ref holds its object until the next GC). The object is freed once no
   * ref remains anywhere. Using the ref afterwards throws. Also available as `using ref = put(x)`.
   */
  release(): void {
    const id = this[REF_MARKER];
    if (released.has(this)) return;
    released.add(this);
    if (registry.unregister(this)) releaseLocal(id);
  }

  /** Same as `release()`, for `using` declarations. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** True after `release()`. */
  get released(): boolean {
    return released.has(this);
  }

  /** The object id. */
  get id(): string {
    return this[REF_MARKER];
  }

  /** `ObjectRef(<id>)`. */
  toString(): string {
    return `ObjectRef(${this[REF_MARKER]})`;
  }

  /** @internal */
  [inspect.custom](): string {
    return this.toString();
  }

  /** True for ObjectRef instances (also from another copy of the package). */
  static isObjectRef(v: unknown): v is ObjectRef<unknown> {
    return (
      typeof v === 'object' &&
      v !== null &&
      typeof (v as Record<string, unknown>)[REF_MARKER] === 'string' &&
      (v as Record<string, unknown>)[ACTOR_MARKER] === undefined
    );
  }
}

Object.defineProperty(ObjectRef.prototype, Symbol.toStringTag, { value: 'ObjectRef' });
