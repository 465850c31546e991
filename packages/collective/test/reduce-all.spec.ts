/**
 * `reduceAll` (the one-pass reduction the shared-memory allreduce uses) against the pairwise
 * `reduceInto` fold it replaces: bitwise equal for every input count, op and dtype, also when the
 * destination is one of the inputs (allreduce reduces into the rank's own array).
 */
import { describe, expect, it } from 'vitest';
import { allocate, copyInto, reduceAll, reduceInto, type Dtype, type NumericArray, type ReduceOp } from '../src/dtypes.js';
import { reduceAddon } from '../src/native.js';

function inputs(dtype: Dtype, count: number, n: number): NumericArray[] {
  // Values whose float32 sums round differently depending on where the rounding happens.
  return Array.from({ length: count }, (_, j) => {
    const a = allocate(dtype, n);
    for (let i = 0; i < n; i++) a[i] = dtype.startsWith('float') ? Math.sin(i * 7.3 + j) * 10 ** ((i + j) % 9) : ((i * 31 + j * 17) % 200) - 100;
    return a;
  });
}

/** The float32 left fold in plain JavaScript (float64 add, then `Math.fround`): what numpy's float32 adds give. */
function froundFold(xs: NumericArray[]): Float32Array {
  const acc = Float32Array.from(xs[0]!);
  for (let j = 1; j < xs.length; j++) for (let i = 0; i < acc.length; i++) acc[i] = Math.fround(acc[i]! + xs[j]![i]!);
  return acc;
}

function pairwise(xs: NumericArray[], op: ReduceOp): NumericArray {
  const acc = xs[0]!.slice();
  for (let j = 1; j < xs.length; j++) reduceInto(acc, xs[j]!, op);
  return acc;
}

describe('reduceAll', () => {
  it.each([1, 2, 3, 4, 5, 7, 8])('float32 sum of %i inputs is bitwise the pairwise float32 fold', (count) => {
    const xs = inputs('float32', count, 1001);
    const dst = allocate('float32', 1001);
    reduceAll(dst, xs, 'sum');
    expect(Array.from(dst)).toEqual(Array.from(pairwise(xs, 'sum')));
  });

  it.each([2, 4, 5, 8])('reduces in place into one of its %i inputs (a view of it) without reading a written element', (count) => {
    for (let at = 0; at < count; at++) {
      const xs = inputs('float32', count, 513);
      const want = pairwise(xs, 'sum');
      const own = xs[at]!;
      const dst = own.subarray(0); // another view of the same memory, as allreduce passes
      reduceAll(dst, xs, 'sum');
      expect(Array.from(own), `dst = input ${at}`).toEqual(Array.from(want));
    }
  });

  it.each<[Dtype, ReduceOp]>([
    ['float64', 'sum'],
    ['int32', 'max'],
    ['int8', 'min'],
    ['float32', 'max'],
  ])('%s %s equals the pairwise fold (the generic path)', (dtype, op) => {
    const xs = inputs(dtype, 4, 300);
    const want = pairwise(xs, op);
    reduceAll(xs[2]!, xs, op);
    expect(Array.from(xs[2]!)).toEqual(Array.from(want));
  });
});

describe('the native float32 sum kernel', () => {
  it('is built and loaded (reductions would fall back to the slower JavaScript loop)', () => {
    expect(reduceAddon()).not.toBeNull();
  });

  it.each([1, 2, 3, 4, 9])('sums %i inputs bitwise as the float32 fold, across block boundaries and into an input', (count) => {
    const n = 2048 * 3 + 5; // the kernel works in blocks of 2048
    const xs = inputs('float32', count, n) as Float32Array[];
    const want = froundFold(xs);
    const dst = allocate('float32', n) as Float32Array;
    reduceAddon()!.sumF32(dst, xs);
    expect(Array.from(dst)).toEqual(Array.from(want));
    reduceAddon()!.sumF32(xs[count - 1]!.subarray(0), xs); // in place, into the last input
    expect(Array.from(xs[count - 1]!)).toEqual(Array.from(want));
  });

  it('refuses arrays of another type or length with a TypeError', () => {
    const k = reduceAddon()!;
    expect(() => k.sumF32(new Float32Array(4), [new Float32Array(3)])).toThrow(/every input must have dst's length/);
    expect(() => k.sumF32(new Float32Array(4), [new Float64Array(4) as never])).toThrow(TypeError);
    expect(() => k.sumF32(new Float32Array(4), [])).toThrow(/between 1 and 256 inputs/);
  });
});

describe('the native kernel over helper threads (native/parallel.c)', () => {
  // Odd lengths so pieces end mid-block and mid-cache-line; large enough to be split over 4 threads.
  const n = 3 * 1024 * 1024 + 12_345;

  it.each([1, 4, 7])('with %i threads sums bitwise as the float32 fold, into an input too', (threads) => {
    const k = reduceAddon()!;
    expect(k.setThreads(threads)).toBe(threads);
    try {
      const xs = inputs('float32', 3, n) as Float32Array[];
      const want = froundFold(xs);
      const dst = allocate('float32', n) as Float32Array;
      k.sumF32(dst, xs);
      expect(Buffer.from(dst.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      k.sumF32(xs[0]!, xs);
      expect(Buffer.from(xs[0]!.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    } finally {
      k.setThreads(1);
    }
  });

  it.each([1, 4, 7])('with %i threads copies every byte of any typed array (copyInto), and refuses other lengths', (threads) => {
    const k = reduceAddon()!;
    k.setThreads(threads);
    try {
      for (const dtype of ['uint8', 'int16', 'float32', 'float64'] as const) {
        const src = inputs(dtype, 1, n)[0]!;
        const dst = allocate(dtype, n + 3).subarray(1, n + 1);
        copyInto(dst, src);
        expect(Buffer.from(dst.buffer, dst.byteOffset, dst.byteLength).equals(Buffer.from(src.buffer))).toBe(true);
        expect([dst.buffer === src.buffer, new Uint8Array(dst.buffer)[0], new Uint8Array(dst.buffer).at(-1)]).toEqual([false, 0, 0]);
      }
      expect(() => k.copyBytes(new Uint8Array(8), new Uint8Array(9))).toThrow(/differ in byte length/);
      expect(() => k.copyBytes(new Uint8Array(8), {} as never)).toThrow(TypeError);
    } finally {
      k.setThreads(1);
    }
  });
});
