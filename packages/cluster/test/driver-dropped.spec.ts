/**
 * A remote client driver the node dropped (silent past TSRAY_CLIENT_TIMEOUT_MS: here stopped with
 * SIGSTOP) learns it on its next message and fails its pending and later calls with ConnectionError
 * instead of waiting forever.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestCluster, until } from './fixtures/cluster-harness.js';

const DRIVER = fileURLToPath(new URL('./fixtures/dropped-driver.ts', import.meta.url));
const c = new TestCluster();
/** Driver processes of this file, killed at the end whatever happened. */
const drivers: ChildProcess[] = [];

beforeAll(async () => {
  await c.startHead({ numCpus: 1, env: { TSRAY_CLIENT_TIMEOUT_MS: '1000' } });
}, 60_000);

afterAll(async () => {
  for (const d of drivers) d.kill('SIGKILL');
  await c.stop();
}, 60_000);

it('a remote driver the node dropped fails its pending and later calls with ConnectionError', { timeout: 120_000 }, async () => {
  const elsewhere = join(c.tmp, 'elsewhere');
  mkdirSync(elsewhere, { recursive: true });
  const driver = spawn(process.execPath, ['--import', 'tsx', DRIVER, c.gcsAddress, c.token], {
    env: { ...process.env, TMPDIR: elsewhere },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  drivers.push(driver);
  const exited = new Promise<number | null>((r) => driver.once('exit', (code) => r(code)));
  let out = '';
  let err = '';
  driver.stdout.on('data', (d: Buffer) => (out += d.toString()));
  driver.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    await until(() => out.includes('ready') || driver.exitCode !== null, 60_000, 'the driver to be ready');
    expect(out).toContain('before: 1\nready');
    driver.kill('SIGSTOP');
    await until(() => readFileSync(c.head.errLog, 'utf8').includes('client driver left'), 30_000, 'the head to drop the silent driver');
    driver.kill('SIGCONT');
    expect(await exited).toBe(0);
  } finally {
    driver.kill('SIGKILL');
  }
  expect(out).toMatch(/pending: ConnectionError: the node \S+ dropped this driver/);
  expect(out).toContain('after: ConnectionError: the node');
  expect(err.match(/dropped this driver/g)?.length).toBe(1);
});
