/**
 * The tasks a worker was sent and has not finished, oldest first. An array was O(n) per result once it
 * held more than ~16k tasks (V8 shifts a large array by moving it; see Deque) and O(n) for every
 * result that came out of order (an async actor's calls: findIndex + splice): quadratic for an actor
 * with tens of thousands of calls in flight, which batched forwarding from other nodes produces (the
 * n:n cluster benchmark: 20,000 calls to one actor). Here removal is O(1): a removed task stays in the
 * queue as a stale entry, skipped (and dropped) when it reaches the head.
 * @internal
 */
import { Deque } from '../deque.js';
import type { TaskRecord } from './records.js';

interface Entry {
  task: TaskRecord;
  /** Which push of the task this is (a task re-sent to the same worker is pushed again). */
  seq: number;
}

/** A worker's tasks in flight, in the order they were sent. */
export class TaskPipeline implements Iterable<TaskRecord> {
  private readonly queue = new Deque<Entry>();
  /** Live tasks → the seq of their live entry. */
  private readonly live = new Map<TaskRecord, number>();
  private seq = 0;

  /** Tasks in flight. */
  get length(): number {
    return this.live.size;
  }

  push(task: TaskRecord): void {
    const seq = ++this.seq;
    this.live.set(task, seq);
    this.queue.push({ task, seq });
  }

  /** The oldest task in flight. */
  peek(): TaskRecord | undefined {
    this.dropStale();
    return this.queue.peek()?.task;
  }

  /** Take out the oldest task. */
  shift(): TaskRecord | undefined {
    this.dropStale();
    const e = this.queue.shift();
    if (e) this.live.delete(e.task);
    return e?.task;
  }

  /** Take `task` out wherever it is; false if it was not in flight here. */
  remove(task: TaskRecord): boolean {
    if (!this.live.delete(task)) return false;
    this.dropStale();
    return true;
  }

  /** Take out the task with id `taskId` (a linear search: for results whose record is gone). */
  removeById(taskId: string): boolean {
    for (const t of this.live.keys()) if (t.spec.taskId === taskId) return this.remove(t);
    return false;
  }

  /** Take every task out, oldest first. */
  drain(): TaskRecord[] {
    const out = [...this];
    this.live.clear();
    this.queue.drain();
    return out;
  }

  *[Symbol.iterator](): Iterator<TaskRecord> {
    for (const e of this.queue.toArray()) if (this.live.get(e.task) === e.seq) yield e.task;
  }

  private dropStale(): void {
    for (let e = this.queue.peek(); e && this.live.get(e.task) !== e.seq; e = this.queue.peek()) this.queue.shift();
  }
}
