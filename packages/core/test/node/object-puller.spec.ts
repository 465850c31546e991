/** ObjectPuller with a fake node: admission control on bytes in flight, resume from the next holder. */
import { describe, expect, it } from 'vitest';
import type { EnvelopeBody } from '@tsray/protocol';
import { ObjectPuller } from '../../src/node/object-puller.js';
import { chunkCheck } from '../../src/node/node-support.js';
import type { StoredObject } from '../../src/node/object-table.js';

const CHUNK = 1024;

/** A node with a heap "arena", the requests it sent and the pulls that ended. */
function fakeNode(alive = new Set(['B', 'C'])) {
  const arena = Buffer.alloc(64 * CHUNK);
  let next = 0;
  const sent: { to: string; offset: number; length: number; id: string }[] = [];
  const done = new Map<string, { data: StoredObject; from: string }>();
  const prefaulted: [number, number][] = [];
  const abandoned: [string, string][] = [];
  const puller = new ObjectPuller(
    {
      store: {
        allocate: (n: number) => {
          const off = next;
          next += n;
          return off;
        },
        release: () => undefined,
        arena: {
          view: (off: number, len: number) => arena.subarray(off, off + len),
          prefault: async (off: number, len: number) => void prefaulted.push([off, len]),
        },
      },
      sendTo: (to: string, body: EnvelopeBody) => {
        const p = (body as { pullObject: { objectId: string; offset: number; length: number } }).pullObject;
        sent.push({ to, id: p.objectId, offset: p.offset, length: p.length });
        return true;
      },
      isAlive: (n: string) => alive.has(n),
      abandon: (holder: string, id: string) => void abandoned.push([holder, id]),
      done: (id: string, data: StoredObject, from: string) => done.set(id, { data, from }),
    },
    CHUNK,
    3 * CHUNK,
  );
  return { puller, sent, done, arena, alive, prefaulted, abandoned };
}

const header = (size: number) => ({ encoding: 'raw' as const, rawKind: 'Buffer', size, contained: [] });
const bytesOf = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7) & 0xff));
const chunk = (src: Buffer, off: number) => src.subarray(off, Math.min(src.length, off + CHUNK));

describe('ObjectPuller', () => {
  it('keeps the bytes in flight within the bound over all pulls, and requests more as chunks arrive', () => {
    const n = fakeNode();
    const a = bytesOf(5 * CHUNK);
    const b = bytesOf(2 * CHUNK);
    n.puller.pull('a', header(a.length), ['B']);
    n.puller.pull('b', header(b.length), ['B']);
    // Bound 3 chunks: a's first three only; b queues.
    expect(n.sent.map((s) => [s.id, s.offset])).toEqual([
      ['a', 0],
      ['a', CHUNK],
      ['a', 2 * CHUNK],
    ]);
    for (let i = 0; i < 5; i++) {
      const req = n.sent[i]!;
      const src = req.id === 'a' ? a : b;
      const c = chunk(src, req.offset);
      expect(n.puller.onChunk('B', { objectId: req.id, offset: req.offset, total: src.length, crc32: chunkCheck(c) }, c)).toBe(true);
      expect(n.puller.stats().bytesInFlight).toBeLessThanOrEqual(3 * CHUNK);
    }
    for (let i = 5; i < n.sent.length; i++) {
      const req = n.sent[i]!;
      const src = req.id === 'a' ? a : b;
      const c = chunk(src, req.offset);
      n.puller.onChunk('B', { objectId: req.id, offset: req.offset, total: src.length, crc32: chunkCheck(c) }, c);
    }
    expect(n.puller.stats().maxBytesInFlight).toBe(3 * CHUNK);
    expect(n.puller.stats().bytesInFlight).toBe(0);
    const got = n.done.get('a')!.data.shm!;
    expect(n.arena.subarray(got.offset, got.offset + got.length).equals(a)).toBe(true);
    expect(n.done.has('b')).toBe(true);
  });

  it('asks the next holder for the chunks still missing when the first dies (resume)', () => {
    const n = fakeNode();
    const a = bytesOf(3 * CHUNK);
    n.puller.pull('a', header(a.length), ['B', 'C']);
    const first = chunk(a, 0);
    n.puller.onChunk('B', { objectId: 'a', offset: 0, total: a.length, crc32: chunkCheck(first) }, first);
    n.alive.delete('B');
    n.puller.nodeDied('B');
    const fromC = n.sent.filter((s) => s.to === 'C').map((s) => s.offset);
    expect(fromC).toEqual([CHUNK, 2 * CHUNK]);
    // A late chunk from the dead holder is ignored.
    const late = chunk(a, CHUNK);
    n.puller.onChunk('B', { objectId: 'a', offset: CHUNK, total: a.length, crc32: chunkCheck(late) }, late);
    for (const off of fromC) {
      const c = chunk(a, off);
      n.puller.onChunk('C', { objectId: 'a', offset: off, total: a.length, crc32: chunkCheck(c) }, c);
    }
    const d = n.done.get('a')!;
    expect(d.from).toBe('C');
    expect(n.arena.subarray(d.data.shm!.offset, d.data.shm!.offset + a.length).equals(a)).toBe(true);
    expect(n.puller.stats().failovers).toBe(1);
  });

  it('seals ObjectLostError when no holder is left', () => {
    const n = fakeNode(new Set(['B']));
    n.puller.pull('a', header(2 * CHUNK), ['B']);
    n.puller.onFailed('B', 'a', 'node has no copy of a');
    const d = n.done.get('a')!;
    expect(d.data.encoding).toBe('error');
    expect(n.puller.has('a')).toBe(false);
  });

  it('gives the data plane each chunk’s place in the arena, takes it once landed, and gives up a holder whose chunk did not check out', () => {
    const n = fakeNode();
    const a = bytesOf(3 * CHUNK);
    n.puller.pull('a', header(a.length), ['B', 'C']);
    // The target is fault-in on a threadpool thread as soon as it is allocated (larger than a chunk).
    expect(n.prefaulted).toEqual([[0, a.length]]);
    const c0 = { objectId: 'a', offset: 0, total: a.length };
    // Not asked of C, or the wrong length: no place (the payload is dropped); the wrong length gives B up.
    expect(n.puller.target('C', c0, CHUNK)).toBeUndefined();
    const dst = n.puller.target('B', c0, CHUNK)!;
    expect(dst.byteLength).toBe(CHUNK);
    a.copy(dst, 0, 0, CHUNK); // as the kernel reads it there
    n.puller.landed('B', c0, true);
    expect(n.puller.stats().bytesInFlight).toBe(2 * CHUNK);
    // A chunk that lands damaged (its tag or check failed): B is given up, told to the data plane (its
    // connection must stop writing into the buffer), and the missing chunks go to C.
    const c1 = { objectId: 'a', offset: CHUNK, total: a.length };
    expect(n.puller.target('B', c1, CHUNK)).toBeDefined();
    n.puller.landed('B', c1, false);
    expect(n.abandoned).toEqual([['B', 'a']]);
    expect(n.sent.filter((s) => s.to === 'C').map((s) => s.offset)).toEqual([CHUNK, 2 * CHUNK]);
    expect(n.puller.target('B', { objectId: 'a', offset: 2 * CHUNK, total: a.length }, CHUNK)).toBeUndefined();
    for (const off of [CHUNK, 2 * CHUNK]) {
      const c = { objectId: 'a', offset: off, total: a.length };
      a.copy(n.puller.target('C', c, CHUNK)!, 0, off, off + CHUNK);
      n.puller.landed('C', c, true);
    }
    const d = n.done.get('a')!;
    expect(d.from).toBe('C');
    expect(n.arena.subarray(d.data.shm!.offset, d.data.shm!.offset + a.length).equals(a)).toBe(true);
  });
});
