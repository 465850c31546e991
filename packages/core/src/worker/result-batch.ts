/**
 * Task results waiting to go to the node: short tasks' results are sent in one taskResults message
 * (their inline payloads re-based onto one set of frames) instead of one message per task.
 * @internal
 */
import type { tsray } from '@tsray/protocol';
import { FrameBuilder } from '../wire.js';
import type { NodeChannel } from './node-channel.js';

interface PendingResult {
  result: tsray.v1.ITaskResult;
  payloads: Uint8Array[];
}

/** Results of finished tasks, sent together. */
export class ResultBatch {
  private pending: PendingResult[] = [];
  private firstPendingAt = 0;
  private flushQueued = false;

  constructor(private readonly channel: NodeChannel) {}

  /** Results waiting. */
  get size(): number {
    return this.pending.length;
  }

  /** How long the oldest result has waited, in ms. */
  age(): number {
    return performance.now() - this.firstPendingAt;
  }

  add(result: tsray.v1.ITaskResult, payloads: Uint8Array[]): void {
    if (this.pending.length === 0) this.firstPendingAt = performance.now();
    this.pending.push({ result, payloads });
  }

  /** Send the results now (after the channel's batches: a result may name refs and puts made before it). */
  flush(): void {
    if (this.pending.length === 0) return;
    this.channel.flushNow();
    const fb = new FrameBuilder();
    const results: tsray.v1.ITaskResult[] = [];
    for (const p of this.pending) {
      // Re-base payload descriptors onto the batch's frames.
      for (const od of p.result.returns ?? []) {
        if (od.inline)
          od.inline = fb.add(p.payloads[od.inline.frame as number]!.subarray(Number(od.inline.offset), Number(od.inline.offset) + Number(od.inline.length)));
      }
      results.push(p.result);
    }
    this.pending = [];
    this.channel.send({ taskResults: { results } }, fb.empty ? undefined : fb.frames());
  }

  /** Flush on the next event-loop turn (once for any number of calls this turn). */
  scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flush();
    });
  }
}
