/**
 * Where the GCS keeps its tables so that a restarted head (same or new process) finds the cluster as
 * it was: one {@link GcsStorage} interface, two implementations — {@link RedisGcsStorage} for
 * `tsray start --head --storage redis://host:port` (an external store, as Ray's Redis-backed GCS), and
 * {@link FileGcsStorage}, the default: an append-only log in the session directory (survives a head
 * process restart on the same machine). Tables are string maps; what a row means is the GCS's business.
 * @module
 */
import { ClusterError } from './errors.js';

/** The GCS tables that outlive its process. Node heartbeats (what is free now) are not stored: nodes re-send them. */
export const GCS_TABLES = ['meta', 'nodes', 'actors', 'names', 'jobs', 'kv'] as const;

/** One persisted GCS table. */
export type GcsTable = (typeof GCS_TABLES)[number];

/** Every table's rows, as loaded. */
export type GcsTables = Record<GcsTable, Map<string, string>>;

/** A store of the GCS tables. Writes resolve once the row is durable (fsynced, or acknowledged by Redis). */
export interface GcsStorage {
  /** What and where (for logs and `tsray status`), e.g. `redis://127.0.0.1:6379` or `file:/…/gcs-store.jsonl`. */
  readonly description: string;
  /** Every stored row of every table. */
  load(): Promise<GcsTables>;
  /** Store `value` under `key` of `table` (replacing what was there). */
  put(table: GcsTable, key: string, value: string): Promise<void>;
  /** Remove `key` from `table` (nothing when absent). */
  del(table: GcsTable, key: string): Promise<void>;
  /** Flush and release the store (the rows stay). */
  close(): Promise<void>;
}

/** The store could not be opened, read or written (its address, and why). */
export class GcsStorageError extends ClusterError {}

/** Empty tables. */
export function emptyTables(): GcsTables {
  return Object.fromEntries(GCS_TABLES.map((t) => [t, new Map<string, string>()])) as GcsTables;
}

/** True for a known table name (rows of unknown tables, e.g. from a newer version, are skipped). */
export function isGcsTable(t: unknown): t is GcsTable {
  return typeof t === 'string' && (GCS_TABLES as readonly string[]).includes(t);
}

/**
 * Open the store `spec` names: `redis://[:password@]host:port[/db]` (also `rediss://`), or a path /
 * `file:` path of the append-only log. @throws GcsStorageError for another scheme or a store that
 * cannot be opened.
 */
export async function openGcsStorage(spec: string): Promise<GcsStorage> {
  if (/^rediss?:\/\//.test(spec)) {
    const { RedisGcsStorage } = await import('./gcs-redis-storage.js');
    return RedisGcsStorage.open(spec);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec) && !spec.startsWith('file://')) {
    throw new GcsStorageError(`--storage: "${spec}" is not a store tsray knows; use redis://host:port, or a file path for the on-disk store`);
  }
  const { FileGcsStorage } = await import('./gcs-file-storage.js');
  return FileGcsStorage.open(spec.replace(/^file:\/\//, ''));
}
