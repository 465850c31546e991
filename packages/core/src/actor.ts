/**
 * Actors: a class made remote, living in its own worker process, with typed method calls.
 * @module
 */
import { inspect } from 'node:util';
import { resourceRequestFromOptions, type ResourceRequest } from '@tsray/scheduler';
import { ActorMethodNotFoundError, ValidationError } from './errors.js';
import { newId, returnId } from './ids.js';
import { ACTOR_MARKER, ObjectRef, REF_MARKER } from './object-ref.js';
import { setHandleReviver } from './serialization.js';
import { setXlangHandleReviver } from './xlang.js';
import type { RemoteArgs, RemoteCall } from './remote-types.js';
import { currentRuntime, ObjectRefGenerator } from './remote-function.js';
import { callerModuleUrl } from './caller.js';
import { canonicalModuleUrl, codeRootOf } from './code-root.js';
import type { ActorCreation, FunctionRef } from './runtime.js';
import { type ResolvedScheduling, resolveScheduling, type SchedulingStrategy } from './scheduling-strategy.js';
import { toSubmitArgs } from './serialization.js';
import { state } from './state.js';
import type { NormalizedRuntimeEnv, RuntimeEnv } from '@tsray/runtime-env';
import { effectiveRuntimeEnv, resolveRuntimeEnvOption } from './runtime-env.js';

/** Options of an actor class (`actor(Class, options)`, `Cls.options(...)`), as Ray's. */
export interface ActorOptions {
  /** CPUs held while the actor lives. Default: 1 to schedule, 0 held (as Ray). */
  numCpus?: number;
  /** GPUs held while the actor lives; its process sees them in CUDA_VISIBLE_DEVICES. */
  numGpus?: number;
  /** Logical memory held (bytes). */
  memory?: number;
  /** Custom resources held. */
  resources?: Record<string, number>;
  /** Require a node with this accelerator type. */
  acceleratorType?: string;
  /** Register the actor under this name (unique per namespace). */
  name?: string;
  /** Namespace of the name. Default: the job's namespace (`init({namespace})`, else anonymous). */
  namespace?: string;
  /** 'detached': the actor outlives its creator until killed or the cluster stops. */
  lifetime?: 'detached' | 'non_detached';
  /** With `name`: return the existing actor of that name instead of failing. */
  getIfExists?: boolean;
  /** Restarts after the actor process dies (-1 = forever). Default 0. */
  maxRestarts?: number;
  /** Retries of calls in flight when the process died (-1 = forever). Default 0. */
  maxTaskRetries?: number;
  /** Calls of an async actor running at once. Default 1000 for async actors, 1 otherwise. */
  maxConcurrency?: number;
  /** Named groups with their own concurrency limit, e.g. `{ io: 2, compute: 4 }`. */
  concurrencyGroups?: Record<string, number>;
  /** Method -> concurrency group. */
  methodConcurrencyGroups?: Record<string, string>;
  /** URL of the module that defines the class, when it cannot be found from the call stack. */
  module?: string;
  /** Where the actor may run: 'DEFAULT', 'SPREAD', a placement group bundle, or a node. */
  schedulingStrategy?: SchedulingStrategy;
  /**
   * Runtime environment of the actor's process (pip/npm packages, env vars, working dir, Python
   * modules), merged with the job's field by field, envVars key by key.
   */
  runtimeEnv?: RuntimeEnv;
  /**
   * Extra fields of the actor's row in the state API (`listActors()`, `tsray list actors`), e.g. an
   * LLM engine's `{ tensorParallelSize: 2 }`. Values: strings, finite numbers, booleans.
   */
  stateInfo?: Record<string, string | number | boolean>;
}

/** Options of one actor method call (`handle.method.options({...}).remote()`). */
export interface ActorMethodOptions {
  /** Number of return objects (the method returns an array of that length). Default 1. */
  numReturns?: number;
  /** Name of the call for logs. */
  name?: string;
  /** Run this call in another concurrency group. */
  concurrencyGroup?: string;
}

/** A method of an actor handle: `.remote(...args)` calls it. */
export interface ActorMethod<A extends readonly unknown[], R, F = (...args: A) => R> {
  /**
   * Call the method; returns a ref to its result at once. Calls from one caller run in order. Typed
   * after the method's signature (each overload of an overloaded method), as `remote()` does.
   */
  readonly remote: RemoteCall<F, object>;
  /** A copy with call options. */
  options(opts: ActorMethodOptions): ActorMethod<A, R, F>;
}

type MethodKeys<T> = { [K in keyof T]: T[K] extends (...args: never[]) => unknown ? K : never }[keyof T] & string;

/** The information that identifies an actor; what travels when a handle is passed to a task. */
export interface ActorInfo {
  readonly actorId: string;
  readonly className: string;
  readonly methods: readonly string[];
  readonly module: string;
  readonly key: string;
  /** 'python' for Python actors (methods are not known in advance; arguments travel as msgpack). */
  readonly language?: 'python';
}

/** A handle to an actor of class `T`: `handle.method.remote(...)`. Serializable (pass it to tasks and actors). */
export type ActorHandle<T> = {
  readonly [K in MethodKeys<T>]: T[K] extends (...args: infer A) => infer R ? ActorMethod<A, R, T[K]> : never;
} & {
  /** Id and class of the actor. */
  readonly [ACTOR_INFO]: ActorInfo;
};

/** An actor class: `.remote(...ctorArgs)` creates an actor. */
export interface ActorClass<C extends abstract new (...args: never[]) => unknown> {
  /** Create an actor; returns its handle at once (the constructor runs in the actor's process). */
  remote(...args: RemoteArgs<ConstructorParameters<C>>): ActorHandle<InstanceType<C>>;
  /** A copy with some options overridden. */
  options(opts: ActorOptions): ActorClass<C>;
  /** The class name. */
  readonly className: string;
}

/** Symbol to read a handle's ActorInfo. */
export const ACTOR_INFO: unique symbol = Symbol.for('tsray.actorInfo') as never;

const NOT_METHODS = new Set(['then', 'toJSON', 'constructor', 'asymmetricMatch', '$$typeof', 'nodeType', 'tagName', 'toString', 'valueOf']);

/** Prototype of handles: reports unknown methods clearly instead of `undefined.remote`. */
const handleProto: object = new Proxy(Object.create(null) as object, {
  get(_t, prop, receiver) {
    if (typeof prop === 'symbol') {
      if (prop === inspect.custom)
        return () =>
          `ActorHandle(${(receiver as Record<string, ActorInfo>)[ACTOR_MARKER]?.className ?? '?'} ${(receiver as Record<string, string>)[REF_MARKER]})`;
      if (prop === Symbol.toPrimitive) return undefined;
      return undefined;
    }
    if (NOT_METHODS.has(prop)) return prop === 'toString' ? () => `ActorHandle(${(receiver as Record<string, string>)[REF_MARKER]})` : undefined;
    const info = (receiver as Record<string, ActorInfo>)[ACTOR_MARKER];
    throw new ActorMethodNotFoundError(info?.className ?? 'actor', prop, info?.methods ?? []);
  },
});

/** Prototype of Python actor handles: any method name makes a call (the Python class decides). */
const dynamicProto: object = new Proxy(Object.create(null) as object, {
  get(_t, prop, receiver) {
    if (typeof prop === 'symbol') {
      if (prop === inspect.custom) return () => `ActorHandle(python ${(receiver as Record<string, ActorInfo>)[ACTOR_MARKER]?.className ?? '?'})`;
      return undefined;
    }
    if (NOT_METHODS.has(prop)) return undefined;
    const info = (receiver as Record<symbol, ActorInfo>)[ACTOR_INFO];
    const m = makeMethod(info, prop, {});
    Object.defineProperty(receiver, prop, { value: m, enumerable: false });
    return m;
  },
});

/** Methods of a class (own and inherited prototype functions, constructor excluded). */
function methodNames(cls: abstract new (...args: never[]) => unknown): string[] {
  const names = new Set<string>();
  for (let p = cls.prototype as object | null; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) {
      if (k === 'constructor') continue;
      const d = Object.getOwnPropertyDescriptor(p, k);
      if (d && typeof d.value === 'function') names.add(k);
    }
  }
  return [...names];
}

function isAsyncClass(cls: abstract new (...args: never[]) => unknown): boolean {
  for (let p = cls.prototype as object | null; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) {
      const d = Object.getOwnPropertyDescriptor(p, k);
      const n = (d?.value as { constructor?: { name?: string } } | undefined)?.constructor?.name;
      if (n === 'AsyncFunction' || n === 'AsyncGeneratorFunction') return true;
    }
  }
  return false;
}

/** Build a handle object for an actor (also used when a handle is deserialized). @internal */
export function makeHandle<T>(info: ActorInfo): ActorHandle<T> {
  // Python actors (found by name, or revived from another process) have no method list: any name calls.
  if (!info.language && (info.module.startsWith('py:') || (info.methods.length === 0 && info.module === ''))) info = { ...info, language: 'python' };
  const h = Object.create(info.language === 'python' ? dynamicProto : handleProto) as Record<string | symbol, unknown>;
  // Enumerable own data: survives structured clone; REF_MARKER makes the handle count as a ref.
  h[REF_MARKER] = info.actorId;
  h[ACTOR_MARKER] = { ...info, methods: [...info.methods] };
  Object.defineProperty(h, ACTOR_INFO, { value: info, enumerable: false });
  for (const m of info.methods) {
    Object.defineProperty(h, m, { value: makeMethod(info, m, {}), enumerable: false });
  }
  // Hold the actor alive while this handle lives (non-detached actors stop when no handle remains).
  trackHandle(h, info.actorId);
  return h as unknown as ActorHandle<T>;
}

function makeMethod(info: ActorInfo, method: string, opts: ActorMethodOptions): ActorMethod<unknown[], unknown> {
  return {
    remote: (...args: unknown[]) => callMethod(info, method, opts, args) as never,
    options: (o: ActorMethodOptions) => makeMethod(info, method, { ...opts, ...validateMethodOptions(o, `${info.className}.${method}.options()`) }),
  };
}

function validateMethodOptions(o: ActorMethodOptions, where: string): ActorMethodOptions {
  for (const k of Object.keys(o)) {
    if (!['numReturns', 'name', 'concurrencyGroup'].includes(k)) throw new ValidationError(k, `${where}: unknown option "${k}"`);
  }
  if (o.numReturns !== undefined && (!Number.isInteger(o.numReturns) || o.numReturns < 0)) {
    throw new ValidationError('numReturns', `${where}: numReturns must be an integer >= 0`);
  }
  return o;
}

function callMethod(info: ActorInfo, method: string, opts: ActorMethodOptions, args: unknown[]): unknown {
  const rt = currentRuntime(`${info.className}.${method}.remote()`);
  const taskId = newId('t');
  const n = opts.numReturns ?? 1;
  const returnIds: string[] = [];
  for (let i = 0; i < n; i++) returnIds.push(returnId(taskId, i));
  const submitArgs = toSubmitArgs(args, (i) => `${info.className}.${method}.remote() argument ${i}`, info.language === 'python');
  const refs = returnIds.map((id) => new ObjectRef(id));
  rt.submitTask({
    taskId,
    fn: { moduleUrl: info.module, key: info.key, name: info.className },
    args: submitArgs,
    resources: new Map(),
    numReturns: n,
    streaming: false,
    maxRetries: 0,
    retryExceptions: false,
    returnIds,
    name: opts.name ?? `${info.className}.${method}`,
    actorId: info.actorId,
    method,
    concurrencyGroup: opts.concurrencyGroup ?? '',
  });
  return n === 1 ? refs[0] : refs;
}

// Handles count as refs to the actor id (see ObjectRef's tracking).
const handleRegistry = new FinalizationRegistry<string>((id) => releaseHandle(id));
const handleCounts = new Map<string, number>();
function trackHandle(h: object, id: string): void {
  const n = handleCounts.get(id) ?? 0;
  handleCounts.set(id, n + 1);
  if (n === 0) state().runtime?.refAdded(id);
  handleRegistry.register(h, id);
}
function releaseHandle(id: string): void {
  const n = handleCounts.get(id) ?? 0;
  if (n <= 1) {
    handleCounts.delete(id);
    state().runtime?.refRemoved(id);
  } else handleCounts.set(id, n - 1);
}

/** True for actor handles. */
export function isActorHandle(v: unknown): v is ActorHandle<unknown> {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Record<string, unknown>)[ACTOR_MARKER] === 'object' &&
    typeof (v as Record<string, unknown>)[REF_MARKER] === 'string'
  );
}

const KNOWN = new Set([
  'acceleratorType',
  'numCpus',
  'numGpus',
  'memory',
  'resources',
  'name',
  'namespace',
  'lifetime',
  'getIfExists',
  'maxRestarts',
  'maxTaskRetries',
  'maxConcurrency',
  'concurrencyGroups',
  'methodConcurrencyGroups',
  'module',
  'schedulingStrategy',
  'runtimeEnv',
  'stateInfo',
]);

interface ResolvedActorOptions {
  schedule: ResourceRequest;
  hold: ResourceRequest;
  opts: ActorOptions;
  scheduling: ResolvedScheduling | undefined;
  runtimeEnv: NormalizedRuntimeEnv | undefined;
}

function resolveActorOptions(o: ActorOptions, where: string, methods: string[]): ResolvedActorOptions {
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw new ValidationError(k, `${where}: unknown option "${k}" (known: ${[...KNOWN].join(', ')})`);
  let schedule: ResourceRequest;
  let hold: ResourceRequest;
  try {
    const base = { numGpus: o.numGpus, memory: o.memory, resources: o.resources, acceleratorType: o.acceleratorType };
    // Ray's default: 1 CPU to schedule, 0 held while running; explicit numCpus is held for the lifetime.
    schedule = resourceRequestFromOptions({ ...base, numCpus: o.numCpus ?? 1 });
    hold = resourceRequestFromOptions({ ...base, numCpus: o.numCpus ?? 0 });
  } catch (e) {
    throw new ValidationError((e as { option?: string }).option ?? 'resources', `${where}: ${(e as Error).message}`);
  }
  const int = (name: keyof ActorOptions, v: unknown, min: number) => {
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < min))
      throw new ValidationError(name, `${where}: ${name} must be an integer >= ${min}, got ${String(v)}`);
  };
  int('maxRestarts', o.maxRestarts, -1);
  int('maxTaskRetries', o.maxTaskRetries, -1);
  int('maxConcurrency', o.maxConcurrency, 1);
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name === '')) throw new ValidationError('name', `${where}: name must be a non-empty string`);
  if (o.namespace !== undefined && (typeof o.namespace !== 'string' || o.namespace === ''))
    throw new ValidationError('namespace', `${where}: namespace must be a non-empty string`);
  if (o.lifetime !== undefined && o.lifetime !== 'detached' && o.lifetime !== 'non_detached') {
    throw new ValidationError('lifetime', `${where}: lifetime must be 'detached' or 'non_detached'`);
  }
  if (o.getIfExists && !o.name) throw new ValidationError('getIfExists', `${where}: getIfExists needs a name`);
  for (const [g, n] of Object.entries(o.concurrencyGroups ?? {})) int('concurrencyGroups', n, 1), void g;
  for (const [m, g] of Object.entries(o.methodConcurrencyGroups ?? {})) {
    if (!methods.includes(m)) throw new ValidationError('methodConcurrencyGroups', `${where}: methodConcurrencyGroups names "${m}", which is not a method`);
    if (!(g in (o.concurrencyGroups ?? {})))
      throw new ValidationError('methodConcurrencyGroups', `${where}: concurrency group "${g}" is not in concurrencyGroups`);
  }
  checkStateInfo(o.stateInfo, where);
  return { schedule, hold, opts: o, scheduling: resolveScheduling(o.schedulingStrategy, where), runtimeEnv: resolveRuntimeEnvOption(o.runtimeEnv) };
}

/** `stateInfo` must be a plain object of strings, finite numbers and booleans (it travels as JSON). */
function checkStateInfo(info: unknown, where: string): void {
  if (info === undefined) return;
  if (typeof info !== 'object' || info === null || Array.isArray(info))
    throw new ValidationError('stateInfo', `${where}: stateInfo must be an object of strings, numbers and booleans`);
  for (const [k, v] of Object.entries(info)) {
    if (!(typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))))
      throw new ValidationError('stateInfo', `${where}: stateInfo.${k} must be a string, a finite number or a boolean, got ${String(v)}`);
  }
}

/**
 * Make a class remote. Call it at the top level of a module (workers import the module to find the
 * class). `Cls.remote(...args)` starts an actor in its own process and returns a typed handle.
 *
 * @example
 * class Counter { n = 0; increment() { return ++this.n; } }
 * export const RemoteCounter = actor(Counter);
 * const c = RemoteCounter.remote();
 * await get(c.increment.remote()); // 1
 */
export function actor<C extends abstract new (...args: never[]) => unknown>(cls: C, options: ActorOptions = {}): ActorClass<C> {
  if (typeof cls !== 'function') throw new TypeError(`actor() expects a class, got ${typeof cls}`);
  const moduleUrl = canonicalModuleUrl(options.module ?? callerModuleUrl(actor));
  const className = cls.name || 'Actor';
  const s = state();
  let ordinals = s.ordinals.get(moduleUrl);
  if (!ordinals) s.ordinals.set(moduleUrl, (ordinals = new Map()));
  const ordinal = ordinals.get(`class ${className}`) ?? 0;
  ordinals.set(`class ${className}`, ordinal + 1);
  const key = `class ${className}#${ordinal}`;
  let reg = s.registry.get(moduleUrl);
  if (!reg) s.registry.set(moduleUrl, (reg = new Map()));
  reg.set(key, { fn: cls as unknown as (...args: unknown[]) => unknown, name: className });
  const methods = methodNames(cls);
  const isAsync = isAsyncClass(cls);
  const codeRoot = codeRootOf(moduleUrl);
  return makeClass<C>({ moduleUrl, key, name: className, ...(codeRoot ? { codeRoot } : {}) }, methods, isAsync, options);
}

function makeClass<C extends abstract new (...args: never[]) => unknown>(
  fn: FunctionRef,
  methods: string[],
  isAsync: boolean,
  raw: ActorOptions,
): ActorClass<C> {
  const resolved = resolveActorOptions(raw, `actor(${fn.name})`, methods);
  return {
    className: fn.name,
    options: (o: ActorOptions) => makeClass<C>(fn, methods, isAsync, { ...raw, ...o }),
    remote: (...args: unknown[]) => createActor<C>(fn, methods, isAsync, resolved, args),
  } as ActorClass<C>;
}

/** @internal Python actor classes (see python.ts). */
export function makePythonActorClass<T>(
  fn: FunctionRef,
  options: ActorOptions,
): { remote(...args: unknown[]): ActorHandle<T>; options(o: ActorOptions): ReturnType<typeof makePythonActorClass<T>>; className: string } {
  const resolved = resolveActorOptions(options, `python.actor(${fn.name})`, []);
  return {
    className: fn.name,
    options: (o: ActorOptions) => makePythonActorClass<T>(fn, { ...options, ...o }),
    remote: (...args: unknown[]) => createActor(fn, [], true, resolved, args, 'python') as unknown as ActorHandle<T>,
  };
}

function createActor<C extends abstract new (...args: never[]) => unknown>(
  fn: FunctionRef,
  methods: string[],
  isAsync: boolean,
  r: ResolvedActorOptions,
  args: unknown[],
  language?: 'python',
): ActorHandle<InstanceType<C>> {
  const rt = currentRuntime(`${fn.name}.remote()`);
  const o = r.opts;
  const actorId = newId('a');
  const groups = Object.entries(o.concurrencyGroups ?? {}).map(([name, maxConcurrency]) => ({
    name,
    maxConcurrency,
    methods: Object.entries(o.methodConcurrencyGroups ?? {})
      .filter(([, g]) => g === name)
      .map(([m]) => m),
  }));
  const creation: ActorCreation = {
    actorId,
    className: fn.name,
    methods,
    name: o.name ?? '',
    namespace: o.namespace ?? '',
    detached: o.lifetime === 'detached',
    getIfExists: o.getIfExists === true,
    maxRestarts: o.maxRestarts ?? 0,
    maxTaskRetries: o.maxTaskRetries ?? 0,
    maxConcurrency: o.maxConcurrency ?? (isAsync ? 1000 : 1),
    concurrencyGroups: groups,
    hold: new Map(r.hold.amounts),
    holdRequest: r.hold,
    isAsync,
    ...(o.stateInfo ? { stateInfo: { ...o.stateInfo } } : {}),
  };
  const submitArgs = toSubmitArgs(args, (i) => `${fn.name}.remote() constructor argument ${i}`, language === 'python');
  const taskId = newId('t');
  const creationRef = new ObjectRef(returnId(taskId, 0));
  // The runtime may answer with another actor id (getIfExists found one) or throw (name taken).
  const finalId = rt.createActor({
    taskId,
    fn,
    args: submitArgs,
    resources: new Map(r.schedule.amounts),
    request: r.schedule,
    numReturns: 1,
    streaming: false,
    maxRetries: 0,
    retryExceptions: false,
    returnIds: [creationRef.id],
    name: `${fn.name}.__init__`,
    actorCreation: creation,
    scheduling: r.scheduling ?? rt.context().capturedScheduling,
    runtimeEnv: effectiveRuntimeEnv(r.runtimeEnv),
  });
  const handle = makeHandle<InstanceType<C>>({
    actorId: finalId,
    className: fn.name,
    methods,
    module: fn.moduleUrl,
    key: fn.key,
    ...(language ? { language } : {}),
  });
  creationRef.release();
  return handle;
}

/** Options of `getActor`. */
export interface GetActorOptions {
  /** Namespace to look in. Default: the job's namespace. */
  namespace?: string;
}

/**
 * The handle of a named actor, from this or another driver process. Rejects with
 * `ActorNotFoundError` (naming the namespace) when there is none.
 */
export async function getActor<T = Record<string, (...args: never[]) => unknown>>(name: string, options: GetActorOptions = {}): Promise<ActorHandle<T>> {
  if (typeof name !== 'string' || name === '') throw new ValidationError('name', 'getActor(): name must be a non-empty string');
  const info = await currentRuntime('getActor()').getActor(name, options.namespace);
  return makeHandle<T>(info);
}

/** Options of `kill`. */
export interface KillOptions {
  /** Do not restart the actor even if it has restarts left. Default true (as Ray). */
  noRestart?: boolean;
}

/** Kill an actor's process at once. Pending and later calls reject with `ActorDiedError`. */
export function kill(handle: ActorHandle<unknown>, options: KillOptions = {}): void {
  if (!isActorHandle(handle)) throw new TypeError('kill() expects an actor handle');
  currentRuntime('kill()').killActor((handle as unknown as Record<string, string>)[REF_MARKER]!, options.noRestart !== false);
}

/** The handle's actor info. */
export function actorInfo(handle: ActorHandle<unknown>): ActorInfo {
  return (handle as unknown as Record<symbol, ActorInfo>)[ACTOR_INFO];
}

export { ObjectRefGenerator };

setHandleReviver((info) => makeHandle(info as ActorInfo));
setXlangHandleReviver((i) =>
  makeHandle({
    actorId: i.actorId,
    className: i.className,
    methods: i.methods,
    module: '',
    key: '',
    ...(i.methods.length === 0 ? { language: 'python' as const } : {}),
  }),
);
