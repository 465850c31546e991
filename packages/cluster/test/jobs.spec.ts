import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobExistsError, JobNotFoundError, JobNotTerminalError, JobRequestError } from '../src/jobs/errors.js';
import { JobManager } from '../src/jobs/job-manager.js';
import { alive, tempDir, until } from './fixtures/util.js';

describe('JobManager', () => {
  let tmp: ReturnType<typeof tempDir>;
  let jm: JobManager;

  beforeEach(() => {
    tmp = tempDir();
    jm = new JobManager({ logDir: join(tmp.dir, 'logs'), env: { TSRAY_ADDRESS: '127.0.0.1:6380', TSRAY_TOKEN: 'secret' }, cwd: tmp.dir, stopGraceMs: 500 });
  });
  afterEach(async () => {
    await jm.shutdown();
    tmp.cleanup();
  });

  it('runs an entrypoint to SUCCEEDED with the address, token, job id and runtime env in its environment', async () => {
    const info = jm.submit({
      entrypoint: 'echo "addr=$TSRAY_ADDRESS tok=$TSRAY_TOKEN id=$TSRAY_JOB_ID v=$MY_VAR"; echo "re=$TSRAY_RUNTIME_ENV_JSON"; echo oops >&2; pwd',
      runtimeEnv: { env_vars: { MY_VAR: 'x1' } },
      metadata: { owner: 'me' },
    });
    expect(info.submissionId).toMatch(/^tsraysubmit_[A-Za-z0-9]{16}$/);
    expect(info.status).toBe('PENDING');
    const end = await jm.wait(info.submissionId);
    expect(end.status).toBe('SUCCEEDED');
    expect(end.exitCode).toBe(0);
    expect(end.message).toBe('Job finished successfully.');
    expect(end.endTime).toBeGreaterThanOrEqual(end.startTime!);
    expect(end.metadata).toEqual({ owner: 'me' });
    const logs = await jm.logs(info.submissionId);
    expect(logs).toContain(`addr=127.0.0.1:6380 tok=secret id=${info.submissionId} v=x1`);
    expect(logs).toContain('re={"env_vars":{"MY_VAR":"x1"}}');
    expect(logs).toContain('oops');
    expect(logs).toContain(tmp.dir);
    expect(readFileSync(jm.logPath(info.submissionId), 'utf8')).toBe(logs);
    expect(jm.list().map((j) => j.submissionId)).toEqual([info.submissionId]);
  });

  it('goes PENDING → RUNNING → FAILED with the exit code and the log tail in the message', async () => {
    const { submissionId } = jm.submit({ entrypoint: 'echo started; read x < /dev/null; echo "bad input" >&2; exit 3', submissionId: 'my-job.1' });
    expect(submissionId).toBe('my-job.1');
    const end = await jm.wait(submissionId);
    expect(end.status).toBe('FAILED');
    expect(end.exitCode).toBe(3);
    expect(end.message).toMatch(/failed with exit code 3; last lines of its log:\nstarted\nbad input/);
  });

  it('reports RUNNING while the entrypoint runs', async () => {
    const { submissionId } = jm.submit({ entrypoint: 'sleep 30' });
    const running = await until(() => {
      const j = jm.get(submissionId);
      return j?.status === 'RUNNING' ? j : undefined;
    });
    expect(running.driverPid).toBeGreaterThan(0);
    expect(running.message).toBe('Job is currently running.');
    expect(() => jm.delete(submissionId)).toThrow(JobNotTerminalError);
    expect(await jm.stop(submissionId)).toBe(true);
    expect(jm.get(submissionId)?.status).toBe('STOPPED');
  });

  it('stop kills the whole process group (children too): SIGTERM first, SIGKILL when the job ignores it', async () => {
    const pidFile = join(tmp.dir, 'child.pid');
    const termFile = join(tmp.dir, 'term');
    // The shell notes the SIGTERM and carries on; only the SIGKILL after the grace period ends it.
    const { submissionId } = jm.submit({
      entrypoint: `trap "echo term >> ${termFile}" TERM; sleep 1000 & echo $! > ${pidFile}; echo ready; while :; do sleep 0.1; done`,
    });
    await until(async () => (await jm.logs(submissionId)).includes('ready'));
    const shell = jm.get(submissionId)!.driverPid!;
    const child = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(child)).toBe(true);
    expect(await jm.stop(submissionId)).toBe(true);
    const info = jm.get(submissionId)!;
    expect(info.status).toBe('STOPPED');
    expect(info.message).toBe('Job was intentionally stopped.');
    expect(readFileSync(termFile, 'utf8')).toContain('term');
    await until(() => !alive(shell) && !alive(child), 10_000, 'the job and its child to be gone');
    expect(await jm.stop(submissionId)).toBe(false);
  });

  it('stop of a cooperative job ends it with SIGTERM, children too (no wait for the grace period)', async () => {
    // A grace period longer than the test's timeout: the stop can only end in time through SIGTERM.
    const patient = new JobManager({ logDir: join(tmp.dir, 'logs2'), env: {}, cwd: tmp.dir, stopGraceMs: 600_000 });
    try {
      const pidFile = join(tmp.dir, 'child2.pid');
      const { submissionId } = patient.submit({ entrypoint: `sleep 1000 & echo $! > ${pidFile}; wait` });
      const child = await until(() => {
        try {
          return Number(readFileSync(pidFile, 'utf8')) || undefined;
        } catch {
          return undefined;
        }
      });
      expect(await patient.stop(submissionId)).toBe(true);
      expect(patient.get(submissionId)?.status).toBe('STOPPED');
      await until(() => !alive(child), 10_000, 'the child to be gone');
    } finally {
      await patient.shutdown();
    }
  });

  it('follow streams the output as it is written and ends when the job ends', async () => {
    // The job writes its next line only after the test has seen the previous one (gate files): each
    // line must arrive while the job still runs.
    const gate = (n: number) => join(tmp.dir, `gate${n}`);
    const waitGate = (n: number) => `while [ ! -e ${gate(n)} ]; do sleep 0.02; done`;
    const { submissionId } = jm.submit({ entrypoint: `echo one; ${waitGate(1)}; echo two; ${waitGate(2)}; echo three` });
    let seen = '';
    for await (const c of jm.follow(submissionId, { pollMs: 20 })) {
      seen += c;
      if (seen === 'one\n') writeFileSync(gate(1), '');
      if (seen === 'one\ntwo\n') writeFileSync(gate(2), '');
    }
    expect(seen).toBe('one\ntwo\nthree\n');
    expect(jm.get(submissionId)?.status).toBe('SUCCEEDED');
    // following a finished job replays its whole log
    let again = '';
    for await (const c of jm.follow(submissionId)) again += c;
    expect(again).toBe('one\ntwo\nthree\n');
  });

  it('delete forgets a finished job and its log; unknown ids and bad requests are typed errors', async () => {
    const { submissionId } = jm.submit({ entrypoint: 'true', submissionId: 'dup' });
    expect(() => jm.submit({ entrypoint: 'true', submissionId: 'dup' })).toThrow(JobExistsError);
    await jm.wait(submissionId);
    expect(jm.delete(submissionId)).toBe(true);
    expect(jm.get(submissionId)).toBeUndefined();
    await expect(jm.logs(submissionId)).rejects.toBeInstanceOf(JobNotFoundError);
    await expect(jm.stop('nope')).rejects.toThrow(/job 'nope' does not exist/);
    expect(() => jm.submit({ entrypoint: '' })).toThrow(JobRequestError);
    expect(() => jm.submit({ entrypoint: 'true', submissionId: '../x' })).toThrow(/submission_id/);
    expect(() => jm.submit({ entrypoint: 'true', metadata: { a: 1 as unknown as string } })).toThrow(/metadata\.a/);
  });

  it('shutdown stops running jobs and refuses new ones', async () => {
    const a = jm.submit({ entrypoint: 'sleep 100' });
    await until(() => jm.get(a.submissionId)?.status === 'RUNNING');
    await jm.shutdown();
    expect(jm.get(a.submissionId)?.status).toBe('STOPPED');
    expect(() => jm.submit({ entrypoint: 'true' })).toThrow(/shut down/);
  });
  it('reports every change to its store, and a restarted head takes the jobs back (a running one becomes FAILED)', async () => {
    const rows = new Map<string, unknown>();
    const first = new JobManager({
      logDir: join(tmp.dir, 'logs'),
      env: {},
      cwd: tmp.dir,
      onChange: (id, info) => (info ? rows.set(id, info) : rows.delete(id)),
    });
    await first.wait(first.submit({ entrypoint: 'true', submissionId: 'done-job' }).submissionId);
    const { submissionId } = first.submit({ entrypoint: 'sleep 30', submissionId: 'running-job' });
    await until(() => (rows.get(submissionId) as { status: string } | undefined)?.status === 'RUNNING', 10_000, 'RUNNING stored');
    expect(rows.get('done-job')).toMatchObject({ status: 'SUCCEEDED', exitCode: 0 });
    // The head dies here: what the store holds is what the next head gets.
    const kept = [...rows.values()].map((r) => structuredClone(r));
    await first.shutdown();
    const next = new JobManager({
      logDir: join(tmp.dir, 'logs'),
      env: {},
      cwd: tmp.dir,
      onChange: (id, info) => (info ? rows.set(id, info) : rows.delete(id)),
    });
    next.restore(kept);
    expect(next.get('done-job')).toMatchObject({ status: 'SUCCEEDED', exitCode: 0 });
    expect(next.get('running-job')).toMatchObject({ status: 'FAILED', message: expect.stringContaining('head restarted') });
    expect(rows.get('running-job')).toMatchObject({ status: 'FAILED' });
    expect(await next.wait('running-job')).toMatchObject({ status: 'FAILED' });
    expect(next.delete('done-job')).toBe(true);
    expect(rows.has('done-job')).toBe(false);
    await next.shutdown();
  });
});
