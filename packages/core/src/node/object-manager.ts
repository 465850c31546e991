/**
 * The embedded driver's access to the node's objects: get and wait on object ids (values are
 * materialized in this process, arena objects as zero-copy views pinned until collected), and
 * garbage collection when the store is under pressure (JavaScript has no reference counts: dropped
 * refs free their objects when their finalizers run).
 * @internal
 */
import { earliestFirst } from '../earliest-first.js';
import { errorFromPayload } from '../error-payload.js';
import { GetTimeoutError } from '../errors.js';
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

  /** The first `numReturns` ready ids in completion order, once that many are ready or the timeout elapsed. */
  wait(ids: string[], numReturns: number, timeoutMs: number | undefined): Promise<string[]> {
    const ready: ObjectEntry[] = [];
    for (const id of ids) {
      const e = this.objects.get(id);
      if (e?.data !== undefined) ready.push(e);
    }
    // Only the first numReturns need their completion order (earliest-first.ts says why).
    const finish = () => earliestFirst(ready, numReturns, (e) => e.seq).map((e) => e.id);
    if (ready.length >= numReturns) return Promise.resolve(finish().slice(0, numReturns));
    return new Promise((resolve) => {
      // One waiter shared by every pending id (no closures per id: a wait over 1,000 refs registers 1,000).
      const pending: ObjectEntry[] = [];
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        for (const e of pending) this.objects.removeWaiter(e, onReady);
        resolve(finish().slice(0, numReturns));
      };
      const onReady = (entry: ObjectEntry) => {
        if (settled) return;
        ready.push(entry);
        if (ready.length >= numReturns) queueMicrotask(settle);
      };
      for (const id of ids) {
        const e = this.objects.get(id);
        if (e?.data !== undefined) continue;
        const waiting = this.objects.addWaiter(id, onReady);
        if (waiting !== undefined) pending.push(waiting);
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

const viewRegistry = new FinalizationRegistry<{ objects: ObjectManager; id: string }>((h) => h.objects.unpinView(h.id));
