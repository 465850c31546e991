/** A 500 from the head's HTTP API names the full path of the head's log file (issue #20: errors that mention a log name it). */
import { existsSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeyFor } from '../src/http/api-key.js';
import { startHttpApi, type HttpApi } from '../src/http/server.js';
import { JobManager } from '../src/jobs/job-manager.js';
import { fakeState } from './fixtures/state.js';
import { tempDir } from './fixtures/util.js';

const TOKEN = 'test-token-log-path';

function getJson(url: string): Promise<{ status: number; body: { error: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${apiKeyFor(TOKEN)}` }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += String(c)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP API 500 answers', () => {
  let tmp: ReturnType<typeof tempDir>;
  let jobs: JobManager;
  let api: HttpApi;
  let logFile: string;

  beforeAll(async () => {
    tmp = tempDir();
    logFile = join(tmp.dir, 'head-0.err');
    writeFileSync(logFile, '');
    jobs = new JobManager({ logDir: join(tmp.dir, 'logs'), env: {}, cwd: tmp.dir, logger: pino({ level: 'silent' }) });
    const state = { ...fakeState, status: async () => Promise.reject(new Error('gcs down')) };
    api = await startHttpApi({ host: '127.0.0.1', port: 0, token: TOKEN, jobs, state, logger: pino({ level: 'silent' }), logFile });
  });
  afterAll(async () => {
    await api.close();
    await jobs.shutdown();
    tmp.cleanup();
  });

  it("name the head's log file by its full path, which exists", async () => {
    const r = await getJson(`${api.url}/api/cluster_status`);
    expect(r.status).toBe(500);
    expect(r.body.error).toContain(`see the head's log: ${logFile}`);
    expect(existsSync(logFile)).toBe(true);
  });
});
