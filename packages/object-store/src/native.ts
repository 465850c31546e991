import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { AddonMissingError } from './errors.js';

/** Opaque handle of one mapping, owned by the addon. */
export type NativeHandle = { readonly __brand: 'tsray_shm_handle' };

/** Diagnostics of one mapping. */
export interface NativeInfo {
  size: number;
  closed: boolean;
  mapped: boolean;
  views: number;
  refs: number;
}

/** Shape of `build/Release/tsray_shm.node` (see native/shm.c). */
export interface NativeAddon {
  mapFile(path: string, size: number, create: boolean): NativeHandle;
  view(handle: NativeHandle, offset: number, length: number): Buffer;
  /** memmove of `src` to `offset`, split over up to `threads` threads when large (native/parallel_copy.c); returns the threads used. */
  copy(handle: NativeHandle, offset: number, src: ArrayBufferView | ArrayBuffer, threads?: number): number;
  prefault(handle: NativeHandle, offset: number, length: number): Promise<void>;
  close(handle: NativeHandle): void;
  info(handle: NativeHandle): NativeInfo;
  /** AES-256-GCM open of `src` into `dst`; false when the tag does not match (native/aead.c). */
  gcmOpen(key: Buffer, iv: Buffer, aad: Buffer, tag: Buffer, src: Buffer, dst: Buffer): boolean;
  /** AES-256-GCM seal of `src` into `dst`, tag into `tag`; false when OpenSSL failed (native/aead.c). */
  gcmSeal(key: Buffer, iv: Buffer, aad: Buffer, src: Buffer, dst: Buffer, tag: Buffer): boolean;
  readonly pageSize: number;
}

// src/native.ts and dist/native.js are both one level below the package root.
const ADDON_URL = new URL('../build/Release/tsray_shm.node', import.meta.url);
let addon: NativeAddon | undefined;

/**
 * Loads the addon on first use, so that importing the pure-TS parts (Allocator) never needs it.
 * @throws {@link AddonMissingError} if it is not built or does not load.
 */
export function loadAddon(): NativeAddon {
  if (addon !== undefined) return addon;
  const path = fileURLToPath(ADDON_URL);
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new AddonMissingError(path, err);
  }
  return addon;
}
