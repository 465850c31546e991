/**
 * One rank's end of a ring between nodes, in a shared-memory group that spans nodes: after each node's
 * ranks have reduced their arrays in their segment, lane l (the l-th rank of every node; `formRing` in
 * group.ts) allreduces part l of the nodes' sums with lane l of the other nodes over this ring — ring
 * reduce-scatter then ring all-gather over the P peers of the lane, each sending 2(P-1)/P of its part, in
 * frames of at most {@link RING_FRAME_BYTES} so sending, the network and the receiver's reduction overlap
 * (pipelined) — instead of through the coordinator.
 *
 * Transport: one TCP connection per link, made by the receiving end to the sending end's listener (so the
 * receiver reads into one reused buffer: `ring-frames.ts`), and written by the sender straight from the
 * segment (plain) or from a few reused sealing buffers, each reused once the kernel has taken its bytes
 * (the write's callback; ZeroMQ sends large buffers zero-copy and never says when it let go of one).
 * With the cluster's token and CURVE on (the default), every frame is sealed with AES-256-GCM, as the
 * bulk data plane's chunks are (docs/security.md, "Bulk data plane"), unless the link's connection is on
 * one host's loopback (then plain, as the data plane's; `TSRAY_SEAL_LOOPBACK=1` seals those too; each
 * end decides from its own socket and the hello names the choice): one key per ring link, HKDF of the
 * cluster token salted with fresh nonces of both peers (they travel with the endpoints in the
 * coordinator round, which rides on the cluster's authenticated links), IV = the link's frame counter,
 * the frame's head as associated data. The receiver opens a frame straight into its place in the array
 * when it gathers, in place in its frame buffer when it reduces; a frame that does not open (altered,
 * replayed, another key) fails the op with `CollectiveUsageError`. The connecting end proves it holds the
 * link's key (an HMAC of a hello key derived like the link key, naming sealed or plain) before the sender sends it anything;
 * other connections are closed and counted (one log line a minute). Without a token or with CURVE off
 * the frames travel plain. Every frame carries (op number, step, offset, counter) and is checked, so a
 * stray frame fails the op instead of corrupting it.
 * Receives wait in slices: between them the rank asks the coordinator whether a rank died (a peer
 * that died never sends), so the ring fails with the typed error like a barrier.
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import {
  componentLogger,
  config,
  configuredToken,
  DATA_PLANE_NONCE_BYTES,
  gcmOpenInto,
  gcmSealInto,
  LogLimiter,
  sealingKey,
  sessionSealed,
} from '@tsray/core/internal';
import { asArray, chunkBounds, reduceInto, type Dtype, type NumericArray, type ReduceOp } from './dtypes.js';
import { CollectiveUsageError, errorFromFailure } from './errors.js';
import { FRAME_AAD_BYTES, FRAME_HEAD_BYTES, RingReader, type ReceivedFrame, writeFrameHead } from './ring-frames.js';
import type { BarrierContext } from './shm-segment.js';

/** Largest frame of the ring (bytes of array data). */
export const RING_FRAME_BYTES = 4 * 1024 * 1024;
const SLICE_MS = 50;
const HEALTH_INTERVAL_MS = 250;
/** How long a rank whose stream broke asks the coordinator whether a rank died before it fails on its own. */
const BROKEN_STREAM_WAIT_MS = 10_000;
/** Sealing buffers per link: one being sealed while others are in the kernel's hands. */
const SEAL_BUFFERS = 3;
/** Bytes of the connecting end's hello (an HMAC-SHA256). */
const HELLO_BYTES = 32;
/** Connections that have not said a valid hello yet, at most (more are closed at once). */
const MAX_PENDING_CONNECTIONS = 8;
/** A connection that has not said its hello within this time is closed. */
const HELLO_TIMEOUT_MS = 10_000;

/** How a ring's frames are protected: sealed (token and CURVE on), or plain (no token / CURVE off). */
export type RingSecurity = 'sealed' | 'plain';

/** What a rank publishes in the ring's coordinator round: where it listens, and its nonce (hex; '' unless sealed). */
export interface RingEndpoint {
  endpoint: string;
  nonce: string;
}

/** The protection this process's configuration gives ring frames. */
export function ringSecurity(): RingSecurity {
  return configuredToken() && config().transportCurve ? 'sealed' : 'plain';
}

/** The keys of one link (sealed rings): the frames' AES key and the hello's HMAC key. */
interface LinkKeys {
  frames: Buffer;
  hello: Buffer;
}

function linkKeys(group: string, from: RingEndpoint, to: RingEndpoint): LinkKeys {
  const token = configuredToken()!;
  const salt = Buffer.from(from.nonce + to.nonce, 'hex');
  const names = `${group}|${from.endpoint}|${to.endpoint}`;
  return { frames: sealingKey(token, salt, `tsray-ring-v1|${names}`), hello: sealingKey(token, salt, `tsray-ring-hello-v1|${names}`) };
}

/**
 * The hello the connecting end of a link sends (rings without keys: zeros); it names whether the link's
 * frames are sealed, which each end decides from its own socket (`linkSealed`), so both must agree.
 */
function helloOf(keys: LinkKeys | undefined, sealed: boolean): Buffer {
  return keys
    ? createHmac('sha256', keys.hello)
        .update(`tsray-ring-hello|${sealed ? 'sealed' : 'plain'}`)
        .digest()
    : Buffer.alloc(HELLO_BYTES);
}

/** Whether a keyed link's frames are sealed: yes, unless its connection is on one host's loopback (`TSRAY_SEAL_LOOPBACK`; docs/security.md). */
function linkSealed(socket: Socket): boolean {
  return sessionSealed(socket.localAddress, socket.remoteAddress);
}

/** The 12-byte IV of frame `counter` of a link (each link has its own key, so counters may repeat across links). */
function frameIv(counter: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(Math.floor(counter / 2 ** 32), 4);
  iv.writeUInt32BE(counter >>> 0, 8);
  return iv;
}

function tampered(ctx: BarrierContext): CollectiveUsageError {
  return new CollectiveUsageError(ctx.group, 'node ring: a frame whose data does not match its seal (altered on the way)');
}

/** One rank's end of a ring between nodes (see the module comment). */
export class NodeRing {
  private opSeq = 0;
  /** The connection to the next peer (we send on it), once it said its hello. */
  private out: Socket | undefined;
  private outWaiters: { resolve: (s: Socket) => void; reject: (e: Error) => void }[] = [];
  /** The connection to the previous peer (we read from it). */
  private inbound: Socket | undefined;
  private readonly reader = new RingReader(RING_FRAME_BYTES);
  private sendKeys: LinkKeys | undefined;
  /** Whether our frames to the next peer are sealed (decided when its connection proved the key). */
  private sendSealed = false;
  /** The key of the previous peer's frames, once its connection is up and sealed. */
  private recvKey: Buffer | undefined;
  /** Set once `connect` ran: connections before that wait for it to check their hello. */
  private linked = false;
  private readonly pending = new Set<{ socket: Socket; hello: Buffer }>();
  private sendCounter = 0;
  private recvCounter = 0;
  private readonly sealBuffers: Buffer[] = Array.from({ length: SEAL_BUFFERS }, () => Buffer.allocUnsafeSlow(RING_FRAME_BYTES));
  private sealWaiters: (() => void)[] = [];
  private closed = false;
  /** Connections closed because they did not prove the link's key. */
  dropped = 0;
  private readonly dropLog = new LogLimiter({
    lines: 1,
    windowMs: 60_000,
    summary: (n: number) => componentLogger('collective').warn({ dropped: n }, `node ring: ${n} more connections without the link's key closed`),
  });

  private constructor(
    private readonly server: Server,
    /** This rank's endpoint and nonce, as published in the ring's round. */
    readonly self: RingEndpoint,
    readonly security: RingSecurity,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listen on `host` (a free port) for the next peer's connection. */
  static async listen(host: string, security: RingSecurity = ringSecurity()): Promise<NodeRing> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    const port = (server.address() as { port: number }).port;
    const nonce = security === 'sealed' ? randomBytes(DATA_PLANE_NONCE_BYTES).toString('hex') : '';
    return new NodeRing(server, { endpoint: `tcp://${host}:${port}`, nonce }, security);
  }

  /** The endpoint the next peer connects to. */
  get endpoint(): string {
    return this.self.endpoint;
  }

  /**
   * Derive the links' keys (sealed), accept the next peer once it proves its key, and connect to the
   * previous peer (`connectTo`: where it is reached when not at its endpoint, e.g. a relay in front of it).
   */
  connect(next: RingEndpoint, prev: RingEndpoint, group: string, connectTo = prev.endpoint): void {
    const recvKeys = this.security === 'sealed' ? linkKeys(group, prev, this.self) : undefined;
    this.sendKeys = this.security === 'sealed' ? linkKeys(group, this.self, next) : undefined;
    this.linked = true;
    for (const p of [...this.pending]) this.checkHello(p);
    const [host, port] = connectTo.replace(/^tcp:\/\//, '').split(':') as [string, string];
    const socket = netConnect({ host, port: Number(port), noDelay: true, onread: this.reader.onread });
    this.inbound = socket;
    this.reader.attach(socket);
    socket.on('connect', () => {
      const sealed = recvKeys !== undefined && linkSealed(socket);
      this.recvKey = sealed ? recvKeys.frames : undefined;
      socket.write(helloOf(recvKeys, sealed));
    });
    socket.on('error', (e) => this.reader.fail(e));
    socket.on('close', () => this.reader.fail(new Error('node ring: the connection to the previous peer closed')));
  }

  /** A connection to our listener: the next peer once it sends the link's hello; anyone else is closed. */
  private accept(socket: Socket): void {
    if (this.closed || this.out || this.pending.size >= MAX_PENDING_CONNECTIONS) {
      this.refuse(socket);
      return;
    }
    const p = { socket, hello: Buffer.alloc(0) };
    this.pending.add(p);
    socket.setTimeout(HELLO_TIMEOUT_MS, () => this.refuse(socket, p));
    socket.on('error', () => this.refuse(socket, p));
    // Ended before a whole hello: refused like a wrong one (no-op once the hello was checked).
    socket.on('end', () => {
      if (this.pending.has(p)) this.refuse(socket, p);
    });
    socket.on('data', (d: Buffer) => {
      if (!this.pending.has(p)) return;
      p.hello = Buffer.concat([p.hello, d]);
      if (p.hello.length > HELLO_BYTES) this.refuse(socket, p);
      else this.checkHello(p);
    });
  }

  private checkHello(p: { socket: Socket; hello: Buffer }): void {
    if (p.hello.length < HELLO_BYTES || !this.linked) return;
    this.pending.delete(p);
    const sealed = this.sendKeys !== undefined && linkSealed(p.socket);
    if (this.out || !timingSafeEqual(p.hello, helloOf(this.sendKeys, sealed))) {
      this.refuse(p.socket);
      return;
    }
    this.sendSealed = sealed;
    const socket = p.socket;
    socket.setTimeout(0);
    socket.removeAllListeners('data');
    // Nothing more comes from the next peer on this connection: anything it sends is ignored.
    socket.on('data', () => {});
    this.out = socket;
    for (const w of this.outWaiters.splice(0)) w.resolve(socket);
  }

  private refuse(socket: Socket, p?: { socket: Socket; hello: Buffer }): void {
    if (p && !this.pending.delete(p)) return; // already refused (error after timeout, ...)
    socket.destroy();
    if (this.closed) return;
    this.dropped++;
    this.dropLog.log(() =>
      componentLogger('collective').warn("node ring: closed a connection that did not prove the link's key (later ones are counted, not logged)"),
    );
  }

  /**
   * Allreduce `buf` in place with the ring's other peers: `me` is this rank's index of `peers`. `op` is a
   * sum for a mean (the caller divides). Fails with the typed error when the coordinator says a rank died
   * or the deadline passes while waiting for a frame. `prepare(a, b)`, when given, fills elements [a, b)
   * of `buf` just before the ring first reads them (each element once), so whatever computes this rank's
   * input overlaps the ring's traffic.
   */
  async allreduce(
    buf: NumericArray,
    dtype: Dtype,
    op: ReduceOp,
    me: number,
    peers: number,
    ctx: BarrierContext,
    prepare?: (a: number, b: number) => void,
  ): Promise<void> {
    const seq = this.opSeq++;
    const bounds = chunkBounds(buf.length, peers);
    const el = buf.BYTES_PER_ELEMENT;
    const mod = (x: number) => ((x % peers) + peers) % peers;
    // An all-gather frame of this op is read straight into its slot of `buf` (it holds final values: no
    // step of this op reads or sends that slot before it is received; the loop still checks its order).
    this.reader.placer = (h) => {
      const g = h.step - (peers - 1);
      if (h.seq !== seq >>> 0 || g < 0 || h.step >= 2 * (peers - 1) || !Number.isInteger(h.at) || h.bytes % el !== 0) return undefined;
      const [cs, ce] = bounds[mod(me - g)]!;
      if (h.at < cs || h.at + h.bytes / el > ce) return undefined;
      return Buffer.from(buf.buffer, buf.byteOffset + h.at * el, h.bytes);
    };
    const frameEls = Math.max(1, Math.floor(RING_FRAME_BYTES / el));
    try {
      for (let step = 0; step < 2 * (peers - 1); step++) {
        const gather = step >= peers - 1;
        const s = gather ? step - (peers - 1) : step;
        const [ss, se] = bounds[gather ? mod(me + 1 - s) : mod(me - s)]!;
        const [rs, re] = bounds[gather ? mod(me - s) : mod(me - s - 1)]!;
        // Every frame of a step is in the kernel's hands before the step ends: a later step may write
        // into the chunk this one sent (plain frames are written straight from it).
        // The reduce-scatter reads each chunk first where it is received, but for this rank's own chunk,
        // which step 0 sends.
        const sending = this.sendChunk(buf, ss, se, frameEls, seq, step, step === 0 ? prepare : undefined);
        sending.catch(() => {}); // awaited below; a failed receive abandons it
        // Receive (and reduce or copy) frame by frame while our frames go out.
        for (let at = rs; at < re; ) {
          const frame = await this.receive(ctx);
          try {
            const count = frame.bytes / el;
            if (frame.seq !== seq >>> 0 || frame.step !== step || frame.at !== at || !Number.isInteger(count) || count === 0 || at + count > re) {
              throw new CollectiveUsageError(
                ctx.group,
                `node ring: frame (op ${frame.seq}, step ${frame.step}, at ${frame.at}, ${frame.bytes} bytes) where (op ${seq}, step ${step}, at ${at}) was due`,
              );
            }
            const dst = buf.subarray(at, at + count);
            if (!gather) prepare?.(at, at + count);
            if (gather) this.open(frame, Buffer.from(dst.buffer, dst.byteOffset, dst.byteLength), ctx);
            else reduceInto(dst, asArray(this.open(frame, frame.payload, ctx), dtype), op);
            at += count;
          } finally {
            frame.release();
          }
        }
        await sending;
      }
    } finally {
      this.reader.placer = undefined;
    }
  }

  /** The frame's payload opened (or copied, plain) into `dst` (its own buffer: in place); checks the counter. */
  private open(frame: ReceivedFrame, dst: Buffer, ctx: BarrierContext): Buffer {
    const counter = ++this.recvCounter;
    if (!this.recvKey) {
      // A frame read straight into its place (the reader's placer) is there already.
      if (dst.buffer !== frame.payload.buffer || dst.byteOffset !== frame.payload.byteOffset) frame.payload.copy(dst);
      return dst;
    }
    const aad = frame.head.subarray(0, FRAME_AAD_BYTES);
    const tag = frame.head.subarray(FRAME_AAD_BYTES, FRAME_HEAD_BYTES);
    // The IV is our count of frames, not the sender's word: a replayed or dropped frame does not open.
    if (!gcmOpenInto(this.recvKey, frameIv(counter), aad, tag, frame.payload, dst)) throw tampered(ctx);
    return dst;
  }

  private async sendChunk(
    buf: NumericArray,
    s: number,
    e: number,
    frameEls: number,
    seq: number,
    step: number,
    prepare?: (a: number, b: number) => void,
  ): Promise<void> {
    const out = this.out ?? (await new Promise<Socket>((resolve, reject) => this.outWaiters.push({ resolve, reject })));
    const writes: Promise<void>[] = [];
    for (let at = s; at < e; at += frameEls) {
      const end = Math.min(e, at + frameEls);
      prepare?.(at, end);
      const bytes = (end - at) * buf.BYTES_PER_ELEMENT;
      const view = Buffer.from(buf.buffer, buf.byteOffset + at * buf.BYTES_PER_ELEMENT, bytes);
      const head = Buffer.alloc(FRAME_HEAD_BYTES);
      const counter = ++this.sendCounter;
      writeFrameHead(head, { seq, step, at, bytes, counter });
      let payload = view;
      let sealBuf: Buffer | undefined;
      if (this.sendKeys && this.sendSealed) {
        sealBuf = await this.sealBuffer();
        payload = sealBuf.subarray(0, bytes);
        gcmSealInto(this.sendKeys.frames, frameIv(counter), head.subarray(0, FRAME_AAD_BYTES), view, payload, head.subarray(FRAME_AAD_BYTES));
      }
      out.cork();
      out.write(head);
      writes.push(
        new Promise<void>((resolve, reject) => {
          out.write(payload, (err) => {
            if (sealBuf) this.giveBack(sealBuf);
            if (err) reject(err);
            else resolve();
          });
        }),
      );
      out.uncork();
    }
    await Promise.all(writes);
  }

  private async sealBuffer(): Promise<Buffer> {
    for (;;) {
      const b = this.sealBuffers.pop();
      if (b) return b;
      await new Promise<void>((resolve) => this.sealWaiters.push(resolve));
    }
  }

  private giveBack(b: Buffer): void {
    this.sealBuffers.push(b);
    this.sealWaiters.shift()?.();
  }

  /** The next frame of the previous peer, asking the coordinator about the group while none comes. */
  private async receive(ctx: BarrierContext): Promise<ReceivedFrame> {
    let nextHealth = Date.now() + HEALTH_INTERVAL_MS;
    for (;;) {
      let frame: ReceivedFrame | undefined;
      try {
        frame = this.reader.take();
      } catch (e) {
        throw await this.brokenStream(e as Error, ctx);
      }
      if (frame) return frame;
      await this.reader.whenFrame(SLICE_MS);
      const now = Date.now();
      if (now > ctx.deadline) throw errorFromFailure(ctx.group, { kind: 'timeout', message: 'timed out', missing: [], timeoutMs: ctx.timeoutMs ?? 0 });
      if (now >= nextHealth) {
        const f = await ctx.health();
        if (f) throw errorFromFailure(ctx.group, f);
        nextHealth = Date.now() + HEALTH_INTERVAL_MS;
      }
    }
  }

  /**
   * The error for a stream that broke: a peer that died closes its connection before the coordinator
   * has noticed, so ask it for a while (the typed error names the rank); else the stream's own failure.
   */
  private async brokenStream(e: Error, ctx: BarrierContext): Promise<Error> {
    const until = Math.min(ctx.deadline, Date.now() + BROKEN_STREAM_WAIT_MS);
    for (;;) {
      const f = await ctx.health();
      if (f) return errorFromFailure(ctx.group, f);
      if (Date.now() >= until) return new CollectiveUsageError(ctx.group, e.message);
      await new Promise((r) => setTimeout(r, HEALTH_INTERVAL_MS));
    }
  }

  /** Close the listener and both connections. */
  close(): void {
    this.closed = true;
    this.server.close();
    for (const p of this.pending) p.socket.destroy();
    this.pending.clear();
    this.out?.destroy();
    this.inbound?.destroy();
    const closed = new Error('node ring: closed');
    this.reader.fail(closed);
    for (const w of this.outWaiters.splice(0)) w.reject(closed);
  }
}
