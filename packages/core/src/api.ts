/**
 * The object API: `put`, `get`, `wait`, `cancel`, and the runtime context.
 * @module
 */
import { TaskError, ValidationError } from './errors.js';
import { newId } from './ids.js';
import { ObjectRef } from './object-ref.js';
import { currentRuntime } from './remote-function.js';
import type { RuntimeContext } from './runtime.js';
import { serialize } from './serialization.js';
import { state } from './state.js';
import { keepAlive } from './keep-alive.js';

/** Values of a tuple/array of refs. */
export type RefValues<T extends readonly ObjectRef<unknown>[]> = { -readonly [K in keyof T]: T[K] extends ObjectRef<infer U> ? U : never };

/** Options of `get`. */
export interface GetOptions {
  /** Seconds to wait before rejecting with GetTimeoutError (as Ray). Default: forever. */
  timeout?: number;
}

/**
 * Store a value in the object store and return a ref to it. Structured-clone semantics (Map, Set,
 * Date, BigInt, typed arrays, Buffer, nested ObjectRefs stay refs); Buffers and TypedArrays larger than
 * 100 KiB go to shared memory with a single copy.
 */
export function put<T>(value: T): ObjectRef<T> {
  const rt = currentRuntime('put()');
  if (ObjectRef.isObjectRef(value)) {
    throw new ValidationError('value', 'put() of an ObjectRef is not allowed (as in Ray): pass the ref itself, or wrap it in an array or object');
  }
  const sv = serialize(value, 'put() value');
  const id = newId('p');
  const ref = new ObjectRef<T>(id);
  rt.putObject(id, sv);
  return ref;
}

/**
 * `put` for a large value the caller will not change until the promise resolves (as a collective's
 * buffer): in a worker the bytes go straight from `value` into shared memory (one copy; `put` copies
 * twice, as it must snapshot the value before it returns). Resolves to the ref once the value is stored.
 */
export async function putAsync<T>(value: T): Promise<ObjectRef<T>> {
  const rt = currentRuntime('putAsync()');
  if (ObjectRef.isObjectRef(value)) {
    throw new ValidationError('value', 'putAsync() of an ObjectRef is not allowed (as in Ray): pass the ref itself, or wrap it in an array or object');
  }
  const sv = serialize(value, 'putAsync() value');
  const id = newId('p');
  const ref = new ObjectRef<T>(id);
  if (rt.putObjectOwned) await rt.putObjectOwned(id, sv);
  else rt.putObject(id, sv);
  return ref;
}

function timeoutMs(t: number | undefined, where: string): number | undefined {
  if (t === undefined || t === null) return undefined;
  if (typeof t !== 'number' || Number.isNaN(t) || t < 0)
    throw new ValidationError('timeout', `${where}: timeout must be a number of seconds >= 0, got ${String(t)}`);
  return t === Infinity ? undefined : t * 1000;
}

/**
 * The value of a ref, or the values of an array of refs (in order). Rejects with `TaskError` if the
 * task threw (or a task it depends on), `WorkerCrashedError`, `TaskCancelledError`, or
 * `GetTimeoutError` after `timeout` seconds.
 */
export function get<T>(ref: ObjectRef<T>, options?: GetOptions): Promise<T>;
export function get<const T extends readonly ObjectRef<unknown>[]>(refs: T, options?: GetOptions): Promise<RefValues<T>>;
export async function get(refOrRefs: ObjectRef<unknown> | readonly ObjectRef<unknown>[], options: GetOptions = {}): Promise<unknown> {
  try {
    return await getValues(refOrRefs, options);
  } catch (e) {
    // After the await, V8's async stack holds the caller's `await get(...)` line: a TaskError shows it.
    TaskError.addDriverFrames(e, get, state().isWorker ? 'worker' : 'driver');
    throw e;
  }
}

async function getValues(refOrRefs: ObjectRef<unknown> | readonly ObjectRef<unknown>[], options: GetOptions): Promise<unknown> {
  const ms = timeoutMs(options.timeout, 'get()');
  if (Array.isArray(refOrRefs)) {
    const ids = new Array<string>(refOrRefs.length);
    for (let i = 0; i < refOrRefs.length; i++) {
      const r = refOrRefs[i];
      if (!ObjectRef.isObjectRef(r)) throw new TypeError(`get() expects ObjectRefs; element ${i} is ${describe(r)}`);
      checkLive(r);
      ids[i] = r.id;
    }
    const values = await currentRuntime('get()').getObjects(ids, ms);
    keepAlive(refOrRefs); // the refs must outlive the wait, or their objects could be freed meanwhile
    return values;
  }
  if (!ObjectRef.isObjectRef(refOrRefs)) throw new TypeError(`get() expects an ObjectRef or an array of ObjectRefs, got ${describe(refOrRefs)}`);
  checkLive(refOrRefs);
  const [v] = await currentRuntime('get()').getObjects([refOrRefs.id], ms);
  keepAlive(refOrRefs);
  return v;
}

/** Options of `wait`. */
export interface WaitOptions {
  /** How many refs must be ready. Default 1. */
  numReturns?: number;
  /** Seconds to wait at most; then returns what is ready. Default: forever. */
  timeout?: number;
}

/**
 * Wait until `numReturns` of the refs are ready (or `timeout` seconds passed). `ready` lists ready
 * refs in completion order (at most `numReturns`), `notReady` the rest in input order.
 */
export async function wait<T>(refs: readonly ObjectRef<T>[], options: WaitOptions = {}): Promise<{ ready: ObjectRef<T>[]; notReady: ObjectRef<T>[] }> {
  if (!Array.isArray(refs)) throw new TypeError(`wait() expects an array of ObjectRefs, got ${describe(refs)}`);
  const numReturns = options.numReturns ?? 1;
  const ids: string[] = new Array(refs.length);
  for (let i = 0; i < refs.length; i++) {
    const r = refs[i] as ObjectRef<T>;
    if (!ObjectRef.isObjectRef(r)) throw new TypeError(`wait() expects ObjectRefs; element ${i} is ${describe(r)}`);
    ids[i] = r.id;
  }
  if (!Number.isInteger(numReturns) || numReturns < 0 || numReturns > refs.length) {
    throw new ValidationError(
      'numReturns',
      `wait(): numReturns must be an integer between 0 and the number of refs (${refs.length}), got ${String(numReturns)}`,
    );
  }
  const ms = timeoutMs(options.timeout, 'wait()');
  // Positions, not ids: no map from id back to ref per call (the runtime also checks for duplicates).
  const readyAt = await currentRuntime('wait()').wait(ids, numReturns, ms);
  keepAlive(refs);
  return { ready: readyAt.map((i) => refs[i] as ObjectRef<T>), notReady: without(refs, readyAt) };
}

/** `items` without the given positions, in order. */
function without<T>(items: readonly T[], positions: readonly number[]): T[] {
  if (positions.length === 0) return items.slice();
  if (positions.length === 1) {
    const p = positions[0]!; // wait's most common use: one ready ref
    return items.slice(0, p).concat(items.slice(p + 1));
  }
  const skip = new Uint8Array(items.length);
  for (const p of positions) skip[p] = 1;
  const out: T[] = [];
  for (let i = 0; i < items.length; i++) if (skip[i] === 0) out.push(items[i]!);
  return out;
}

/** Options of `cancel`. */
export interface CancelOptions {
  /** Kill the worker running the task (interrupts even code that blocks its event loop). */
  force?: boolean;
}

/**
 * Cancel the task that produces `ref`. A queued task never runs; a running one gets its
 * `getRuntimeContext().signal` aborted (and with `force` its worker is killed). `get` of the ref then
 * rejects with `TaskCancelledError`. Cancelling a finished task does nothing.
 */
export function cancel(ref: ObjectRef<unknown>, options: CancelOptions = {}): void {
  if (!ObjectRef.isObjectRef(ref)) throw new TypeError(`cancel() expects an ObjectRef, got ${describe(ref)}`);
  currentRuntime('cancel()').cancel(ref.id, options.force === true);
}

/** Where the current code runs: node, job, task, assigned GPUs, cancellation signal. */
export function getRuntimeContext(): RuntimeContext {
  return currentRuntime('getRuntimeContext()').context();
}

/** True inside a tsray worker process. */
export function isWorker(): boolean {
  return state().isWorker;
}

function checkLive(r: ObjectRef<unknown>): void {
  if (r instanceof ObjectRef && r.released)
    throw new ValidationError('ref', `${r.toString()} was released; keep the ref (or another ref to the same object) to read it`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  return `${typeof v} ${String(v).slice(0, 40)}`;
}
