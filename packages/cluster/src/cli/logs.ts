/**
 * `tsray logs`: the log files on this machine (as `ray logs`): every session's `logs/` under the tsray
 * root — `tsray start` daemons and their nodes' workers, and `init()` sessions, kept after shutdown —
 * listed newest first, or one file printed (`--tail N` last lines, `--follow` until interrupted).
 * `--pid N` picks the worker files of that process (worker lines are prefixed `(name pid=N)`).
 * @module
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CliUsageError } from './errors.js';
import type { CliIo } from './io.js';
import { sleep } from './io.js';
import { tsrayRoot } from './session.js';

/** One log file. */
export interface LogFile {
  path: string;
  size: number;
  mtimeMs: number;
}

/** Every `*.out|*.err|*.log` file under the sessions' `logs/` directories (node subdirectories too), newest first. */
export function listLogFiles(root = tsrayRoot()): LogFile[] {
  const out: LogFile[] = [];
  const scan = (dir: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (depth < 3 && name !== 'spill' && name !== 'session_latest') scan(p, depth + 1);
      } else if (/\.(out|err|log)$/.test(name) && basename(dir) === 'logs') out.push({ path: p, size: st.size, mtimeMs: st.mtimeMs });
    }
  };
  scan(root, 0);
  return out.sort((a, b) => b.mtimeMs - a.mtimeMs);
}

/** The files `what` names: a full path, else files whose name contains it; with `pid`, worker files holding `pid=N)` lines. */
export function findLogFiles(what: string | undefined, pid: number | undefined, root = tsrayRoot()): LogFile[] {
  let files = listLogFiles(root);
  if (what !== undefined) files = files.filter((f) => f.path === what || basename(f.path).includes(what));
  if (pid !== undefined) files = files.filter((f) => /worker-.*\.(out|err)$/.test(f.path) && readFileSync(f.path, 'utf8').includes(` pid=${pid}) `));
  return files;
}

/** The last `n` lines of a text. */
function lastLines(text: string, n: number): string {
  const lines = text.split('\n');
  const trailing = lines[lines.length - 1] === '' ? 1 : 0;
  return lines.slice(Math.max(0, lines.length - trailing - n)).join('\n');
}

/** Options of {@link cmdLogs}. */
export interface LogsOptions {
  /** File name (or part of it) or full path; none: list. */
  what?: string;
  pid?: number;
  tail?: number;
  follow?: boolean;
  /** Stops `follow` (tests; the CLI runs until interrupted). */
  signal?: AbortSignal;
  root?: string;
}

/** `tsray logs [NAME] [--pid N] [--tail N] [--follow]`. */
export async function cmdLogs(o: LogsOptions, io: CliIo): Promise<number> {
  if (o.what === undefined && o.pid === undefined) {
    const files = listLogFiles(o.root);
    if (files.length === 0) io.out(`no log files under ${o.root ?? tsrayRoot()}\n`);
    for (const f of files) io.out(`${f.path}\t${f.size}\n`);
    return 0;
  }
  const files = findLogFiles(o.what, o.pid, o.root);
  if (files.length === 0)
    throw new CliUsageError(`no log file matches ${o.what ?? ''}${o.pid !== undefined ? ` with pid ${o.pid}` : ''} (tsray logs lists them)`);
  if (files.length > 1 && (o.follow || o.what !== undefined)) {
    const exact = files.filter((f) => f.path === o.what || basename(f.path) === o.what);
    if (exact.length !== 1 && o.pid === undefined)
      throw new CliUsageError(`${files.length} log files match "${o.what}"; name one:\n${files.map((f) => `  ${f.path}`).join('\n')}`);
    if (exact.length === 1) files.splice(0, files.length, exact[0]!);
  }
  for (const f of files) {
    if (files.length > 1) io.out(`==> ${f.path} <==\n`);
    const text = readFileSync(f.path, 'utf8');
    io.out(o.tail !== undefined ? lastLines(text, o.tail) : text);
  }
  if (o.follow) await follow(files[0]!.path, statSync(files[0]!.path).size, io, o.signal);
  return 0;
}

/** Print what is appended to `path` from `offset` on, polling, until `signal` aborts. */
async function follow(path: string, offset: number, io: CliIo, signal: AbortSignal | undefined): Promise<void> {
  let pos = offset;
  const buf = Buffer.alloc(64 * 1024);
  while (!signal?.aborted) {
    const size = statSync(path).size;
    if (size > pos) {
      const fd = openSync(path, 'r');
      try {
        let n: number;
        while ((n = readSync(fd, buf, 0, buf.length, pos)) > 0) {
          io.out(buf.subarray(0, n).toString('utf8'));
          pos += n;
        }
      } finally {
        closeSync(fd);
      }
    }
    await sleep(200);
  }
}
