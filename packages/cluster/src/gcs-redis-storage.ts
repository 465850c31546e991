/**
 * The GCS tables in an external Redis (`tsray start --head --storage redis://host:port[/db]`), as Ray's
 * Redis-backed GCS: one hash per table (`tsray:gcs:<table>`), so a head restarted on any machine that
 * reaches the same Redis reloads the cluster. Writes resolve once Redis acknowledged them; while Redis
 * is unreachable the client reconnects and a write fails after a few retries (the control call that
 * made it then fails, and its caller retries or reports it).
 * @module
 */
import { Redis } from 'ioredis';
import { logger } from './logger.js';
import { GCS_TABLES, type GcsStorage, GcsStorageError, type GcsTable, type GcsTables, emptyTables } from './gcs-storage.js';

/** Key prefix of the tables' hashes. */
const PREFIX = 'tsray:gcs:';
/** How long opening waits for Redis to answer. */
const CONNECT_TIMEOUT_MS = 10_000;

/** The GCS tables as Redis hashes. */
export class RedisGcsStorage implements GcsStorage {
  readonly description: string;

  private constructor(
    private readonly redis: Redis,
    url: string,
  ) {
    // Never log a password.
    this.description = url.replace(/\/\/[^@/]*@/, '//***@');
  }

  /** Connect to `url` and check that Redis answers. @throws GcsStorageError naming the address when it does not. */
  static async open(url: string): Promise<RedisGcsStorage> {
    const redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 3,
      // Reconnect with backoff up to 2 s while the GCS runs.
      retryStrategy: (times) => Math.min(100 * times, 2000),
    });
    const s = new RedisGcsStorage(redis, url);
    redis.on('error', (err: Error) => logger().warn({ storage: s.description, err: err.message }, 'the GCS store (Redis) reported an error'));
    try {
      await redis.connect();
      await redis.ping();
    } catch (e) {
      redis.disconnect();
      throw new GcsStorageError(`the GCS store ${s.description} does not answer: ${(e as Error).message} (is redis-server running there?)`);
    }
    return s;
  }

  async load(): Promise<GcsTables> {
    const out = emptyTables();
    const all = await Promise.all(GCS_TABLES.map((t) => this.redis.hgetall(PREFIX + t)));
    for (const [i, t] of GCS_TABLES.entries()) for (const [k, v] of Object.entries(all[i] ?? {})) out[t].set(k, v);
    return out;
  }

  async put(table: GcsTable, key: string, value: string): Promise<void> {
    await this.redis.hset(PREFIX + table, key, value);
  }

  async del(table: GcsTable, key: string): Promise<void> {
    await this.redis.hdel(PREFIX + table, key);
  }

  async close(): Promise<void> {
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
