/**
 * Where `tsray up` keeps what it started, for `tsray down|attach|exec|submit` and the head's
 * autoscaler: `$TMPDIR/tsray/clusters/<cluster_name>/` holds `head.json` (the head's addresses and,
 * for the local provider, its pid and session) and the local provider's `nodes.json`.
 * @module
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureRuntimeDir } from '@tsray/core/internal';

/** What `tsray up` recorded of the head. */
export interface HeadRecord {
  /** `host:port` of the GCS. */
  gcsAddress: string;
  dashboardUrl: string;
  /** The head's host (`localhost` for the local provider). */
  host: string;
  /** Local provider: the head daemon's pid and session directory. */
  pid?: number;
  sessionDir?: string;
  /** ssh provider: the head daemon's pid on its host. */
  remotePid?: number;
  startedAt: number;
}

/** The state directory of cluster `name` (in this user's private runtime directory, as sessions are). */
export function clusterStateDir(name: string): string {
  return join(ensureRuntimeDir(), 'clusters', name);
}

/** The head record of cluster `name`, if `tsray up` wrote one. */
export function readHeadRecord(name: string): HeadRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(clusterStateDir(name), 'head.json'), 'utf8')) as HeadRecord;
  } catch {
    return undefined;
  }
}

/** Record the head of cluster `name`. */
export function writeHeadRecord(name: string, r: HeadRecord): void {
  const dir = clusterStateDir(name);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `head.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(r, null, 2));
  renameSync(tmp, join(dir, 'head.json'));
}

/** Forget cluster `name` (after `tsray down`). */
export function removeClusterState(name: string): void {
  rmSync(clusterStateDir(name), { recursive: true, force: true });
}
