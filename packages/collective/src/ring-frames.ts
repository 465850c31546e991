/**
 * The byte stream of one ring link (`node-ring.ts`): frames written by the previous peer, read by the
 * next one from a TCP socket into one reused read buffer (no allocation per read), assembled into a small
 * pool of frame buffers, and handed to the ring's loop in order. When every frame buffer is taken, the
 * reader pauses the socket (TCP's flow control then holds the sender) and keeps the rest of the read
 * in one spill buffer until the loop gives a buffer back.
 *
 * Frame = 48-byte head ‖ payload. Head: op number (u32 LE), step (u32), offset in elements (f64), payload
 * bytes (u32), counter (u64 as two u32: high, low), magic (u32), then the payload's 16-byte AES-GCM tag
 * (zeros on a plain ring). The head's first 32 bytes are the payload's associated data, so a sealed frame
 * whose head was altered fails to open like one whose payload was.
 * @module
 */
import type { Socket } from 'node:net';

/** Bytes of a frame's head (32 of fields, 16 of tag). */
export const FRAME_HEAD_BYTES = 48;
/** Bytes of the head that are the payload's associated data. */
export const FRAME_AAD_BYTES = 32;
const MAGIC = 0x74_52_4e_47; // 'tRNG'
/** Bytes of the socket's reused read buffer. */
const READ_BYTES = 1024 * 1024;

/** The fields of a frame's head. */
export interface FrameHead {
  seq: number;
  step: number;
  at: number;
  bytes: number;
  counter: number;
}

/** Write `h` into the first {@link FRAME_AAD_BYTES} bytes of `head` (the tag follows, written by the sealer). */
export function writeFrameHead(head: Buffer, h: FrameHead): void {
  head.writeUInt32LE(h.seq >>> 0, 0);
  head.writeUInt32LE(h.step, 4);
  head.writeDoubleLE(h.at, 8);
  head.writeUInt32LE(h.bytes, 16);
  head.writeUInt32LE(Math.floor(h.counter / 2 ** 32), 20);
  head.writeUInt32LE(h.counter >>> 0, 24);
  head.writeUInt32LE(MAGIC, 28);
}

/** A received frame: its head (fields, raw bytes with the tag) and its payload in a pooled buffer. */
export interface ReceivedFrame extends FrameHead {
  head: Buffer;
  payload: Buffer;
  /** Give the payload's buffer back to the reader's pool (call once, after the payload was used). */
  release(): void;
}

/** Why a stream is unusable: a head that is not a frame's, or a payload longer than the largest frame. */
export class RingStreamError extends Error {}

/**
 * Reads the frames of one ring link from a socket (see the module comment). `onread` must be passed to
 * the socket's connect options ({@link RingReader.onread}) so that reads land in the reused buffer.
 */
export class RingReader {
  private readonly readBuf = Buffer.allocUnsafeSlow(READ_BYTES);
  private readonly head = Buffer.allocUnsafe(FRAME_HEAD_BYTES);
  private headHave = 0;
  private current: { fields: FrameHead; buf: Buffer; have: number } | undefined;
  private readonly free: Buffer[] = [];
  private readonly frames: ReceivedFrame[] = [];
  private waiter: (() => void) | undefined;
  private spill: Buffer | undefined;
  private spillLength = 0;
  private paused = false;
  private socket: Socket | undefined;
  /** Set when the stream broke (then every later `next` throws it). */
  failure: Error | undefined;

  constructor(
    private readonly maxPayload: number,
    pool = 3,
  ) {
    for (let i = 0; i < pool; i++) this.free.push(Buffer.allocUnsafeSlow(maxPayload));
  }

  /** The socket option that makes reads land in this reader (pass to `net.connect`). */
  get onread(): { buffer: Buffer; callback: (n: number, buf: Buffer) => boolean } {
    return { buffer: this.readBuf, callback: (n: number) => this.consume(this.readBuf, n) };
  }

  /** The socket the reader reads (for pause/resume). */
  attach(socket: Socket): void {
    this.socket = socket;
  }

  /** The next frame now, or undefined; throws when the stream broke. */
  take(): ReceivedFrame | undefined {
    if (this.failure) throw this.failure;
    return this.frames.shift();
  }

  /** Resolves when a frame may be there (or the stream broke), or after `ms`. */
  whenFrame(ms: number): Promise<void> {
    if (this.frames.length > 0 || this.failure) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        resolve();
      }, ms);
      this.waiter = () => {
        clearTimeout(t);
        this.waiter = undefined;
        resolve();
      };
    });
  }

  /** The stream broke (socket error or end): wake the loop, which then throws `e`. */
  fail(e: Error): void {
    this.failure ??= e;
    this.waiter?.();
  }

  /** Parse `n` bytes of `src`; false (pause the socket) when the rest had to be spilled. */
  private consume(src: Buffer, n: number): boolean {
    let at = 0;
    while (at < n && !this.failure) {
      if (!this.current) {
        const take = Math.min(FRAME_HEAD_BYTES - this.headHave, n - at);
        src.copy(this.head, this.headHave, at, at + take);
        this.headHave += take;
        at += take;
        if (this.headHave < FRAME_HEAD_BYTES) break;
        if (!this.startFrame()) {
          // No frame buffer free: keep the rest of this read until the loop gives one back.
          this.spillRest(src, at, n);
          return false;
        }
        // startFrame set `current`, unless the head broke the stream (TS cannot see the call's effect).
        const started = this.current as { fields: FrameHead } | undefined;
        if (started?.fields.bytes === 0) this.finishFrame();
        continue;
      }
      const cur = this.current;
      const take = Math.min(cur.fields.bytes - cur.have, n - at);
      src.copy(cur.buf, cur.have, at, at + take);
      cur.have += take;
      at += take;
      if (cur.have === cur.fields.bytes) this.finishFrame();
    }
    return true;
  }

  /** The head is complete: check it and take a frame buffer; false when none is free (true, and no frame, when the head breaks the stream). */
  private startFrame(): boolean {
    const h = this.head;
    if (h.readUInt32LE(28) !== MAGIC) return this.broken(new RingStreamError('node ring: the stream holds something that is not a frame'));
    const bytes = h.readUInt32LE(16);
    if (bytes > this.maxPayload) return this.broken(new RingStreamError(`node ring: a frame of ${bytes} bytes (at most ${this.maxPayload})`));
    const buf = this.free.pop();
    if (!buf) return false;
    const fields: FrameHead = {
      seq: h.readUInt32LE(0),
      step: h.readUInt32LE(4),
      at: h.readDoubleLE(8),
      bytes,
      counter: h.readUInt32LE(20) * 2 ** 32 + h.readUInt32LE(24),
    };
    this.current = { fields, buf, have: 0 };
    return true;
  }

  private broken(e: Error): true {
    this.fail(e);
    this.socket?.destroy();
    return true;
  }

  private finishFrame(): void {
    const { fields, buf } = this.current!;
    this.current = undefined;
    this.headHave = 0;
    let released = false;
    this.frames.push({
      ...fields,
      head: Buffer.from(this.head),
      payload: buf.subarray(0, fields.bytes),
      release: () => {
        if (released) return;
        released = true;
        this.free.push(buf);
        this.resumeIfPaused();
      },
    });
    this.waiter?.();
  }

  private spillRest(src: Buffer, at: number, n: number): void {
    const rest = n - at;
    this.spill ??= Buffer.allocUnsafeSlow(READ_BYTES);
    src.copy(this.spill, 0, at, n);
    this.spillLength = rest;
    this.paused = true;
    this.socket?.pause();
  }

  /** A frame buffer came back: parse the spilled bytes, then read from the socket again. */
  private resumeIfPaused(): void {
    if (!this.paused || this.failure) return;
    if (!this.current && this.headHave === FRAME_HEAD_BYTES && !this.startFrame()) return;
    if (this.current?.fields.bytes === 0) this.finishFrame();
    const n = this.spillLength;
    this.spillLength = 0;
    // The spill is parsed from a copy's view: consume() may need to spill again (into the same buffer).
    const pending = Buffer.from(this.spill!.subarray(0, n));
    if (!this.consume(pending, n)) return;
    this.paused = false;
    this.socket?.resume();
  }
}
