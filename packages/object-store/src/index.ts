/**
 * @module @tsray/object-store
 * The per-node shared-memory arena (an N-API addon that maps a /dev/shm file MAP_SHARED and hands out
 * zero-copy views), the first-fit allocator that hands out its slices, and AES-GCM decryption straight
 * into a view (the node's sealed data plane writes pulled chunks into the arena with it).
 */
export { Arena, defaultArenaPath, SHM_DIR } from './arena.js';
export type { ArenaCreateOptions, ArenaOpenOptions, ArenaStats } from './arena.js';
export { Allocator, DEFAULT_ALIGNMENT } from './allocator.js';
export { gcmOpenInto, gcmSealInto } from './aead.js';
export type { AllocatorOptions, Extent } from './allocator.js';
export { ObjectStoreError, ArenaError, ShmSpaceError, AddonMissingError, AllocatorError } from './errors.js';
