/**
 * AES-256-GCM speed in this process, 4 MiB messages: the object store's `gcmOpenInto` into a reused buffer
 * and into a fresh one, `gcmSealInto` into a fresh one (what the data plane and the leader ring do), and
 * node:crypto's `Cipher.update` (which returns a new buffer). The gap between the
 * first two is the cost of first-touch page faults of a fresh destination (BENCHMARKS.md, "Collectives").
 *
 * Usage (repo root, after `npx nx run-many -t build`): node bench/collective/gcm-speed.mjs [rounds]
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { gcmOpenInto, gcmSealInto } from '@tsray/object-store';

const SIZE = 4 << 20;
const COUNT = 50;
const key = randomBytes(32);
const iv = randomBytes(12);
const aad = Buffer.alloc(16);
const tag = Buffer.alloc(16); // the tag does not match: the whole message is still decrypted first
const src = Buffer.alloc(SIZE, 3);
const reused = Buffer.alloc(SIZE, 1);

function rate(label, body) {
  const t0 = performance.now();
  for (let i = 0; i < COUNT; i++) body();
  const gbps = (COUNT * SIZE) / ((performance.now() - t0) / 1e3) / 1e9;
  console.log(`${label.padEnd(34)} ${gbps.toFixed(2)} GB/s`);
}

for (let r = 0; r < Number(process.argv[2] ?? 2); r++) {
  rate('gcmOpenInto, reused destination', () => gcmOpenInto(key, iv, aad, tag, src, reused));
  rate('gcmOpenInto, fresh destination', () => gcmOpenInto(key, iv, aad, tag, src, Buffer.allocUnsafeSlow(SIZE)));
  rate('gcmSealInto, fresh destination', () => gcmSealInto(key, iv, aad, src, Buffer.allocUnsafeSlow(SIZE), tag));
  rate('Cipher.update (new buffer)', () => {
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.update(src);
    c.final();
  });
}
