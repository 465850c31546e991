import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Allocator } from './allocator.js';
import { AllocatorError } from './errors.js';

/** Checks every structural invariant; returns nothing, throws on violation. */
function checkInvariants(a: Allocator): void {
  const free = a.freeExtents();
  const live = a.allocations();
  const all = [...free.map((e) => ({ ...e, free: true })), ...live.map((e) => ({ ...e, free: false }))].sort((x, y) => x.offset - y.offset);
  // Free and live extents tile [0, capacity) exactly: no overlap, no gap.
  let pos = 0;
  for (const e of all) {
    expect(e.offset).toBe(pos);
    expect(e.size).toBeGreaterThan(0);
    expect(e.offset % a.alignment).toBe(0);
    expect(e.size % a.alignment).toBe(0);
    pos += e.size;
  }
  expect(pos).toBe(a.capacity);
  // Coalesced: no two free extents touch.
  for (let i = 1; i < free.length; i++) {
    expect(free[i - 1]!.offset + free[i - 1]!.size).toBeLessThan(free[i]!.offset);
  }
  expect(a.used).toBe(live.reduce((s, e) => s + e.size, 0));
  expect(a.freeBytes).toBe(free.reduce((s, e) => s + e.size, 0));
  expect(a.largestFree).toBe(free.reduce((m, e) => Math.max(m, e.size), 0));
  expect(a.freeExtentCount).toBe(free.length);
  expect(a.count).toBe(live.length);
}

describe('Allocator: placement, alignment and coalescing', () => {
  it('allocates first-fit from low addresses with 64-byte alignment', () => {
    const a = new Allocator(1000);
    expect(a.capacity).toBe(960);
    expect(a.alignment).toBe(64);
    expect(a.alloc(1)).toBe(0);
    expect(a.alloc(64)).toBe(64);
    expect(a.alloc(65)).toBe(128);
    expect(a.sizeOf(128)).toBe(128);
    expect(a.alloc(0)).toBe(256); // zero-byte requests still get a distinct offset
    expect(a.used).toBe(320);
    expect(a.freeExtents()).toEqual([{ offset: 320, size: 640 }]);
    checkInvariants(a);
  });

  it('returns -1 when nothing fits, then succeeds after a free', () => {
    const a = new Allocator(256);
    const x = a.alloc(128);
    const y = a.alloc(128);
    expect(a.alloc(1)).toBe(-1);
    expect(a.largestFree).toBe(0);
    a.free(x);
    expect(a.alloc(200)).toBe(-1);
    expect(a.alloc(100)).toBe(x);
    a.free(y);
    checkInvariants(a);
  });

  it('coalesces with the extent below, above, and both', () => {
    const a = new Allocator(64 * 10);
    const o = Array.from({ length: 10 }, () => a.alloc(64));
    expect(o).toEqual([0, 64, 128, 192, 256, 320, 384, 448, 512, 576]);
    a.free(o[2]!);
    a.free(o[4]!);
    expect(a.freeExtents()).toEqual([
      { offset: 128, size: 64 },
      { offset: 256, size: 64 },
    ]);
    a.free(o[3]!); // merges both neighbours
    expect(a.freeExtents()).toEqual([{ offset: 128, size: 192 }]);
    a.free(o[1]!); // merges with the extent above
    expect(a.freeExtents()).toEqual([{ offset: 64, size: 256 }]);
    a.free(o[5]!); // merges with the extent below
    expect(a.freeExtents()).toEqual([{ offset: 64, size: 320 }]);
    for (const i of [0, 6, 7, 8, 9]) a.free(o[i]!);
    expect(a.freeExtents()).toEqual([{ offset: 0, size: 640 }]);
    expect(a.used).toBe(0);
    checkInvariants(a);
  });

  it('first fit picks the lowest hole that is large enough', () => {
    const a = new Allocator(64 * 100);
    const o = Array.from({ length: 6 }, (_, i) => a.alloc(64 * (i + 1)));
    a.free(o[1]!); // hole of 128 at 64
    a.free(o[3]!); // hole of 256 at 384
    expect(a.alloc(200)).toBe(o[3]);
    expect(a.alloc(100)).toBe(o[1]);
    checkInvariants(a);
  });

  it('honours a custom alignment', () => {
    const a = new Allocator(1 << 20, { alignment: 4096 });
    expect(a.alloc(1)).toBe(0);
    expect(a.alloc(4097)).toBe(4096);
    expect(a.alloc(10)).toBe(3 * 4096);
  });
});

describe('Allocator: bad input, scale and random sequences', () => {
  it('rejects double free, unknown offsets and bad arguments with AllocatorError', () => {
    const a = new Allocator(4096);
    const x = a.alloc(256);
    a.free(x);
    expect(() => a.free(x)).toThrow(AllocatorError);
    expect(() => a.free(x)).toThrow(/double free/);
    const y = a.alloc(256);
    expect(() => a.free(y + 64)).toThrow(/not the start of an allocation/);
    expect(() => a.free(1 << 20)).toThrow(/not an offset inside/);
    expect(() => a.free(-1)).toThrow(AllocatorError);
    expect(() => a.alloc(-1)).toThrow(AllocatorError);
    expect(() => a.alloc(1.5)).toThrow(AllocatorError);
    expect(() => new Allocator(-1)).toThrow(AllocatorError);
    expect(() => new Allocator(1024, { alignment: 48 })).toThrow(AllocatorError);
    checkInvariants(a);
  });

  it('handles a zero capacity', () => {
    const a = new Allocator(10);
    expect(a.capacity).toBe(0);
    expect(a.alloc(1)).toBe(-1);
    expect(a.freeExtents()).toEqual([]);
  });

  it('supports offsets beyond 2^32 (large arenas)', () => {
    const a = new Allocator(64 * 2 ** 30);
    const x = a.alloc(5 * 2 ** 30);
    const y = a.alloc(1024);
    expect(y).toBe(5 * 2 ** 30);
    a.free(x);
    a.free(y);
    expect(a.freeExtents()).toEqual([{ offset: 0, size: 64 * 2 ** 30 }]);
  });

  it('keeps its extents right with many live objects (100k allocs and frees in random order)', () => {
    const a = new Allocator(2 ** 40);
    const n = 100_000;
    const offs: number[] = [];
    for (let i = 0; i < n; i++) offs.push(a.alloc(100 * 1024 + ((i * 7919) % 4096)));
    // Free every other object first (maximal fragmentation: 50k holes), then allocate into the holes.
    for (let i = 0; i < n; i += 2) a.free(offs[i]!);
    expect(a.freeExtentCount).toBe(n / 2 + 1);
    for (let i = 0; i < n; i += 2) offs[i] = a.alloc(100 * 1024);
    // Shuffle and free everything.
    for (let i = n - 1; i > 0; i--) {
      const j = (i * 2654435761) % (i + 1);
      [offs[i], offs[j]] = [offs[j]!, offs[i]!];
    }
    for (const o of offs) a.free(o);
    // Correctness only: how fast (a linear scan would take minutes) is bench/'s to measure.
    expect(a.freeExtents()).toEqual([{ offset: 0, size: 2 ** 40 }]);
  });

  it('property: random alloc/free sequences never overlap, keep alignment, and free restores capacity', () => {
    type Op = { kind: 'alloc'; size: number } | { kind: 'free'; pick: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('alloc' as const), size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 5000 })) }),
      fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20_000 }), fc.constantFrom(8, 64, 256), fc.array(op, { maxLength: 200 }), (capacity, alignment, ops) => {
        const a = new Allocator(capacity, { alignment });
        const live = new Map<number, number>(); // offset -> requested size
        for (const o of ops) {
          if (o.kind === 'alloc') {
            const largest = a.largestFree;
            const need = Math.max(alignment, Math.ceil(o.size / alignment) * alignment);
            const off = a.alloc(o.size);
            if (off === -1) {
              expect(largest).toBeLessThan(need);
              continue;
            }
            expect(off % alignment).toBe(0);
            expect(off + o.size).toBeLessThanOrEqual(a.capacity);
            for (const [lo, ls] of live) {
              const lsz = a.sizeOf(lo)!;
              expect(off + need <= lo || lo + lsz <= off).toBe(true);
              expect(lsz).toBeGreaterThanOrEqual(ls); // a live block holds at least what was asked
            }
            live.set(off, o.size);
          } else if (live.size > 0) {
            const keys = [...live.keys()];
            const k = keys[o.pick % keys.length]!;
            a.free(k);
            live.delete(k);
          }
        }
        checkInvariants(a);
        for (const k of live.keys()) a.free(k);
        expect(a.used).toBe(0);
        expect(a.freeExtents()).toEqual(a.capacity > 0 ? [{ offset: 0, size: a.capacity }] : []);
      }),
      { numRuns: 300 },
    );
  });
});
