/**
 * The chaos harness's remote functions and actor (imported by workers on every node, so defined at the
 * top level of their own module).
 */
import { randomBytes } from 'node:crypto';
import { actor, getRuntimeContext, remote } from '@tsray/core';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stage one: a number, after `ms` of work. */
export const produce = remote(
  async function produce(i: number, ms: number): Promise<number> {
    await pause(ms);
    return i;
  },
  { maxRetries: -1 },
);

/** Stage two: combines two produced numbers (its arguments are other tasks' returns). */
export const combine = remote(
  async function combine(a: number, b: number, ms: number): Promise<number> {
    await pause(ms);
    return a * 10_007 + b;
  },
  { maxRetries: -1 },
);

/** What {@link combine} returns for produced `a` and `b`: the harness checks every result against it. */
export function expectedCombine(a: number, b: number): number {
  return a * 10_007 + b;
}

/**
 * A restartable actor that reports, with every call, the previous sequence number it executed in this
 * incarnation: the harness checks that no call ran before an earlier one of the same caller.
 */
export class SeqActor {
  private last = -1;
  /** This incarnation: a random id and the node it runs on. */
  private readonly incarnation = `${randomBytes(6).toString('hex')}@${getRuntimeContext().nodeId.slice(0, 8)}`;

  /**
   * Executes call `seq`, taking `ms` (the actor runs one call at a time: `maxConcurrency: 1`); returns
   * `[seq, the previous seq executed here, incarnation]`.
   */
  async call(seq: number, ms: number): Promise<[number, number, string]> {
    const prev = this.last;
    this.last = seq;
    if (ms > 0) await pause(ms);
    return [seq, prev, this.incarnation];
  }
}

/** {@link SeqActor} as a remote actor class (restarted forever, its calls retried forever). */
export const ChaosActor = actor(SeqActor, { maxRestarts: -1, maxTaskRetries: -1, maxConcurrency: 1 });
