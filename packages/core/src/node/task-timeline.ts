/**
 * The node's recent task events for `tsray timeline` (Chrome trace, as `ray timeline`): one event per
 * finished task or actor call that ran on one of this node's workers — its name, worker, start and
 * duration. A ring of the last {@link MAX_EVENTS}, so a long-running node stays bounded (Ray caps
 * task events per job for the same reason).
 * @internal
 */
import type { StoredObject } from './object-table.js';
import type { TaskRecord, WorkerHandle } from './records.js';
import { TaskFailures } from './task-failures.js';

/** Events kept per node (older ones are dropped). */
export const MAX_EVENTS = 10_000;

/** One task that ran, as the node reports it (`localState('timeline')`). */
export interface TaskEvent {
  taskId: string;
  name: string;
  nodeId: string;
  workerId: string;
  /** The worker's pid (0 when it was gone by the end). */
  pid: number;
  jobId: string;
  actorId?: string;
  attempt: number;
  /** Start, µs since the epoch (when the task was handed to its worker). */
  startUs: number;
  durUs: number;
}

/** Ring buffer of task events. */
export class TaskTimeline {
  private readonly events: TaskEvent[] = [];
  private next = 0;

  /** The node's recent failed tasks with their errors (the dashboard's tasks page). */
  readonly failures: TaskFailures;

  constructor(private readonly nodeId: () => string) {
    this.failures = new TaskFailures(nodeId);
  }

  /** Workers of this node that tasks were handed to (the record's own `worker` is cleared before it ends). */
  private readonly ranOn = new WeakMap<TaskRecord, WorkerHandle>();

  /** A task was handed to a worker of this node (its start). */
  started(t: TaskRecord, w: WorkerHandle): void {
    this.ranOn.set(t, w);
  }

  /**
   * A task ended with `data` (its result or error object): record it when it ran on a worker of this
   * node (forwarded ones are recorded where they ran), and keep its error when it failed.
   */
  record(t: TaskRecord, data?: StoredObject): void {
    this.failures.record(t, data);
    const w = this.ranOn.get(t);
    if (!w || !(t.startedAt > 0)) return;
    this.ranOn.delete(t);
    const now = performance.now();
    const e: TaskEvent = {
      taskId: t.spec.taskId,
      name: t.spec.name,
      nodeId: this.nodeId(),
      workerId: w.id,
      pid: w.proc?.pid ?? 0,
      jobId: t.jobId,
      ...(t.actor ? { actorId: t.actor.id } : {}),
      attempt: t.attempt,
      startUs: Math.round((performance.timeOrigin + t.startedAt) * 1000),
      durUs: Math.max(1, Math.round((now - t.startedAt) * 1000)),
    };
    if (this.events.length < MAX_EVENTS) this.events.push(e);
    else this.events[this.next] = e;
    this.next = (this.next + 1) % MAX_EVENTS;
  }

  /** The events kept, oldest first. */
  rows(): TaskEvent[] {
    return this.events.length < MAX_EVENTS ? [...this.events] : [...this.events.slice(this.next), ...this.events.slice(0, this.next)];
  }
}
