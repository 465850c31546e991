/**
 * The cross-language value codec (msgpack, docs/xlang.md): what TypeScript and Python processes
 * exchange. TS-only traffic uses V8 structured clone instead.
 * @internal
 */
import { addExtension, Packr } from 'msgpackr';
import { SerializationError } from './errors.js';
import { ACTOR_MARKER, ObjectRef, REF_MARKER } from './object-ref.js';

/** An n-dimensional numeric array from Python (numpy); 1-D arrays arrive as plain TypedArrays. */
export class NDArray {
  constructor(
    readonly dtype: string,
    readonly shape: number[],
    readonly data: ArrayBufferView,
  ) {}
}

const DTYPES: Record<string, { new (b: ArrayBufferLike, o: number, n: number): ArrayBufferView; BYTES_PER_ELEMENT: number }> = {
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
const DTYPE_OF = new Map<unknown, string>(Object.entries(DTYPES).map(([k, v]) => [v, k]));

class XRef {
  constructor(readonly id: string) {}
}
class XArray {
  constructor(
    readonly dtype: string,
    readonly shape: number[],
    readonly bytes: Uint8Array,
  ) {}
}
class XBig {
  constructor(readonly digits: string) {}
}
class XHandle {
  constructor(readonly info: [string, string, string[]]) {}
}

const inner = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'bigint', moreTypes: false, encodeUndefinedAsNil: true });

let handleReviver: ((info: { actorId: string; className: string; methods: string[] }) => unknown) | undefined;
/** How decoded actor handles are built (actor.ts sets it). */
export function setXlangHandleReviver(fn: typeof handleReviver): void {
  handleReviver = fn;
}

addExtension({ Class: XRef, type: 1, pack: (x: XRef) => Buffer.from(x.id, 'utf8'), unpack: (b: Buffer) => new ObjectRef(b.toString('utf8')) });
addExtension({
  Class: XArray,
  type: 2,
  pack: (x: XArray) => inner.pack([x.dtype, x.shape, x.bytes]),
  unpack: (b: Buffer) => {
    const [dtype, shape, bytes] = inner.unpack(b) as [string, number[], Uint8Array];
    const C = DTYPES[dtype];
    if (!C) throw new SerializationError('value', `ndarray of dtype ${dtype}`, `supported dtypes: ${Object.keys(DTYPES).join(', ')}`);
    let buf = bytes;
    if (buf.byteOffset % C.BYTES_PER_ELEMENT !== 0) buf = new Uint8Array(buf);
    const data = new C(buf.buffer, buf.byteOffset, buf.byteLength / C.BYTES_PER_ELEMENT);
    return shape.length === 1 ? data : new NDArray(dtype, shape, data);
  },
});
addExtension({ Class: XBig, type: 3, pack: (x: XBig) => Buffer.from(x.digits, 'utf8'), unpack: (b: Buffer) => BigInt(b.toString('utf8')) });
addExtension({
  Class: XHandle,
  type: 4,
  pack: (x: XHandle) => inner.pack(x.info),
  unpack: (b: Buffer) => {
    const [actorId, className, methods] = inner.unpack(b) as [string, string, string[]];
    return handleReviver ? handleReviver({ actorId, className, methods }) : { actorId, className, methods };
  },
});

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'bigint', moreTypes: false, encodeUndefinedAsNil: true });

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** Turn a value into msgpack-ready form, rejecting what other languages cannot take. */
function prepare(v: unknown, path: string, seen: Set<object>, refs?: string[]): unknown {
  switch (typeof v) {
    case 'undefined':
      return null;
    case 'boolean':
    case 'string':
      return v;
    case 'number':
      return v;
    case 'bigint':
      return v >= INT64_MIN && v <= UINT64_MAX ? v : new XBig(v.toString());
    case 'object': {
      if (v === null) return null;
      if (seen.has(v)) throw new SerializationError(path, 'cyclic structure', 'msgpack cannot express cycles');
      const rec = v as Record<string, unknown>;
      if (typeof rec[REF_MARKER] === 'string') {
        const info = rec[ACTOR_MARKER] as { actorId: string; className: string; methods: string[] } | undefined;
        refs?.push(rec[REF_MARKER] as string);
        return info ? new XHandle([info.actorId, info.className, [...info.methods]]) : new XRef(rec[REF_MARKER] as string);
      }
      if (Buffer.isBuffer(v) || v instanceof Uint8Array) return v;
      if (v instanceof ArrayBuffer) return new Uint8Array(v);
      if (v instanceof NDArray) {
        return new XArray(v.dtype, v.shape, new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength));
      }
      if (ArrayBuffer.isView(v)) {
        const dtype = DTYPE_OF.get(v.constructor);
        if (!dtype) throw new SerializationError(path, v.constructor.name, 'no matching numpy dtype');
        return new XArray(dtype, [(v as unknown as { length: number }).length], new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      }
      seen.add(v);
      try {
        if (Array.isArray(v)) return v.map((x, i) => prepare(x, `${path}[${i}]`, seen, refs));
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          throw new SerializationError(
            path,
            (v as object).constructor?.name ?? 'object',
            'only plain objects, arrays, strings, numbers, bigints, booleans, null, Buffers, TypedArrays and refs cross to Python',
          );
        }
        const out: Record<string, unknown> = {};
        for (const k of Object.keys(v)) out[k] = prepare(rec[k], /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`, seen, refs);
        return out;
      } finally {
        seen.delete(v);
      }
    }
    default:
      throw new SerializationError(
        path,
        typeof v === 'function' ? `function ${(v as { name?: string }).name || '(anonymous)'}` : typeof v,
        'cannot cross to Python',
      );
  }
}

/** Encode a value as cross-language msgpack. Throws SerializationError naming the path. */
export function xlangEncode(value: unknown, path = 'value'): Buffer {
  const w = new Writer();
  w.value(prepare(value, path, new Set()));
  return w.finish();
}

/** Encode a value as cross-language msgpack, with the ids of the refs inside it. */
export function xlangEncodeWithRefs(value: unknown, path = 'value'): { bytes: Buffer; refs: string[] } {
  const refs: string[] = [];
  const w = new Writer();
  w.value(prepare(value, path, new Set(), refs));
  return { bytes: w.finish(), refs };
}

/**
 * A canonical msgpack writer (the same bytes as Python's msgpack): integers in their smallest form,
 * positive ones unsigned; non-integral numbers and -0 as float64; fixext where the length allows.
 */
class Writer {
  private buf = Buffer.allocUnsafe(256);
  private pos = 0;

  private need(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private u8(x: number): void {
    this.need(1);
    this.buf[this.pos++] = x;
  }

  private bytes(b: Uint8Array): void {
    this.need(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private int(v: bigint): void {
    this.need(9);
    const b = this.buf;
    if (v >= 0n) {
      if (v < 128n) b[this.pos++] = Number(v);
      else if (v < 256n) (b[this.pos++] = 0xcc), (b[this.pos++] = Number(v));
      else if (v < 65536n) (b[this.pos++] = 0xcd), b.writeUInt16BE(Number(v), this.pos), (this.pos += 2);
      else if (v < 4294967296n) (b[this.pos++] = 0xce), b.writeUInt32BE(Number(v), this.pos), (this.pos += 4);
      else (b[this.pos++] = 0xcf), b.writeBigUInt64BE(v, this.pos), (this.pos += 8);
    } else {
      if (v >= -32n) b[this.pos++] = Number(v) & 0xff;
      else if (v >= -128n) (b[this.pos++] = 0xd0), b.writeInt8(Number(v), this.pos), (this.pos += 1);
      else if (v >= -32768n) (b[this.pos++] = 0xd1), b.writeInt16BE(Number(v), this.pos), (this.pos += 2);
      else if (v >= -2147483648n) (b[this.pos++] = 0xd2), b.writeInt32BE(Number(v), this.pos), (this.pos += 4);
      else (b[this.pos++] = 0xd3), b.writeBigInt64BE(v, this.pos), (this.pos += 8);
    }
  }

  private header(n: number, fix: number, fixMax: number, c8: number | undefined, c16: number, c32: number): void {
    this.need(5);
    const b = this.buf;
    if (n <= fixMax) b[this.pos++] = fix | n;
    else if (c8 !== undefined && n < 256) (b[this.pos++] = c8), (b[this.pos++] = n);
    else if (n < 65536) (b[this.pos++] = c16), b.writeUInt16BE(n, this.pos), (this.pos += 2);
    else (b[this.pos++] = c32), b.writeUInt32BE(n, this.pos), (this.pos += 4);
  }

  private ext(type: number, data: Uint8Array): void {
    const n = data.byteLength;
    const fix = n === 1 ? 0xd4 : n === 2 ? 0xd5 : n === 4 ? 0xd6 : n === 8 ? 0xd7 : n === 16 ? 0xd8 : 0;
    this.need(6);
    if (fix) this.buf[this.pos++] = fix;
    else if (n < 256) (this.buf[this.pos++] = 0xc7), (this.buf[this.pos++] = n);
    else if (n < 65536) (this.buf[this.pos++] = 0xc8), this.buf.writeUInt16BE(n, this.pos), (this.pos += 2);
    else (this.buf[this.pos++] = 0xc9), this.buf.writeUInt32BE(n, this.pos), (this.pos += 4);
    this.u8(type);
    this.bytes(data);
  }

  private sub(v: unknown): Buffer {
    const w = new Writer();
    w.value(v);
    return w.finish();
  }

  value(v: unknown): void {
    if (v === null || v === undefined) return this.u8(0xc0);
    if (v === true) return this.u8(0xc3);
    if (v === false) return this.u8(0xc2);
    if (typeof v === 'number') {
      if (Number.isInteger(v) && !Object.is(v, -0) && Math.abs(v) <= 2 ** 53) return this.int(BigInt(v));
      this.need(9);
      this.buf[this.pos++] = 0xcb;
      this.buf.writeDoubleBE(v, this.pos);
      this.pos += 8;
      return;
    }
    if (typeof v === 'bigint') return this.int(v);
    if (typeof v === 'string') {
      const b = Buffer.from(v, 'utf8');
      this.header(b.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
      return this.bytes(b);
    }
    if (v instanceof Uint8Array) {
      this.header(v.byteLength, 0, -1, 0xc4, 0xc5, 0xc6);
      return this.bytes(v);
    }
    if (v instanceof XRef) return this.ext(1, Buffer.from(v.id, 'utf8'));
    if (v instanceof XBig) return this.ext(3, Buffer.from(v.digits, 'ascii'));
    if (v instanceof XArray) return this.ext(2, this.sub([v.dtype, v.shape, v.bytes]));
    if (v instanceof XHandle) return this.ext(4, this.sub(v.info));
    if (Array.isArray(v)) {
      this.header(v.length, 0x90, 15, undefined, 0xdc, 0xdd);
      for (const x of v) this.value(x);
      return;
    }
    const keys = Object.keys(v as object);
    this.header(keys.length, 0x80, 15, undefined, 0xde, 0xdf);
    for (const k of keys) {
      this.value(k);
      this.value((v as Record<string, unknown>)[k]);
    }
  }
}

/** Decode cross-language msgpack. */
export function xlangDecode(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
