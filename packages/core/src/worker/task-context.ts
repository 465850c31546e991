/**
 * Which task is running in this worker process: the context `getRuntimeContext()` returns and the
 * name that prefixes the task's output lines.
 * @internal
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { RuntimeContext } from '../runtime.js';

let current: RuntimeContext | undefined;

/** Context of the call running in this async scope (async actors run several calls at once). */
export const contextStore = new AsyncLocalStorage<RuntimeContext>();

/** Name of the task running now (for the output prefix). @internal */
export let currentTaskName: string | undefined;

/** The context of the running call: its async scope's, else the one set last. */
export function currentContext(): RuntimeContext | undefined {
  return contextStore.getStore() ?? current;
}

/** The task running now (synchronous code), or none; `outputName` prefixes its output (default its name). */
export function setCurrent(c: RuntimeContext | undefined, outputName?: string): void {
  current = c;
  currentTaskName = outputName ?? c?.taskName;
}

/** Id of the task set last with {@link setCurrent} (parent of the tasks it submits). */
export function currentTaskId(): string | undefined {
  return current?.taskId;
}
