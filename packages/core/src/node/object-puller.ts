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

/** What a pull needs from its node. */
export interface ObjectPullerHost {
  readonly store: Pick<NodeStore, 'allocate' | 'release'> & { readonly arena: Pick<Arena, 'view' | 'prefault'> };
  /** Send a message to node `nodeId`; false when it cannot be reached. */
  sendTo(nodeId: string, body: EnvelopeBody): boolean;
  /** True while node `nodeId` is alive in this node's view. */
  isAlive(nodeId: string): boolean;
  /** The pull of `id` from `holder` was given up: nothing of it may land in its buffer any more. */
  abandon?(holder: string, id: string): void;
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
  /**
   * The object's bytes: one view of its arena slice, or a heap buffer when the arena had no room. One
   * view per pull, not per chunk: V8 counts every new external buffer as allocated memory, and a view
   * per 8 MiB chunk made it collect garbage 100+ ms per 256 MiB pulled.
   */
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
    if (!this.pulls.has(c.objectId ?? '')) return false;
    const dst = this.target(from, c, payload.length);
    if (dst) {
      payload.copy(dst);
      this.landed(from, c, chunkCheck(dst) === (c.crc32 ?? 0) >>> 0);
    }
    return true;
  }

  /**
   * Where chunk `c` of `length` bytes from `from` goes, if it was asked of it: a view of the arena or of
   * the heap buffer, exactly `length` long (the data plane reads it there; then {@link landed}).
   * Undefined for a chunk not asked of `from` (a late one from a holder given up on: dropped) or of
   * the wrong length (the holder is given up).
   */
  target(from: string, c: tsray.v1.IObjectChunk, length: number): Buffer | undefined {
    const p = this.pulls.get(c.objectId ?? '');
    const off = Number(c.offset ?? 0);
    const len = p?.outstanding.get(off);
    if (!p || len === undefined || from !== p.source) return undefined;
    if (length !== len) {
      this.damaged(p, from, off);
      return undefined;
    }
    return p.buf!.subarray(off, off + len);
  }

  /** Chunk `c` from `from` is in the place {@link target} gave; `ok`: it checked out (else the holder is given up). */
  landed(from: string, c: tsray.v1.IObjectChunk, ok: boolean): void {
    const p = this.pulls.get(c.objectId ?? '');
    const off = Number(c.offset ?? 0);
    const len = p?.outstanding.get(off);
    if (!p || len === undefined || from !== p.source) return;
    if (!ok) return this.damaged(p, from, off);
    p.outstanding.delete(off);
    this.inFlight -= len;
    p.got += len;
    if (p.got >= p.header.size && p.todo.length === 0 && p.outstanding.size === 0) {
      this.pulls.delete(p.id);
      this.counters.pullsDone++;
      this.host.done(p.id, p.data!, from);
    }
    this.pump();
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

  /** Chunk `off` of `p` from `from` arrived damaged: ask it, and the rest, of another holder. */
  private damaged(p: Pull, from: string, off: number): void {
    logger().warn({ object: p.id, from, offset: off }, 'a pulled chunk arrived damaged; asking another holder');
    this.giveUpOn(p, from, 'damaged chunk');
    this.pump();
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
    // A chunk of it may be arriving into its buffer from that holder: that stops before the buffer can be freed.
    this.host.abandon?.(holder, p.id);
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
      const offset = this.host.store.allocate(size);
      p.data = { ...p.header, shm: { offset, length: size } };
      p.buf = size > 0 ? this.host.store.arena.view(offset, size) : Buffer.alloc(0);
      // Fault the pages in on a threadpool thread while the chunks arrive: the first write to a page of
      // the shared arena costs a fault (the kernel zeroes it), which otherwise the socket read pays, one
      // page at a time, on the event loop (a fresh 256 MiB pulled at 0.9 GB/s instead of 1.6-1.9).
      // The fault-in never changes a byte (data-plane-stream.ts may be writing the same pages).
      if (size > this.chunkBytes)
        this.host.store.arena.prefault(offset, size).catch((err: unknown) => logger().debug({ err }, 'prefault of a pull target failed'));
    } catch {
      p.buf = Buffer.allocUnsafe(size);
      p.data = { ...p.header, inline: p.buf };
    }
    return true;
  }
}
