/**
 * The primitive fast paths of deserialize and serialize (v8-primitive.ts): every value read equals what
 * v8.deserialize gives for the same bytes, every value written reads back the same through
 * v8.deserialize (byte for byte what v8.serialize writes, for values V8 holds as small integers and
 * one-byte strings), and anything else is left to v8.
 */
import * as v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { deserialize, serialize } from '../src/serialization.js';
import { NOT_PRIMITIVE, v8Primitive, v8PrimitiveBytes } from '../src/v8-primitive.js';

const PRIMITIVES: unknown[] = [
  0,
  1,
  -1,
  63,
  64,
  -64,
  -65,
  127,
  128,
  8191,
  8192,
  2 ** 20,
  -(2 ** 20),
  2 ** 30,
  -(2 ** 30),
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53,
  1.5,
  -0,
  0.1,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  true,
  false,
  null,
  undefined,
  '',
  'a',
  'abc',
  'é',
  'Latin-1 ÿ ü ß',
  'x'.repeat(127),
  'y'.repeat(128),
  'z'.repeat(20_000),
  '__tsray_object_ref__ in a string',
];

describe('v8Primitive', () => {
  it.each(PRIMITIVES.map((v) => [String(v).slice(0, 24), v]))('reads %s as v8.deserialize does', (_name, value) => {
    const bytes = v8.serialize(value);
    const read = v8Primitive(bytes);
    expect(read).not.toBe(NOT_PRIMITIVE);
    expect(Object.is(read, v8.deserialize(bytes))).toBe(true);
    expect(Object.is(read, value)).toBe(true);
  });

  it('reads a value at an offset inside a larger buffer (a view of the arena or of a frame)', () => {
    const inner = v8.serialize(-123456);
    const outer = Buffer.concat([Buffer.from('junk'), inner, Buffer.from('more')]);
    expect(v8Primitive(outer.subarray(4, 4 + inner.length))).toBe(-123456);
    const d = v8.serialize(2.75);
    const o2 = Buffer.concat([Buffer.alloc(3), d]);
    expect(v8Primitive(o2.subarray(3))).toBe(2.75);
  });

  it('leaves everything else to v8.deserialize: objects, two-byte strings, BigInts, dates', () => {
    for (const v of [{ a: 1 }, [1, 2], '✓ two-byte', 'emoji 😀', 10n, new Date(0), new Map(), Buffer.from('x')]) {
      expect(v8Primitive(v8.serialize(v))).toBe(NOT_PRIMITIVE);
    }
  });

  it('refuses bytes that are not exactly one primitive: trailing bytes, a cut value, no header', () => {
    const int = v8.serialize(300);
    expect(v8Primitive(Buffer.concat([int, Buffer.from([0])]))).toBe(NOT_PRIMITIVE);
    expect(v8Primitive(int.subarray(0, int.length - 1))).toBe(NOT_PRIMITIVE);
    expect(v8Primitive(v8.serialize(1.5).subarray(0, 7))).toBe(NOT_PRIMITIVE);
    expect(v8Primitive(v8.serialize('abcdef').subarray(0, 6))).toBe(NOT_PRIMITIVE);
    expect(v8Primitive(Buffer.from([0x49, 0x02]))).toBe(NOT_PRIMITIVE);
    expect(v8Primitive(Buffer.from([0xff, 0x0f, 0x49, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe(NOT_PRIMITIVE);
    expect(v8Primitive(Buffer.from([0xff, 0x0f, 0x54, 0x54]))).toBe(NOT_PRIMITIVE);
  });
});

describe('v8PrimitiveBytes', () => {
  it.each(PRIMITIVES.map((v) => [String(v).slice(0, 24), v]))('writes %s so that v8.deserialize reads it back', (_name, value) => {
    const bytes = v8PrimitiveBytes(value);
    if (typeof value === 'string' && value.length > 4096) {
      expect(bytes).toBeUndefined();
      return;
    }
    expect(bytes).toBeInstanceOf(Buffer);
    expect(Object.is(v8.deserialize(bytes!), value)).toBe(true);
    expect(Object.is(v8Primitive(bytes!), value)).toBe(true);
    // Literals are small integers, heap numbers and one-byte strings in V8: the same bytes.
    expect(bytes!.equals(v8.serialize(value))).toBe(true);
  });

  it('gives each value its own memory (stored objects keep it)', () => {
    const a = v8PrimitiveBytes(1)!;
    const b = v8PrimitiveBytes(1)!;
    expect(a.buffer).not.toBe(b.buffer);
    expect(a.byteOffset).toBe(0);
    expect(a.buffer.byteLength).toBe(a.length);
  });

  it('leaves objects, symbols, functions, BigInts and strings beyond Latin-1 or 4,096 characters to v8.serialize', () => {
    for (const v of [{ a: 1 }, [1], new Date(0), Buffer.from('x'), Symbol('s'), () => 1, 10n, '✓', 'ok 😀', 'q'.repeat(4097)]) {
      expect(v8PrimitiveBytes(v)).toBeUndefined();
    }
    expect(v8.deserialize(v8PrimitiveBytes('p'.repeat(4096))!)).toBe('p'.repeat(4096));
  });
});

describe('serialize with the fast path', () => {
  it('writes primitives without refs, and a string holding the ref marker as before', () => {
    expect(serialize(0)).toEqual({ encoding: 'v8', rawKind: '', bytes: v8.serialize(0), containedRefs: [] });
    expect(Buffer.compare(serialize('ok').bytes, v8.serialize('ok'))).toBe(0);
    const marked = '__tsray_object_ref__"\x05abcde';
    expect(serialize(marked)).toEqual({ encoding: 'v8', rawKind: '', bytes: v8.serialize(marked), containedRefs: ['abcde'] });
    expect(() => serialize(Symbol('s'), 'args[0]')).toThrow(/args\[0\]/);
  });
});

describe('deserialize with the fast path', () => {
  it('gives the same values as before for primitives and for everything else', () => {
    for (const v of [...PRIMITIVES, { n: 1, s: 'x' }, [0, 'a', null], '✓', 7n]) {
      const s = serialize(v);
      const back = deserialize(s.encoding, s.rawKind, s.bytes);
      if (typeof v === 'object' && v !== null) expect(back).toEqual(v);
      else expect(Object.is(back, v)).toBe(true);
    }
  });
});
