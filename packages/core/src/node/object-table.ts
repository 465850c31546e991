/**
 * The node's object table: every object's data location, reference count, pins and waiters.
 * @internal
 */

/** Where an object's bytes are. Exactly one of inline / shm / spillPath is set. */
export interface StoredObject {
  encoding: 'v8' | 'raw' | 'error' | 'msgpack';
  rawKind: string;
  inline?: Buffer;
  shm?: { offset: number; length: number };
  spillPath?: string;
  size: number;
  /** Refs nested in the value: held while this object lives. */
  contained: string[];
}

/**
 * A StoredObject with every field present, in one order, whatever holds the bytes: the objects the
 * node stores (puts, results from the wire) then share one shape and its hot paths read `inline` /
 * `shm` monomorphically (a spread per kind made three shapes per maker: the node's CPU per 1:n actor
 * call fell by a fifth when results got one, BENCHMARKS.md 2026-12-07).
 */
export function storedObject(
  encoding: StoredObject['encoding'],
  rawKind: string,
  size: number,
  contained: string[],
  inline: Buffer | undefined,
  shm: { offset: number; length: number } | undefined,
  spillPath: string | undefined,
): StoredObject {
  return { encoding, rawKind, inline, shm, spillPath, size, contained };
}

/** One object. */
export interface ObjectEntry {
  readonly id: string;
  /** Holders: processes with live ObjectRefs, pending task arguments, containing objects, generator holds. */
  refs: number;
  /** Zero-copy views alive in some process (and deliveries not yet acknowledged). */
  pins: number;
  data: StoredObject | undefined;
  /** Completion sequence number (0 until sealed). */
  seq: number;
  /** The last `wait` call that looked at this entry (ObjectManager's duplicate check). */
  waitStamp: number;
  waiters: ((e: ObjectEntry) => void)[] | undefined;
  /** No data here, but other nodes hold it (the node's object directory knows where): pulled when needed. */
  located?: boolean;
  /** Waiters content with the object being located elsewhere (task arguments: the task may run there). */
  availWaiters?: ((e: ObjectEntry) => void)[] | undefined;
}

/** Frees the bytes of an object (arena slice, spill file). */
export type ReleaseFn = (data: StoredObject) => void;

/** Reference-counted object table. Objects are created on first reference or on seal. */
export class ObjectTable {
  private readonly entries = new Map<string, ObjectEntry>();
  private seqCounter = 0;
  /** Number of sealed objects currently stored (for baseline checks). */
  sealedCount = 0;
  /** Someone waits for the data of an object located on other nodes only (the node pulls it). */
  onNeed: ((id: string) => void) | undefined;
  /** An entry was removed (its last holder went): the node lets go of its copies elsewhere. */
  onFreed: ((id: string) => void) | undefined;

  constructor(
    private readonly release: ReleaseFn,
    /** Called when an entry without data (e.g. an actor handle id) loses its last holder. */
    private readonly onUnreferenced?: (id: string) => void,
  ) {}

  /** The entry for `id`, if any. */
  get(id: string): ObjectEntry | undefined {
    return this.entries.get(id);
  }

  private entry(id: string): ObjectEntry {
    let e = this.entries.get(id);
    if (!e) {
      e = { id, refs: 0, pins: 0, data: undefined, seq: 0, waitStamp: 0, waiters: undefined };
      this.entries.set(id, e);
    }
    return e;
  }

  /** Add a holder of `id`. */
  incRef(id: string): void {
    this.entry(id).refs++;
  }

  /** Remove a holder of `id`; frees the object when nothing holds it. */
  decRef(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.refs--;
    this.maybeFree(e);
  }

  /** Pin a sealed object (a zero-copy view exists). */
  pin(id: string): void {
    this.entry(id).pins++;
  }

  /** Unpin; frees the object if it has no holders left. */
  unpin(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.pins--;
    this.maybeFree(e);
  }

  private maybeFree(e: ObjectEntry): void {
    if (e.refs > 0 || e.pins > 0) return;
    if (e.data === undefined && e.waiters !== undefined && e.waiters.length > 0) return;
    if (e.data === undefined && e.availWaiters !== undefined && e.availWaiters.length > 0) return;
    // Not sealed and nobody waits: the producer (if any) will find no entry and drop its result.
    this.entries.delete(e.id);
    this.onFreed?.(e.id);
    if (e.data !== undefined) this.dispose(e.data);
    else this.onUnreferenced?.(e.id);
  }

  private dispose(data: StoredObject): void {
    this.sealedCount--;
    this.release(data);
    for (const c of data.contained) this.decRef(c);
  }

  /**
   * Seal `id` with its data. Returns false (and releases the data) if the object already has data
   * (a duplicate from a retried task) or if no one holds it anymore.
   */
  seal(id: string, data: StoredObject): boolean {
    const e = this.entries.get(id);
    if (e !== undefined && e.data !== undefined) {
      this.release(data);
      return false;
    }
    const entry = e ?? this.entry(id);
    entry.data = data;
    entry.seq = ++this.seqCounter;
    this.sealedCount++;
    for (const c of data.contained) this.incRef(c);
    entry.located = undefined;
    const w = entry.waiters;
    if (w !== undefined) {
      entry.waiters = undefined;
      for (const cb of w) cb(entry);
    }
    this.fireAvail(entry);
    if (entry.refs <= 0 && entry.pins <= 0) {
      this.entries.delete(id);
      this.onFreed?.(id);
      this.dispose(data);
      return false;
    }
    return true;
  }

  /** Call `cb` once `id` is sealed (at once if it is). Returns a function that cancels the wait. */
  whenReady(id: string, cb: (e: ObjectEntry) => void): () => void {
    const e = this.addWaiter(id, cb);
    return e === undefined ? () => undefined : () => this.removeWaiter(e, cb);
  }

  /**
   * {@link whenReady} without a closure per call (`wait` over many ids shares one `cb`): returns the entry
   * to pass to {@link removeWaiter}, or undefined when `id` was sealed and `cb` already ran.
   */
  addWaiter(id: string, cb: (e: ObjectEntry) => void): ObjectEntry | undefined {
    const e = this.entry(id);
    if (e.data !== undefined) {
      cb(e);
      return undefined;
    }
    (e.waiters ??= []).push(cb);
    if (e.located) this.onNeed?.(id);
    return e;
  }

  /** Cancel a waiter {@link addWaiter} added (nothing if it ran already). */
  removeWaiter(e: ObjectEntry, cb: (e: ObjectEntry) => void): void {
    if (!e.waiters) return;
    const i = e.waiters.indexOf(cb);
    if (i !== -1) e.waiters.splice(i, 1);
    this.maybeFree(e);
  }

  /**
   * Call `cb` once `id` is sealed here or located on other nodes (at once if it is). For task arguments:
   * a task that runs on another node needs no copy here (the node pulls what a local one needs).
   */
  whenAvailable(id: string, cb: (e: ObjectEntry) => void): void {
    const e = this.entry(id);
    if (e.data !== undefined || e.located) cb(e);
    else (e.availWaiters ??= []).push(cb);
  }

  /**
   * Other nodes hold `id` (no data here): waiters for availability run now; waiters for the data get
   * it pulled (onNeed). False when the object has data here or no entry (nobody holds it).
   */
  locate(id: string): boolean {
    const e = this.entries.get(id);
    if (!e || e.data !== undefined) return false;
    e.located = true;
    this.fireAvail(e);
    if (e.waiters !== undefined && e.waiters.length > 0) this.onNeed?.(id);
    return true;
  }

  /** An object located elsewhere has no holder left there (it is sealed as lost right after). */
  unlocate(id: string): void {
    const e = this.entries.get(id);
    if (e) e.located = undefined;
  }

  private fireAvail(e: ObjectEntry): void {
    const w = e.availWaiters;
    if (w === undefined) return;
    e.availWaiters = undefined;
    for (const cb of w) cb(e);
  }

  /** Number of entries (sealed or pending). */
  get size(): number {
    return this.entries.size;
  }

  /** Sealed objects stored in the arena, oldest first, that are not pinned (spill candidates). */
  *spillCandidates(): Iterable<ObjectEntry> {
    for (const e of this.entries.values()) {
      if (e.data?.shm !== undefined && e.pins === 0) yield e;
    }
  }

  /** Drop everything (shutdown), releasing all data. */
  /** Every entry (for the state API). */
  all(): IterableIterator<ObjectEntry> {
    return this.entries.values();
  }

  clear(): void {
    for (const e of this.entries.values()) if (e.data) this.release(e.data);
    this.entries.clear();
    this.sealedCount = 0;
  }
}
