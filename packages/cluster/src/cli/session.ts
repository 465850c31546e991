/**
 * This user's tsray sessions: `<tmp>/tsray-<uid>/session-<time>-<pid>/` with `logs/`, `token`,
 * `<role>-<n>.pid` and `<role>-<n>.ready.json` per daemon; `<tmp>/tsray-<uid>/session_latest` links the
 * newest. The directory is this user's, 0700, checked before use (core's runtime-dir.ts).
 * @module
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { ensureRuntimeDir, runtimeDir } from '@tsray/core/internal';
import { join } from 'node:path';
import type { ReadyInfo } from '../contracts.js';

/** `<os.tmpdir()>/tsray-<uid>` (this user's runtime directory; not created here). */
export function tsrayRoot(): string {
  return runtimeDir();
}

/** `<root>/session_latest`. */
export function latestLink(): string {
  return join(tsrayRoot(), 'session_latest');
}

/** A new session directory name: `session-YYYY-MM-DD_HH-MM-SS_mmm-<pid>` (not `session-<digits>-<pid>`, which core's stale cleanup would take for a dead driver's). */
export function newSessionName(now = new Date(), pid = process.pid): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `session-${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}_${p(now.getHours())}-${p(now.getMinutes())}-${p(now.getSeconds())}_${p(now.getMilliseconds(), 3)}-${pid}`;
}

/** Create a session directory (with `logs/`, 0700, in the checked runtime directory) and point `session_latest` at it. */
export function createSession(): string {
  const dir = join(ensureRuntimeDir(), newSessionName());
  mkdirSync(dir, { mode: 0o700 });
  mkdirSync(join(dir, 'logs'), { mode: 0o700 });
  linkLatest(dir);
  return dir;
}

/** Point `session_latest` at `dir` (atomically). */
export function linkLatest(dir: string): void {
  const tmp = `${latestLink()}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(dir, tmp);
  renameSync(tmp, latestLink());
}

/** The directory `session_latest` points at, if it exists. */
export function latestSession(): string | undefined {
  try {
    if (!privateRuntimeDir()) return undefined;
    const target = readlinkSync(latestLink());
    return existsSync(target) ? target : undefined;
  } catch {
    return undefined;
  }
}

/** Every session directory under the root. */
export function listSessions(): string[] {
  try {
    if (!privateRuntimeDir()) return [];
    return readdirSync(tsrayRoot(), { withFileTypes: true })
      .filter((d) => d.isDirectory() && d.name.startsWith('session-'))
      .map((d) => join(tsrayRoot(), d.name))
      .sort();
  } catch {
    return [];
  }
}

/** True if a process with this pid exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return existsSync('/proc/self') ? false : true;
  }
}

/**
 * True if `pid` is alive and (where /proc exists) belongs to the session: its command line mentions
 * `sessionDir`, or its environment has `TSRAY_SESSION_DIR=<sessionDir>` (the CLI starts daemons with both).
 * A guard against pids reused by unrelated processes.
 */
export function isSessionProcess(pid: number, sessionDir: string): boolean {
  if (!pidAlive(pid)) return false;
  if (!existsSync('/proc/self')) return true;
  try {
    if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(sessionDir)) return true;
  } catch {
    /* gone or not readable */
  }
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`TSRAY_SESSION_DIR=${sessionDir}`);
  } catch {
    return false;
  }
}

/** One daemon of a session, from its pid file and ready file. */
export interface DaemonEntry {
  sessionDir: string;
  role: 'head' | 'node';
  /** The daemon's ordinal in its session (`head-0`, `node-1`…). */
  n: number;
  pid: number;
  /** Its ready info, once it wrote it. */
  ready?: ReadyInfo;
}

/** `<sessionDir>/<role>-<n>` + suffix. */
export function daemonFile(sessionDir: string, role: string, n: number, suffix: '.pid' | '.ready.json'): string {
  return join(sessionDir, `${role}-${n}${suffix}`);
}

/** Parse a ready file; undefined while it is missing or half-written. */
export function readReady(file: string): ReadyInfo | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ReadyInfo;
  } catch {
    return undefined;
  }
}

/** The daemons a session knows of (from pid and ready files), alive or not. */
export function sessionDaemons(sessionDir: string): DaemonEntry[] {
  let names: string[];
  try {
    names = readdirSync(sessionDir);
  } catch {
    return [];
  }
  const byKey = new Map<string, DaemonEntry>();
  for (const name of names) {
    const m = /^(head|node)-(\d+)\.(pid|ready\.json)$/.exec(name);
    if (!m) continue;
    const role = m[1] as 'head' | 'node';
    const n = Number(m[2]);
    const key = `${role}-${n}`;
    const entry = byKey.get(key) ?? { sessionDir, role, n, pid: 0 };
    if (m[3] === 'pid') {
      const pid = Number(readFileSync(join(sessionDir, name), 'utf8').trim());
      if (pid > 0 && !entry.pid) entry.pid = pid;
    } else {
      const ready = readReady(join(sessionDir, name));
      if (ready && !ready.error) {
        entry.ready = ready;
        entry.pid = ready.pid;
      }
    }
    byKey.set(key, entry);
  }
  return [...byKey.values()].filter((e) => e.pid > 0).sort((a, b) => (a.role === b.role ? a.n - b.n : a.role === 'head' ? -1 : 1));
}

/** The live daemons of a session. */
export function liveDaemons(sessionDir: string): DaemonEntry[] {
  return sessionDaemons(sessionDir).filter((d) => isSessionProcess(d.pid, sessionDir));
}

/** The first free ordinal for a role in a session. */
export function nextOrdinal(sessionDir: string, role: string): number {
  for (let n = 0; ; n++) {
    if (
      !existsSync(daemonFile(sessionDir, role, n, '.pid')) &&
      !existsSync(daemonFile(sessionDir, role, n, '.ready.json')) &&
      !existsSync(join(sessionDir, 'logs', `${role}-${n}.out`))
    ) {
      return n;
    }
  }
}

/** The running head on this machine (the latest session's first, else any session's), with its session's token. */
export function findLocalHead(): { entry: DaemonEntry; token?: string } | undefined {
  const latest = latestSession();
  const order = latest
    ? [
        latest,
        ...listSessions()
          .filter((s) => s !== latest)
          .reverse(),
      ]
    : listSessions().reverse();
  for (const s of order) {
    const head = liveDaemons(s).find((d) => d.role === 'head' && d.ready);
    if (head) return { entry: head, ...sessionToken(s) };
  }
  return undefined;
}

/** `{token}` read from `<sessionDir>/token`, or `{}`. */
export function sessionToken(sessionDir: string): { token?: string } {
  try {
    const t = readFileSync(join(sessionDir, 'token'), 'utf8').trim();
    return t ? { token: t } : {};
  } catch {
    return {};
  }
}

/** True when the runtime directory is this user's private one (what another user made is not read). */
function privateRuntimeDir(): boolean {
  try {
    ensureRuntimeDir();
    return true;
  } catch {
    return false;
  }
}
