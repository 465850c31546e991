/**
 * The embedded driver's access to the node's objects: get and wait on object ids (values are
 * materialized in this process, arena objects as zero-copy views pinned until collected), and
 * garbage collection when the store is under pressure (JavaScript has no reference counts: dropped
 * refs free their objects when their finalizers run).
 * @internal
 */
import { earliestPositions } from '../earliest-first.js';
import { errorFromPayload } from '../error-payload.js';
import { GetTimeoutError, duplicateRefError } from '../errors.js';
import { gcFunction } from '../gc.js';
import { deserialize } from '../serialization.js';
import { ENC_ERROR } from './node-support.js';
import type { ObjectEntry, ObjectTable } from './object-table.js';
import type { NodeStore } from './store.js';

/** Objects of the node seen from the driver that hosts it. */
export class ObjectManager {
  private closed = false;
  private gcPending = false;
  private lastGc = 0;
  /** Marks the entries one `wait` call has seen (its duplicate check). */
  private waitStamp = 0;

  constructor(
    private readonly objects: ObjectTable,
    private readonly store: NodeStore,
  ) {}

  /** Values of the objects, in order (waiting for the missing ones); rejects with a failed object's error. */
  get(ids: string[], timeoutMs: number | undefined): Promise<unknown[]> {
    const out = new Array<unknown>(ids.length);
    let missing = 0;
    for (let i = 0; i < ids.length; i++) {
      const e = this.objects.get(ids[i]!);
      if (e?.data === undefined) missing++;
    }
    if (missing === 0) {
      try {
        for (let i = 0; i < ids.length; i++) out[i] = this.materialize(this.objects.get(ids[i]!)!);
        return Promise.resolve(out);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      let left = missing;
      const cancels: (() => void)[] = [];
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        try {
          for (let i = 0; i < ids.length; i++) out[i] = this.materialize(this.objects.get(ids[i]!)!);
          resolve(out);
        } catch (e) {
          reject(e);
        }
      };
      for (const id of ids) {
        const e = this.objects.get(id);
        if (e?.data !== undefined) continue;
        cancels.push(
          this.objects.whenReady(id, () => {
            if (--left === 0) done();
          }),
        );
      }
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          for (const c of cancels) c();
          reject(
            new GetTimeoutError(
              timeoutMs / 1000,
              ids.filter((id) => this.objects.get(id)?.data === undefined),
            ),
          );
        }, timeoutMs);
      }
    });
  }

  /**
   * Positions in `ids` of the first `numReturns` ready objects, in completion order, once that many are
   * ready or the timeout elapsed (then fewer). Rejects with a ValidationError when an id appears twice.
   */
  wait(ids: string[], numReturns: number, timeoutMs: number | undefined): Promise<number[]> {
    // One table lookup per id: the entry's stamp finds duplicates (no Map of the ids per call; a
    // loop that drains 1,000 refs one at a time calls this 1,000 times over a shrinking list).
    const stamp = ++this.waitStamp;
    // numReturns 1 (the common case) keeps only the earliest ready position; more keep every ready one.
    const ready = new ReadyPositions(numReturns);
    let absent: Set<string> | undefined; // ids without an entry (none for refs this process holds)
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const e = this.objects.get(id);
      if (e === undefined) {
        absent ??= new Set();
        const size = absent.size;
        if (absent.add(id).size === size) return Promise.reject(duplicateRefError(id));
        continue;
      }
      if (e.waitStamp === stamp) return Promise.reject(duplicateRefError(id));
      e.waitStamp = stamp;
      if (e.data !== undefined) ready.add(i, e.seq);
    }
    if (ready.count >= numReturns) return Promise.resolve(ready.earliest());
    return new Promise((resolve) => {
      // One waiter shared by every pending id (no closures per id: a wait over 1,000 refs registers 1,000).
      const pending = new Map<ObjectEntry, number>();
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        for (const e of pending.keys()) this.objects.removeWaiter(e, onReady);
        resolve(ready.earliest());
      };
      const onReady = (entry: ObjectEntry) => {
        if (settled) return;
        // (An entry sealed while its waiter was being added is not in `pending` yet.)
        ready.add(pending.get(entry) ?? ids.indexOf(entry.id), entry.seq);
        if (ready.count >= numReturns) queueMicrotask(settle);
      };
      for (let i = 0; i < ids.length; i++) {
        const e = this.objects.get(ids[i]!);
        if (e?.data !== undefined) continue;
        const waiting = this.objects.addWaiter(ids[i]!, onReady);
        if (waiting !== undefined) pending.set(waiting, i);
      }
      if (timeoutMs !== undefined) timer = setTimeout(settle, timeoutMs);
    });
  }

  /** Value of a sealed object in this (driver) process. */
  private materialize(e: ObjectEntry): unknown {
    const d = e.data!;
    if (d.encoding === ENC_ERROR) throw errorFromPayload(this.store.bytes(d));
    if (d.shm && d.encoding === 'raw') {
      const view = this.store.arena.view(d.shm.offset, d.shm.length);
      const value = deserialize('raw', d.rawKind, view) as object;
      this.objects.pin(e.id);
      viewRegistry.register(value, { objects: this, id: e.id });
      return value;
    }
    if (d.inline && d.encoding === 'raw') return deserialize('raw', d.rawKind, Buffer.from(d.inline));
    return deserialize(d.encoding, d.rawKind, this.store.bytes(d));
  }

  /** Collect garbage soon (throttled): finalizers of dropped refs then free their objects. */
  requestGc(): void {
    if (this.gcPending || this.closed) return;
    const gc = gcFunction();
    if (!gc) return;
    this.gcPending = true;
    const delay = Math.max(0, 50 - (Date.now() - this.lastGc));
    const t = setTimeout(() => {
      this.gcPending = false;
      this.lastGc = Date.now();
      gc();
    }, delay);
    t.unref();
  }

  /** A zero-copy view was collected: its object is no longer pinned by this process. */
  unpinView(id: string): void {
    if (!this.closed) this.objects.unpin(id);
  }

  /** The node shut down: views collected later change nothing. */
  close(): void {
    this.closed = true;
  }
}

/** The ready positions of one `wait` call, and the first `k` of them in completion order. */
class ReadyPositions {
  count = 0;
  private readonly at: number[] = [];
  private readonly seqs: number[] = [];
  private firstAt = -1;
  private firstSeq = Number.POSITIVE_INFINITY;

  constructor(private readonly k: number) {}

  add(position: number, seq: number): void {
    this.count++;
    if (this.k > 1) {
      this.at.push(position);
      this.seqs.push(seq);
    } else if (seq < this.firstSeq) {
      this.firstSeq = seq;
      this.firstAt = position;
    }
  }

  /** The first `k` ready positions, earliest first (fewer when fewer are ready). */
  earliest(): number[] {
    if (this.k <= 0 || this.count === 0) return [];
    if (this.k === 1) return [this.firstAt];
    // Only the first k need their completion order (earliest-first.ts says why).
    return earliestPositions(this.seqs, this.k).map((p) => this.at[p]!);
  }
}

const viewRegistry = new FinalizationRegistry<{ objects: ObjectManager; id: string }>((h) => h.objects.unpinView(h.id));
