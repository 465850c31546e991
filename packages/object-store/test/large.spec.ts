import { constants as bufferConstants } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { statfsSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { ArenaError } from '../src/index.js';
import { ArenaTracker } from './helpers.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
const tracker = new ArenaTracker();
afterEach(() => tracker.cleanup());

const shmFree = (() => {
  const st = statfsSync('/dev/shm');
  return Number(st.bavail) * Number(st.bsize);
})();

/**
 * Skip, with the reason, when /dev/shm has less than `bytes` free (a container's default is 64 MiB;
 * .ci/run enlarges it, and CI fails on this skip).
 */
function needShm(ctx: TestContext, bytes: number): void {
  if (shmFree < bytes) ctx.skip(`/dev/shm has ${(shmFree / GiB).toFixed(1)} GiB free, this test needs ${bytes / GiB} GiB (mount -o remount,size=8G /dev/shm)`);
}

describe('Arena with large sizes', () => {
  it('1 GiB write and read back through one 1 GiB view', { timeout: 120_000 }, async (ctx) => {
    needShm(ctx, 2 * GiB);
    const a = tracker.create({ size: GiB }); // prefaults in the background while the source is filled
    // Source: a random 1 MiB block repeated, each copy stamped with its index (detects misplaced slices).
    const block = randomBytes(MiB);
    const src = Buffer.allocUnsafe(GiB);
    for (let i = 0; i < 1024; i++) {
      block.copy(src, i * MiB);
      src.writeUInt32LE(i, i * MiB);
    }
    await a.ready;
    a.write(0, src);
    const view = a.view(0, GiB);
    expect(view.length).toBe(GiB);
    expect(view.equals(src)).toBe(true); // one memcmp over 1 GiB
    // Sampled slices through separate views at their own offsets.
    for (const i of [0, 1, 511, 512, 777, 1023]) {
      const v = a.view(i * MiB, MiB);
      expect(v.readUInt32LE(0)).toBe(i);
      expect(v.subarray(4).equals(block.subarray(4))).toBe(true);
    }
    expect(a.view(GiB - 1, 1)[0]).toBe(block[MiB - 1]);
  });

  it('views at offsets beyond 4 GiB on a sparse 5 GiB arena', (ctx) => {
    needShm(ctx, 6 * GiB);
    const size = 5 * GiB;
    const a = tracker.create({ size, prefault: false });
    expect(statSync(a.path).size).toBe(size);

    const off = 4 * GiB + 12_345 * 64;
    const v = a.view(off, MiB);
    v.fill(0x42);
    v.writeUInt32LE(0xdeadbeef, 0);
    expect(a.view(off, 4).readUInt32LE(0)).toBe(0xdeadbeef);
    expect(a.view(off + MiB - 1, 1)[0]).toBe(0x42);
    expect(a.view(off - 1, 1)[0]).toBe(0); // the byte before is untouched

    // A view straddling the 4 GiB boundary.
    const edge = a.view(4 * GiB - 8, 16);
    edge.fill(7);
    expect([...a.view(4 * GiB, 8)]).toEqual([7, 7, 7, 7, 7, 7, 7, 7]);
    expect(a.view(4 * GiB - 9, 1)[0]).toBe(0);

    // The last bytes of the arena.
    a.write(size - 3, Buffer.from([1, 2, 3]));
    expect([...a.view(size - 3, 3)]).toEqual([1, 2, 3]);

    // The largest single view Node allows (4 GiB on Node 20) works without touching pages; larger is refused.
    const max = Math.min(bufferConstants.MAX_LENGTH, size);
    expect(a.view(0, max).length).toBe(max);
    if (bufferConstants.MAX_LENGTH < size) {
      expect(() => a.view(0, bufferConstants.MAX_LENGTH + 1)).toThrow(ArenaError);
    }

    // Still sparse: only the touched pages are allocated.
    expect(statSync(a.path).blocks * 512).toBeLessThan(16 * MiB);
  });
});
