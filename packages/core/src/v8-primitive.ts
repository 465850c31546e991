/**
 * A top-level primitive read straight from V8's serialization format (what `v8.serialize` wrote), and
 * written in it: `v8.deserialize` / `v8.serialize` make a `DefaultDeserializer` / `DefaultSerializer` per
 * call, which was a third of the CPU of a `get` of a small value (`single_client_get_calls`) and a tenth of
 * a `put(0)`. Only the shapes below are read and written here, and only as the whole buffer; anything
 * else is {@link NOT_PRIMITIVE} / `undefined` and goes to `v8.deserialize` / `v8.serialize` as before.
 * Format: header `0xFF <version varint>`, then one tag: `I` zigzag-varint int32, `N` float64 LE,
 * `T`/`F`/`0`/`_` true/false/null/undefined, `"` varint length + Latin-1 bytes (a one-byte string).
 * (v8 `ValueSerializer`, `src/objects/value-serializer.cc`; two-byte strings, BigInts and every
 * object go the slow way.)
 * @internal
 */
import * as v8 from 'node:v8';

/** The bytes are not one of the primitives read here. */
export const NOT_PRIMITIVE: unique symbol = Symbol('not a primitive');

/** The value of `bytes` when it is a lone primitive; else {@link NOT_PRIMITIVE}. */
export function v8Primitive(bytes: Uint8Array): unknown {
  const n = bytes.length;
  if (n < 3 || bytes[0] !== 0xff) return NOT_PRIMITIVE;
  let i = 1;
  while (i < n && bytes[i]! & 0x80) i++; // the version varint
  i++;
  if (i >= n) return NOT_PRIMITIVE;
  const tag = bytes[i++];
  switch (tag) {
    case 0x49: {
      // 'I': a zigzag varint of at most 5 bytes
      const u = readVarint(bytes, i);
      return u !== undefined && u.end === n ? (u.value >>> 1) ^ -(u.value & 1) : NOT_PRIMITIVE;
    }
    case 0x4e: // 'N'
      return i + 8 === n ? new DataView(bytes.buffer, bytes.byteOffset + i, 8).getFloat64(0, true) : NOT_PRIMITIVE;
    case 0x54: // 'T'
      return i === n ? true : NOT_PRIMITIVE;
    case 0x46: // 'F'
      return i === n ? false : NOT_PRIMITIVE;
    case 0x30: // '0'
      return i === n ? null : NOT_PRIMITIVE;
    case 0x5f: // '_'
      return i === n ? undefined : NOT_PRIMITIVE;
    case 0x22: {
      // '"': a varint byte length, then that many Latin-1 bytes
      const len = readVarint(bytes, i);
      if (len === undefined || len.end + len.value !== n) return NOT_PRIMITIVE;
      return Buffer.from(bytes.buffer, bytes.byteOffset + len.end, len.value).toString('latin1');
    }
    default:
      return NOT_PRIMITIVE;
  }
}

/** A varint of at most 5 bytes (32 bits) at `at`, as an unsigned number and the index after it; undefined if cut or longer. */
function readVarint(bytes: Uint8Array, at: number): { value: number; end: number } | undefined {
  let value = 0;
  for (let shift = 0, i = at; shift <= 28 && i < bytes.length; shift += 7) {
    const b = bytes[i++]!;
    value = (value | ((b & 0x7f) << shift)) >>> 0;
    if ((b & 0x80) === 0) return { value, end: i };
  }
  return undefined;
}

/** The header `v8.serialize` writes (0xFF, its format version), taken from V8 itself so it always matches. */
const HEADER = v8Header();
/** Longest string written here; longer ones go to `v8.serialize` (its fixed cost is small beside the copy). */
const MAX_STRING = 4096;

/**
 * `value` in V8's format when it is a lone undefined, null, boolean, number, or string of Latin-1 characters
 * (at most 4,096); else undefined. `v8.deserialize` reads the bytes back as the same value. Integers of
 * the int32 range (not -0) are written as `I` as V8 writes a small integer, other numbers as `N`; a string as
 * one-byte `"`, which V8 would write as two-byte `c` if it held the string that way internally: the bytes
 * may then differ from `v8.serialize`'s, never the value read back.
 */
export function v8PrimitiveBytes(value: unknown): Buffer | undefined {
  switch (typeof value) {
    case 'undefined':
      return withTag(0x5f, 0);
    case 'boolean':
      return withTag(value ? 0x54 : 0x46, 0);
    case 'number':
      return numberBytes(value);
    case 'string':
      return stringBytes(value);
    case 'object':
      return value === null ? withTag(0x30, 0) : undefined;
    default:
      return undefined;
  }
}

function numberBytes(v: number): Buffer {
  if ((v | 0) === v && !Object.is(v, -0)) {
    const zz = ((v << 1) ^ (v >> 31)) >>> 0; // zigzag
    const out = withTag(0x49, varintLength(zz));
    writeVarint(out, HEADER.length + 1, zz);
    return out;
  }
  const out = withTag(0x4e, 8);
  out.writeDoubleLE(v, HEADER.length + 1);
  return out;
}

function stringBytes(s: string): Buffer | undefined {
  const n = s.length;
  if (n > MAX_STRING) return undefined;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0xff) return undefined;
  const out = withTag(0x22, varintLength(n) + n);
  out.write(s, writeVarint(out, HEADER.length + 1, n), n, 'latin1');
  return out;
}

/** A new buffer of the header, `tag`, and `rest` bytes to fill (its own memory: it may be kept long). */
function withTag(tag: number, rest: number): Buffer {
  const out = Buffer.allocUnsafeSlow(HEADER.length + 1 + rest);
  HEADER.copy(out, 0);
  out[HEADER.length] = tag;
  return out;
}

/** Writes `u` (unsigned, below 2^32) as a varint at `at`; returns the index after it. */
function writeVarint(out: Buffer, at: number, u: number): number {
  let i = at;
  let rest = u;
  while (rest >= 0x80) {
    out[i++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[i] = rest;
  return i + 1;
}

function varintLength(u: number): number {
  let n = 1;
  while (u >= 0x80) {
    u >>>= 7;
    n++;
  }
  return n;
}

function v8Header(): Buffer {
  const b = v8.serialize(null); // header, then '0'
  return Buffer.from(b.subarray(0, b.length - 1));
}
