/**
 * The element types a collective works on and the reductions over them. A TypeScript rank passes a
 * TypedArray (or a Buffer, read as uint8); a Python rank a numpy array or CPU torch tensor of the same
 * dtype name. Chunks travel between ranks as TypedArrays of this dtype (ENCODING_RAW from TypeScript,
 * msgpack ext 2 from Python), so a mixed TypeScript/Python group needs no conversion.
 * @module
 */

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
