import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';

async function pypiReachable(): Promise<boolean> {
  try {
    const r = await fetch('https://pypi.org/simple/emoji/', { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    return r.ok;
  } catch {
    return false;
  }
}

const reachable = await pypiReachable();

// The node's environment cache goes to a temp dir that the test removes (hermetic: nothing left in /tmp).
const cache = mkdtempSync(join(tmpdir(), 'tsray-example-08-'));
afterAll(() => rmSync(cache, { recursive: true, force: true }));

it('examples/08-runtime-env installs emoji from PyPI for the job and ships the working dir', async (ctx) => {
  // CI reaches PyPI (and fails on this skip); an offline machine skips, saying why.
  if (!reachable) ctx.skip('PyPI (https://pypi.org) is not reachable from here');
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', main], {
    timeout: 170_000,
    env: { ...process.env, TSRAY_PYTHON: fileURLToPath(new URL('../../.venv/bin/python', import.meta.url)), TSRAY_RUNTIME_ENV_DIR: cache },
  });
  expect(stdout).toContain('tsray says runtime envs work 👍');
  expect(stdout).toMatch(/worker cwd: .*tsray-example-08-.*\/pkg\/pkg_[0-9a-f]+/);
  expect(stdout).toMatch(/emoji from: .*tsray-example-08-.*\/pip\/[0-9a-f]+\/site\/emoji\//);
});
