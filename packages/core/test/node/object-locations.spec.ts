/** ObjectLocations against a fake node: which nested refs are fetched from a peer, and their loss. */
import { describe, expect, it } from 'vitest';
import { decodeErrorPayload } from '../../src/error-payload.js';
import { isObjectId, ObjectLocations } from '../../src/node/object-locations.js';
import type { StoredObject } from '../../src/node/object-table.js';

function fakeNode(have: string[] = []) {
  const subs: [string, string[]][] = [];
  const sealed = new Map<string, StoredObject>();
  const loc = new ObjectLocations({
    hasOrMakes: (id) => have.includes(id) || sealed.has(id),
    subscribeAt: (node, ids) => subs.push([node, ids]),
    seal: (id, d) => sealed.set(id, d),
  });
  return { loc, subs, sealed };
}

describe('ObjectLocations', () => {
  it('subscribes at the sending node to nested objects this node has no copy of (once), never to actors or group handles', () => {
    const { loc, subs } = fakeNode(['tAAAAAAAAa.0']);
    loc.arrivedFrom('nodeB', ['tAAAAAAAAa.0', 'tAAAAAAAAb.0', 'pAAAAAAAAc', 'aAAAAAAAAd', 'pgAAAAAAAAe.ready', 'tAAAAAAAAf.g3']);
    loc.arrivedFrom('nodeB', ['tAAAAAAAAb.0']);
    expect(subs).toEqual([['nodeB', ['tAAAAAAAAb.0', 'pAAAAAAAAc', 'tAAAAAAAAf.g3']]]);
    expect(loc.size).toBe(3);
  });

  it('when that node dies, each object still missing is sealed as ObjectLostError naming it, its task and why it is not rebuilt', () => {
    const { loc, sealed } = fakeNode();
    loc.arrivedFrom('nodeB', ['tAAAAAAAAb.0', 'pAAAAAAAAc', 'tAAAAAAAAz.1']);
    loc.sealed('tAAAAAAAAz.1');
    loc.nodeDied('nodeC', 'unrelated');
    expect(sealed.size).toBe(0);
    loc.nodeDied('nodeB', 'no heartbeat');
    expect([...sealed.keys()]).toEqual(['tAAAAAAAAb.0', 'pAAAAAAAAc']);
    const task = decodeErrorPayload(sealed.get('tAAAAAAAAb.0')!.inline!);
    expect(task).toMatchObject({ type: 'ObjectLostError', objectId: 'tAAAAAAAAb.0' });
    expect((task as { reason: string }).reason).toMatch(/node nodeB died \(no heartbeat\).*made by task tAAAAAAAAb, owned by that node/);
    const p = decodeErrorPayload(sealed.get('pAAAAAAAAc')!.inline!);
    expect((p as { reason: string }).reason).toMatch(/created by put\(\) there, and put objects cannot be rebuilt/);
    expect(loc.size).toBe(0);
  });

  it('tells object ids from actor ids and placement-group handles', () => {
    expect(['tX.0', 'tX.g12', 'pXYZ', 'aXYZ', 'pgX.ready', 'tX'].map(isObjectId)).toEqual([true, true, true, false, false, false]);
  });
});
