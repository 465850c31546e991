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
  const puller = new ObjectPuller(
    {
      store: {
        allocate: (n: number) => {
          const off = next;
          next += n;
          return off;
        },
        release: () => undefined,
        arena: { view: (off: number, len: number) => arena.subarray(off, off + len) },
      },
      sendTo: (to: string, body: EnvelopeBody) => {
        const p = (body as { pullObject: { objectId: string; offset: number; length: number } }).pullObject;
        sent.push({ to, id: p.objectId, offset: p.offset, length: p.length });
        return true;
      },
      isAlive: (n: string) => alive.has(n),
      done: (id: string, data: StoredObject, from: string) => done.set(id, { data, from }),
    },
    CHUNK,
    3 * CHUNK,
  );
  return { puller, sent, done, arena, alive };
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
});
