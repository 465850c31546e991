/**
 * Python tasks and actors from TypeScript: `python.remote('pkg.module:function')` and
 * `python.actor<Api>('pkg.module:Class')` run in Python worker processes under the same scheduler.
 * Values cross as msgpack (docs/xlang.md).
 * @module
 */
import { makePythonActorClass, type ActorHandle, type ActorOptions } from './actor.js';
import { ValidationError } from './errors.js';
import { resolveTaskOptions, type TaskOptions } from './options.js';
import { makeRemote, type RemoteFunction } from './remote-function.js';
import { callerModuleUrl } from './caller.js';
import { canonicalModuleUrl, codeRootOf } from './code-root.js';
import type { FunctionRef } from './runtime.js';

/**
 * The descriptor of a Python `module:name` target. Its code root is the project of the TypeScript
 * module naming it (`caller`'s caller): the Python module is looked up in that folder on every node
 * (shipped with the project where the folder is missing).
 */
function parseTarget(target: string, what: string, caller: (...args: never[]) => unknown): FunctionRef {
  const m = typeof target === 'string' ? /^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*)$/.exec(target) : null;
  if (!m) throw new ValidationError('target', `${what}: expected "package.module:name", got ${JSON.stringify(target)}`);
  let codeRoot: string | undefined;
  try {
    codeRoot = codeRootOf(canonicalModuleUrl(callerModuleUrl(caller)));
  } catch {
    codeRoot = undefined; // no TypeScript module on the stack (a REPL): nothing to ship
  }
  return { moduleUrl: `py:${m[1]}`, key: m[2]!, name: m[2]!, ...(codeRoot ? { codeRoot } : {}) };
}

/** A Python actor class: `.remote(...ctorArgs)` starts it; `.options()` as for TS actors. */
export interface PythonActorClass<T> {
  remote(...args: unknown[]): ActorHandle<T>;
  options(opts: ActorOptions): PythonActorClass<T>;
  readonly className: string;
}

/** Python interop. */
export const python = {
  /**
   * A Python function as a remote function. Its arguments and result cross as msgpack (JSON-like
   * values, bytes ↔ Buffer, big ints ↔ bigint, numpy ↔ TypedArray, ObjectRefs). Declare the types:
   * `python.remote<[number, number], number>('mymod:add')`. Python generators stream with
   * `numReturns: 'streaming'`.
   */
  remote<A extends unknown[] = unknown[], R = unknown>(target: string, options: TaskOptions = {}): RemoteFunction<A, R> {
    const fn = parseTarget(target, 'python.remote()', python.remote);
    const resolved = resolveTaskOptions(options, `python.remote(${target})`);
    return makeRemote<A, R>({ ...fn, name: resolved.name ?? fn.name }, resolved, options, false);
  },

  /**
   * A Python class as an actor class. Declare its interface for typed calls:
   * `python.actor<{ add(x: number): number }>('mymod:Counter')`. `async def` methods are awaited in
   * the actor's process and run concurrently (up to maxConcurrency).
   */
  actor<T = Record<string, (...args: never[]) => unknown>>(target: string, options: ActorOptions = {}): PythonActorClass<T> {
    const fn = parseTarget(target, 'python.actor()', python.actor);
    return makePythonActorClass<T>(fn, options);
  },
};
