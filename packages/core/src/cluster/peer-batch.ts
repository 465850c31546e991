/**
 * What a node sends a peer node for each task it forwards there, batched per event-loop turn: the
 * holds on the task's returns, the task, and the subscription to its returns' locations (and the
 * releases of returns that came back). Sent one message per task, a forwarded actor call cost four
 * messages each way through both nodes' ZeroMQ sockets, encoders and CURVE boxes; batched, a turn that
 * forwards N tasks (a worker's SubmitTasks batch) sends four messages. Order is kept where it matters:
 * all holds before all tasks (the peer counts our refs on a task's returns before a fast task seals
 * them), the tasks in submission order (per-caller actor call order), the subscriptions after their
 * tasks, releases last (a release delayed is safe; one before its hold would free the object).
 * Anything else sent to the peer flushes the batch first ({@link PeerConnection.send}).
 * @internal
 */
import type { EnvelopeBody, tsray } from '@tsray/protocol';
import { FrameBuilder } from '../wire.js';

/** One turn's batched messages to one peer. */
export class PeerBatch {
  private holds: string[] = [];
  private tasks: tsray.v1.ITaskSpec[] = [];
  private frames = new FrameBuilder();
  private subscribes: string[] = [];
  private releases: string[] = [];

  /** Nothing queued. */
  get empty(): boolean {
    return this.holds.length === 0 && this.tasks.length === 0 && this.subscribes.length === 0 && this.releases.length === 0;
  }

  /** A forwarded task: hold its returns, run it (its spec encoded into the batch's frames), subscribe to its returns' locations. */
  forward(returnIds: readonly string[], encode: (frames: FrameBuilder) => tsray.v1.ITaskSpec): void {
    for (const id of returnIds) this.holds.push(id);
    this.tasks.push(encode(this.frames));
    for (const id of returnIds) this.subscribes.push(id);
  }

  /** Give back holds on objects of the peer. */
  release(ids: readonly string[]): void {
    for (const id of ids) this.releases.push(id);
  }

  /** The batch as messages in send order (then empty). */
  take(): [EnvelopeBody, Uint8Array[] | undefined][] {
    const out: [EnvelopeBody, Uint8Array[] | undefined][] = [];
    if (this.holds.length > 0) out.push([{ refUpdates: { add: this.holds } }, undefined]);
    if (this.tasks.length > 0) out.push([{ submitTasks: { tasks: this.tasks } }, this.frames.empty ? undefined : this.frames.frames()]);
    if (this.subscribes.length > 0) out.push([{ subscribeObjects: { objectIds: this.subscribes, locationsOnly: true } }, undefined]);
    if (this.releases.length > 0) out.push([{ refUpdates: { remove: this.releases } }, undefined]);
    this.holds = [];
    this.tasks = [];
    this.frames = new FrameBuilder();
    this.subscribes = [];
    this.releases = [];
    return out;
  }
}
