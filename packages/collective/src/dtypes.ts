/**
 * The element types a collective works on and the reductions over them. A TypeScript rank passes a
 * TypedArray (or a Buffer, read as uint8); a Python rank a numpy array or CPU torch tensor of the same
 * dtype name. Chunks travel between ranks as TypedArrays of this dtype (ENCODING_RAW from TypeScript,
 * msgpack ext 2 from Python), so a mixed TypeScript/Python group needs no conversion.
 * @module
 */

import { reduceAddon } from './native.js';

/** Element types, named as numpy names them. */
export type Dtype = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

/** Reductions (Ray's `ReduceOp` minus PRODUCT, plus `mean`). */
export type ReduceOp = 'sum' | 'mean' | 'min' | 'max';

/** The arrays a collective accepts. */
export type NumericArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

type ArrayCtor = { new (n: number): NumericArray; new (b: ArrayBufferLike, off: number, n: number): NumericArray; BYTES_PER_ELEMENT: number };

const CTORS: Record<Dtype, ArrayCtor> = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/** The dtype of an array, or undefined for anything else (BigInt arrays, DataView, plain arrays). */
export function dtypeOf(a: unknown): Dtype | undefined {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint32Array) return 'uint32';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Uint16Array) return 'uint16';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint8Array) return 'uint8'; // also Buffer
  return undefined;
}

/** A TypedArray of `dtype` with `n` elements. */
export function allocate(dtype: Dtype, n: number): NumericArray {
  return new CTORS[dtype](n);
}

/** A view of `length` elements of `dtype` over `buffer` from `byteOffset` (aligned to the element size). */
export function viewOf(dtype: Dtype, buffer: ArrayBufferLike, byteOffset: number, length: number): NumericArray {
  return new CTORS[dtype](buffer, byteOffset, length);
}

/**
 * `v` as an array of `dtype`: chunks that crossed from another process arrive as the same TypedArray
 * class (TypeScript) or as an `NDArray`-like `{ data }` / Buffer (Python bytes): reinterpret, no copy.
 */
export function asArray(v: unknown, dtype: Dtype): NumericArray {
  const ctor = CTORS[dtype];
  if (v instanceof ctor) return v;
  const data = typeof v === 'object' && v !== null && 'data' in v ? (v as { data: unknown }).data : v;
  if (ArrayBuffer.isView(data)) {
    if (data instanceof ctor) return data;
    if (data.byteOffset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(data.buffer, data.byteOffset, data.byteLength / ctor.BYTES_PER_ELEMENT);
    const copy = new Uint8Array(data.byteLength);
    copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return new ctor(copy.buffer, 0, data.byteLength / ctor.BYTES_PER_ELEMENT);
  }
  throw new TypeError(`expected a ${dtype} array, got ${Object.prototype.toString.call(v)}`);
}

/** `acc[i] = op(acc[i], x[i])` for every i (sum for `mean`: the division comes once at the end). */
export function reduceInto(acc: NumericArray, x: NumericArray, op: ReduceOp): void {
  // The hot case gets its own monomorphic loop (V8 compiles a generic one for the union of array types).
  if ((op === 'sum' || op === 'mean') && acc instanceof Float32Array && x instanceof Float32Array) return sumFloat32(acc, x);
  const n = acc.length;
  if (op === 'sum' || op === 'mean') {
    for (let i = 0; i < n; i++) acc[i]! += x[i]!;
  } else if (op === 'min') {
    for (let i = 0; i < n; i++) if (x[i]! < acc[i]!) acc[i] = x[i]!;
  } else {
    for (let i = 0; i < n; i++) if (x[i]! > acc[i]!) acc[i] = x[i]!;
  }
}

function sumFloat32(acc: Float32Array, x: Float32Array): void {
  const native = reduceAddon();
  if (native) return native.sumF32(acc, [acc, x]);
  const n = acc.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    acc[i] += x[i]!;
    acc[i + 1] += x[i + 1]!;
    acc[i + 2] += x[i + 2]!;
    acc[i + 3] += x[i + 3]!;
  }
  for (; i < n; i++) acc[i] += x[i]!;
}

/**
 * `dst[i] = op(xs[0][i], xs[1][i], ...)` in one pass, folding left in the order of `xs` (so the result is
 * bitwise what `reduceInto` gives applied in that order). `dst` may be one of `xs` (element-wise, each
 * element is read before it is written). One pass instead of one per input: the reduction is bound by
 * memory traffic, and this reads each input once and writes `dst` once.
 */
export function reduceAll(dst: NumericArray, xs: readonly NumericArray[], op: ReduceOp): void {
  if ((op === 'sum' || op === 'mean') && dst instanceof Float32Array && xs.every((x) => x instanceof Float32Array)) {
    return sumFloat32All(dst, xs as readonly Float32Array[]);
  }
  // Other dtypes/ops: pairwise into a scratch copy of the first input (dst may alias any input).
  const acc = xs[0]!.slice();
  for (let j = 1; j < xs.length; j++) reduceInto(acc, xs[j]!, op);
  dst.set(acc);
}

/** Below this many bytes a copy stays on this thread (a helper's wake-up would cost more). */
const PARALLEL_COPY_BYTES = 2 * 1024 * 1024;

/** `dst.set(src)` (same type and length), over the native addon's threads when large (`useThreads`). */
export function copyInto(dst: NumericArray, src: NumericArray): void {
  const native = src.byteLength >= PARALLEL_COPY_BYTES ? reduceAddon() : null;
  if (native && dst.byteLength === src.byteLength) native.copyBytes(dst, src);
  else dst.set(src);
}

/**
 * The hot case, one monomorphic loop per input count. JavaScript adds in float64: `Math.fround` after
 * every add rounds to float32 as pairwise float32 adds (numpy, `reduceInto`) do, so results stay bitwise
 * equal to them.
 */
function sumFloat32All(dst: Float32Array, xs: readonly Float32Array[]): void {
  const native = reduceAddon();
  if (native) return native.sumF32(dst, xs);
  const f = Math.fround;
  const n = dst.length;
  if (xs.length === 4) {
    const [a, b, c, d] = xs as [Float32Array, Float32Array, Float32Array, Float32Array];
    for (let i = 0; i < n; i++) dst[i] = f(f(f(a[i]! + b[i]!) + c[i]!) + d[i]!);
  } else if (xs.length === 3) {
    const [a, b, c] = xs as [Float32Array, Float32Array, Float32Array];
    for (let i = 0; i < n; i++) dst[i] = f(f(a[i]! + b[i]!) + c[i]!);
  } else if (xs.length === 2) {
    const [a, b] = xs as [Float32Array, Float32Array];
    for (let i = 0; i < n; i++) dst[i] = a[i]! + b[i]!;
  } else {
    // Any other count: fold 3 more inputs per pass into a scratch copy of the first (dst may share
    // memory with a later input, so it is written only at the end), left to right as above.
    const acc = xs[0]!.slice();
    let j = 1;
    for (; j + 3 <= xs.length; j += 3) {
      const [b, c, d] = [xs[j]!, xs[j + 1]!, xs[j + 2]!];
      for (let i = 0; i < n; i++) acc[i] = f(f(f(acc[i]! + b[i]!) + c[i]!) + d[i]!);
    }
    for (; j < xs.length; j++) sumFloat32(acc, xs[j]!);
    dst.set(acc);
  }
}

/** Finish a `mean`: divide by the world size (integer dtypes truncate, as numpy's `//` would not: documented). */
export function finishMean(acc: NumericArray, worldSize: number): void {
  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / worldSize;
}

/** Element ranges of the `parts` chunks of `n` elements: near-equal, the first `n % parts` one longer. */
export function chunkBounds(n: number, parts: number): [number, number][] {
  const base = Math.floor(n / parts);
  const extra = n % parts;
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const len = base + (i < extra ? 1 : 0);
    out.push([start, start + len]);
    start += len;
  }
  return out;
}

/** The names `ReduceOp` accepts, for validation. */
export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'mean', 'min', 'max'];
/** The names `Dtype` accepts, for validation. */
export const DTYPES: readonly Dtype[] = Object.keys(CTORS) as Dtype[];
