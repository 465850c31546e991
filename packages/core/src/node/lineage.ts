/**
 * Lineage of the results this node owns that live only on other nodes (Ray's lineage reconstruction):
 * a large return of a task forwarded to node B stays on B (object-directory.ts), so when B dies before
 * anyone pulled it, its only copy is gone. The owner keeps the finished task's spec, and holds its
 * arguments, while any of its returns is still referenced; when the last holder of such a return dies
 * (or a pull finds none left), the task is submitted again with the same task and return ids, within
 * its `maxRetries` (-1 = forever), and whoever waits for the return gets the new copy. Lost arguments
 * are rebuilt the same way (their producers' lineage is held by the consumer's): recursion falls out.
 * Not rebuilt, with the reason in the `ObjectLostError`: `put` objects (no lineage), tasks out of
 * retries (kept without their arguments, to say so), and objects whose lineage this node does not keep
 * (owned by another node, actor tasks, streaming returns, or dropped by the bound on kept specs).
 * @internal
 */
import { logger } from '../logger.js';
import type { SubmitSpec } from '../runtime.js';
import { taskIdOf } from './node-support.js';
import type { TaskRecord, WorkerHandle } from './records.js';

/** Most finished tasks whose lineage a node keeps (the oldest is dropped past it, as Ray's `max_lineage_bytes`). */
export const MAX_LINEAGE_TASKS = 10_000;

/** What the lineage keeper needs from its node. */
export interface LineageHost {
  /** True while the node's object table has an entry (a holder) for `id`. */
  referenced(id: string): boolean;
  /** True while task `taskId` is live on this node (a rebuild already running). */
  live(taskId: string): boolean;
  /** Let go of ids the lineage held (the task's arguments). */
  release(ids: readonly string[]): void;
  /** Submit `spec` again (same ids) as a new attempt; its arguments are held again by the new task. */
  resubmit(spec: SubmitSpec, owner: WorkerHandle | undefined, retriesLeft: number, attempt: number): void;
}

/** A finished task kept for rebuilding its returns. */
interface Kept {
  spec: SubmitSpec;
  owner: WorkerHandle | undefined;
  /** Ids held for its arguments until the lineage is dropped. */
  holds: string[];
  retriesLeft: number;
  attempt: number;
  /** Its returns still referenced on this node: the lineage is dropped when none is. */
  returnsLeft: Set<string>;
}

/** Why an object was not rebuilt. */
export type RebuildRefusal = string;

/** The node's kept lineage (finished tasks whose returns may need rebuilding). */
export class LineageKeeper {
  private readonly byTask = new Map<string, Kept>();
  private rebuilds = 0;

  constructor(
    private readonly host: LineageHost,
    private readonly maxTasks = MAX_LINEAGE_TASKS,
  ) {}

  /** Tasks kept, and rebuilds started so far (node stats, tests). */
  stats(): { kept: number; rebuilds: number } {
    return { kept: this.byTask.size, rebuilds: this.rebuilds };
  }

  /**
   * `t` (a task this node owns) finished with a return left on another node: keep its spec and take
   * over its argument holds (call before the task manager releases them). An actor task or a
   * streaming one is not kept (not re-run this way).
   */
  keep(t: TaskRecord): void {
    const spec = t.spec;
    if (spec.actorId || spec.actorCreation || spec.streaming) return;
    const returnsLeft = new Set(spec.returnIds.filter((id) => this.host.referenced(id)));
    if (returnsLeft.size === 0) return;
    const prev = this.byTask.get(spec.taskId);
    if (prev) this.drop(spec.taskId, prev);
    // Out of retries: kept without its arguments, only to say why a lost return is not rebuilt.
    const rerunnable = t.retriesLeft !== 0;
    this.byTask.set(spec.taskId, { spec, owner: t.owner, holds: rerunnable ? t.holds : [], retriesLeft: t.retriesLeft, attempt: t.attempt, returnsLeft });
    if (rerunnable) t.holds = [];
    if (this.byTask.size > this.maxTasks) {
      const [oldest, k] = this.byTask.entries().next().value as [string, Kept];
      logger().warn({ task: oldest, max: this.maxTasks }, 'lineage bound reached: the oldest kept task can no longer be rebuilt');
      this.drop(oldest, k);
    }
  }

  /** `id` left this node's object table: drop the lineage of its task once none of its returns is held. */
  freed(id: string): void {
    const taskId = taskIdOf(id);
    const k = taskId === undefined ? undefined : this.byTask.get(taskId);
    if (!k || !k.returnsLeft.delete(id) || k.returnsLeft.size > 0) return;
    this.drop(taskId!, k);
  }

  /**
   * Every copy of `id` is lost: re-run the task that made it. Returns undefined when it is being
   * rebuilt (waiters keep waiting for the new copy), else why it cannot be.
   */
  rebuild(id: string): RebuildRefusal | undefined {
    const taskId = taskIdOf(id);
    if (taskId === undefined) return 'it was created by put(), and put objects cannot be rebuilt (they have no lineage)';
    const k = this.byTask.get(taskId);
    if (!k) {
      return `it was made by task ${taskId}, whose lineage this node does not keep (owned by another node, an actor task or a streaming one, or past the bound of ${this.maxTasks} kept tasks)`;
    }
    if (this.host.live(taskId)) return undefined; // another of its returns started the rebuild
    if (k.retriesLeft === 0) return `it was made by task ${k.spec.name} (${taskId}), which has no retries left to rebuild it (maxRetries)`;
    if (k.retriesLeft > 0) k.retriesLeft--;
    k.attempt++;
    this.rebuilds++;
    logger().warn(
      { object: id, task: k.spec.name, attempt: k.attempt, retriesLeft: k.retriesLeft },
      'every copy of an object is lost: re-running the task that made it',
    );
    this.host.resubmit(k.spec, k.owner, k.retriesLeft, k.attempt);
    return undefined;
  }

  private drop(taskId: string, k: Kept): void {
    this.byTask.delete(taskId);
    this.host.release(k.holds);
  }
}
