/**
 * Errors stored as objects (`ENCODING_ERROR`): what a failed task's return refs hold.
 * @internal
 */
import * as v8 from 'node:v8';
import { RuntimeEnvSetupError } from '@tsray/runtime-env';
import { xlangDecode, xlangEncode } from './xlang.js';
import {
  ActorDiedError,
  type ActorDeathInfo,
  ObjectLostError,
  ObjectStoreFullError,
  TaskCancelledError,
  TaskError,
  TsrayError,
  WorkerCrashedError,
  type RemoteErrorInfo,
} from './errors.js';

/** The structured content of an error object. */
export type ErrorPayload =
  | { type: 'TaskError'; info: RemoteErrorInfo }
  | { type: 'WorkerCrashedError'; taskName: string; detail: string; attempts: number }
  | { type: 'TaskCancelledError'; taskName: string; forced: boolean }
  | { type: 'ObjectStoreFullError'; requested: number; capacity: number; used: number }
  | { type: 'ObjectLostError'; objectId: string; reason: string }
  | { type: 'ActorDiedError'; info: ActorDeathInfo }
  | { type: 'RuntimeEnvSetupError'; name: 'RuntimeEnvSetupError'; field: string; message: string; output: string; logFile?: string }
  | { type: 'Other'; name: string; message: string };

/** Encode an error payload (V8 bytes, or msgpack for callers in other languages). */
export function encodeErrorPayload(p: ErrorPayload, xlang = false): Buffer {
  return xlang ? xlangEncode(JSON.parse(JSON.stringify(p))) : v8.serialize(p);
}

/** The Error instance a `get` rejects with (`rawKind` 'msgpack': from a Python process). */
export function errorFromPayload(bytes: Uint8Array, rawKind = ''): Error {
  const p = (rawKind === 'msgpack' ? xlangDecode(bytes) : v8.deserialize(bytes)) as ErrorPayload;
  switch (p.type) {
    case 'TaskError':
      return new TaskError(p.info);
    case 'WorkerCrashedError':
      return new WorkerCrashedError(p.taskName, p.detail, p.attempts);
    case 'TaskCancelledError':
      return new TaskCancelledError(p.taskName, p.forced);
    case 'ObjectStoreFullError':
      return new ObjectStoreFullError(p.requested, p.capacity, p.used);
    case 'ActorDiedError':
      return new ActorDiedError(p.info);
    case 'ObjectLostError':
      return new ObjectLostError(p.objectId, p.reason);
    case 'RuntimeEnvSetupError':
      return new RuntimeEnvSetupError({ field: p.field, message: p.message, output: p.output, ...(p.logFile ? { logFile: p.logFile } : {}) });
    default: {
      const e = new TsrayError(p.message);
      e.name = p.name;
      return e;
    }
  }
}

/** Describe a thrown value for the wire (a task error). */
export function remoteErrorInfo(e: unknown, taskName: string): RemoteErrorInfo {
  if (e instanceof TaskError) {
    return { name: e.name, message: e.message, stack: e.stack ?? '', taskName, pid: process.pid, upstream: e.info.upstream ?? e.info };
  }
  if (e instanceof Error) {
    const info: RemoteErrorInfo = { name: e.name, message: e.message, stack: e.stack ?? `${e.name}: ${e.message}`, taskName, pid: process.pid };
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') info.code = code;
    const props: Record<string, unknown> = {};
    let any = false;
    for (const k of Object.keys(e)) {
      if (k === 'code') continue;
      try {
        v8.serialize((e as unknown as Record<string, unknown>)[k]);
        props[k] = (e as unknown as Record<string, unknown>)[k];
        any = true;
      } catch {
        /* not cloneable: skip */
      }
    }
    if (any) info.props = props;
    return info;
  }
  return { name: 'NonErrorThrown', message: `task threw a non-Error value: ${String(e)}`, stack: '', taskName, pid: process.pid };
}
