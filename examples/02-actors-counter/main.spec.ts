import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

it('prints scheduler lines at once, then the actor lines in order from one pid, then 10', async () => {
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    env: { ...process.env, COUNTER_SLEEP_MS: '200' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: { text: string; at: number }[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const text of parts) lines.push({ text, at: Date.now() });
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  expect(code).toBe(0);
  const texts = lines.map((l) => l.text);
  expect(texts.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `scheduler: ${i}`));
  const actorLines = lines.filter((l) => /^\(Counter pid=\d+\) counter: \d+$/.test(l.text));
  expect(actorLines.map((l) => Number(/counter: (\d+)/.exec(l.text)![1]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const pids = new Set(actorLines.map((l) => /pid=(\d+)/.exec(l.text)![1]));
  expect(pids.size).toBe(1);
  // The scheduler lines come before any actor line (the submissions do not wait for the calls); how far
  // apart the calls are is the sleep's business, not asserted (docs/testing.md: no durations in tests).
  const lastScheduler = lines[9]!.at;
  expect(actorLines[0]!.at).toBeGreaterThanOrEqual(lastScheduler);
  expect(texts[texts.length - 1]).toBe('10');
});
