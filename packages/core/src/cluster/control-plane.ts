/**
 * The control plane's shared vocabulary: the actor directory entry and its wire form, actor status
 * names, the typed error of a failed call, the one place a GcsResponse is made from a result or an
 * error, and the validation of the fields a peer sends. Used by the GCS (`@tsray/cluster`), the
 * node's link and handlers, and {@link GcsClient}.
 * @internal
 */
import { hostname } from 'node:os';
import { tsray, type GcsResult } from '@tsray/protocol';
import { TsrayError } from '../errors.js';
import type { ActorListEntry, NodeState } from '../state-api.js';

/** An actor's lifecycle state as the state API and the directory show it. */
export type ActorLifecycle = ActorListEntry['state'];

/** One actor in the GCS directory (what its owner node reported, kept up to date by updates). */
export interface ActorDirectoryEntry {
  actorId: string;
  name: string;
  namespace: string;
  className: string;
  methods: string[];
  /** Where its class is defined (module URL, export key): another node makes a handle from these. */
  module: string;
  key: string;
  /** The node that created it (calls from other nodes go there). */
  ownerNodeId: string;
  /** The node whose worker runs it now. */
  hostNodeId: string;
  state: ActorLifecycle;
  pid: number;
  numRestarts: number;
  detached: boolean;
  deathCause?: string;
  /** The incarnation: the GCS adds 1 each time the actor becomes ALIVE (see tsray.proto ActorEntry). */
  version?: number;
  /** The actor's maxTaskRetries (-1: no limit); callers on other nodes retry their direct calls by it. */
  maxTaskRetries?: number;
}

/** What changed about an actor; fields left out stay as they are. */
export interface ActorUpdateFields {
  state?: ActorLifecycle;
  hostNodeId?: string;
  pid?: number;
  numRestarts?: number;
  deathCause?: string;
}

const S = tsray.v1.ActorStatus;
const TO_WIRE: Record<ActorLifecycle, tsray.v1.ActorStatus> = {
  PENDING: S.ACTOR_STATUS_PENDING,
  STARTING: S.ACTOR_STATUS_STARTING,
  ALIVE: S.ACTOR_STATUS_ALIVE,
  RESTARTING: S.ACTOR_STATUS_RESTARTING,
  DEAD: S.ACTOR_STATUS_DEAD,
};
const FROM_WIRE = new Map<number, ActorLifecycle>(Object.entries(TO_WIRE).map(([k, v]) => [v, k as ActorLifecycle]));

/** Longest id, name, namespace, KV key or state selector accepted from a peer. */
export const MAX_NAME_CHARS = 1024;
/** Longest death cause accepted from a peer (longer ones are cut). */
export const MAX_DEATH_CAUSE_CHARS = 16 * 1024;

/**
 * The GCS's answer to a node's message when it does not know the node's connection but has the node in
 * its reloaded table (the head restarted): the node registers again (the link matches this text).
 */
export const GCS_REREGISTER = 'the GCS restarted and does not know this connection yet: register again';

/** A control call that failed: `code` says how (MALFORMED, UNKNOWN_MESSAGE, AUTH_FAILED, CALL_FAILED). */
export class GcsCallError extends TsrayError {
  override name = 'GcsCallError';
  constructor(
    readonly code: tsray.v1.ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A MALFORMED call error naming the field. */
export function malformed(field: string, why: string): GcsCallError {
  return new GcsCallError(tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, `${field}: ${why}`);
}

/** The wire status of a state. */
export function actorStatusToWire(state: ActorLifecycle): tsray.v1.ActorStatus {
  return TO_WIRE[state];
}

/** The state of a wire status. @throws GcsCallError (MALFORMED) for a status this side does not know. */
export function actorStatusFromWire(status: number | null | undefined, field = 'status'): ActorLifecycle {
  const s = FROM_WIRE.get(Number(status ?? 0));
  if (!s) throw malformed(field, `unknown actor status ${String(status)}`);
  return s;
}

/** A string field a peer must set: non-empty and at most {@link MAX_NAME_CHARS}. */
export function requiredName(field: string, v: string | null | undefined): string {
  if (typeof v !== 'string' || v.length === 0) throw malformed(field, 'must be set');
  return boundedName(field, v);
}

/** A string field a peer may leave empty: at most {@link MAX_NAME_CHARS}. */
export function boundedName(field: string, v: string | null | undefined): string {
  const s = v ?? '';
  if (s.length > MAX_NAME_CHARS) throw malformed(field, `longer than ${MAX_NAME_CHARS} characters`);
  return s;
}

/** A directory entry as it travels. */
export function actorEntryToWire(e: ActorDirectoryEntry): tsray.v1.IActorEntry {
  return {
    actorId: e.actorId,
    name: e.name,
    namespace: e.namespace,
    className: e.className,
    methods: e.methods,
    module: e.module,
    key: e.key,
    ownerNodeId: e.ownerNodeId,
    hostNodeId: e.hostNodeId,
    status: actorStatusToWire(e.state),
    pid: e.pid,
    numRestarts: e.numRestarts,
    detached: e.detached,
    deathCause: e.deathCause ?? '',
    version: e.version ?? 0,
    maxTaskRetries: e.maxTaskRetries ?? 0,
  };
}

/**
 * A directory entry from the wire, checked: the id set, names bounded, a known status (unspecified
 * reads as PENDING). @throws GcsCallError (MALFORMED) naming the bad field.
 */
export function actorEntryFromWire(w: tsray.v1.IActorEntry): ActorDirectoryEntry {
  const methods = w.methods ?? [];
  for (const [i, m] of methods.entries()) boundedName(`methods[${i}]`, m);
  return {
    actorId: requiredName('actorId', w.actorId),
    name: boundedName('name', w.name),
    namespace: boundedName('namespace', w.namespace),
    className: boundedName('className', w.className),
    methods: [...methods],
    module: w.module ?? '',
    key: boundedName('key', w.key),
    ownerNodeId: boundedName('ownerNodeId', w.ownerNodeId),
    hostNodeId: boundedName('hostNodeId', w.hostNodeId),
    state: w.status ? actorStatusFromWire(w.status) : 'PENDING',
    pid: w.pid ?? 0,
    numRestarts: w.numRestarts ?? 0,
    detached: w.detached === true,
    version: w.version ?? 0,
    maxTaskRetries: w.maxTaskRetries ?? 0,
    ...(w.deathCause ? { deathCause: w.deathCause.slice(0, MAX_DEATH_CAUSE_CHARS) } : {}),
  };
}

/** An update as it travels (only the fields set). */
export function actorUpdateToWire(actorId: string, f: ActorUpdateFields): tsray.v1.IActorUpdate {
  return {
    actorId,
    ...(f.state !== undefined ? { status: actorStatusToWire(f.state) } : {}),
    ...(f.hostNodeId !== undefined ? { hostNodeId: f.hostNodeId } : {}),
    ...(f.pid !== undefined ? { pid: f.pid } : {}),
    ...(f.numRestarts !== undefined ? { numRestarts: f.numRestarts } : {}),
    ...(f.deathCause !== undefined ? { deathCause: f.deathCause } : {}),
  };
}

/** The fields an update sets, checked. @throws GcsCallError (MALFORMED) naming the bad field. */
export function actorUpdateFromWire(w: tsray.v1.IActorUpdate): { actorId: string; fields: ActorUpdateFields } {
  const has = (k: keyof tsray.v1.IActorUpdate) => w[k] !== undefined && w[k] !== null;
  const fields: ActorUpdateFields = {};
  if (has('status')) fields.state = actorStatusFromWire(w.status);
  if (has('hostNodeId')) fields.hostNodeId = requiredName('hostNodeId', w.hostNodeId);
  if (has('pid')) fields.pid = Number(w.pid);
  if (has('numRestarts')) fields.numRestarts = Number(w.numRestarts);
  if (has('deathCause')) fields.deathCause = String(w.deathCause).slice(0, MAX_DEATH_CAUSE_CHARS);
  return { actorId: requiredName('actorId', w.actorId), fields };
}

/** Resource amounts (fixed point) to floats. */
export function amountsToRecord(a: tsray.v1.IResourceAmount[] | null | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of a ?? []) out[r.name ?? ''] = Number(r.units ?? 0) / 10_000;
  return out;
}

/** A node as the state API shows it, from its wire form. */
export function nodeStateFromWire(n: tsray.v1.INodeInfo): NodeState {
  return {
    nodeId: n.nodeId ?? '',
    alive: n.alive === true,
    isHead: n.isHead === true,
    address: n.address ?? '',
    hostname: n.hostname || hostname(),
    pid: n.pid ?? 0,
    resourcesTotal: amountsToRecord(n.total),
    resourcesAvailable: n.alive ? amountsToRecord(n.available) : {},
    labels: { ...(n.labels ?? {}) },
    startTime: Number(n.startTimeMs ?? 0),
    ...(n.deathReason ? { deathReason: n.deathReason } : {}),
  };
}

/** The answer to request `requestId`: the result, or the error (typed when it is a {@link GcsCallError}). */
export function gcsResponse(requestId: number | null | undefined, outcome: { result: GcsResult } | { error: unknown }): tsray.v1.IGcsResponse {
  if ('result' in outcome) return { requestId: requestId ?? 0, ...outcome.result };
  const e = outcome.error;
  const code = e instanceof GcsCallError ? e.code : tsray.v1.ErrorCode.ERROR_CODE_CALL_FAILED;
  return { requestId: requestId ?? 0, error: { code, message: e instanceof Error ? e.message : String(e) } };
}

/** Answer `req` with what `serve` returns or throws (sync or async); never throws itself. */
export async function answerGcsRequest(
  req: tsray.v1.IGcsRequest,
  serve: (req: tsray.v1.IGcsRequest) => GcsResult | Promise<GcsResult>,
): Promise<tsray.v1.IGcsResponse> {
  try {
    return gcsResponse(req.requestId, { result: await serve(req) });
  } catch (error) {
    return gcsResponse(req.requestId, { error });
  }
}

/** The call a request carries. @throws GcsCallError (UNKNOWN_MESSAGE) when none is set (a call this side does not know). */
export function callKindOf(req: tsray.v1.IGcsRequest): NonNullable<tsray.v1.GcsRequest['call']> {
  const kind = (req instanceof tsray.v1.GcsRequest ? req : tsray.v1.GcsRequest.create(req)).call;
  if (!kind) throw new GcsCallError(tsray.v1.ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE, 'a GcsRequest without a known call (a newer peer, or a bad message)');
  return kind;
}

/** A call this receiver does not serve. */
export function notServedHere(kind: string, where: string): GcsCallError {
  return new GcsCallError(tsray.v1.ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE, `${where} does not serve the control call ${kind}`);
}
