/**
 * The tsray error taxonomy. Every class says what happened and where to look; `isInstance` works across
 * duplicated copies of the package (a symbol marker instead of `instanceof`).
 * @module
 */

import { inspect } from 'node:util';
import { type ErrorClass, errorInstanceOf, isInternalFrame, localErrorClass, raisedAt, setErrorClass } from './remote-error-class.js';

const MARKER = Symbol.for('tsray.error');
/** Marks TaskErrors, whatever their prototype chain (see `taskErrorPrototype`). */
const TASK_ERROR = Symbol.for('tsray.taskError');

/** Base class of every error tsray throws. */
export class TsrayError extends Error {
  /** @internal */
  readonly [MARKER] = true;
  override name = 'TsrayError';
  /** True for any tsray error, also one thrown by another copy of the package. */
  static isInstance(e: unknown): e is TsrayError {
    return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[MARKER] === true;
  }
  /**
   * `instanceof` as usual, and also true for a TaskError whose prototype chain is its remote
   * class's (`TaskError(RangeError)` is a RangeError, a TaskError and a TsrayError).
   */
  static override [Symbol.hasInstance](x: unknown): boolean {
    // `this` is the class right of `instanceof` (TsrayError or a subclass), not TsrayError itself.
    // biome-ignore lint/complexity/noThisInStatic: the class being checked against
    return isInstanceOf(this, x);
  }
}

/** The information a worker sends back about an exception thrown by a task. */
export interface RemoteErrorInfo {
  /** Class name of the remote error (`Error`, `TypeError`, a user class...). */
  name: string;
  message: string;
  /** Stack trace as printed in the worker. */
  stack: string;
  /** Name of the task (function) that threw. */
  taskName: string;
  /** Process id of the worker. */
  pid: number;
  /** `code` property of the remote error, if any. */
  code?: string;
  /** The error was itself a TaskError propagated from an upstream task. */
  upstream?: RemoteErrorInfo;
  /** Extra own enumerable properties of the remote error that cross languages (docs/xlang.md). */
  props?: Record<string, unknown>;
  /** The language the error was raised in: 'typescript' | 'python'. */
  language?: string;
  /** The error it came from (JS `cause`, Python `raise ... from`), and so on down the chain. */
  cause?: RemoteErrorInfo;
}

/** `x instanceof cls` for TsrayError classes: the prototype chain, or a TaskError's marker (see `taskErrorPrototype`). */
function isInstanceOf(cls: unknown, x: unknown): boolean {
  if (Function.prototype[Symbol.hasInstance].call(cls, x)) return true;
  return (cls === TsrayError || cls === TaskError) && typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[TASK_ERROR] === true;
}

/** An Error rebuilt from a remote error's information: an instance of its local class when it has one (cause chain kept). */
function rebuiltError(info: RemoteErrorInfo, depth = 0): Error {
  const e = errorInstanceOf(localErrorClass(info.name, info.language) ?? Error, info.name, info.message, info.stack);
  if (info.code !== undefined) (e as Error & { code?: string }).code = info.code;
  if (info.props) Object.assign(e, info.props);
  if (info.cause && depth < MAX_CAUSE_DEPTH) e.cause = rebuiltError(info.cause, depth + 1);
  return e;
}

/** How many links of a cause chain are kept (a longer chain is cut: it only grows the error object). @internal */
export const MAX_CAUSE_DEPTH = 16;

/** The cause chain of a remote error as text, one `--- caused by ---` section per link. */
function causeText(info: RemoteErrorInfo): string {
  let out = '';
  for (let c = info.cause, n = 0; c && n < MAX_CAUSE_DEPTH; c = c.cause, n++) out += `\n--- caused by ---\n${shownStack(c)}`;
  return out;
}

/** A remote stack as shown: the worker's own frames (tsray's, Node's) left out. */
function shownStack(info: RemoteErrorInfo): string {
  const stack = info.stack || `${info.name}: ${info.message}`;
  return stack
    .split('\n')
    .filter((line) => !(/^\s+at /.test(line) && isInternalFrame(line)))
    .join('\n');
}

/**
 * Register an error class so that a task's error of that class name (thrown in a TypeScript task,
 * or raised in a Python one) is rebuilt as one: the `TaskError` is then also an instance of `cls`
 * (`e instanceof MyError`), and its `cause` a `MyError`. JavaScript's standard classes (RangeError,
 * TypeError, ...) need no registration. `name` defaults to `cls.name`.
 *
 * @example
 * export class QuotaError extends Error { override name = 'QuotaError'; }
 * registerErrorClass(QuotaError);
 */
export function registerErrorClass(cls: ErrorClass, name: string = cls?.name): void {
  if (typeof cls !== 'function' || !(cls.prototype instanceof Error || cls === Error))
    throw new ValidationError(
      'cls',
      `registerErrorClass(): expected a class extending Error, got ${typeof cls === 'function' ? `class ${cls.name}` : typeof cls}`,
    );
  if (typeof name !== 'string' || name.length === 0) throw new ValidationError('name', 'registerErrorClass(): the name must be a non-empty string');
  setErrorClass(name, cls);
}

const prototypes = new WeakMap<ErrorClass, object>();

/**
 * The prototype of TaskErrors of remote class `cls`: `cls.prototype` with TaskError's methods, so
 * that the error is an instance of `cls` (`instanceof TaskError` holds through `Symbol.hasInstance`).
 */
function taskErrorPrototype(cls: ErrorClass): object {
  let proto = prototypes.get(cls);
  if (!proto) {
    proto = Object.create(cls.prototype) as object;
    for (const from of [TsrayError.prototype, TaskError.prototype])
      for (const key of Reflect.ownKeys(from)) Object.defineProperty(proto, key, Object.getOwnPropertyDescriptor(from, key)!);
    prototypes.set(cls, proto);
  }
  return proto;
}

/**
 * A task threw. `get` of its result (or of any task that depends on it) rejects with this error.
 * It is also an instance of the remote error's class when that is a standard Error class, a class
 * registered with `registerErrorClass`, or a Python built-in with a JavaScript counterpart
 * (ValueError → RangeError, TypeError, NameError → ReferenceError): `e instanceof RangeError`.
 * `remoteName`, `remoteMessage`, `remoteStack` are the remote error's, `cause` an instance of its
 * class. Printed (`console.error(e)`, `String(e)`), it shows the remote stack once, headed
 * `(taskName pid=N)`, then where the driver awaited it.
 */
export class TaskError extends TsrayError {
  override name = 'TaskError';
  /** @internal */
  readonly [TASK_ERROR] = true;
  readonly remoteName: string;
  readonly remoteMessage: string;
  readonly remoteStack: string;
  readonly taskName: string;
  readonly pid: number;
  readonly info: RemoteErrorInfo;
  constructor(info: RemoteErrorInfo) {
    const root = info.upstream ?? info;
    const at = raisedAt(root.stack, root.language);
    super(
      `task ${info.taskName} (worker pid=${info.pid}) failed: ${root.name}: ${root.message}` +
        (at ? ` (${at})` : '') +
        (info.upstream ? ` (raised upstream in task ${root.taskName})` : ''),
    );
    this.info = info;
    this.remoteName = root.name;
    this.remoteMessage = root.message;
    this.remoteStack = root.stack;
    this.taskName = info.taskName;
    this.pid = info.pid;
    this.cause = rebuiltError(root);
    // The one printed form: the remote stack once, under its task and pid (Ray's `ray::f() (pid=N)`).
    this.stack = `TaskError(${root.name}): ${this.message}\n(${root.taskName} pid=${root.pid}) ${shownStack(root)}${causeText(root)}`;
    const cls = localErrorClass(root.name, root.language);
    if (cls && cls !== Error) Object.setPrototypeOf(this, taskErrorPrototype(cls));
  }

  /** The printed form (remote stack once, then the driver's frames): what `String(e)` gives. */
  override toString(): string {
    return this.stack ?? `TaskError: ${this.message}`;
  }

  /** `console.log` / `util.inspect` print the stack alone (no field dump repeating it). */
  [inspect.custom](): string {
    return this.toString();
  }

  /**
   * Append the frames of the code that awaited this error (the user's `await get(...)` line), from
   * V8's async stack of the call to `fn`, headed `(driver pid=N)` (or `(worker pid=N)` in a task).
   * Called by `get()` and generator iteration. @internal
   */
  static addDriverFrames(e: unknown, fn: (...args: never[]) => unknown, where: 'driver' | 'worker' = 'driver'): void {
    if (typeof e !== 'object' || e === null || (e as Record<symbol, unknown>)[TASK_ERROR] !== true) return;
    const holder: { stack?: string } = {};
    Error.captureStackTrace(holder, fn);
    const frames = (holder.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line) && !isInternalFrame(line));
    const te = e as TaskError;
    const base = (te.stack ?? '').split(/\n\((?:driver|worker) pid=\d+\)\n/)[0];
    te.stack = frames.length > 0 ? `${base}\n(${where} pid=${process.pid})\n${frames.join('\n')}` : base;
  }
}

/** The worker running a task died (crash, `process.exit`, killed) and the retries were used up. */
export class WorkerCrashedError extends TsrayError {
  override name = 'WorkerCrashedError';
  constructor(
    readonly taskName: string,
    readonly detail: string,
    readonly attempts: number,
  ) {
    super(`the worker running task ${taskName} died (${detail}) after ${attempts} attempt(s); ` + `raise maxRetries to retry more`);
  }
}

/** `get` or `wait` with a timeout that elapsed before the objects were ready. */
export class GetTimeoutError extends TsrayError {
  override name = 'GetTimeoutError';
  constructor(
    readonly timeoutSeconds: number,
    readonly pending: string[],
  ) {
    super(
      `get timed out after ${timeoutSeconds}s waiting for ${pending.length} object(s): ${pending.slice(0, 5).join(', ')}${pending.length > 5 ? ', ...' : ''}`,
    );
  }
}

/** The task was cancelled with `cancel(ref)`. */
export class TaskCancelledError extends TsrayError {
  override name = 'TaskCancelledError';
  constructor(
    readonly taskName: string,
    readonly forced: boolean,
  ) {
    super(`task ${taskName} was cancelled${forced ? ' (force: its worker was killed)' : ''}`);
  }
}

/** The object store is full and spilling is off, or the object is larger than the store. */
export class ObjectStoreFullError extends TsrayError {
  override name = 'ObjectStoreFullError';
  constructor(
    readonly requested: number,
    readonly capacity: number,
    readonly used: number,
  ) {
    super(
      `object store full: cannot place ${requested} bytes (capacity ${capacity}, in use ${used}); ` +
        `drop references to large objects, raise init({objectStoreMemory}) or enable spilling`,
    );
  }
}

/** An object was lost (its spill file vanished, its node died). */
export class ObjectLostError extends TsrayError {
  override name = 'ObjectLostError';
  constructor(
    readonly objectId: string,
    reason: string,
  ) {
    super(`object ${objectId} is lost: ${reason}`);
  }
}

/** A value could not be serialized; `path` names the offending field (e.g. `args[0].handler`). */
export class SerializationError extends TsrayError {
  override name = 'SerializationError';
  constructor(
    readonly path: string,
    readonly valueType: string,
    detail?: string,
  ) {
    super(
      `cannot serialize ${valueType} at ${path}${detail ? ` (${detail})` : ''}: tsray values follow structured-clone rules ` +
        `(plain objects, arrays, Map, Set, Date, RegExp, BigInt, Error, Buffer/TypedArray, ObjectRef); functions, symbols, ` +
        `sockets and other handles cannot cross processes`,
    );
  }
}

/** An option has a bad value (negative or NaN resources, unknown option...). `option` names it. */
export class ValidationError extends TsrayError {
  override name = 'ValidationError';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(message);
  }
}

/** The error of a `wait()` given the same ref twice (each runtime's `wait` checks). Not exported by the package. */
export function duplicateRefError(id: string): ValidationError {
  return new ValidationError('refs', `wait() got the same ref twice: ${id}`);
}

/** `init()` was called twice, or an API was used before `init()` / after `shutdown()`. */
export class RuntimeStateError extends TsrayError {
  override name = 'RuntimeStateError';
}

/**
 * A worker imported a module that runs driver code (it called `init()`) at import time. Guard the
 * entry script's main code with `if (isMain(import.meta)) { ... }`, or define remote functions in a
 * module of their own.
 */
export class DriverCodeInWorkerError extends TsrayError {
  override name = 'DriverCodeInWorkerError';
  constructor(readonly moduleUrl: string) {
    super(
      `init() was called while a tsray worker was importing ${moduleUrl}: the module runs driver code at import time. ` +
        `Guard the main code with "if (isMain(import.meta)) { ... }" (see README, "Where remote functions live"), ` +
        `or move remote functions into a module of their own`,
    );
  }
}

/** A worker could not find the remote function after importing its module. */
export class FunctionNotFoundError extends TsrayError {
  override name = 'FunctionNotFoundError';
  constructor(
    readonly moduleUrl: string,
    readonly key: string,
  ) {
    super(
      `remote function ${key} was not registered when a worker imported ${moduleUrl}: ` +
        `call remote() at the top level of the module (not inside a function or a condition), in the same order on every import`,
    );
  }
}

/** A method that the actor's class does not have was called on its handle. */
export class ActorMethodNotFoundError extends TsrayError {
  override name = 'ActorMethodNotFoundError';
  constructor(
    readonly className: string,
    readonly method: string,
    readonly methods: readonly string[],
  ) {
    super(`actor class ${className} has no method "${method}" (methods: ${methods.join(', ') || 'none'})`);
  }
}

/** How an actor died, as carried by ActorDiedError. */
export interface ActorDeathInfo {
  actorId: string;
  className: string;
  /** 'killed' | 'crashed' | 'constructor' | 'out_of_scope' | 'name_taken' | 'node_died' | 'unknown_actor' | 'unschedulable' | 'shutdown' | 'gcs_unavailable' (a named actor's registration waited too long for the head); 'restarting' (ActorUnavailableError) */
  reason: string;
  detail: string;
  /** The constructor's error when reason is 'constructor'. */
  cause?: RemoteErrorInfo;
}

/**
 * The actor is dead: its calls (pending and later) reject with this error. `reason` says why: killed,
 * crashed (exit code / signal in `detail`), its constructor threw (`cause`), all handles gone, the
 * name was taken.
 */
export class ActorDiedError extends TsrayError {
  override name = 'ActorDiedError';
  readonly actorId: string;
  readonly className: string;
  readonly reason: string;
  constructor(readonly info: ActorDeathInfo) {
    super(
      `actor ${info.className} (${info.actorId}) is dead: ${info.detail}` +
        (info.cause ? `\n--- constructor error ---\n${info.cause.stack || `${info.cause.name}: ${info.cause.message}`}` : ''),
    );
    this.actorId = info.actorId;
    this.className = info.className;
    this.reason = info.reason;
    if (info.cause) this.cause = new TaskError(info.cause);
  }
}

/**
 * The actor is restarting (its process died, restarts are left): a call that was running when it
 * died, and is not retried (`maxTaskRetries`), rejects with this error, as Ray's
 * `ActorUnavailableError`. The actor itself is not dead: calls made now wait for the restart. A
 * subclass of ActorDiedError (`reason: 'restarting'`), so code catching that one still catches it.
 */
export class ActorUnavailableError extends ActorDiedError {
  override name = 'ActorUnavailableError';
  constructor(info: ActorDeathInfo) {
    super(info);
    this.message =
      `actor ${info.className} (${info.actorId}) is unavailable: it is restarting (${info.detail}); ` +
      'this call was running when its process died and is not retried (set maxTaskRetries to retry such calls); calls made now wait for the restart';
    this.stack = `${this.name}: ${this.message}`;
  }
}

/** `getActor(name)` found no live actor of that name in the namespace. */
export class ActorNotFoundError extends TsrayError {
  override name = 'ActorNotFoundError';
  constructor(
    readonly actorName: string,
    readonly namespace: string,
  ) {
    super(
      `no actor named "${actorName}" in namespace "${namespace}" (is it created, alive, and in this namespace? getActor(name, { namespace }) looks elsewhere)`,
    );
  }
}

/** An actor was created with a name already taken in its namespace. */
export class ActorNameTakenError extends TsrayError {
  override name = 'ActorNameTakenError';
  constructor(
    readonly actorName: string,
    readonly namespace: string,
  ) {
    super(`the actor name "${actorName}" is already taken in namespace "${namespace}"; pick another name, kill the existing actor, or pass getIfExists: true`);
  }
}

/** `init({ address })` could not reach a cluster. */
export class ConnectionError extends TsrayError {
  override name = 'ConnectionError';
}

/**
 * Work that needs the head's GCS (creating a named actor, a lookup by name, a KV call) waited for it
 * longer than its limit: the head is down (it is being restarted) or unreachable. `gcsAddress` names
 * it; `call` is the control call that waited.
 */
export class GcsUnavailableError extends ConnectionError {
  override name = 'GcsUnavailableError';
  constructor(
    readonly gcsAddress: string,
    readonly call: string,
    readonly waitedMs: number,
  ) {
    super(
      `the head (GCS at ${gcsAddress}) did not answer ${call} within ${waitedMs / 1000} s: it is down or unreachable (work that needs it waits until it is back, up to this limit)`,
    );
  }
}

/** The cluster refused this connection: wrong or missing cluster token (see init({ token }), TSRAY_TOKEN). */
export class AuthenticationError extends ConnectionError {
  override name = 'AuthenticationError';
}

/**
 * A node's unix socket path would exceed the 107 bytes a unix socket path may have. `path` is the
 * path that did not fit; set `TSRAY_SOCKET_DIR` to a short directory (e.g. `/tmp/s`).
 */
export class SocketPathTooLongError extends TsrayError {
  override name = 'SocketPathTooLongError';
  constructor(
    readonly path: string,
    tried: string,
  ) {
    super(
      `the node socket path ${path} is ${Buffer.byteLength(path)} bytes, more than the 107 a unix socket path may have ` +
        `(tried ${tried}); set TSRAY_SOCKET_DIR to a short directory, e.g. /tmp/tsray-sock`,
    );
  }
}

/**
 * This user's tsray runtime directory (`<tmp>/tsray-<uid>`: sessions with the token, `current.json`,
 * the runtime-env cache) exists but is not this user's private directory: a link, another user's, or
 * open to others. tsray refuses to use it (someone else could read the token, redirect
 * `address: 'auto'` or plant a runtime env); remove it, or set TMPDIR to a directory of your own.
 */
export class UnsafeRuntimeDirError extends TsrayError {
  override name = 'UnsafeRuntimeDirError';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`refusing to use the tsray runtime directory ${path}: ${reason}; remove it (or set TMPDIR to a directory of your own)`);
  }
}

/** A placement group operation failed: removed twice, unknown group, bundle index out of range. */
export class PlacementGroupError extends TsrayError {
  override name = 'PlacementGroupError';
}

/**
 * A `TSRAY_*` environment variable holds a value tsray cannot use (e.g. `TSRAY_CONNECT_TIMEOUT_MS=soon`).
 * `variable` names it, `value` is what it held; see docs/configuration.md for every variable.
 */
export class ConfigError extends TsrayError {
  override name = 'ConfigError';
  constructor(
    readonly variable: string,
    readonly value: string,
    expected: string,
  ) {
    super(`environment variable ${variable}=${JSON.stringify(value)} is not valid: expected ${expected} (see docs/configuration.md)`);
  }
}
