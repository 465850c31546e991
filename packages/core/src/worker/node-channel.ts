/**
 * The worker's (or client driver's) connection to its node: one {@link ChannelTransport} (a ZeroMQ
 * DEALER, or the node's unix stream socket for the TypeScript workers it starts), and the event-loop
 * batching of the small messages the API produces (ref updates, pins, puts, submits, subscriptions),
 * which go out together once per microtask turn.
 * @internal
 */
import { encodeMessage, type EnvelopeBody, type tsray } from '@tsray/protocol';
import { FrameBuilder } from '../wire.js';
import { type ChannelTransport, StreamTransport, ZmqTransport } from './channel-transport.js';

/** One connection to the node plus the batches waiting for the next flush. */
export class NodeChannel {
  private readonly transport: ChannelTransport;
  private adds: string[] = [];
  private removes: string[] = [];
  private pins: string[] = [];
  private unpins: string[] = [];
  private submits: tsray.v1.ITaskSpec[] = [];
  private submitFrames = new FrameBuilder();
  private puts: tsray.v1.IObjectData[] = [];
  private putFrames = new FrameBuilder();
  private subscribes: string[] = [];
  private flushQueued = false;
  /** Called once when a tcp node refuses this connection's CURVE handshake (another cluster's token). */
  onRefused: ((detail: string) => void) | undefined;

  /**
   * `token` makes a tcp connection a CURVE client of its cluster (see curve.ts); ipc ignores it.
   * `streamPath`: connect to the node's unix stream socket instead of `address` (a worker the node started).
   */
  constructor(routingId: string, address: string, token?: string, streamPath?: string) {
    this.transport = streamPath
      ? new StreamTransport(routingId, streamPath)
      : new ZmqTransport(routingId, address, token, (detail) => this.onRefused?.(detail));
  }

  /** Hand each message from the node to `onFrames` until the connection closes (see ChannelTransport.serve). */
  serve(onFrames: (frames: Buffer[]) => void): Promise<void> {
    return this.transport.serve(onFrames);
  }

  /** Send one message now (after what is queued on the socket; batches are not flushed first). */
  send(body: EnvelopeBody, payloads?: Uint8Array[]): void {
    this.transport.send(encodeMessage(body, payloads));
  }

  /** This process started holding `id`. */
  refAdded(id: string): void {
    this.adds.push(id);
    this.scheduleFlush();
  }

  /** This process stopped holding `id`. */
  refRemoved(id: string): void {
    this.removes.push(id);
    this.scheduleFlush();
  }

  /** Give back one pin of an arena object. */
  unpin(id: string): void {
    this.unpins.push(id);
    this.scheduleFlush();
  }

  /** Queue a small put whose bytes travel inline (copied now: the caller may change its buffer). */
  queuePut(od: Omit<tsray.v1.IObjectData, 'inline'>, bytes: Uint8Array): void {
    this.puts.push({ ...od, inline: this.putFrames.add(Buffer.from(bytes)) });
    this.scheduleFlush();
  }

  /** Queue a task submission; `toWire` adds its argument payloads to the batch's frames. */
  queueSubmit(toWire: (frames: FrameBuilder) => tsray.v1.ITaskSpec): void {
    this.submits.push(toWire(this.submitFrames));
    this.scheduleFlush();
  }

  /** Ask the node to report `id` once it is ready. */
  queueSubscribe(id: string): void {
    this.subscribes.push(id);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flushNow();
    });
  }

  /** Send everything pending, in dependency order: refs, puts, submits, subscriptions. */
  flushNow(): void {
    if (this.adds.length || this.removes.length || this.pins.length || this.unpins.length) {
      this.send({ refUpdates: { add: this.adds, remove: this.removes, pin: this.pins, unpin: this.unpins } });
      this.adds = [];
      this.removes = [];
      this.pins = [];
      this.unpins = [];
    }
    if (this.puts.length) {
      this.send({ putObjects: { objects: this.puts } }, this.putFrames.frames());
      this.puts = [];
      this.putFrames = new FrameBuilder();
    }
    if (this.submits.length) {
      this.send({ submitTasks: { tasks: this.submits } }, this.submitFrames.empty ? undefined : this.submitFrames.frames());
      this.submits = [];
      this.submitFrames = new FrameBuilder();
    }
    if (this.subscribes.length) {
      this.send({ subscribeObjects: { objectIds: this.subscribes } });
      this.subscribes = [];
    }
  }

  /** Resolves once everything queued left this process's queues. */
  drain(): Promise<void> {
    return this.transport.drain();
  }

  /** Hand everything queued over synchronously (process exit; see Outbox.flushSync). */
  flushSync(): void {
    this.transport.flushSync();
  }

  /** Stop sending and close the connection. */
  close(): void {
    this.transport.close();
  }
}
