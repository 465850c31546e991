/**
 * Objects as a Python process reads them. TypeScript keeps V8 structured clone (`ENCODING_V8`) for its
 * own values (a `put`, a return to a TypeScript caller); Python reads only cross-language msgpack and
 * ErrorInfo. The node converts a V8 object when it hands it to a Python worker or driver, so Python
 * needs no V8 reader (docs/xlang.md).
 * @internal
 */
import * as v8 from 'node:v8';
import { encodeErrorPayload } from './error-payload.js';
import { SerializationError } from './errors.js';
import { xlangEncodeWithRefs } from './xlang.js';
import type { StoredObject } from './node/object-table.js';

/**
 * The object as a Python process reads it: a V8 value becomes msgpack (inline), or an
 * `UnreadableValueError` error object when it holds something outside the cross-language value model
 * (a Map, a Date, a class instance...). Other encodings are returned as they are.
 * @param bytes the object's bytes (read only for V8 objects)
 */
export function pythonView(objectId: string, d: StoredObject, bytes: () => Uint8Array): StoredObject {
  if (d.encoding !== 'v8') return d;
  try {
    // Refs stay the plain `{__tsray_object_ref__: id}` records V8 keeps; the msgpack encoder turns them into ext types.
    const { bytes: inline, refs } = xlangEncodeWithRefs(v8.deserialize(bytes()), 'value');
    return { encoding: 'msgpack', rawKind: '', inline, size: inline.length, contained: refs };
  } catch (e) {
    const reason =
      `it was produced by TypeScript and holds something outside the cross-language value model (${e instanceof SerializationError ? `${e.valueType} at ${e.path}` : (e as Error).message}); ` +
      'pass plain objects, arrays, strings, numbers, bigints, Buffers and TypedArrays to Python (docs/xlang.md)';
    const inline = encodeErrorPayload({ type: 'UnreadableValueError', objectId, reason });
    return { encoding: 'error', rawKind: '', inline, size: inline.length, contained: [] };
  }
}
