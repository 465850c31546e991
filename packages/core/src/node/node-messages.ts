/**
 * What the node does with each message from a registered connection (worker, client driver, peer
 * node): a typed table from message kind to handler, instead of one switch. Registration and the
 * token check come before (NodeRuntime.handle); the handlers reach the node's components through
 * {@link NodeMessageHost}.
 * @internal
 */
import type { BodyKind, DecodedMessage, EnvelopeBody, tsray } from '@tsray/protocol';
import { ObjectStoreFullError } from '../errors.js';
import { logger } from '../logger.js';
import type { ActorInfoData, SubmitSpec } from '../runtime.js';
import { encodingToWire, FrameBuilder, storedFromWire } from '../wire.js';
import { staysAtHolder } from './object-directory.js';
import { errorObject } from './node-support.js';
import { answerGcsRequest, boundedName, callKindOf, notServedHere } from '../cluster/control-plane.js';
import type { ObjectEntry, ObjectTable, StoredObject } from './object-table.js';
import type { TaskRecord, WorkerHandle } from './records.js';
import { INLINE_THRESHOLD, type NodeStore } from './store.js';
import { specFromWire } from './task-codec.js';

/** What the message handlers need from the node. */
export interface NodeMessageHost {
  readonly nodeId: string;
  readonly jobId: string;
  readonly namespace: string;
  readonly objects: ObjectTable;
  readonly store: NodeStore;
  send(w: WorkerHandle, body: EnvelopeBody, fb?: FrameBuilder): void;
  /** A connection's task by id (generator items arrive for it). */
  taskById(taskId: string): TaskRecord | undefined;
  /** Deliver `e` to `w` at the next flush (objects it subscribed to, a new registration's state). */
  markForFlush(w: WorkerHandle, ready?: ObjectEntry): void;
  submitFrom(spec: SubmitSpec, owner: WorkerHandle): void;
  onResult(w: WorkerHandle, r: tsray.v1.ITaskResult, payloads: Buffer[]): void;
  scheduleDispatch(): void;
  onBlocked(w: WorkerHandle, b: tsray.v1.IWorkerBlocked): void;
  /** A chunk of an object arriving from a peer or remote driver; the object once complete. */
  onChunk(from: string, c: tsray.v1.IObjectChunk, payload: Buffer): StoredObject | undefined;
  /** Move an inline object into the arena (a remote client's large put). */
  toArena(d: StoredObject): StoredObject;
  /** An object from peer node `nodeId` holds refs `contained`: fetch from there those this node lacks (object-locations.ts). */
  nestedFromPeer(nodeId: string, contained: readonly string[]): void;
  namespaceOf(w: WorkerHandle): string;
  getActor(name: string, namespace: string | undefined): Promise<ActorInfoData>;
  killActor(actorId: string, noRestart: boolean): void;
  createPlacementGroup(id: string, bundles: Record<string, number>[], strategy: string, name: string, detached: boolean, noWait: boolean, jobId: string): void;
  removePlacementGroup(id: string): void;
  stateCall(method: string): Promise<unknown>;
  cancel(objectId: string, force: boolean): void;
  clientGone(w: WorkerHandle, why: string): void;
  /** A peer node says where objects are (ObjectLocations) or pulls a range of one held here (PullObject). */
  onObjectMessage(w: WorkerHandle, m: tsray.v1.Envelope): void;
}

/** This node as the holder of `id`, for an ObjectLocations message. */
function locationHere(nodeId: string, id: string, d: StoredObject): tsray.v1.IObjectLocation {
  return { header: { objectId: id, encoding: encodingToWire(d.encoding), rawKind: d.rawKind, containedRefs: d.contained, size: d.size }, nodeIds: [nodeId] };
}

/** A handler of one message kind. */
export type NodeMessageHandler = (n: NodeMessageHost, w: WorkerHandle, m: DecodedMessage) => void;

/**
 * False (and one warning per connection) when a connection from another machine names storage of
 * this node instead of carrying the bytes: an arena slice or a spill file. Only inline data (and
 * ObjectChunk reassembly) comes over tcp; a slice or path a remote peer names could be one this node
 * later frees or deletes for someone else.
 */
function inlineFromRemote(w: WorkerHandle, od: tsray.v1.IObjectData): boolean {
  if ((!w.remote && w.kind !== 'peer') || od.inline) return true;
  if (!refusedStorage.has(w)) {
    refusedStorage.add(w);
    logger().warn({ peer: w.id, object: od.objectId }, 'a remote connection named an arena slice or spill file instead of sending the bytes; dropped');
  }
  return false;
}
const refusedStorage = new WeakSet<WorkerHandle>();

/** Handlers by message kind; a kind not here is logged and ignored. */
export const NODE_MESSAGE_HANDLERS: Partial<Record<BodyKind, NodeMessageHandler>> = {
  registerWorker: (n, w, m) => {
    w.state = 'ready';
    w.language = m.envelope.registerWorker!.language ?? '';
    n.send(w, {
      workerAccepted: {
        nodeId: n.nodeId,
        shmPath: w.kind === 'driver' && !w.remote ? `/proc/${process.pid}/fd/${n.store.arenaFd}` : '',
        shmSize: n.store.capacity,
        inlineThreshold: 100 * 1024,
        jobId: w.jobId || n.jobId,
        namespace: w.kind !== 'worker' ? w.namespace : n.namespace,
      },
    });
    n.markForFlush(w);
  },
  taskResults: (n, w, { envelope, payloads }) => {
    for (const r of envelope.taskResults!.results ?? []) if ((r.returns ?? []).every((od) => inlineFromRemote(w, od))) n.onResult(w, r, payloads);
    n.scheduleDispatch();
  },
  generatorItems: (n, w, { envelope, payloads }) => {
    for (const it of envelope.generatorItems!.items ?? []) {
      if (!inlineFromRemote(w, it.item!)) continue;
      const t = n.taskById(it.taskId ?? '');
      const data = storedFromWire(it.item!, payloads);
      if (data.shm) w.allocs.delete(data.shm.offset);
      if (!t || t.state !== 'dispatched' || t.worker !== w) {
        n.store.release(data);
        continue;
      }
      const id = it.item!.objectId!;
      n.objects.incRef(id);
      t.items.push(id);
      n.objects.seal(id, data);
    }
  },
  submitTasks: (n, w, { envelope, payloads }) => {
    for (const s of envelope.submitTasks!.tasks ?? []) {
      let spec: SubmitSpec;
      try {
        spec = specFromWire(s, payloads);
      } catch (e) {
        // A malformed spec (e.g. a bad scheduling strategy from a client in another language): its
        // returns carry the error and the rest of the batch goes on.
        const message = `task ${s.name || s.taskId}: ${(e as Error).message}`;
        logger().warn({ client: w.id, task: s.taskId }, message);
        for (const id of s.returnIds ?? []) n.objects.seal(id, errorObject({ type: 'Other', name: 'ValidationError', message }));
        continue;
      }
      // A task a peer node forwarded: refs nested in its value arguments are fetched from that peer
      // when this node has no copy (as for objects it pushes, below).
      if (w.peerNodeId) {
        for (const a of spec.args) if (a.kind === 'value' && a.value.containedRefs.length > 0) n.nestedFromPeer(w.peerNodeId, a.value.containedRefs);
      }
      n.submitFrom(spec, w);
    }
  },
  putObjects: (n, w, { envelope, payloads }) => {
    for (const od of envelope.putObjects!.objects ?? []) {
      if (!inlineFromRemote(w, od)) continue;
      let data = storedFromWire(od, payloads);
      if (data.shm) w.allocs.delete(data.shm.offset);
      if (w.remote && data.inline && data.inline.byteLength > INLINE_THRESHOLD) data = n.toArena(data);
      n.objects.seal(od.objectId!, data);
      if (w.peerNodeId && data.contained.length > 0) n.nestedFromPeer(w.peerNodeId, data.contained);
    }
  },
  objectChunk: (n, w, { envelope, payloads }) => {
    const d = n.onChunk(w.id, envelope.objectChunk!, payloads[0] ?? Buffer.alloc(0));
    if (!d) return;
    n.objects.seal(envelope.objectChunk!.objectId ?? '', d);
    if (w.peerNodeId && d.contained.length > 0) n.nestedFromPeer(w.peerNodeId, d.contained);
  },
  subscribeObjects: (n, w, { envelope }) => {
    // An owner node's subscription to its forwarded task's returns: large ones stay here (it learns where).
    const only = envelope.subscribeObjects!.locationsOnly === true && w.peerNodeId !== '';
    for (const id of envelope.subscribeObjects!.objectIds ?? []) {
      n.objects.whenReady(id, (e) => {
        if (w.state === 'dead') return;
        if (only && e.data && staysAtHolder(e.data)) n.send(w, { objectLocations: { objects: [locationHere(n.nodeId, e.id, e.data)] } });
        else n.markForFlush(w, e);
      });
    }
  },
  objectLocations: (n, w, { envelope }) => {
    if (w.peerNodeId) n.onObjectMessage(w, envelope);
  },
  pullObject: (n, w, { envelope }) => {
    if (w.peerNodeId) n.onObjectMessage(w, envelope);
  },
  dataPlaneOpen: (n, w, { envelope }) => {
    if (w.peerNodeId) n.onObjectMessage(w, envelope);
  },
  allocRequest: (n, w, { envelope }) => {
    const req = envelope.allocRequest!;
    let reply: tsray.v1.IAllocReply;
    try {
      const off = n.store.allocate(Number(req.size));
      w.allocs.add(off);
      reply = { requestId: req.requestId, slice: { offset: off, length: Number(req.size) } };
    } catch (e) {
      reply = {
        requestId: req.requestId,
        error: e instanceof ObjectStoreFullError ? JSON.stringify({ requested: e.requested, capacity: e.capacity, used: e.used }) : String(e),
      };
    }
    n.send(w, { allocReply: reply });
  },
  refUpdates: (n, w, { envelope }) => refUpdates(n.objects, w, envelope.refUpdates!),
  workerBlocked: (n, w, { envelope }) => n.onBlocked(w, envelope.workerBlocked!),
  getActorRequest: (n, w, { envelope }) => {
    const q = envelope.getActorRequest!;
    n.getActor(q.name ?? '', q.namespace || n.namespaceOf(w)).then(
      (info) =>
        n.send(w, { getActorReply: { requestId: q.requestId, actorId: info.actorId, className: info.className, methods: [...info.methods], error: '' } }),
      (e) => n.send(w, { getActorReply: { requestId: q.requestId, error: (e as Error).message } }),
    );
  },
  killActor: (n, w, { envelope }) => {
    const k = envelope.killActor!;
    let error = '';
    try {
      n.killActor(k.actorId ?? '', k.noRestart !== false);
    } catch (e) {
      error = (e as Error).message;
    }
    if (k.requestId) n.send(w, { getActorReply: { requestId: k.requestId, actorId: k.actorId, error } });
  },
  placementGroupRequest: (n, w, { envelope }) => {
    const q = envelope.placementGroupRequest!;
    let error = '';
    try {
      if (q.remove) n.removePlacementGroup(q.placementGroupId ?? '');
      else {
        const bundles = (q.bundles ?? []).map((b) => Object.fromEntries((b.resources ?? []).map((r) => [r.name ?? '', Number(r.units ?? 0) / 10_000])));
        n.createPlacementGroup(
          q.placementGroupId ?? '',
          bundles,
          q.strategy ?? 'PACK',
          q.name ?? '',
          q.detached === true,
          q.noWait === true,
          w.jobId || n.jobId,
        );
      }
    } catch (e) {
      error = (e as Error).message;
      if (!q.remove) n.objects.seal(`${q.placementGroupId}.ready`, errorObject({ type: 'Other', name: 'PlacementGroupError', message: error }));
    }
    if (q.requestId) n.send(w, { getActorReply: { requestId: q.requestId, error } });
  },
  gcsRequest: (n, w, { envelope }) => {
    // A driver's state API call (`nodes()`, `listActors()`, ...): the only control call a node serves its clients.
    void answerGcsRequest(envelope.gcsRequest!, async (req) => {
      const kind = callKindOf(req);
      if (kind !== 'stateQuery') throw notServedHere(kind, 'a node (to its drivers)');
      return { state: { json: [JSON.stringify((await n.stateCall(boundedName('what', req.stateQuery?.what))) ?? null)] } };
    }).then((gcsResponse) => n.send(w, { gcsResponse }));
  },
  heartbeat: (n, w, { envelope }) => {
    w.lastSeen = Date.now();
    if (envelope.heartbeat!.goodbye) n.clientGone(w, 'said goodbye');
  },
  cancelRequest: (n, _w, { envelope }) => n.cancel(envelope.cancelRequest!.objectId ?? '', envelope.cancelRequest!.force === true),
  error: (_n, w, { envelope }) => logger().error({ worker: w.id, error: envelope.error }, 'worker reported a protocol error'),
};

/** A connection's reference changes: holds, pins of zero-copy views, releases (each counted once per connection). */
function refUpdates(objects: ObjectTable, w: WorkerHandle, u: tsray.v1.IRefUpdates): void {
  for (const id of u.add ?? []) {
    if (!w.heldRefs.has(id)) {
      w.heldRefs.add(id);
      objects.incRef(id);
    }
  }
  for (const id of u.pin ?? []) {
    w.pins.set(id, (w.pins.get(id) ?? 0) + 1);
    objects.pin(id);
  }
  for (const id of u.unpin ?? []) {
    const count = w.pins.get(id) ?? 0;
    if (count <= 0) continue;
    if (count === 1) w.pins.delete(id);
    else w.pins.set(id, count - 1);
    objects.unpin(id);
  }
  for (const id of u.remove ?? []) {
    if (w.heldRefs.delete(id)) objects.decRef(id);
  }
}
