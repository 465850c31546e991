import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs main.ts and reads its table: the data-parallel and the single-process loss per step. */
async function curves(args: string[]): Promise<{ dp: number[]; single: number[] }> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/09-dp-training/main.ts', ...args], {
    cwd: root,
    timeout: 280_000,
    env: { ...process.env, TSRAY_PYTHON: `${root}.venv/bin/python`, PYTHONPATH: `${root}python` },
  });
  const rows = [...stdout.matchAll(/^\s*(\d+)\s+([\d.]+)\s+([\d.]+)$/gm)];
  return { dp: rows.map((m) => Number(m[2])), single: rows.map((m) => Number(m[3])) };
}

function expectSameCurve(dp: number[], single: number[], steps: number): void {
  expect(dp).toHaveLength(steps);
  expect(single).toHaveLength(steps);
  for (let i = 0; i < steps; i++) expect(Math.abs(dp[i]! - single[i]!) / single[i]!, `step ${i}`).toBeLessThan(1e-5);
  expect(dp[steps - 1]!).toBeLessThan(dp[0]! / 2); // it trains
}

it('4 TypeScript ranks all-reducing gradients follow the single-process loss curve', async () => {
  const { dp, single } = await curves(['--steps', '12']);
  expectSameCurve(dp, single, 12);
});

it('4 Python (torch) ranks all-reducing gradients follow the single-process loss curve', async () => {
  const { dp, single } = await curves(['--steps', '12', '--python']);
  expectSameCurve(dp, single, 12);
});
