/**
 * `remote()`: turning a function defined at the top level of a module into a remote function.
 * @module
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { RuntimeStateError, TaskError } from './errors.js';
import { generatorItemId, newId, returnId } from './ids.js';
import { ObjectRef } from './object-ref.js';
import { resolveTaskOptions, type ResolvedTaskOptions, type TaskOptions } from './options.js';
import type { CoreRuntime, FunctionRef } from './runtime.js';
import { toSubmitArgs } from './serialization.js';
import { state } from './state.js';
import { callerModuleUrl } from './caller.js';
import { canonicalModuleUrl, codeRootOf } from './code-root.js';
import type { AnyFunction, RemoteCall } from './remote-types.js';
import { keepAlive } from './keep-alive.js';
import { effectiveRuntimeEnv } from './runtime-env.js';

export type { RemoteArg, RemoteArgs, RemoteResult, RemoteCall, AnyFunction } from './remote-types.js';

/** A remote function: call `.remote(...args)` to run it as a task. */
export interface RemoteFunction<A extends readonly unknown[], R, O extends TaskOptions = TaskOptions, F = (...args: A) => R> {
  /**
   * Submit a task; returns at once with a ref to the result (or refs, or a generator of refs). Typed
   * after the function's signature (each overload of an overloaded function).
   */
  readonly remote: RemoteCall<F, O>;
  /** A copy with some options overridden for the calls made through it. */
  options<const O2 extends TaskOptions>(opts: O2): RemoteFunction<A, R, O2, F>;
  /** The task name. */
  readonly name: string;
  /** Where the function lives (module URL and key). */
  readonly descriptor: FunctionRef;
}

/**
 * Make a remote function. Its `.remote()` keeps the function's signature: parameters (each may be
 * passed as a ref), result (`ObjectRef<Awaited<R>>`, a generator of refs for generator functions),
 * overloads. Instantiate a generic function to keep its types: `remote(identity<number>)`. Call it at the top level of an ES module (workers import the module and
 * re-run the `remote()` calls to find the function); the entry script's main code must be guarded
 * with `if (isMain(import.meta))`.
 *
 * @example
 * export const add = remote((a: number, b: number) => a + b);
 * const ref = add.remote(1, 2); // ObjectRef<number>
 */
export function remote<F extends AnyFunction>(fn: F, options: TaskOptions = {}): RemoteFunction<Parameters<F>, ReturnType<F>, TaskOptions, F> {
  if (typeof fn !== 'function') throw new TypeError(`remote() expects a function, got ${typeof fn}`);
  const resolved = resolveTaskOptions(options, `remote(${fn.name || 'anonymous'})`);
  const moduleUrl = canonicalModuleUrl(options.module ?? callerModuleUrl(remote));
  const name = fn.name || 'anonymous';
  const s = state();
  let ordinals = s.ordinals.get(moduleUrl);
  if (!ordinals) s.ordinals.set(moduleUrl, (ordinals = new Map()));
  const ordinal = ordinals.get(name) ?? 0;
  ordinals.set(name, ordinal + 1);
  const key = `${name}#${ordinal}`;
  let reg = s.registry.get(moduleUrl);
  if (!reg) s.registry.set(moduleUrl, (reg = new Map()));
  reg.set(key, { fn: fn as unknown as (...args: unknown[]) => unknown, name });
  const ctorName = (fn as { constructor?: { name?: string } }).constructor?.name;
  const isGenerator = ctorName === 'AsyncGeneratorFunction' || ctorName === 'GeneratorFunction';
  const codeRoot = codeRootOf(moduleUrl);
  return makeRemote<Parameters<F>, ReturnType<F>, F>(
    { moduleUrl, key, name: resolved.name ?? name, ...(codeRoot ? { codeRoot } : {}) },
    resolved,
    options,
    isGenerator,
  );
}

/** @internal also used for Python functions (arguments then travel as msgpack). */
export function makeRemote<A extends unknown[], R, F = (...args: A) => R>(
  desc: FunctionRef,
  resolved: ResolvedTaskOptions,
  raw: TaskOptions,
  isGenerator: boolean,
): RemoteFunction<A, R, TaskOptions, F> {
  const rf = {
    name: desc.name,
    descriptor: desc,
    remote: (...args: unknown[]) => submit(desc, resolved, isGenerator, args),
    options: (opts: TaskOptions) => {
      const merged = { ...raw, ...opts };
      const r = resolveTaskOptions(merged, `${desc.name}.options()`);
      return makeRemote<A, R, F>({ ...desc, name: r.name ?? desc.name }, r, merged, isGenerator);
    },
  };
  return rf as unknown as RemoteFunction<A, R, TaskOptions, F>;
}

/** The runtime, or a clear error if `init()` was not called. @internal */
export function currentRuntime(what: string): CoreRuntime {
  const rt = state().runtime;
  if (!rt) throw new RuntimeStateError(`${what} needs a running tsray: call init() first (or the runtime was shut down)`);
  return rt;
}

function submit(desc: FunctionRef, o: ResolvedTaskOptions, isGenerator: boolean, args: unknown[]): unknown {
  const rt = currentRuntime(`${desc.name}.remote()`);
  const taskId = newId('t');
  const streaming = o.numReturns === 'streaming' || (isGenerator && o.numReturns === 1);
  const n = streaming ? 1 : (o.numReturns as number);
  const returnIds: string[] = [];
  for (let i = 0; i < n; i++) returnIds.push(returnId(taskId, i));
  const submitArgs = toSubmitArgs(args, (i) => `${desc.name}.remote() argument ${i}`, desc.moduleUrl.startsWith('py:'));
  // Refs are created before submission so that the node sees this process as a holder first.
  const refs = returnIds.map((id) => new ObjectRef(id));
  rt.submitTask({
    taskId,
    fn: desc,
    args: submitArgs,
    resources: o.resources,
    request: o.request,
    numReturns: n,
    streaming,
    maxRetries: o.maxRetries,
    retryExceptions: o.retryExceptions,
    returnIds,
    name: desc.name,
    scheduling: o.scheduling ?? rt.context().capturedScheduling,
    runtimeEnv: effectiveRuntimeEnv(o.runtimeEnv),
  });
  if (streaming) return new ObjectRefGenerator(taskId, refs[0]! as ObjectRef<number>);
  return o.numReturns === 1 ? refs[0] : refs;
}

/**
 * The refs yielded by a streaming generator task, in order, as they are produced. Iterate with
 * `for await (const ref of gen)`; each item is an `ObjectRef<T>`.
 */
export class ObjectRefGenerator<T> implements AsyncIterable<ObjectRef<T>> {
  private index = 0;
  /** Made by tsray, not by users (kept in the typings so `new` takes the real arguments). */
  constructor(
    /** Id of the streaming task. */
    readonly taskId: string,
    /** Ref to the end-of-stream object (the number of items, or the task's error). */
    readonly completed: ObjectRef<number>,
  ) {}

  /** The next item's ref, or `done` after the last one. Rejects with the task's error if it failed. */
  async next(): Promise<IteratorResult<ObjectRef<T>, undefined>> {
    try {
      return await this.nextRef();
    } catch (e) {
      TaskError.addDriverFrames(e, this.next, state().isWorker ? 'worker' : 'driver');
      throw e;
    }
  }

  private async nextRef(): Promise<IteratorResult<ObjectRef<T>, undefined>> {
    const rt = currentRuntime('ObjectRefGenerator.next()');
    const itemId = generatorItemId(this.taskId, this.index);
    const ready = await rt.wait([itemId, this.completed.id], 1, undefined);
    keepAlive(this.completed);
    if (ready.includes(0)) {
      this.index++;
      return { value: new ObjectRef<T>(itemId), done: false };
    }
    const [count] = (await rt.getObjects([this.completed.id], undefined)) as [number];
    keepAlive(this.completed);
    if (this.index < count) {
      this.index++;
      return { value: new ObjectRef<T>(itemId), done: false };
    }
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterator<ObjectRef<T>, undefined> {
    return { next: () => this.next() };
  }
}

/**
 * True when `importMeta` belongs to the entry script of the driver process, false in workers and in
 * imported modules. Guard the main code of a script that also defines remote functions:
 * `if (isMain(import.meta)) { await init(); ... }` — workers import the module to find its remote
 * functions and must not run the main code.
 */
export function isMain(importMeta: { url: string }): boolean {
  if (state().isWorker) return false;
  const entry = process.argv[1];
  if (!entry) return false;
  let real = entry;
  try {
    real = realpathSync(entry);
  } catch {
    /* keep as is */
  }
  const url = importMeta.url.replace(/\?.*$/, '');
  return url === pathToFileURL(real).href || url === pathToFileURL(entry).href;
}
