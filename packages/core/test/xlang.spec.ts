import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { actorInfo, isActorHandle, NDArray, ObjectRef } from '@tsray/core';
// The codec is internal; the built module is what workers use.
import { xlangDecode, xlangEncode } from '../dist/xlang.js';

interface Vector {
  name: string;
  hex: string;
  note: string;
  value: unknown;
}
const vectors = JSON.parse(readFileSync(fileURLToPath(new URL('../../protocol/test-vectors/xlang.json', import.meta.url)), 'utf8')) as Vector[];

const DT: Record<string, new (b: ArrayBuffer) => ArrayBufferView> = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  float32: Float32Array,
  float64: Float64Array,
};

/** Rebuild the TS value a vector stands for. `canonical` is false when TS cannot express it exactly (an integral float). */
function build(v: unknown, flags: { canonical: boolean }): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => build(x, flags));
  const o = v as Record<string, unknown>;
  if ('$int' in o) {
    const b = BigInt(o['$int'] as string);
    return b >= -(2n ** 53n) && b <= 2n ** 53n ? Number(b) : b;
  }
  if ('$float' in o) {
    const x = Number(o['$float']);
    if (Number.isInteger(x) && !Object.is(x, -0)) flags.canonical = false;
    return x;
  }
  if ('$bytes' in o) return Buffer.from(o['$bytes'] as string, 'hex');
  if ('$ref' in o) return new ObjectRef(o['$ref'] as string);
  if ('$ndarray' in o) {
    const a = o['$ndarray'] as { dtype: string; shape: number[]; hex: string };
    const bytes = Buffer.from(a.hex, 'hex');
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    const data = new DT[a.dtype]!(copy.buffer);
    // A TS Uint8Array encodes as bytes, so a 1-D uint8 ndarray does not come back byte-identical.
    if (a.dtype === 'uint8' && a.shape.length === 1) flags.canonical = false;
    return a.shape.length === 1 ? data : new NDArray(a.dtype, a.shape, data);
  }
  if ('$handle' in o) {
    flags.canonical = false; // checked on decode; encoding a handle is covered by the Python actor tests
    return { handle: o['$handle'] };
  }
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, build(x, flags)]));
}

function same(actual: unknown, expected: unknown): void {
  if (expected instanceof ObjectRef) {
    expect(actual).toBeInstanceOf(ObjectRef);
    expect((actual as ObjectRef).id).toBe(expected.id);
    return;
  }
  if (expected && typeof expected === 'object' && 'handle' in (expected as object) && Object.keys(expected as object).length === 1) {
    expect(isActorHandle(actual)).toBe(true);
    const h = (expected as { handle: { actorId: string; className: string; methods: string[] } }).handle;
    const info = actorInfo(actual as never);
    expect([info.actorId, info.className, [...info.methods]]).toEqual([h.actorId, h.className, h.methods]);
    return;
  }
  if (expected instanceof NDArray) {
    expect(actual).toBeInstanceOf(NDArray);
    const a = actual as NDArray;
    expect([a.dtype, a.shape]).toEqual([expected.dtype, expected.shape]);
    expect(Array.from(a.data as unknown as ArrayLike<unknown>)).toEqual(Array.from(expected.data as unknown as ArrayLike<unknown>));
    return;
  }
  if (ArrayBuffer.isView(expected)) {
    expect((actual as object).constructor).toBe(expected.constructor);
    expect(Buffer.from((actual as ArrayBufferView).buffer, (actual as ArrayBufferView).byteOffset, (actual as ArrayBufferView).byteLength)).toEqual(
      Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
    );
    return;
  }
  if (Array.isArray(expected)) {
    expect(Array.isArray(actual)).toBe(true);
    expect((actual as unknown[]).length).toBe(expected.length);
    expected.forEach((x, i) => {
      same((actual as unknown[])[i], x);
    });
    return;
  }
  if (expected && typeof expected === 'object') {
    expect(Object.keys(actual as object)).toEqual(Object.keys(expected));
    for (const k of Object.keys(expected)) same((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k]);
    return;
  }
  expect(Object.is(actual, expected) || actual === expected).toBe(true);
}

describe('cross-language msgpack vectors (shared with python/tests/test_xlang.py)', () => {
  for (const v of vectors) {
    it(v.name, () => {
      const flags = { canonical: true };
      const expected = build(v.value, flags);
      same(xlangDecode(Buffer.from(v.hex, 'hex')), expected);
      if (flags.canonical) expect(xlangEncode(expected).toString('hex')).toBe(v.hex);
    });
  }
});
