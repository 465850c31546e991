/**
 * Session logs outlive shutdown() (as Ray's /tmp/ray/session_*): every crash error names the full path
 * of the worker's stderr file, and that file still holds the worker's output after shutdown().
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorDiedError, clusterInfo, get, init, shutdown, WorkerCrashedError } from '@tsray/core';
import { pruneSessions } from '@tsray/core/internal';
import { crashTask, RemoteDier } from './fixtures/dying.js';

const small = { numCpus: 1, objectStoreMemory: 64 * 1024 * 1024, logToDriver: false };

/** The log file an error message names (`its stderr is in <path>`). */
function namedLog(message: string): string {
  const m = /its stderr is in (\S+?\.err)/.exec(message);
  expect(m, `no log path in: ${message}`).not.toBeNull();
  return m![1]!;
}

afterEach(async () => {
  await shutdown();
});

describe('session logs after shutdown()', () => {
  it("an ActorDiedError names the actor's stderr file, which exists after shutdown and holds its output", async () => {
    await init(small);
    const sessionDir = clusterInfo()!.sessionDir;
    const marker = `actor-last-words-${process.pid}-${Date.now()}`;
    const a = RemoteDier.remote();
    const err = await get(a.die.remote(marker)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorDiedError);
    expect((err as ActorDiedError).reason).toBe('crashed');
    const file = namedLog((err as Error).message);
    expect(file.startsWith(join(sessionDir, 'logs'))).toBe(true);
    await shutdown();
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, 'utf8')).toContain(marker);
    // Only the logs stay: the token, sockets and spill files of the session are gone.
    expect(readdirSync(sessionDir)).toEqual(['logs']);
  });

  it('a WorkerCrashedError names the crashed worker stderr file, kept after shutdown', async () => {
    await init(small);
    const marker = `task-last-words-${process.pid}-${Date.now()}`;
    const err = await get(crashTask.options({ maxRetries: 0 }).remote(marker)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerCrashedError);
    const file = namedLog((err as Error).message);
    await shutdown();
    expect(readFileSync(file, 'utf8')).toContain(marker);
  });
});

describe('pruneSessions', () => {
  it('keeps the newest finished sessions (logs only), removes older ones, never touches a live one', () => {
    const root = mkdtempSync(join(tmpdir(), 'prune-'));
    try {
      const deadPid = 999_999_001;
      const make = (name: string) => {
        const dir = join(root, name);
        mkdirSync(join(dir, 'logs'), { recursive: true });
        mkdirSync(join(dir, 'spill'));
        writeFileSync(join(dir, 'logs', 'worker-1.err'), 'x');
        writeFileSync(join(dir, 'token'), 't');
        return dir;
      };
      const oldest = make(`session-1000-${deadPid}`);
      const middle = make(`session-2000-${deadPid}`);
      const newest = make(`session-3000-${deadPid}`);
      const live = make(`session-500-${process.pid}`);
      const noLogs = join(root, `session-4000-${deadPid}`);
      mkdirSync(join(noLogs, 'spill'), { recursive: true });
      pruneSessions(root, 2, (pid) => pid === process.pid);
      expect(existsSync(oldest)).toBe(false);
      expect(readdirSync(newest)).toEqual(['logs']);
      expect(readdirSync(middle)).toEqual(['logs']);
      expect(readdirSync(live).sort()).toEqual(['logs', 'spill', 'token']);
      // A finished session with no logs is not worth keeping (and does not take one of the kept places).
      expect(existsSync(noLogs)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
