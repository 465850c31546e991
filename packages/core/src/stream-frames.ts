/**
 * Multipart messages on a byte stream: the node's unix stream socket for the workers it
 * starts (stream-server.ts, worker/channel-transport.ts, python/tsray/_stream.py). The messages are the same as on the ZeroMQ
 * sockets (frame 0 the envelope, then payload frames); only the framing is ours, because a ZeroMQ
 * round trip between two Node processes costs ≈ 96 µs here against ≈ 21 µs on a plain unix socket
 * (libzmq hands every message to its I/O thread and back; zeromq.js adds a promise per send).
 *
 * A connection starts with the client's hello: the magic `tsS1`, u16 LE length, then the client's
 * routing id (what a DEALER's `routingId` is on ZeroMQ). After it, each message is:
 * u32 LE frame count n (1 ≤ n ≤ limit), n × u32 LE frame lengths, then the n frames' bytes.
 * @internal
 */
import { replyPoller } from './reply-poll.js';
import type { Writable } from 'node:stream';

/** The first bytes a client sends. */
export const STREAM_HELLO_MAGIC = Buffer.from('tsS1');

/** Longest routing id a hello may carry (worker ids are ~20 bytes). */
export const STREAM_MAX_IDENTITY_BYTES = 255;

/** Messages whose frames total at most this many bytes are written as one buffer (one syscall, no writev). */
const CONCAT_BYTES = 16 * 1024;

/** What a reader accepts before it gives up on the stream (checked per message, on its header). */
export interface StreamLimits {
  /** Most frames in one message. */
  maxFrames: number;
  /** Most bytes in one frame. */
  maxFrameBytes: number;
  /** Most bytes in one message (all frames). */
  maxMessageBytes: number;
}

/** The stream broke a limit or is not ours: the connection is closed (nothing later can be framed). */
export class StreamFrameError extends Error {
  override readonly name = 'StreamFrameError';
}

/** The hello a client writes first. */
export function streamHello(identity: string): Buffer {
  const id = Buffer.from(identity);
  if (id.length === 0 || id.length > STREAM_MAX_IDENTITY_BYTES)
    throw new StreamFrameError(`a routing id of ${id.length} bytes (1 to ${STREAM_MAX_IDENTITY_BYTES})`);
  const head = Buffer.allocUnsafe(6);
  STREAM_HELLO_MAGIC.copy(head, 0);
  head.writeUInt16LE(id.length, 4);
  return Buffer.concat([head, id]);
}

/**
 * The buffers to write for one message: small messages as one buffer, others as the header followed
 * by the frames themselves (written corked, so the kernel gets them in one writev; frames not copied).
 */
export function streamMessage(frames: readonly Uint8Array[]): Buffer[] {
  const head = Buffer.allocUnsafe(4 + 4 * frames.length);
  head.writeUInt32LE(frames.length, 0);
  let total = 0;
  for (let i = 0; i < frames.length; i++) {
    const n = frames[i]!.byteLength;
    head.writeUInt32LE(n, 4 + 4 * i);
    total += n;
  }
  if (total <= CONCAT_BYTES) return [Buffer.concat([head, ...frames], head.length + total)];
  const out: Buffer[] = [head];
  for (const f of frames) out.push(Buffer.isBuffer(f) ? f : Buffer.from(f.buffer, f.byteOffset, f.byteLength));
  return out;
}

/** Write one message to `socket` (see {@link streamMessage}); several buffers go corked, as one writev. */
export function writeStreamMessage(socket: Writable, frames: readonly Uint8Array[]): void {
  const bufs = streamMessage(frames);
  replyPoller().expectReply(); // the reply is read by polling, not after a wake-up (reply-poll.ts)
  if (bufs.length === 1) {
    socket.write(bufs[0]!);
    return;
  }
  socket.cork();
  for (const b of bufs) socket.write(b);
  socket.uncork();
}

/**
 * Reads the hello, then messages, from the chunks of one connection in the order they arrive; calls
 * `onHello` once and `onMessage` per message. A message that arrived inside one chunk is handed over
 * as views of it, copied first when it is less than half of the chunk (a kept payload must not keep a
 * whole 64 KiB read alive); a longer one is assembled into a buffer of its own size as it arrives.
 * Throws {@link StreamFrameError} from {@link push} when the stream breaks a limit; the caller closes it.
 */
export class StreamMessageReader {
  /** Bytes of a header (or hello) not complete yet. */
  private partial: Buffer | undefined;
  /** The message being assembled, its frame lengths, and how much of it arrived. */
  private body: Buffer | undefined;
  private lengths: number[] = [];
  private filled = 0;
  private helloDone: boolean;

  constructor(
    private readonly handler: { onHello?(identity: string): void; onMessage(frames: Buffer[]): void },
    /** Read per message: a connection's limits may change once it registers. */
    private readonly limits: () => StreamLimits,
    /** False for the client's end (the server sends no hello). */
    expectHello = true,
  ) {
    this.helloDone = !expectHello;
  }

  /** Feed the next chunk read from the connection. */
  push(chunk: Buffer): void {
    let data = chunk;
    if (this.partial) {
      data = Buffer.concat([this.partial, chunk]);
      this.partial = undefined;
    }
    let pos = 0;
    while (pos < data.length) {
      if (this.body) pos = this.fill(data, pos);
      else if (!this.helloDone) {
        const used = this.hello(data, pos);
        if (used === 0) break;
        pos += used;
      } else {
        const used = this.message(data, pos);
        if (used === 0) break;
        pos += used;
      }
    }
    if (pos < data.length) this.partial = Buffer.from(data.subarray(pos));
  }

  /** Copies into the message being assembled; returns the new position. */
  private fill(data: Buffer, pos: number): number {
    const body = this.body!;
    const n = Math.min(data.length - pos, body.length - this.filled);
    data.copy(body, this.filled, pos, pos + n);
    this.filled += n;
    if (this.filled === body.length) {
      this.body = undefined;
      this.handler.onMessage(split(body, 0, this.lengths));
    }
    return pos + n;
  }

  /** Reads the hello at `pos`; returns the bytes used, 0 when it is not complete yet. */
  private hello(data: Buffer, pos: number): number {
    const avail = data.length - pos;
    const magic = Math.min(avail, 4);
    if (!data.subarray(pos, pos + magic).equals(STREAM_HELLO_MAGIC.subarray(0, magic)))
      throw new StreamFrameError('the stream does not start with a tsray hello');
    if (avail < 6) return 0;
    const len = data.readUInt16LE(pos + 4);
    if (len === 0 || len > STREAM_MAX_IDENTITY_BYTES)
      throw new StreamFrameError(`a hello with a routing id of ${len} bytes (1 to ${STREAM_MAX_IDENTITY_BYTES})`);
    if (avail < 6 + len) return 0;
    this.helloDone = true;
    this.handler.onHello?.(data.toString('utf8', pos + 6, pos + 6 + len));
    return 6 + len;
  }

  /** Reads one message at `pos` (or starts assembling it); returns the bytes used, 0 when its header is not complete. */
  private message(data: Buffer, pos: number): number {
    const avail = data.length - pos;
    if (avail < 4) return 0;
    const lim = this.limits();
    const n = data.readUInt32LE(pos);
    if (n === 0 || n > lim.maxFrames) throw new StreamFrameError(`a message of ${n} frames (1 to ${lim.maxFrames})`);
    if (avail < 4 + 4 * n) return 0;
    const lengths = new Array<number>(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const len = data.readUInt32LE(pos + 4 + 4 * i);
      if (len > lim.maxFrameBytes) throw new StreamFrameError(`a frame of ${len} bytes (at most ${lim.maxFrameBytes})`);
      lengths[i] = len;
      total += len;
    }
    if (total > lim.maxMessageBytes) throw new StreamFrameError(`a message of ${total} bytes (at most ${lim.maxMessageBytes})`);
    const start = pos + 4 + 4 * n;
    const have = data.length - start;
    if (have >= total) {
      // Whole message here: views, or a copy when it is a small part of the chunk.
      const copy = total < data.length / 2;
      const body = copy ? Buffer.from(data.subarray(start, start + total)) : data;
      this.handler.onMessage(split(body, copy ? 0 : start, lengths));
      return 4 + 4 * n + total;
    }
    this.body = Buffer.allocUnsafeSlow(total);
    this.lengths = lengths;
    this.filled = 0;
    return 4 + 4 * n;
  }
}

/** The frames of a message whose bytes start at `at` in `buf`. */
function split(buf: Buffer, at: number, lengths: readonly number[]): Buffer[] {
  const frames = new Array<Buffer>(lengths.length);
  let off = at;
  for (let i = 0; i < lengths.length; i++) {
    frames[i] = buf.subarray(off, off + lengths[i]!);
    off += lengths[i]!;
  }
  return frames;
}
