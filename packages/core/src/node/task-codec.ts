/**
 * Task specs, actor creations and scheduling strategies to and from their protocol form (one codec
 * for the node and the worker runtime).
 * @internal
 */
import { tsray } from '@tsray/protocol';
import { type LabelSelector, type NormalizedStrategy, normalizeStrategy } from '@tsray/scheduler';
import type { ActorCreation, SubmitArg, SubmitSpec } from '../runtime.js';
import type { ResolvedScheduling } from '../scheduling-strategy.js';
import { encodingToWire, FrameBuilder, storedFromWire } from '../wire.js';

/** Protocol form of an actor creation. */
export function creationToWire(c: ActorCreation): tsray.v1.IActorCreationSpec {
  return {
    actorId: c.actorId,
    className: c.className,
    methods: c.methods,
    name: c.name,
    namespace: c.namespace,
    detached: c.detached,
    getIfExists: c.getIfExists,
    maxRestarts: c.maxRestarts,
    maxTaskRetries: c.maxTaskRetries,
    maxConcurrency: c.maxConcurrency,
    concurrencyGroups: c.concurrencyGroups,
    holdResources: [...c.hold].map(([name, units]) => ({ name, units })),
    isAsync: c.isAsync,
    ...(c.stateInfo ? { stateInfoJson: JSON.stringify(c.stateInfo) } : {}),
  };
}

/** Actor creation from its protocol form. */
export function creationFromWire(c: tsray.v1.IActorCreationSpec): ActorCreation {
  const hold = new Map<string, number>();
  for (const r of c.holdResources ?? []) hold.set(r.name ?? '', Number(r.units ?? 0));
  return {
    actorId: c.actorId ?? '',
    className: c.className ?? '',
    methods: c.methods ?? [],
    name: c.name ?? '',
    namespace: c.namespace ?? '',
    detached: c.detached === true,
    getIfExists: c.getIfExists === true,
    maxRestarts: c.maxRestarts ?? 0,
    maxTaskRetries: c.maxTaskRetries ?? 0,
    maxConcurrency: c.maxConcurrency ?? 1,
    concurrencyGroups: (c.concurrencyGroups ?? []).map((g) => ({ name: g.name ?? '', maxConcurrency: g.maxConcurrency ?? 1, methods: g.methods ?? [] })),
    hold,
    isAsync: c.isAsync === true,
    ...(c.stateInfoJson ? { stateInfo: stateInfoOf(c.stateInfoJson) } : {}),
  };
}

/** The creator's state-API fields of an actor (a JSON object; anything else from the wire is dropped). */
function stateInfoOf(json: string): Record<string, string | number | boolean> | undefined {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, string | number | boolean>) : undefined;
  } catch {
    return undefined;
  }
}

/** Who sends a task spec: its job, and what the wire form needs besides the spec. */
export interface SpecSender {
  jobId: string;
  /** Namespace of an actor creation that names none (the submitter's). */
  namespace?: string;
  /** The task submitting it (nested tasks). */
  parentTaskId?: string;
  /**
   * Copy value arguments into the frames (a worker batches submissions until the end of the event
   * loop turn, and the caller's buffers may be reused by then); else the frames are views.
   */
  copyArgs?: boolean;
}

/** Protocol form of a task spec (a worker submitting, a node forwarding to another node). */
export function specToWire(spec: SubmitSpec, fb: FrameBuilder, from: SpecSender): tsray.v1.ITaskSpec {
  const re = spec.retryExceptions;
  const namespace = from.namespace ?? '';
  return {
    taskId: spec.taskId,
    function: { moduleUrl: spec.fn.moduleUrl, key: spec.fn.key, name: spec.fn.name, codeRoot: spec.fn.codeRoot ?? '' },
    args: spec.args.map((a) =>
      a.kind === 'ref'
        ? { ref: a.id }
        : {
            value: {
              encoding: encodingToWire(a.value.encoding),
              rawKind: a.value.rawKind,
              containedRefs: a.value.containedRefs,
              size: a.value.bytes.byteLength,
              inline: fb.add(
                from.copyArgs ? Buffer.from(a.value.bytes) : Buffer.from(a.value.bytes.buffer, a.value.bytes.byteOffset, a.value.bytes.byteLength),
              ),
            },
          },
    ),
    resources: [...spec.resources].map(([name, units]) => ({ name, units })),
    numReturns: spec.numReturns,
    streaming: spec.streaming,
    maxRetries: spec.maxRetries,
    retryExceptions: re === true,
    retryExceptionNames: Array.isArray(re) ? re : [],
    returnIds: spec.returnIds,
    name: spec.name,
    jobId: from.jobId,
    ...(from.parentTaskId ? { parentTaskId: from.parentTaskId } : {}),
    ...(spec.actorCreation ? { actorCreation: creationToWire({ ...spec.actorCreation, namespace: spec.actorCreation.namespace || namespace }) } : {}),
    ...(spec.actorId ? { actorId: spec.actorId, method: spec.method ?? '', concurrencyGroup: spec.concurrencyGroup ?? '' } : {}),
    ...(spec.scheduling ? { scheduling: schedulingToWire(spec.scheduling) } : {}),
    ...(spec.xlang ? { xlang: true } : {}),
    ...(spec.runtimeEnv ? { runtimeEnvJson: spec.runtimeEnv } : {}),
    ...(spec.callerSeq ? { callerSeq: spec.callerSeq } : {}),
  };
}

export function specFromWire(s: tsray.v1.ITaskSpec, payloads: Buffer[]): SubmitSpec {
  const resources = new Map<string, number>();
  for (const r of s.resources ?? []) resources.set(r.name ?? '', Number(r.units ?? 0));
  const scheduling = s.scheduling?.kind ? schedulingFromWire(s.scheduling) : undefined;
  const args: SubmitArg[] = (s.args ?? []).map((a) => {
    if (a.ref) return { kind: 'ref', id: a.ref };
    const d = storedFromWire(a.value!, payloads);
    return {
      kind: 'value',
      value: { encoding: d.encoding, rawKind: d.rawKind, bytes: d.inline ?? Buffer.alloc(0), containedRefs: d.contained },
    };
  });
  return {
    taskId: s.taskId ?? '',
    fn: {
      moduleUrl: s.function?.moduleUrl ?? '',
      key: s.function?.key ?? '',
      name: s.function?.name ?? '',
      ...(s.function?.codeRoot ? { codeRoot: s.function.codeRoot } : {}),
    },
    args,
    resources,
    numReturns: s.numReturns ?? 1,
    streaming: s.streaming === true,
    maxRetries: s.maxRetries ?? 3,
    retryExceptions: s.retryExceptions ? true : (s.retryExceptionNames ?? []).length > 0 ? [...s.retryExceptionNames!] : false,
    returnIds: s.returnIds ?? [],
    name: s.name ?? '',
    ...(s.actorCreation ? { actorCreation: creationFromWire(s.actorCreation) } : {}),
    ...(s.actorId ? { actorId: s.actorId, method: s.method ?? '', concurrencyGroup: s.concurrencyGroup ?? '' } : {}),
    ...(scheduling ? { scheduling } : {}),
    ...(s.xlang ? { xlang: true } : {}),
    ...(s.runtimeEnvJson ? { runtimeEnv: s.runtimeEnvJson } : {}),
    ...(s.callerSeq ? { callerSeq: s.callerSeq } : {}),
    ...(s.jobId ? { jobId: s.jobId } : {}),
  };
}

/** Protocol form of a scheduling strategy. */
export function schedulingToWire(sc: ResolvedScheduling): tsray.v1.ISchedulingStrategy {
  switch (sc.type) {
    case 'SPREAD':
      return { kind: 'SPREAD' };
    case 'PLACEMENT_GROUP':
      return { kind: sc.type, placementGroupId: sc.placementGroupId, bundleIndex: sc.bundleIndex ?? -1, captureChildTasks: sc.captureChildTasks === true };
    case 'NODE_AFFINITY':
      return {
        kind: sc.type,
        nodeId: sc.nodeId,
        soft: sc.soft === true,
        spillOnUnavailable: sc.spillOnUnavailable === true,
        failOnUnavailable: sc.failOnUnavailable === true,
      };
    case 'NODE_LABEL':
      return { kind: sc.type, hardLabels: selectorToWire(sc.hard), softLabels: selectorToWire(sc.soft) };
  }
}

function selectorToWire(sel: LabelSelector | undefined): tsray.v1.ILabelConstraint[] {
  return (sel ?? []).map((c) => ({ key: c.key, op: c.op, values: [...(c.values ?? [])] }));
}

function selectorFromWire(sel: tsray.v1.ILabelConstraint[] | null | undefined): LabelSelector {
  return (sel ?? []).map((c) => ({ key: c.key ?? '', op: (c.op ?? '') as LabelSelector[number]['op'], ...(c.values?.length ? { values: c.values } : {}) }));
}

/**
 * Scheduling strategy from its protocol form, validated as the user API validates it (a peer or a
 * Python client may send anything).
 * @throws UnknownStrategyError or ResourceValidationError (from `@tsray/scheduler`) on a malformed strategy.
 */
export function schedulingFromWire(w: tsray.v1.ISchedulingStrategy): ResolvedScheduling | undefined {
  let s: unknown;
  switch (w.kind) {
    case 'PLACEMENT_GROUP':
      s = { type: w.kind, placementGroupId: w.placementGroupId ?? '', bundleIndex: w.bundleIndex ?? -1, captureChildTasks: w.captureChildTasks === true };
      break;
    case 'NODE_AFFINITY':
      s = {
        type: w.kind,
        nodeId: w.nodeId ?? '',
        soft: w.soft === true,
        spillOnUnavailable: w.spillOnUnavailable === true,
        failOnUnavailable: w.failOnUnavailable === true,
      };
      break;
    case 'NODE_LABEL':
      s = { type: w.kind, hard: selectorFromWire(w.hardLabels), soft: selectorFromWire(w.softLabels) };
      break;
    default:
      s = w.kind || 'DEFAULT';
  }
  const n: NormalizedStrategy = normalizeStrategy(s as NormalizedStrategy);
  return n.type === 'DEFAULT' ? undefined : n;
}
