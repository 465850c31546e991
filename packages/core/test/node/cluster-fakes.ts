/**
 * Fakes for the unit tests of ObjectTransfer and ClusterForwarder: an in-memory store with a small
 * arena, a peer that records what it is sent, and task records.
 */
import type { EnvelopeBody, tsray } from '@tsray/protocol';
import { ResourceRequest } from '@tsray/scheduler';
import type { PeerConnection } from '../../src/cluster/link.js';
import { PeerBatch } from '../../src/cluster/peer-batch.js';
import type { FrameBuilder } from '../../src/wire.js';
import type { StoredObject } from '../../src/node/object-table.js';
import type { TaskRecord } from '../../src/node/records.js';
import type { TransferStore } from '../../src/node/object-transfer.js';
import type { SubmitSpec } from '../../src/runtime.js';
import type { SerializedValue } from '../../src/serialization.js';

/** A store whose arena is one heap buffer with a bump allocator; it records what it frees. */
export class FakeStore implements TransferStore {
  readonly bytesOf: Buffer;
  private next = 0;
  readonly released: StoredObject[] = [];
  readonly arena: TransferStore['arena'] & { prefault(offset: number, length: number): Promise<void> };

  constructor(capacity: number) {
    const mem = (this.bytesOf = Buffer.alloc(capacity));
    this.arena = {
      view: (offset: number, length: number) => mem.subarray(offset, offset + length),
      write: (offset: number, bytes: Uint8Array) => {
        mem.set(bytes, offset);
        return 1;
      },
      // Heap memory is faulted in already.
      prefault: async () => undefined,
    } as FakeStore['arena'];
  }

  allocate(size: number): number {
    if (this.next + size > this.bytesOf.byteLength) throw new Error(`fake arena full (${size} bytes asked)`);
    const off = this.next;
    this.next += size;
    return off;
  }

  release(data: StoredObject): void {
    this.released.push(data);
    data.shm = undefined;
  }

  store(sv: SerializedValue): StoredObject {
    const off = this.allocate(sv.bytes.byteLength);
    this.arena.write(off, sv.bytes);
    return {
      encoding: sv.encoding,
      rawKind: sv.rawKind,
      size: sv.bytes.byteLength,
      contained: sv.containedRefs,
      shm: { offset: off, length: sv.bytes.byteLength },
    };
  }

  bytes(data: StoredObject): Buffer {
    if (data.inline) return data.inline;
    if (data.shm) return this.arena.view(data.shm.offset, data.shm.length);
    throw new Error('fake store: no spill files');
  }

  /** Put bytes in the arena as a sealed-object record. */
  put(bytes: Buffer, contained: string[] = []): StoredObject {
    return this.store({ encoding: 'raw', rawKind: 'Buffer', bytes, containedRefs: contained });
  }
}

/** One message as a peer received it. */
export interface SentMessage {
  kind: string;
  /** The message's body (every field optional, so a test can read the one it expects). */
  body: tsray.v1.Envelope.$Properties;
  frames: Uint8Array[];
}

/** The kind of an envelope body (its one field). */
export function kindOf(body: EnvelopeBody): string {
  return Object.keys(body)[0]!;
}

/** A peer connection that records every message (decoded again, as the peer would read it). */
export function recordingPeer(log: SentMessage[] = []): { peer: PeerConnection; log: SentMessage[] } {
  const record = (body: EnvelopeBody, frames?: Uint8Array[]) =>
    log.push({ kind: kindOf(body), body: body as tsray.v1.Envelope.$Properties, frames: frames ?? [] });
  // Batched sends are recorded as the real PeerConnection sends them, one batch per call here.
  const batch = new PeerBatch();
  const flush = () => {
    for (const [body, frames] of batch.take()) record(body, frames);
  };
  const peer = {
    send: record,
    forward(returnIds: readonly string[], encode: (fb: FrameBuilder) => tsray.v1.ITaskSpec) {
      batch.forward(returnIds, encode);
      flush();
    },
    release(ids: readonly string[]) {
      batch.release(ids);
      flush();
    },
  } as unknown as PeerConnection;
  return { peer, log };
}

/** A pending task record (no worker), `returns` return ids. */
export function taskRecord(taskId: string, over: Partial<SubmitSpec> = {}, retries = 0): TaskRecord {
  const spec: SubmitSpec = {
    taskId,
    fn: { moduleUrl: 'file:///fake.js', key: 'f', name: 'f' },
    args: [],
    resources: new Map([['CPU', 10_000]]),
    numReturns: 1,
    streaming: false,
    maxRetries: retries,
    retryExceptions: false,
    returnIds: [`${taskId}.0`],
    name: `task-${taskId}`,
    ...over,
  };
  return {
    spec,
    request: ResourceRequest.fromUnits(spec.resources),
    owner: undefined,
    state: 'queued',
    depsLeft: 0,
    holds: [],
    attempt: 0,
    retriesLeft: retries,
    worker: undefined,
    cancelled: undefined,
    items: [],
    startedAt: 0,
    ranOn: undefined,
    namespace: 'ns',
    jobId: 'job1',
    actor: undefined,
    pool: undefined,
    remote: undefined,
    remoteLeft: 0,
  };
}
