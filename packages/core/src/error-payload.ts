/**
 * Errors stored as objects (`ENCODING_ERROR`): what a failed task's return refs hold. The bytes are a
 * protobuf `tsray.v1.ErrorInfo`, the same for every language (Python reads and writes it too:
 * python/tsray/errors.py), so an error crosses between TypeScript and Python with its class, message,
 * stack and cause chain.
 * @internal
 */
import { tsray } from '@tsray/protocol';
import { RuntimeEnvSetupError } from '@tsray/runtime-env';
import { xlangDecode, xlangEncode } from './xlang.js';
import {
  ActorDiedError,
  ActorUnavailableError,
  type ActorDeathInfo,
  MAX_CAUSE_DEPTH,
  ObjectLostError,
  ObjectStoreFullError,
  TaskCancelledError,
  TaskError,
  TsrayError,
  WorkerCrashedError,
  type RemoteErrorInfo,
} from './errors.js';

const PB = tsray.v1.ErrorInfo;

/** The structured content of an error object. */
export type ErrorPayload =
  | { type: 'TaskError'; info: RemoteErrorInfo }
  | { type: 'WorkerCrashedError'; taskName: string; detail: string; attempts: number }
  | { type: 'TaskCancelledError'; taskName: string; forced: boolean }
  | { type: 'ObjectStoreFullError'; requested: number; capacity: number; used: number }
  | { type: 'ObjectLostError'; objectId: string; reason: string }
  | { type: 'UnreadableValueError'; objectId: string; reason: string }
  | { type: 'ActorDiedError'; info: ActorDeathInfo }
  | { type: 'RuntimeEnvSetupError'; name: 'RuntimeEnvSetupError'; field: string; message: string; output: string; logFile?: string }
  | { type: 'Other'; name: string; message: string; stack?: string; language?: string };

/** Error-object bytes that are not an ErrorInfo (corrupt, or from an incompatible peer). */
export class ErrorPayloadDecodeError extends TsrayError {
  override name = 'ErrorPayloadDecodeError';
  constructor(detail: string) {
    super(`an error object could not be decoded as tsray.v1.ErrorInfo (${detail}); the task failed, but its error is unreadable`);
  }
}

/** Encode an error payload as `tsray.v1.ErrorInfo` bytes (the one encoding of error objects). */
export function encodeErrorPayload(p: ErrorPayload): Buffer {
  const m = PB.encode(toErrorInfo(p)).finish();
  return Buffer.from(m.buffer, m.byteOffset, m.byteLength);
}

/** Decode error-object bytes (from any language). Throws ErrorPayloadDecodeError on bytes that are not one. */
export function decodeErrorPayload(bytes: Uint8Array): ErrorPayload {
  let m: tsray.v1.ErrorInfo;
  try {
    m = PB.decode(bytes);
  } catch (e) {
    throw new ErrorPayloadDecodeError((e as Error).message);
  }
  return fromErrorInfo(m);
}

/** The Error instance a `get` rejects with, from error-object bytes. */
export function errorFromPayload(bytes: Uint8Array): Error {
  let p: ErrorPayload;
  try {
    p = decodeErrorPayload(bytes);
  } catch (e) {
    return e as Error;
  }
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
      return p.info.reason === 'restarting' ? new ActorUnavailableError(p.info) : new ActorDiedError(p.info);
    case 'ObjectLostError':
      return new ObjectLostError(p.objectId, p.reason);
    case 'RuntimeEnvSetupError':
      return new RuntimeEnvSetupError({ field: p.field, message: p.message, output: p.output, ...(p.logFile ? { logFile: p.logFile } : {}) });
    case 'UnreadableValueError': {
      const e = new TsrayError(`object ${p.objectId} cannot be read: ${p.reason}`);
      e.name = 'UnreadableValueError';
      return e;
    }
    default: {
      const e = new TsrayError(p.message);
      e.name = p.name;
      if (p.stack) e.stack = p.stack;
      return e;
    }
  }
}

/** Describe a thrown value for the wire (a task error), with its cause chain. */
export function remoteErrorInfo(e: unknown, taskName: string): RemoteErrorInfo {
  if (e instanceof TaskError) {
    return { name: e.name, message: e.message, stack: e.stack ?? '', taskName, pid: process.pid, language: 'typescript', upstream: e.info.upstream ?? e.info };
  }
  return describeThrown(e, taskName, 0);
}

function describeThrown(e: unknown, taskName: string, depth: number): RemoteErrorInfo {
  if (!(e instanceof Error)) {
    return { name: 'NonErrorThrown', message: `task threw a non-Error value: ${String(e)}`, stack: '', taskName, pid: process.pid, language: 'typescript' };
  }
  const info: RemoteErrorInfo = {
    name: e.name,
    message: e.message,
    stack: e.stack ?? `${e.name}: ${e.message}`,
    taskName,
    pid: process.pid,
    language: 'typescript',
  };
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') info.code = code;
  const props: Record<string, unknown> = {};
  let any = false;
  for (const k of Object.keys(e)) {
    if (k === 'code' || k === 'cause') continue;
    const v = (e as unknown as Record<string, unknown>)[k];
    try {
      xlangEncode(v); // props travel as cross-language msgpack: keep those that can
      props[k] = v;
      any = true;
    } catch {
      /* cannot cross languages: skip */
    }
  }
  if (any) info.props = props;
  if (e.cause !== undefined && depth < MAX_CAUSE_DEPTH) info.cause = describeThrown(e.cause, taskName, depth + 1);
  return info;
}

function remoteToErrorInfo(r: RemoteErrorInfo, depth = 0): tsray.v1.IErrorInfo {
  const deeper = depth < MAX_CAUSE_DEPTH;
  return {
    type: 'TaskError',
    name: r.name,
    message: r.message,
    stack: r.stack,
    language: r.language ?? 'typescript',
    task: {
      taskName: r.taskName,
      pid: r.pid,
      code: r.code ?? '',
      props: r.props ? xlangEncode(r.props) : new Uint8Array(0),
      ...(r.upstream && deeper ? { upstream: remoteToErrorInfo(r.upstream, depth + 1) } : {}),
    },
    ...(r.cause && deeper ? { cause: remoteToErrorInfo(r.cause, depth + 1) } : {}),
  };
}

function remoteFromErrorInfo(m: tsray.v1.IErrorInfo, depth = 0): RemoteErrorInfo {
  const t = m.task ?? {};
  const deeper = depth < MAX_CAUSE_DEPTH;
  const info: RemoteErrorInfo = { name: m.name ?? 'Error', message: m.message ?? '', stack: m.stack ?? '', taskName: t.taskName || '?', pid: t.pid ?? 0 };
  if (m.language) info.language = m.language;
  if (t.code) info.code = t.code;
  if (t.props && t.props.length > 0) {
    try {
      const props = xlangDecode(t.props);
      if (typeof props === 'object' && props !== null && !Array.isArray(props)) info.props = props as Record<string, unknown>;
    } catch {
      /* unreadable props: the error itself still reads */
    }
  }
  if (t.upstream && deeper) info.upstream = remoteFromErrorInfo(t.upstream, depth + 1);
  if (m.cause && deeper) info.cause = remoteFromErrorInfo(m.cause, depth + 1);
  return info;
}

/** ErrorPayload → its protobuf form. */
function toErrorInfo(p: ErrorPayload): tsray.v1.IErrorInfo {
  const base = { type: p.type, language: 'typescript' };
  switch (p.type) {
    case 'TaskError':
      return remoteToErrorInfo(p.info);
    case 'WorkerCrashedError':
      return { ...base, name: p.type, workerCrash: { taskName: p.taskName, detail: p.detail, attempts: p.attempts } };
    case 'TaskCancelledError':
      return { ...base, name: p.type, cancel: { taskName: p.taskName, forced: p.forced } };
    case 'ObjectStoreFullError':
      return { ...base, name: p.type, storeFull: { requested: p.requested, capacity: p.capacity, used: p.used } };
    case 'ObjectLostError':
    case 'UnreadableValueError':
      return { ...base, name: p.type, objectLost: { objectId: p.objectId, reason: p.reason } };
    case 'ActorDiedError': {
      const { actorId, className, reason, detail, cause } = p.info;
      return { ...base, name: p.type, actorDeath: { actorId, className, reason, detail }, ...(cause ? { cause: remoteToErrorInfo(cause) } : {}) };
    }
    case 'RuntimeEnvSetupError':
      return { ...base, name: p.name, message: p.message, runtimeEnv: { field: p.field, output: p.output, logFile: p.logFile ?? '' } };
    default:
      return { type: 'Other', name: p.name, message: p.message, stack: p.stack ?? '', language: p.language ?? 'typescript' };
  }
}

/** ErrorInfo → ErrorPayload; a type this side does not know reads as 'Other' (name and message kept). */
function fromErrorInfo(m: tsray.v1.ErrorInfo): ErrorPayload {
  switch (m.type) {
    case 'TaskError':
      return { type: 'TaskError', info: remoteFromErrorInfo(m) };
    case 'WorkerCrashedError':
      return { type: m.type, taskName: m.workerCrash?.taskName ?? '?', detail: m.workerCrash?.detail ?? '', attempts: m.workerCrash?.attempts ?? 0 };
    case 'TaskCancelledError':
      return { type: m.type, taskName: m.cancel?.taskName ?? '?', forced: m.cancel?.forced === true };
    case 'ObjectStoreFullError':
      return {
        type: m.type,
        requested: Number(m.storeFull?.requested ?? 0),
        capacity: Number(m.storeFull?.capacity ?? 0),
        used: Number(m.storeFull?.used ?? 0),
      };
    case 'ObjectLostError':
    case 'UnreadableValueError':
      return { type: m.type, objectId: m.objectLost?.objectId ?? '', reason: m.objectLost?.reason ?? '' };
    case 'ActorDiedError': {
      const d = m.actorDeath ?? {};
      const info: ActorDeathInfo = { actorId: d.actorId ?? '', className: d.className ?? '', reason: d.reason ?? '', detail: d.detail ?? '' };
      if (m.cause) info.cause = remoteFromErrorInfo(m.cause);
      return { type: 'ActorDiedError', info };
    }
    case 'RuntimeEnvSetupError': {
      const r = m.runtimeEnv ?? {};
      return {
        type: m.type,
        name: 'RuntimeEnvSetupError',
        field: r.field ?? '',
        message: m.message,
        output: r.output ?? '',
        ...(r.logFile ? { logFile: r.logFile } : {}),
      };
    }
    default:
      return { type: 'Other', name: m.name || m.type || 'Error', message: m.message, stack: m.stack, language: m.language };
  }
}
