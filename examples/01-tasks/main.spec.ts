import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('examples/01-tasks runs the seed task examples', async () => {
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', main], { timeout: 60_000 });
  expect(stdout).toContain('fun.remote(1) -> 1');
  expect(stdout).toContain('function_with_an_argument.remote(obj_ref) -> 2');
  expect(stdout).toContain('function_with_an_argument.remote(put(41)) -> 42');
  expect(stdout).toMatch(/\(slowSquare pid=\d+\) squared 4/);
  const order = /squares in completion order: (.*)/.exec(stdout)![1]!.split(', ').map(Number);
  expect(order.sort((a, b) => a - b)).toEqual([0, 1, 4, 9, 16]);
});
