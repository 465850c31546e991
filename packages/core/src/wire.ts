/**
 * Conversions between stored objects and protocol messages, and payload frame packing.
 * @internal
 */
import { tsray } from '@tsray/protocol';
import { type StoredObject, storedObject } from './node/object-table.js';

const Enc = tsray.v1.Encoding;

/** Encoding name -> protocol enum. */
export function encodingToWire(e: 'v8' | 'raw' | 'error' | 'msgpack'): tsray.v1.Encoding {
  return e === 'v8' ? Enc.ENCODING_V8 : e === 'raw' ? Enc.ENCODING_RAW : e === 'msgpack' ? Enc.ENCODING_MSGPACK : Enc.ENCODING_ERROR;
}

/** Protocol enum -> encoding name. */
export function encodingFromWire(e: tsray.v1.Encoding | null | undefined): 'v8' | 'raw' | 'error' | 'msgpack' {
  return e === Enc.ENCODING_RAW ? 'raw' : e === Enc.ENCODING_ERROR ? 'error' : e === Enc.ENCODING_MSGPACK ? 'msgpack' : 'v8';
}

/** Packs payloads into frames: small ones share frame 0, large ones get frames of their own. */
export class FrameBuilder {
  private readonly small: Uint8Array[] = [];
  private smallLen = 0;
  private readonly big: Uint8Array[] = [];

  /** Add bytes; returns the Payload descriptor. */
  add(bytes: Uint8Array): tsray.v1.IPayload {
    if (bytes.byteLength >= 64 * 1024) {
      this.big.push(bytes);
      return { frame: this.big.length, offset: 0, length: bytes.byteLength };
    }
    const offset = this.smallLen;
    this.small.push(bytes);
    this.smallLen += bytes.byteLength;
    return { frame: 0, offset, length: bytes.byteLength };
  }

  /** The payload frames (frame 0 always present). */
  frames(): Uint8Array[] {
    return [this.small.length === 1 ? this.small[0]! : Buffer.concat(this.small, this.smallLen), ...this.big];
  }

  get empty(): boolean {
    return this.small.length === 0 && this.big.length === 0;
  }
}

/** Slice of a payload frame (no copy). */
export function payloadView(p: tsray.v1.IPayload, frames: Buffer[]): Buffer {
  const f = frames[p.frame ?? 0];
  if (!f) throw new Error(`payload names frame ${p.frame} but the message has ${frames.length} payload frames`);
  const off = Number(p.offset ?? 0);
  const len = Number(p.length ?? 0);
  return f.subarray(off, off + len);
}

/** Protocol ObjectData for a stored object. */
export function storedToWire(id: string, d: StoredObject, fb: FrameBuilder): tsray.v1.IObjectData {
  const od: tsray.v1.IObjectData = {
    objectId: id,
    encoding: encodingToWire(d.encoding),
    rawKind: d.rawKind,
    containedRefs: d.contained,
    size: d.size,
  };
  if (d.inline) od.inline = fb.add(d.inline);
  else if (d.shm) od.shm = { offset: d.shm.offset, length: d.shm.length };
  else od.spillPath = d.spillPath!;
  return od;
}

/** Stored object from protocol ObjectData (inline bytes are copied out of the frame), in the one shape of {@link storedObject}. */
export function storedFromWire(od: tsray.v1.IObjectData, frames: Buffer[]): StoredObject {
  const inline = od.inline ? Buffer.from(payloadView(od.inline, frames)) : undefined;
  const shm = !inline && od.shm ? { offset: Number(od.shm.offset), length: Number(od.shm.length) } : undefined;
  const spillPath = inline || shm ? undefined : (od.spillPath ?? '');
  return storedObject(encodingFromWire(od.encoding), od.rawKind ?? '', Number(od.size ?? 0), od.containedRefs ?? [], inline, shm, spillPath);
}
