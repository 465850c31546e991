/**
 * ObjectTransfer without sockets: objects pushed to a recording peer (inline or in checked chunks of
 * the right sizes), chunked objects reassembled on the receiving side whatever the order of the chunks
 * after the first, damaged or oversized chunks rejected (and their space freed), and partial objects of
 * a dead node dropped.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, type EnvelopeBody, tsray } from '@tsray/protocol';
import { errorFromPayload } from '../../src/error-payload.js';
import { chunkCheck } from '../../src/node/node-support.js';
import { ObjectTable, type StoredObject } from '../../src/node/object-table.js';
import { ObjectTransfer, type ObjectTransferHost } from '../../src/node/object-transfer.js';
import { WorkerHandle } from '../../src/node/records.js';
import { storedFromWire, type FrameBuilder } from '../../src/wire.js';
import { FakeStore, recordingPeer, type SentMessage } from './cluster-fakes.js';

const CHUNK = 1024;

/** A node's side of a transfer: a real object table over a fake store; sends recorded. */
function node(capacity = 64 * 1024) {
  const store = new FakeStore(capacity);
  const objects = new ObjectTable((d) => store.release(d));
  const sent: { to: string; body: tsray.v1.Envelope.$Properties; frames: Buffer[] }[] = [];
  const raw: Buffer[][] = [];
  const host: ObjectTransferHost = {
    objects,
    store,
    sendFrames: (w: WorkerHandle, body: EnvelopeBody, frames: Buffer[]) => void raw.push([w.identity, ...encodeMessage(body, frames)]),
    send: (w: WorkerHandle, body: EnvelopeBody, fb?: FrameBuilder) =>
      void sent.push({ to: w.id, body: body as tsray.v1.Envelope.$Properties, frames: (fb?.frames() ?? []) as Buffer[] }),
    unpinView: (id) => objects.unpin(id),
    dataPlane: { token: 't', nodeId: 'n', bindHost: '127.0.0.1' },
  };
  /** Seal an object held by someone (an unheld object is freed at once). */
  const seal = (id: string, d: StoredObject) => {
    objects.incRef(id);
    objects.seal(id, d);
  };
  return { store, objects, host, sent, raw, seal, transfer: new ObjectTransfer(host, CHUNK) };
}

/** The chunk messages a peer was sent, as (chunk, payload). */
function chunksIn(log: SentMessage[]): { c: tsray.v1.IObjectChunk; payload: Buffer }[] {
  return log.filter((m) => m.kind === 'objectChunk').map((m) => ({ c: m.body.objectChunk!, payload: Buffer.from(m.frames[0]!) }));
}

describe('ObjectTransfer: pushing objects to a peer', () => {
  it('sends objects up to the chunk size inline in one putObjects, larger arena objects in chunks of the chunk size', () => {
    const a = node();
    const small = randomBytes(CHUNK);
    const big = randomBytes(CHUNK * 2 + 1);
    a.seal('small', a.store.put(small));
    a.seal('big', a.store.put(big));
    const { peer, log } = recordingPeer();
    a.transfer.pushObjects(peer, ['small', 'big']);

    const chunks = chunksIn(log);
    expect(chunks.map((x) => [Number(x.c.offset), x.payload.length, Number(x.c.total)])).toEqual([
      [0, CHUNK, CHUNK * 2 + 1],
      [CHUNK, CHUNK, CHUNK * 2 + 1],
      [CHUNK * 2, 1, CHUNK * 2 + 1],
    ]);
    expect(chunks.map((x) => x.c.header !== undefined && x.c.header !== null)).toEqual([true, false, false]);
    const puts = log.filter((m) => m.kind === 'putObjects');
    expect(puts).toHaveLength(1);
    const od = puts[0]!.body.putObjects!.objects![0]!;
    expect(od.objectId).toBe('small');
    expect(Buffer.compare(storedFromWire(od, puts[0]!.frames as Buffer[]).inline!, small)).toBe(0);
  });

  it('pins an arena object while a view of it is out (so it is not freed under ZeroMQ)', () => {
    const a = node();
    a.seal('big', a.store.put(randomBytes(CHUNK * 3)));
    const before = a.objects.get('big')!.pins;
    a.transfer.pushObjects(recordingPeer().peer, ['big']);
    expect(a.objects.get('big')!.pins).toBe(before + 3);
  });
});

describe('ObjectTransfer: receiving chunks', () => {
  function sendBig(bytes: Buffer) {
    const a = node();
    a.seal('obj', a.store.put(bytes));
    const { peer, log } = recordingPeer();
    a.transfer.pushObjects(peer, ['obj']);
    return chunksIn(log);
  }

  it('reassembles an object whose chunks after the first arrive in any order', () => {
    const bytes = randomBytes(CHUNK * 4 + 17);
    const chunks = sendBig(bytes);
    expect(chunks).toHaveLength(5);
    const b = node();
    const order = [chunks[0]!, chunks[3]!, chunks[1]!, chunks[4]!, chunks[2]!];
    const results = order.map((x) => b.transfer.onChunk('n2', x.c, x.payload));
    expect(results.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined]);
    const done = results[4]!;
    expect(done.size).toBe(bytes.length);
    expect(Buffer.compare(b.store.bytes(done), bytes)).toBe(0);
    expect(b.transfer.incomingCount).toBe(0);
  });

  it('drops a chunk that comes before its header (nothing is allocated for it)', () => {
    const chunks = sendBig(randomBytes(CHUNK * 2));
    const b = node();
    expect(b.transfer.onChunk('n2', chunks[1]!.c, chunks[1]!.payload)).toBeUndefined();
    expect(b.transfer.incomingCount).toBe(0);
  });

  it('rejects a chunk whose check value does not match: an ObjectTransferError object, its space freed', () => {
    const chunks = sendBig(randomBytes(CHUNK * 3));
    const b = node();
    expect(b.transfer.onChunk('n2', chunks[0]!.c, chunks[0]!.payload)).toBeUndefined();
    const damaged = Buffer.from(chunks[1]!.payload);
    damaged[5] ^= 0xff;
    const err = b.transfer.onChunk('n2', chunks[1]!.c, damaged)!;
    expect(err.encoding).toBe('error');
    const e = errorFromPayload(err.inline!);
    expect(e.name).toBe('ObjectTransferError');
    expect(e.message).toMatch(/object obj from n2 arrived damaged \(chunk at 1024/);
    expect(b.transfer.incomingCount).toBe(0);
    expect(b.store.released).toHaveLength(1);
  });

  it('rejects a chunk that reaches past the announced total size', () => {
    const chunks = sendBig(randomBytes(CHUNK * 2));
    const b = node();
    b.transfer.onChunk('n2', chunks[0]!.c, chunks[0]!.payload);
    const tooLong = Buffer.concat([chunks[1]!.payload, Buffer.alloc(1)]);
    const { crc32: _ignored, ...rest } = chunks[1]!.c;
    const err = b.transfer.onChunk('n2', { ...rest, crc32: chunkCheck(tooLong) }, tooLong)!;
    expect(err.encoding).toBe('error');
    expect(errorFromPayload(err.inline!).name).toBe('ObjectTransferError');
    expect(b.transfer.incomingCount).toBe(0);
  });

  it('writes into a heap buffer when the arena has no room for the object', () => {
    const bytes = randomBytes(CHUNK * 2);
    const chunks = sendBig(bytes);
    const b = node(CHUNK); // smaller than the object
    b.transfer.onChunk('n2', chunks[0]!.c, chunks[0]!.payload);
    const done = b.transfer.onChunk('n2', chunks[1]!.c, chunks[1]!.payload)!;
    expect(done.shm).toBeUndefined();
    expect(Buffer.compare(done.inline!, bytes)).toBe(0);
  });

  it('drops (and frees) the partial objects of a node that died, not those of other nodes', () => {
    const x = sendBig(randomBytes(CHUNK * 2));
    const b = node();
    b.transfer.onChunk('n2', x[0]!.c, x[0]!.payload);
    b.transfer.onChunk('n3', { ...x[0]!.c, objectId: 'other' }, x[0]!.payload);
    b.transfer.dropIncomingFrom('n2');
    expect(b.transfer.incomingCount).toBe(1);
    expect(b.store.released).toHaveLength(1);
    expect(b.transfer.onChunk('n3', { ...x[1]!.c, objectId: 'other' }, x[1]!.payload)).toBeDefined();
  });
});

describe('ObjectTransfer: objects to a remote client', () => {
  it('sends nested objects before the object holding them; large ones as raw chunk frames, small ones in objectsReady', () => {
    const a = node();
    const inner = randomBytes(CHUNK * 2);
    a.seal('inner', a.store.put(inner));
    a.seal('outer', { encoding: 'raw', rawKind: 'Buffer', inline: Buffer.from('x'), size: 1, contained: ['inner'] });
    const client = new WorkerHandle('driver-1', undefined, '', 'driver');
    a.transfer.sendObjectsRemote(client, [a.objects.get('outer')!]);
    const chunkMsgs = a.raw.map((frames) => {
      expect(frames[0]!.toString()).toBe('driver-1');
      return decodeMessage(frames.slice(1));
    });
    expect(chunkMsgs.map((m) => [m.kind, m.envelope.objectChunk!.objectId])).toEqual([
      ['objectChunk', 'inner'],
      ['objectChunk', 'inner'],
    ]);
    expect(Buffer.concat(chunkMsgs.map((m) => m.payloads[0]!))).toEqual(inner);
    expect(a.sent.map((s) => s.body.objectsReady!.objects!.map((o) => o.objectId))).toEqual([['outer']]);
  });

  it('sends nothing raw to a client that is gone', () => {
    const a = node();
    a.seal('big', a.store.put(randomBytes(CHUNK * 2)));
    const client = new WorkerHandle('driver-1', undefined, '', 'driver');
    client.state = 'dead';
    a.transfer.sendObjectsRemote(client, [a.objects.get('big')!]);
    expect(a.raw).toHaveLength(0);
  });

  it('moves a large inline object that came over the network into the arena, keeping it inline when the arena is full', () => {
    const a = node(CHUNK * 4);
    const d: StoredObject = { encoding: 'raw', rawKind: 'Buffer', inline: randomBytes(CHUNK * 3), size: CHUNK * 3, contained: [] };
    const moved = a.transfer.toArena(d);
    expect(moved.shm).toBeDefined();
    expect(Buffer.compare(a.store.bytes(moved), d.inline!)).toBe(0);
    expect(a.transfer.toArena(d)).toBe(d); // no room left
  });
});
