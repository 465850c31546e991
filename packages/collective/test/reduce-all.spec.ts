/**
 * `reduceAll` (the one-pass reduction the shared-memory allreduce uses) against the pairwise
 * `reduceInto` fold it replaces: bitwise equal for every input count, op and dtype, also when the
 * destination is one of the inputs (allreduce reduces into the rank's own array).
 */
import { describe, expect, it } from 'vitest';
import { allocate, reduceAll, reduceInto, type Dtype, type NumericArray, type ReduceOp } from '../src/dtypes.js';

function inputs(dtype: Dtype, count: number, n: number): NumericArray[] {
  // Values whose float32 sums round differently depending on where the rounding happens.
  return Array.from({ length: count }, (_, j) => {
    const a = allocate(dtype, n);
    for (let i = 0; i < n; i++) a[i] = dtype.startsWith('float') ? Math.sin(i * 7.3 + j) * 10 ** ((i + j) % 9) : ((i * 31 + j * 17) % 200) - 100;
    return a;
  });
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
