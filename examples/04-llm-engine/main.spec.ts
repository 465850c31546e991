import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('examples/04-llm-engine deploys an engine and generates four prompts, then streams a greedy answer (Paris)', async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/04-llm-engine/main.ts'], {
    cwd: root,
    timeout: 400_000, // the first run on a machine converts the model (~30 s) before the demo
    env: { ...process.env, TSRAY_PYTHON: `${root}.venv/bin/python` },
  });
  expect(stdout).toContain('Input Text:');
  const gen = stdout.slice(stdout.indexOf('Generated Text:'));
  expect(gen.split('\n')[1]).toMatch(/^\[/);
  // A real model (SmolLM2) streams a greedy answer that means something.
  expect(/Streamed: (.+)/.exec(stdout)?.[1]).toMatch(/Paris/);
});
