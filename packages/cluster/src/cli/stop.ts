/**
 * `tsray stop`: stop this machine's tsray daemons (SIGTERM, then SIGKILL after the grace period).
 * @module
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { daemonFile, isSessionProcess, listSessions, liveDaemons, pidAlive, tsrayRoot, type DaemonEntry } from './session.js';
import { sleep, type CliIo } from './io.js';

/** Options of {@link stopAll}. */
export interface StopOptions {
  /** Seconds to wait after SIGTERM before SIGKILL (default 10). */
  graceS?: number;
  /** SIGKILL at once. */
  force?: boolean;
}

/** What {@link stopAll} did to one daemon. */
export interface StopResult {
  entry: DaemonEntry;
  /** `terminated`: exited after SIGTERM; `killed`: needed SIGKILL; `survived`: still there after SIGKILL (permissions?). */
  outcome: 'terminated' | 'killed' | 'survived';
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

async function waitGone(entries: DaemonEntry[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && entries.some((e) => pidAlive(e.pid))) await sleep(50);
}

/** Stop every live tsray daemon of this machine's sessions; removes their pid/ready files and a `current.json` pointing into them. */
export async function stopAll(opts: StopOptions = {}): Promise<StopResult[]> {
  const graceMs = (opts.graceS ?? 10) * 1000;
  const targets = listSessions().flatMap((s) => liveDaemons(s));
  if (targets.length === 0) return [];
  for (const t of targets) signal(t.pid, opts.force ? 'SIGKILL' : 'SIGTERM');
  await waitGone(targets, opts.force ? 5000 : graceMs);
  const results: StopResult[] = [];
  const stubborn = targets.filter((t) => pidAlive(t.pid));
  for (const t of stubborn) signal(t.pid, 'SIGKILL');
  await waitGone(stubborn, 5000);
  for (const t of targets) {
    const outcome = isSessionProcess(t.pid, t.sessionDir) ? 'survived' : opts.force || stubborn.includes(t) ? 'killed' : 'terminated';
    results.push({ entry: t, outcome });
    if (outcome !== 'survived') {
      rmSync(daemonFile(t.sessionDir, t.role, t.n, '.pid'), { force: true });
      rmSync(daemonFile(t.sessionDir, t.role, t.n, '.ready.json'), { force: true });
    }
  }
  const cur = join(tsrayRoot(), 'current.json');
  try {
    const c = JSON.parse(readFileSync(cur, 'utf8')) as { pid?: number; sessionDir?: string };
    const stopped = results.filter((r) => r.outcome !== 'survived');
    if (stopped.some((r) => r.entry.pid === c.pid || (c.sessionDir !== undefined && c.sessionDir === r.entry.sessionDir))) rmSync(cur, { force: true });
  } catch {
    /* none */
  }
  return results;
}

/**
 * `tsray stop [--grace S] [--force]`. Prints one line per daemon:
 * `Stopped head (pid 123) of /tmp/tsray-<uid>/session-…` (or `Killed … after the 10 s grace period`, or
 * `Could not stop …`), then `Stopped N tsray process(es).`; or `no tsray processes running`.
 * Exit code 0, or 1 if a process survived.
 */
export async function cmdStop(opts: StopOptions, io: CliIo): Promise<number> {
  const results = await stopAll(opts);
  if (results.length === 0) {
    io.out('no tsray processes running\n');
    return 0;
  }
  for (const r of results) {
    const what = `${r.entry.role} (pid ${r.entry.pid}) of ${r.entry.sessionDir}`;
    if (r.outcome === 'terminated') io.out(`Stopped ${what}\n`);
    else if (r.outcome === 'killed') io.out(`Killed ${what}${opts.force ? ' (--force)' : ` after the ${opts.graceS ?? 10} s grace period`}\n`);
    else io.err(`Could not stop ${what}: it survived SIGKILL (is it another user's process?)\n`);
  }
  const n = results.filter((r) => r.outcome !== 'survived').length;
  io.out(`Stopped ${n} tsray process${n === 1 ? '' : 'es'}.\n`);
  return results.some((r) => r.outcome === 'survived') ? 1 : 0;
}
