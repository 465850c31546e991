/**
 * The shared-memory segment of a collective group whose ranks are all TypeScript processes of one node:
 * a file in /dev/shm (mode 0600, named by the coordinator with a random token, unlinked by rank 0 once
 * every rank has mapped it) that each rank maps, and the barrier its ranks synchronise with (futex in
 * the segment's header, `native/shm.c`). With it an allreduce sends no message through the node: the
 * coordinator only forms the group (and names the segment) and is asked, only while a barrier has waited
 * 250 ms or more, whether a rank died.
 *
 * Layout: a 4 KiB header of 32-bit words — the barrier counter, the abort word, each rank's barrier
 * count and, per op parity, each rank's op signature — then the data (`shm-allreduce.ts`). A segment that
 * failed once (a rank died, a timeout, mismatched calls) is never used again: every rank joins the
 * coordinator again at its next collective, which forms a new epoch with a new segment.
 * @module
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, unlinkSync } from 'node:fs';
import { CollectiveUsageError, errorFromFailure, type CollectiveError, type FailureInfo } from './errors.js';
import { reduceAddon, type ReduceAddon } from './native.js';

/** Bytes of the header; the data starts here. */
export const SHM_HEADER_BYTES = 4096;
/** Largest group the segment serves (the header has a word per rank); larger groups use the object store. */
export const SHM_MAX_RANKS = 256;
/** Header word indexes: keep in sync with native/shm.c. */
const ARRIVED_WORD = 16;
const SIG_WORD = ARRIVED_WORD + SHM_MAX_RANKS;
/** One blocking futex wait lasts at most this long before the event loop runs again. */
const SLICE_MS = 50;
/** While a barrier waits, the coordinator is asked this often whether the group failed (a rank died). */
export const HEALTH_INTERVAL_MS = 250;

const KIND_CODE: Record<FailureInfo['kind'], number> = { rank_died: 1, timeout: 2, usage: 3 };
const KIND_NAME: FailureInfo['kind'][] = ['usage', 'rank_died', 'timeout', 'usage'];

/** The addon when it has the segment primitives and this is Linux (futexes, /dev/shm); else undefined. */
export function shmAddon(): ReduceAddon | undefined {
  const a = reduceAddon();
  return a && typeof a.mapShared === 'function' && process.platform === 'linux' ? a : undefined;
}

/** What a barrier needs besides the segment: where to report, the deadline, the coordinator's verdict. */
export interface BarrierContext {
  group: string;
  /** `Date.now()` after which the barrier fails with a timeout (Infinity: none). */
  deadline: number;
  timeoutMs?: number;
  /** Asks the coordinator whether the group failed (a rank died): the failure, or undefined. */
  health(): Promise<FailureInfo | undefined>;
}

/** FNV-1a of an op's signature (operation, dtype, length), never 0 (0 = not written). */
export function signatureHash(signature: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < signature.length; i++) h = Math.imul(h ^ signature.charCodeAt(i), 0x01000193) >>> 0;
  return h || 1;
}

/** One rank's mapping of its group's segment (see the module comment). */
export class ShmSegment {
  private buf: ArrayBuffer;
  private words: Uint32Array;

  /** This rank's index among the segment's ranks, and how many share it. */
  readonly rank: number;
  readonly worldSize: number;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    /** The group ranks sharing the segment (this node's), in rank order: index = segment rank. */
    readonly ranks: readonly number[],
    groupRank: number,
    private readonly addon: ReduceAddon,
  ) {
    this.rank = ranks.indexOf(groupRank);
    this.worldSize = ranks.length;
    this.buf = addon.mapShared(fd, SHM_HEADER_BYTES);
    this.words = new Uint32Array(this.buf, 0, SHM_HEADER_BYTES / 4);
  }

  /**
   * Open (creating it when this rank is first, 0600) and map the segment at `path`. Refuses a file that
   * is not a regular file of this user closed to others (another user could have planted it).
   */
  static open(group: string, path: string, ranks: readonly number[], groupRank: number): ShmSegment {
    const addon = shmAddon();
    if (!addon) throw new CollectiveUsageError(group, 'the shared-memory segment needs the native addon on Linux');
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      const st = fstatSync(fd);
      const me = process.getuid?.();
      if (!st.isFile() || (me !== undefined && st.uid !== me) || (st.mode & 0o077) !== 0) {
        throw new CollectiveUsageError(group, `refusing the shared-memory segment ${path}: not a private file of this user`);
      }
      if (st.size < SHM_HEADER_BYTES) ftruncateSync(fd, SHM_HEADER_BYTES);
      return new ShmSegment(path, fd, ranks, groupRank, addon);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The mapping (at least the bytes last `ensure`d): views over it read and write the segment. */
  get buffer(): ArrayBuffer {
    return this.buf;
  }

  /**
   * Make the segment (and this rank's mapping) at least `bytes` long. Every rank of an op asks the same
   * size, and the file only grows, so concurrent growth by several ranks is harmless.
   */
  ensure(bytes: number): void {
    if (this.buf.byteLength >= bytes) return;
    if (fstatSync(this.fd).size < bytes) ftruncateSync(this.fd, bytes);
    // The old mapping is unmapped when its ArrayBuffer is collected; views of it must not be kept.
    this.buf = this.addon.mapShared(this.fd, bytes);
    this.words = new Uint32Array(this.buf, 0, SHM_HEADER_BYTES / 4);
  }

  /** Publish this rank's signature of its op number `seq` (read by the others after the next barrier). */
  setSignature(seq: number, hash: number): void {
    this.words[SIG_WORD + (seq % 2) * SHM_MAX_RANKS + this.rank] = hash;
  }

  /** Whether every rank published the same signature for op `seq` (call after a barrier of that op). */
  signaturesAgree(seq: number): boolean {
    const base = SIG_WORD + (seq % 2) * SHM_MAX_RANKS;
    for (let r = 1; r < this.worldSize; r++) if (this.words[base + r] !== this.words[base]) return false;
    return true;
  }

  /**
   * Wait until every rank has arrived at this barrier. Fails (for every rank, by aborting the segment)
   * when the deadline passes or the coordinator says a rank died; throws the typed error.
   */
  async barrier(ctx: BarrierContext): Promise<void> {
    const k = this.addon.shmArrive(this.buf, this.rank);
    const target = (k * this.worldSize) >>> 0;
    let nextHealth = Date.now() + HEALTH_INTERVAL_MS;
    for (;;) {
      const s = this.addon.shmWait(this.buf, target, SLICE_MS);
      if (s === 0) return;
      if (s === 2) throw this.error(ctx);
      // Let this process's event loop run (actor calls, timers) between blocking slices.
      await new Promise((r) => setImmediate(r));
      const now = Date.now();
      if (now > ctx.deadline) {
        const missing = this.missing(k);
        this.fail({ kind: 'timeout', message: 'timed out', missing, timeoutMs: ctx.timeoutMs ?? 0 });
        throw this.error(ctx, { kind: 'timeout', message: 'timed out', missing, timeoutMs: ctx.timeoutMs ?? 0 });
      }
      if (now >= nextHealth) {
        const f = await ctx.health();
        if (f) {
          this.fail(f);
          throw this.error(ctx, f);
        }
        nextHealth = Date.now() + HEALTH_INTERVAL_MS;
      }
    }
  }

  /** Mark the segment failed with `f` (the first failure wins) and wake every rank waiting in it. */
  fail(f: FailureInfo): void {
    this.addon.shmAbort(this.buf, KIND_CODE[f.kind], f.rank ?? 0xffff);
  }

  /** Stop using the segment (the mapping goes when collected). */
  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }

  /** Remove the file (once every rank has mapped it: the mappings stay). */
  unlink(): void {
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }

  /** Group ranks (of this segment's) that have not arrived at barrier `k`. */
  private missing(k: number): number[] {
    const out: number[] = [];
    for (let r = 0; r < this.worldSize; r++) if (((this.words[ARRIVED_WORD + r]! - k) | 0) < 0) out.push(this.ranks[r]!);
    return out;
  }

  /** The typed error of the segment's first failure (`mine`: what this rank learnt, when it is that one). */
  private error(ctx: BarrierContext, mine?: FailureInfo): CollectiveError {
    const word = this.words[1]!;
    const kind = KIND_NAME[word >>> 16] ?? 'usage';
    const rank = word & 0xffff;
    if (mine && mine.kind === kind && (mine.rank ?? 0xffff) === rank) return errorFromFailure(ctx.group, mine);
    if (kind === 'rank_died') return errorFromFailure(ctx.group, { kind, rank, message: 'another rank saw it die while the group was in a collective' });
    if (kind === 'timeout') {
      const k = this.words[ARRIVED_WORD + this.rank]!;
      return errorFromFailure(ctx.group, { kind, message: 'timed out', missing: this.missing(k), timeoutMs: ctx.timeoutMs ?? 0 });
    }
    return errorFromFailure(ctx.group, { kind: 'usage', message: 'another rank failed the collective (see its error)' });
  }
}
