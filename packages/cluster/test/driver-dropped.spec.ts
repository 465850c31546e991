/**
 * A remote client driver (TypeScript or Python) the node dropped (silent past TSRAY_CLIENT_TIMEOUT_MS:
 * here stopped with SIGSTOP) learns it on its next message and fails its pending and later calls with
 * ConnectionError instead of waiting forever.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestCluster, until } from './fixtures/cluster-harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DRIVER = fileURLToPath(new URL('./fixtures/dropped-driver.ts', import.meta.url));
/** The Python client's version of fixtures/dropped-driver.ts (a state call before and after; the task needs no worker). */
const PY_DRIVER = [
  'import sys, tsray',
  'tsray.init(address=sys.argv[1], token=sys.argv[2])',
  '@tsray.remote(resources={"nowhere": 1})',
  'def nowhere():',
  '    return 2',
  'print("before:", tsray.cluster_resources()["CPU"], flush=True)',
  'ref = nowhere.remote()',
  'print("ready", flush=True)',
  'for what, call in (("pending", lambda: tsray.get(ref)), ("after", tsray.cluster_resources)):',
  '    try:',
  '        print(f"{what}: {call()}", flush=True)',
  '    except Exception as e:',
  '        print(f"{what}: {type(e).__name__}: {e}", flush=True)',
  'tsray.shutdown()',
  '',
].join('\n');
const c = new TestCluster();
/** Driver processes of this file, killed at the end whatever happened. */
const drivers: ChildProcess[] = [];

beforeAll(async () => {
  await c.startHead({ numCpus: 1, env: { TSRAY_CLIENT_TIMEOUT_MS: '1000', TSRAY_PYTHON: `${ROOT}.venv/bin/python` } });
}, 60_000);

afterAll(async () => {
  for (const d of drivers) d.kill('SIGKILL');
  await c.stop();
}, 60_000);

/** Runs a remote driver until it prints "ready", stops it until the head dropped it, lets it finish; its output. */
async function dropped(cmd: string[], env: NodeJS.ProcessEnv): Promise<{ out: string; err: string }> {
  const driver = spawn(cmd[0]!, cmd.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  drivers.push(driver);
  const exited = new Promise<number | null>((r) => driver.once('exit', (code) => r(code)));
  let out = '';
  let err = '';
  driver.stdout.on('data', (d: Buffer) => (out += d.toString()));
  driver.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const left = () => readFileSync(c.head.errLog, 'utf8').match(/client driver left/g)?.length ?? 0;
  const leftBefore = left();
  await until(() => out.includes('ready') || driver.exitCode !== null, 60_000, 'the driver to be ready');
  expect(out, err).toMatch(/before: 1\S*\nready/);
  driver.kill('SIGSTOP');
  await until(() => left() > leftBefore, 30_000, 'the head to drop the silent driver');
  driver.kill('SIGCONT');
  expect(await exited, err).toBe(0);
  return { out, err };
}

function elsewhere(name: string): string {
  const dir = join(c.tmp, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

it('a remote TypeScript driver the node dropped fails its pending and later calls with ConnectionError', { timeout: 120_000 }, async () => {
  const { out, err } = await dropped([process.execPath, '--import', 'tsx', DRIVER, c.gcsAddress, c.token], { ...process.env, TMPDIR: elsewhere('ts') });
  expect(out).toMatch(/pending: ConnectionError: the node \S+ dropped this driver/);
  expect(out).toContain('after: ConnectionError: the node');
  expect(err.match(/dropped this driver/g)?.length).toBe(1);
});

it('a remote Python driver the node dropped fails its pending and later calls with ConnectionError', { timeout: 120_000 }, async () => {
  const dir = elsewhere('py');
  const script = join(dir, 'driver.py');
  writeFileSync(script, PY_DRIVER);
  const { out, err } = await dropped([`${ROOT}.venv/bin/python`, script, c.gcsAddress, c.token], { ...process.env, TMPDIR: dir, PYTHONPATH: `${ROOT}python` });
  expect(out).toMatch(/pending: ConnectionError: the node \S+ dropped this driver/);
  expect(out).toContain('after: ConnectionError: the node');
  expect(err.match(/dropped this driver/g)?.length).toBe(1);
});
