import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('the seed DP-ranks demo runs on CPU engines (transformers, tiny model)', async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/05-data-parallel/main.ts'], {
    cwd: root,
    timeout: 230_000,
    env: { ...process.env, TSRAY_PYTHON: `${root}.venv/bin/python` },
  });
  expect(stdout).toMatch(/engines: (transformers on CPU|vllm on GPU)/);
  expect(stdout.match(/^dp: /gm)?.length).toBe(8);
  expect(stdout).toMatch(/rank 1 directly: ".*"/);
  const served = /served per rank: (\d+), (\d+)/.exec(stdout)!;
  expect(Number(served[1]) + Number(served[2])).toBe(8);
});
