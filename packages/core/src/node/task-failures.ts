/**
 * The node's recent task failures for the dashboard's tasks page (issue #20): each task or actor call
 * this node finished with an error object — error class, message and the remote stack as the worker
 * printed it. The finished-task ring (`task-timeline.ts`) keeps no error, and a failure's value lives
 * only as long as its refs, so the error is copied here when the task ends. A ring of the last
 * {@link MAX_FAILURES}: a task failing in a loop cannot grow the node.
 * @internal
 */
import { decodeErrorPayload, errorFromPayload } from '../error-payload.js';
import type { StoredObject } from './object-table.js';
import type { TaskRecord } from './records.js';

/** Failures kept per node (older ones are dropped). */
export const MAX_FAILURES = 200;
/** Longest stack kept per failure (characters; the start, where the throw site is). */
export const MAX_STACK_CHARS = 8 * 1024;
/** Longest message kept per failure (characters). */
export const MAX_MESSAGE_CHARS = 2 * 1024;

/** One task that ended with an error (`localState('failures')`, `GET /dashboard/api/failures`). */
export interface TaskFailure {
  taskId: string;
  /** The function or `Class.method` name. */
  name: string;
  nodeId: string;
  jobId: string;
  actorId?: string;
  /** Class of the error (`TypeError`, `WorkerCrashedError`, a user class, `ValueError` from Python ...). */
  errorName: string;
  message: string;
  /** The stack as the remote worker printed it ('' when the error has none, e.g. a cancellation). */
  stack: string;
  /** Pid of the worker that threw (0 when the failure did not come from a worker). */
  pid: number;
  attempt: number;
  /** When it failed, ms since the epoch. */
  time: number;
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}… (${s.length - n} more characters)` : s;
}

/** Ring buffer of task failures. */
export class TaskFailures {
  private readonly items: TaskFailure[] = [];
  private next = 0;

  constructor(private readonly nodeId: () => string) {}

  /**
   * A task ended with `data`: keep it when `data` is an error object. Tasks forwarded to another node
   * are recorded there (where they ran), not by the node that forwarded them.
   */
  record(t: TaskRecord, data: StoredObject | undefined): void {
    if (data?.encoding !== 'error' || !data.inline || t.remote) return;
    let errorName: string;
    let message: string;
    let stack = '';
    let pid = 0;
    try {
      const p = decodeErrorPayload(data.inline);
      if (p.type === 'TaskError') {
        errorName = p.info.name;
        message = p.info.message;
        stack = p.info.stack;
        pid = p.info.pid;
      } else {
        const e = errorFromPayload(data.inline);
        errorName = e.name;
        message = e.message;
        if (p.type === 'Other' && p.stack) stack = p.stack;
      }
    } catch (e) {
      errorName = 'ErrorPayloadDecodeError';
      message = (e as Error).message;
    }
    const f: TaskFailure = {
      taskId: t.spec.taskId,
      name: t.spec.name,
      nodeId: this.nodeId(),
      jobId: t.jobId,
      ...(t.actor ? { actorId: t.actor.id } : {}),
      errorName,
      message: clip(message, MAX_MESSAGE_CHARS),
      stack: clip(stack, MAX_STACK_CHARS),
      pid,
      attempt: t.attempt,
      time: Date.now(),
    };
    if (this.items.length < MAX_FAILURES) this.items.push(f);
    else this.items[this.next] = f;
    this.next = (this.next + 1) % MAX_FAILURES;
  }

  /** The failures kept, oldest first. */
  rows(): TaskFailure[] {
    return this.items.length < MAX_FAILURES ? [...this.items] : [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }
}
