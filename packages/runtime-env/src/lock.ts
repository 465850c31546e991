/**
 * Locks: an in-process mutex per key, and a lock file per key so that several processes of one node
 * (two drivers, a node and a CLI) build an environment once.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/** A mutex per key within this process. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /** Run `fn` when no other holder of `key` runs. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A held lock file; `release()` removes it. */
export interface FileLockHandle {
  release(): Promise<void>;
}

/**
 * Take the lock file `path` (created exclusively, holding `pid token`). A lock whose owner process
 * is dead is taken over. Waits (polling, backing off to 200 ms) up to `timeoutMs`.
 */
export async function acquireFileLock(path: string, timeoutMs: number): Promise<FileLockHandle> {
  const token = `${process.pid} ${randomBytes(8).toString('hex')}`;
  const deadline = Date.now() + timeoutMs;
  let wait = 10;
  for (;;) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(token);
      await fh.close();
      return {
        release: async () => {
          try {
            if ((await readFile(path, 'utf8')) === token) await unlink(path);
          } catch {
            /* gone */
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // Held: by a live process (wait), or left by a dead one (take it over).
    let owner = '';
    try {
      owner = await readFile(path, 'utf8');
    } catch {
      continue; // released meanwhile
    }
    const pid = Number(owner.split(' ')[0]);
    if (owner !== '' && Number.isInteger(pid) && pid > 0 && !pidAlive(pid)) {
      // Move the stale lock aside; if what we moved is not the stale one (a new owner took it in
      // between), put it back.
      const aside = `${path}.stale-${randomBytes(4).toString('hex')}`;
      try {
        await rename(path, aside);
        const moved = await readFile(aside, 'utf8');
        if (moved !== owner) await link(aside, path).catch(() => undefined);
        await unlink(aside);
      } catch {
        /* someone else handled it */
      }
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the lock ${path} (held by pid ${pid})`);
    await delay(wait);
    wait = Math.min(200, wait * 2);
  }
}
