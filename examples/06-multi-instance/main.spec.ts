import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('four instances with GPUs [1, 1, 2, 2] each get their own CUDA_VISIBLE_DEVICES and answer their input', async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/06-multi-instance/main.ts'], {
    cwd: root,
    timeout: 400_000, // the first run on a machine converts the model (~30 s) before the demo
    env: { ...process.env, TSRAY_PYTHON: `${root}.venv/bin/python` },
  });
  expect(stdout).toMatch(/engines: (transformers|vllm)/);
  const gpus = [1, 1, 2, 2];
  const countries = ['France', 'Italy', 'Japan', 'Germany'];
  const capitals = ['Paris', 'Rome', 'Tokyo', 'Berlin'];
  const seen: string[][] = [];
  for (let i = 0; i < 4; i++) {
    const m = new RegExp(`instance ${i} \\(gpus ${gpus[i]}, CUDA_VISIBLE_DEVICES=([\\d,]+), pid \\d+\\): "The capital of ${countries[i]} is" -> "(.*)"`).exec(
      stdout,
    );
    expect(m, stdout).not.toBeNull();
    seen.push(m![1]!.split(','));
    expect(m![2], `instance ${i} answers its own input`).toContain(capitals[i]);
  }
  expect(seen.map((d) => d.length)).toEqual(gpus);
  expect(new Set(seen.flat()).size).toBe(6);
  expect(stdout).toContain('GPUs handed out: 6, disjoint: true');
});
