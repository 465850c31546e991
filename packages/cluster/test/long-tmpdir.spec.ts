/**
 * A long TMPDIR (macOS's is ~49 characters) must not break startup: unix socket paths hold at most 107
 * bytes, so node sockets live in a short per-user directory while the session stays under TMPDIR. Real
 * processes: `tsray start --head`, a TypeScript driver attached with init({ address: 'auto' }), the
 * Python client, and a driver with an embedded cluster, at TMPDIR lengths 40, 70 and 150; and the typed
 * error when the socket directory asked for (TSRAY_SOCKET_DIR) is too long.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { tsray } from './fixtures/cli.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DRIVER = fileURLToPath(new URL('./fixtures/state-driver.ts', import.meta.url));
const PYTHON = `${ROOT}.venv/bin/python`;

// Under /tmp (not os.tmpdir()) so that the lengths are exact whatever the runner's TMPDIR is.
const base = mkdtempSync('/tmp/tsray-long-');

/** A directory whose path is exactly `length` characters. */
function dirOfLength(length: number): string {
  const dir = join(base, String(length).padEnd(length - base.length - 1, 'x'));
  expect(dir.length).toBe(length);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Environment of the processes of one case: this TMPDIR, no TSRAY_* of the runner. */
function envWith(tmp: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, PYTHONPATH: `${ROOT}python`, ...extra };
  for (const k of Object.keys(env)) if (k.startsWith('TSRAY_') && !(k in extra)) delete env[k];
  return env;
}

async function driver(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, any>> {
  const r = await run(process.execPath, ['--import', 'tsx', DRIVER, ...args], { env, timeout: 60_000 }).catch(
    (e: { stdout?: string; stderr?: string; message: string }) => {
      if (e.stdout?.trim()) return { stdout: e.stdout };
      throw new Error(`${e.message}\n${e.stderr?.slice(-2000)}`);
    },
  );
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const started: string[] = [];

afterAll(async () => {
  // Whatever a failed case left running is stopped; then the directories go.
  for (const tmp of started) await tsray(['stop', '--force'], { TMPDIR: tmp });
  rmSync(base, { recursive: true, force: true });
}, 60_000);

describe('long TMPDIR (real processes)', () => {
  for (const length of [40, 70, 150]) {
    it(`TMPDIR of ${length} characters: tsray start --head, init('auto') from TypeScript and Python, and an embedded init()`, async () => {
      const tmp = dirOfLength(length);
      started.push(tmp);
      const head = await tsray(['start', '--head', '--port', '0', '--dashboard-port', '0', '--num-cpus', '1'], { TMPDIR: tmp }, 60_000);
      expect(head.stderr).toBe('');
      expect(head.code).toBe(0);
      expect(head.stdout).toContain(`Session: ${tmp}/tsray-${process.getuid?.()}/session-`);

      const attached = await driver(['auto'], envWith(tmp));
      expect(attached.error).toBeUndefined();
      expect(attached.taskNode).toBe(attached.info.nodeId);
      expect(attached.clusterResources['CPU']).toBe(1);
      const socket = String(attached.info.address).replace(/^ipc:\/\//, '');
      expect(Buffer.byteLength(socket)).toBeLessThanOrEqual(107);
      expect(existsSync(socket)).toBe(true);

      const py = await run(
        PYTHON,
        ['-c', 'import json, tsray; c = tsray.init("auto"); print(json.dumps([c.address, tsray.cluster_resources()])); tsray.shutdown()'],
        { env: envWith(tmp), timeout: 60_000 },
      );
      const [pyAddress, pyResources] = JSON.parse(py.stdout) as [string, Record<string, number>];
      expect(pyAddress).toBe(attached.info.address);
      expect(pyResources['CPU']).toBe(1);

      const embedded = await driver(['local'], envWith(tmp));
      expect(embedded.error).toBeUndefined();
      expect(embedded.taskNode).toBe(embedded.info.nodeId);
      expect(String(embedded.info.sessionDir).startsWith(`${tmp}/tsray-${process.getuid?.()}/session-`)).toBe(true);
      expect(existsSync(String(embedded.info.address).replace(/^ipc:\/\//, ''))).toBe(false); // removed by shutdown()

      const stop = await tsray(['stop'], { TMPDIR: tmp });
      expect(stop.stdout).toMatch(/Stopped 1 tsray process/);
      expect(existsSync(socket)).toBe(false);
    }, 120_000);
  }

  it('a socket directory too long for a unix socket (TSRAY_SOCKET_DIR) is a typed error naming the path', async () => {
    const tmp = dirOfLength(40);
    const long = dirOfLength(150);
    const embedded = await driver(['local'], envWith(tmp, { TSRAY_SOCKET_DIR: long }));
    expect(embedded.error?.name).toBe('SocketPathTooLongError');
    expect(String(embedded.error?.path).startsWith(`${long}/`)).toBe(true);
    expect(embedded.error?.message).toContain(embedded.error?.path);
    expect(embedded.error?.message).toMatch(/more than the 107 a unix socket path may have .*TSRAY_SOCKET_DIR/);

    started.push(tmp);
    const head = await tsray(['start', '--head', '--port', '0', '--dashboard-port', '0', '--num-cpus', '1'], { TMPDIR: tmp, TSRAY_SOCKET_DIR: long }, 60_000);
    expect(head.code).not.toBe(0);
    expect(head.stderr).toMatch(new RegExp(`the tsray head did not start: .*the node socket path ${long}/\\d+-[0-9a-zA-Z]+\\.sock is \\d+ bytes`));
  }, 120_000);
});
