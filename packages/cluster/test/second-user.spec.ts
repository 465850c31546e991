/**
 * A second local user on a shared host (issue #17, acceptance 2): a user made with `useradd` runs
 * commands through `runuser` against a cluster this (root) user started with the CLI. It cannot read
 * the token through `ps`, `/proc/<pid>/cmdline|environ`, the logs or the session files; and when it
 * creates this user's runtime directory first (with a `current.json` pointing at its own listener
 * and a planted runtime env), `tsray start` refuses the directory (UnsafeRuntimeDirError) and
 * `init({ address: 'auto' })` in TypeScript and Python does not connect there. Needs root with
 * useradd/userdel and runuser; without them the tests are skipped with the reason, printed.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { tsray } from './fixtures/cli.js';
import { alive, until } from './fixtures/util.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const ME = process.getuid?.() ?? -1;

/** Run `sh -c script` as `user` (runuser); its exit code and output. */
function asUser(user: string, script: string, env: Record<string, string> = {}): { code: number; out: string } {
  const r = spawnSync('runuser', ['-u', user, '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'sh', '-c', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

/** A driver of this user (TypeScript or Python) that tries `init({ address: 'auto' })`; its output. */
function driverAuto(lang: 'ts' | 'py', tmp: string): Promise<string> {
  const [cmd, args] =
    lang === 'ts'
      ? [
          process.execPath,
          [
            '--input-type=module',
            '-e',
            "import { init } from '@tsray/core'; try { await init({ address: 'auto' }); console.log('connected'); } catch (e) { console.log(e.name + ': ' + e.message); }",
          ],
        ]
      : [
          join(REPO, '.venv/bin/python'),
          ['-c', "import tsray\ntry:\n    tsray.init('auto'); print('connected')\nexcept Exception as e:\n    print(type(e).__name__ + ': ' + str(e))"],
        ];
  const env: Record<string, string | undefined> = { ...process.env, TMPDIR: tmp, TSRAY_CONNECT_TIMEOUT_MS: '3000' };
  for (const k of Object.keys(env)) if (k.startsWith('TSRAY_') && k !== 'TSRAY_CONNECT_TIMEOUT_MS') delete env[k];
  return new Promise((resolve) => {
    execFile(cmd, args as string[], { cwd: join(REPO, 'packages/cluster'), env, timeout: 60_000 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
}

/** Pids whose command line is exactly `cmdline` (NUL-separated, as /proc has it). */
function processesRunning(cmdline: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8') === cmdline) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('a second local user', () => {
  const user = `tsrayx${process.pid}`;
  let skipReason: string | undefined;
  let shared = '';
  let rt = '';

  const need = (ctx: TestContext): void => {
    if (skipReason) ctx.skip(skipReason);
  };

  beforeAll(() => {
    if (ME !== 0) skipReason = 'needs root (to add a user)';
    else {
      const made = spawnSync('useradd', ['-M', '-N', '-s', '/bin/sh', user], { encoding: 'utf8' });
      if (made.status !== 0) skipReason = `useradd failed: ${made.stderr || made.error?.message}`;
      else if (spawnSync('runuser', ['-u', user, '--', 'true']).status !== 0) skipReason = 'runuser does not work here';
    }
    if (skipReason) {
      process.stderr.write(`[second-user.spec] SKIPPED: ${skipReason}\n`);
      return;
    }
    // A TMPDIR both users share, as /tmp (sticky, world-writable), reachable by the other user.
    shared = mkdtempSync(join(tmpdir(), 'tsray-shared-'));
    chmodSync(shared, 0o1777);
    for (let d = tmpdir(); d !== '/'; d = join(d, '..')) spawnSync('chmod', ['o+x', d]);
    rt = join(shared, `tsray-${ME}`);
  });

  afterAll(async () => {
    if (shared) {
      const pids = existsSync(rt) ? readdirSync(rt).filter((d) => d.startsWith('session-')) : [];
      if (pids.length) await tsray(['stop', '--force'], { TMPDIR: shared }, 60_000);
      rmSync(shared, { recursive: true, force: true });
    }
    if (!skipReason) spawnSync('userdel', [user]);
  }, 90_000);

  it('cannot make this user trust a runtime directory it made first (address auto, runtime envs)', async (ctx) => {
    need(ctx);
    // The other user's listener, named by its current.json: nothing of ours may connect to it.
    let connections = 0;
    const trap: Server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r));
    const port = (trap.address() as { port: number }).port;
    const planted = asUser(
      user,
      `mkdir -m 755 "${rt}" && printf '{"address":"tcp://127.0.0.1:${port}","pid":1,"gcsAddress":"127.0.0.1:${port}"}' > "${rt}/current.json" && mkdir -p "${rt}/runtime_resources/pkg/pkg_0123456789abcdef" && echo ok`,
    );
    expect(planted.out.trim()).toBe('ok');
    try {
      const start = await tsray(['start', '--head', '--port', '0', '--dashboard-port', '0', '--num-cpus', '1'], { TMPDIR: shared }, 60_000);
      expect(start.code).toBe(1);
      expect(start.stderr).toMatch(new RegExp(`refusing to use the tsray runtime directory ${rt}: it belongs to uid \\d+, not to this user \\(uid 0\\)`));
      for (const lang of ['ts', 'py'] as const) {
        const out = await driverAuto(lang, shared);
        expect(out, lang).not.toContain('connected');
        expect(out, lang).toMatch(/no tsray cluster is running|refusing to use the tsray runtime directory/);
      }
      expect(connections).toBe(0);
    } finally {
      trap.close();
      rmSync(rt, { recursive: true, force: true });
    }
  }, 120_000);

  it('cannot read the token of a running cluster: ps, /proc, logs, session files; cannot write into its directories', async (ctx) => {
    need(ctx);
    const start = await tsray(
      ['start', '--head', '--port', '0', '--dashboard-port', '0', '--num-cpus', '1', '--object-store-memory', '100000000'],
      { TMPDIR: shared },
      60_000,
    );
    expect(start.code, start.stderr).toBe(0);
    const tokenFile = /--token-file (\S+)/.exec(start.stdout)![1]!;
    const token = readFileSync(tokenFile, 'utf8').trim();
    const session = join(tokenFile, '..');
    // A job keeps a process of the cluster running while the other user looks.
    const job = await tsray(['job', 'submit', '--no-wait', '--', 'sleep 60'], { TMPDIR: shared }, 60_000);
    expect(job.code, job.stderr).toBe(0);
    const daemonPid = JSON.parse(readFileSync(join(session, 'head-0.ready.json'), 'utf8')).pid as number;
    const jobPid = await until(() => processesRunning('sleep\x0060\x00')[0], 20_000, 'the job process');
    // What `ps` shows every user: each process's command line (read as the other user, no procps needed).
    const ps = asUser(user, `for f in /proc/[0-9]*/cmdline; do echo "$f $(tr '\\0' ' ' < $f 2>/dev/null)"; done`);
    expect(ps.code).toBe(0);
    expect(ps.out).toContain(`/proc/${daemonPid}/cmdline`);
    expect(ps.out).toMatch(/daemon-main\.js/);
    expect(ps.out).not.toContain(token);
    for (const pid of [daemonPid, Number(jobPid)]) {
      expect(asUser(user, `cat /proc/${pid}/cmdline`).out).not.toContain(token);
      const environ = asUser(user, `cat /proc/${pid}/environ`);
      expect(environ.code).not.toBe(0); // another user's environment is not readable
      expect(environ.out).not.toContain(token);
    }
    expect(readFileSync(`/proc/${Number(jobPid)}/environ`, 'utf8')).not.toContain(token); // nor is it there at all
    // The runtime directory is 0700 and this user's: no listing, no token, no logs, no planting.
    const files = [tokenFile, join(rt, 'session_latest', 'token'), join(session, 'logs', 'head-0.err'), join(rt, 'current.json')];
    for (const f of files) {
      const r = asUser(user, `cat "${f}"`);
      expect(r.code, f).not.toBe(0);
      expect(r.out).toMatch(/Permission denied/);
    }
    expect(asUser(user, `ls "${rt}"`).out).toMatch(/Permission denied/);
    expect(asUser(user, `mkdir -p "${rt}/runtime_resources/pkg/pkg_0123456789abcdef"`).code).not.toBe(0);
    expect(asUser(user, `grep -r "${token}" "${shared}" 2>/dev/null; echo done`).out.trim()).toBe('done');
    expect(execFileSync('stat', ['-c', '%a %u', rt], { encoding: 'utf8' }).trim()).toBe('700 0');
    expect(execFileSync('stat', ['-c', '%a', join(session, 'logs', 'head-0.err')], { encoding: 'utf8' }).trim()).toBe('600');
    const stop = await tsray(['stop', '--force'], { TMPDIR: shared }, 60_000);
    expect(stop.code, stop.stderr).toBe(0);
    await until(() => !alive(daemonPid), 20_000, 'the head to exit');
  }, 120_000);
});
