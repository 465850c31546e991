// Allocator speed with many live objects (the timing that packages/object-store/src/allocator.spec.ts
// used to assert; tests check correctness only, docs/testing.md). 100k allocations of ~100 KiB in a
// 1 TiB address space, every other one freed (50k holes), the holes filled again, then everything freed
// in a shuffled order. Goal: < 5 s (a linear scan of the free list would take minutes).
// Build first (npx nx run @tsray/object-store:build), then:
//   node packages/object-store/bench/allocator.bench.mjs [--objects 100000] [--json]
import { Allocator } from '../dist/index.js';

const args = process.argv.slice(2);
const i = args.indexOf('--objects');
const n = i >= 0 ? Number(args[i + 1]) : 100_000;

const a = new Allocator(2 ** 40);
const t0 = performance.now();
const offs = [];
for (let k = 0; k < n; k++) offs.push(a.alloc(100 * 1024 + ((k * 7919) % 4096)));
for (let k = 0; k < n; k += 2) a.free(offs[k]);
for (let k = 0; k < n; k += 2) offs[k] = a.alloc(100 * 1024);
for (let k = n - 1; k > 0; k--) {
  const j = (k * 2654435761) % (k + 1);
  [offs[k], offs[j]] = [offs[j], offs[k]];
}
for (const o of offs) a.free(o);
const ms = performance.now() - t0;
if (a.freeExtentCount !== 1) throw new Error(`expected one free extent after freeing everything, got ${a.freeExtentCount}`);
const ops = 3 * n; // allocs, refills, frees (+ n/2 frees of the holes)
if (args.includes('--json')) console.log(JSON.stringify({ bench: 'allocator', objects: n, ms, opsPerSecond: ops / (ms / 1000) }));
else console.log(`allocator: ${n} objects, ${ms.toFixed(0)} ms (${((ops / ms) * 1000).toFixed(0)} ops/s; goal < 5000 ms for 100k)`);
