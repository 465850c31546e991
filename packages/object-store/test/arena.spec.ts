import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, ArenaError, defaultArenaPath, ShmSpaceError } from '../src/index.js';
import { ArenaTracker, collectUntil, isMapped, testPath } from './helpers.js';

const MiB = 1 << 20;
const tracker = new ArenaTracker();
afterEach(() => tracker.cleanup());

describe('Arena', () => {
  it('creates, maps, writes, views and unmaps in one process', async () => {
    const a = tracker.create({ size: 4 * MiB });
    await a.ready;
    expect(a.size).toBe(4 * MiB);
    expect(a.owner).toBe(true);
    expect(statSync(a.path).size).toBe(4 * MiB);
    expect(isMapped(a.path)).toBe(true);

    const data = Buffer.from('hello shared memory');
    a.write(1000, data);
    expect(a.view(1000, data.length).toString()).toBe('hello shared memory');

    // Two views of the same bytes alias each other (no copies).
    const v1 = a.view(2 * MiB, 64);
    const v2 = a.view(2 * MiB, 64);
    v1.fill(0x5a);
    expect(v2.every((b) => b === 0x5a)).toBe(true);
    expect(a.view(0, 0).length).toBe(0);

    // A second mapping of the same file in the same process sees the same bytes.
    const b = tracker.open(a.path, 4 * MiB);
    expect(b.owner).toBe(false);
    expect(b.view(1000, data.length).equals(data)).toBe(true);
    b.write(3 * MiB, Buffer.from([1, 2, 3]));
    expect([...a.view(3 * MiB, 3)]).toEqual([1, 2, 3]);
    b.close();
    await b.ready;

    a.close();
    a.unlink();
    expect(existsSync(a.path)).toBe(false);
  });

  it('uses a default path /dev/shm/tsray-<pid>-<hex> and leaves nothing behind after close + unlink', async () => {
    expect(defaultArenaPath(42)).toMatch(/^\/dev\/shm\/tsray-42-[0-9a-f]{8}$/);
    const before = new Set(readdirSync('/dev/shm'));
    const a = Arena.create({ size: MiB });
    tracker.track(a.path);
    expect(a.path).toMatch(new RegExp(`^/dev/shm/tsray-${process.pid}-[0-9a-f]{8}$`));
    await a.ready;
    a.close();
    a.unlink();
    a.unlink(); // idempotent
    const after = readdirSync('/dev/shm').filter((f) => !before.has(f));
    expect(after).toEqual([]);
    expect(isMapped(a.path)).toBe(false);
  });

  it('keeps a view readable after close() until it is garbage collected, then unmaps', async () => {
    const a = tracker.create({ size: MiB, prefault: false });
    const path = a.path;
    // Make the view in a separate function so no stack slot of this test keeps it alive.
    const holder: { view?: Buffer } = {};
    (() => {
      holder.view = a.view(4096, 4096);
      holder.view.fill(0xab);
    })();
    a.close();
    a.unlink();
    expect(existsSync(path)).toBe(false);
    expect(() => a.view(0, 1)).toThrow(ArenaError);
    expect(() => a.write(0, Buffer.alloc(1))).toThrow(/closed/);
    expect(holder.view![4095]).toBe(0xab);
    expect(a.stats()).toEqual({ closed: true, mapped: true, liveViews: 1 });
    expect(isMapped(path)).toBe(true);

    delete holder.view;
    expect(await collectUntil(() => !a.stats().mapped)).toBe(true);
    expect(a.stats()).toEqual({ closed: true, mapped: false, liveViews: 0 });
    expect(isMapped(path)).toBe(false);
    a.close(); // idempotent
  });

  it('large views of one range share a backing store while it is alive (no new external memory per view)', () => {
    const a = tracker.create({ size: 8 * MiB, prefault: false });
    const holder: { first?: Buffer } = {};
    (() => {
      holder.first = a.view(2 * MiB, 4 * MiB);
    })();
    const externalBefore = process.memoryUsage().arrayBuffers;
    const second = a.view(2 * MiB, 4 * MiB);
    // The same ArrayBuffer: V8 counted its 4 MiB once (each new external buffer costs a full GC when large).
    expect(second.buffer === holder.first!.buffer).toBe(true); // (booleans: a diff of 4 MiB buffers is slow)
    expect(process.memoryUsage().arrayBuffers - externalBefore).toBeLessThan(MiB);
    second[0] = 0x11;
    expect(holder.first![0]).toBe(0x11);
    // Another range, and small views, get their own buffers.
    expect(a.view(MiB, 4 * MiB).buffer === second.buffer).toBe(false);
    const small = a.view(0, 4096);
    expect(a.view(0, 4096).buffer === small.buffer).toBe(false);
  });

  it('unmaps at once on close() when there are no views', () => {
    const a = tracker.create({ size: MiB, prefault: false });
    expect(isMapped(a.path)).toBe(true);
    a.close();
    expect(a.stats().mapped).toBe(false);
    expect(isMapped(a.path)).toBe(false);
  });

  it('close() during a running prefault stops it and ready still settles', async () => {
    const a = tracker.create({ size: 512 * MiB });
    a.close();
    await expect(a.ready).resolves.toBeUndefined();
    expect(await collectUntil(() => !a.stats().mapped)).toBe(true);
  });

  it('prefault of a range works for an opened arena', async () => {
    const a = tracker.create({ size: 8 * MiB, prefault: false });
    const b = tracker.open(a.path, 8 * MiB);
    await b.prefault(MiB, 2 * MiB);
    await expect(b.ready).resolves.toBeUndefined();
    expect(() => b.prefault(7 * MiB, 2 * MiB)).toThrow(ArenaError);
  });

  it('rejects out-of-range offsets and lengths with ArenaError', () => {
    const a = tracker.create({ size: MiB, prefault: false });
    for (const [o, l] of [
      [MiB, 1],
      [MiB - 1, 2],
      [-1, 1],
      [0, -1],
      [0.5, 1],
      [Number.MAX_SAFE_INTEGER, 1],
    ] as const) {
      expect(() => a.view(o, l)).toThrow(ArenaError);
    }
    expect(() => a.write(MiB - 2, Buffer.alloc(3))).toThrow(/outside shared-memory arena/);
    expect(() => a.view(MiB, 1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', path: a.path }));
    expect(a.view(MiB, 0).length).toBe(0);
  });

  it('write accepts any Uint8Array slice (respects byteOffset)', () => {
    const a = tracker.create({ size: MiB, prefault: false });
    const backing = Buffer.from([9, 9, 1, 2, 3, 9]);
    a.write(64, backing.subarray(2, 5));
    expect([...a.view(64, 4)]).toEqual([1, 2, 3, 0]);
    a.write(128, new Uint8Array(new Float64Array([1.5]).buffer));
    expect(a.view(128, 8).readDoubleLE(0)).toBe(1.5);
  });

  it('a large write with copyThreads is split over threads and lands every byte in place', () => {
    const a = tracker.create({ size: 64 * MiB, prefault: false, copyThreads: 4 });
    // 33 MiB + 5 bytes from an odd offset of a random source: pieces of unequal length, none aligned.
    const src = randomBytes(33 * MiB + 12).subarray(7, 7 + 33 * MiB + 5);
    expect(a.write(3 * MiB + 1, src)).toBe(4);
    expect(a.view(3 * MiB + 1, src.length).equals(src)).toBe(true);
    expect(a.view(3 * MiB, 1)[0]).toBe(0);
    expect(a.view(36 * MiB + 6, 1)[0]).toBe(0);
    // Under 2 × 4 MiB it stays one memcpy; copyThreads 1 (the default) never splits.
    expect(a.write(0, randomBytes(8 * MiB - 1))).toBe(1);
    const b = tracker.open(a.path, 64 * MiB);
    expect(b.write(0, src)).toBe(1);
    expect(a.view(0, src.length).equals(src)).toBe(true);
  });

  it('a write whose source overlaps its destination (a view of the same arena) is one memmove', () => {
    const a = tracker.create({ size: 64 * MiB, prefault: false, copyThreads: 8 });
    const pattern = randomBytes(40 * MiB);
    a.write(0, pattern);
    expect(a.write(MiB, a.view(0, 40 * MiB))).toBe(1);
    expect(a.view(MiB, 40 * MiB).equals(pattern)).toBe(true);
  });

  it('refuses copyThreads outside 1..16 with ArenaError', () => {
    for (const copyThreads of [0, 17, 1.5, Number.NaN]) {
      expect(() => tracker.create({ size: MiB, prefault: false, copyThreads })).toThrow(ArenaError);
    }
  });

  it('create fails with ArenaError(EEXIST) on an existing file; open fails on a missing or short file', () => {
    const path = tracker.track(testPath());
    writeFileSync(path, Buffer.alloc(100));
    expect(() => Arena.create({ path, size: MiB })).toThrow(expect.objectContaining({ name: 'ArenaError', code: 'EEXIST' }));
    expect(statSync(path).size).toBe(100); // not truncated, not removed
    expect(() => Arena.open(path, MiB)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => Arena.open(testPath(), MiB)).toThrow(expect.objectContaining({ name: 'ArenaError', code: 'ENOENT' }));
    expect(() => Arena.create({ path: testPath(), size: 0 })).toThrow(ArenaError);
  });

  it('create fails with ShmSpaceError when /dev/shm has less free space than requested', () => {
    const path = testPath();
    const huge = 2 ** 52;
    let err: unknown;
    try {
      Arena.create({ path, size: huge });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShmSpaceError);
    expect(err).toBeInstanceOf(ArenaError);
    expect((err as ShmSpaceError).requested).toBe(huge);
    expect((err as ShmSpaceError).available).toBeLessThan(huge);
    expect((err as Error).message).toMatch(/\/dev\/shm/);
    expect(existsSync(path)).toBe(false);
  });
});
