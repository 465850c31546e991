/**
 * Reads one data-plane connection (data-plane-frames.ts has the format): the peer's fixed-size hello,
 * then frames. Reads go where the bytes belong — `net.Socket`'s `onread` asks for the buffer of each
 * next read — so a chunk's payload is read by the kernel straight into its place in the arena (then,
 * on a sealed session, opened there in place): no buffer per read, no copy in JS. A head or envelope is
 * read into a small buffer of exactly its size, so a read never runs past the bytes a state wants.
 * @internal
 */
import { FRAME_HEAD_BYTES, type FrameHead, type FrameOpener } from './data-plane-frames.js';

/** What a connection's reader hands its owner. */
export interface FrameStreamHandler {
  /** The peer's hello (exactly the bytes asked for); throw to break the stream. */
  hello(bytes: Buffer): void;
  /**
   * A frame's envelope (opened): the buffer its payload goes to (exactly `h.payloadBytes` long), or
   * undefined to read the payload and drop it. Throw to break the stream.
   */
  envelope(h: FrameHead, envelope: Buffer): Buffer | undefined;
  /** The frame's payload is in `dst` (the buffer `envelope` gave; not called for dropped payloads). */
  payload(h: FrameHead, dst: Buffer): void;
  /** The stream broke (a handler threw, or the opener refused a frame): the socket is destroyed after this. */
  broken(err: Error): void;
}

/** Bytes of the buffer a dropped payload (or anything after a break) is read into. */
const DISCARD_BYTES = 256 * 1024;

type State =
  | { kind: 'hello'; buf: Buffer; have: number }
  | { kind: 'head'; buf: Buffer; have: number }
  | { kind: 'envelope'; head: FrameHead; buf: Buffer; have: number }
  | { kind: 'payload'; head: FrameHead; dst: Buffer | undefined; have: number }
  | { kind: 'broken' };

/**
 * The reader of one connection: a dialed socket reads through {@link FrameStreamReader.onread} (pass it to
 * `net.connect`); an accepted one, which node:net gives no `onread`, hands its reads to {@link FrameStreamReader.feed}.
 */
export class FrameStreamReader {
  private state: State;
  private discard: Buffer | undefined;
  private readonly headBuf = Buffer.allocUnsafe(FRAME_HEAD_BYTES);

  constructor(
    private readonly opener: () => FrameOpener,
    private readonly handler: FrameStreamHandler,
    helloBytes: number,
    private readonly destroy: () => void,
  ) {
    this.state = { kind: 'hello', buf: Buffer.allocUnsafe(helloBytes), have: 0 };
  }

  /** The socket option that makes each read land where the reader wants it (`net.connect({ onread })`). */
  get onread(): { buffer: () => Buffer; callback: (n: number) => boolean } {
    return { buffer: () => this.target(), callback: (n: number) => this.advance(n) };
  }

  /**
   * Bytes read by a socket that was not opened with {@link onread} (an accepted server connection):
   * copied into the targets, as a socket with `onread` would have read them.
   */
  feed(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.byteLength && this.state.kind !== 'broken') {
      const t = this.target();
      const n = Math.min(t.byteLength, chunk.byteLength - at);
      chunk.copy(t, 0, at, at + n);
      at += n;
      this.advance(n);
    }
  }

  /** Where the next read goes (never empty: libuv refuses an empty buffer). */
  private target(): Buffer {
    const s = this.state;
    switch (s.kind) {
      case 'hello':
      case 'head':
      case 'envelope':
        return s.buf.subarray(s.have);
      case 'payload':
        if (s.dst) return s.dst.subarray(s.have);
        return this.discardBuf().subarray(0, Math.min(DISCARD_BYTES, s.head.payloadBytes - s.have));
      case 'broken':
        return this.discardBuf();
    }
  }

  private discardBuf(): Buffer {
    this.discard ??= Buffer.allocUnsafeSlow(DISCARD_BYTES);
    return this.discard;
  }

  /** `n` bytes landed in the last target: move on (hand over what completed). Always true (never pause). */
  private advance(n: number): boolean {
    const s = this.state;
    if (s.kind === 'broken') return true;
    try {
      if (s.kind === 'payload') {
        s.have += n;
        if (s.have === s.head.payloadBytes) this.finishPayload(s.head, s.dst);
      } else {
        s.have += n;
        if (s.have === s.buf.byteLength) this.finishBuffer(s);
      }
    } catch (err) {
      this.state = { kind: 'broken' };
      this.handler.broken(err as Error);
      this.destroy();
    }
    return true;
  }

  private finishBuffer(s: Extract<State, { buf: Buffer }>): void {
    if (s.kind === 'hello') {
      this.handler.hello(s.buf);
      this.toHead();
    } else if (s.kind === 'head') {
      const head = this.opener().head(this.headBuf);
      this.state = { kind: 'envelope', head, buf: Buffer.allocUnsafe(head.envelopeBytes), have: 0 };
      if (head.envelopeBytes === 0) this.finishBuffer(this.state);
    } else {
      const envelope = this.opener().envelope(s.head, s.buf);
      const given = this.handler.envelope(s.head, envelope);
      const dst = given?.byteLength === s.head.payloadBytes ? given : undefined;
      this.state = { kind: 'payload', head: s.head, dst, have: 0 };
      if (s.head.payloadBytes === 0) this.finishPayload(s.head, dst);
    }
  }

  private finishPayload(head: FrameHead, dst: Buffer | undefined): void {
    this.toHead();
    if (dst) this.handler.payload(head, dst);
  }

  private toHead(): void {
    this.state = { kind: 'head', buf: this.headBuf, have: 0 };
  }
}
