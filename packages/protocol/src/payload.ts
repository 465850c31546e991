import type { tsray } from './generated/tsray.js';
import { MalformedMessageError } from './errors.js';
import { asBuffer } from './framing.js';

/** A `tsray.v1.Payload` descriptor as {@link PayloadWriter.add} returns it: every field set. */
export interface PayloadRef {
  /** Index of the payload frame, counting from the first frame after the envelope. */
  frame: number;
  /** Byte offset inside that frame. */
  offset: number;
  /** Length in bytes. */
  length: number;
}

/**
 * Returns the bytes a `Payload` names, as a view of the received frame (no copy).
 *
 * @param payload - The descriptor from a decoded message (unset fields count as 0).
 * @param frames - The message's payload frames (`DecodedMessage.payloads`).
 * @returns A Buffer sharing memory with `frames[payload.frame]`.
 * @throws {@link MalformedMessageError} when the descriptor points outside the frames.
 */
export function payloadBytes(payload: tsray.v1.Payload.$Properties, frames: readonly Buffer[]): Buffer {
  const frame = payload.frame ?? 0;
  const offset = Number(payload.offset ?? 0);
  const length = Number(payload.length ?? 0);
  const buf = frames[frame];
  if (buf === undefined) {
    throw new MalformedMessageError(`payload names frame ${frame}, but the message has ${frames.length} payload frames`);
  }
  if (offset + length > buf.length) {
    throw new MalformedMessageError(`payload [${offset}, ${offset + length}) is outside payload frame ${frame} (${buf.length} bytes)`);
  }
  return buf.subarray(offset, offset + length);
}

/** Options of {@link PayloadWriter}. */
export interface PayloadWriterOptions {
  /** Payloads of at least this many bytes get a frame of their own (no copy). Default 64 KiB. */
  ownFrameBytes?: number;
  /** A packed frame of small payloads is closed once it would grow past this. Default 1 MiB. */
  maxPackBytes?: number;
}

interface Pack {
  chunks: Uint8Array[];
  size: number;
}

/**
 * Collects the payloads of one message and lays them out in as few frames as is sensible: small
 * payloads are packed back to back into a shared frame (one copy of small bytes), large ones
 * (`>= ownFrameBytes`) travel as their own frame without being copied. Keeps the frame count low
 * when a message batches thousands of tasks.
 *
 * @example
 * ```ts
 * const w = new PayloadWriter();
 * const tasks = specs.map((s) => ({ taskId: s.id, args: [{ objectId: s.argId, inline: w.add(s.bytes) }] }));
 * socket.send(encodeMessage({ executeTasks: { tasks } }, w.finish()));
 * ```
 */
export class PayloadWriter {
  private readonly ownFrameBytes: number;
  private readonly maxPackBytes: number;
  private frames: (Uint8Array | Pack)[] = [];
  private pack: Pack | undefined;
  private packIndex = -1;
  private total = 0;

  /** @param options - Size thresholds; see {@link PayloadWriterOptions}. */
  constructor(options?: PayloadWriterOptions) {
    this.ownFrameBytes = options?.ownFrameBytes ?? 64 * 1024;
    this.maxPackBytes = options?.maxPackBytes ?? 1024 * 1024;
  }

  /**
   * Adds one payload.
   *
   * @param bytes - The payload; kept by reference until {@link PayloadWriter.finish} (do not mutate it before).
   * @returns The descriptor to put in the message (`ObjectData.inline`, ...).
   */
  add(bytes: Uint8Array): PayloadRef {
    const length = bytes.byteLength;
    this.total += length;
    if (length >= this.ownFrameBytes) {
      this.frames.push(bytes);
      return { frame: this.frames.length - 1, offset: 0, length };
    }
    let pack = this.pack;
    if (pack === undefined || (pack.size + length > this.maxPackBytes && pack.size > 0)) {
      pack = { chunks: [], size: 0 };
      this.pack = pack;
      this.packIndex = this.frames.length;
      this.frames.push(pack);
    }
    const offset = pack.size;
    pack.chunks.push(bytes);
    pack.size += length;
    return { frame: this.packIndex, offset, length };
  }

  /** Number of frames {@link PayloadWriter.finish} will return. */
  get frameCount(): number {
    return this.frames.length;
  }

  /** Total payload bytes added so far. */
  get byteLength(): number {
    return this.total;
  }

  /**
   * Returns the payload frames in descriptor order and resets the writer for the next message.
   *
   * @returns Frames to pass to `encodeMessage` as `payloads`.
   */
  finish(): Buffer[] {
    const out = this.frames.map((f) => {
      if (f instanceof Uint8Array) return asBuffer(f);
      if (f.chunks.length === 1) return asBuffer(f.chunks[0]!);
      return Buffer.concat(f.chunks, f.size);
    });
    this.frames = [];
    this.pack = undefined;
    this.packIndex = -1;
    this.total = 0;
    return out;
  }
}
