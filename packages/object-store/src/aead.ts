import { loadAddon } from './native.js';

/**
 * AES-256-GCM decryption of `src` straight into `dst` (for example a view of the arena), in one pass
 * and without allocating: node:crypto's `Decipher.update` returns a new buffer per call, which then
 * has to be copied. Returns whether the tag matched; on false `dst` holds unauthenticated bytes that
 * must not be used.
 * @param key - 32 bytes.
 * @param iv - 12 bytes.
 * @param aad - associated data (may be empty).
 * @param tag - the 16-byte GCM tag.
 * @param dst - at least `src.length` bytes.
 * @throws {@link AddonMissingError} if the native addon is not built.
 * @throws RangeError for wrong key, IV or tag sizes, or a `dst` shorter than `src`.
 */
export function gcmOpenInto(key: Buffer, iv: Buffer, aad: Buffer, tag: Buffer, src: Buffer, dst: Buffer): boolean {
  return loadAddon().gcmOpen(key, iv, aad, tag, src, dst);
}
