import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packages = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tsray-pack-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('published packages', () => {
  it('@tsray/core and its dependencies install from tarballs outside the monorepo and run a task', async () => {
    const tarballs: Record<string, string> = {};
    for (const name of ['protocol', 'object-store', 'scheduler', 'placement', 'runtime-env', 'core']) {
      const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: join(packages, name) });
      const [info] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
      tarballs[`@tsray/${name}`] = `file:${join(dir, info.filename)}`;
      expect(info.files.some((f) => f.path === 'dist/index.js')).toBe(true);
    }
    const app = join(dir, 'app');
    rmSync(app, { recursive: true, force: true });
    await run('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'pack-test-app', private: true, type: 'module', dependencies: tarballs }));
    writeFileSync(
      join(app, 'main.mjs'),
      `import { init, remote, get, shutdown, isMain } from '@tsray/core';
export const square = remote(function square(x) { return x * x; });
if (isMain(import.meta)) {
  await init({ numCpus: 1, objectStoreMemory: 64 * 1024 * 1024 });
  console.log('result', await get(square.remote(7)));
  await shutdown();
}
`,
    );
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, timeout: 240_000 });
    // Installed from the tarballs, not linked to the monorepo.
    expect(readdirSync(join(app, 'node_modules', '@tsray')).sort()).toEqual(['core', 'object-store', 'placement', 'protocol', 'runtime-env', 'scheduler']);
    const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: app, timeout: 60_000 });
    expect(stdout).toContain('result 49');
  }, 300_000);
});

describe('nx release', () => {
  it('versions every package together (dry run)', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const { stdout } = await run('npx', ['nx', 'release', 'version', '9.9.9', '--dry-run'], {
      cwd: root,
      timeout: 120_000,
      env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
    });
    for (const p of ['core', 'protocol', 'object-store', 'scheduler', 'placement', 'runtime-env', 'cluster']) {
      expect(stdout).toContain(`New version 9.9.9 written to manifest: packages/${p}/package.json`);
    }
    // A dry run changes nothing.
    const { stdout: diff } = await run('git', ['status', '--porcelain', '--', 'packages/*/package.json'], { cwd: root });
    expect(diff).toBe('');
  }, 150_000);
});
