/**
 * The channel between a node and the TypeScript workers it starts: the node's unix stream socket by
 * default (TSRAY_NODE_STREAM given to the workers), the ZeroMQ ipc socket with TSRAY_WORKER_STREAM=0;
 * tasks, nested tasks, actor calls in order and large objects work the same on both.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const DRIVER = fileURLToPath(new URL('./fixtures/driver-channel.ts', import.meta.url));

async function drive(env: Record<string, string>): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', DRIVER], { env: { ...process.env, ...env }, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const RESULTS = { nested: 42, counter: 100, bigResult: 3 << 20, bigArg: 2 << 20 };

describe('the worker channel', () => {
  it('is the node’s unix stream socket by default', async () => {
    const out = await drive({});
    expect(out['stream']).toMatch(/\.wsock$/);
    expect(out).toMatchObject(RESULTS);
  });

  it('is the ZeroMQ ipc socket with TSRAY_WORKER_STREAM=0, with the same results', async () => {
    const out = await drive({ TSRAY_WORKER_STREAM: '0' });
    expect(out['stream']).toBe('');
    expect(out).toMatchObject(RESULTS);
  });
});
