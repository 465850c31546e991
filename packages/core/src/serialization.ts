/**
 * Serialization of values between processes: structured-clone semantics through `node:v8`, raw bytes
 * for top-level Buffers/TypedArrays, and ObjectRefs kept as refs wherever they are nested.
 * @internal
 */
import * as v8 from 'node:v8';
import { SerializationError } from './errors.js';
import { ACTOR_MARKER, ObjectRef, REF_MARKER } from './object-ref.js';
import { NOT_PRIMITIVE, v8Primitive, v8PrimitiveBytes } from './v8-primitive.js';
import { xlangDecode, xlangEncodeWithRefs } from './xlang.js';
import type { SubmitArg } from './runtime.js';

/** A value turned into bytes. `bytes` may alias the caller's memory for raw values: copy before keeping. */
export interface SerializedValue {
  encoding: 'v8' | 'raw' | 'error' | 'msgpack';
  /** Class of a raw value: 'Buffer', 'Uint8Array', ..., 'ArrayBuffer', 'DataView'. */
  rawKind: string;
  bytes: Uint8Array;
  /** Ids of refs nested in the value. */
  containedRefs: string[];
}

const MARKER_BYTES = Buffer.from(REF_MARKER, 'latin1');
const TYPED_ARRAYS: Record<string, { new (buf: ArrayBufferLike, off: number, len: number): ArrayBufferView; BYTES_PER_ELEMENT: number }> = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
};

function rawKindOf(value: object): string | undefined {
  if (Buffer.isBuffer(value)) return 'Buffer';
  if (value instanceof ArrayBuffer) return 'ArrayBuffer';
  if (value instanceof DataView) return 'DataView';
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name;
    return name in TYPED_ARRAYS ? name : undefined;
  }
  return undefined;
}

/**
 * Serialize a value. Top-level Buffers, TypedArrays and ArrayBuffers become raw bytes (no copy: the
 * result aliases the input); everything else goes through V8's structured clone.
 * @param path name of the value for error messages (e.g. `args[0]`).
 */
export function serialize(value: unknown, path = 'value'): SerializedValue {
  if (typeof value !== 'object' || value === null) {
    // A lone primitive (a task's 0, an actor's 'ok') without a v8 Serializer; a string holding the ref
    // marker goes the slow way so that findRefIds reads it as it always did.
    const bytes = v8PrimitiveBytes(value);
    if (bytes !== undefined && (typeof value !== 'string' || !value.includes(REF_MARKER))) {
      return { encoding: 'v8', rawKind: '', bytes, containedRefs: [] };
    }
  } else if (!ObjectRef.isObjectRef(value)) {
    // (A bare ref as a value, e.g. a task returning a ref, goes to structured clone: it keeps the marker.)
    const kind = rawKindOf(value);
    if (kind !== undefined) {
      const bytes =
        kind === 'ArrayBuffer'
          ? new Uint8Array(value as ArrayBuffer)
          : new Uint8Array((value as ArrayBufferView).buffer, (value as ArrayBufferView).byteOffset, (value as ArrayBufferView).byteLength);
      return { encoding: 'raw', rawKind: kind, bytes, containedRefs: [] };
    }
  }
  let bytes: Buffer;
  try {
    bytes = v8.serialize(value);
  } catch (e) {
    throw diagnose(value, path, e);
  }
  return { encoding: 'v8', rawKind: '', bytes, containedRefs: findRefIds(bytes, value) };
}

let handleReviver: ((info: unknown) => unknown) | undefined;
/** Set how deserialized actor handles are rebuilt (actor.ts does it). @internal */
export function setHandleReviver(fn: (info: unknown) => unknown): void {
  handleReviver = fn;
}

/**
 * Task arguments as submitted: a top-level ref stays a ref (a dependency), any other value is
 * serialized (msgpack when the callee is Python). `what(i)` names argument i in errors.
 */
export function toSubmitArgs(args: readonly unknown[], what: (i: number) => string, xlang: boolean): SubmitArg[] {
  const out: SubmitArg[] = new Array(args.length);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    out[i] = ObjectRef.isObjectRef(a) ? { kind: 'ref', id: a.id } : { kind: 'value', value: xlang ? serializeXlang(a, what(i)) : serialize(a, what(i)) };
  }
  return out;
}

/** Serialize a value for a Python process (cross-language msgpack, docs/xlang.md). */
export function serializeXlang(value: unknown, path = 'value'): SerializedValue {
  const { bytes, refs } = xlangEncodeWithRefs(value, path);
  return { encoding: 'msgpack', rawKind: '', bytes, containedRefs: refs };
}

/**
 * Turn bytes back into a value. For raw values the result aliases `bytes` (zero copy) when
 * alignment allows; V8 values are always fresh copies.
 */
export function deserialize(encoding: 'v8' | 'raw' | 'error' | 'msgpack', rawKind: string, bytes: Uint8Array): unknown {
  if (encoding === 'raw') return rawFromBytes(rawKind, bytes);
  if (encoding === 'msgpack') return xlangDecode(bytes);
  if (encoding === 'v8') {
    // A lone number, boolean, null, undefined or one-byte string holds no refs: read without a Deserializer.
    const primitive = v8Primitive(bytes);
    if (primitive !== NOT_PRIMITIVE) return primitive;
  }
  const value = v8.deserialize(bytes);
  if (encoding === 'v8' && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(MARKER_BYTES) !== -1) {
    return revive(value, new Set());
  }
  return value;
}

function rawFromBytes(kind: string, bytes: Uint8Array): unknown {
  switch (kind) {
    case 'Buffer':
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    case 'ArrayBuffer':
      if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer;
      return copyBytes(bytes).buffer;
    case 'DataView':
      return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    default: {
      const C = TYPED_ARRAYS[kind];
      if (!C) throw new SerializationError('value', `raw ${kind}`, 'unknown typed array kind');
      if (bytes.byteOffset % C.BYTES_PER_ELEMENT === 0) return new C(bytes.buffer, bytes.byteOffset, bytes.byteLength / C.BYTES_PER_ELEMENT);
      const copy = copyBytes(bytes);
      return new C(copy.buffer, 0, copy.byteLength / C.BYTES_PER_ELEMENT);
    }
  }
}

/** A copy in a fresh, exactly sized ArrayBuffer (Buffer#slice would alias the pool). */
function copyBytes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out;
}

/** Ids of refs inside serialized bytes: scan for the marker, read the id string that follows. */
function findRefIds(bytes: Buffer, value: unknown): string[] {
  let at = bytes.indexOf(MARKER_BYTES);
  if (at === -1) return [];
  const ids = new Set<string>();
  while (at !== -1) {
    let p = at + MARKER_BYTES.length;
    // V8 one-byte string: tag '"' (0x22), varint length, latin1 bytes.
    if (bytes[p] === 0x22) {
      p++;
      let len = 0;
      let shift = 0;
      for (;;) {
        const b = bytes[p++]!;
        len |= (b & 0x7f) << shift;
        if ((b & 0x80) === 0) break;
        shift += 7;
      }
      ids.add(bytes.toString('latin1', p, p + len));
    } else {
      // Unexpected layout: fall back to walking the value.
      return collectRefs(value);
    }
    at = bytes.indexOf(MARKER_BYTES, p);
  }
  return [...ids];
}

function collectRefs(value: unknown): string[] {
  const out = new Set<string>();
  const seen = new Set<object>();
  const walk = (v: unknown): void => {
    if (typeof v !== 'object' || v === null || seen.has(v)) return;
    seen.add(v);
    if (ObjectRef.isObjectRef(v)) {
      out.add(v.id);
      return;
    }
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return;
    if (v instanceof Map) for (const [k, x] of v) walk(k), walk(x);
    else if (v instanceof Set) for (const x of v) walk(x);
    else for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k]);
  };
  walk(value);
  return [...out];
}

/** Replace `{__tsray_object_ref__: id}` plain objects by ObjectRef instances, in place. */
function revive(v: unknown, seen: Set<object>): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (seen.has(v)) return v;
  const rec = v as Record<string, unknown>;
  if (typeof rec[REF_MARKER] === 'string' && Object.getPrototypeOf(v) === Object.prototype) {
    if (typeof rec[ACTOR_MARKER] === 'object' && rec[ACTOR_MARKER] !== null && handleReviver) return handleReviver(rec[ACTOR_MARKER]);
    return new ObjectRef(rec[REF_MARKER] as string);
  }
  seen.add(v);
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Date || v instanceof RegExp) return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = revive(v[i], seen);
  } else if (v instanceof Map) {
    const entries = [...v.entries()];
    v.clear();
    for (const [k, x] of entries) v.set(revive(k, seen), revive(x, seen));
  } else if (v instanceof Set) {
    const items = [...v];
    v.clear();
    for (const x of items) v.add(revive(x, seen));
  } else {
    for (const k of Object.keys(rec)) rec[k] = revive(rec[k], seen);
  }
  return v;
}

/** Find the first field that structured clone rejects and build an error naming its path. */
function diagnose(value: unknown, path: string, original: unknown): SerializationError {
  const seen = new Set<object>();
  const find = (v: unknown, p: string): SerializationError | undefined => {
    if (typeof v === 'function') return new SerializationError(p, `function ${v.name || '(anonymous)'}`);
    if (typeof v === 'symbol') return new SerializationError(p, `symbol ${v.description ?? ''}`.trim());
    if (typeof v !== 'object' || v === null || seen.has(v)) return undefined;
    seen.add(v);
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Date || v instanceof RegExp) return undefined;
    const proto = Object.getPrototypeOf(v);
    const plain = proto === Object.prototype || proto === null || Array.isArray(v) || v instanceof Map || v instanceof Set || v instanceof Error;
    if (!plain) {
      // A class instance: report the object itself (a Socket, a Promise...) rather than some inner field.
      try {
        v8.serialize(v);
        return undefined;
      } catch (e) {
        const ctor = (v as { constructor?: { name?: string } }).constructor?.name ?? 'object';
        return new SerializationError(p, ctor, e instanceof Error ? e.message : String(e));
      }
    }
    if (v instanceof Map) {
      let i = 0;
      for (const [k, x] of v) {
        const e = find(k, `${p}.keys()[${i}]`) ?? find(x, `${p}.get(${typeof k === 'string' ? JSON.stringify(k) : i})`);
        if (e) return e;
        i++;
      }
    } else if (v instanceof Set) {
      let i = 0;
      for (const x of v) {
        const e = find(x, `${p}.values()[${i++}]`);
        if (e) return e;
      }
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const e = find(v[i], `${p}[${i}]`);
        if (e) return e;
      }
    } else {
      for (const k of Object.keys(v)) {
        const e = find((v as Record<string, unknown>)[k], /^[A-Za-z_$][\w$]*$/.test(k) ? `${p}.${k}` : `${p}[${JSON.stringify(k)}]`);
        if (e) return e;
      }
    }
    // Children are fine: is the object itself cloneable (sockets, promises, class handles are not)?
    try {
      v8.serialize(v);
    } catch (e) {
      const ctor = (v as { constructor?: { name?: string } }).constructor?.name ?? 'object';
      return new SerializationError(p, ctor, e instanceof Error ? e.message : String(e));
    }
    return undefined;
  };
  return find(value, path) ?? new SerializationError(path, typeof value, original instanceof Error ? original.message : String(original));
}
