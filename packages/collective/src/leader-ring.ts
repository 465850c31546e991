/**
 * The ring between the node leaders of a shared-memory group that spans nodes: after each node's ranks
 * have reduced their arrays in their segment, the leaders (first rank of each node) allreduce the nodes'
 * sums directly with each other — ring reduce-scatter then ring all-gather over L leaders, each leader
 * sending 2(L-1)/L of the array, in frames of at most {@link RING_FRAME_BYTES} so sending, the network
 * and the receiver's reduction overlap (pipelined) — instead of through the coordinator.
 *
 * Transport: ZeroMQ PUSH (to the next leader) / PULL (from the previous), tcp on the node's address,
 * with the cluster's CURVE keys like every other tcp socket of tsray (encrypted, and only members of the
 * cluster get in); plain when the cluster runs without a token or with CURVE off. Each leader binds its
 * PULL when the epoch forms; the endpoints travel in one coordinator round. Every frame carries
 * (op number, step, offset) and is checked, so a stray frame fails the op instead of corrupting it.
 * Receives wait in slices: between them the leader asks the coordinator whether a rank died (a leader
 * that died never sends), so the ring fails with the typed error like a barrier.
 * @module
 */
import * as zmq from 'zeromq';
import { config, configuredToken, curveClientOptions, makeCurveServer } from '@tsray/core/internal';
import { asArray, chunkBounds, reduceInto, type Dtype, type NumericArray, type ReduceOp } from './dtypes.js';
import { CollectiveUsageError, errorFromFailure } from './errors.js';
import type { BarrierContext } from './shm-segment.js';

/** Largest frame of the ring (bytes of array data). */
export const RING_FRAME_BYTES = 4 * 1024 * 1024;
const SLICE_MS = 50;
const HEALTH_INTERVAL_MS = 250;

/** One leader's end of the ring (see the module comment). */
export class LeaderRing {
  private push: zmq.Push | undefined;
  private opSeq = 0;
  private releaseZap: (() => void) | undefined;

  private constructor(
    private readonly pull: zmq.Pull,
    /** The endpoint the previous leader connects to. */
    readonly endpoint: string,
  ) {}

  /** Bind this leader's PULL on `host` (a free port), CURVE when the cluster uses it. */
  static async listen(host: string): Promise<LeaderRing> {
    const pull = new zmq.Pull({ receiveTimeout: SLICE_MS, linger: 0 });
    const token = configuredToken();
    let release: (() => void) | undefined;
    if (token && config().transportCurve) {
      const zap = makeCurveServer(pull, token);
      await zap.ready;
      release = zap.release;
    }
    await pull.bind(`tcp://${host}:*`);
    const ring = new LeaderRing(pull, pull.lastEndpoint!);
    ring.releaseZap = release;
    return ring;
  }

  /** Connect to the next leader's endpoint. */
  connect(next: string): void {
    this.push = new zmq.Push({ linger: 0, sendHighWaterMark: 4, ...curveClientOptions(next, configuredToken()) });
    this.push.connect(next);
  }

  /**
   * Allreduce `buf` in place with the other leaders: `me` is this leader's index of `leaders`. `op` is a
   * sum for a mean (the caller divides). Fails with the typed error when the coordinator says a rank died
   * or the deadline passes while waiting for a frame.
   */
  async allreduce(buf: NumericArray, dtype: Dtype, op: ReduceOp, me: number, leaders: number, ctx: BarrierContext): Promise<void> {
    const seq = this.opSeq++;
    const bounds = chunkBounds(buf.length, leaders);
    const el = buf.BYTES_PER_ELEMENT;
    const frameEls = Math.max(1, Math.floor(RING_FRAME_BYTES / el));
    const mod = (x: number) => ((x % leaders) + leaders) % leaders;
    for (let step = 0; step < 2 * (leaders - 1); step++) {
      const gather = step >= leaders - 1;
      const s = gather ? step - (leaders - 1) : step;
      const sendChunk = gather ? mod(me + 1 - s) : mod(me - s);
      const recvChunk = gather ? mod(me - s) : mod(me - s - 1);
      const [ss, se] = bounds[sendChunk]!;
      const [rs, re] = bounds[recvChunk]!;
      const sending = this.sendChunk(buf, ss, se, frameEls, seq, step);
      sending.catch(() => {}); // awaited below; a failed receive abandons it (the sockets are closed)
      // Receive (and reduce or copy) frame by frame while our frames go out.
      for (let at = rs; at < re; ) {
        const [head, body] = await this.receive(ctx);
        const [hSeq, hStep, hAt] = [head.readUInt32LE(0), head.readUInt32LE(4), head.readDoubleLE(8)];
        if (hSeq !== seq >>> 0 || hStep !== step || hAt !== at) {
          throw new CollectiveUsageError(
            ctx.group,
            `leader ring: frame (op ${hSeq}, step ${hStep}, at ${hAt}) where (op ${seq}, step ${step}, at ${at}) was due`,
          );
        }
        const part = asArray(body, dtype);
        const dst = buf.subarray(at, at + part.length);
        if (gather) dst.set(part);
        else reduceInto(dst, part, op);
        at += part.length;
      }
      await sending;
    }
  }

  private async sendChunk(buf: NumericArray, s: number, e: number, frameEls: number, seq: number, step: number): Promise<void> {
    const push = this.push!;
    for (let at = s; at < e; at += frameEls) {
      const head = Buffer.alloc(16);
      head.writeUInt32LE(seq >>> 0, 0);
      head.writeUInt32LE(step, 4);
      head.writeDoubleLE(at, 8);
      // A copy: the chunk may be overwritten by a later step before ZeroMQ has sent it.
      const part = new Uint8Array(buf.buffer, buf.byteOffset + at * buf.BYTES_PER_ELEMENT, Math.min(frameEls, e - at) * buf.BYTES_PER_ELEMENT).slice();
      await push.send([head, part]);
    }
  }

  /** The next frame, asking the coordinator about the group while none comes. */
  private async receive(ctx: BarrierContext): Promise<[Buffer, Buffer]> {
    let nextHealth = Date.now() + HEALTH_INTERVAL_MS;
    for (;;) {
      try {
        const [head, body] = await this.pull.receive();
        return [head!, body!];
      } catch (e) {
        if ((e as { code?: string }).code !== 'EAGAIN') throw e;
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

  /** Close both sockets. */
  close(): void {
    this.push?.close();
    this.pull.close();
    this.releaseZap?.();
  }
}
