/**
 * The holder's side of object pulls: another node asks for a range of an object this node holds and
 * gets it as checked chunks sent from views of the arena (no copy), or PullFailed when this node has
 * no copy (it was freed, or never arrived). A test hook (`TSRAY_TEST_PULL_PAUSE_AFTER_CHUNKS`) stops
 * the sends after K chunks so a test can kill this node mid-transfer deterministically.
 * @internal
 */
import type { EnvelopeBody, tsray } from '@tsray/protocol';
import { config } from '../config.js';
import { logger } from '../logger.js';
import type { ObjectTable, StoredObject } from './object-table.js';
import type { ObjectTransfer } from './object-transfer.js';
import type { NodeStore } from './store.js';
import type { WorkerHandle } from './records.js';
import { chunkCheck } from './node-support.js';
import { DataPlaneServer, type DataPlaneServerHost } from './data-plane-server.js';

/** What serving pulls needs from the node. */
export interface PullServerHost {
  readonly objects: Pick<ObjectTable, 'get'>;
  readonly store: Pick<NodeStore, 'bytes'>;
  readonly transfer: Pick<ObjectTransfer, 'sendView'>;
  /** Send a message with exactly these payload frames to a connection. */
  sendFrames(w: WorkerHandle, body: EnvelopeBody, frames: Buffer[]): void;
  /** What serving on the data plane needs (data-plane-server.ts). */
  readonly dataPlane: Omit<DataPlaneServerHost, 'serve'>;
}

/** Objects whose whole view is kept between the chunks of their pulls. */
const VIEWS_KEPT = 4;

/** Answers PullObject requests from peer nodes. */
export class PullServer {
  private served = 0;
  private held = 0;
  /** Whole-object views of the objects being served, oldest first (see `bytes`). */
  private readonly views = new Map<string, Buffer>();
  /** The sealed data plane this node serves pulls on too. */
  private readonly dataPlane: DataPlaneServer;

  constructor(
    private readonly host: PullServerHost,
    private readonly pauseAfter = config().pullPauseAfterChunks,
  ) {
    this.dataPlane = new DataPlaneServer({ ...host.dataPlane, serve: (req, reply) => this.serve(req, reply) });
  }

  /** Chunks sent, requests held back by the test hook, and the data plane's counters (node stats). */
  stats(): { chunksServed: number; pausedRequests: number } & ReturnType<DataPlaneServer['stats']> {
    return { chunksServed: this.served, pausedRequests: this.held, ...this.dataPlane.stats() };
  }

  /** A pull request or a data-plane session request from peer node `w` on its control link. */
  onPeer(w: WorkerHandle, m: tsray.v1.IEnvelope): void {
    if (m.pullObject) this.onPull(w, m.pullObject);
    else if (m.dataPlaneOpen) this.dataPlane.open(w.peerNodeId, m.dataPlaneOpen, (body) => this.host.sendFrames(w, body, []));
  }

  /** A peer node died: its data-plane sessions go. */
  nodeDied(nodeId: string): void {
    this.dataPlane.nodeDied(nodeId);
  }

  close(): void {
    this.dataPlane.close();
  }

  /** Peer `w` asks on its control link for bytes [offset, offset + length) of an object. */
  onPull(w: WorkerHandle, req: tsray.v1.IPullObject): void {
    this.serve(req, (body, frames) => this.host.sendFrames(w, body, frames));
  }

  /** Answer a request for bytes [offset, offset + length) of an object through `reply` (either link). */
  serve(req: tsray.v1.IPullObject, reply: (body: EnvelopeBody, frames: Buffer[]) => void): void {
    const id = req.objectId ?? '';
    const d = this.host.objects.get(id)?.data;
    if (!d || d.encoding === 'error') {
      reply({ pullFailed: { objectId: id, reason: `node has no copy of ${id}` } }, []);
      return;
    }
    const off = Number(req.offset ?? 0);
    const end = Math.min(d.size, off + Number(req.length ?? 0));
    if (this.pauseAfter > 0 && this.served >= this.pauseAfter) {
      if (this.held++ === 0) logger().warn({ object: id, after: this.served }, 'pull sends paused (test hook TSRAY_TEST_PULL_PAUSE_AFTER_CHUNKS)');
      return;
    }
    const chunk = this.bytes(id, d, off, end);
    this.served++;
    reply({ objectChunk: { objectId: id, offset: off, total: d.size, crc32: chunkCheck(chunk) } }, [chunk]);
  }

  /**
   * The range's bytes: a slice of a pinned view of the whole object (one view per object being served,
   * not per chunk: V8 counts every new external buffer as allocated memory and collects garbage for it),
   * of inline data, or of the spill file (read once per pull, not once per chunk). The last
   * {@link VIEWS_KEPT} objects' views are kept; an object's goes once its last chunk went (the pin then
   * ends when the slices still being written are collected).
   */
  private bytes(id: string, d: StoredObject, off: number, end: number): Buffer {
    let whole = this.views.get(id);
    if (!whole) {
      whole = d.inline || d.shm ? this.host.transfer.sendView(id, d) : this.host.store.bytes(d);
      this.views.set(id, whole);
      if (this.views.size > VIEWS_KEPT) this.views.delete(this.views.keys().next().value!);
    }
    if (end >= d.size) this.views.delete(id);
    return whole.subarray(off, end);
  }
}
