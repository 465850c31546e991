/**
 * The tsray error taxonomy. Every class says what happened and where to look; `isInstance` works across
 * duplicated copies of the package (a symbol marker instead of `instanceof`).
 * @module
 */

const MARKER = Symbol.for('tsray.error');

/** Base class of every error tsray throws. */
export class TsrayError extends Error {
  /** @internal */
  readonly [MARKER] = true;
  override name = 'TsrayError';
  /** True for any tsray error, also one thrown by another copy of the package. */
  static isInstance(e: unknown): e is TsrayError {
    return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[MARKER] === true;
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

/** An Error rebuilt from a remote error's information (name, message, stack, code, props, cause chain). */
function rebuiltError(info: RemoteErrorInfo, depth = 0): Error {
  const e = new Error(info.message);
  e.name = info.name;
  e.stack = info.stack;
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
  for (let c = info.cause, n = 0; c && n < MAX_CAUSE_DEPTH; c = c.cause, n++) out += `\n--- caused by ---\n${c.stack || `${c.name}: ${c.message}`}`;
  return out;
}

/**
 * A task threw. `get` of its result (or of any task that depends on it) rejects with this error.
 * The remote error's name, message and stack are kept: `remoteName`, `remoteMessage`, `remoteStack`,
 * and `cause` is an Error rebuilt from them.
 */
export class TaskError extends TsrayError {
  override name = 'TaskError';
  readonly remoteName: string;
  readonly remoteMessage: string;
  readonly remoteStack: string;
  readonly taskName: string;
  readonly pid: number;
  readonly info: RemoteErrorInfo;
  constructor(info: RemoteErrorInfo) {
    const root = info.upstream ?? info;
    super(
      `task ${info.taskName} (worker pid=${info.pid}) failed: ${root.name}: ${root.message}` +
        (info.upstream ? ` (raised upstream in task ${root.taskName})` : '') +
        `\n--- remote stack ---\n${root.stack}` +
        causeText(root),
    );
    this.info = info;
    this.remoteName = root.name;
    this.remoteMessage = root.message;
    this.remoteStack = root.stack;
    this.taskName = info.taskName;
    this.pid = info.pid;
    this.cause = rebuiltError(root);
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
  /** 'killed' | 'crashed' | 'constructor' | 'out_of_scope' | 'name_taken' | 'node_died' | 'unknown_actor' | 'unschedulable' | 'shutdown' */
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
