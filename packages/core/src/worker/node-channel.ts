/**
 * The worker's (or client driver's) connection to its node: one ZeroMQ DEALER, sends serialized by an
 * {@link Outbox}, and the event-loop batching of the small messages the API produces (ref updates,
 * pins, puts, submits, subscriptions), which go out together once per microtask turn.
 * @internal
 */
import { encodeMessage, type EnvelopeBody, type tsray } from '@tsray/protocol';
import * as zmq from 'zeromq';
import { curveClientOptions, onCurveRefused } from '../curve.js';
import { Outbox } from '../outbox.js';
import { FrameBuilder } from '../wire.js';

/** One DEALER to the node plus the batches waiting for the next flush. */
export class NodeChannel {
  /** Frames from the node, one multipart message per iteration. */
  readonly socket: zmq.Dealer;
  private readonly outbox: Outbox;
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

  /** `token` makes a tcp connection a CURVE client of its cluster (see curve.ts); ipc ignores it. */
  constructor(routingId: string, address: string, token?: string) {
    this.socket = new zmq.Dealer({ routingId, sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 1000, ...curveClientOptions(address, token) });
    if (address.startsWith('tcp://')) onCurveRefused(this.socket, (detail) => this.onRefused?.(detail));
    this.socket.connect(address);
    this.outbox = new Outbox(this.socket);
  }

  /** Send one message now (after what is queued on the socket; batches are not flushed first). */
  send(body: EnvelopeBody, payloads?: Uint8Array[]): void {
    this.outbox.send(encodeMessage(body, payloads));
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

  /** Resolves once everything queued went to ZeroMQ. */
  drain(): Promise<void> {
    return this.outbox.drain();
  }

  /** Hand everything queued to ZeroMQ synchronously (process exit; see Outbox.flushSync). */
  flushSync(): void {
    this.outbox.flushSync();
  }

  /** Stop sending and close the socket. */
  close(): void {
    this.outbox.close();
    this.socket.close();
  }
}
