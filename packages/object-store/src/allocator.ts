import { AllocatorError } from './errors.js';

/** A free range of the arena: `[offset, offset + size)`. */
export interface Extent {
  /** Start of the range, a multiple of the allocator's alignment. */
  readonly offset: number;
  /** Length of the range in bytes, a multiple of the allocator's alignment. */
  readonly size: number;
}

/** Options of {@link Allocator}. */
export interface AllocatorOptions {
  /** Alignment of every offset and granularity of every size, a power of two. Default 64. */
  alignment?: number;
}

/** Default alignment of allocations (one cache line). */
export const DEFAULT_ALIGNMENT = 64;

/** A free extent in a treap ordered by offset, augmented with the largest extent of its subtree. */
interface Node {
  offset: number;
  size: number;
  /** Largest `size` in this subtree. */
  max: number;
  prio: number;
  left: Node | null;
  right: Node | null;
}

function maxOf(n: Node | null): number {
  return n === null ? 0 : n.max;
}

function update(n: Node): void {
  const l = maxOf(n.left);
  const r = maxOf(n.right);
  n.max = n.size > l ? (n.size > r ? n.size : r) : l > r ? l : r;
}

/** Splits `n` into keys `< key` and keys `>= key`. */
function split(n: Node | null, key: number): [Node | null, Node | null] {
  if (n === null) return [null, null];
  if (n.offset < key) {
    const [a, b] = split(n.right, key);
    n.right = a;
    update(n);
    return [n, b];
  }
  const [a, b] = split(n.left, key);
  n.left = b;
  update(n);
  return [a, n];
}

/** Joins two treaps where every key of `a` is below every key of `b`. */
function merge(a: Node | null, b: Node | null): Node | null {
  if (a === null) return b;
  if (b === null) return a;
  if (a.prio > b.prio) {
    a.right = merge(a.right, b);
    update(a);
    return a;
  }
  b.left = merge(a, b.left);
  update(b);
  return b;
}

/**
 * Address-ordered first-fit allocator over `[0, capacity)` with coalescing on free. Pure bookkeeping
 * (no I/O): it hands out offsets into an arena that someone else maps.
 *
 * Free extents live in a treap keyed by offset and augmented with the largest extent per subtree, so
 * `alloc` (lowest-addressed extent that fits) and `free` (with merging of both neighbours) are
 * O(log n) in the number of free extents. Every offset and size is a multiple of `alignment`
 * (default 64 bytes); a request is rounded up to it (a request of 0 bytes takes one unit).
 */
export class Allocator {
  /** Usable bytes: the constructor's capacity rounded down to the alignment. */
  readonly capacity: number;
  /** Alignment of offsets and granularity of sizes. */
  readonly alignment: number;
  private root: Node | null = null;
  private readonly allocated = new Map<number, number>();
  private usedBytes = 0;
  private extents = 0;

  /**
   * @param capacity - bytes to manage, starting at offset 0; rounded down to the alignment.
   * @param options - see {@link AllocatorOptions}.
   * @throws {@link AllocatorError} if capacity or alignment is invalid.
   */
  constructor(capacity: number, options: AllocatorOptions = {}) {
    const alignment = options.alignment ?? DEFAULT_ALIGNMENT;
    if (!Number.isSafeInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0 || alignment > 2 ** 30) {
      throw new AllocatorError(`alignment must be a power of two up to 2^30, got ${alignment}`);
    }
    if (!Number.isSafeInteger(capacity) || capacity < 0) {
      throw new AllocatorError(`capacity must be a non-negative safe integer, got ${capacity}`);
    }
    this.alignment = alignment;
    this.capacity = capacity - (capacity % alignment);
    if (this.capacity > 0) this.insert(0, this.capacity);
  }

  /** Bytes currently allocated (sum of the rounded sizes of live allocations). */
  get used(): number {
    return this.usedBytes;
  }

  /** Bytes currently free (`capacity - used`). */
  get freeBytes(): number {
    return this.capacity - this.usedBytes;
  }

  /** Size of the largest free extent: the largest request that `alloc` can satisfy right now. */
  get largestFree(): number {
    return maxOf(this.root);
  }

  /** Number of live allocations. */
  get count(): number {
    return this.allocated.size;
  }

  /** Number of free extents (a measure of fragmentation). */
  get freeExtentCount(): number {
    return this.extents;
  }

  /**
   * Allocates `size` bytes (rounded up to the alignment) from the lowest-addressed free extent that fits.
   * @returns the offset, or -1 if no free extent is large enough (the caller may spill or evict and retry).
   * @throws {@link AllocatorError} if `size` is not a non-negative safe integer.
   */
  alloc(size: number): number {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new AllocatorError(`alloc size must be a non-negative safe integer, got ${size}`);
    }
    const a = this.alignment;
    const need = size <= a ? a : Math.ceil(size / a) * a;
    if (maxOf(this.root) < need) return -1;
    // Descend to the leftmost node that fits, remembering the path to fix the `max` fields.
    const path: Node[] = [];
    let n = this.root as Node;
    for (;;) {
      path.push(n);
      if (maxOf(n.left) >= need) n = n.left as Node;
      else if (n.size >= need) break;
      else n = n.right as Node;
    }
    const offset = n.offset;
    if (n.size === need) {
      this.remove(offset);
    } else {
      // Shrinking from the front keeps the key order: the new start is still below the successor.
      n.offset += need;
      n.size -= need;
      for (let i = path.length - 1; i >= 0; i--) update(path[i] as Node);
    }
    this.allocated.set(offset, need);
    this.usedBytes += need;
    return offset;
  }

  /**
   * Returns an allocation to the free space, merging it with free neighbours.
   * @param offset - a value returned by {@link Allocator.alloc} and not freed since.
   * @throws {@link AllocatorError} on a double free or an offset that was never allocated.
   */
  free(offset: number): void {
    const size = this.allocated.get(offset);
    if (size === undefined) throw new AllocatorError(this.describeBadFree(offset));
    this.allocated.delete(offset);
    this.usedBytes -= size;
    const end = offset + size;
    // Neighbours: the extent ending at `offset` and the one starting at `end`, if free.
    const [below, rest] = split(this.root, offset);
    const [atEnd, above] = split(rest, end + 1);
    // `atEnd` holds at most the extent starting exactly at `end` (nothing free lies in [offset, end)).
    let start = offset;
    let length = size;
    if (atEnd !== null) {
      length += atEnd.size;
      this.extents--;
    }
    let left = below;
    const pred = below === null ? null : rightmost(below);
    if (pred !== null && pred.offset + pred.size === offset) {
      const [l] = split(below, pred.offset);
      left = l;
      start = pred.offset;
      length += pred.size;
      this.extents--;
    }
    const node: Node = { offset: start, size: length, max: length, prio: Math.random(), left: null, right: null };
    this.extents++;
    this.root = merge(merge(left, node), above);
  }

  /**
   * Size in bytes (rounded to the alignment) of the live allocation at `offset`, or undefined if there is none.
   */
  sizeOf(offset: number): number | undefined {
    return this.allocated.get(offset);
  }

  /** The free extents in address order (for tests and diagnostics; O(n)). */
  freeExtents(): Extent[] {
    const out: Extent[] = [];
    const walk = (n: Node | null): void => {
      if (n === null) return;
      walk(n.left);
      out.push({ offset: n.offset, size: n.size });
      walk(n.right);
    };
    walk(this.root);
    return out;
  }

  /** The live allocations in address order (for tests and diagnostics; O(n log n)). */
  allocations(): Extent[] {
    return [...this.allocated].map(([offset, size]) => ({ offset, size })).sort((x, y) => x.offset - y.offset);
  }

  private insert(offset: number, size: number): void {
    const [l, r] = split(this.root, offset);
    const node: Node = { offset, size, max: size, prio: Math.random(), left: null, right: null };
    this.root = merge(merge(l, node), r);
    this.extents++;
  }

  private remove(offset: number): void {
    const [l, r] = split(this.root, offset);
    const [, rr] = split(r, offset + 1);
    this.root = merge(l, rr);
    this.extents--;
  }

  private describeBadFree(offset: number): string {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.capacity) {
      return `free(${offset}): not an offset inside this allocator's capacity of ${this.capacity} bytes`;
    }
    // Is it inside a free extent (double free) or inside a live allocation (not its start)?
    let n = this.root;
    while (n !== null) {
      if (offset < n.offset) n = n.left;
      else if (offset >= n.offset + n.size) n = n.right;
      else {
        return `free(${offset}): double free, or an offset that was never allocated (it lies in free extent [${n.offset}, ${n.offset + n.size}))`;
      }
    }
    return `free(${offset}): not the start of an allocation (it lies inside a live allocation; pass the offset alloc() returned)`;
  }
}

function rightmost(n: Node): Node {
  while (n.right !== null) n = n.right;
  return n;
}
