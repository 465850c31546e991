/**
 * The native float32 sum kernel (`native/reduce.c`, built to `build/Release/tsray_reduce.node` by
 * `node-gyp`, which `npm ci` and `nx build collective` run). It is optional: when it is not built or does
 * not load, reductions use the JavaScript loops (the same bits, about half the speed; a warning says so
 * once). It also carries the shared-memory segment primitives (`native/shm.c`) of the one-node data
 * path (`shm-segment.ts`); without the addon, groups use the object-store path. Its copies and sums
 * run over a few threads when the machine has cores to spare (`native/parallel.c`, {@link useThreads}).
 * @module
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { componentLogger, config } from '@tsray/core/internal';

/** Shape of the addon (see native/reduce.c and native/shm.c). */
export interface ReduceAddon {
  /** `dst[i] = ((xs[0][i] + xs[1][i]) + xs[2][i]) + ...` in float32; `dst` may be one of `xs`. */
  sumF32(dst: Float32Array, xs: readonly Float32Array[]): void;
  /** mmap `bytes` of the file `fd` shared and read-write (pre-faulted); unmapped when collected. */
  mapShared(fd: number, bytes: number): ArrayBuffer;
  /** Arrive at this rank's next barrier of segment `seg`: returns its number (1, 2, ...). */
  shmArrive(seg: ArrayBuffer, rank: number): number;
  /** Wait up to `sliceMs` for the barrier counter to reach `target`: 0 passed, 1 not yet, 2 aborted. */
  shmWait(seg: ArrayBuffer, target: number, sliceMs: number): 0 | 1 | 2;
  /** Mark the segment failed (`kind` >= 1, `rank`) and wake every waiter; true when this call was first. */
  shmAbort(seg: ArrayBuffer, kind: number, rank: number): boolean;
  /** Threads per copy or sum from now on (this thread and n - 1 helpers, 1 to 16); returns how many it has. */
  setThreads(n: number): number;
  /** `dst`'s bytes = `src`'s (TypedArrays of one byte length, not overlapping), over the threads. */
  copyBytes(dst: ArrayBufferView, src: ArrayBufferView): void;
}

// src/native.ts and dist/native.js are both one level below the package root.
const ADDON_URL = new URL('../build/Release/tsray_reduce.node', import.meta.url);
let addon: ReduceAddon | null | undefined;

/** The addon, loaded on first use; null when it is not available (the caller falls back to JavaScript). */
export function reduceAddon(): ReduceAddon | null {
  if (addon !== undefined) return addon;
  const path = fileURLToPath(ADDON_URL);
  try {
    addon = createRequire(import.meta.url)(path) as ReduceAddon;
  } catch (err) {
    addon = null;
    componentLogger('collective').warn({ path, err }, 'native reduction kernel not loaded: float32 sums use the slower JavaScript loop');
  }
  return addon;
}

let threadsFor = 0;

/**
 * Set the addon's threads for a group with `localRanks` rank processes on this node:
 * `TSRAY_COLLECTIVE_THREADS`, or when 0 the cores / (2 × localRanks), at least 1. Each rank's copies in
 * and out of the segment and its sums are memory-bound; one thread reaches one core's share of the
 * memory bandwidth, so on a machine with idle cores a few threads per rank finish them several times
 * sooner (half the cores: the other node's ranks on one host, and the ring's socket work, need theirs).
 * On 2 cores with 2 or more ranks it stays at 1 (the ranks already fill the cores).
 */
export function useThreads(localRanks: number): void {
  if (localRanks === threadsFor) return;
  threadsFor = localRanks;
  const set = config().collectiveThreads;
  reduceAddon()?.setThreads(set > 0 ? set : Math.max(1, Math.floor(availableParallelism() / (2 * localRanks))));
}
