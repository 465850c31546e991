// The CLI whose stdout reader went away (`tsray list nodes | head -1`) exits quietly instead of crashing with EPIPE.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startHttpApi, type HttpApi } from '../src/http/server.js';
import { JobManager } from '../src/jobs/job-manager.js';
import { assertBuilt, CLI } from './fixtures/cli.js';
import { fakeState } from './fixtures/state.js';
import { tempDir } from './fixtures/util.js';

const TOKEN = 'epipe-test-token';

/** Run the CLI with its stdout pipe closed on our side before it writes; its exit code and stderr. */
function runWithClosedStdout(args: string[], env: Record<string, string>): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith('TSRAY_')) delete base[k];
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // Closing our end now: every write of the CLI to stdout fails with EPIPE (Node ignores SIGPIPE).
  child.stdout!.destroy();
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += String(c)));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
}

describe('CLI with a closed stdout', () => {
  let tmp: ReturnType<typeof tempDir>;
  let api: HttpApi;
  let jobs: JobManager;

  beforeAll(async () => {
    assertBuilt();
    tmp = tempDir();
    jobs = new JobManager({ logDir: tmp.dir, env: {}, cwd: tmp.dir, logger: pino({ level: 'silent' }) });
    api = await startHttpApi({ host: '127.0.0.1', port: 0, token: TOKEN, jobs, state: fakeState, logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await api.close();
    await jobs.shutdown();
    tmp.cleanup();
  });

  it('tsray list nodes exits 0 with nothing on stderr', async () => {
    const r = await runWithClosedStdout(['list', 'nodes'], { TMPDIR: tmp.dir, TSRAY_DASHBOARD_ADDRESS: api.url, TSRAY_TOKEN: TOKEN });
    expect(r).toEqual({ code: 0, signal: null, stderr: '' });
  });

  it('tsray --help exits 0 with nothing on stderr', async () => {
    const r = await runWithClosedStdout(['--help'], { TMPDIR: tmp.dir });
    expect(r).toEqual({ code: 0, signal: null, stderr: '' });
  });
});
