import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortInUseError } from '../src/errors.js';
import { apiKeyFor } from '../src/http/api-key.js';
import { HttpApiClient } from '../src/http/client.js';
import { HttpApiError } from '../src/http/errors.js';
import { startHttpApi, type HttpApi } from '../src/http/server.js';
import { JobManager } from '../src/jobs/job-manager.js';
import { fakeState, fakeStatus } from './fixtures/state.js';
import { tempDir, until } from './fixtures/util.js';

const TOKEN = 'test-token-123';

interface Answer {
  status: number;
  body: string;
  json: () => any;
  headers: Record<string, string | string[] | undefined>;
}

function call(url: string, method: string, path: string, opts: { token?: string | null; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== null) headers['authorization'] = `Bearer ${opts.token ?? apiKeyFor(TOKEN)}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const req = request(url + path, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body), headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('HTTP API', () => {
  let tmp: ReturnType<typeof tempDir>;
  let jobs: JobManager;
  let api: HttpApi;
  const logLines: string[] = [];

  beforeAll(async () => {
    tmp = tempDir();
    const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (logLines.push(String(c)), cb()) }));
    jobs = new JobManager({ logDir: join(tmp.dir, 'logs'), env: { TSRAY_ADDRESS: 'x:1' }, cwd: tmp.dir, stopGraceMs: 500, logger });
    api = await startHttpApi({ host: '127.0.0.1', port: 0, token: TOKEN, jobs, state: fakeState, logger });
  });
  afterAll(async () => {
    await api.close();
    await jobs.shutdown();
    tmp.cleanup();
  });

  it('listens on a free port', () => {
    expect(api.port).toBeGreaterThan(0);
    expect(api.url).toBe(`http://127.0.0.1:${api.port}`);
  });

  it('GET /api/version', async () => {
    const r = await call(api.url, 'GET', '/api/version');
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ version: '1', tsray_version: '0.1.0' });
  });

  it('401 on a missing or wrong API key, or the cluster token itself, on every route, logged once per client and reason', async () => {
    const routes: [string, string][] = [
      ['GET', '/api/version'],
      ['GET', '/api/jobs/'],
      ['POST', '/api/jobs/'],
      ['GET', '/api/jobs/x'],
      ['GET', '/api/jobs/x/logs'],
      ['POST', '/api/jobs/x/stop'],
      ['DELETE', '/api/jobs/x'],
      ['GET', '/api/cluster_status'],
      ['GET', '/api/v0/nodes'],
    ];
    for (const [m, p] of routes) {
      const missing = await call(api.url, m, p, { token: null });
      expect(missing.status, `${m} ${p}`).toBe(401);
      expect(missing.json().error).toMatch(/^missing API key: send "Authorization: Bearer <API key>"/);
      expect(missing.headers['www-authenticate']).toBe('Bearer realm="tsray"');
      const wrong = await call(api.url, m, p, { token: 'nope' });
      expect(wrong.status).toBe(401);
      expect(wrong.json().error).toMatch(/^invalid API key/);
      const token = await call(api.url, m, p, { token: TOKEN });
      expect(token.status).toBe(401);
      expect(token.json().error).toMatch(/^the cluster token is not the API key/);
    }
    const warnings = logLines.filter((l) => l.includes('rejected an HTTP API request'));
    expect(warnings).toHaveLength(3);
  });

  it('400 on malformed bodies, with a message', async () => {
    const bad = async (body: string, re: RegExp): Promise<void> => {
      const r = await call(api.url, 'POST', '/api/jobs/', { body });
      expect(r.status, body).toBe(400);
      expect(r.json().error).toMatch(re);
    };
    await bad('{not json', /not valid JSON/);
    await bad('', /body is empty/);
    await bad('[1]', /must be a JSON object/);
    await bad('{}', /"entrypoint" is required/);
    await bad('{"entrypoint": 5}', /"entrypoint" is required/);
    await bad('{"entrypoint": "true", "metadata": {"a": 1}}', /metadata\.a/);
    await bad('{"entrypoint": "true", "runtime_env": "x"}', /runtime_env/);
    await bad('{"entrypoint": "true", "submission_id": "a/b"}', /submission_id/);
  });

  it('404 on an unknown job (every job route) and an unknown route; 405 on a wrong method', async () => {
    for (const [m, p] of [
      ['GET', '/api/jobs/nope'],
      ['GET', '/api/jobs/nope/logs'],
      ['GET', '/api/jobs/nope/logs?follow=1'],
      ['POST', '/api/jobs/nope/stop'],
      ['DELETE', '/api/jobs/nope'],
    ] as const) {
      const r = await call(api.url, m, p);
      expect(r.status, `${m} ${p}`).toBe(404);
      expect(r.json().error).toMatch(/job 'nope' does not exist/);
    }
    expect((await call(api.url, 'GET', '/api/nothing')).status).toBe(404);
    expect((await call(api.url, 'GET', '/api/v0/workers')).status).toBe(404);
    expect((await call(api.url, 'PUT', '/api/jobs/')).status).toBe(405);
  });

  it('job lifecycle over HTTP: submit, get, list, logs, stop, delete (Ray shapes)', async () => {
    const sub = await call(api.url, 'POST', '/api/jobs/', {
      body: JSON.stringify({
        entrypoint: 'echo hello-$TSRAY_ADDRESS',
        submission_id: 'ok-1',
        metadata: { k: 'v' },
        runtime_env: { env_vars: { A: 'b' } },
        entrypoint_num_cpus: 1,
      }),
    });
    expect(sub.status).toBe(200);
    expect(sub.json()).toEqual({ job_id: 'ok-1', submission_id: 'ok-1' });
    const dup = await call(api.url, 'POST', '/api/jobs', { body: JSON.stringify({ entrypoint: 'true', submission_id: 'ok-1' }) });
    expect(dup.status).toBe(400);
    expect(dup.json().error).toMatch(/already exists/);
    await until(async () => (await call(api.url, 'GET', '/api/jobs/ok-1')).json().status === 'SUCCEEDED');
    const details = (await call(api.url, 'GET', '/api/jobs/ok-1')).json();
    expect(details).toMatchObject({
      type: 'SUBMISSION',
      submission_id: 'ok-1',
      job_id: 'ok-1',
      entrypoint: 'echo hello-$TSRAY_ADDRESS',
      status: 'SUCCEEDED',
      message: 'Job finished successfully.',
      metadata: { k: 'v' },
      runtime_env: { env_vars: { A: 'b' } },
      driver_exit_code: 0,
    });
    expect(details.start_time).toBeTypeOf('number');
    expect(details.end_time).toBeTypeOf('number');
    const list = (await call(api.url, 'GET', '/api/jobs/')).json();
    expect(list.map((j: { submission_id: string }) => j.submission_id)).toContain('ok-1');
    expect((await call(api.url, 'GET', '/api/jobs/ok-1/logs')).json()).toEqual({ logs: 'hello-x:1\n' });
    expect((await call(api.url, 'POST', '/api/jobs/ok-1/stop')).json()).toEqual({ stopped: false });

    await call(api.url, 'POST', '/api/jobs/', { body: JSON.stringify({ entrypoint: 'sleep 60', submission_id: 'long-1' }) });
    const del = await call(api.url, 'DELETE', '/api/jobs/long-1');
    expect(del.status).toBe(400);
    expect(del.json().error).toMatch(/only finished jobs can be deleted/);
    expect((await call(api.url, 'POST', '/api/jobs/long-1/stop')).json()).toEqual({ stopped: true });
    expect((await call(api.url, 'GET', '/api/jobs/long-1')).json().status).toBe('STOPPED');
    expect((await call(api.url, 'DELETE', '/api/jobs/long-1')).json()).toEqual({ deleted: true });
    expect((await call(api.url, 'GET', '/api/jobs/long-1')).status).toBe(404);
  });

  it('streams logs with ?follow=1 until the job ends (and /logs/tail)', async () => {
    const client = new HttpApiClient({ url: api.url, token: TOKEN });
    const id = await client.submitJob({ entrypoint: 'echo a; sleep 0.3; echo b' });
    const chunks: string[] = [];
    for await (const c of client.tailJobLogs(id)) chunks.push(c);
    expect(chunks.join('')).toBe('a\nb\n');
    expect((await client.getJob(id)).status).toBe('SUCCEEDED');
    const r = await call(api.url, 'GET', `/api/jobs/${id}/logs/tail`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.body).toBe('a\nb\n');
  });

  it('serves cluster status and state lists from the StateProvider', async () => {
    expect((await call(api.url, 'GET', '/api/cluster_status')).json()).toEqual(fakeStatus);
    for (const kind of ['nodes', 'actors', 'tasks', 'objects', 'placement_groups']) {
      const r = await call(api.url, 'GET', `/api/v0/${kind}`);
      expect(r.status).toBe(200);
      expect(r.json().result.length, kind).toBeGreaterThan(0);
    }
    const client = new HttpApiClient({ url: api.url, token: TOKEN });
    expect((await client.listState('nodes'))[0]?.nodeId).toBe('node-head-aaaa');
    await expect(new HttpApiClient({ url: api.url, token: 'bad' }).clusterStatus()).rejects.toSatisfy(
      (e: unknown) => e instanceof HttpApiError && e.status === 401,
    );
  });

  it('500 with a message when the state provider fails', async () => {
    const failing = await startHttpApi({
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      jobs,
      state: { ...fakeState, status: async () => Promise.reject(new Error('gcs down')) },
      logger: pino({ level: 'silent' }),
    });
    try {
      const r = await call(failing.url, 'GET', '/api/cluster_status');
      expect(r.status).toBe(500);
      expect(r.json().error).toMatch(/gcs down/);
    } finally {
      await failing.close();
    }
  });

  it('a port in use is a PortInUseError naming the port', async () => {
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      const err = await startHttpApi({ host: '127.0.0.1', port, token: TOKEN, jobs, state: fakeState }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect((err as Error).message).toContain(`port ${port}`);
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
  });

  it('close() ends open log streams', async () => {
    const other = await startHttpApi({ host: '127.0.0.1', port: 0, token: TOKEN, jobs, state: fakeState, logger: pino({ level: 'silent' }) });
    const client = new HttpApiClient({ url: other.url, token: TOKEN });
    const id = await client.submitJob({ entrypoint: 'echo start; sleep 60' });
    const it = client.tailJobLogs(id);
    expect((await it.next()).value).toBe('start\n');
    await other.close();
    // The server ends the stream before it closes the connection: the client reads a clean end.
    expect(await it.next()).toEqual({ done: true, value: undefined });
    await jobs.stop(id);
  });
});
