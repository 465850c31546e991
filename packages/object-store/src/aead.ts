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

/**
 * AES-256-GCM encryption of `src` into `dst` in one pass (`dst` may be `src`: in place), the 16-byte tag
 * written into `tag`: node:crypto's `Cipher.update` allocates a new buffer per call and runs 1.5–3×
 * slower (bench/collective/gcm-speed.mjs).
 * @param key - 32 bytes.
 * @param iv - 12 bytes (never twice under one key).
 * @param aad - associated data (may be empty).
 * @param dst - at least `src.length` bytes.
 * @param tag - 16 bytes, written.
 * @throws {@link AddonMissingError} if the native addon is not built.
 * @throws RangeError for wrong key, IV or tag sizes, or a `dst` shorter than `src`.
 * @throws Error if OpenSSL fails.
 */
export function gcmSealInto(key: Buffer, iv: Buffer, aad: Buffer, src: Buffer, dst: Buffer, tag: Buffer): void {
  if (!loadAddon().gcmSeal(key, iv, aad, src, dst, tag)) throw new Error('gcmSealInto: OpenSSL failed');
}
