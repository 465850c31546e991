/**
 * The default GCS store: an append-only log of JSON lines (`{"t":table,"k":key,"v":value}`, or
 * `"d":1` for a removal), each write fsynced before it resolves, compacted (a snapshot of the live rows
 * written beside it, fsynced, renamed over it) once it holds more than twice the live rows. A head that
 * was killed mid-write leaves at most a torn last line, which the next load skips. One process uses the
 * file at a time (the head's); it lives in the session directory, so a head restarted on the same
 * machine for the same session reloads it.
 * @module
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { logger } from './logger.js';
import { type GcsStorage, GcsStorageError, type GcsTable, type GcsTables, emptyTables, isGcsTable } from './gcs-storage.js';

/** Compaction waits for at least this many log lines (a small log is cheap to replay). */
const MIN_COMPACT_LINES = 1000;

/** An append-only, fsynced JSON-lines log of the GCS tables. */
export class FileGcsStorage implements GcsStorage {
  readonly description: string;
  private fd: number;
  private readonly rows: GcsTables;
  private lines: number;
  private closed = false;

  private constructor(
    private readonly path: string,
    rows: GcsTables,
    lines: number,
  ) {
    this.description = `file:${path}`;
    this.rows = rows;
    this.lines = lines;
    this.fd = openSync(path, 'a', 0o600);
  }

  /** Open (or create) the log at `path` and replay it. @throws GcsStorageError when it cannot be read or created. */
  static open(path: string): FileGcsStorage {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const { rows, lines, torn } = existsSync(path) ? replay(readFileSync(path, 'utf8')) : { rows: emptyTables(), lines: 0, torn: false };
      const s = new FileGcsStorage(path, rows, lines);
      // A torn last line (the head died mid-write) would glue onto the next append: rewrite the log.
      if (torn) {
        logger().warn({ path }, 'the GCS log ends with a torn line (the head died while writing); it is skipped');
        s.compact();
      }
      return s;
    } catch (e) {
      if (e instanceof GcsStorageError) throw e;
      throw new GcsStorageError(`the GCS store ${path} cannot be opened: ${(e as Error).message}`);
    }
  }

  async load(): Promise<GcsTables> {
    const out = emptyTables();
    for (const [t, m] of Object.entries(this.rows) as [GcsTable, Map<string, string>][]) for (const [k, v] of m) out[t].set(k, v);
    return out;
  }

  async put(table: GcsTable, key: string, value: string): Promise<void> {
    this.rows[table].set(key, value);
    this.append({ t: table, k: key, v: value });
  }

  async del(table: GcsTable, key: string): Promise<void> {
    if (!this.rows[table].delete(key)) return;
    this.append({ t: table, k: key, d: 1 });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private append(row: Record<string, unknown>): void {
    if (this.closed) throw new GcsStorageError(`the GCS store ${this.path} is closed`);
    writeSync(this.fd, `${JSON.stringify(row)}\n`);
    fsyncSync(this.fd);
    this.lines++;
    const live = Object.values(this.rows).reduce((n, m) => n + m.size, 0);
    if (this.lines > MIN_COMPACT_LINES && this.lines > 2 * live) this.compact();
  }

  /** Write the live rows to `<path>.compact`, fsync, rename it over the log, and append to the new file. */
  private compact(): void {
    const tmp = `${this.path}.compact`;
    const fd = openSync(tmp, 'w', 0o600);
    let lines = 0;
    try {
      for (const [t, m] of Object.entries(this.rows)) {
        for (const [k, v] of m) {
          writeSync(fd, `${JSON.stringify({ t, k, v })}\n`);
          lines++;
        }
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    // The rename is durable once the directory is synced.
    const dir = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    closeSync(this.fd);
    this.fd = openSync(this.path, 'a', 0o600);
    this.lines = lines;
  }
}

/** The rows a log holds; `torn` when its last line is cut (no newline, or not JSON). */
function replay(text: string): { rows: GcsTables; lines: number; torn: boolean } {
  const rows = emptyTables();
  const all = text.split('\n');
  const torn = all[all.length - 1] !== '';
  let lines = 0;
  for (const [i, line] of all.entries()) {
    if (line === '') continue;
    let row: { t?: unknown; k?: unknown; v?: unknown; d?: unknown };
    try {
      row = JSON.parse(line) as typeof row;
    } catch {
      if (i === all.length - 1) break; // the torn last line
      throw new GcsStorageError(`the GCS log is corrupt at line ${i + 1} (not JSON); move it away to start the cluster afresh`);
    }
    lines++;
    if (!isGcsTable(row.t) || typeof row.k !== 'string') continue;
    if (row.d) rows[row.t].delete(row.k);
    else if (typeof row.v === 'string') rows[row.t].set(row.k, row.v);
  }
  return { rows, lines, torn };
}
