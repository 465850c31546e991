/**
 * An embedded cluster (a driver's `init()`, as `tsray serve` without --address starts) is visible to
 * `tsray status` and `tsray list` on the same machine (issue #20): the CLI, a real process, attaches to
 * its node, and detaches without disturbing it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, tsray } from './fixtures/cli.js';

const DRIVER = fileURLToPath(new URL('./fixtures/embedded-driver.ts', import.meta.url));

describe('tsray status / list see an init() cluster', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tsray-embedded-'));
  let driver: ChildProcess;
  let pid = 0;

  beforeAll(async () => {
    assertBuilt();
    driver = spawn(process.execPath, ['--import', 'tsx', DRIVER], { env: { ...process.env, TMPDIR: tmp }, stdio: ['pipe', 'pipe', 'inherit'] });
    pid = await new Promise<number>((resolve, reject) => {
      let buf = '';
      driver.stdout!.on('data', (d: Buffer) => {
        buf += String(d);
        const m = /ready (\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      driver.once('exit', (code) => reject(new Error(`the driver exited early (${code})`)));
    });
  }, 60_000);

  afterAll(async () => {
    if (driver.exitCode === null) {
      const exited = new Promise((r) => driver.once('exit', r));
      driver.stdin!.end();
      await exited;
    }
    rmSync(tmp, { recursive: true, force: true });
  }, 30_000);

  it('status shows its node and resources; list shows its actor; the driver keeps running', async () => {
    const status = await tsray(['status', '--format', 'json'], { TMPDIR: tmp }, 60_000);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout) as { nodes: { alive: boolean; resourcesTotal: Record<string, number> }[] };
    expect(s.nodes.length).toBe(1);
    expect(s.nodes[0]).toMatchObject({ alive: true, resourcesTotal: { CPU: 2 } });
    const actors = await tsray(['list', 'actors', '--format', 'json'], { TMPDIR: tmp }, 60_000);
    expect(actors.code).toBe(0);
    const rows = JSON.parse(actors.stdout) as { name: string; state: string }[];
    expect(rows.find((a) => a.name === 'visible-actor')).toMatchObject({ state: 'ALIVE' });
    const table = await tsray(['list', 'actors'], { TMPDIR: tmp }, 60_000);
    expect(table.stdout).toContain('visible-actor');
    expect(driver.exitCode).toBe(null);
    expect(pid).toBeGreaterThan(0);
  });

  it('without any cluster, status still says none runs (the embedded lookup does not mistake a dead driver for one)', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'tsray-none-'));
    try {
      const r = await tsray(['status'], { TMPDIR: empty });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('no running tsray head found');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
