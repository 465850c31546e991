#!/usr/bin/env node
// Micro benchmark of the shared-memory arena (not a test). Build first: `npx nx build object-store`.
//   node bench/arena-bench.mjs [sizeMiB=1024] [reps=5]
// Prints GB/s (1e9 bytes/s) of:
//   memcpy         Buffer.copy heap -> heap (destination already faulted)
//   first-touch    arena.write into a fresh, not prefaulted arena (page faults + tmpfs zeroing)
//   prefault       the background prefault itself (madvise MADV_POPULATE_WRITE)
//   arena.write    native memcpy into a prefaulted arena
//   Buffer.copy    src.copy(arena.view(...)) into a prefaulted arena
// and the ratio of the prefaulted put (arena.write) to memcpy.
import { Arena } from '../dist/index.js';

const sizeMiB = Number(process.argv[2] ?? 1024);
const reps = Number(process.argv[3] ?? 5);
const size = sizeMiB * 1024 * 1024;

const gbps = (bytes, ns) => bytes / Number(ns); // bytes per ns == GB/s
function best(fn) {
  let min = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    const dt = Number(process.hrtime.bigint() - t0);
    if (dt < min) min = dt;
  }
  return min;
}
function once(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0);
}

const src = Buffer.allocUnsafe(size);
for (let i = 0; i < size; i += 4096) src.writeUInt32LE((i * 2654435761) >>> 0, i);
const dst = Buffer.alloc(size, 1); // faulted in

const results = {};
results.memcpy = gbps(
  size,
  best(() => src.copy(dst)),
);

{
  const a = Arena.create({ size, prefault: false });
  try {
    results.firstTouch = gbps(
      size,
      once(() => a.write(0, src)),
    );
  } finally {
    a.close();
    a.unlink();
  }
}

const a = Arena.create({ size, prefault: true });
try {
  const t0 = process.hrtime.bigint();
  await a.ready;
  results.prefault = gbps(size, Number(process.hrtime.bigint() - t0));
  results.arenaWrite = gbps(
    size,
    best(() => a.write(0, src)),
  );
  const view = a.view(0, size);
  results.bufferCopyIntoView = gbps(
    size,
    best(() => src.copy(view)),
  );
  results.viewSet = gbps(
    size,
    best(() => view.set(src)),
  );
  results.readBack = gbps(
    size,
    best(() => view.copy(dst)),
  );
} finally {
  a.close();
  a.unlink();
}

const f = (x) => x.toFixed(2).padStart(6);
console.log(`size ${sizeMiB} MiB, best of ${reps}, GB/s = 1e9 bytes/s`);
console.log(`memcpy (Buffer.copy heap->heap)        ${f(results.memcpy)}`);
console.log(`first-touch arena.write (no prefault)  ${f(results.firstTouch)}`);
console.log(`prefault (madvise POPULATE_WRITE)      ${f(results.prefault)}`);
console.log(`arena.write, prefaulted (native copy)  ${f(results.arenaWrite)}`);
console.log(`Buffer.copy into view, prefaulted      ${f(results.bufferCopyIntoView)}`);
console.log(`view.set(src), prefaulted              ${f(results.viewSet)}`);
console.log(`read back view -> heap                 ${f(results.readBack)}`);
console.log(`ratio put/memcpy                       ${f(results.arenaWrite / results.memcpy)}`);
console.log(`ratio first-touch/memcpy               ${f(results.firstTouch / results.memcpy)}`);
