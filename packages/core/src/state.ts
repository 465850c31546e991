/**
 * Process-global tsray state, kept on `globalThis` under a registered symbol so that two copies of
 * `@tsray/core` in one process (e.g. the worker entry from dist and a user module resolving another
 * copy) share one registry and one runtime.
 * @internal
 */
import type { NormalizedRuntimeEnv } from '@tsray/runtime-env';
import { config } from './config.js';
import type { CoreRuntime } from './runtime.js';

/** A function registered with `remote()` or a class with `actor()`. */
export interface RegisteredFunction {
  fn: (...args: unknown[]) => unknown;
  name: string;
}

export interface GlobalState {
  runtime: CoreRuntime | undefined;
  /** moduleUrl -> key -> function */
  registry: Map<string, Map<string, RegisteredFunction>>;
  /** moduleUrl -> name -> next ordinal */
  ordinals: Map<string, Map<string, number>>;
  /** Set while a worker imports a user module (to detect driver code running at import). */
  importing: string | undefined;
  /** True in worker processes. */
  isWorker: boolean;
  /**
   * The job's runtime environment (`init({ runtimeEnv })`); in a worker, the environment it runs in
   * (from TSRAY_RUNTIME_ENV), which the tasks it submits inherit.
   */
  jobRuntimeEnv: NormalizedRuntimeEnv | undefined;
}

const KEY = Symbol.for('tsray.globalState.v1');

/** The shared state object. */
export function state(): GlobalState {
  const g = globalThis as unknown as Record<symbol, GlobalState | undefined>;
  let s = g[KEY];
  if (!s) {
    s = {
      runtime: undefined,
      registry: new Map(),
      ordinals: new Map(),
      importing: undefined,
      isWorker: config().workerId !== undefined,
      jobRuntimeEnv: undefined,
    };
    g[KEY] = s;
  }
  return s;
}
