// Process liveness for tests that check what a test left behind (every process reaped).
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
