// Process liveness and reaping for tests (and bench/ harnesses) that start real processes and must leave none behind.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** True if the process exists and is not a zombie (pid 1 of a container may reap orphans late). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

/**
 * SIGTERM a child process unless it already exited, SIGKILL it when it still runs `graceMs` later, and
 * resolve once it exited (`exited`: a promise of its exit event, made when it was spawned).
 */
export async function terminate(proc: ChildProcess, exited: Promise<unknown>, graceMs = 10_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}
