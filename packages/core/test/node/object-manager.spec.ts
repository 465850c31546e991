/**
 * ObjectManager.wait without sockets or processes: positions of ready ids in completion order (the
 * earliest only for numReturns 1), ids sealed while it waits, its timeout, and duplicate ids refused
 * whether their objects are ready, pending or unknown to the table.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { ObjectManager } from '../../src/node/object-manager.js';
import { ObjectTable, storedObject } from '../../src/node/object-table.js';
import type { NodeStore } from '../../src/node/store.js';

function setup() {
  const objects = new ObjectTable(() => undefined);
  // wait() reads the table only; the store is for get().
  const manager = new ObjectManager(objects, {} as NodeStore);
  const seal = (id: string) => {
    objects.incRef(id);
    objects.seal(id, storedObject('v8', '', 1, [], Buffer.alloc(1), undefined, undefined));
  };
  const hold = (id: string) => objects.incRef(id);
  return { objects, manager, seal, hold };
}

describe('ObjectManager.wait', () => {
  it('gives positions of ready ids, earliest sealed first, at most numReturns', async () => {
    const { manager, seal, hold } = setup();
    hold('p');
    for (const id of ['c', 'a', 'b']) seal(id); // completion order c, a, b
    const ids = ['a', 'p', 'b', 'c'];
    expect(await manager.wait(ids, 1, undefined)).toEqual([3]);
    expect(await manager.wait(ids, 2, undefined)).toEqual([3, 0]);
    expect(await manager.wait(ids, 3, undefined)).toEqual([3, 0, 2]);
    expect(await manager.wait(ids, 0, undefined)).toEqual([]);
  });

  it('waits for ids sealed later, in their completion order, and returns fewer at its timeout', async () => {
    const { objects, manager, seal, hold } = setup();
    seal('r');
    for (const id of ['x', 'y', 'z']) hold(id);
    const waiting = manager.wait(['x', 'y', 'r', 'z'], 3, undefined);
    seal('z');
    seal('x');
    expect(await waiting).toEqual([2, 3, 0]);
    expect(objects.get('y')!.waiters ?? []).toEqual([]); // its waiter was removed
    expect(await manager.wait(['y', 'q'], 1, 10)).toEqual([]); // 'q' has no entry: waited on all the same
    expect(objects.get('q')).toBeUndefined(); // and the entry made for the wait is gone with it
  });

  it('refuses an id given twice: ready, pending or without an entry, and with numReturns 0', async () => {
    const { manager, seal, hold } = setup();
    seal('r');
    hold('p');
    for (const ids of [
      ['r', 'p', 'r'],
      ['p', 'r', 'p'],
      ['u', 'r', 'u'],
    ]) {
      const err = await manager.wait(ids, 1, 10).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toBe(`wait() got the same ref twice: ${ids[0]}`);
    }
    await expect(manager.wait(['r', 'r'], 0, undefined)).rejects.toBeInstanceOf(ValidationError);
    expect(await manager.wait(['r', 'p'], 1, undefined)).toEqual([0]); // the stamps of a refused call do not linger
  });
});
