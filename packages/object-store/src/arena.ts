import { randomBytes } from 'node:crypto';
import { statfsSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import type { Logger } from 'pino';
import { ArenaError, ShmSpaceError } from './errors.js';
import { loadAddon, type NativeAddon, type NativeHandle } from './native.js';

/** Directory of default arena files. */
export const SHM_DIR = '/dev/shm';

/** Options of {@link Arena.create}. */
export interface ArenaCreateOptions {
  /** File to create (must not exist). Default: {@link defaultArenaPath}(). */
  path?: string;
  /** Bytes to map; the file is created sparse with this length. */
  size: number;
  /**
   * Fault every page in on a libuv threadpool thread (`madvise(MADV_POPULATE_WRITE)`, or one write per
   * page on kernels before 5.14); {@link Arena.ready} settles when done. Default true.
   */
  prefault?: boolean;
  /** Where to report a failed background prefault (it also rejects {@link Arena.ready}). */
  logger?: Pick<Logger, 'warn'>;
  /** Threads for a large {@link Arena.write} (see {@link ArenaOpenOptions.copyThreads}). Default 1. */
  copyThreads?: number;
}

/** Options of {@link Arena.open}. */
export interface ArenaOpenOptions {
  /** Populate this process's page tables for the whole arena in the background. Default false. */
  prefault?: boolean;
  /** Where to report a failed background prefault. */
  logger?: Pick<Logger, 'warn'>;
  /**
   * Threads for a large {@link Arena.write}: the calling thread and up to `copyThreads - 1` started for
   * the copy, each taking a slice of at least 4 MiB (1 to 16; default 1, a plain memcpy). One thread
   * copies at one core's share of the memory bandwidth; on a machine with idle cores a few copy a large
   * put several times faster (Ray's puts do the same).
   */
  copyThreads?: number;
}

/** Mapping diagnostics returned by {@link Arena.stats}. */
export interface ArenaStats {
  /** {@link Arena.close} was called. */
  closed: boolean;
  /** The mapping still exists (closed arenas stay mapped while views are alive). */
  mapped: boolean;
  /** Views not yet garbage collected. */
  liveViews: number;
}

/**
 * A default arena path: `/dev/shm/tsray-<pid>-<8 hex chars>`. The pid lets a later session find and
 * remove arenas whose owner died.
 */
export function defaultArenaPath(pid: number = process.pid): string {
  return `${SHM_DIR}/tsray-${pid}-${randomBytes(4).toString('hex')}`;
}

function wrapNative(err: unknown, path: string, what: string): ArenaError {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : 'EUNKNOWN';
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  return new ArenaError(`${what} of shared-memory arena ${path} failed: ${msg}`, code, path, { cause: err });
}

/** Most threads one {@link Arena.write} uses (native/parallel_copy.h). */
const MAX_COPY_THREADS = 16;

/** Views at least this long share one backing store per range while it is alive (see `Arena.sharedViews`). */
const SHARED_VIEW_MIN_BYTES = 1 << 20;

function checkCopyThreads(n: number, path: string): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_COPY_THREADS) {
    throw new ArenaError(`copyThreads must be an integer from 1 to ${MAX_COPY_THREADS}, got ${n}`, 'ERR_INVALID', path);
  }
  return n;
}

function checkSize(size: number, path: string): void {
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new ArenaError(`arena size must be a positive safe integer, got ${size}`, 'ERR_INVALID', path);
  }
}

/**
 * One file mapped `MAP_SHARED` into this process: the per-node shared-memory object arena.
 *
 * The node runtime {@link Arena.create | creates} it (and pre-faults it in the background); workers
 * {@link Arena.open | open} the same file. {@link Arena.view} returns a zero-copy Buffer into the
 * mapping; {@link Arena.write} copies bytes in. Offsets come from an {@link Allocator} that the owner
 * keeps; the arena itself does no bookkeeping.
 *
 * After {@link Arena.close} no new views can be made, but existing views stay valid: the mapping is
 * unmapped only when the arena was closed and every view was garbage collected.
 */
export class Arena {
  /** The mapped file. */
  readonly path: string;
  /** Mapped bytes. */
  readonly size: number;
  /** True for the process that created the file (it should {@link Arena.unlink} it). */
  readonly owner: boolean;
  /**
   * Settles when the background prefault is done (at once when there is none). Rejects with an
   * {@link ArenaError} if the prefault failed (e.g. tmpfs ran out of space); a rejection that nobody
   * awaits is not reported as unhandled.
   */
  readonly ready: Promise<void>;
  private readonly native: NativeAddon;
  private readonly handle: NativeHandle;
  private readonly copyThreads: number;
  private isClosed = false;
  /**
   * Live backing stores of large views, by `offset:length`. Each native view is a new external
   * ArrayBuffer whose length V8 counts as external memory: a view of an 800 MiB object triggers a full
   * mark-compact GC ("external memory pressure") on every get, milliseconds that grow with the heap.
   * A second view of the same range while the first one's memory is alive shares its ArrayBuffer, so V8
   * sees no new external memory. Same bytes either way: both windows map the same shared memory.
   */
  private readonly sharedViews = new Map<string, WeakRef<ArrayBuffer>>();
  private readonly sharedViewCleanup = new FinalizationRegistry<string>((key) => {
    if (this.sharedViews.get(key)?.deref() === undefined) this.sharedViews.delete(key);
  });

  private constructor(native: NativeAddon, handle: NativeHandle, path: string, size: number, owner: boolean, opts: ArenaOpenOptions) {
    this.native = native;
    this.handle = handle;
    this.copyThreads = checkCopyThreads(opts.copyThreads ?? 1, path);
    const { prefault, logger } = opts;
    this.path = path;
    this.size = size;
    this.owner = owner;
    if (prefault) {
      this.ready = native.prefault(handle, 0, size).catch((err: unknown) => {
        const e = wrapNative(err, path, 'prefault');
        logger?.warn({ err: e, path }, 'shared-memory arena prefault failed');
        throw e;
      });
      this.ready.catch(() => undefined);
    } else {
      this.ready = Promise.resolve();
    }
  }

  /**
   * Creates the arena file (exclusively; it must not exist), sizes it and maps it.
   * @throws {@link ShmSpaceError} if the file system has less free space than `size`.
   * @throws {@link ArenaError} if the file exists or a system call fails.
   * @throws {@link AddonMissingError} if the native addon is not built.
   */
  static create(opts: ArenaCreateOptions): Arena {
    const path = opts.path ?? defaultArenaPath();
    checkSize(opts.size, path);
    const native = loadAddon();
    let available: number;
    try {
      const st = statfsSync(dirname(path));
      available = Number(st.bavail) * Number(st.bsize);
    } catch (err) {
      throw wrapNative(err, path, 'statfs of the directory');
    }
    if (available < opts.size) throw new ShmSpaceError(path, opts.size, available);
    let handle: NativeHandle;
    try {
      handle = native.mapFile(path, opts.size, true);
    } catch (err) {
      throw wrapNative(err, path, 'creation');
    }
    return new Arena(native, handle, path, opts.size, true, { ...opts, prefault: opts.prefault ?? true });
  }

  /**
   * Maps an existing arena file (made by {@link Arena.create} in another process).
   * @param size - bytes to map; the file must be at least this long.
   * @throws {@link ArenaError} if the file is missing or shorter than `size`.
   * @throws {@link AddonMissingError} if the native addon is not built.
   */
  static open(path: string, size: number, opts: ArenaOpenOptions = {}): Arena {
    checkSize(size, path);
    const native = loadAddon();
    let handle: NativeHandle;
    try {
      handle = native.mapFile(path, size, false);
    } catch (err) {
      throw wrapNative(err, path, 'open');
    }
    return new Arena(native, handle, path, size, false, opts);
  }

  /** True once {@link Arena.close} was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * A zero-copy Buffer over `[offset, offset + length)`. It keeps the mapping alive until it is garbage
   * collected, even after {@link Arena.close}. Writes through it are visible to every process that maps
   * the file. At most `buffer.constants.MAX_LENGTH` bytes (4 GiB on Node 20). Views of 1 MiB or more of
   * the same range share one ArrayBuffer while it is alive (see `sharedViews`).
   * @throws {@link ArenaError} if the arena is closed or the range is outside it.
   */
  view(offset: number, length: number): Buffer {
    this.checkRange(offset, length, 'view');
    if (length > bufferConstants.MAX_LENGTH) {
      throw new ArenaError(
        `view of ${length} bytes exceeds the Buffer limit of ${bufferConstants.MAX_LENGTH} bytes; take several views`,
        'ERR_OUT_OF_RANGE',
        this.path,
      );
    }
    if (length < SHARED_VIEW_MIN_BYTES) return this.native.view(this.handle, offset, length);
    const key = `${offset}:${length}`;
    const live = this.sharedViews.get(key)?.deref();
    if (live !== undefined) return Buffer.from(live, 0, length);
    const view = this.native.view(this.handle, offset, length);
    this.sharedViews.set(key, new WeakRef(view.buffer as ArrayBuffer));
    this.sharedViewCleanup.register(view.buffer, key);
    return view;
  }

  /**
   * Copies `src` into the arena at `offset` (no intermediate buffer; a large copy over the arena's
   * `copyThreads`).
   * @returns the threads the copy used (1 unless it was split).
   * @throws {@link ArenaError} if the arena is closed or the range is outside it.
   */
  write(offset: number, src: Uint8Array): number {
    this.checkRange(offset, src.byteLength, 'write');
    return this.native.copy(this.handle, offset, src, this.copyThreads);
  }

  /**
   * Faults in `[offset, offset + length)` for this process in a threadpool thread (for example a worker
   * that wants its page tables populated before a large read or write).
   * @throws {@link ArenaError} if the arena is closed or the range is outside it; the promise rejects with
   *   one if the kernel refuses.
   */
  prefault(offset: number, length: number): Promise<void> {
    this.checkRange(offset, length, 'prefault');
    return this.native.prefault(this.handle, offset, length).catch((err: unknown) => {
      throw wrapNative(err, this.path, 'prefault');
    });
  }

  /** Diagnostics of the mapping (works after close). */
  stats(): ArenaStats {
    const i = this.native.info(this.handle);
    return { closed: i.closed, mapped: i.mapped, liveViews: i.views };
  }

  /**
   * Gives up this arena's hold on the mapping; it is unmapped once every view is garbage collected.
   * A running prefault stops early. Idempotent. Does not remove the file: see {@link Arena.unlink}.
   */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.native.close(this.handle);
  }

  /**
   * Removes the file from the file system. Processes that mapped it keep their mapping; the memory is
   * returned to tmpfs when the last mapping goes away. Idempotent (a missing file is not an error).
   * @throws {@link ArenaError} if the unlink fails for another reason.
   */
  unlink(): void {
    try {
      unlinkSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw wrapNative(err, this.path, 'unlink');
    }
  }

  private checkRange(offset: number, length: number, what: string): void {
    if (this.isClosed) {
      throw new ArenaError(`${what} on closed shared-memory arena ${this.path}`, 'ERR_CLOSED', this.path);
    }
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new ArenaError(
        `${what} of [${offset}, ${offset} + ${length}) is outside shared-memory arena ${this.path} of ${this.size} bytes`,
        'ERR_OUT_OF_RANGE',
        this.path,
      );
    }
  }
}
