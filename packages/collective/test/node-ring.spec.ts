/**
 * The ring between nodes on its own (no cluster): two or three ring ends in this process allreduce over
 * real tcp connections. With the cluster token and CURVE on (the default), frames are sealed: the bytes on
 * the wire (read by a relay between two ends) hold none of the array's data, connections that do not
 * prove the link's key get nothing, and an altered frame fails the op instead of corrupting it.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { overrideConfig } from '@tsray/core/internal';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CollectiveUsageError } from '../src/errors.js';
import { NodeRing, RING_FRAME_BYTES, ringSecurity, type RingSecurity } from '../src/node-ring.js';
import type { BarrierContext } from '../src/shm-segment.js';

const GROUP = 'ring-test';
const ctx: BarrierContext = { group: GROUP, deadline: Number.POSITIVE_INFINITY, health: async () => undefined };

let restore: (() => void) | undefined;
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
  restore?.();
  restore = undefined;
});

/** `count` ring ends, each connected to the previous one (through `via(its endpoint)` when given: a relay). */
async function ring(count: number, security: RingSecurity, via?: (target: string) => Promise<string>): Promise<NodeRing[]> {
  const rings = await listenAll(count, security);
  await connectAll(rings, via);
  return rings;
}

async function listenAll(count: number, security: RingSecurity): Promise<NodeRing[]> {
  const rings = await Promise.all(Array.from({ length: count }, () => NodeRing.listen('127.0.0.1', security)));
  for (const r of rings) closers.push(() => r.close());
  return rings;
}

async function connectAll(rings: NodeRing[], via?: (target: string) => Promise<string>): Promise<void> {
  const count = rings.length;
  for (let i = 0; i < count; i++) {
    const next = rings[(i + 1) % count]!.self;
    const prev = rings[(i + count - 1) % count]!.self;
    rings[i]!.connect(next, prev, GROUP, via ? await via(prev.endpoint) : prev.endpoint);
  }
}

/** End i's array: a pattern that names the end, so a sum and the bytes on the wire can be checked. */
function input(i: number, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let k = 0; k < n; k++) a[k] = (k % 1000) + i * 0.25;
  return a;
}

async function allreduce(rings: NodeRing[], n: number): Promise<Float32Array[]> {
  const arrays = rings.map((_, i) => input(i, n));
  await Promise.all(rings.map((r, i) => r.allreduce(arrays[i]!, 'float32', 'sum', i, rings.length, ctx)));
  return arrays;
}

function expectSums(arrays: Float32Array[], n: number): void {
  const inputs = arrays.map((_, i) => input(i, n));
  const want = Float32Array.from({ length: n }, (_, k) => inputs.reduce((acc, a) => acc + a[k]!, 0));
  for (const a of arrays) expect(Buffer.from(a.buffer).equals(Buffer.from(want.buffer))).toBe(true);
}

/**
 * A tcp relay in front of `target` (the sending end of a link; the receiving end connects through it):
 * bytes from the target pass through `fromTarget` (which may alter them); bytes both ways are recorded in
 * `seen` when given.
 */
function relay(fromTarget: (d: Buffer) => Buffer, seen?: Buffer[]): (target: string) => Promise<string> {
  return async (target) => {
    const [host, port] = target.replace('tcp://', '').split(':') as [string, string];
    const server: Server = createServer((client: Socket) => {
      const upstream = createConnection({ host, port: Number(port) });
      client.on('data', (d: Buffer) => {
        seen?.push(Buffer.from(d));
        upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        seen?.push(Buffer.from(d));
        client.write(fromTarget(d));
      });
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      closers.push(() => {
        client.destroy();
        upstream.destroy();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    return `tcp://127.0.0.1:${(server.address() as { port: number }).port}`;
  };
}

/** A tcp connection to `endpoint` that sends `bytes` and ends (an intruder). */
function intrude(endpoint: string, bytes: Buffer): Socket {
  const [host, port] = endpoint.replace('tcp://', '').split(':') as [string, string];
  const s = createConnection({ host, port: Number(port) }, () => s.end(bytes));
  s.on('error', () => {});
  closers.push(() => s.destroy());
  return s;
}

describe('with the cluster token and CURVE on', () => {
  it('links on one host’s loopback carry plain frames (TSRAY_SEAL_LOOPBACK off, the default) and still prove the key', async () => {
    restore = overrideConfig({ token: 'd'.repeat(64), transportCurve: true, dataPlane: true, sealLoopback: false });
    expect(ringSecurity()).toBe('sealed');
    const seen: Buffer[] = [];
    const rings = await ring(
      2,
      'sealed',
      relay((d) => d, seen),
    );
    intrude(rings[0]!.endpoint, Buffer.alloc(32)); // a keyless ring's hello: refused all the same
    expectSums(await allreduce(rings, 300_000), 300_000);
    expect(Buffer.concat(seen).indexOf(Buffer.from(input(0, 1000).buffer, 4 * 100, 64))).not.toBe(-1);
    await vi.waitFor(() => expect(rings[0]!.dropped).toBe(1));
  });

  it('frames are sealed (TSRAY_SEAL_LOOPBACK=1: the relay stands for a network): sums are right and the wire holds none of the data', async () => {
    restore = overrideConfig({ token: 'a'.repeat(64), transportCurve: true, dataPlane: true, sealLoopback: true });
    expect(ringSecurity()).toBe('sealed');
    const seen: Buffer[] = [];
    const n = (RING_FRAME_BYTES / 4) * 2 + 12_345; // several frames per chunk, a short last frame
    const rings = await ring(
      2,
      'sealed',
      relay((d) => d, seen),
    );
    expectSums(await allreduce(rings, n), n);
    expectSums(await allreduce(rings, 1000), 1000); // a second op on the same keys (counters go on)
    const wire = Buffer.concat(seen);
    expect(wire.length).toBeGreaterThan(n * 4); // the data did go through the relay
    // 64 bytes of end 0's input and of the sum, as they would appear in plaintext frames.
    for (const plain of [input(0, 1000), input(1, 1000), Float32Array.from(input(0, 1000), (x, k) => x + input(1, 1000)[k]!)]) {
      expect(wire.indexOf(Buffer.from(plain.buffer, 4 * 100, 64))).toBe(-1);
    }
  });

  it("closes connections that do not prove the link's key: an intruder's garbage, a plain hello, another group's end", async () => {
    restore = overrideConfig({ token: 'b'.repeat(64), transportCurve: true, dataPlane: true, sealLoopback: true });
    const rings = await listenAll(3, 'sealed');
    // Before the ring connects: garbage, 32 zero bytes (a plain ring's hello), too many bytes.
    intrude(rings[1]!.endpoint, Buffer.from('garbage'));
    intrude(rings[1]!.endpoint, Buffer.alloc(32));
    intrude(rings[1]!.endpoint, Buffer.alloc(64, 7));
    // An end of another group connecting to ring end 1 as its next: its hello is of another key.
    const stray = await NodeRing.listen('127.0.0.1', 'sealed');
    closers.push(() => stray.close());
    stray.connect(rings[0]!.self, rings[1]!.self, 'another-group');
    await connectAll(rings);
    expectSums(await allreduce(rings, 100_000), 100_000);
    await vi.waitFor(() => expect(rings[1]!.dropped).toBe(4));
    expect(rings[0]!.dropped + rings[2]!.dropped).toBe(0);
    expectSums(await allreduce(rings, RING_FRAME_BYTES / 4 + 7), RING_FRAME_BYTES / 4 + 7);
  });
});

it('an altered payload fails the op with CollectiveUsageError (not a wrong sum)', async () => {
  restore = overrideConfig({ token: 'c'.repeat(64), transportCurve: true, dataPlane: true, sealLoopback: true });
  // A relay that flips one byte far into the frames (inside the first sealed payload).
  let count = 0;
  const flip = relay((d) => {
    const at = 200_000 - count;
    if (at >= 0 && at < d.length) d[at] ^= 1;
    count += d.length;
    return d;
  });
  const rings = await ring(2, 'sealed', flip);
  const results = await Promise.allSettled(
    rings.map((r, i) => r.allreduce(input(i, 500_000), 'float32', 'sum', i, 2, { ...ctx, deadline: Date.now() + 2000, timeoutMs: 2000 })),
  );
  const errors = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as Error);
  expect(errors.some((e) => e instanceof CollectiveUsageError && /does not match its seal/.test(e.message))).toBe(true);
});

it('without a token the ring is plain and still sums right', async () => {
  restore = overrideConfig({ token: undefined, tokenFile: undefined });
  expect(ringSecurity()).toBe('plain');
  const rings = await ring(3, 'plain');
  expectSums(await allreduce(rings, 300_000), 300_000);
});
