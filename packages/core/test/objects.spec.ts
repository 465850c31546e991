import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, ObjectRef, put, putAsync, SerializationError, shutdown, ValidationError } from '@tsray/core';
import { nodeStats } from '@tsray/core/internal';
import { until } from './helpers/until.js';
import { bufferChecksum, echo, makeBuffer, putAsyncInWorker, putInWorker } from './fixtures/tasks.js';

const MiB = 1024 * 1024;

/** Collect garbage (refs are released by GC here and in workers) until the store meets `cond`. */
async function settle(cond: () => boolean): Promise<void> {
  await until(cond, () => `the store to settle (now ${JSON.stringify(nodeStats())})`, { gc: true });
}

beforeAll(async () => {
  await init({ numCpus: 2, objectStoreMemory: 1536 * MiB, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

describe('put / get', () => {
  it('keeps JS types (structured clone) across processes', async () => {
    const value = {
      map: new Map<string, unknown>([
        ['a', 1],
        ['b', new Set([1, 2])],
      ]),
      date: new Date('2026-11-29T00:00:00Z'),
      big: 2n ** 70n,
      f64: new Float64Array([1.5, -2]),
      buf: Buffer.from('hello'),
      re: /x+/g,
      nested: [undefined, null, NaN, -0, 'ü'],
    };
    const local = await get(put(value));
    expect(local).toEqual(value);
    const remote = (await get(echo.remote(value))) as typeof value;
    expect(remote.map).toBeInstanceOf(Map);
    expect(remote.map.get('b')).toBeInstanceOf(Set);
    expect(remote.date).toBeInstanceOf(Date);
    expect(remote.big).toBe(2n ** 70n);
    expect(remote.f64).toBeInstanceOf(Float64Array);
    expect(Buffer.isBuffer(remote.buf)).toBe(true);
    expect(remote.buf.toString()).toBe('hello');
    expect(remote.nested).toEqual([undefined, null, NaN, -0, 'ü']);
  });

  it('keeps refs inside values as refs', async () => {
    const inner = put('inner value');
    const outer = await get(put({ list: [inner], m: new Map([['k', inner]]) }));
    expect(outer.list[0]).toBeInstanceOf(ObjectRef);
    expect(outer.list[0]!.id).toBe(inner.id);
    expect(await get(outer.list[0]!)).toBe('inner value');
    const viaTask = (await get(echo.remote({ r: inner }))) as { r: ObjectRef<string> };
    expect(await get(viaTask.r)).toBe('inner value');
  });

  it('returns top-level TypedArrays and Buffers raw', async () => {
    const u16 = new Uint16Array([1, 2, 65535]);
    const back = await get(put(u16));
    expect(back).toBeInstanceOf(Uint16Array);
    expect([...back]).toEqual([1, 2, 65535]);
    const ab = new Uint8Array([9, 8, 7]).buffer;
    expect(new Uint8Array(await get(put(ab)))).toEqual(new Uint8Array([9, 8, 7]));
  });

  it('copies the value at put time', async () => {
    const b = Buffer.alloc(200 * 1024, 1);
    const ref = put(b);
    b.fill(2);
    const back = await get(ref);
    expect(back[0]).toBe(1);
    expect(back[b.length - 1]).toBe(1);
  });

  it('puts and gets a 1 GiB Buffer with a content check', async () => {
    const size = 1024 * MiB;
    const src = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i += 4096) src.writeUInt32LE(i, i);
    const ref = put(src);
    const back = await get(ref);
    expect(back.length).toBe(size);
    for (let i = 0; i < size; i += 4096) {
      if (back.readUInt32LE(i) !== i) throw new Error(`mismatch at ${i}`);
    }
    // A worker reads it from shared memory too.
    const [len, sum] = (await get(bufferChecksum.remote(ref))) as [number, number];
    let expected = 0;
    for (let i = 0; i < size; i += 4096) expected = (expected + src[i]!) % 1_000_003;
    expect(len).toBe(size);
    expect(sum).toBe(expected);
  });

  it('large task results and worker puts go through shared memory', async () => {
    const big = await get(makeBuffer.remote(8 * MiB, 5));
    expect(big.length).toBe(8 * MiB);
    expect(big[8 * MiB - 1]).toBe(5);
    const [inner] = (await get(putInWorker.remote(3 * MiB))) as [ObjectRef<Buffer>];
    const b = await get(inner);
    expect(b.length).toBe(3 * MiB);
    expect(b[12345]).toBe(9);
  });

  it('putAsync stores the value as it was when the promise resolved (worker: straight into shared memory)', async () => {
    const n = (4 * MiB) / 4;
    const [bigRef, smallRef] = (await get(putAsyncInWorker.remote(n))) as [ObjectRef<Float32Array>, ObjectRef<Float32Array>];
    const big = await get(bigRef);
    expect(big).toBeInstanceOf(Float32Array);
    expect(big.length).toBe(n);
    expect([big[0], big[999], big[1000], big[n - 1]]).toEqual([0, 999, 0, (n - 1) % 1000]);
    expect(Array.from(await get(smallRef))).toEqual([1, 2, 3]);
    const local = new Float64Array([4, 5]);
    const ref = await putAsync(local); // the driver has no owned path: put's copy
    local.fill(0);
    expect(Array.from(await get(ref))).toEqual([4, 5]);
    await expect(putAsync(ref)).rejects.toBeInstanceOf(ValidationError);
  });

  it('returns the store to its baseline when refs of large puts are dropped', async () => {
    await settle(() => nodeStats().storeUsed === 0);
    const base = nodeStats();
    const loop = async () => {
      for (let i = 0; i < 30; i++) {
        const ref = put(Buffer.alloc(20 * MiB, i));
        if (i % 10 === 0) expect((await get(ref))[0]).toBe(i);
      }
    };
    await loop();
    await settle(() => nodeStats().storeUsed <= base.storeUsed && nodeStats().objects <= base.objects);
    const after = nodeStats();
    expect(after.storeUsed).toBe(base.storeUsed);
    expect(after.objects).toBeLessThanOrEqual(base.objects);
    expect(after.spilledBytes).toBe(base.spilledBytes);
  });

  it('frees an object at once when its last ref is released', async () => {
    await settle(() => nodeStats().storeUsed === 0);
    const ref = put(Buffer.alloc(10 * MiB, 1));
    expect(nodeStats().storeUsed).toBeGreaterThanOrEqual(10 * MiB);
    ref.release();
    expect(nodeStats().storeUsed).toBe(0);
    await expect(get(ref)).rejects.toBeInstanceOf(ValidationError);
    {
      using scoped = put(Buffer.alloc(10 * MiB, 2));
      expect((await get(scoped)).length).toBe(10 * MiB);
    }
    await settle(() => nodeStats().storeUsed === 0);
    expect(nodeStats().storeUsed).toBe(0);
  });

  it('spills to disk when the store is full and reads spilled objects back', async () => {
    await settle(() => nodeStats().storeUsed === 0);
    const refs: ObjectRef<Buffer>[] = [];
    for (let i = 0; i < 5; i++) refs.push(put(Buffer.alloc(400 * MiB, i + 1)));
    expect(nodeStats().spilledBytes).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) {
      const b = await get(refs[i]!);
      expect(b.length).toBe(400 * MiB);
      expect(b[0]).toBe(i + 1);
      expect(b[b.length - 1]).toBe(i + 1);
    }
    refs.length = 0;
    await settle(() => nodeStats().spilledBytes === 0);
    expect(nodeStats().spilledBytes).toBe(0);
  });
});

describe('bad input', () => {
  it('names the path of a value that cannot be serialized', () => {
    const err = (() => {
      try {
        put({ config: { handlers: [1, () => 2] } });
      } catch (e) {
        return e as SerializationError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(SerializationError);
    expect(err!.path).toBe('put() value.config.handlers[1]');
    expect(err!.message).toContain('function');
  });

  it('rejects symbols and sockets with the field path', () => {
    expect(() => put({ s: Symbol('x') })).toThrow(/\.s/);
    const sock = new Socket();
    try {
      expect(() => echo.remote({ conn: sock })).toThrow(SerializationError);
      expect(() => echo.remote({ conn: sock })).toThrow(/argument 0\.conn/);
      expect(() => echo.remote({ conn: sock })).toThrow(/Socket/);
    } finally {
      sock.destroy();
    }
  });

  it('refuses put of a ref', () => {
    expect(() => put(put(1))).toThrow(ValidationError);
  });
});
