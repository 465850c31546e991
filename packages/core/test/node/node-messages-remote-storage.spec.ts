/**
 * Objects from another machine carry their bytes: a PutObjects (or generator item, task result) from
 * a peer node or a remote driver that names an arena slice or a spill file of this node is dropped
 * (issue #17: a remote peer must not make the node free or delete storage it names). Fake node, no
 * sockets.
 */
import { describe, expect, it } from 'vitest';
import type { DecodedMessage, tsray } from '@tsray/protocol';
import { NODE_MESSAGE_HANDLERS, type NodeMessageHost } from '../../src/node/node-messages.js';
import type { WorkerHandle } from '../../src/node/records.js';

function putFrom(w: Partial<WorkerHandle>, objects: tsray.v1.IObjectData[]): string[] {
  const sealed: string[] = [];
  const host = {
    objects: { seal: (id: string) => sealed.push(id) },
    toArena: (d: unknown) => d,
  } as unknown as NodeMessageHost;
  const handle = { id: 'peer:n1', allocs: new Map(), ...w } as unknown as WorkerHandle;
  const message = { kind: 'putObjects', envelope: { putObjects: { objects } }, payloads: [Buffer.from('abc')] } as unknown as DecodedMessage;
  NODE_MESSAGE_HANDLERS.putObjects!(host, handle, message);
  return sealed;
}

const objects: tsray.v1.IObjectData[] = [
  { objectId: 'inline', size: 3, inline: { frame: 0, offset: 0, length: 3 } },
  { objectId: 'slice', size: 3, shm: { offset: 4096, length: 3 } },
  { objectId: 'spill', size: 3, spillPath: '/var/lib/important' },
];

describe('PutObjects from another machine', () => {
  it('keeps inline data and drops named arena slices and spill files, from a peer node and a remote driver', () => {
    expect(putFrom({ kind: 'peer', remote: false }, objects)).toEqual(['inline']);
    expect(putFrom({ kind: 'driver', remote: true }, objects)).toEqual(['inline']);
  });

  it("takes a local worker's arena slice (it allocated it through this node)", () => {
    expect(putFrom({ kind: 'worker', remote: false }, objects.slice(0, 2))).toEqual(['inline', 'slice']);
  });
});
