/**
 * The GCS stores (issue #18): rows written by one process are loaded by the next, for the on-disk log
 * (a torn last line skipped, compaction keeping every live row) and for Redis (a real redis-server).
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileGcsStorage } from '../src/gcs-file-storage.js';
import { GcsStorageError, openGcsStorage, type GcsStorage } from '../src/gcs-storage.js';
import { startRedis, type RedisServer } from './fixtures/redis-server.js';
import { tempDir } from './fixtures/util.js';

/** Write a few rows, remove one, reopen with `open` and compare. */
async function roundTrip(open: () => Promise<GcsStorage>): Promise<void> {
  const a = await open();
  await a.put('actors', 'a1', '{"name":"x"}');
  await a.put('kv', 'k', Buffer.from('v').toString('base64'));
  await a.put('kv', 'gone', 'x');
  await a.del('kv', 'gone');
  await a.put('actors', 'a1', '{"name":"y"}');
  await a.close();
  const b = await open();
  const t = await b.load();
  expect([...t.actors]).toEqual([['a1', '{"name":"y"}']]);
  expect([...t.kv]).toEqual([['k', Buffer.from('v').toString('base64')]]);
  expect(t.nodes.size).toBe(0);
  await b.close();
}

describe('FileGcsStorage (the default on-disk log)', () => {
  const tmp = tempDir('tsray-gcs-store-');
  afterAll(() => tmp.cleanup());

  it('reloads what was written', async () => {
    const path = join(tmp.dir, 'a', 'store.jsonl');
    await roundTrip(() => openGcsStorage(path));
  });

  it('skips a torn last line (the head died mid-write) and keeps appending', async () => {
    const path = join(tmp.dir, 'torn.jsonl');
    const s = FileGcsStorage.open(path);
    await s.put('names', 'ns\0n', 'a1');
    await s.close();
    appendFileSync(path, '{"t":"names","k":"half');
    const r = FileGcsStorage.open(path);
    await r.put('kv', 'after', 'x');
    await r.close();
    const t = await FileGcsStorage.open(path).load();
    expect([...t.names]).toEqual([['ns\0n', 'a1']]);
    expect([...t.kv]).toEqual([['after', 'x']]);
  });

  it('compacts a long log to its live rows', async () => {
    const path = join(tmp.dir, 'compact.jsonl');
    const s = FileGcsStorage.open(path);
    for (let i = 0; i < 1100; i++) await s.put('kv', `k${i % 10}`, String(i));
    await s.close();
    expect(readFileSync(path, 'utf8').trimEnd().split('\n').length).toBeLessThan(1000);
    const t = await FileGcsStorage.open(path).load();
    expect(t.kv.size).toBe(10);
    expect(t.kv.get('k9')).toBe('1099');
  });

  it('refuses a store it does not know, and a corrupt log, with a typed error', async () => {
    await expect(openGcsStorage('mongodb://h:1')).rejects.toThrow(GcsStorageError);
    const path = join(tmp.dir, 'corrupt.jsonl');
    appendFileSync(path, 'not json\n{"t":"kv","k":"a","v":"b"}\n');
    await expect(openGcsStorage(path)).rejects.toThrow(/corrupt at line 1/);
  });
});

describe('RedisGcsStorage (redis-server)', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  }, 30_000);
  afterAll(async () => {
    await redis.stop();
  });

  it('reloads what was written', async () => {
    await roundTrip(() => openGcsStorage(redis.url));
  });

  it('says which Redis does not answer', async () => {
    await expect(openGcsStorage('redis://127.0.0.1:1')).rejects.toThrow(/redis:\/\/127\.0\.0\.1:1 does not answer/);
  }, 30_000);
});
