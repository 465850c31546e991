// ObjectStoreFullError: the store cannot place an object (larger than the store, or full with spilling
// off), from the driver's put() and from a task's return value (the error crosses from the worker).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, ObjectStoreFullError, put, shutdown, TaskError } from '@tsray/core';
import { nodeStats } from '@tsray/core/internal';
import { makeBuffer } from './fixtures/tasks.js';

const MiB = 1024 * 1024;
const STORE = 64 * MiB;

beforeAll(async () => {
  await init({ numCpus: 1, objectStoreMemory: STORE, spilling: false, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

/** What `f` threw or rejected with (undefined when it did neither). */
async function failure(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('ObjectStoreFullError', () => {
  it('put() of an object larger than the store names the sizes', async () => {
    const err = await failure(() => get(put(Buffer.alloc(STORE + MiB))));
    expect(err).toBeInstanceOf(ObjectStoreFullError);
    expect(err).toMatchObject({ requested: expect.any(Number), capacity: STORE });
    expect((err as ObjectStoreFullError).requested).toBeGreaterThan(STORE);
    expect((err as Error).message).toMatch(/object store full: cannot place \d+ bytes \(capacity 67108864/);
  });

  it('a full store with spilling off refuses the next object until one is released', async () => {
    const first = put(Buffer.alloc(40 * MiB, 1));
    const err = await failure(() => get(put(Buffer.alloc(40 * MiB, 2))));
    expect(err).toBeInstanceOf(ObjectStoreFullError);
    expect((err as ObjectStoreFullError).used).toBeGreaterThanOrEqual(40 * MiB);
    first.release();
    expect(nodeStats().storeUsed).toBe(0);
    const second = put(Buffer.alloc(40 * MiB, 3));
    expect((await get(second))[0]).toBe(3);
    second.release();
  });

  it("a task's return value that cannot be placed fails the task with the store's error", async () => {
    // Raised in the worker as it stores its result, so it arrives as the task's error (as Ray's
    // RayTaskError(ObjectStoreFullError)), with the sizes in its message.
    const err = await failure(() => get(makeBuffer.remote(STORE + MiB, 7)));
    expect(err).toBeInstanceOf(TaskError);
    expect(err).toMatchObject({ remoteName: 'ObjectStoreFullError' });
    expect((err as TaskError).remoteMessage).toMatch(/object store full: cannot place \d+ bytes \(capacity 67108864/);
  });
});
