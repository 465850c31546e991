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
  it('every package installs from tarballs outside the monorepo: a task runs, the tsray and tsray-serve bins and the LLM bridge load', async () => {
    const tarballs: Record<string, string> = {};
    for (const name of ['protocol', 'object-store', 'scheduler', 'placement', 'runtime-env', 'core', 'autoscaler', 'cluster', 'vllm-bridge']) {
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
import { DataParallel, LLMEngine, serveOpenAI } from '@tsray/vllm-bridge';
import { HttpApiClient } from '@tsray/cluster';
export const square = remote(function square(x) { return x * x; });
if (isMain(import.meta)) {
  await init({ numCpus: 1, objectStoreMemory: 64 * 1024 * 1024 });
  console.log('result', await get(square.remote(7)));
  console.log('bridge', typeof LLMEngine.deploy, typeof DataParallel.deploy, typeof serveOpenAI, typeof HttpApiClient);
  await shutdown();
}
`,
    );
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, timeout: 240_000 });
    // Installed from the tarballs, not linked to the monorepo.
    expect(readdirSync(join(app, 'node_modules', '@tsray')).sort()).toEqual([
      'autoscaler',
      'cluster',
      'core',
      'object-store',
      'placement',
      'protocol',
      'runtime-env',
      'scheduler',
      'vllm-bridge',
    ]);
    const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: app, timeout: 60_000 });
    expect(stdout).toContain('result 49');
    expect(stdout).toContain('bridge function function function function');
    // The packages' command-line programs, as installed (bin links).
    const cli = await run(join(app, 'node_modules', '.bin', 'tsray'), ['--help'], { cwd: app, timeout: 60_000 });
    expect(cli.stdout).toMatch(/^Usage: tsray <command> \[options\]/);
    const serve = await run(join(app, 'node_modules', '.bin', 'tsray-serve'), ['--help'], { cwd: app, timeout: 60_000 });
    expect(serve.stdout).toMatch(/^usage: tsray-serve \[--model DIR/);
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
    for (const p of ['core', 'protocol', 'object-store', 'scheduler', 'placement', 'runtime-env', 'autoscaler', 'cluster', 'vllm-bridge']) {
      expect(stdout).toContain(`New version 9.9.9 written to manifest: packages/${p}/package.json`);
    }
    // A dry run changes nothing.
    const { stdout: diff } = await run('git', ['status', '--porcelain', '--', 'packages/*/package.json'], { cwd: root });
    expect(diff).toBe('');
  }, 150_000);
});
