/** Base class of every error thrown by `@tsray/object-store`. */
export class ObjectStoreError extends Error {
  /** @param message - what happened and where to look. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A shared-memory arena operation failed: a system call (open, ftruncate, mmap, madvise), an offset
 * or length outside the arena, or use after {@link Arena.close}. `code` is the errno name
 * (`EEXIST`, `ENOENT`, ...) when a system call failed, otherwise a short tag.
 */
export class ArenaError extends ObjectStoreError {
  /** errno name of the failed system call, or `ERR_OUT_OF_RANGE` / `ERR_CLOSED` / `ERR_INVALID`. */
  readonly code: string;
  /** Path of the arena file concerned. */
  readonly path: string;
  /** Made by tsray, not by users (kept in the typings so `new` takes the real arguments). */
  constructor(message: string, code: string, path: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.path = path;
  }
}

/** The file system holding the arena (normally `/dev/shm`, a tmpfs) has less free space than requested. */
export class ShmSpaceError extends ArenaError {
  /** Bytes the arena needs. */
  readonly requested: number;
  /** Bytes free for unprivileged users in the arena's file system. */
  readonly available: number;
  /** Made by tsray, not by users (kept in the typings so `new` takes the real arguments). */
  constructor(path: string, requested: number, available: number) {
    super(
      `cannot create a shared-memory arena of ${requested} bytes at ${path}: its file system has only ` +
        `${available} bytes free. Free space in /dev/shm (remove stale tsray-* files), enlarge it ` +
        `(docker --shm-size, or remount tmpfs with a larger size=), or ask for a smaller arena.`,
      'ENOSPC',
      path,
    );
    this.requested = requested;
    this.available = available;
  }
}

/** The native addon `build/Release/tsray_shm.node` is missing or could not be loaded. */
export class AddonMissingError extends ObjectStoreError {
  /** Path that was tried. */
  readonly addonPath: string;
  /** Made by tsray, not by users (kept in the typings so `new` takes the real arguments). */
  constructor(addonPath: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(
      `the @tsray/object-store native addon could not be loaded from ${addonPath} (${detail.split('\n')[0]}). ` +
        `Build it with "npm rebuild @tsray/object-store" (or "npm run build:native -w @tsray/object-store"); ` +
        `it needs a C compiler, make and python3 for node-gyp.`,
      { cause },
    );
    this.addonPath = addonPath;
  }
}

/** Misuse of an {@link Allocator}: invalid size or capacity, double free, or freeing an unknown offset. */
export class AllocatorError extends ObjectStoreError {}
