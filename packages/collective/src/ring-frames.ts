/**
 * The byte stream of one ring link (`node-ring.ts`): frames written by the previous peer, read by the
 * next one from a TCP socket straight into their places — a head into the head buffer, a payload into one
 * of a small pool of frame buffers or, when the ring names it, into its final place in the array (an
 * all-gather step's slot) — and handed to the ring's loop in order. When every frame buffer is taken, the
 * reader pauses the socket (TCP's flow control then holds the sender) and keeps what it read past the
 * head in one buffer until the loop gives a buffer back.
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
 * the socket's connect options ({@link RingReader.onread}): node:net then asks the reader for the buffer
 * of each next read, so a head lands in the head buffer and a payload straight in its frame buffer, or,
 * when {@link RingReader.placer} names one, in its final place (an all-gather step's slot of the array):
 * no copy in JavaScript.
 */
export class RingReader {
  private readonly head = Buffer.allocUnsafe(FRAME_HEAD_BYTES);
  private headHave = 0;
  private current: { fields: FrameHead; buf: Buffer; have: number; pooled: boolean } | undefined;
  private readonly free: Buffer[] = [];
  private readonly frames: ReceivedFrame[] = [];
  private waiter: (() => void) | undefined;
  /** The buffer the last read was given (node:net reads into what `target` returned). */
  private lastTarget: Buffer;
  /** Where a read goes while the reader waits for a frame buffer (the socket is paused then). */
  private readonly holding = Buffer.allocUnsafeSlow(READ_BYTES);
  /** Bytes kept in `holding` to parse once a frame buffer is free. */
  private held = 0;
  private paused = false;
  private socket: Socket | undefined;
  /** Set when the stream broke (then every later `next` throws it). */
  failure: Error | undefined;
  /**
   * Where a frame's payload goes when its reader knows better than a pooled buffer (exactly `bytes` long),
   * else undefined. Such a frame's payload is that buffer and its `release` gives nothing back.
   */
  placer: ((h: FrameHead) => Buffer | undefined) | undefined;

  constructor(
    private readonly maxPayload: number,
    pool = 3,
  ) {
    for (let i = 0; i < pool; i++) this.free.push(Buffer.allocUnsafeSlow(maxPayload));
    this.lastTarget = this.head;
  }

  /** The socket option that makes reads land where they belong (pass to `net.connect`). */
  get onread(): { buffer: () => Buffer; callback: (n: number) => boolean } {
    return { buffer: () => (this.lastTarget = this.target()), callback: (n: number) => this.consume(this.lastTarget, n) };
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

  /** Where the next read should land: the rest of the head, or of the current payload (never empty). */
  private target(): Buffer {
    const cur = this.current;
    if (this.failure) return this.holding;
    // Waiting for a frame buffer: reads (if any still come) append to what is held.
    if (this.paused || (!cur && this.headHave === FRAME_HEAD_BYTES)) return this.holding.subarray(Math.min(this.held, READ_BYTES - 1));
    if (cur) return cur.buf.subarray(cur.have, cur.fields.bytes);
    return this.head.subarray(this.headHave);
  }

  /**
   * Parse `n` bytes that landed at the start of `src`: copied where they belong unless they are there
   * already (the usual case: `src` is what `target` gave). False (pause the socket) when a head is
   * complete and no frame buffer is free; the bytes after it wait in `holding`.
   */
  private consume(src: Buffer, n: number): boolean {
    let at = 0;
    while (at < n && !this.failure) {
      if (!this.current) {
        if (this.headHave === FRAME_HEAD_BYTES) {
          // A head waiting for a frame buffer: keep the rest of this read until the loop gives one back.
          this.hold(src, at, n);
          return false;
        }
        const take = Math.min(FRAME_HEAD_BYTES - this.headHave, n - at);
        landAt(src, at, take, this.head, this.headHave);
        this.headHave += take;
        at += take;
        if (this.headHave < FRAME_HEAD_BYTES) break;
        if (!this.startFrame()) continue;
        // startFrame set `current`, unless the head broke the stream (TS cannot see the call's effect).
        const started = this.current as { fields: FrameHead } | undefined;
        if (started?.fields.bytes === 0) this.finishFrame();
        continue;
      }
      const cur = this.current;
      const take = Math.min(cur.fields.bytes - cur.have, n - at);
      landAt(src, at, take, cur.buf, cur.have);
      cur.have += take;
      at += take;
      if (cur.have === cur.fields.bytes) this.finishFrame();
    }
    return !this.paused;
  }

  /** The head is complete: check it and take its place; false when no frame buffer is free (true, and no frame, when the head breaks the stream). */
  private startFrame(): boolean {
    const h = this.head;
    if (h.readUInt32LE(28) !== MAGIC) return this.broken(new RingStreamError('node ring: the stream holds something that is not a frame'));
    const bytes = h.readUInt32LE(16);
    if (bytes > this.maxPayload) return this.broken(new RingStreamError(`node ring: a frame of ${bytes} bytes (at most ${this.maxPayload})`));
    const fields: FrameHead = {
      seq: h.readUInt32LE(0),
      step: h.readUInt32LE(4),
      at: h.readDoubleLE(8),
      bytes,
      counter: h.readUInt32LE(20) * 2 ** 32 + h.readUInt32LE(24),
    };
    const placed = bytes > 0 ? this.placer?.(fields) : undefined;
    if (placed && placed.byteLength === bytes) {
      this.current = { fields, buf: placed, have: 0, pooled: false };
      return true;
    }
    const buf = this.free.pop();
    if (!buf) return false;
    this.current = { fields, buf, have: 0, pooled: true };
    return true;
  }

  private broken(e: Error): true {
    this.fail(e);
    this.socket?.destroy();
    return true;
  }

  private finishFrame(): void {
    const { fields, buf, pooled } = this.current!;
    this.current = undefined;
    this.headHave = 0;
    let released = !pooled;
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

  /** Keep bytes [at, n) of `src` in `holding` (after what it holds already) and pause the socket. */
  private hold(src: Buffer, at: number, n: number): void {
    const rest = n - at;
    if (this.held + rest > READ_BYTES) return void this.broken(new RingStreamError('node ring: the peer sent on while this end was paused'));
    landAt(src, at, rest, this.holding, this.held);
    this.held += rest;
    if (!this.paused) {
      this.paused = true;
      this.socket?.pause();
    }
  }

  /** A frame buffer came back: parse the held bytes, then read from the socket again. */
  private resumeIfPaused(): void {
    if (!this.paused || this.failure) return;
    if (!this.current && this.headHave === FRAME_HEAD_BYTES) {
      if (!this.startFrame()) return;
      const started = this.current as { fields: FrameHead } | undefined;
      if (started?.fields.bytes === 0) this.finishFrame();
    }
    const n = this.held;
    this.held = 0;
    this.paused = false;
    // Parsed from a copy: consume() may need to hold again (into the same buffer).
    if (n > 0 && !this.consume(Buffer.from(this.holding.subarray(0, n)), n)) return;
    this.socket?.resume();
  }
}

/** Put `len` bytes of `src` from `from` at `dst[to]`, unless they landed there already. */
function landAt(src: Buffer, from: number, len: number, dst: Buffer, to: number): void {
  if (src.buffer === dst.buffer && src.byteOffset + from === dst.byteOffset + to) return;
  src.copy(dst, to, from, from + len);
}
