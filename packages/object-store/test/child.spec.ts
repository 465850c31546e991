import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ArenaTracker } from './helpers.js';

const execFileP = promisify(execFile);
const fixture = fileURLToPath(new URL('./fixtures/child.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const MiB = 1 << 20;
const tracker = new ArenaTracker();
afterEach(() => tracker.cleanup());

/** Same checksum as the fixture. */
function sum(buf: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < buf.length; i++) s = (s + buf[i]! * (i + 1)) % 1_000_000_007;
  return s;
}

describe('Arena across processes', () => {
  beforeAll(() => {
    if (!existsSync(dist)) throw new Error(`${dist} is missing: build first (npx nx build object-store)`);
  });

  it('a child process sees bytes the parent wrote, and the parent sees bytes the child wrote', async () => {
    const a = tracker.create({ size: 16 * MiB });
    await a.ready;
    const data = Buffer.alloc(MiB);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    a.write(5 * MiB, data);

    const { stdout } = await execFileP(process.execPath, [fixture, a.path, String(a.size), String(5 * MiB), String(MiB), String(9 * MiB), '77'], {
      timeout: 30_000,
    });
    const [mapped, json, written] = stdout.trim().split('\n');
    expect(mapped).toBe('mapped');
    expect(JSON.parse(json!)).toEqual({ sum: sum(data), first: data[0], last: data[MiB - 1] });
    expect(written).toBe('written');
    const back = a.view(9 * MiB, MiB);
    expect(back.every((b) => b === 77)).toBe(true);
    expect(a.view(10 * MiB, 1)[0]).toBe(0); // nothing beyond what the child wrote
  });

  it('the mapping stays shared after the owner unlinks the file', async () => {
    const a = tracker.create({ size: 4 * MiB, prefault: false });
    a.write(0, Buffer.from([1, 2, 3, 4]));
    const child = spawn(process.execPath, [fixture, a.path, String(a.size), '0', '4', String(MiB), '200', '--wait'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      expect((await lines.next()).value).toBe('mapped');
      a.unlink(); // every process has mapped it: the name can go
      expect(existsSync(a.path)).toBe(false);
      child.stdin.write('go\n');
      expect(JSON.parse((await lines.next()).value as string)).toMatchObject({ first: 1, last: 4 });
      expect((await lines.next()).value).toBe('written');
      expect(await exited).toBe(0);
      expect([...a.view(MiB, 4)]).toEqual([200, 200, 200, 200]);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  });
});
