/**
 * The node's object bytes: inline (heap) for small objects, the shared-memory arena for large ones,
 * spill files when the arena is full.
 * @internal
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Allocator, Arena } from '@tsray/object-store';
import { config } from '../config.js';
import { ObjectStoreFullError } from '../errors.js';
import { logger } from '../logger.js';
import type { SerializedValue } from '../serialization.js';
import { type ObjectTable, type StoredObject, storedObject } from './object-table.js';

/** Ray's max_direct_call_object_size: objects up to this size stay inline. */
export const INLINE_THRESHOLD = 100 * 1024;

export interface NodeStoreOptions {
  capacity: number;
  spillDir: string;
  spilling: boolean;
  /** Bytes of the arena to fault in at start (in a background thread). */
  prefaultBytes: number;
  /** Called when the arena is more than half full (the driver then collects dropped refs). */
  onPressure?: () => void;
}

/**
 * Threads for one large copy into the arena in this process (`TSRAY_OBJECT_COPY_THREADS`; 0: the cores,
 * at most 8). A large put is memory-bound: one thread copies at one core's share of the bandwidth.
 */
export function arenaCopyThreads(): number {
  const set = config().objectCopyThreads;
  return set > 0 ? set : Math.min(8, availableParallelism());
}

/** Arena + allocator + spill directory of one node. */
export class NodeStore {
  readonly arena: Arena;
  /** Open descriptor of the (already unlinked) arena file, handed to workers as fd 3. */
  readonly arenaFd: number;
  readonly allocator: Allocator;
  private table: ObjectTable | undefined;
  private spillSeq = 0;
  spilledBytes = 0;

  constructor(private readonly opts: NodeStoreOptions) {
    this.arena = Arena.create({ size: opts.capacity, prefault: false, copyThreads: arenaCopyThreads() });
    // Keep a descriptor and unlink at once: nothing is left in /dev/shm even if this process is killed.
    this.arenaFd = openSync(this.arena.path, 'r+');
    unlinkSync(this.arena.path);
    this.allocator = new Allocator(opts.capacity);
    if (opts.prefaultBytes > 0) {
      this.arena.prefault(0, Math.min(opts.prefaultBytes, opts.capacity)).catch((e) => logger().warn({ err: e }, 'arena prefault failed'));
    }
  }

  /** Connect the object table (for spilling). */
  attach(table: ObjectTable): void {
    this.table = table;
  }

  get capacity(): number {
    return this.allocator.capacity;
  }

  get used(): number {
    return this.allocator.used;
  }

  /** Allocate `size` bytes in the arena, spilling unpinned objects if needed. Throws ObjectStoreFullError. */
  allocate(size: number): number {
    let off = this.allocator.alloc(size);
    if (this.allocator.used * 2 > this.allocator.capacity) this.opts.onPressure?.();
    if (off !== -1) return off;
    if (this.opts.spilling && this.table && size <= this.allocator.capacity) {
      for (const e of this.table.spillCandidates()) {
        this.spill(e.data!);
        off = this.allocator.alloc(size);
        if (off !== -1) return off;
      }
    }
    throw new ObjectStoreFullError(size, this.allocator.capacity, this.allocator.used);
  }

  /** Move an arena object to a spill file. */
  private spill(data: StoredObject): void {
    const shm = data.shm!;
    mkdirSync(this.opts.spillDir, { recursive: true });
    const path = join(this.opts.spillDir, `obj-${this.spillSeq++}`);
    const fd = openSync(path, 'w');
    try {
      const view = this.arena.view(shm.offset, shm.length);
      let done = 0;
      while (done < view.length) done += writeSync(fd, view, done, view.length - done);
    } finally {
      closeSync(fd);
    }
    this.allocator.free(shm.offset);
    data.shm = undefined;
    data.spillPath = path;
    this.spilledBytes += shm.length;
    logger().debug({ path, bytes: shm.length }, 'spilled object');
  }

  /** Store a serialized value: copies the bytes (inline, arena, or a spill file). */
  store(sv: SerializedValue): StoredObject {
    const n = sv.bytes.byteLength;
    const { encoding, rawKind, containedRefs } = sv;
    if (n <= INLINE_THRESHOLD) return storedObject(encoding, rawKind, n, containedRefs, Buffer.from(sv.bytes), undefined, undefined);
    let offset: number;
    try {
      offset = this.allocate(n);
    } catch (e) {
      if (this.opts.spilling && n > this.allocator.capacity)
        return storedObject(encoding, rawKind, n, containedRefs, undefined, undefined, this.writeSpill(sv.bytes));
      throw e;
    }
    this.arena.write(offset, sv.bytes);
    return storedObject(encoding, rawKind, n, containedRefs, undefined, { offset, length: n }, undefined);
  }

  private writeSpill(bytes: Uint8Array): string {
    mkdirSync(this.opts.spillDir, { recursive: true });
    const path = join(this.opts.spillDir, `obj-${this.spillSeq++}`);
    const fd = openSync(path, 'w');
    try {
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
    } finally {
      closeSync(fd);
    }
    this.spilledBytes += bytes.byteLength;
    return path;
  }

  /** The bytes of a stored object (a view for arena objects, a fresh Buffer for spilled ones). */
  bytes(data: StoredObject): Buffer {
    if (data.inline) return data.inline;
    if (data.shm) return this.arena.view(data.shm.offset, data.shm.length);
    return readFileSync(data.spillPath!);
  }

  /** Free the bytes of an object. */
  release(data: StoredObject): void {
    if (data.shm) {
      this.allocator.free(data.shm.offset);
      data.shm = undefined;
    } else if (data.spillPath) {
      rmSync(data.spillPath, { force: true });
      this.spilledBytes -= data.size;
      data.spillPath = undefined;
    }
  }

  /** Unmap and close (shutdown). */
  close(): void {
    try {
      closeSync(this.arenaFd);
    } catch {
      /* already closed */
    }
    this.arena.close();
    rmSync(this.opts.spillDir, { recursive: true, force: true });
  }
}
