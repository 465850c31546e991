import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('examples/03-python-actor calls a Python actor and a numpy function from TypeScript', async () => {
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', main], {
    timeout: 60_000,
    env: { ...process.env, TSRAY_PYTHON: fileURLToPath(new URL('../../.venv/bin/python', import.meta.url)) },
  });
  expect(stdout).toContain('top words: [["the",3],["fox",2]]');
  expect(stdout).toMatch(/\(WordStats pid=\d+\) \[en\] added 4 words/);
  expect(stdout).toContain('lengths: 1,2,3');
  expect(stdout).toContain('normalized: -1.225 0.000 1.225');
});
