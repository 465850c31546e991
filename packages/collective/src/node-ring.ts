/**
 * One rank's end of a ring between nodes, in a shared-memory group that spans nodes: after each node's
 * ranks have reduced their arrays in their segment, lane l (the l-th rank of every node; `formRing` in
 * group.ts) allreduces part l of the nodes' sums with lane l of the other nodes over this ring — ring
 * reduce-scatter then ring all-gather over the P peers of the lane, each sending 2(P-1)/P of its part, in
 * frames of at most {@link RING_FRAME_BYTES} so sending, the network and the receiver's reduction overlap
 * (pipelined) — instead of through the coordinator.
 *
 * Transport: ZeroMQ PUSH (to the next peer) / PULL (from the previous), tcp on the node's address.
 * With the cluster's CURVE on (the default), the ring's sockets are plain and every frame is sealed
 * with AES-256-GCM instead, as the bulk data plane's chunks are (docs/security.md, "Bulk data plane"):
 * one key per ring link, HKDF of the cluster token salted with fresh nonces of both peers (they travel
 * with the endpoints in the coordinator round, which rides on the cluster's authenticated links); the
 * receiver opens a frame straight into its place in the array when it gathers. Sealing costs one pass
 * of AES-GCM on each side where CURVE costs libsodium's slower cipher plus a copy each way (BENCHMARKS.md,
 * "Collectives"); a frame not sealed by the previous peer (any other sender on the plain port, a
 * replay) is dropped. `TSRAY_DATA_PLANE=0` keeps the ring on CURVE sockets; without a token or with CURVE
 * off the frames travel plain. Each rank binds its PULL when the epoch forms; the endpoints travel in
 * one coordinator round. Every frame carries (op number, step, offset) and is checked, so a stray frame
 * fails the op instead of corrupting it.
 * Receives wait in slices: between them the rank asks the coordinator whether a rank died (a peer
 * that died never sends), so the ring fails with the typed error like a barrier.
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import {
  componentLogger,
  config,
  configuredToken,
  curveClientOptions,
  DATA_PLANE_NONCE_BYTES,
  LogLimiter,
  makeCurveServer,
  Opener,
  Sealer,
  sealingKey,
} from '@tsray/core/internal';
import { asArray, chunkBounds, reduceInto, type Dtype, type NumericArray, type ReduceOp } from './dtypes.js';
import { CollectiveUsageError, errorFromFailure } from './errors.js';
import type { BarrierContext } from './shm-segment.js';

/** Largest frame of the ring (bytes of array data). */
export const RING_FRAME_BYTES = 4 * 1024 * 1024;
const SLICE_MS = 50;
const HEALTH_INTERVAL_MS = 250;
/** Messages a plain ring socket buffers per connection (with RING_FRAME_BYTES frames: what one peer can push). */
const SEALED_RECEIVE_HWM = 4;
/** The one session id of a ring link (each link has its own key). */
const RING_SESSION = 1;

/** How a ring's frames are protected: sealed on plain sockets, CURVE sockets, or plain (no token / CURVE off). */
export type RingSecurity = 'sealed' | 'curve' | 'plain';

/** What a rank publishes in the ring's coordinator round: where it listens, and its nonce (hex; '' unless sealed). */
export interface RingEndpoint {
  endpoint: string;
  nonce: string;
}

/** The protection this process's configuration gives ring frames. */
export function ringSecurity(): RingSecurity {
  if (!configuredToken() || !config().transportCurve) return 'plain';
  return config().dataPlane ? 'sealed' : 'curve';
}

/** A received ring frame: its 16-byte head (op, step, offset) and its data, plain or still sealed. */
interface RingFrame {
  head: Buffer;
  body?: Buffer;
  sealed?: { readonly length: number; openInto(dst: Buffer): boolean };
  bytes: number;
}

function tampered(ctx: BarrierContext): CollectiveUsageError {
  return new CollectiveUsageError(ctx.group, 'node ring: a frame whose data does not match its seal (altered on the way)');
}

/** One rank's end of a ring between nodes (see the module comment). */
export class NodeRing {
  private push: zmq.Push | undefined;
  private opSeq = 0;
  private releaseZap: (() => void) | undefined;
  private sealer: Sealer | undefined;
  private opener: Opener | undefined;
  /** Where reduce steps open a sealed frame before adding it in. */
  private scratch: Buffer | undefined;
  /** Frames dropped because they were not sealed by the previous peer. */
  dropped = 0;
  private readonly dropLog = new LogLimiter({
    lines: 1,
    windowMs: 60_000,
    summary: (n: number) => componentLogger('collective').warn({ dropped: n }, `node ring: ${n} more frames not sealed by the previous peer dropped`),
  });

  private constructor(
    private readonly pull: zmq.Pull,
    /** This rank's endpoint and nonce, as published in the ring's round. */
    readonly self: RingEndpoint,
    readonly security: RingSecurity,
  ) {}

  /** Bind this rank's PULL on `host` (a free port): plain for sealed frames, CURVE when the ring uses it. */
  static async listen(host: string, security: RingSecurity = ringSecurity()): Promise<NodeRing> {
    const pull = new zmq.Pull({
      receiveTimeout: SLICE_MS,
      linger: 0,
      // A plain socket takes connections from anyone: bound what one of them can make us hold.
      ...(security === 'sealed' ? { maxMessageSize: RING_FRAME_BYTES + 1024, receiveHighWaterMark: SEALED_RECEIVE_HWM } : {}),
    });
    let release: (() => void) | undefined;
    if (security === 'curve') {
      const zap = makeCurveServer(pull, configuredToken()!);
      await zap.ready;
      release = zap.release;
    }
    await pull.bind(`tcp://${host}:*`);
    const nonce = security === 'sealed' ? randomBytes(DATA_PLANE_NONCE_BYTES).toString('hex') : '';
    const ring = new NodeRing(pull, { endpoint: pull.lastEndpoint!, nonce }, security);
    ring.releaseZap = release;
    return ring;
  }

  /** The endpoint the previous peer connects to. */
  get endpoint(): string {
    return this.self.endpoint;
  }

  /**
   * Connect to the next peer; with sealing, derive the key of our link to it and of the previous
   * peer's link to us (`group` and both endpoints name each link, the nonces make it fresh).
   * `connectTo`: where the next peer is reached when not at its endpoint (a relay in front of it).
   */
  connect(next: RingEndpoint, prev: RingEndpoint, group: string, connectTo = next.endpoint): void {
    if (this.security === 'sealed') {
      const token = configuredToken()!;
      const key = (from: RingEndpoint, to: RingEndpoint) =>
        sealingKey(token, Buffer.from(from.nonce + to.nonce, 'hex'), `tsray-ring-v1|${group}|${from.endpoint}|${to.endpoint}`);
      this.sealer = new Sealer(key(this.self, next), RING_SESSION);
      this.opener = new Opener(key(prev, this.self), RING_SESSION);
    }
    const curve = this.security === 'curve' ? curveClientOptions(connectTo, configuredToken()) : {};
    this.push = new zmq.Push({ linger: 0, sendHighWaterMark: 4, ...curve });
    this.push.connect(connectTo);
  }

  /**
   * Allreduce `buf` in place with the ring's other peers: `me` is this rank's index of `peers`. `op` is a
   * sum for a mean (the caller divides). Fails with the typed error when the coordinator says a rank died
   * or the deadline passes while waiting for a frame.
   */
  async allreduce(buf: NumericArray, dtype: Dtype, op: ReduceOp, me: number, peers: number, ctx: BarrierContext): Promise<void> {
    const seq = this.opSeq++;
    const bounds = chunkBounds(buf.length, peers);
    const el = buf.BYTES_PER_ELEMENT;
    const frameEls = Math.max(1, Math.floor(RING_FRAME_BYTES / el));
    const mod = (x: number) => ((x % peers) + peers) % peers;
    for (let step = 0; step < 2 * (peers - 1); step++) {
      const gather = step >= peers - 1;
      const s = gather ? step - (peers - 1) : step;
      const sendChunk = gather ? mod(me + 1 - s) : mod(me - s);
      const recvChunk = gather ? mod(me - s) : mod(me - s - 1);
      const [ss, se] = bounds[sendChunk]!;
      const [rs, re] = bounds[recvChunk]!;
      const sending = this.sendChunk(buf, ss, se, frameEls, seq, step);
      sending.catch(() => {}); // awaited below; a failed receive abandons it (the sockets are closed)
      // Receive (and reduce or copy) frame by frame while our frames go out.
      for (let at = rs; at < re; ) {
        const frame = await this.receive(ctx);
        const [hSeq, hStep, hAt] = [frame.head.readUInt32LE(0), frame.head.readUInt32LE(4), frame.head.readDoubleLE(8)];
        const count = frame.bytes / el;
        if (hSeq !== seq >>> 0 || hStep !== step || hAt !== at || !Number.isInteger(count) || count === 0 || at + count > re) {
          throw new CollectiveUsageError(
            ctx.group,
            `node ring: frame (op ${hSeq}, step ${hStep}, at ${hAt}, ${frame.bytes} bytes) where (op ${seq}, step ${step}, at ${at}) was due`,
          );
        }
        const dst = buf.subarray(at, at + count);
        if (gather) this.copyIn(frame, dst, ctx);
        else reduceInto(dst, this.frameArray(frame, dtype, ctx), op);
        at += count;
      }
      await sending;
    }
  }

  /** A gather step's frame into its place: opened straight there when sealed. */
  private copyIn(frame: RingFrame, dst: NumericArray, ctx: BarrierContext): void {
    if (!frame.sealed) {
      new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(frame.body!);
      return;
    }
    if (!frame.sealed.openInto(Buffer.from(dst.buffer, dst.byteOffset, dst.byteLength))) throw tampered(ctx);
  }

  /** A reduce step's frame as an array (opened into the scratch buffer when sealed). */
  private frameArray(frame: RingFrame, dtype: Dtype, ctx: BarrierContext): NumericArray {
    if (!frame.sealed) return asArray(frame.body!, dtype);
    // Its own ArrayBuffer at offset 0: aligned for every dtype.
    this.scratch ??= Buffer.allocUnsafeSlow(RING_FRAME_BYTES);
    const bytes = this.scratch.subarray(0, frame.bytes);
    if (!frame.sealed.openInto(bytes)) throw tampered(ctx);
    return asArray(bytes, dtype);
  }

  private async sendChunk(buf: NumericArray, s: number, e: number, frameEls: number, seq: number, step: number): Promise<void> {
    const push = this.push!;
    for (let at = s; at < e; at += frameEls) {
      const head = Buffer.alloc(16);
      head.writeUInt32LE(seq >>> 0, 0);
      head.writeUInt32LE(step, 4);
      head.writeDoubleLE(at, 8);
      const view = new Uint8Array(buf.buffer, buf.byteOffset + at * buf.BYTES_PER_ELEMENT, Math.min(frameEls, e - at) * buf.BYTES_PER_ELEMENT);
      // Sealed: the ciphertext is a new buffer. Plain: a copy, since a later step may overwrite the
      // chunk before ZeroMQ has sent it.
      await push.send(this.sealer ? this.sealer.seal(head, view) : [head, view.slice()]);
    }
  }

  /** The next frame of the previous peer, asking the coordinator about the group while none comes. */
  private async receive(ctx: BarrierContext): Promise<RingFrame> {
    let nextHealth = Date.now() + HEALTH_INTERVAL_MS;
    for (;;) {
      let frames: Buffer[] | undefined;
      try {
        frames = await this.pull.receive();
      } catch (e) {
        if ((e as { code?: string }).code !== 'EAGAIN') throw e;
      }
      if (frames) {
        const frame = this.unpack(frames);
        if (frame) return frame;
      }
      const now = Date.now();
      if (now > ctx.deadline) throw errorFromFailure(ctx.group, { kind: 'timeout', message: 'timed out', missing: [], timeoutMs: ctx.timeoutMs ?? 0 });
      if (now >= nextHealth) {
        const f = await ctx.health();
        if (f) throw errorFromFailure(ctx.group, f);
        nextHealth = Date.now() + HEALTH_INTERVAL_MS;
      }
    }
  }

  /** A received message as a frame; undefined (dropped, counted, logged rarely) when sealing is on and it was not sealed by the previous peer. */
  private unpack(frames: Buffer[]): RingFrame | undefined {
    if (!this.opener) return frames.length === 2 ? { head: frames[0]!, body: frames[1]!, bytes: frames[1]!.byteLength } : this.drop(frames);
    const m = this.opener.open(frames);
    if (m?.envelope.byteLength !== 16 || !m.payload) return this.drop(frames);
    return { head: m.envelope, sealed: m.payload, bytes: m.payload.length };
  }

  private drop(frames: Buffer[]): undefined {
    this.dropped++;
    this.dropLog.log(() =>
      componentLogger('collective').warn(
        { frames: frames.length },
        'node ring: dropped a message that is not a frame of the previous peer (later ones are counted, not logged)',
      ),
    );
    return undefined;
  }

  /** Close both sockets. */
  close(): void {
    this.push?.close();
    this.pull.close();
    this.releaseZap?.();
  }
}
