// tsray start / status / stop with a stand-in daemon (TSRAY_DAEMON_SCRIPT), in a private TMPDIR.
import { lstatSync, readFileSync, readlinkSync, readdirSync, statSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, FAKE_DAEMON, tsray } from './fixtures/cli.js';
import { alive, freePort, tempDir, until } from './fixtures/util.js';

/** This user's runtime directory under a test's TMPDIR. */
const RT = `tsray-${process.getuid?.()}`;

describe('tsray start / status / stop', () => {
  let tmp: ReturnType<typeof tempDir>;
  let env: Record<string, string>;
  const pids: number[] = [];

  beforeAll(() => {
    assertBuilt();
    tmp = tempDir();
    env = { TMPDIR: tmp.dir, TSRAY_DAEMON_SCRIPT: FAKE_DAEMON };
  });
  afterAll(async () => {
    await tsray(['stop', '--force'], env);
    for (const p of pids) await until(() => !alive(p), 5000, `pid ${p} to exit`);
    tmp.cleanup();
  }, 30_000);

  it('start --head, a node joins, status, job submit, stop', { timeout: 60_000 }, async () => {
    const head = await tsray(
      [
        'start',
        '--head',
        '--port',
        '0',
        '--dashboard-port',
        '0',
        '--num-cpus',
        '3',
        '--num-gpus',
        '1',
        '--labels',
        'zone=a,rack=r1',
        '--resources',
        '{"accel": 2}',
      ],
      env,
    );
    expect(head.stderr).toBe('');
    expect(head.code).toBe(0);
    const m =
      /^tsray runtime started\. Address: (127\.0\.0\.1:\d+) {2}Dashboard: (http:\/\/127\.0\.0\.1:\d+)\nTo add a node: tsray start --address \1 --token-file (\S+)\/token\n {2}\(this head listens on 127\.0\.0\.1 only: nodes of this machine can join; to let other machines join, start it with --host 0\.0\.0\.0 or --host <this machine's address>\)\nSession: \3 \(logs in \3\/logs\)\nSubmit a job: tsray job submit -- <entrypoint> {3}Status: tsray status {3}Stop: tsray stop\n$/.exec(
        head.stdout,
      );
    expect(m, head.stdout).not.toBeNull();
    const [, gcs, , sessionDir] = m as unknown as [string, string, string, string];
    expect(sessionDir.startsWith(join(tmp.dir, RT, 'session-'))).toBe(true);
    expect(readlinkSync(join(tmp.dir, RT, 'session_latest'))).toBe(sessionDir);
    expect(statSync(join(sessionDir, 'token')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(sessionDir, 'token'), 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
    const headReady = JSON.parse(readFileSync(join(sessionDir, 'head-0.ready.json'), 'utf8'));
    pids.push(headReady.pid);
    const cfg = JSON.parse(readFileSync(join(sessionDir, 'logs', 'head-0.out'), 'utf8').split('\n')[0]!).fakeDaemonConfig;
    expect(cfg).toMatchObject({
      role: 'head',
      sessionDir,
      port: 0,
      dashboardPort: 0,
      host: '127.0.0.1',
      numCpus: 3,
      numGpus: 1,
      labels: { zone: 'a', rack: 'r1' },
      resources: { accel: 2 },
      readyFile: join(sessionDir, 'head-0.ready.json'),
    });
    expect(lstatSync(join(sessionDir, 'logs')).isDirectory()).toBe(true);

    // A node on the same machine joins with the session's token and reuses the session.
    const node = await tsray(['start', '--address', gcs], env);
    expect(node.code, node.stderr).toBe(0);
    expect(node.stdout).toMatch(
      new RegExp(
        `^tsray node started\\. Node ID: fake-node-\\d+  Address: ${sessionDir}/node\\.sock  Head: ${gcs}\\nSession: ${sessionDir} \\(logs in ${sessionDir}/logs\\)\\n$`,
      ),
    );
    const nodeReady = JSON.parse(readFileSync(join(sessionDir, 'node-0.ready.json'), 'utf8'));
    pids.push(nodeReady.pid);

    const status = await tsray(['status'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('Nodes: 1 alive, 0 dead');
    expect(status.stdout).toContain('   CPU 0/3  GPU 0/1');
    const nodes = await tsray(['list', 'nodes', '--format', 'json'], env);
    expect(JSON.parse(nodes.stdout)[0].labels).toEqual({ zone: 'a', rack: 'r1' });

    const job = await tsray(['job', 'submit', '--', 'echo', 'addr=$TSRAY_ADDRESS'], env);
    expect(job.code, job.stderr).toBe(0);
    expect(job.stdout).toContain(`addr=$TSRAY_ADDRESS`); // quoted: the shell does not expand it
    const job2 = await tsray(['job', 'submit', '--', 'echo addr=$TSRAY_ADDRESS'], env);
    expect(job2.stdout).toContain(`addr=${gcs}\n`); // one argument = a command line

    expect(existsSync(join(tmp.dir, RT, 'current.json'))).toBe(true);
    const stop = await tsray(['stop', '--grace', '5'], env);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toBe(
      `Stopped head (pid ${headReady.pid}) of ${sessionDir}\nStopped node (pid ${nodeReady.pid}) of ${sessionDir}\nStopped 2 tsray processes.\n`,
    );
    expect(alive(headReady.pid) || alive(nodeReady.pid)).toBe(false);
    expect(existsSync(join(tmp.dir, RT, 'current.json'))).toBe(false);
    expect(readFileSync(join(sessionDir, 'logs', 'head-0.err'), 'utf8')).toContain('fake daemon stopped');
    expect(readdirSync(sessionDir).filter((f) => f.endsWith('.ready.json') || f.endsWith('.pid'))).toEqual([]);

    const again = await tsray(['stop'], env);
    expect(again).toEqual({ code: 0, stdout: 'no tsray processes running\n', stderr: '' });
    const noHead = await tsray(['status'], env);
    expect(noHead.code).toBe(1);
    expect(noHead.stderr).toMatch(/no running tsray head found on this machine/);
  });

  it('stop sends SIGKILL after the grace period to a daemon that ignores SIGTERM', { timeout: 30_000 }, async () => {
    const gcs = createServer();
    await new Promise<void>((r) => gcs.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(gcs.address() as { port: number }).port}`;
    try {
      const node = await tsray(['start', '--address', address, '--token', 'abc'], { ...env, FAKE_DAEMON_MODE: 'stubborn' });
      expect(node.code, node.stderr).toBe(0);
      const pid = Number(/Node ID: fake-node-(\d+)/.exec(node.stdout)![1]);
      pids.push(pid);
      const stop = await tsray(['stop', '--grace', '0.3'], env);
      expect(stop.stdout).toMatch(new RegExp(`^Killed node \\(pid ${pid}\\) of \\S+ after the 0\\.3 s grace period\\nStopped 1 tsray process\\.\\n$`));
      await until(() => !alive(pid), 5000);
    } finally {
      await new Promise<void>((r) => gcs.close(() => r()));
    }
  });

  it('a port in use names the port', async () => {
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      const r = await tsray(['start', '--head', '--port', String(port), '--dashboard-port', '0'], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `tsray: the head (GCS) port ${port} on 127.0.0.1 is already in use by another process: stop it (tsray stop), or pick another port (--port / --dashboard-port)\n`,
      );
      const d = await tsray(['start', '--head', '--port', '0', '--dashboard-port', String(port)], env);
      expect(d.code).toBe(1);
      expect(d.stderr).toContain(`the jobs HTTP API (dashboard) port ${port} on 127.0.0.1 is already in use`);
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
  });

  it('tsray --help prints the usage; a head started without ports listens on 6380 and 8265', async () => {
    const help = await tsray(['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tsray <command> \[options\]\n/);
    for (const line of [
      'tsray start --head',
      'tsray stop',
      'tsray status',
      'tsray list nodes|actors|tasks|objects|placement-groups|jobs',
      'tsray job submit',
    ]) {
      expect(help.stdout).toContain(line);
    }
    // The default ports, on a loopback address of its own (127.x.y.z) so no other test's port is taken.
    const host = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    const own = tempDir();
    const ownEnv = { ...env, TMPDIR: own.dir };
    try {
      const r = await tsray(['start', '--head', '--host', host], ownEnv);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(
        new RegExp(`^tsray runtime started\\. Address: ${host.replaceAll('.', '\\.')}:6380 {2}Dashboard: http://${host.replaceAll('.', '\\.')}:8265\n`),
      );
      const session = readdirSync(join(own.dir, RT)).find((d) => d.startsWith('session-'))!;
      const headReady = JSON.parse(readFileSync(join(own.dir, RT, session, 'head-0.ready.json'), 'utf8'));
      expect((await tsray(['stop'], ownEnv)).code).toBe(0);
      await until(() => !alive(headReady.pid), 10_000, 'the head to stop');
    } finally {
      await tsray(['stop', '--force'], ownEnv);
      own.cleanup();
    }
  });

  it('start --address to nothing names the address and says the head is unreachable', async () => {
    const port = await freePort();
    const r = await tsray(['start', '--address', `127.0.0.1:${port}`, '--token', 't', '--timeout', '1'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^tsray: the head at 127\\.0\\.0\\.1:${port} is unreachable: no answer within 1 s`));
  });

  it('a daemon that reports an error, or exits early, fails start with its message and log', async () => {
    const e1 = await tsray(['start', '--head', '--port', '0', '--dashboard-port', '0'], { ...env, FAKE_DAEMON_MODE: 'error' });
    expect(e1.code).toBe(1);
    expect(e1.stderr).toMatch(/^tsray: the tsray head did not start: fake failure for head\n\(its log: \S+\/logs\/head-0\.err\)\n$/);
    const e2 = await tsray(['start', '--head', '--port', '0', '--dashboard-port', '0'], { ...env, FAKE_DAEMON_MODE: 'exit' });
    expect(e2.code).toBe(1);
    expect(e2.stderr).toMatch(
      /the tsray head did not start: it exited with code 3 before it was ready; last lines of its stderr:\nfake daemon crashed on purpose\n/,
    );
  });

  it('bad input is a usage error (exit 2)', async () => {
    for (const args of [
      ['start'],
      ['start', '--head', '--address', '1.2.3.4:5'],
      ['start', '--head', '--port', 'x'],
      ['start', '--head', '--resources', '{bad'],
      ['start', '--address', 'nohostport', '--token', 't'],
      ['start', '--head', '--bogus'],
      ['list', 'widgets'],
    ]) {
      const r = await tsray(args, env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^tsray: .*\nRun 'tsray --help' for usage\.\n$/);
    }
    const noToken = await tsray(['start', '--address', '127.0.0.1:1'], env);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/needs the cluster token/);
  });
});
