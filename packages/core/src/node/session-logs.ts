/**
 * Session directories outlive their cluster as log archives, as Ray's `/tmp/ray/session_*` do: when a
 * session ends, everything but `logs/` goes (sockets, spill files, the token), and only the newest
 * `TSRAY_SESSIONS_KEPT` finished sessions stay. Errors name worker log files by full path, so those
 * paths must still exist after `shutdown()`.
 * @internal
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Remove everything in a finished session directory except its `logs/` (a directory with no logs goes whole). */
export function retireSession(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) if (name !== 'logs') rmSync(join(dir, name), { recursive: true, force: true });
  try {
    if (readdirSync(join(dir, 'logs')).length > 0) return;
  } catch {
    /* no logs/ */
  }
  rmSync(dir, { recursive: true, force: true });
}

/** An `init()` session directory name, `session-<ms>-<pid>`: its start time and its driver's pid. */
export function parseSessionName(name: string): { startedMs: number; pid: number } | undefined {
  const m = /^session-(\d+)-(\d+)$/.exec(name);
  return m ? { startedMs: Number(m[1]), pid: Number(m[2]) } : undefined;
}

/**
 * Retire the `init()` sessions under `root` whose driver is gone (a driver that crashed never ran
 * `shutdown()`), then remove the oldest finished ones beyond `keep`. Live sessions are never touched.
 */
export function pruneSessions(root: string, keep: number, alive: (pid: number, dir: string) => boolean): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  const finished: { dir: string; startedMs: number }[] = [];
  for (const name of names) {
    const s = parseSessionName(name);
    const dir = join(root, name);
    if (!s || alive(s.pid, dir)) continue;
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch {
      continue;
    }
    finished.push({ dir, startedMs: s.startedMs });
  }
  finished.sort((a, b) => b.startedMs - a.startedMs);
  let kept = 0;
  for (const f of finished) {
    if (kept >= keep) {
      rmSync(f.dir, { recursive: true, force: true });
      continue;
    }
    retireSession(f.dir);
    if (existsSync(f.dir)) kept++;
  }
}
