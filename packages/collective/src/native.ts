/**
 * The native float32 sum kernel (`native/reduce.c`, built to `build/Release/tsray_reduce.node` by
 * `node-gyp`, which `npm ci` and `nx build collective` run). It is optional: when it is not built or does
 * not load, reductions use the JavaScript loops (the same bits, about half the speed; a warning says so
 * once).
 * @module
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { componentLogger } from '@tsray/core/internal';

/** Shape of the addon (see native/reduce.c). */
export interface ReduceAddon {
  /** `dst[i] = ((xs[0][i] + xs[1][i]) + xs[2][i]) + ...` in float32; `dst` may be one of `xs`. */
  sumF32(dst: Float32Array, xs: readonly Float32Array[]): void;
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
