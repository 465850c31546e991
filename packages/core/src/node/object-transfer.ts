/**
 * Moving objects between nodes and to remote drivers: small objects inline in message frames, large ones
 * in checked chunks sent from views of the arena, and the reassembly of chunked objects that arrive.
 * @internal
 */
import { config } from '../config.js';
import { pythonView } from '../python-view.js';
import { tsray, type EnvelopeBody } from '@tsray/protocol';
import type { Arena } from '@tsray/object-store';
import { logger } from '../logger.js';
import { encodingFromWire, encodingToWire, FrameBuilder } from '../wire.js';
import type { PeerConnection } from '../cluster/link.js';
import type { ObjectEntry, ObjectTable, StoredObject } from './object-table.js';
import type { NodeStore } from './store.js';
import type { WorkerHandle } from './records.js';
import { chunkCheck, errorObject } from './node-support.js';
import type { DataPlaneServerHost } from './data-plane-server.js';
import { PullServer } from './pull-server.js';

/** Objects above this travel between nodes in checked chunks of this size (`TSRAY_TRANSFER_CHUNK_BYTES`). */
export const CHUNK_BYTES = config().transferChunkBytes;

/** The parts of the node's store a transfer reads, allocates and writes. */
export type TransferStore = Pick<NodeStore, 'bytes' | 'allocate' | 'release' | 'store'> & { readonly arena: Pick<Arena, 'view' | 'write'> };

/** What the object transfer needs from its node. */
export interface ObjectTransferHost {
  /** The node's objects (read, and pinned while a zero-copy view of them is out). */
  readonly objects: Pick<ObjectTable, 'get' | 'pin'>;
  readonly store: TransferStore;
  /** Send a message with raw payload frames to a connection (dropped for a dead one). */
  sendFrames(w: WorkerHandle, body: EnvelopeBody, frames: Buffer[]): void;
  /** Send a message to a connected client or peer (its payload frames built by `fb`). */
  send(w: WorkerHandle, body: EnvelopeBody, fb?: FrameBuilder): void;
  /** A zero-copy view handed out by {@link ObjectTransfer.sendView} was garbage collected. */
  unpinView(id: string): void;
  /** What serving pulls on the data plane needs (data-plane-server.ts). */
  readonly dataPlane: Omit<DataPlaneServerHost, 'serve'>;
}

/** Something objects can be pushed to: a connection to a peer node. */
export type ObjectSink = Pick<PeerConnection, 'send'>;

/** An object arriving in chunks. */
interface IncomingObject {
  data: StoredObject;
  got: number;
  /** The heap buffer it is written to when the arena had no room (else undefined: written in the arena). */
  buf: Buffer | undefined;
  /** The node or client sending it. */
  from: string;
}

/** Copies objects to other nodes and remote drivers and reassembles the chunked ones that arrive. */
export class ObjectTransfer {
  /** Chunked objects being received, by object id. */
  private readonly incoming = new Map<string, IncomingObject>();
  /** Answers pulls of objects this node holds (pull-server.ts). */
  readonly pullServer: PullServer;

  constructor(
    private readonly host: ObjectTransferHost,
    /** Objects above this size go in chunks of this size (tests use small ones). */
    private readonly chunkBytes = CHUNK_BYTES,
  ) {
    this.pullServer = new PullServer({
      objects: host.objects,
      store: host.store,
      transfer: this,
      sendFrames: (w, body, frames) => this.sendFrames(w, body, frames),
      dataPlane: host.dataPlane,
    });
  }

  /** Number of objects partly received (for tests). */
  get incomingCount(): number {
    return this.incoming.size;
  }

  /** Copy objects to a peer (inline up to 8 MiB, checked chunks above). */
  pushObjects(peer: ObjectSink, ids: string[]): void {
    let fb = new FrameBuilder();
    let batch: tsray.v1.IObjectData[] = [];
    for (const id of ids) {
      const d = this.host.objects.get(id)!.data!;
      if (d.size > this.chunkBytes && !d.inline) {
        this.chunksOf(id, d, (body, frame) => peer.send(body, [frame]));
        continue;
      }
      batch.push(this.inlineWire(id, d, fb));
      if (batch.length >= 64) {
        peer.send({ putObjects: { objects: batch } }, fb.frames());
        fb = new FrameBuilder();
        batch = [];
      }
    }
    if (batch.length > 0) peer.send({ putObjects: { objects: batch } }, fb.frames());
  }

  /**
   * The bytes of an object for a frame to another process: arena objects as a view (no copy; ZeroMQ
   * sends from it), pinned until the view is garbage collected, which happens once ZeroMQ let go of it.
   */
  sendView(id: string, d: StoredObject, from = 0, to = d.size): Buffer {
    if (d.inline) return from === 0 && to === d.inline.byteLength ? d.inline : d.inline.subarray(from, to);
    if (!d.shm) return this.host.store.bytes(d).subarray(from, to);
    const view = this.host.store.arena.view(d.shm.offset + from, to - from);
    this.host.objects.pin(id);
    // Tied to the memory, not to this Buffer object: slices of the view (a chunk each) keep it pinned
    // after the view itself is gone.
    viewRegistry.register(view.buffer, { host: this.host, id });
    return view;
  }

  /** ObjectData with the bytes in a frame (for processes that cannot map this node's arena). */
  inlineWire(id: string, d: StoredObject, fb: FrameBuilder): tsray.v1.IObjectData {
    return {
      objectId: id,
      encoding: encodingToWire(d.encoding),
      rawKind: d.rawKind,
      containedRefs: d.contained,
      size: d.size,
      inline: fb.add(this.sendView(id, d)),
    };
  }

  /** Cut an object into checked chunks, sent from views of the arena (pinned while ZeroMQ holds them). */
  chunksOf(id: string, d: StoredObject, out: (body: EnvelopeBody, frame: Buffer) => void): void {
    const spilled = !d.inline && !d.shm ? { ...d, inline: this.host.store.bytes(d) } : d;
    const total = spilled.inline ? spilled.inline.byteLength : d.shm!.length;
    const header: tsray.v1.IObjectData = { objectId: id, encoding: encodingToWire(d.encoding), rawKind: d.rawKind, containedRefs: d.contained, size: d.size };
    for (let off = 0; off < total || off === 0; off += this.chunkBytes) {
      const chunk = this.sendView(id, spilled, off, Math.min(total, off + this.chunkBytes));
      out({ objectChunk: { objectId: id, offset: off, total, crc32: chunkCheck(chunk), ...(off === 0 ? { header } : {}) } }, chunk);
      if (total === 0) break;
    }
  }

  /** Deliver sealed objects to a remote client or peer (with the objects nested in them). */
  sendObjectsRemote(w: WorkerHandle, entries: ObjectEntry[]): void {
    const fb = new FrameBuilder();
    const small: tsray.v1.IObjectData[] = [];
    const seen = new Set<string>();
    const visit = (e: ObjectEntry) => {
      if (seen.has(e.id) || e.data === undefined) return;
      seen.add(e.id);
      for (const c of e.data.contained) {
        const ce = this.host.objects.get(c);
        if (ce) visit(ce);
      }
      const d = w.language === 'python' ? pythonView(e.id, e.data, () => this.host.store.bytes(e.data!)) : e.data;
      if (d.size > this.chunkBytes && !d.inline) this.chunksOf(e.id, d, (body, frame) => this.sendFrames(w, body, [frame]));
      else small.push(this.inlineWire(e.id, d, fb));
    };
    for (const e of entries) visit(e);
    if (small.length > 0) this.host.send(w, { objectsReady: { objects: small } }, fb);
  }

  /** Send a message with exactly these payload frames (a chunk is frame 0 of its message). */
  private sendFrames(w: WorkerHandle, body: EnvelopeBody, frames: Buffer[]): void {
    if (w.state !== 'dead') this.host.sendFrames(w, body, frames);
  }

  /** Move a large inline object into the arena (objects that came over the network). */
  toArena(d: StoredObject): StoredObject {
    try {
      return this.host.store.store({ encoding: d.encoding, rawKind: d.rawKind, bytes: d.inline!, containedRefs: d.contained });
    } catch {
      return d;
    }
  }

  /**
   * One chunk of an object arrived; returns the object's data once it is complete, or an
   * ObjectTransferError object when a chunk fails its check or does not fit the announced size.
   */
  onChunk(from: string, c: tsray.v1.IObjectChunk, payload: Buffer): StoredObject | undefined {
    const id = c.objectId ?? '';
    const total = Number(c.total ?? 0);
    const off = Number(c.offset ?? 0);
    let inc = this.incoming.get(id);
    if (!inc) {
      const h = c.header;
      if (!h) {
        logger().warn({ object: id, from }, 'object chunk without its header; dropped');
        return undefined;
      }
      const base = { encoding: encodingFromWire(h.encoding), rawKind: h.rawKind ?? '', size: Number(h.size ?? total), contained: h.containedRefs ?? [] };
      let data: StoredObject;
      let buf: Buffer | undefined;
      try {
        data = { ...base, shm: { offset: this.host.store.allocate(total), length: total } };
      } catch {
        buf = Buffer.allocUnsafe(total);
        data = { ...base, inline: buf };
      }
      inc = { data, got: 0, buf, from };
      this.incoming.set(id, inc);
    }
    if (chunkCheck(payload) !== (c.crc32 ?? 0) >>> 0 || off + payload.length > total) {
      this.incoming.delete(id);
      this.host.store.release(inc.data);
      const msg = `object ${id} from ${from} arrived damaged (chunk at ${off}: checksum or size mismatch)`;
      logger().error({ object: id, from }, msg);
      const err = errorObject({ type: 'Other', name: 'ObjectTransferError', message: msg });
      return err;
    }
    if (inc.data.shm) this.host.store.arena.write(inc.data.shm.offset + off, payload);
    else payload.copy(inc.buf!, off);
    inc.got += payload.length;
    if (inc.got < total) return undefined;
    this.incoming.delete(id);
    return inc.data;
  }

  /** A node died: drop (and free) the objects it was sending here. */
  dropIncomingFrom(from: string): void {
    for (const [oid, inc] of this.incoming) {
      if (inc.from !== from) continue;
      this.incoming.delete(oid);
      this.host.store.release(inc.data);
    }
  }
}

const viewRegistry = new FinalizationRegistry<{ host: ObjectTransferHost; id: string }>((h) => h.host.unpinView(h.id));
