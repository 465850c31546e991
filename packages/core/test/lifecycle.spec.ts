import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { clusterInfo, get, init, remote, RuntimeStateError, shutdown, ValidationError, wait } from '@tsray/core';
import { workerPids } from '@tsray/core/internal';
import { add } from './fixtures/tasks.js';
import { RemoteCounter } from './fixtures/actors.js';
import { alive } from './helpers/processes.js';
import { until } from './helpers/until.js';

const run = promisify(execFile);
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const tsx = ['--import', 'tsx'];

function shmFilesOf(pid: number): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith(`tsray-${pid}-`));
}

describe('driver output', () => {
  it('forwards worker lines prefixed (name pid=N), stdout and stderr', async () => {
    const { stdout, stderr } = await run(process.execPath, [...tsx, fixture('driver-logs.ts')], { timeout: 60_000 });
    const m = /driver done (\d+) (\d+)/.exec(stdout);
    expect(m).not.toBeNull();
    const pid = m![1];
    expect(stdout).toContain(`(greet pid=${pid}) hello a\n`);
    expect(stderr).toContain(`(greet pid=${pid}) warning for a\n`);
    // A partial line is completed before the next task's output gets its own prefix.
    expect(stdout).toContain(`(greet pid=${pid}) partial line without newline\n`);
    expect(stdout).toContain(`(otherTask pid=${m![2]}) from other\n`);
  });

  it('logToDriver: false keeps worker output out of the driver', async () => {
    const { stdout, stderr } = await run(process.execPath, [...tsx, fixture('driver-logs.ts')], {
      timeout: 60_000,
      env: { ...process.env, LOG_TO_DRIVER: '0' },
    });
    expect(stdout).toMatch(/driver done/);
    expect(stdout).not.toContain('hello a');
    expect(stderr).not.toContain('warning for a');
  });

  it('a worker refuses a module that runs init() at import, naming the fix', async () => {
    const { stdout } = await run(process.execPath, [...tsx, fixture('call-unguarded.ts')], { timeout: 60_000 });
    expect(stdout).toContain('ERROR DriverCodeInWorkerError');
    expect(stdout).toContain('isMain(import.meta)');
  });
});

describe('process lifecycle', () => {
  it('shutdown leaves no worker process or shared-memory file, and of the session only its logs', async () => {
    await init({ numCpus: 2, objectStoreMemory: 64 * 1024 * 1024, logToDriver: false });
    const dir = clusterInfo()!.sessionDir;
    expect(await get([add.remote(1, 1), add.remote(2, 2)])).toEqual([2, 4]);
    const pids = workerPids();
    expect(pids.length).toBeGreaterThan(0);
    await shutdown();
    expect(pids.filter(alive)).toEqual([]);
    expect(shmFilesOf(process.pid)).toEqual([]);
    expect(readdirSync(dir)).toEqual(['logs']);
    // A new init after shutdown works.
    await init({ numCpus: 1, objectStoreMemory: 64 * 1024 * 1024, logToDriver: false });
    expect(await get(add.remote(3, 4))).toBe(7);
    await shutdown();
  });

  it('workers die with a killed driver and the next start retires its session to its logs', async () => {
    const child = spawn(process.execPath, [...tsx, fixture('driver-hang.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const l = buf.split('\n').find((x) => x.startsWith('{'));
        if (l) resolve(l);
      });
      child.on('exit', (code) => reject(new Error(`driver exited early (${code})`)));
    });
    const { pids, sessionDir } = JSON.parse(line) as { pids: number[]; sessionDir: string };
    expect(pids.length).toBe(2);
    child.kill('SIGKILL');
    await until(() => pids.every((p) => !alive(p)), "the killed driver's workers to exit");
    expect(shmFilesOf(child.pid!)).toEqual([]);
    expect(existsSync(sessionDir)).toBe(true);
    await init({ numCpus: 1, objectStoreMemory: 64 * 1024 * 1024, logToDriver: false });
    expect(readdirSync(sessionDir)).toEqual(['logs']);
    await shutdown();
  });
});

describe('bad input', () => {
  it('init validates its options', async () => {
    await expect(init({ numCpus: -2 })).rejects.toBeInstanceOf(ValidationError);
    await expect(init({ numGpus: 1.5 })).rejects.toThrow(/numGpus/);
    await expect(init({ resources: { CPU: 3 } })).rejects.toThrow(/numCpus/);
    await expect(init({ bogus: true } as never)).rejects.toThrow(/unknown option "bogus"/);
  });

  it('using the API before init, or a handle after shutdown, is a clear error', async () => {
    expect(() => add.remote(1, 2)).toThrow(/call init\(\) first/);
    await init({ numCpus: 1, objectStoreMemory: 64 * 1024 * 1024, logToDriver: false });
    const c = RemoteCounter.remote();
    expect(await get(c.increment.remote())).toBe(1);
    await shutdown();
    expect(() => c.increment.remote()).toThrow(RuntimeStateError);
    expect(() => c.increment.remote()).toThrow(/call init\(\) first/);
  });

  it('work no node can run stays pending and is named in one warning', async () => {
    const writes: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      await init({ numCpus: 1, objectStoreMemory: 64 * 1024 * 1024, logToDriver: false });
      const needsGpu = add.options({ numGpus: 1 });
      const refs = [needsGpu.remote(1, 1), needsGpu.remote(2, 2)];
      await until(() => writes.some((w) => w.includes('no node can ever provide')), 'the warning about work no node can run');
      // Other work still runs (and, submitted after both, it was scheduled after both were seen).
      expect(await get(add.remote(5, 5))).toBe(10);
      expect((await wait(refs, { numReturns: 1, timeout: 0 })).ready).toEqual([]);
      const warnings = writes.filter((w) => w.includes('no node can ever provide'));
      expect(warnings.length).toBe(1);
      expect(warnings[0]).toContain('GPU');
      expect(warnings[0]).toContain('add');
    } finally {
      spy.mockRestore();
      await shutdown();
    }
  });
});

// A remote function defined inside a test file is fine too (its module is this file).
export const local = remote(function localFn() {
  return 'local';
});
