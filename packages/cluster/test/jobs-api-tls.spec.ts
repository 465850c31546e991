/**
 * The jobs HTTP API bound to a non-loopback address (issue #17, acceptance 4): a head started with
 * `--dashboard-host <its address>` in a network namespace speaks only TLS (a self-signed certificate
 * whose fingerprint `tsray start` prints); plain HTTP gets no answer; clients pin the fingerprint
 * (a wrong or missing pin is a typed error before anything is sent); a wrong key is 401, and so is
 * the cluster token itself (the API key is derived from it). The `tsray job` CLI works over it
 * from another namespace, and the job's environment has the token file, not the token. Needs root
 * (or CAP_NET_ADMIN) and iproute2; without them the tests are skipped with the reason, printed.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { apiKeyFor } from '../src/http/api-key.js';
import { HttpApiClient } from '../src/http/client.js';
import { TlsFingerprintError, TlsVerificationError } from '../src/http/errors.js';
import { pinnedTlsOptions } from '../src/http/tls.js';
import { CLI, tsray } from './fixtures/cli.js';
import { createNetnsLab, type LabNamespace, type NetnsLab } from './fixtures/netns.js';
import { alive, tempDir, until } from './fixtures/util.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `tsray <args>` inside `ns`, with its own TMPDIR and no TSRAY_* of this process. */
function tsrayInNs(ns: LabNamespace, args: string[], tmp: string, timeoutMs = 60_000): Promise<Run> {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith('TSRAY_')) delete base[k];
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns.name, process.execPath, CLI, ...args], { env: { ...base, TMPDIR: tmp }, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}

/** A request's status and body, or the error that ended it. */
function fetchRaw(
  send: typeof httpRequest,
  url: string,
  headers: Record<string, string>,
  tls: object = {},
): Promise<{ status: number; body: string } | { error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const req = send(url, { headers, agent: false, timeout: 10_000, ...tls }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += String(c)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error }));
    req.end();
  });
}

describe('the jobs HTTP API on a non-loopback address', () => {
  let lab: NetnsLab | undefined;
  let skipReason: string | undefined;
  const machines: { dir: string; cleanup: () => void }[] = [];
  let head: Run | undefined;
  let url = '';
  let fingerprint = '';
  let token = '';
  let tokenFile = '';

  const needLab = (ctx: TestContext): NetnsLab => {
    if (!lab) ctx.skip(`network namespaces unavailable: ${skipReason}`);
    return lab!;
  };

  beforeAll(async () => {
    const made = createNetnsLab(2);
    if (!made.lab) {
      skipReason = made.reason;
      process.stderr.write(`[jobs-api-tls.spec] SKIPPED: could not create network namespaces: ${made.reason}\n`);
      return;
    }
    lab = made.lab;
    for (let i = 0; i < 2; i++) machines.push(tempDir('tsray-tls-machine-'));
    const ip = lab.namespaces[0]!.ip;
    head = await tsrayInNs(
      lab.namespaces[0]!,
      ['start', '--head', '--port', '0', '--dashboard-port', '0', '--dashboard-host', ip, '--num-cpus', '1', '--object-store-memory', '100000000'],
      machines[0]!.dir,
    );
    url = /Dashboard: (\S+)/.exec(head.stdout)?.[1] ?? '';
    fingerprint = /Dashboard TLS certificate SHA-256 fingerprint: (\S+)/.exec(head.stdout)?.[1] ?? '';
    tokenFile = /--token-file (\S+)/.exec(head.stdout)?.[1] ?? '';
    if (tokenFile) token = readFileSync(tokenFile, 'utf8').trim();
  }, 60_000);

  afterAll(async () => {
    try {
      const pid = Number(/"pid":(\d+)/.exec(head?.stdout ?? '')?.[1] ?? 0);
      if (machines[0]) await tsray(['stop', '--force'], { TMPDIR: machines[0].dir });
      if (pid) await until(() => !alive(pid), 10_000, 'the head to exit');
    } finally {
      for (const m of machines) m.cleanup();
      const left = lab?.cleanup() ?? [];
      // biome-ignore lint/correctness/noUnsafeFinally: leftover namespaces must fail the test even when the body failed first
      if (left.length > 0) throw new Error(`network namespace lab left behind: ${left.join('; ')}`);
    }
  }, 60_000);

  it('speaks only TLS with a printed, pinned certificate; plain HTTP gets no answer', async (ctx) => {
    const l = needLab(ctx);
    expect(head!.code, head!.stderr).toBe(0);
    expect(url).toBe(`https://${l.namespaces[0]!.ip}:${new URL(url).port}`);
    expect(fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const key = apiKeyFor(token);
    const plain = await fetchRaw(httpRequest, `${url.replace('https:', 'http:')}/api/version`, { authorization: `Bearer ${key}` });
    expect('error' in plain ? plain.error.code : `HTTP ${plain.status}`).toMatch(/ECONNRESET|EPIPE|HPE_|socket hang up/);
    // A pinned client with the key derived from the token is served.
    const client = new HttpApiClient({ url, token, fingerprint });
    expect((await client.version()).version).toBe('1');
    // A wrong pin or none: refused before anything is sent.
    const wrongPin = fingerprint.replace(/^../, fingerprint.startsWith('00') ? '11' : '00');
    await expect(new HttpApiClient({ url, token, fingerprint: wrongPin }).version()).rejects.toBeInstanceOf(TlsFingerprintError);
    await expect(new HttpApiClient({ url, token }).version()).rejects.toBeInstanceOf(TlsVerificationError);
  });

  it('a wrong key is 401, and so is the cluster token itself', async (ctx) => {
    needLab(ctx);
    const tls = await pinnedTlsOptions(new URL(url), fingerprint, 10_000);
    const as = (bearer: string) => fetchRaw(httpsRequest, `${url}/api/jobs/`, { authorization: `Bearer ${bearer}` }, tls);
    const wrong = await as('0'.repeat(64));
    expect(wrong).toMatchObject({ status: 401 });
    const withToken = await as(token);
    expect(withToken).toMatchObject({ status: 401 });
    expect(JSON.parse((withToken as { body: string }).body).error).toMatch(/^the cluster token is not the API key/);
    const withKey = await as(apiKeyFor(token));
    expect(withKey).toMatchObject({ status: 200 });
  });

  it('tsray job runs over https from another namespace; the job gets the token file, not the token', async (ctx) => {
    const l = needLab(ctx);
    const remoteToken = `${machines[1]!.dir}/token`;
    await import('node:fs').then((fs) => fs.copyFileSync(tokenFile, remoteToken));
    const common = ['--address', url, '--token-file', remoteToken];
    const noPin = await tsrayInNs(l.namespaces[1]!, ['job', 'list', ...common], machines[1]!.dir);
    expect(noPin.code).toBe(1);
    expect(noPin.stderr).toMatch(/cannot verify the TLS certificate .* --dashboard-fingerprint/);
    const sub = await tsrayInNs(
      l.namespaces[1]!,
      ['job', 'submit', ...common, '--dashboard-fingerprint', fingerprint, '--', 'env | grep ^TSRAY_TOKEN | sed s/=.*// ; echo job-ran'],
      machines[1]!.dir,
    );
    expect(sub.code, sub.stderr).toBe(0);
    expect(sub.stdout).toContain('job-ran');
    expect(sub.stdout).toMatch(/^TSRAY_TOKEN_FILE$/m);
    expect(sub.stdout).not.toMatch(/^TSRAY_TOKEN$/m);
    expect(sub.stdout).not.toContain(token);
  }, 90_000);

  it("the daemon's command line and environment hold no token", async (ctx) => {
    needLab(ctx);
    const ready = JSON.parse(readFileSync(tokenFile.replace(/token$/, 'head-0.ready.json'), 'utf8')) as { pid: number; dashboardFingerprint: string };
    expect(ready.dashboardFingerprint).toBe(fingerprint); // pinned in the session's files
    expect(readFileSync(`/proc/${ready.pid}/cmdline`, 'utf8')).not.toContain(token);
    expect(readFileSync(`/proc/${ready.pid}/environ`, 'utf8')).not.toContain(token);
  });
});
