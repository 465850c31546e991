/**
 * Pulls of objects from the nodes that hold them (Ray's pull manager): an object this node needs and
 * another node holds is requested chunk by chunk from one holder, several chunks in flight at once,
 * under one bound on the bytes this node has requested and not yet received (all pulls together;
 * further requests queue until chunks arrive). When the holder dies or has no copy, the chunks still
 * missing are asked of the next holder (the ones received are kept: a resume, each chunk checked).
 * @internal
 */
import type { EnvelopeBody, tsray } from '@tsray/protocol';
import type { Arena } from '@tsray/object-store';
import { config } from '../config.js';
import { logger } from '../logger.js';
import type { StoredObject } from './object-table.js';
import type { NodeStore } from './store.js';
import { chunkCheck, errorObject } from './node-support.js';
import type { SealedPayload } from './sealed-frames.js';

/** What a pull needs from its node. */
export interface ObjectPullerHost {
  readonly store: Pick<NodeStore, 'allocate' | 'release'> & { readonly arena: Pick<Arena, 'view'> };
  /** Send a message to node `nodeId`; false when it cannot be reached. */
  sendTo(nodeId: string, body: EnvelopeBody): boolean;
  /** True while node `nodeId` is alive in this node's view. */
  isAlive(nodeId: string): boolean;
  /** A pull ended: the object's data, or an error object when no holder could give it. */
  done(id: string, data: StoredObject, from: string): void;
}

/** The object's metadata, as a holder or the owner announced it. */
export type PullHeader = Omit<StoredObject, 'inline' | 'shm' | 'spillPath'>;

/** One object being pulled. */
interface Pull {
  readonly id: string;
  readonly header: PullHeader;
  /** Holders in the order they are tried; `source` is the one asked now. */
  readonly holders: string[];
  source: string | undefined;
  /** Where the bytes go (allocated when the first chunk is requested). */
  data: StoredObject | undefined;
  buf: Buffer | undefined;
  /** Chunk offsets not requested yet (front first). */
  todo: number[];
  /** Requested, not yet received: offset → length. */
  readonly outstanding: Map<number, number>;
  got: number;
}

/** Gauges of the pulls of one node (node stats). */
export interface PullStats {
  /** Bytes requested and not yet received now. */
  bytesInFlight: number;
  /** Highest `bytesInFlight` seen since the node started (sampled at every request). */
  maxBytesInFlight: number;
  /** The bound (`TSRAY_PULL_MAX_BYTES_IN_FLIGHT`). */
  boundBytes: number;
  /** Pulls started, finished, and moved to another holder. */
  pullsStarted: number;
  pullsDone: number;
  failovers: number;
  /** Objects being pulled now. */
  active: number;
}

/** Pulls of objects from holders, with admission control on bytes in flight. */
export class ObjectPuller {
  private readonly pulls = new Map<string, Pull>();
  private inFlight = 0;
  private readonly counters = { maxBytesInFlight: 0, pullsStarted: 0, pullsDone: 0, failovers: 0 };

  constructor(
    private readonly host: ObjectPullerHost,
    private readonly chunkBytes = config().transferChunkBytes,
    private readonly bound = config().pullMaxBytesInFlight,
  ) {}

  /** True while `id` is being pulled. */
  has(id: string): boolean {
    return this.pulls.has(id);
  }

  /** Pull `id` from one of `holders` (more holders for a pull under way are added to its list). */
  pull(id: string, header: PullHeader, holders: readonly string[]): void {
    const known = this.pulls.get(id);
    if (known) {
      for (const h of holders) if (!known.holders.includes(h)) known.holders.push(h);
      if (known.source === undefined) this.failover(known, 'no holder reachable');
      return;
    }
    const todo: number[] = [];
    for (let off = 0; off < header.size || off === 0; off += this.chunkBytes) {
      todo.push(off);
      if (header.size === 0) break;
    }
    const p: Pull = { id, header, holders: [...holders], source: undefined, data: undefined, buf: undefined, todo, outstanding: new Map(), got: 0 };
    this.pulls.set(id, p);
    this.counters.pullsStarted++;
    this.failover(p, 'start');
  }

  /** Gauges for node stats. */
  stats(): PullStats {
    return { bytesInFlight: this.inFlight, boundBytes: this.bound, active: this.pulls.size, ...this.counters };
  }

  /** A chunk arrived from `from` on the control link; true when it belonged to a pull (else the caller handles it). */
  onChunk(from: string, c: tsray.v1.IObjectChunk, payload: Buffer): boolean {
    return this.accept(from, c, payload.length, (dst) => {
      if (chunkCheck(payload) !== (c.crc32 ?? 0) >>> 0) return false;
      payload.copy(dst);
      return true;
    });
  }

  /**
   * A chunk arrived from `from` on the data plane (data-plane-client.ts), still sealed: it is opened
   * straight into its place (the arena), and its tag proves it whole and from the holder.
   */
  onSealedChunk(from: string, c: tsray.v1.IObjectChunk, payload: Pick<SealedPayload, 'length' | 'openInto'>): boolean {
    return this.accept(from, c, payload.length, (dst) => payload.openInto(dst));
  }

  /** Chunks asked of `holder` on a route that broke (its data plane): ask them again (on the control link). */
  retryFrom(holder: string): void {
    for (const p of this.pulls.values()) {
      if (p.source !== holder) continue;
      for (const [off, len] of p.outstanding) {
        this.inFlight -= len;
        p.todo.unshift(off);
      }
      p.outstanding.clear();
      p.todo.sort((a, b) => a - b);
    }
    this.pump();
  }

  /**
   * Take chunk `c` of `length` bytes from `from` if it was asked of it: `fill` writes it into its place
   * (a view of the arena or the heap buffer) and says whether it checked out (else the holder is given up).
   */
  private accept(from: string, c: tsray.v1.IObjectChunk, length: number, fill: (dst: Buffer) => boolean): boolean {
    const p = this.pulls.get(c.objectId ?? '');
    if (!p) return false;
    const off = Number(c.offset ?? 0);
    const len = p.outstanding.get(off);
    // A late chunk from a holder given up on (its offset was asked again elsewhere): ignored.
    if (len === undefined || from !== p.source) return true;
    p.outstanding.delete(off);
    this.inFlight -= len;
    const shm = p.data!.shm;
    if (length !== len || !fill(shm ? this.host.store.arena.view(shm.offset + off, len) : p.buf!.subarray(off, off + len))) {
      logger().warn({ object: p.id, from, offset: off }, 'a pulled chunk arrived damaged; asking another holder');
      p.todo.unshift(off);
      this.giveUpOn(p, from, 'damaged chunk');
      this.pump();
      return true;
    }
    p.got += len;
    if (p.got >= p.header.size && p.todo.length === 0 && p.outstanding.size === 0) {
      this.pulls.delete(p.id);
      this.counters.pullsDone++;
      this.host.done(p.id, p.data!, from);
    }
    this.pump();
    return true;
  }

  /** The holder `from` has no copy of `id` (PullFailed): try the next holder. */
  onFailed(from: string, id: string, reason: string): void {
    const p = this.pulls.get(id);
    if (p && p.source === from) this.giveUpOn(p, from, reason);
    this.pump();
  }

  /** Node `nodeId` died: pulls from it go on from their next holder. */
  nodeDied(nodeId: string): void {
    for (const p of [...this.pulls.values()]) {
      const i = p.holders.indexOf(nodeId);
      if (p.source === nodeId) this.giveUpOn(p, nodeId, 'its node died');
      else if (i !== -1) p.holders.splice(i, 1);
    }
    this.pump();
  }

  /** Drop every pull (node shutdown). */
  close(): void {
    for (const p of this.pulls.values()) if (p.data) this.host.store.release(p.data);
    this.pulls.clear();
    this.inFlight = 0;
  }

  /** Stop asking `holder`: its outstanding chunks go back to the front of the queue; the next holder goes on. */
  private giveUpOn(p: Pull, holder: string, reason: string): void {
    for (const [off, len] of p.outstanding) {
      this.inFlight -= len;
      p.todo.unshift(off);
    }
    p.outstanding.clear();
    p.todo.sort((a, b) => a - b);
    const i = p.holders.indexOf(holder);
    if (i !== -1) p.holders.splice(i, 1);
    this.counters.failovers++;
    logger().warn({ object: p.id, holder, reason, left: p.holders.length, received: p.got }, 'pull from a holder stopped; going on from the next');
    this.failover(p, reason);
  }

  /** Pick the next live holder of `p` (or fail the pull when none is left). */
  private failover(p: Pull, reason: string): void {
    p.source = p.holders.find((h) => this.host.isAlive(h));
    if (p.source === undefined) {
      this.pulls.delete(p.id);
      if (p.data) this.host.store.release(p.data);
      const message = `object ${p.id} could not be pulled: no holder of it is left (${reason})`;
      logger().error({ object: p.id }, message);
      this.host.done(p.id, errorObject({ type: 'ObjectLostError', objectId: p.id, reason: message }), '');
      return;
    }
    this.pump();
  }

  /** Request chunks, oldest pull first, while the bytes in flight stay within the bound. */
  private pump(): void {
    for (const p of this.pulls.values()) {
      if (p.source === undefined) continue;
      while (p.todo.length > 0) {
        const off = p.todo[0]!;
        const len = Math.min(this.chunkBytes, p.header.size - off);
        // The bound admits at least one chunk (a chunk larger than the bound still moves, alone).
        if (this.inFlight > 0 && this.inFlight + len > this.bound) return;
        if (!p.data && !this.allocate(p)) return;
        p.todo.shift();
        p.outstanding.set(off, len);
        this.inFlight += len;
        if (this.inFlight > this.counters.maxBytesInFlight) this.counters.maxBytesInFlight = this.inFlight;
        if (!this.host.sendTo(p.source, { pullObject: { objectId: p.id, offset: off, length: len } })) {
          this.giveUpOn(p, p.source, 'unreachable');
          return;
        }
      }
    }
  }

  /** Room for the object: in the arena, else on the heap (as chunked pushes do). */
  private allocate(p: Pull): boolean {
    const size = p.header.size;
    try {
      p.data = { ...p.header, shm: { offset: this.host.store.allocate(size), length: size } };
    } catch {
      p.buf = Buffer.allocUnsafe(size);
      p.data = { ...p.header, inline: p.buf };
    }
    return true;
  }
}
