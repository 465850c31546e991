/**
 * Statistics of the local node a driver started with `init()` (tests and leak checks read them).
 * Kept apart from init.ts so the public declarations never name the internal `NodeRuntime` class;
 * exported from `@tsray/core/internal` only.
 * @module
 */
import { RuntimeStateError } from './errors.js';
import { NodeRuntime } from './node/node-runtime.js';
import { state } from './state.js';

/** Internal statistics of the local node (objects, store bytes, workers). */
export function nodeStats(): ReturnType<NodeRuntime['stats']> {
  const rt = state().runtime;
  if (!(rt instanceof NodeRuntime)) throw new RuntimeStateError('nodeStats() is only available in the driver of a local cluster');
  return rt.stats();
}

/**
 * Runtime environment statistics of the local node (setups run per kind, failures, held resources,
 * GC), or undefined when no environment was asked for yet.
 */
export function runtimeEnvStats(): ReturnType<NodeRuntime['runtimeEnvStats']> {
  const rt = state().runtime;
  if (!(rt instanceof NodeRuntime)) return undefined;
  return rt.runtimeEnvStats();
}

/** Pids of the local node's worker processes. */
export function workerPids(): number[] {
  const rt = state().runtime;
  if (!(rt instanceof NodeRuntime)) return [];
  return rt.workerPids();
}
