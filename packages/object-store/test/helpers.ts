import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { Arena } from '../src/index.js';

/** A unique path in /dev/shm for one test arena. */
export function testPath(): string {
  return `/dev/shm/tsray-test-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Tracks arenas made by a test and removes them afterwards (call `cleanup` in afterEach). */
export class ArenaTracker {
  private readonly arenas: Arena[] = [];
  private readonly paths: string[] = [];
  create(opts: Parameters<typeof Arena.create>[0]): Arena {
    const a = Arena.create({ path: testPath(), ...opts });
    this.arenas.push(a);
    this.paths.push(a.path);
    return a;
  }
  open(path: string, size: number): Arena {
    const a = Arena.open(path, size);
    this.arenas.push(a);
    return a;
  }
  track(path: string): string {
    this.paths.push(path);
    return path;
  }
  async cleanup(): Promise<void> {
    for (const a of this.arenas.splice(0)) {
      a.close();
      await a.ready.catch(() => undefined);
    }
    for (const p of this.paths.splice(0)) {
      rmSync(p, { force: true });
    }
  }
}

/** Whether this process currently maps `path` (per /proc/self/maps). */
export function isMapped(path: string): boolean {
  return readFileSync('/proc/self/maps', 'utf8').includes(path);
}

/** Runs full GCs (needs --expose-gc) and lets finalizers run until `done()` or the attempts run out. */
export async function collectUntil(done: () => boolean, attempts = 50): Promise<boolean> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc (see vitest.config.mts)');
  for (let i = 0; i < attempts && !done(); i++) {
    gc();
    await nextMacrotask();
  }
  return done();
}
