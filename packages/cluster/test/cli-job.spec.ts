// tsray job … / status / list against an HTTP API started in the test (TSRAY_DASHBOARD_ADDRESS + TSRAY_TOKEN).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startHttpApi, type HttpApi } from '../src/http/server.js';
import { JobManager } from '../src/jobs/job-manager.js';
import { formatStatus } from '../src/cli/format.js';
import { assertBuilt, tsray, tsrayBg } from './fixtures/cli.js';
import { fakeState, fakeStatus } from './fixtures/state.js';
import { tempDir, until } from './fixtures/util.js';

const TOKEN = 'cli-test-token';

describe('tsray job / status / list (CLI against a test HTTP API)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let jobs: JobManager;
  let api: HttpApi;
  let env: Record<string, string>;

  beforeAll(async () => {
    assertBuilt();
    tmp = tempDir();
    jobs = new JobManager({
      logDir: join(tmp.dir, 'logs'),
      env: { TSRAY_ADDRESS: '127.0.0.1:6380' },
      cwd: tmp.dir,
      stopGraceMs: 1000,
      logger: pino({ level: 'silent' }),
    });
    api = await startHttpApi({ host: '127.0.0.1', port: 0, token: TOKEN, jobs, state: fakeState, logger: pino({ level: 'silent' }) });
    env = { TMPDIR: tmp.dir, TSRAY_DASHBOARD_ADDRESS: api.url, TSRAY_TOKEN: TOKEN };
  });
  afterAll(async () => {
    await api.close();
    await jobs.shutdown();
    tmp.cleanup();
  });

  it('job submit follows the logs and exits 0 on success', async () => {
    const r = await tsray(
      [
        'job',
        'submit',
        '--submission-id',
        'ok',
        '--runtime-env-json',
        '{"env_vars":{"GREETING":"hi"}}',
        '--',
        'sh',
        '-c',
        'echo "$GREETING out"; echo err >&2',
      ],
      env,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `Job 'ok' submitted successfully (server ${api.url})`,
        `  status: tsray job status ok`,
        `  logs:   tsray job logs ok --follow`,
        `  stop:   tsray job stop ok`,
        `Tailing logs until the job exits (disable with --no-wait):`,
        `hi out`,
        `err`,
        `Job 'ok' succeeded`,
        '',
      ].join('\n'),
    );
    expect(jobs.get('ok')?.entrypoint).toBe(`sh -c 'echo "$GREETING out"; echo err >&2'`);
  });

  it('job submit --working-dir runs the entrypoint there (a local directory, made absolute)', async () => {
    const r = await tsray(['job', 'submit', '--working-dir', tmp.dir, '--', 'pwd; echo "$TSRAY_RUNTIME_ENV_JSON"'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`\n${tmp.dir}\n{"working_dir":"${tmp.dir}"}\n`);
  });

  it('job submit exits 1 when the job fails, and job status shows why', async () => {
    const r = await tsray(['job', 'submit', '--submission-id', 'bad', '--', 'echo boom; exit 3'], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('boom\n');
    expect(r.stderr).toBe(`Job 'bad' failed: Job entrypoint command failed with exit code 3; last lines of its log:\nboom\n`);
    const s = await tsray(['job', 'status', 'bad'], env);
    expect(s.code).toBe(0);
    expect(s.stdout).toBe(`Status for job 'bad': FAILED\nStatus message: Job entrypoint command failed with exit code 3; last lines of its log:\nboom\n`);
  });

  it('--no-wait, logs, logs --follow, stop, list, delete', { timeout: 30_000 }, async () => {
    const sub = await tsray(['job', 'submit', '--no-wait', '--metadata-json', '{"team":"a"}', '--', 'echo started; sleep 60'], env);
    expect(sub.code).toBe(0);
    const id = /^Job '(tsraysubmit_[A-Za-z0-9]{16})' submitted successfully/.exec(sub.stdout)![1]!;
    expect(sub.stdout).not.toContain('Tailing');
    await until(async () => (await tsray(['job', 'logs', id], env)).stdout === 'started\n', 10_000, 'the first log line');
    const follow = tsrayBg(['job', 'logs', id, '--follow'], env);
    await until(() => follow.out().includes('started'), 10_000, 'the follower to print');
    const status = await tsray(['job', 'status', id], env);
    expect(status.stdout).toBe(`Status for job '${id}': RUNNING\nStatus message: Job is currently running.\n`);
    const stop = await tsray(['job', 'stop', id], env);
    expect(stop).toEqual({ code: 0, stdout: `Job '${id}' was stopped\n`, stderr: '' });
    const followed = await follow.result;
    expect(followed).toEqual({ code: 0, stdout: 'started\n', stderr: '' });
    const stop2 = await tsray(['job', 'stop', id], env);
    expect(stop2.stdout).toBe(`Job '${id}' had already ended (STOPPED)\n`);
    expect(jobs.get(id)?.metadata).toEqual({ team: 'a' });

    const list = await tsray(['job', 'list'], env);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SUBMISSION_ID\s+STATUS\s+START_TIME\s+END_TIME\s+ENTRYPOINT$/);
    expect(lines.some((l) => new RegExp(`^${id}\\s+STOPPED\\s+\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+\\S+Z\\s+echo started; sleep 60$`).test(l))).toBe(true);
    const json = JSON.parse((await tsray(['list', 'jobs', '--format', 'json'], env)).stdout) as { submissionId: string; status: string }[];
    expect(json.find((j) => j.submissionId === id)?.status).toBe('STOPPED');

    expect(await tsray(['job', 'delete', id], env)).toEqual({ code: 0, stdout: `Job '${id}' deleted\n`, stderr: '' });
    const gone = await tsray(['job', 'status', id], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(new RegExp(`failed with HTTP 404: job '${id}' does not exist`));
  });

  it('a wrong token and an unreachable head are clear errors', async () => {
    const wrong = await tsray(['job', 'list'], { ...env, TSRAY_TOKEN: 'wrong' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/HTTP 401: invalid API key/);
    const viaFlag = await tsray(['job', 'list', '--token', TOKEN, '--address', api.url], { TMPDIR: tmp.dir });
    expect(viaFlag.code, viaFlag.stderr).toBe(0);
    const down = await tsray(['job', 'list', '--address', 'http://127.0.0.1:1'], env);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/the tsray head's HTTP API at http:\/\/127\.0\.0\.1:1 is unreachable \(ECONNREFUSED\)/);
    const noToken = await tsray(['job', 'list', '--address', api.url], { TMPDIR: tmp.dir });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/no cluster token/);
  });

  it('status and list print the state from the head', async () => {
    const s = await tsray(['status'], env);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toBe(formatStatus(fakeStatus));
    const actors = await tsray(['list', 'actors'], env);
    // GPU ids of each actor, and an LLM engine's tensor-parallel size (other actors: '-').
    expect(actors.stdout).toMatch(
      /^ACTOR_ID\s+CLASS\s+NAME\s+STATE\s+NODE_ID\s+PID\s+RESTARTS\s+GPU_IDS\s+TP\nact-1\s+Counter\s+c1\s+ALIVE\s+node-head-aaaa\s+111\s+0\s+0,1\s+2\nact-2\s+Cpu\s+-\s+ALIVE\s+node-head-aaaa\s+112\s+0\s+-\s+-\n$/,
    );
    const pgs = await tsray(['list', 'placement-groups'], env);
    expect(pgs.stdout).toContain('pg-0001');
    const objs = await tsray(['list', 'objects'], env);
    expect(objs.stdout).toMatch(/obj-1\s+2KiB\s+shm/);
    const tasks = await tsray(['list', 'tasks', '--format', 'json'], env);
    expect(JSON.parse(tasks.stdout)).toEqual(await fakeState.tasks());
  });
});
