/**
 * The object path of a worker or client driver: subscriptions to objects and get/wait over them, puts
 * (inline, or written into the shared arena after an allocation by the node), chunked delivery to
 * remote clients, argument values, and the pins that arena data carries.
 * @internal
 */
import { earliestPositions } from '../earliest-first.js';
import type { tsray } from '@tsray/protocol';
import type { Arena } from '@tsray/object-store';
import { readFileSync } from 'node:fs';
import { encodeErrorPayload, errorFromPayload } from '../error-payload.js';
import { GetTimeoutError, ObjectStoreFullError, duplicateRefError } from '../errors.js';
import { deserialize, type SerializedValue } from '../serialization.js';
import { encodingFromWire, encodingToWire, payloadView } from '../wire.js';
import type { NodeChannel } from './node-channel.js';

/** Values up to this size travel inline in messages; larger ones go through the arena. */
export const INLINE_BYTES = 100 * 1024;

/** Told when the running task starts and stops waiting in get/wait. */
export interface BlockListener {
  block(): void;
  unblock(): void;
}

/** What this process knows of one object it subscribed to. */
interface Subscription {
  od: tsray.v1.IObjectData | undefined;
  frames: Buffer[] | undefined;
  /** Order of arrival (wait() returns ids in completion order). */
  seq: number;
  waiters: (() => void)[];
}

/** Objects as seen from a worker or client driver. */
export class ObjectClient {
  private readonly subs = new Map<string, Subscription>();
  private subSeq = 0;
  private allocSeq = 0;
  private readonly allocs = new Map<number, { resolve: (off: number) => void; reject: (e: Error) => void }>();
  private readonly incoming = new Map<string, { header: tsray.v1.IObjectData; buf: Buffer; got: number }>();
  private arena: Arena | undefined;
  /** Told when get/wait start and stop waiting (the task executor, in a worker). */
  blocking: BlockListener | undefined;
  /** Set when the node dropped this process (a client driver it forgot): gets, waits and puts fail with it. */
  private lost: Error | undefined;

  constructor(
    private readonly channel: NodeChannel,
    /** Maps the node's arena (on first use: a client driver learns where it is at registration). */
    private readonly openArena: () => Arena,
    /** A client on another host: every put travels inline. */
    private readonly remote: boolean,
  ) {}

  private getArena(): Arena {
    this.arena ??= this.openArena();
    return this.arena;
  }

  /** An object this process subscribed to is ready (its data inline, in frames, or in the arena). */
  objectReady(od: tsray.v1.IObjectData, payloads: Buffer[]): void {
    const s = this.subs.get(od.objectId ?? '');
    if (!s || s.od !== undefined) {
      // Nobody waits anymore (or it came already): give back the delivery pin.
      if (od.shm) this.unpin(od.objectId ?? '');
      return;
    }
    s.od = od;
    s.frames = payloads;
    s.seq = ++this.subSeq;
    const w = s.waiters;
    s.waiters = [];
    for (const cb of w) cb();
  }

  /** A remote driver (no shared memory): large objects come in chunks; assemble, then as inline. */
  onChunk(c: tsray.v1.IObjectChunk, chunk: Buffer): void {
    const id = c.objectId ?? '';
    const total = Number(c.total ?? 0);
    let inc = this.incoming.get(id);
    if (!inc) {
      if (!c.header) return;
      inc = { header: c.header, buf: Buffer.allocUnsafe(total), got: 0 };
      this.incoming.set(id, inc);
    }
    chunk.copy(inc.buf, Number(c.offset ?? 0));
    inc.got += chunk.length;
    if (inc.got < total) return;
    this.incoming.delete(id);
    this.objectReady({ ...inc.header, objectId: id, inline: { frame: 0, offset: 0, length: total } }, [inc.buf]);
  }

  /** The node answered an arena allocation. */
  onAllocReply(r: tsray.v1.IAllocReply): void {
    const p = this.allocs.get(Number(r.requestId));
    if (!p) return;
    this.allocs.delete(Number(r.requestId));
    if (!r.error) {
      p.resolve(Number(r.slice!.offset));
      return;
    }
    let info: { requested?: number; capacity?: number; used?: number } = {};
    try {
      info = JSON.parse(r.error);
    } catch {
      /* plain text */
    }
    p.reject(info.capacity !== undefined ? new ObjectStoreFullError(info.requested ?? 0, info.capacity, info.used ?? 0) : new Error(r.error));
  }

  /** The value an ObjectData describes (task argument or fetched object); arena pins are given back. */
  argValue(od: tsray.v1.IObjectData, frames: Buffer[]): unknown {
    const enc = encodingFromWire(od.encoding);
    if (enc === 'error') throw errorFromPayload(payloadView(od.inline!, frames));
    if (od.inline) {
      const bytes = payloadView(od.inline, frames);
      // Raw values alias the message frame: copy so user code can keep and modify them.
      return deserialize(enc, od.rawKind ?? '', enc === 'raw' ? Buffer.from(bytes) : bytes);
    }
    if (od.shm) {
      const view = this.getArena().view(Number(od.shm.offset), Number(od.shm.length));
      const id = od.objectId ?? '';
      if (enc === 'raw') {
        const v = deserialize('raw', od.rawKind ?? '', view) as object;
        // The delivery pin now belongs to the view.
        arenaViews.register(v, { objects: this, id });
        return v;
      }
      const v = deserialize(enc, od.rawKind ?? '', view);
      this.unpin(id);
      return v;
    }
    return deserialize(enc, od.rawKind ?? '', readFileSync(od.spillPath ?? ''));
  }

  /** ObjectData for a small value whose bytes travel as `payloads` frame (synchronous). */
  inlineObjectData(id: string, sv: SerializedValue, payloads: Uint8Array[]): tsray.v1.IObjectData {
    const od: tsray.v1.IObjectData = {
      objectId: id,
      encoding: encodingToWire(sv.encoding),
      rawKind: sv.rawKind,
      containedRefs: sv.containedRefs,
      size: sv.bytes.byteLength,
    };
    od.inline = { frame: payloads.length, offset: 0, length: sv.bytes.byteLength };
    payloads.push(sv.bytes);
    return od;
  }

  /** ObjectData for a value: inline payload (index into `payloads`), or written into the arena. */
  async objectData(id: string, sv: SerializedValue, payloads: Uint8Array[]): Promise<tsray.v1.IObjectData> {
    const n = sv.bytes.byteLength;
    if (n <= INLINE_BYTES) return this.inlineObjectData(id, sv, payloads);
    const od: tsray.v1.IObjectData = { objectId: id, encoding: encodingToWire(sv.encoding), rawKind: sv.rawKind, containedRefs: sv.containedRefs, size: n };
    const off = await this.alloc(n);
    this.getArena().write(off, sv.bytes);
    od.shm = { offset: off, length: n };
    return od;
  }

  /**
   * The node no longer knows this process: every get, wait and allocation waiting now and every later
   * one fails with `err` (objects already here stay readable).
   */
  connectionLost(err: Error): void {
    if (this.lost) return;
    this.lost = err;
    for (const a of this.allocs.values()) a.reject(err);
    this.allocs.clear();
    for (const s of this.subs.values()) for (const w of s.waiters.splice(0)) w();
  }

  private alloc(size: number): Promise<number> {
    if (this.lost) return Promise.reject(this.lost);
    const requestId = ++this.allocSeq;
    return new Promise((resolve, reject) => {
      this.allocs.set(requestId, { resolve, reject });
      this.channel.flushNow();
      this.channel.send({ allocRequest: { requestId, size } });
    });
  }

  /** Store a value under `id`: inline when small (or remote), else in the arena. */
  putObject(id: string, value: SerializedValue): void {
    const n = value.bytes.byteLength;
    const header = { objectId: id, encoding: encodingToWire(value.encoding), rawKind: value.rawKind, containedRefs: value.containedRefs, size: n };
    if (n <= INLINE_BYTES || this.remote) {
      this.channel.queuePut(header, value.bytes);
      return;
    }
    // Large: copy now (the caller may change its buffer), then place it in the arena.
    void this.putLarge(header, Buffer.from(value.bytes));
  }

  /**
   * `putObject` for a caller that leaves `value.bytes` unchanged until this resolves: large values are
   * written into the arena straight from the caller's buffer (one copy, no temporary heap buffer).
   */
  async putObjectOwned(id: string, value: SerializedValue): Promise<void> {
    const n = value.bytes.byteLength;
    if (n <= INLINE_BYTES || this.remote) return this.putObject(id, value);
    const header = { objectId: id, encoding: encodingToWire(value.encoding), rawKind: value.rawKind, containedRefs: value.containedRefs, size: n };
    await this.putLarge(header, value.bytes);
  }

  /** Allocate arena space, write `bytes` there, announce the object (or its error when the store is full). */
  private putLarge(header: tsray.v1.IObjectData & { objectId: string; size: number }, bytes: Uint8Array): Promise<void> {
    const id = header.objectId;
    const n = header.size;
    return this.alloc(n).then(
      (off) => {
        this.getArena().write(off, bytes);
        this.channel.flushNow();
        this.channel.send({ putObjects: { objects: [{ ...header, shm: { offset: off, length: n } }] } });
      },
      (err: Error) => {
        const payload =
          err instanceof ObjectStoreFullError
            ? encodeErrorPayload({ type: 'ObjectStoreFullError', requested: err.requested, capacity: err.capacity, used: err.used })
            : encodeErrorPayload({ type: 'Other', name: err.name, message: err.message });
        this.channel.flushNow();
        this.channel.send(
          {
            putObjects: {
              objects: [{ objectId: id, encoding: encodingToWire('error'), inline: { frame: 0, offset: 0, length: payload.length }, size: payload.length }],
            },
          },
          [payload],
        );
      },
    );
  }

  private subscribe(id: string): Subscription {
    let s = this.subs.get(id);
    if (!s) {
      s = { od: undefined, frames: undefined, seq: 0, waiters: [] };
      this.subs.set(id, s);
      this.channel.queueSubscribe(id);
    }
    return s;
  }

  private value(id: string, s: Subscription): unknown {
    if (s.od === undefined) throw this.lost ?? new Error(`object ${id} is not here`);
    const od = s.od;
    // Inline and spilled data stay cached; arena data is delivered once per get (it carries a pin).
    if (od.shm) this.subs.delete(id);
    if (encodingFromWire(od.encoding) === 'error') throw errorFromPayload(payloadView(od.inline!, s.frames!));
    return this.argValue(od, s.frames!);
  }

  /** Values of the objects, in order, once all are ready (GetTimeoutError past `timeoutMs`). */
  async getObjects(ids: string[], timeoutMs: number | undefined): Promise<unknown[]> {
    const subs = ids.map((id) => this.subscribe(id));
    const missing = subs.filter((s) => s.od === undefined);
    if (missing.length > 0 && this.lost) throw this.lost;
    if (missing.length > 0) {
      this.blocking?.block();
      await new Promise<void>((resolve, reject) => {
        let left = missing.length;
        let timer: NodeJS.Timeout | undefined;
        const done = () => {
          if (--left === 0) {
            if (timer) clearTimeout(timer);
            resolve();
          }
        };
        for (const s of missing) s.waiters.push(done);
        if (timeoutMs !== undefined) {
          timer = setTimeout(() => {
            for (const s of missing) s.waiters = s.waiters.filter((w) => w !== done);
            reject(
              new GetTimeoutError(
                timeoutMs / 1000,
                ids.filter((id) => this.subs.get(id)?.od === undefined),
              ),
            );
          }, timeoutMs);
        }
      }).finally(() => this.blocking?.unblock());
    }
    return ids.map((id, i) => this.value(id, subs[i]!));
  }

  /**
   * Positions in `ids` of the first `numReturns` ready objects, in completion order, once that many are
   * ready or the timeout elapsed (then fewer). Rejects with a ValidationError when an id appears twice.
   */
  async wait(ids: string[], numReturns: number, timeoutMs: number | undefined): Promise<number[]> {
    const subs = ids.map((id) => this.subscribe(id));
    const seen = new Set<Subscription>();
    for (let i = 0; i < subs.length; i++) {
      const size = seen.size;
      if (seen.add(subs[i]!).size === size) throw duplicateRefError(ids[i]!);
    }
    const readyCount = () => subs.reduce((n, s) => (s.od !== undefined ? n + 1 : n), 0);
    if (readyCount() < numReturns && this.lost) throw this.lost;
    if (readyCount() < numReturns) {
      this.blocking?.block();
      await new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        let count = readyCount();
        const cb = () => {
          if (++count >= numReturns) finish();
        };
        const finish = () => {
          if (timer) clearTimeout(timer);
          for (const s of subs) s.waiters = s.waiters.filter((w) => w !== cb);
          resolve();
        };
        for (const s of subs) if (s.od === undefined) s.waiters.push(cb);
        if (timeoutMs !== undefined) timer = setTimeout(finish, timeoutMs);
      }).finally(() => this.blocking?.unblock());
      if (this.lost && readyCount() < numReturns) throw this.lost;
    }
    const readyAt: number[] = [];
    const readySeq: number[] = [];
    for (let i = 0; i < subs.length; i++) {
      if (subs[i]!.od === undefined) continue;
      readyAt.push(i);
      readySeq.push(subs[i]!.seq);
    }
    // Only the first numReturns need their completion order (earliest-first.ts says why).
    return earliestPositions(readySeq, numReturns).map((p) => readyAt[p]!);
  }

  /** This process started holding `id` (first live ObjectRef). */
  refAdded(id: string): void {
    this.channel.refAdded(id);
  }

  /** This process stopped holding `id`: forget a subscription nobody waits on (and its pin). */
  refRemoved(id: string): void {
    const s = this.subs.get(id);
    if (s && s.waiters.length === 0) {
      this.subs.delete(id);
      if (s.od?.shm) this.unpin(id);
    }
    this.channel.refRemoved(id);
  }

  /** Give back one pin of an arena object. */
  unpin(id: string): void {
    this.channel.unpin(id);
  }
}

/** Zero-copy views into the arena: their delivery pin is given back when the view is collected. */
const arenaViews = new FinalizationRegistry<{ objects: ObjectClient; id: string }>((h) => h.objects.unpin(h.id));
