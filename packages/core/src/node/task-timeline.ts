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

/**
 * Ring buffer of task events. Recording is on every task's and actor call's path, so an event is kept
 * as slots of parallel arrays (no object, no WeakMap entry per task: both showed in the node's CPU
 * profile of n:n actor calls) and becomes a {@link TaskEvent} only when `rows()` is asked for.
 */
export class TaskTimeline {
  private readonly taskIds: string[] = [];
  private readonly names: string[] = [];
  private readonly nodeIds: string[] = [];
  private readonly workerIds: string[] = [];
  private readonly jobIds: string[] = [];
  private readonly actorIds: (string | undefined)[] = [];
  private readonly pids = new Int32Array(MAX_EVENTS);
  private readonly attempts = new Int32Array(MAX_EVENTS);
  private readonly startUs = new Float64Array(MAX_EVENTS);
  private readonly durUs = new Float64Array(MAX_EVENTS);
  private size = 0;
  private next = 0;

  /** The node's recent failed tasks with their errors (the dashboard's tasks page). */
  readonly failures: TaskFailures;

  constructor(private readonly nodeId: () => string) {
    this.failures = new TaskFailures(nodeId);
  }

  /** A task was handed to a worker of this node (its start). */
  started(t: TaskRecord, w: WorkerHandle): void {
    t.ranOn = w;
  }

  /**
   * A task ended with `data` (its result or error object): record it when it ran on a worker of this
   * node (forwarded ones are recorded where they ran), and keep its error when it failed.
   */
  record(t: TaskRecord, data?: StoredObject): void {
    this.failures.record(t, data);
    const w = t.ranOn;
    if (!w || !(t.startedAt > 0)) return;
    t.ranOn = undefined;
    const i = this.next;
    this.taskIds[i] = t.spec.taskId;
    this.names[i] = t.spec.name;
    this.nodeIds[i] = this.nodeId();
    this.workerIds[i] = w.id;
    this.jobIds[i] = t.jobId;
    this.actorIds[i] = t.actor?.id;
    this.pids[i] = w.proc?.pid ?? 0;
    this.attempts[i] = t.attempt;
    const now = performance.now();
    this.startUs[i] = Math.round((performance.timeOrigin + t.startedAt) * 1000);
    this.durUs[i] = Math.max(1, Math.round((now - t.startedAt) * 1000));
    this.next = (i + 1) % MAX_EVENTS;
    if (this.size < MAX_EVENTS) this.size++;
  }

  /** The events kept, oldest first. */
  rows(): TaskEvent[] {
    const out: TaskEvent[] = [];
    const first = this.size < MAX_EVENTS ? 0 : this.next;
    for (let k = 0; k < this.size; k++) {
      const i = (first + k) % MAX_EVENTS;
      const actorId = this.actorIds[i];
      out.push({
        taskId: this.taskIds[i]!,
        name: this.names[i]!,
        nodeId: this.nodeIds[i]!,
        workerId: this.workerIds[i]!,
        pid: this.pids[i]!,
        jobId: this.jobIds[i]!,
        ...(actorId ? { actorId } : {}),
        attempt: this.attempts[i]!,
        startUs: this.startUs[i]!,
        durUs: this.durUs[i]!,
      });
    }
    return out;
  }
}
