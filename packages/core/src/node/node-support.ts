/**
 * Small helpers shared by the node's components: error objects, language and id tests, the transfer
 * chunk check.
 * @internal
 */
import { config } from '../config.js';
import { crc32 } from 'node:zlib';
import { encodeErrorPayload, type ErrorPayload } from '../error-payload.js';
import { ObjectStoreFullError, type ActorDeathInfo } from '../errors.js';
import { type StoredObject, storedObject } from './object-table.js';
import type { WorkerHandle } from './records.js';

/** Encoding of a stored error object. */
export const ENC_ERROR = 'error';

export function storeErrorPayload(err: unknown): ErrorPayload {
  if (err instanceof ObjectStoreFullError) return { type: 'ObjectStoreFullError', requested: err.requested, capacity: err.capacity, used: err.used };
  return { type: 'Other', name: (err as Error).name ?? 'Error', message: String((err as Error).message ?? err) };
}

/** Python functions and classes are named `py:<module>`. */
export function isPython(moduleUrl: string): boolean {
  return moduleUrl.startsWith('py:');
}

export function unknownActor(actorId: string, className: string): ActorDeathInfo {
  return { actorId, className, reason: 'unknown_actor', detail: 'no such actor on this node (it never existed here, or its record is gone)' };
}

/**
 * The check value of a transferred chunk: crc32 of its first, middle and last 16 KiB (all of it when
 * smaller, or always with TSRAY_TRANSFER_CHECKSUM=full). TCP already checksums every segment; this
 * catches chunks written at the wrong place, cut short or mixed up, at a cost that does not grow with
 * the chunk.
 */
export function chunkCheck(b: Buffer): number {
  const w = 16 * 1024;
  if (FULL_CHECKSUM || b.byteLength <= 3 * w) return crc32(b) >>> 0;
  const mid = (b.byteLength >> 1) - (w >> 1);
  let c = crc32(b.subarray(0, w));
  c = crc32(b.subarray(mid, mid + w), c);
  c = crc32(b.subarray(b.byteLength - w), c);
  return c >>> 0;
}
const FULL_CHECKSUM = config().transferChecksum === 'full';

export function errorObject(p: ErrorPayload): StoredObject {
  const inline = encodeErrorPayload(p);
  return storedObject('error', '', inline.length, [], inline, undefined, undefined);
}

export function cloneStored(d: StoredObject): StoredObject {
  return storedObject(d.encoding, d.rawKind, d.size, [...d.contained], d.inline, d.shm, d.spillPath);
}

/** Task id of a return / generator object id (`<taskId>.<n>` or `<taskId>.g<n>`). */
export function taskIdOf(objectId: string): string | undefined {
  const i = objectId.lastIndexOf('.');
  return i > 0 ? objectId.slice(0, i) : undefined;
}

/** True while process `pid` exists (signal 0 probes without signalling). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `; its stderr is in <full path>`: the worker's log file, kept after shutdown(), for crash errors. */
export function stderrHint(w: WorkerHandle): string {
  const file = w.proc?.stderrLog;
  return file ? `; its stderr is in ${file}` : '';
}

/** A crashed task's WorkerCrashedError detail: `pid N, <how it died>; its stderr is in <full path>`. */
export function crashDetail(w: WorkerHandle, detail: string): string {
  return `pid ${w.proc?.pid}, ${detail}${stderrHint(w)}`;
}

/**
 * The id of an actor's creation task for restart `n` (1, 2, ...). The `@` keeps it out of the ids
 * `newId` makes (`<kind><prefix><base36 counter>`) and Python drivers make (`py<hex><kind><hex>`): a
 * restart id built from letters and digits only (`<creation id>r0` before) could equal the id of a
 * later call of the same driver, and the two tasks (and their `.0` return objects) then overwrote each
 * other in a node's task table: a call got the constructor's result, or a restart's result was
 * dropped and the actor, with all its later calls, waited forever.
 */
export function restartTaskId(creationTaskId: string, n: number): string {
  return `${creationTaskId}@r${n}`;
}

/** The error of a call that was running when its actor's process died, while the actor restarts. */
export function restartingError(info: ActorDeathInfo): StoredObject {
  return errorObject({ type: 'ActorDiedError', info: { ...info, reason: 'restarting' } });
}
