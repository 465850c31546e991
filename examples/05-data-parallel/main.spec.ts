import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('the seed DP-ranks demo answers real questions on CPU engines (transformers, SmolLM2), greedy alike on both ranks', async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/05-data-parallel/main.ts'], {
    cwd: root,
    timeout: 400_000, // the first run on a machine converts the model (~30 s) before the demo
    env: { ...process.env, TSRAY_PYTHON: `${root}.venv/bin/python` },
  });
  expect(stdout).toMatch(/engines: (transformers on CPU|vllm on GPU)/);
  expect(stdout.match(/^dp: /gm)?.length).toBe(8);
  // A real model: the answers mean something (README command 1 shows this to a new user).
  expect(/^dp: "What is the capital of France\?" -> (".*")$/m.exec(stdout)?.[1]).toMatch(/Paris/);
  expect(/^dp: "What is 2 \+ 2\?" -> (".*")$/m.exec(stdout)?.[1]).toMatch(/4|four/i);
  const r0 = /^rank 0 directly: (".*")$/m.exec(stdout)?.[1];
  const r1 = /^rank 1 directly: (".*")$/m.exec(stdout)?.[1];
  expect(r0).toMatch(/Paris/);
  expect(r1).toBe(r0);
  expect(stdout).toContain('greedy identical across ranks: true');
  const served = /served per rank: (\d+), (\d+)/.exec(stdout)!;
  expect(Number(served[1]) + Number(served[2])).toBe(8); // the router counts what it routed; the two direct rank calls are not routed
});
