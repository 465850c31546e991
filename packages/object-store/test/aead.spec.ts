/** gcmOpenInto / gcmSealInto: AES-256-GCM straight into an arena view or a buffer, checked against node:crypto. */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { gcmOpenInto, gcmSealInto } from '../src/index.js';
import { ArenaTracker } from './helpers.js';

const tracker = new ArenaTracker();
afterEach(() => tracker.cleanup());

function seal(key: Buffer, iv: Buffer, aad: Buffer, plain: Buffer): { sealed: Buffer; tag: Buffer } {
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const sealed = Buffer.concat([c.update(plain), c.final()]);
  return { sealed, tag: c.getAuthTag() };
}

describe('gcmOpenInto', () => {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const aad = Buffer.from('associated');

  it('decrypts into a view of the arena in place; the bytes are what was sealed', async () => {
    const a = tracker.create({ size: 16 << 20 });
    await a.ready;
    const plain = randomBytes((3 << 20) + 17);
    const { sealed, tag } = seal(key, iv, aad, plain);
    const dst = a.view(1 << 20, plain.length);
    expect(gcmOpenInto(key, iv, aad, tag, sealed, dst)).toBe(true);
    expect(a.view(1 << 20, plain.length).equals(plain)).toBe(true);
    expect(gcmOpenInto(key, iv, Buffer.alloc(0), seal(key, iv, Buffer.alloc(0), Buffer.alloc(0)).tag, Buffer.alloc(0), Buffer.alloc(0))).toBe(true);
  });

  it('says false for an altered byte, tag, associated data, key or IV', () => {
    const plain = randomBytes(4096);
    const { sealed, tag } = seal(key, iv, aad, plain);
    const dst = Buffer.alloc(plain.length);
    const flip = (b: Buffer, i: number) => {
      const c = Buffer.from(b);
      c[i]! ^= 1;
      return c;
    };
    expect(gcmOpenInto(key, iv, aad, tag, flip(sealed, 100), dst)).toBe(false);
    expect(gcmOpenInto(key, iv, aad, flip(tag, 0), sealed, dst)).toBe(false);
    expect(gcmOpenInto(key, iv, flip(aad, 0), tag, sealed, dst)).toBe(false);
    expect(gcmOpenInto(flip(key, 0), iv, aad, tag, sealed, dst)).toBe(false);
    expect(gcmOpenInto(key, flip(iv, 0), aad, tag, sealed, dst)).toBe(false);
    expect(gcmOpenInto(key, iv, aad, tag, sealed, dst)).toBe(true);
  });

  it('refuses wrong sizes and non-buffers with a typed error', () => {
    const b = Buffer.alloc(16);
    expect(() => gcmOpenInto(Buffer.alloc(16), Buffer.alloc(12), b, b, b, b)).toThrow(RangeError);
    expect(() => gcmOpenInto(key, iv, b, b, Buffer.alloc(32), Buffer.alloc(31))).toThrow(RangeError);
    expect(() => gcmOpenInto(key, iv, b, b, 'text' as unknown as Buffer, b)).toThrow(TypeError);
  });
});

describe('gcmSealInto', () => {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const aad = Buffer.from('associated');

  it('seals exactly as node:crypto does (bytes and tag), from an arena view, and in place', async () => {
    const a = tracker.create({ size: 16 << 20 });
    await a.ready;
    const plain = randomBytes((3 << 20) + 17);
    a.write(1 << 20, plain);
    const want = seal(key, iv, aad, plain);
    const dst = Buffer.alloc(plain.length);
    const tag = Buffer.alloc(16);
    gcmSealInto(key, iv, aad, a.view(1 << 20, plain.length), dst, tag);
    expect(dst.equals(want.sealed)).toBe(true);
    expect(tag.equals(want.tag)).toBe(true);
    // In place, then opened by node:crypto.
    const inPlace = Buffer.from(plain);
    gcmSealInto(key, iv, Buffer.alloc(0), inPlace, inPlace, tag);
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.setAuthTag(tag);
    expect(Buffer.concat([d.update(inPlace), d.final()]).equals(plain)).toBe(true);
  });

  it('refuses wrong sizes and non-buffers with a typed error', () => {
    const b = Buffer.alloc(16);
    expect(() => gcmSealInto(key, Buffer.alloc(11), b, b, b, b)).toThrow(RangeError);
    expect(() => gcmSealInto(key, iv, b, Buffer.alloc(32), Buffer.alloc(31), b)).toThrow(RangeError);
    expect(() => gcmSealInto(key, iv, b, b, b, Buffer.alloc(15))).toThrow(RangeError);
    expect(() => gcmSealInto(key, iv, b, b, 'text' as unknown as Buffer, b)).toThrow(TypeError);
  });
});
