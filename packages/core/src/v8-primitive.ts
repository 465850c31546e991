/**
 * A top-level primitive read straight from V8's serialization format (what `v8.serialize` wrote):
 * `v8.deserialize` makes a `DefaultDeserializer` per call, which was a third of the CPU of a `get` of a
 * small value (`single_client_get_calls`). Only the shapes below are read here, and only when they are
 * the whole buffer; anything else is {@link NOT_PRIMITIVE} and goes to `v8.deserialize` as before.
 * Format: header `0xFF <version varint>`, then one tag: `I` zigzag-varint int32, `N` float64 LE,
 * `T`/`F`/`0`/`_` true/false/null/undefined, `"` varint length + Latin-1 bytes (a one-byte string).
 * (v8 `ValueSerializer`, `src/objects/value-serializer.cc`; two-byte strings, BigInts and every
 * object go the slow way.)
 * @internal
 */

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
